/**
 * Builders for the ordering hooks (tests, demos, benchmark): draft MedicationRequests by drug, the
 * `draftOrders` Bundle, order-select / order-sign requests, the prefetch the bundled prescribing-safety
 * services declare (computed from one patient's resources, as a FHIR server would answer their
 * queries), and the record entries those services read besides the generator's (a valproate pregnancy
 * prevention programme, a brain MRI, a past prescription).
 *
 * Pure and deterministic: everything comes from the arguments; nothing reads the clock.
 */
import type {
  Bundle,
  Coding,
  MedicationRequest,
  Observation,
  Patient,
  Procedure,
  Reference,
  Resource,
} from 'fhir/r4.js';
import type { HookRequest, PrefetchValue } from '../../src/cds-hooks.js';
import { PRESCRIBING, SYSTEM } from '../../src/codes.js';
import { searchset } from './bundle.js';

export type DrugKey =
  | 'ibuprofen'
  | 'naproxen'
  | 'naproxenSodium'
  | 'diclofenac'
  | 'celecoxib'
  | 'meloxicam'
  | 'ibuprofenIngredient'
  | 'naproxenAtc'
  | 'diclofenacGel'
  | 'paracetamol'
  | 'warfarin'
  | 'apixaban'
  | 'clopidogrel'
  | 'aspirin'
  | 'valproate'
  | 'cyproterone';

export interface Drug {
  codings: Coding[];
  text: string;
  dosage: string;
}

const rx = (code: string, display: string): Coding => ({ system: SYSTEM.rxnorm, code, display });
const atc = (code: string, display: string): Coding => ({ system: SYSTEM.atc, code, display });

/**
 * The drugs the builders order. Every code is in a value set of fhir-profiles/ (a test checks it):
 * products (SCD) by default, an ingredient-only (`ibuprofenIngredient`) and an ATC-only (`naproxenAtc`)
 * coding to exercise matching by ingredient and by ATC.
 */
export const DRUGS: Readonly<Record<DrugKey, Drug>> = {
  ibuprofen: {
    codings: [rx('197805', 'Ibuprofen 400 MG Oral Tablet')],
    text: 'Ibuprofen 400 mg tablet',
    dosage: '400 mg three times a day with food',
  },
  naproxen: {
    codings: [rx('198014', 'Naproxen 500 MG Oral Tablet')],
    text: 'Naproxen 500 mg tablet',
    dosage: '500 mg twice a day with food',
  },
  naproxenSodium: {
    codings: [rx('849574', 'Naproxen sodium 220 MG Oral Tablet')],
    text: 'Naproxen sodium 220 mg tablet',
    dosage: '220 mg twice a day with food',
  },
  diclofenac: {
    codings: [rx('855926', 'Diclofenac Sodium 75 MG Delayed Release Oral Tablet')],
    text: 'Diclofenac sodium 75 mg gastro-resistant tablet',
    dosage: '75 mg twice a day with food',
  },
  celecoxib: {
    codings: [rx('205323', 'celecoxib 200 MG Oral Capsule')],
    text: 'Celecoxib 200 mg capsule',
    dosage: '200 mg once a day',
  },
  meloxicam: {
    codings: [rx('152695', 'meloxicam 15 MG Oral Tablet')],
    text: 'Meloxicam 15 mg tablet',
    dosage: '15 mg once a day',
  },
  ibuprofenIngredient: {
    codings: [rx('5640', 'Ibuprofen')],
    text: 'Ibuprofen',
    dosage: '400 mg three times a day with food',
  },
  naproxenAtc: {
    codings: [atc('M01AE02', 'naproxen')],
    text: 'Naproxen 500 mg tablet',
    dosage: '500 mg twice a day with food',
  },
  diclofenacGel: {
    codings: [rx('855633', 'Diclofenac Sodium 0.01 MG/MG Topical Gel')],
    text: 'Diclofenac sodium 1% gel',
    dosage: '4 g on the knee four times a day',
  },
  paracetamol: {
    codings: [rx('198440', 'Acetaminophen 500 MG Oral Tablet')],
    text: 'Paracetamol 500 mg tablet',
    dosage: '1 g up to four times a day',
  },
  warfarin: {
    codings: [rx('855332', 'warfarin sodium 5 MG Oral Tablet')],
    text: 'Warfarin 5 mg tablet',
    dosage: 'as per INR',
  },
  apixaban: {
    codings: [rx('1364445', 'apixaban 5 MG Oral Tablet')],
    text: 'Apixaban 5 mg tablet',
    dosage: '5 mg twice a day',
  },
  clopidogrel: {
    codings: [rx('309362', 'Clopidogrel 75 MG Oral Tablet')],
    text: 'Clopidogrel 75 mg tablet',
    dosage: '75 mg once a day',
  },
  aspirin: {
    codings: [rx('243670', 'Aspirin 81 MG Oral Tablet')],
    text: 'Aspirin 81 mg tablet',
    dosage: '81 mg once a day',
  },
  valproate: {
    codings: [rx('1099681', 'valproic acid 250 MG Oral Capsule'), atc('N03AG01', 'valproic acid')],
    text: 'Valproic acid 250 mg capsule',
    dosage: '250 mg twice a day',
  },
  cyproterone: {
    codings: [atc('G03HA01', 'cyproterone')],
    text: 'Cyproterone acetate 50 mg tablet',
    dosage: '50 mg once a day',
  },
};

