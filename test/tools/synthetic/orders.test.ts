import { readFileSync } from 'node:fs';
import type { Bundle, CodeSystem, MedicationRequest, Observation, Resource } from 'fhir/r4.js';
import t from 'tap';
import { createAjv } from '../../../tools/schemas/ajv.js';
import { PRESCRIBING, SYSTEM } from '../../../src/codes.js';
import { validatorFor } from '../../../src/request/validate.js';
import { loadValueSets } from '../../../src/services/value-sets.js';
import { patientOf, resourcesOf, toServerForm } from '../../../tools/synthetic/bundle.js';
import {
  brainMriProcedure,
  DRUGS,
  type DrugKey,
  EGFR_CODES,
  medicationRequest,
  orderPrefetch,
  orderSelectRequest,
  orderSignRequest,
  valproatePppObservation,
} from '../../../tools/synthetic/orders.js';
import { generatePatient } from '../../../tools/synthetic/patients.js';
import { createRng } from '../../../tools/synthetic/random.js';
import { NOW } from '../../helpers/app.js';

const VALUE_SETS = loadValueSets('fhir-profiles');
const validateMedicationRequest = createAjv({ strictRequired: false }).compile(
  JSON.parse(readFileSync('fhir-profiles/medication-request.schema.json', 'utf8')) as object,
);

t.test('every drug is coded from the value set of its class', async (t) => {
  const member = (key: DrugKey) =>
    VALUE_SETS.ids.filter((id) =>
      DRUGS[key].codings.every((c) => VALUE_SETS.contains(id, c.system ?? '', c.code ?? '')),
    );
  const expected: Record<DrugKey, string[]> = {
    ibuprofen: ['oral-nsaid'],
    naproxen: ['oral-nsaid'],
    naproxenSodium: ['oral-nsaid'],
    diclofenac: ['diclofenac-coxib', 'oral-nsaid'],
    celecoxib: ['diclofenac-coxib', 'oral-nsaid'],
    meloxicam: ['oral-nsaid'],
    ibuprofenIngredient: ['oral-nsaid'],
    naproxenAtc: ['oral-nsaid'],
    diclofenacGel: ['topical-nsaid'],
    paracetamol: [],
    warfarin: ['anticoagulant', 'vitamin-k-antagonist'],
    apixaban: ['anticoagulant'],
    clopidogrel: ['antiplatelet'],
    aspirin: ['antiplatelet'],
    valproate: ['valproate'],
    cyproterone: ['meningioma-progestogen'],
  };
  for (const key of Object.keys(DRUGS) as DrugKey[]) t.same(member(key), expected[key], key);
});

t.test('draft MedicationRequests are valid R4 (structural schema) with the given fields', async (t) => {
  for (const drug of Object.keys(DRUGS) as DrugKey[]) {
    const draft = medicationRequest({ id: `d-${drug}`, drug, patientId: 'p1', encounterId: 'e1' });
    t.ok(validateMedicationRequest(draft), `${drug}: ${JSON.stringify(validateMedicationRequest.errors)}`);
  }
  const past: MedicationRequest = medicationRequest({
    id: 'x',
    drug: 'warfarin',
    patientId: 'p1',
    userId: 'PractitionerRole/r1',
    status: 'active',
    intent: 'plan',
    authoredOn: '2025-01-02',
  });
  t.same(
    [past.status, past.intent, past.authoredOn, past.requester, past.subject, 'encounter' in past],
    [
      'active',
      'plan',
      '2025-01-02',
      { reference: 'PractitionerRole/r1' },
      { reference: 'Patient/p1' },
      false,
    ],
  );
  const bad = { ...past, status: 'pending' };
  t.notOk(validateMedicationRequest(bad), 'the schema can fail');
});

t.test('order-select and order-sign requests conform to the CDS Hooks schemas', async (t) => {
  const drafts = [
    medicationRequest({ id: 'a', drug: 'ibuprofen', patientId: 'p1' }),
    medicationRequest({ id: 'b', drug: 'paracetamol', patientId: 'p1' }),
  ];
  const select = orderSelectRequest({ patientId: 'p1', drafts, encounterId: 'e1' });
  t.ok(validatorFor('HookRequest')(select));
  t.same(select.context.selections, ['MedicationRequest/a', 'MedicationRequest/b'], 'default: all selected');
  t.equal(select.context.encounterId, 'e1');
  t.same(
    orderSelectRequest({ patientId: 'p1', drafts, selections: ['MedicationRequest/b'] }).context.selections,
    ['MedicationRequest/b'],
  );
  const sign = orderSignRequest({ patientId: 'p1', drafts, hookInstance: 'h-1' });
  t.ok(validatorFor('HookRequest')(sign));
  t.equal(sign.hook, 'order-sign');
  t.equal(sign.hookInstance, 'h-1');
  t.notOk('selections' in sign.context);
  t.same(
    (sign.context.draftOrders as Bundle).entry!.map((e) => e.resource!.id),
    ['a', 'b'],
  );
});

