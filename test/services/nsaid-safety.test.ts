/**
 * cds-services/nsaid-safety.yaml end to end through the HTTP API: generated patients (forced risk
 * factors), draft orders by drug, order-select and order-sign. Checks each risk factor firing and not
 * firing, one card per oral NSAID draft, the indicator, and that every suggestion's actions, applied to
 * the draft orders, give valid FHIR R4 MedicationRequests that no longer trigger the rule.
 */
import { readFileSync } from 'node:fs';
import type { Patient as FhirPatient, MedicationRequest, Resource } from 'fhir/r4.js';
import t from 'tap';
import { createAjv } from '../../tools/schemas/ajv.js';
import type { Action, Card, HookRequest } from '../../src/cds-hooks.js';
import { SYSTEM } from '../../src/codes.js';
import { EXPLANATION_EXTENSION } from '../../src/explain/explain.js';
import { loadValueSets } from '../../src/services/value-sets.js';
import { patientOf, resourcesOf, toServerForm } from '../../tools/synthetic/bundle.js';
import {
  type DrugKey,
  medicationRequest,
  orderPrefetch,
  orderSelectRequest,
  orderSignRequest,
} from '../../tools/synthetic/orders.js';
import { generatePatient, type PatientOptions } from '../../tools/synthetic/patients.js';
import { createRng } from '../../tools/synthetic/random.js';
import { assertConforms, buildTestApp, NOW } from '../helpers/app.js';

const SELECT = '/cds-services/nsaid-safety-order-select';
const SIGN = '/cds-services/nsaid-safety-order-sign';
const VALUE_SETS = loadValueSets('fhir-profiles');
const validateMedicationRequest = createAjv({ strictRequired: false }).compile(
  JSON.parse(readFileSync('fhir-profiles/medication-request.schema.json', 'utf8')) as object,
);

/** A patient with none of the risk factors unless the options add them. */
const NO_RISK: PatientOptions = {
  age: 52,
  egfr: 95,
  heartFailure: false,
  giBleed: false,
  ckdStage: 0,
  medications: { warfarin: null, clopidogrel: null },
};

interface Patient {
  id: string;
  resources: Resource[];
}

function patient(options: PatientOptions = {}, seed = 1): Patient {
  const bundle = toServerForm(generatePatient(createRng(seed, 0), { now: NOW, ...NO_RISK, ...options }));
  return { id: patientOf(bundle).id!, resources: resourcesOf(bundle) };
}

function drafts(p: Patient, drugs: DrugKey[]): (MedicationRequest & { id: string })[] {
  return drugs.map((drug, i) =>
    medicationRequest({ id: `draft-${i + 1}`, drug, patientId: p.id, encounterId: 'enc-1' }),
  );
}

const { app, logText } = await buildTestApp();
t.teardown(() => app.close());

async function call(url: string, request: HookRequest, language = 'en'): Promise<Card[]> {
  const res = await app.inject({
    method: 'POST',
    url,
    payload: request,
    headers: { 'accept-language': language },
  });
  if (res.statusCode !== 200) throw new Error(`${res.statusCode}: ${res.body}`);
  const body = res.json();
  assertConforms('HookResponse', body);
  return body.cards as Card[];
}

function sign(p: Patient, orders: Resource[], language = 'en'): Promise<Card[]> {
  return call(
    SIGN,
    orderSignRequest({ patientId: p.id, drafts: orders, prefetch: orderPrefetch(p.resources, p.id) }),
    language,
  );
}

interface ExplainedRule {
  id: string;
  status: string;
  evidence?: { values: string[] }[];
}
const rulesOf = (card: Card) => (card.extension![EXPLANATION_EXTENSION] as { rules: ExplainedRule[] }).rules;
/** Rules that adapt the card without being risk factors (role: context). */
const CONTEXT_RULES = new Set(['vitaminKAntagonist', 'weightBelow50', 'renalRecheck']);
const firedOf = (card: Card) =>
  rulesOf(card)
    .filter((r) => r.status === 'fired' && !CONTEXT_RULES.has(r.id))
    .map((r) => r.id);
const focusOf = (card: Card) =>
  (card.extension![EXPLANATION_EXTENSION] as { focus: { reference: string } }).focus.reference;