export interface DraftOptions {
  id: string;
  drug: DrugKey;
  patientId: string;
  /** Prescriber; default `Practitioner/prac-1`. */
  userId?: string;
  encounterId?: string;
  /** Default `draft`; a past prescription in the record is `active`, `completed` or `stopped`. */
  status?: MedicationRequest['status'];
  /** Default `order`. */
  intent?: MedicationRequest['intent'];
  /** FHIR dateTime; default none (a draft not yet authored). */
  authoredOn?: string;
}

/** A MedicationRequest for one drug, coded as in {@link DRUGS}. */
export function medicationRequest(options: DraftOptions): MedicationRequest & { id: string } {
  const drug = DRUGS[options.drug];
  return {
    resourceType: 'MedicationRequest',
    id: options.id,
    status: options.status ?? 'draft',
    intent: options.intent ?? 'order',
    medicationCodeableConcept: { coding: drug.codings.map((c) => ({ ...c })), text: drug.text },
    subject: { reference: `Patient/${options.patientId}` },
    ...(options.encounterId ? { encounter: { reference: `Encounter/${options.encounterId}` } } : {}),
    ...(options.authoredOn ? { authoredOn: options.authoredOn } : {}),
    requester: { reference: options.userId ?? 'Practitioner/prac-1' },
    dosageInstruction: [{ text: drug.dosage }],
    dispenseRequest: { numberOfRepeatsAllowed: 0 },
  };
}

/** The `draftOrders` Bundle of a hook context (type `collection`). */
export function draftOrdersBundle(drafts: readonly Resource[]): Bundle {
  return {
    resourceType: 'Bundle',
    type: 'collection',
    entry: drafts.map((resource) => ({ resource })),
  };
}

export interface OrderRequestOptions {
  patientId: string;
  drafts: readonly Resource[];
  /** order-select only: references of the selected drafts; default every draft. */
  selections?: readonly string[];
  prefetch?: HookRequest['prefetch'];
  userId?: string;
  encounterId?: string;
  hookInstance?: string;
}

function orderRequest(hook: 'order-select' | 'order-sign', options: OrderRequestOptions): HookRequest {
  const context: HookRequest['context'] = {
    userId: options.userId ?? 'Practitioner/prac-1',
    patientId: options.patientId,
    ...(options.encounterId ? { encounterId: options.encounterId } : {}),
    ...(hook === 'order-select'
      ? { selections: [...(options.selections ?? options.drafts.map((d) => `${d.resourceType}/${d.id}`))] }
      : {}),
    draftOrders: draftOrdersBundle(options.drafts),
  };
  return {
    hook,
    hookInstance:
      options.hookInstance ?? `3d5c7e0a-0000-4000-8000-${hook === 'order-select' ? '1' : '2'}0000000000`,
    context,
    ...(options.prefetch ? { prefetch: options.prefetch } : {}),
  };
}

/** An order-select request: the drafts of the session, of which `selections` were just chosen. */
export function orderSelectRequest(options: OrderRequestOptions): HookRequest {
  return orderRequest('order-select', options);
}

/** An order-sign request for every draft. */
export function orderSignRequest(options: Omit<OrderRequestOptions, 'selections'>): HookRequest {
  return orderRequest('order-sign', options);
}

// ---------------------------------------------------------------------------------------------------
// Record entries the prescribing services read
// ---------------------------------------------------------------------------------------------------

const subject = (patientId: string): Reference => ({ reference: `Patient/${patientId}` });