t.test('the prefetch answers each query of the prescribing services from the record', async (t) => {
  const bundle = toServerForm(
    generatePatient(createRng(11, 0), {
      now: NOW,
      age: 70,
      egfr: 40,
      heartFailure: true,
      medications: { warfarin: 'active', clopidogrel: 'stopped' },
    }),
  );
  const id = patientOf(bundle).id!;
  const other = toServerForm(generatePatient(createRng(12, 0), { now: NOW, egfr: 90 }));
  const resources = [
    ...resourcesOf(bundle),
    ...resourcesOf(other),
    valproatePppObservation('ppp', id, '2026-01-01T10:00:00Z'),
    brainMriProcedure('mri', id, '2025-01-01T10:00:00Z'),
  ];
  const prefetch = orderPrefetch(resources, id);
  t.same(Object.keys(prefetch), [
    'patient',
    'egfr',
    'medications',
    'medicationHistory',
    'conditions',
    'pregnancy',
    'weight',
    'ppp',
    'brainMri',
  ]);
  t.equal((prefetch.patient as { id: string }).id, id);
  const of = (key: string) => resourcesOf(prefetch[key] as Bundle);
  const egfr = of('egfr') as Observation[];
  t.ok(egfr.length > 0 && egfr.every((o) => EGFR_CODES.includes(o.code.coding![0]!.code!)));
  t.same(
    egfr.map((o) => o.effectiveDateTime),
    egfr
      .map((o) => o.effectiveDateTime)
      .sort()
      .reverse(),
    'latest first',
  );
  const own = (r: Resource) => (r as Observation).subject?.reference === `Patient/${id}`;
  for (const key of ['egfr', 'medications', 'medicationHistory', 'conditions', 'ppp', 'brainMri']) {
    t.ok(of(key).every(own), `${key}: this patient's only`);
  }
  const active = of('medications') as MedicationRequest[];
  t.ok(
    active.every((m) => m.status === 'active'),
    'active prescriptions only',
  );
  t.ok(
    active.some((m) => m.medicationCodeableConcept!.coding![0]!.code === '855332'),
    'the warfarin',
  );
  t.notOk(
    active.some((m) => m.medicationCodeableConcept!.coding![0]!.code === '309362'),
    'not the stopped clopidogrel',
  );
  t.ok((of('medicationHistory') as MedicationRequest[]).some((m) => m.status === 'stopped'));
  t.same(
    of('ppp').map((r) => r.id),
    ['ppp'],
  );
  t.same(
    of('brainMri').map((r) => r.id),
    ['mri'],
  );
  t.throws(() => orderPrefetch(resources, 'nobody'), { message: 'no Patient/nobody among the resources' });
});

t.test(
  'the local prescribing CodeSystem holds the codes of src/codes.ts and its value sets use them',
  async (t) => {
    const cs = JSON.parse(
      readFileSync('fhir-profiles/CodeSystem-cds-local-prescribing.json', 'utf8'),
    ) as CodeSystem;
    t.equal(cs.url, SYSTEM.localPrescribing);
    t.equal(cs.id, 'cds-local-prescribing');
    t.equal(cs.status, 'active');
    t.equal(cs.count, cs.concept!.length);
    t.same(cs.concept!.map((c) => c.code).sort(), Object.values(PRESCRIBING).sort());
    t.ok(cs.concept!.every((c) => c.display && c.definition && c.designation?.[0]?.language === 'fr'));
    t.ok(VALUE_SETS.contains('valproate-ppp', SYSTEM.localPrescribing, PRESCRIBING.valproatePpp));
    t.ok(VALUE_SETS.contains('topiramate-ppp', SYSTEM.localPrescribing, PRESCRIBING.topiramatePpp));
    t.ok(VALUE_SETS.contains('brain-mri', SYSTEM.localPrescribing, PRESCRIBING.brainMri));
    t.equal(valproatePppObservation('o', 'p', '2026-01-01').code.coding![0]!.code, PRESCRIBING.valproatePpp);
    t.equal(brainMriProcedure('m', 'p', '2026-01-01').code!.coding![0]!.code, PRESCRIBING.brainMri);
  },
);