const coded = (set: string, resource: MedicationRequest) =>
  (resource.medicationCodeableConcept?.coding ?? []).some((c) =>
    VALUE_SETS.contains(set, c.system ?? '', c.code ?? ''),
  );

t.test('no risk factor: no card on order-sign nor order-select', async (t) => {
  const p = patient();
  const orders = drafts(p, ['ibuprofen', 'naproxen']);
  t.same(await sign(p, orders), []);
  const select = orderSelectRequest({
    patientId: p.id,
    drafts: orders,
    prefetch: orderPrefetch(p.resources, p.id),
  });
  t.same(await call(SELECT, select), []);
});

const FACTORS: [string, PatientOptions, 'critical' | 'warning', RegExp][] = [
  [
    'anticoagulant',
    { medications: { warfarin: 'active', clopidogrel: null } },
    'critical',
    /Warfarin Sodium 5 MG Oral Tablet \\\(20\d\d\\-\d\d\\-\d\d\\\)/,
  ],
  ['egfrBelow30', { egfr: 24 }, 'critical', /Latest eGFR \(date\): 24 mL\/min\/1\\\.73 m² \\\(20\d\d/],
  ['egfr30to59', { egfr: 45.5 }, 'warning', /Latest eGFR \(date\): 45\\\.5 mL\/min\/1\\\.73 m²/],
  ['age75', { age: 80 }, 'warning', /Age \(date of birth\): 80 \\\(19\d\d\\-/],
  [
    'antiplatelet',
    { medications: { warfarin: null, clopidogrel: 'active' } },
    'warning',
    /Clopidogrel 75 MG Oral Tablet/,
  ],
  [
    'giBleedHistory',
    { giBleed: true },
    'warning',
    /Condition \(onset\): (Gastrointestinal hemorrhage|Acute peptic ulcer with hemorrhage)/,
  ],
  [
    'heartFailure',
    { heartFailure: true },
    'critical',
    /Condition \(onset\): Chronic congestive heart failure \\\(disorder\\\)/,
  ],
];

for (const [rule, options, indicator, evidence] of FACTORS) {
  t.test(`${rule} alone: one ${indicator} card naming it with its value and date`, async (t) => {
    const p = patient(options);
    const cards = await sign(p, drafts(p, ['ibuprofen']));
    t.equal(cards.length, 1);
    const card = cards[0]!;
    t.equal(card.indicator, indicator);
    t.same(firedOf(card), [rule], 'only this factor fired');
    t.match(card.detail!, evidence);
    t.match(card.detail!, / _\(\[[^\]]+\]\(https:/, 'the fired rule names its source');
    t.ok([...card.summary].length < 140);
    t.match(
      card.summary,
      /^Ibuprofen 400 mg tablet: (avoid an oral NSAID here \(contraindication or high-risk combination\)|consider a topical NSAID or paracetamol; oral NSAID risk): /,
    );
    t.equal(card.selectionBehavior, 'at-most-one');
    t.equal(card.overrideReasons!.length, 6);
    t.equal(card.source.url, 'https://www.nice.org.uk/guidance/ng226');
  });
}

t.test('every factor at once: one critical card listing them all', async (t) => {
  const p = patient({
    age: 81,
    egfr: 22,
    giBleed: true,
    heartFailure: true,
    medications: { warfarin: 'active', clopidogrel: 'active' },
  });
  const [card, ...rest] = await sign(p, drafts(p, ['naproxen']));
  t.same(rest, []);
  t.equal(card!.indicator, 'critical');
  t.same(firedOf(card!), [
    'anticoagulant',
    'egfrBelow30',
    'heartFailure',
    'age75',
    'antiplatelet',
    'giBleedHistory',
  ]);
  t.match(card!.summary, /…$/, 'a long list is cut, the advice comes first');
  t.notMatch(card!.detail!, /eGFR 30–59/, 'a rule that does not apply is left out of the detail');
  t.match(
    card!.detail!,
    /… and [2-9] more, in the card's data\./,
    'beyond four facts, the others are counted',
  );
});

t.test(
  'boundaries: age 74 and eGFR 60 do not fire; age 75 and eGFR exactly 30 fire the milder rules',
  async (t) => {
    const low = patient({ age: 74, egfr: 60 });
    t.same(await sign(low, drafts(low, ['ibuprofen'])), []);
    const edge = patient({ age: 75, egfr: 30 });
    const [card] = await sign(edge, drafts(edge, ['ibuprofen']));
    t.same(firedOf(card!), ['egfr30to59', 'age75']);
    t.equal(card!.indicator, 'warning');
  },
);

t.test(
  'what does not count: stopped anticoagulant, resolved heart failure, refuted bleed, old eGFR, odd unit',
  async (t) => {
    const stopped = patient({ medications: { warfarin: 'stopped', clopidogrel: 'stopped' } });
    t.same(await sign(stopped, drafts(stopped, ['ibuprofen'])), [], 'stopped prescriptions are not active');

    const hf = patient({ heartFailure: true });
    const resolved = hf.resources.map((r) =>
      r.resourceType === 'Condition'
        ? { ...r, clinicalStatus: { coding: [{ system: SYSTEM.conditionClinical, code: 'resolved' }] } }
        : r,
    );
    t.same(
      await sign({ ...hf, resources: resolved }, drafts(hf, ['ibuprofen'])),
      [],
      'resolved heart failure',
    );

    const bleed = patient({ giBleed: true });
    const refuted = bleed.resources.map((r) =>
      r.resourceType === 'Condition'
        ? {
            ...r,
            verificationStatus: { coding: [{ system: SYSTEM.conditionVerification, code: 'refuted' }] },
          }
        : r,
    );
    t.same(await sign({ ...bleed, resources: refuted }, drafts(bleed, ['ibuprofen'])), [], 'refuted bleed');

    // A low eGFR followed by a normal one: the latest counts.
    const recovered = patient({ egfr: 24 });
    const egfrs = recovered.resources.filter(
      (r) => r.resourceType === 'Observation' && JSON.stringify(r).includes('33914-3'),
    );
    const newer = {
      ...egfrs[0]!,
      id: 'egfr-new',
      effectiveDateTime: '2026-11-21T08:00:00Z',
      valueQuantity: { value: 75, unit: 'mL/min/{1.73_m2}', system: SYSTEM.ucum, code: 'mL/min/{1.73_m2}' },
    };
    t.same(
      await sign(
        { ...recovered, resources: [...recovered.resources, newer] },
        drafts(recovered, ['ibuprofen']),
      ),
      [],
    );

    // mL/min (as the older Synthea writes it) reads as mL/min/1.73 m²; another unit is not read.
    const unit = (u: string) =>
      recovered.resources.map((r) =>
        egfrs.includes(r) ? { ...r, valueQuantity: { value: 24, unit: u, system: SYSTEM.ucum, code: u } } : r,
      );
    const [mlMin] = await sign({ ...recovered, resources: unit('mL/min') }, drafts(recovered, ['ibuprofen']));
    t.same(firedOf(mlMin!), ['egfrBelow30']);
    // A unit that cannot be converted is unreadable, never read as absent: the eGFR rules are not
    // evaluable, and the card says renal function is unknown.
    const [mgDl, ...more] = await sign(
      { ...recovered, resources: unit('mg/dL') },
      drafts(recovered, ['ibuprofen']),
    );
    t.same(more, []);
    t.equal(mgDl!.indicator, 'warning');
    t.equal(
      mgDl!.summary,
      'Ibuprofen 400 mg tablet: renal function unknown, check it first: eGFR unreadable (2026-10-27): unit not convertible to mL/min/1.73 m²',
    );
    t.same(
      rulesOf(mgDl!)
        .filter((r) => r.id.startsWith('egfr'))
        .map((r) => [r.id, r.status]),
      [
        ['egfrBelow30', 'not-evaluable'],
        ['egfr30to59', 'not-evaluable'],
      ],
    );
  },
);

/** The latest eGFR of a patient, replaced by one with the given date and value. */
function withEgfr(p: Patient, date: string, value: Record<string, unknown>): Patient {
  const resources = p.resources.map((r) => {
    if (r.resourceType !== 'Observation' || !JSON.stringify(r).includes('33914-3')) return r;
    const { valueQuantity: _, ...rest } = r as Resource & { valueQuantity?: unknown };
    return { ...rest, effectiveDateTime: date, ...value } as Resource;
  });
  return { ...p, resources };
}

interface ExplainedDatum {
  id: string;
  state: string;
  value?: string;
  date?: string;
  reason?: { en: string };
  window?: { months?: number; source: { label: string } };
}
const dataOf = (card: Card) =>
  (card.extension![EXPLANATION_EXTENSION] as { rules: (ExplainedRule & { data?: ExplainedDatum[] })[] })
    .rules;

t.test(
  'an eGFR older than its 12-month window is stale: shown with its date, not used as current',
  async (t) => {
    // Why-case (issue 14): "an eGFR of 25 from 2012 triggers a critical card with no date warning".
    const p = withEgfr(patient({ age: 60 }), '2012-03-01T09:00:00Z', {
      valueQuantity: { value: 25, unit: 'mL/min/{1.73_m2}', system: SYSTEM.ucum, code: 'mL/min/{1.73_m2}' },
    });
    const cards = await sign(p, drafts(p, ['ibuprofen']));
    t.equal(cards.length, 1);
    const card = cards[0]!;
    t.equal(card.indicator, 'warning', 'not critical: the eGFR of 2012 is not today’s');
    t.equal(
      card.summary,
      'Ibuprofen 400 mg tablet: renal function unknown, check it first: eGFR 25 mL/min/1.73 m² (2012-03-01), older than 12 months',
    );
    t.match(card.source.label, /NICE NG226/);
    t.match(
      card.detail!,
      '**eGFR < 30, eGFR 30–59: not evaluated, data too old** (eGFR 25 mL/min/1\\.73 m² \\(2012\\-03\\-01\\), older than 12 months)',
    );
    t.notMatch(card.detail!, /eGFR < 30: does not apply/);
    const egfr = dataOf(card).find((r) => r.id === 'egfrBelow30')!;
    t.equal(egfr.status, 'stale');
    t.match(egfr.data, [
      {
        id: 'latestEgfr',
        state: 'stale',
        value: '25 mL/min/1.73 m²',
        date: '2012-03-01T09:00:00Z',
        window: { months: 12, source: { label: /NICE NG203/ } },
      },
    ]);
    t.same(card.suggestions ?? [], [], 'no dose is suggested on an unknown renal function');

    // With a critical factor, the critical card shows, its detail listing the eGFR as too old.
    const anticoagulated = withEgfr(
      patient({ age: 60, medications: { warfarin: 'active', clopidogrel: null } }),
      '2012-03-01T09:00:00Z',
      {
        valueQuantity: { value: 25, unit: 'mL/min/{1.73_m2}', system: SYSTEM.ucum, code: 'mL/min/{1.73_m2}' },
      },
    );
    const [critical, ...rest] = await sign(anticoagulated, drafts(anticoagulated, ['ibuprofen']));
    t.same(rest, []);
    t.equal(critical!.indicator, 'critical');
    t.same(firedOf(critical!), ['anticoagulant'], 'the stale eGFR is not a fired factor');
    t.same(
      (critical!.suggestions ?? []).map((s) => s.label),
      ['Replace with diclofenac 1% gel on the painful joint, up to 4 times a day'],
      'no full-dose paracetamol on an unknown renal function',
    );
    t.match(
      critical!.detail!,
      /\*\*eGFR < 30, eGFR 30–59: not evaluated, data too old\*\* \(eGFR 25 mL\/min\/1\\\.73 m² \\\(2012\\-03\\-01\\\)/,
    );

    // Within the window the same value is current and critical.
    const recent = withEgfr(patient({ age: 60 }), '2026-06-01T09:00:00Z', {
      valueQuantity: { value: 25, unit: 'mL/min/{1.73_m2}', system: SYSTEM.ucum, code: 'mL/min/{1.73_m2}' },
    });
    const [current] = await sign(recent, drafts(recent, ['ibuprofen']));
    t.equal(current!.indicator, 'critical');
    t.same(firedOf(current!), ['egfrBelow30']);
  },
);

t.test('an eGFR recorded as text is unreadable, never read as absent', async (t) => {
  const p = withEgfr(patient({ age: 60 }), '2026-11-01T09:00:00Z', { valueString: '25' });
  const cards = await sign(p, drafts(p, ['ibuprofen']));
  t.equal(cards.length, 1);
  t.equal(cards[0]!.indicator, 'warning');
  t.match(
    cards[0]!.summary,
    /renal function unknown, check it first: eGFR unreadable \(2026-11-01\): value not a number/,
  );
  const egfr = dataOf(cards[0]!).find((r) => r.id === 'egfrBelow30')!;
  t.equal(egfr.status, 'not-evaluable');
  t.match(egfr.data, [
    {
      id: 'latestEgfr',
      state: 'unreadable',
      value: 'valueString: "25"',
      reason: { en: 'value not a number with a unit' },
    },
  ]);
  t.match(
    cards[0]!.detail!,
    '**eGFR < 30, eGFR 30–59: not evaluated** (eGFR unreadable \\(2026\\-11\\-01\\): value not a number with a unit \\(valueString: "25"\\))',
  );
});

t.test('no eGFR recorded: the eGFR rules are not evaluable (not recorded), no card of its own', async (t) => {
  const base = patient({ age: 80 });
  const p = {
    ...base,
    resources: base.resources.filter((r) => !JSON.stringify(r).includes('33914-3')),
  };
  const [card, ...rest] = await sign(p, drafts(p, ['ibuprofen']));
  t.same(rest, []);
  t.equal(card!.indicator, 'warning');
  t.same(firedOf(card!), ['age75']);
  t.match(card!.detail!, '**eGFR < 30, eGFR 30–59: not evaluated** (eGFR not recorded)');
});

t.test('an anticoagulant ordered in the same session counts, and is named as such', async (t) => {
  const p = patient();
  const cards = await sign(p, drafts(p, ['ibuprofen', 'apixaban']));
  t.equal(cards.length, 1, 'the apixaban draft itself gets no card');
  t.equal(cards[0]!.indicator, 'critical');
  t.match(cards[0]!.detail!, /Ordered in this session: Apixaban 5 mg tablet/);
  t.notMatch(cards[0]!.detail!, /Active prescription/, 'evidence without value is left out');
});

t.test('matching by ingredient: every oral NSAID coding fires, nothing else does', async (t) => {
  const p = patient({ age: 85 });
  const oral: DrugKey[] = [
    'ibuprofen',
    'naproxen',
    'naproxenSodium',
    'diclofenac',
    'celecoxib',
    'meloxicam',
    'ibuprofenIngredient',
    'naproxenAtc',
  ];
  const other: DrugKey[] = [
    'diclofenacGel',
    'paracetamol',
    'warfarin',
    'apixaban',
    'clopidogrel',
    'aspirin',
    'valproate',
    'cyproterone',
  ];
  const orders = drafts(p, [...oral, ...other]);
  const cards = await sign(p, orders);
  t.same(
    cards.map(focusOf),
    orders.slice(0, oral.length).map((o) => `MedicationRequest/${o.id}`),
  );
  // An ingredient code beside a topical product code is a topical order.
  const gel = medicationRequest({ id: 'gel', drug: 'diclofenacGel', patientId: p.id });
  gel.medicationCodeableConcept!.coding!.push({ system: SYSTEM.rxnorm, code: '3355', display: 'Diclofenac' });
  t.same(await sign(p, [gel]), []);
});

t.test('order-select evaluates only the selected drafts; the other drafts are context', async (t) => {
  const p = patient({ age: 79 });
  const orders = drafts(p, ['ibuprofen', 'naproxen', 'celecoxib', 'paracetamol']);
  const prefetch = orderPrefetch(p.resources, p.id);
  const select = (selections: string[]) =>
    call(SELECT, orderSelectRequest({ patientId: p.id, drafts: orders, selections, prefetch }));
  t.same((await select(['MedicationRequest/draft-1', 'MedicationRequest/draft-4'])).map(focusOf), [
    'MedicationRequest/draft-1',
  ]);
  t.same((await select(['MedicationRequest/draft-3', 'MedicationRequest/draft-2'])).map(focusOf), [
    'MedicationRequest/draft-2',
    'MedicationRequest/draft-3',
  ]);
  t.same(await select(['MedicationRequest/draft-4']), []);
  // A warfarin draft that is not selected still counts as a co-prescribed anticoagulant.
  const withWarfarin = [
    ...drafts(patient(), ['ibuprofen']),
    medicationRequest({ id: 'w', drug: 'warfarin', patientId: p.id }),
  ];
  const q = patient();
  const [card] = await call(
    SELECT,
    orderSelectRequest({
      patientId: q.id,
      drafts: withWarfarin,
      selections: ['MedicationRequest/draft-1'],
      prefetch: orderPrefetch(q.resources, q.id),
    }),
  );
  t.same(firedOf(card!), ['anticoagulant']);
});

t.test('order-sign: one card per flagged draft, each with its own uuid and suggestions', async (t) => {
  const p = patient({ egfr: 41 });
  const orders = drafts(p, ['ibuprofen', 'paracetamol', 'diclofenac', 'diclofenacGel', 'meloxicam']);
  const cards = await sign(p, orders);
  t.same(cards.map(focusOf), [
    'MedicationRequest/draft-1',
    'MedicationRequest/draft-3',
    'MedicationRequest/draft-5',
  ]);
  const uuids = cards.flatMap((c) => [c.uuid, ...(c.suggestions ?? []).map((s) => s.uuid)]);
  t.equal(new Set(uuids).size, uuids.length, 'every card and suggestion has its own uuid');
  t.same(
    cards.map((c) => c.suggestions!.map((s) => s.actions![0]!.type)),
    [
      ['update', 'create'],
      ['update', 'create'],
      ['update', 'create'],
    ],
    'a replacement creates the new order first, then deletes the draft',
  );
});

/** Applies a suggestion's actions to the drafts as a transaction: deletes, then creates, then updates. */
function apply(orders: readonly Resource[], actions: readonly Action[]): Resource[] {
  let result = [...orders];
  for (const a of actions.filter((x) => x.type === 'delete')) {
    const before = result.length;
    result = result.filter((r) => `${r.resourceType}/${r.id}` !== a.resourceId);
    if (result.length !== before - 1) throw new Error(`delete of ${a.resourceId} matched nothing`);
  }
  for (const a of actions.filter((x) => x.type === 'create'))
    result.push({ ...a.resource!, id: `created-${result.length}` });
  for (const a of actions.filter((x) => x.type === 'update')) {
    const i = result.findIndex((r) => r.resourceType === a.resource!.resourceType && r.id === a.resource!.id);
    if (i < 0) throw new Error(`update of ${a.resource!.id} matched nothing`);
    result[i] = a.resource!;
  }
  return result;
}

/** FHIR JSON has no null, empty string, empty array or empty object anywhere. */
function emptyElements(value: unknown, path = ''): string[] {
  if (value === null || value === '') return [path];
  if (Array.isArray(value))
    return value.length === 0 ? [path] : value.flatMap((v, i) => emptyElements(v, `${path}[${i}]`));
  if (typeof value === 'object') {
    const entries = Object.entries(value as object);
    return entries.length === 0 ? [path] : entries.flatMap(([k, v]) => emptyElements(v, `${path}.${k}`));
  }
  return [];
}

for (const [age, maxGrams] of [
  [60, 3],
  [82, 3],
] as const) {
  t.test(`suggestions, applied to the drafts, give valid MedicationRequests (age ${age})`, async (t) => {
    const p = patient({ age, egfr: 28 });
    const orders = drafts(p, ['ibuprofen', 'paracetamol']);
    const [card] = await sign(p, orders);
    const draft = orders[0]!;
    t.same(
      card!.suggestions!.map((s) => s.isRecommended ?? false),
      [true, false],
    );
    const [topical, paracetamol] = card!.suggestions!;

    // (a) update: the same order, now diclofenac 1% gel.
    t.equal(topical!.actions!.length, 1);
    const updated = topical!.actions![0]!.resource as MedicationRequest;
    t.ok(validateMedicationRequest(updated), JSON.stringify(validateMedicationRequest.errors));
    t.same(emptyElements(updated), []);
    t.equal(updated.id, draft.id, 'same id');
    for (const key of ['status', 'intent', 'subject', 'encounter', 'requester'] as const)
      t.same(updated[key], draft[key], key);
    t.equal(updated.status, 'draft');
    t.ok(coded('topical-nsaid', updated) && !coded('oral-nsaid', updated), 'now a topical NSAID');
    t.equal(updated.medicationCodeableConcept!.coding![0]!.code, '855633');
    t.same(updated.dosageInstruction![0]!.maxDosePerPeriod!.numerator, {
      value: 32,
      unit: 'g',
      system: SYSTEM.ucum,
      code: 'g',
    });
    t.notOk('dispenseRequest' in updated, 'the tablet dispense request does not fit a gel');

    // (b) create paracetamol, then delete the draft: a client that applies only the first action
    // leaves both orders visible, never neither.
    t.same(
      paracetamol!.actions!.map((a) => a.type),
      ['create', 'delete'],
    );
    t.equal(paracetamol!.actions![1]!.resourceId, `MedicationRequest/${draft.id}`);
    const created = paracetamol!.actions![0]!.resource as MedicationRequest;
    t.ok(validateMedicationRequest(created), JSON.stringify(validateMedicationRequest.errors));
    t.same(emptyElements(created), []);
    t.notOk('id' in created, 'a new resource');
    for (const key of ['status', 'intent', 'subject', 'encounter', 'requester'] as const)
      t.same(created[key], draft[key], key);
    t.equal(created.medicationCodeableConcept!.coding![0]!.code, '198440');
    t.equal(created.dosageInstruction![0]!.maxDosePerPeriod!.numerator!.value, maxGrams);
    t.match(paracetamol!.label, `max ${maxGrams} g/24 h`);
    t.match(paracetamol!.label, 'at least 8 hours apart (eGFR < 30', 'eGFR 28: the French SmPC interval');
    t.same(created.dosageInstruction![0]!.timing, { repeat: { frequency: 1, period: 8, periodUnit: 'h' } });

    // Applied like a transaction, each suggestion leaves valid drafts that no longer raise the card.
    for (const suggestion of card!.suggestions!) {
      const after = apply(orders, suggestion.actions!);
      t.equal(after.length, orders.length);
      for (const r of after) t.ok(validateMedicationRequest(r), `${suggestion.label}: ${r.id} is valid`);
      t.same(await sign(p, after), [], `${suggestion.label}: no card once applied`);
    }
  });
}

t.test('French: summary, rule titles, suggestions and override reasons in French', async (t) => {
  const p = patient({ age: 80, medications: { warfarin: 'active', clopidogrel: null } });
  const [card] = await sign(p, drafts(p, ['ibuprofen']), 'fr');
  t.equal(
    card!.summary,
    'Ibuprofen 400 mg tablet\u00a0: éviter un AINS oral (contre-indication ou association à haut risque)\u00a0: anticoagulant, âge ≥ 75 ans',
  );
  t.match(card!.detail!, /\*\*âge ≥ 75 ans\*\* — Âge \(date de naissance\)\u00a0: 80/);
  t.match(card!.detail!, /En cours \(depuis\)\u00a0: Warfarin Sodium 5 MG Oral Tablet/);
  t.match(card!.detail!, /AVK\u00a0: le paracétamol régulier peut augmenter l’INR, le contrôler/);
  t.same(
    card!.suggestions!.map((s) => s.label),
    [
      'Remplacer par du diclofénac en gel à 1\u00a0% sur l’articulation douloureuse, jusqu’à 4 fois par jour',
      'Remplacer par du paracétamol 1 g jusqu’à 4 fois par jour (4 g/24 h au plus)',
    ],
  );
  t.equal(card!.overrideReasons![0]!.display, 'Préférence du patient / décision partagée');
});

t.test('required record data that cannot be had is a 412 naming the keys', async (t) => {
  const p = patient();
  const { egfr: _e, conditions: _c, ...partial } = orderPrefetch(p.resources, p.id);
  const res = await app.inject({
    method: 'POST',
    url: SIGN,
    payload: orderSignRequest({ patientId: p.id, drafts: drafts(p, ['ibuprofen']), prefetch: partial }),
  });
  t.equal(res.statusCode, 412);
  t.match(
    res.json().issue[0].diagnostics,
    /egfr \(not sent, and the request has no fhirServer\); conditions/,
  );
});

t.test('the logs hold no patient data', async (t) => {
  const p = patient({ age: 80 });
  const name = (p.resources.find((r) => r.resourceType === 'Patient') as FhirPatient).name![0]!.family!;
  await sign(p, drafts(p, ['ibuprofen']));
  t.notMatch(logText(), p.id);
  t.notMatch(logText(), name);
  t.notMatch(logText(), 'Ibuprofen');
});