/** The annual documentation of a valproate pregnancy prevention programme (src/codes.ts PRESCRIBING). */
export function valproatePppObservation(
  id: string,
  patientId: string,
  date: string,
  inPlace = true,
): Observation & { id: string } {
  return {
    resourceType: 'Observation',
    id,
    status: 'final',
    code: {
      coding: [
        {
          system: SYSTEM.localPrescribing,
          code: PRESCRIBING.valproatePpp,
          display: 'Valproate pregnancy prevention programme in place',
        },
      ],
    },
    subject: subject(patientId),
    effectiveDateTime: date,
    valueBoolean: inPlace,
  };
}

/** A brain MRI done for meningioma monitoring (src/codes.ts PRESCRIBING). */
export function brainMriProcedure(id: string, patientId: string, date: string): Procedure & { id: string } {
  return {
    resourceType: 'Procedure',
    id,
    status: 'completed',
    code: {
      coding: [
        {
          system: SYSTEM.localPrescribing,
          code: PRESCRIBING.brainMri,
          display: 'Brain MRI for meningioma monitoring',
        },
      ],
    },
    subject: subject(patientId),
    performedDateTime: date,
  };
}

// ---------------------------------------------------------------------------------------------------
// Prefetch
// ---------------------------------------------------------------------------------------------------

/** LOINC codes the nsaid-safety `egfr` query asks for (fhir-profiles/ValueSet-egfr.json). */
export const EGFR_CODES: readonly string[] = [
  '33914-3',
  '48642-3',
  '48643-1',
  '50044-7',
  '70969-1',
  '77147-7',
  '76633-7',
  '62238-1',
  '88293-6',
  '88294-4',
  '94677-2',
  '98979-8',
  '98980-6',
];

function codedWith(resource: Resource, system: string, codes: readonly string[]): boolean {
  const concept = (resource as { code?: { coding?: Coding[] } }).code;
  return (concept?.coding ?? []).some((c) => c.system === system && codes.includes(c.code ?? ''));
}

function effective(resource: Resource): string {
  return (resource as Observation).effectiveDateTime ?? '';
}

function ofType<T extends Resource>(resources: readonly Resource[], type: T['resourceType']): T[] {
  return resources.filter((r) => r.resourceType === type) as T[];
}

/**
 * The prefetch of the bundled prescribing services for one patient: every key any of them declares,
 * each the answer its query would get from a FHIR server holding `resources` (server form: `Type/id`
 * references). Keys a service does not declare are ignored by it.
 *
 * @throws Error when `resources` holds no Patient with id `patientId`
 */
export function orderPrefetch(
  resources: readonly Resource[],
  patientId: string,
): Record<string, PrefetchValue> {
  const patient = ofType<Patient>(resources, 'Patient').find((p) => p.id === patientId);
  if (!patient) throw new Error(`no Patient/${patientId} among the resources`);
  const own = resources.filter((r) => {
    const ref =
      (r as { subject?: Reference; patient?: Reference }).subject ?? (r as { patient?: Reference }).patient;
    return ref?.reference === `Patient/${patientId}`;
  });
  const byDateDesc = (a: Resource, b: Resource) => (effective(a) < effective(b) ? 1 : -1);
  const egfr = ofType<Observation>(own, 'Observation')
    .filter((o) => codedWith(o, SYSTEM.loinc, EGFR_CODES))
    .sort(byDateDesc)
    .slice(0, 20);
  const requests = ofType<MedicationRequest>(own, 'MedicationRequest');
  return {
    patient,
    egfr: searchset(egfr),
    medications: searchset(requests.filter((m) => m.status === 'active')),
    medicationHistory: searchset(requests),
    conditions: searchset(ofType(own, 'Condition')),
    pregnancy: searchset(
      ofType<Observation>(own, 'Observation')
        .filter((o) => codedWith(o, SYSTEM.loinc, ['11778-8', '49051-6', '11884-4', '18185-9', '82810-3']))
        .sort(byDateDesc),
    ),
    weight: searchset(
      ofType<Observation>(own, 'Observation')
        .filter((o) => codedWith(o, SYSTEM.loinc, ['29463-7']))
        .sort(byDateDesc)
        .slice(0, 1),
    ),
    ppp: searchset(
      ofType<Observation>(own, 'Observation')
        .filter((o) =>
          codedWith(o, SYSTEM.localPrescribing, [PRESCRIBING.valproatePpp, PRESCRIBING.topiramatePpp]),
        )
        .sort(byDateDesc),
    ),
    brainMri: searchset(
      ofType<Procedure>(own, 'Procedure').filter((p) =>
        codedWith(p, SYSTEM.localPrescribing, [PRESCRIBING.brainMri]),
      ),
    ),
  };
}
