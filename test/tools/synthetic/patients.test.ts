import { readFileSync } from 'node:fs';
import { Ajv2020 } from 'ajv/dist/2020.js';
import type {
  Bundle,
  CodeSystem,
  Condition,
  Consent,
  MedicationRequest,
  Observation,
  ObservationComponent,
  Patient,
  Resource,
} from 'fhir/r4.js';
import t from 'tap';
import { LESION, LOCAL_BASE, LOCAL_OBSERVATION, OVERRIDE_REASONS, SYSTEM } from '../../../src/codes.js';
import {
  CKD_STAGE_CODES,
  DEFAULT_RATES,
  DERMOSCOPY_CODES,
  FITZPATRICK_DISPLAY,
  FITZPATRICK_TYPES,
  type GeneratePatientOptions,
  generateCohort,
  generatePatient,
  iterateCohort,
  KNEE_INJURY_CODES,
  LOCAL_OBSERVATION_DISPLAY,
  MEDICATIONS,
  OBJECTION_POLICY_URI,
  type PatientTruth,
  SEVEN_POINT_CODES,
  SEVEN_POINT_MAJOR,
  SMOKING_ANSWER,
  SNOMED_CONDITION,
} from '../../../tools/synthetic/patients.js';
import { createRng } from '../../../tools/synthetic/random.js';

const NOW = new Date('2026-01-01T00:00:00Z');
const DAY_MS = 86_400_000;

function readJson<T>(relative: string): T {
  return JSON.parse(readFileSync(new URL(relative, import.meta.url), 'utf8')) as T;
}

function resources(bundle: Bundle): Resource[] {
  return (bundle.entry ?? []).map((entry) => entry.resource!);
}

function ofType<T extends Resource>(bundle: Bundle, type: T['resourceType']): T[] {
  return resources(bundle).filter((r) => r.resourceType === type) as T[];
}

function patientOf(bundle: Bundle): Patient {
  return ofType<Patient>(bundle, 'Patient')[0]!;
}

function conditionCodes(bundle: Bundle): string[] {
  return ofType<Condition>(bundle, 'Condition').flatMap((c) => c.code?.coding?.map((x) => x.code!) ?? []);
}

function observations(bundle: Bundle, code: string): Observation[] {
  return ofType<Observation>(bundle, 'Observation')
    .filter((o) => o.code.coding?.some((c) => c.code === code))
    .sort((a, b) => a.effectiveDateTime!.localeCompare(b.effectiveDateTime!));
}

function lesionsOf(bundle: Bundle): Observation[] {
  return observations(bundle, LESION.panel);
}

function componentCode(component: ObservationComponent): string {
  return component.code.coding![0]!.code!;
}

function item(lesion: Observation, code: string): ObservationComponent | undefined {
  return lesion.component?.find((c) => componentCode(c) === code);
}

function weightedScore(lesion: Observation): number {
  let score = 0;
  for (const c of lesion.component ?? []) {
    const code = componentCode(c);
    if (!code.startsWith('7pcl-') || c.valueBoolean !== true) continue;
    score += (SEVEN_POINT_MAJOR as readonly string[]).includes(code) ? 2 : 1;
  }
  return score;
}

function medicationCodes(bundle: Bundle): string[] {
  return ofType<MedicationRequest>(bundle, 'MedicationRequest').map(
    (m) => m.medicationCodeableConcept!.coding![0]!.code!,
  );
}

function ageAt(birthDate: string, now: Date): number {
  const [y, m, d] = birthDate.split('-').map(Number) as [number, number, number];
  let age = now.getUTCFullYear() - y;
  if (now.getUTCMonth() + 1 < m || (now.getUTCMonth() + 1 === m && now.getUTCDate() < d)) age--;
  return age;
}

function one(options: Partial<GeneratePatientOptions> = {}, seed = 1): Bundle {
  return generatePatient(createRng(seed), { now: NOW, ...options });
}

/** Every string `reference` anywhere in a value. */
function referencesIn(value: unknown, found: string[] = []): string[] {
  if (Array.isArray(value)) for (const v of value) referencesIn(v, found);
  else if (value !== null && typeof value === 'object') {
    for (const [key, v] of Object.entries(value)) {
      if (key === 'reference' && typeof v === 'string') found.push(v);
      else referencesIn(v, found);
    }
  }
  return found;
}

const truths: PatientTruth[] = [];
const cohort = generateCohort({ seed: 2024, count: 2000, now: NOW, onTruth: (truth) => truths.push(truth) });
const ajv = new Ajv2020({ allErrors: true, strict: true });
const lesionSchema = readJson<object>('../../../fhir-profiles/lesion-examination.schema.json');
const validateLesion = ajv.compile(lesionSchema);

t.test('same seed and now give byte-identical JSON; a different seed or now does not', async (t) => {
  const a = JSON.stringify(generateCohort({ seed: 42, count: 30, now: NOW }));
  const b = JSON.stringify(generateCohort({ seed: 42, count: 30, now: new Date(NOW.getTime()) }));
  t.equal(a, b);
  t.not(JSON.stringify(generateCohort({ seed: 43, count: 30, now: NOW })), a);
  t.not(JSON.stringify(generateCohort({ seed: 42, count: 30, now: new Date('2026-01-02T00:00:00Z') })), a);
  t.equal(
    JSON.stringify(generateCohort({ seed: 42, count: 10, now: NOW })),
    JSON.stringify(generateCohort({ seed: 42, count: 30, now: NOW }).slice(0, 10)),
    'patient i does not depend on the cohort size',
  );
  t.equal(
    JSON.stringify(generatePatient(createRng(42, 3), { now: NOW })),
    JSON.stringify(generateCohort({ seed: 42, count: 4, now: NOW })[3]),
    'patient i is generatePatient(createRng(seed, i))',
  );
  t.equal(
    patientOf(generateCohort({ seed: 42, count: 1, now: NOW })[0]!).id,
    'd12cbee9-c529-4bb5-bab1-c0e34768b3fc',
  );
  t.same(
    [...iterateCohort({ seed: 42, count: 5, now: NOW })].map((b) => patientOf(b).id),
    generateCohort({ seed: 42, count: 5, now: NOW }).map((b) => patientOf(b).id),
  );
  t.same(generateCohort({ seed: 1, count: 0, now: NOW }), []);
});

t.test('every bundle is a Synthea-shaped transaction whose references resolve inside it', async (t) => {
  const problems: string[] = [];
  const seenIds = new Set<string>();
  for (const bundle of cohort) {
    if (bundle.resourceType !== 'Bundle' || bundle.type !== 'transaction') problems.push('not a transaction');
    const fullUrls = new Set<string>();
    const patient = patientOf(bundle);
    if (bundle.entry![0]!.resource !== patient) problems.push('Patient is not the first entry');
    for (const entry of bundle.entry ?? []) {
      const r = entry.resource!;
      if (entry.fullUrl !== `urn:uuid:${r.id}`) problems.push(`fullUrl ${entry.fullUrl} ≠ urn:uuid:${r.id}`);
      if (entry.request?.method !== 'POST' || entry.request.url !== r.resourceType) {
        problems.push(`request ${JSON.stringify(entry.request)}`);
      }
      if (seenIds.has(r.id!)) problems.push(`duplicate id ${r.id}`);
      seenIds.add(r.id!);
      fullUrls.add(entry.fullUrl!);
    }
    for (const r of resources(bundle)) {
      for (const ref of referencesIn(r)) if (!fullUrls.has(ref)) problems.push(`dangling ${ref}`);
      const owner =
        (r as { subject?: { reference?: string }; patient?: { reference?: string } }).subject ??
        (r as { patient?: { reference?: string } }).patient;
      if (r.resourceType !== 'Patient' && owner?.reference !== `urn:uuid:${patient.id}`) {
        problems.push(`${r.resourceType} not about the patient`);
      }
    }
  }
  t.same(problems.slice(0, 5), []);
});

t.test('patients are adults 18-90 with a name; every date lies between birth and now', async (t) => {
  const problems: string[] = [];
  for (const bundle of cohort) {
    const patient = patientOf(bundle);
    const age = ageAt(patient.birthDate!, NOW);
    if (age < 18 || age > 90) problems.push(`age ${age}`);
    if (!patient.name?.[0]?.family || !patient.name[0].given?.[0]) problems.push('no name');
    if (patient.gender !== 'female' && patient.gender !== 'male') problems.push(`gender ${patient.gender}`);
    const birth = Date.parse(patient.birthDate!);
    for (const r of resources(bundle)) {
      const record = r as unknown as Record<string, unknown>;
      for (const key of [
        'effectiveDateTime',
        'onsetDateTime',
        'abatementDateTime',
        'recordedDate',
        'authoredOn',
      ]) {
        const value = record[key];
        if (typeof value !== 'string') continue;
        if (!/^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}Z$/.test(value)) problems.push(`${key} format ${value}`);
        const ms = Date.parse(value);
        if (!(ms < NOW.getTime() && ms > birth))
          problems.push(`${r.resourceType}.${key} ${value} outside birth..now`);
      }
      const condition = r as Condition;
      if (condition.abatementDateTime && condition.abatementDateTime <= condition.onsetDateTime!) {
        problems.push(`abatement before onset ${condition.onsetDateTime} ${condition.abatementDateTime}`);
      }
    }
  }
  t.same(problems.slice(0, 5), []);
});

t.test('Conditions and Observations carry the required codings', async (t) => {
  const problems: string[] = [];
  const categories = new Set(['vital-signs', 'laboratory', 'survey', 'exam', 'imaging']);
  for (const bundle of cohort) {
    for (const c of ofType<Condition>(bundle, 'Condition')) {
      if (c.clinicalStatus?.coding?.[0]?.system !== SYSTEM.conditionClinical) problems.push('clinicalStatus');
      if (c.verificationStatus?.coding?.[0]?.code !== 'confirmed') problems.push('verificationStatus');
      if (!c.onsetDateTime) problems.push('onset');
    }
    for (const o of ofType<Observation>(bundle, 'Observation')) {
      if (o.status !== 'final') problems.push(`status ${o.status}`);
      const category = o.category?.[0]?.coding?.[0];
      if (category?.system !== SYSTEM.observationCategory || !categories.has(category.code!)) {
        problems.push(`category ${JSON.stringify(category)}`);
      }
    }
    for (const m of ofType<MedicationRequest>(bundle, 'MedicationRequest')) {
      if (m.intent !== 'order' || !['active', 'stopped'].includes(m.status))
        problems.push('medication status');
      if (m.medicationCodeableConcept?.coding?.[0]?.system !== SYSTEM.rxnorm) problems.push('rxnorm');
      if (!m.authoredOn) problems.push('authoredOn');
    }
  }
  t.same(problems.slice(0, 5), []);
});

t.test(
  'vital signs: height, weight and BMI at every visit, consistent, with a trend of 3-5 points',
  async (t) => {
    const problems: string[] = [];
    for (const bundle of cohort) {
      const bmi = observations(bundle, '39156-5');
      const weight = observations(bundle, '29463-7');
      const height = observations(bundle, '8302-2');
      if (bmi.length < 3 || bmi.length > 5) problems.push(`${bmi.length} BMI points`);
      if (weight.length !== bmi.length || height.length !== bmi.length) problems.push('visits differ');
      if (new Set(bmi.map((o) => o.effectiveDateTime)).size !== bmi.length) problems.push('BMI dates repeat');
      bmi.forEach((o, i) => {
        const kg = weight[i]!.valueQuantity!.value!;
        const cm = height[i]!.valueQuantity!.value!;
        const value = o.valueQuantity!.value!;
        if (Math.abs(value - kg / (cm / 100) ** 2) > 0.06)
          problems.push(`BMI ${value} vs ${kg} kg / ${cm} cm`);
        if (o.valueQuantity!.code !== 'kg/m2' || weight[i]!.valueQuantity!.code !== 'kg')
          problems.push('units');
        if (o.category![0]!.coding![0]!.code !== 'vital-signs') problems.push('category');
      });
      const latest = bmi.at(-1)!.effectiveDateTime!;
      if (NOW.getTime() - Date.parse(latest) > 61 * DAY_MS) problems.push(`latest visit ${latest}`);
    }
    t.same(problems.slice(0, 5), []);
  },
);

t.test('pain, smoking and eGFR use the documented codes and units', async (t) => {
  const smokingCodes = new Set<string>(Object.values(SMOKING_ANSWER).map((a) => a.code));
  const problems: string[] = [];
  for (const bundle of cohort) {
    const smoking = observations(bundle, '72166-2');
    if (smoking.length !== 1) problems.push(`${smoking.length} smoking observations`);
    const answer = smoking[0]!.valueCodeableConcept!.coding![0]!;
    if (answer.system !== SYSTEM.snomed || !smokingCodes.has(answer.code!))
      problems.push(`answer ${answer.code}`);
    if (smoking[0]!.category![0]!.coding![0]!.code !== 'survey') problems.push('smoking category');
    for (const pain of observations(bundle, '72514-3')) {
      const q = pain.valueQuantity!;
      if (q.code !== '{score}' || !Number.isInteger(q.value) || q.value! < 0 || q.value! > 10) {
        problems.push(`pain ${JSON.stringify(q)}`);
      }
    }
    for (const egfr of observations(bundle, '33914-3')) {
      const q = egfr.valueQuantity!;
      if (q.code !== 'mL/min/{1.73_m2}' || q.system !== SYSTEM.ucum || !(q.value! > 0)) {
        problems.push(`egfr ${JSON.stringify(q)}`);
      }
      if (egfr.category![0]!.coding![0]!.code !== 'laboratory') problems.push('egfr category');
    }
  }
  t.same(problems.slice(0, 5), []);
});

t.test('the latest eGFR agrees with the CKD stage', async (t) => {
  const ranges = [
    [90, 200],
    [60, 90],
    [30, 60],
    [15, 30],
    [0, 15],
  ] as const;
  const problems: string[] = [];
  let checked = 0;
  for (const bundle of cohort) {
    const stage = CKD_STAGE_CODES.findIndex((code) => conditionCodes(bundle).includes(code)) + 1;
    const egfr = observations(bundle, '33914-3').at(-1)?.valueQuantity?.value;
    if (stage === 0) continue;
    checked++;
    const [lo, hi] = ranges[stage - 1]!;
    if (egfr === undefined || egfr < lo || egfr >= hi) problems.push(`stage ${stage}, eGFR ${egfr}`);
  }
  t.ok(checked > 50, `${checked} CKD patients checked`);
  t.same(problems.slice(0, 5), []);
});

t.test(
  'every lesion examination validates against fhir-profiles/lesion-examination.schema.json',
  async (t) => {
    const lesions = cohort.flatMap(lesionsOf);
    t.ok(lesions.length > 300, `${lesions.length} lesions`);
    const invalid = lesions.filter((o) => !validateLesion(o));
    t.same(invalid.slice(0, 1), [], ajv.errorsText(validateLesion.errors));
    const problems: string[] = [];
    for (const lesion of lesions) {
      const codes = lesion.component!.map(componentCode);
      if (new Set(codes).size !== codes.length) problems.push('repeated component');
      const dermoscopic = codes.filter((code) => code.startsWith('d7pt-'));
      if (dermoscopic.length !== 0 && dermoscopic.length !== DERMOSCOPY_CODES.length)
        problems.push('partial dermoscopy');
      const diameter = item(lesion, LESION.maxDiameter)?.valueQuantity?.value;
      const big = item(lesion, LESION.sevenPoint.diameter7mm)?.valueBoolean;
      if (diameter !== undefined && big !== undefined && big !== diameter >= 7) {
        problems.push(`diameter ${diameter} vs 7pcl-diameter-7mm ${big}`);
      }
      if (lesion.category![0]!.coding![0]!.code !== 'exam') problems.push('category');
      if (!lesion.bodySite?.text) problems.push('bodySite');
      if ('valueBoolean' in lesion || 'valueQuantity' in lesion) problems.push('panel has a value');
    }
    t.same(problems.slice(0, 5), []);
  },
);

t.test('the schema rejects malformed lesion examinations', async (t) => {
  const good = lesionsOf(one({ lesions: 1, dermoscopy: true, lesionDiameterMm: 5 }))[0]!;
  t.ok(validateLesion(good), ajv.errorsText(validateLesion.errors));
  const broken = (mutate: (o: Observation) => void): Observation => {
    const copy = structuredClone(good);
    mutate(copy);
    return copy;
  };
  const diameterIndex = good.component!.findIndex((c) => componentCode(c) === LESION.maxDiameter);
  const cases: [string, Observation][] = [
    [
      'checklist item as valueQuantity',
      broken((o) => {
        o.component![0] = {
          code: o.component![0]!.code,
          valueQuantity: { value: 1, system: SYSTEM.ucum, code: 'mm' },
        };
      }),
    ],
    [
      'diameter in cm',
      broken((o) => {
        o.component![diameterIndex]!.valueQuantity!.code = 'cm';
      }),
    ],
    [
      'diameter as valueBoolean',
      broken((o) => {
        o.component![diameterIndex] = { code: o.component![diameterIndex]!.code, valueBoolean: true };
      }),
    ],
    [
      'unknown component code',
      broken((o) => {
        o.component![0]!.code.coding![0]!.code = '7pcl-unknown';
      }),
    ],
    [
      'wrong panel code',
      broken((o) => {
        o.code.coding![0]!.code = 'kl-grade';
      }),
    ],
    [
      'no bodySite',
      broken((o) => {
        Reflect.deleteProperty(o, 'bodySite');
      }),
    ],
    [
      'a value on the panel',
      broken((o) => {
        o.valueBoolean = true;
      }),
    ],
    [
      'no components',
      broken((o) => {
        o.component = [];
      }),
    ],
    [
      'bad effectiveDateTime',
      broken((o) => {
        o.effectiveDateTime = '2026-13-01';
      }),
    ],
    [
      'subject not a Patient',
      broken((o) => {
        o.subject = { reference: 'Group/1' };
      }),
    ],
  ];
  for (const [name, observation] of cases) t.notOk(validateLesion(observation), name);
  t.ok(validateLesion({ ...good, subject: { reference: 'Patient/abc' } }), 'server-form subject is accepted');
});

t.test('the latent melanoma status is not written into the bundle, only reported by onTruth', async (t) => {
  const keys = new Set<string>();
  const collect = (value: unknown): void => {
    if (Array.isArray(value)) value.forEach(collect);
    else if (value !== null && typeof value === 'object') {
      for (const [key, v] of Object.entries(value)) {
        keys.add(key);
        collect(v);
      }
    }
  };
  collect(cohort);
  t.same(
    [...keys].sort(),
    [
      'abatementDateTime',
      'authoredOn',
      'asNeededBoolean',
      'birthDate',
      'bodySite',
      'category',
      'clinicalStatus',
      'code',
      'coding',
      'component',
      'display',
      'dosageInstruction',
      'effectiveDateTime',
      'entry',
      'family',
      'frequency',
      'fullUrl',
      'gender',
      'given',
      'id',
      'intent',
      'medicationCodeableConcept',
      'method',
      'name',
      'onsetDateTime',
      'period',
      'periodUnit',
      'recordedDate',
      'reference',
      'repeat',
      'request',
      'resource',
      'resourceType',
      'sequence',
      'status',
      'subject',
      'system',
      'text',
      'timing',
      'type',
      'unit',
      'url',
      'use',
      'value',
      'valueBoolean',
      'valueCodeableConcept',
      'valueInteger',
      'valueQuantity',
      'verificationStatus',
    ].sort(),
    'only FHIR elements, no latent fields',
  );
  t.equal(truths.length, cohort.length);
  const ids = new Set(cohort.flatMap(lesionsOf).map((o) => o.id));
  const truthIds = truths.flatMap((truth) => truth.lesions.map((l) => l.observationId));
  t.equal(truthIds.length, ids.size);
  t.ok(
    truthIds.every((id) => ids.has(id)),
    'every lesion truth names a lesion Observation',
  );
  t.same(
    truths.map((truth) => truth.patientId),
    cohort.map((b) => patientOf(b).id),
  );
  const withoutCallback = JSON.stringify(generateCohort({ seed: 2024, count: 50, now: NOW }));
  t.equal(withoutCallback, JSON.stringify(cohort.slice(0, 50)), 'onTruth does not change the bundles');
});

t.test('cohort rates over 2,000 patients fall in the designed ranges', async (t) => {
  const n = cohort.length;
  const share = (predicate: (b: Bundle) => boolean) => cohort.filter(predicate).length / n;
  const has = (code: string) => (b: Bundle) => conditionCodes(b).includes(code);
  const inRange = (name: string, value: number, lo: number, hi: number) =>
    t.ok(value >= lo && value <= hi, `${name} ${value.toFixed(3)} in [${lo}, ${hi}]`);

  inRange('knee OA', share(has(SNOMED_CONDITION.kneeOa.code)), 0.12, 0.18);
  inRange('type 2 diabetes', share(has(SNOMED_CONDITION.diabetesType2.code)), 0.07, 0.14);
  inRange('prediabetes', share(has(SNOMED_CONDITION.prediabetes.code)), 0.1, 0.17);
  inRange(
    'hypertension (either code)',
    share((b) => has(SNOMED_CONDITION.hypertension.code)(b) || has(SNOMED_CONDITION.hypertensionOld.code)(b)),
    0.27,
    0.41,
  );
  inRange('heart failure', share(has(SNOMED_CONDITION.heartFailure.code)), 0.01, 0.05);
  inRange(
    'GI bleed history',
    share((b) => has('12274003')(b) || has('74474003')(b)),
    0.02,
    0.06,
  );
  inRange(
    'CKD',
    share((b) => CKD_STAGE_CODES.some((code) => has(code)(b))),
    0.05,
    0.11,
  );
  inRange('melanoma history', share(has('C43.9')), 0.015, 0.05);
  inRange(
    'knee injury',
    share((b) => KNEE_INJURY_CODES.some((code) => has(code)(b))),
    0.04,
    0.09,
  );
  inRange(
    'female',
    share((b) => patientOf(b).gender === 'female'),
    0.5,
    0.62,
  );
  inRange(
    'patients with a lesion examination',
    share((b) => lesionsOf(b).length > 0),
    0.17,
    0.23,
  );
  inRange(
    'patients with a Fitzpatrick type',
    share((b) => observations(b, LOCAL_OBSERVATION.fitzpatrick).length > 0),
    0.2,
    0.28,
  );
  inRange(
    'patients with eGFR',
    share((b) => observations(b, '33914-3').length > 0),
    0.6,
    0.8,
  );
  inRange(
    'current smokers',
    share((b) => {
      const code = observations(b, '72166-2')[0]!.valueCodeableConcept!.coding![0]!.code;
      return code === SMOKING_ANSWER.currentEveryDay.code || code === SMOKING_ANSWER.currentSomeDay.code;
    }),
    0.12,
    0.18,
  );
  inRange(
    'naproxen',
    share((b) => medicationCodes(b).includes(MEDICATIONS.naproxen.code)),
    0.07,
    0.14,
  );
  inRange(
    'warfarin',
    share((b) => medicationCodes(b).includes(MEDICATIONS.warfarin.code)),
    0.01,
    0.05,
  );
  t.equal(
    share((b) => ofType<Consent>(b, 'Consent').length > 0),
    0,
    'no objection Consent by default',
  );

  const kneeOa = cohort.filter(has(SNOMED_CONDITION.kneeOa.code));
  const kneeAges = kneeOa.map((b) => ageAt(patientOf(b).birthDate!, NOW));
  t.ok(
    kneeAges.every((age) => age >= 45 && age <= 79),
    'knee-OA patients are 45-79 (§1.4)',
  );
  const meanKneeAge = kneeAges.reduce((a, b) => a + b, 0) / kneeAges.length;
  inRange('mean knee-OA age', meanKneeAge, 60, 64);
  inRange(
    'KL grade recorded among knee OA',
    kneeOa.filter((b) => observations(b, 'kl-grade').length > 0).length / kneeOa.length,
    0.22,
    0.38,
  );

  const lesions = cohort.flatMap(lesionsOf);
  const lesionTruths = truths.flatMap((truth) => truth.lesions);
  inRange(
    'latent melanoma prevalence',
    lesionTruths.filter((l) => l.melanoma).length / lesionTruths.length,
    0.02,
    0.07,
  );
  inRange(
    'dermoscopy performed',
    lesions.filter((o) => item(o, DERMOSCOPY_CODES[0]!)).length / lesions.length,
    0.44,
    0.56,
  );
  const scores = lesions.map(weightedScore);
  inRange('mean weighted 7-point score', scores.reduce((a, b) => a + b, 0) / scores.length, 3.0, 3.7);
  inRange(
    'weighted score ≥ 3 (NG12 referral)',
    scores.filter((s) => s >= 3).length / scores.length,
    0.55,
    0.72,
  );
  const major = lesions.flatMap((o) =>
    SEVEN_POINT_MAJOR.map((code) => item(o, code)?.valueBoolean).filter((v) => v !== undefined),
  );
  inRange('major item present', major.filter(Boolean).length / major.length, 0.37, 0.45);
  const missing = lesions.map((o) => SEVEN_POINT_CODES.filter((code) => !item(o, code)).length);
  inRange('7pcl items not recorded', missing.reduce((a, b) => a + b, 0) / (missing.length * 7), 0.03, 0.07);
});

t.test('lesion features follow §2.4 step 2 given the latent melanoma status', async (t) => {
  const lesionTruths: PatientTruth['lesions'] = [];
  const bundles = generateCohort({
    seed: 77,
    count: 1500,
    now: NOW,
    lesions: 1,
    rates: { lesionItemMissing: 0 },
    onTruth: (truth) => lesionTruths.push(...truth.lesions),
  });
  const melanomaIds = new Set(lesionTruths.filter((l) => l.melanoma).map((l) => l.observationId));
  const lesions = bundles.flatMap(lesionsOf);
  const groups = {
    melanoma: lesions.filter((o) => melanomaIds.has(o.id!)),
    other: lesions.filter((o) => !melanomaIds.has(o.id!)),
  };
  const presentShare = (group: Observation[], codes: readonly string[]) => {
    const values = group.flatMap((o) => codes.map((code) => item(o, code)!.valueBoolean));
    return values.filter(Boolean).length / values.length;
  };
  const minor = SEVEN_POINT_CODES.filter((code) => !SEVEN_POINT_MAJOR.includes(code));
  t.ok(groups.melanoma.length >= 40, `${groups.melanoma.length} melanomas`);
  const near = (name: string, value: number, target: number, tolerance: number) =>
    t.ok(Math.abs(value - target) <= tolerance, `${name} ${value.toFixed(3)} ≈ ${target}`);
  near('major item | melanoma', presentShare(groups.melanoma, SEVEN_POINT_MAJOR), 0.757, 0.08);
  near('major item | not melanoma', presentShare(groups.other, SEVEN_POINT_MAJOR), 0.395, 0.03);
  near('minor item | melanoma', presentShare(groups.melanoma, minor), 0.346, 0.08);
  near('minor item | not melanoma', presentShare(groups.other, minor), 0.258, 0.03);
  const meanScore = (group: Observation[]) =>
    group.map(weightedScore).reduce((a, b) => a + b, 0) / group.length;
  t.ok(meanScore(groups.melanoma) > meanScore(groups.other) + 1.5, 'melanomas score higher');
  const dermoscopic = (group: Observation[]) => group.filter((o) => item(o, DERMOSCOPY_CODES[0]!));
  t.ok(
    presentShare(dermoscopic(groups.melanoma), DERMOSCOPY_CODES) >
      presentShare(dermoscopic(groups.other), DERMOSCOPY_CODES) + 0.1,
    'dermoscopic criteria are more frequent in melanomas',
  );
  t.ok(
    lesions.every((o) => SEVEN_POINT_CODES.every((code) => item(o, code))),
    'lesionItemMissing: 0 records every 7pcl item',
  );
});

t.test('forced knee-OA features', async (t) => {
  const withOa = one({ kneeOa: true, klGrade: 3, kneeOaBilateral: false });
  const condition = ofType<Condition>(withOa, 'Condition').find(
    (c) => c.code!.coding![0]!.code === '239873007',
  )!;
  t.ok(condition, 'knee OA Condition');
  t.equal(condition.clinicalStatus!.coding![0]!.code, 'active');
  t.equal(condition.bodySite!.length, 1);
  const age = ageAt(patientOf(withOa).birthDate!, NOW);
  t.ok(age >= 45 && age <= 79, `age ${age}`);
  const kl = observations(withOa, 'kl-grade');
  t.equal(kl.length, 2, 'both knees graded');
  const index = kl.find((o) => o.bodySite!.text === condition.bodySite![0]!.text)!;
  t.equal(index.valueInteger, 3);
  t.equal(index.code.coding![0]!.system, SYSTEM.localObservation);
  t.ok(['left knee', 'right knee'].includes(index.bodySite!.text!));
  t.equal(index.category![0]!.coding![0]!.code, 'imaging');
  t.ok(observations(withOa, '72514-3').length >= 3, 'pain at every visit');

  t.same(observations(one({ kneeOa: true, klGrade: null }), 'kl-grade'), []);
  t.notOk(conditionCodes(one({ kneeOa: false })).includes('239873007'));
  t.ok(conditionCodes(one({ klGrade: 0 })).includes('239873007'), 'klGrade implies knee OA');
  const bilateral = ofType<Condition>(one({ kneeOa: true, kneeOaBilateral: true }), 'Condition').find(
    (c) => c.code!.coding![0]!.code === '239873007',
  )!;
  t.same(bilateral.bodySite, [{ text: 'left knee' }, { text: 'right knee' }]);

  const icd = generateCohort({ seed: 5, count: 40, now: NOW, kneeOa: true, rates: { kneeOaIcd10: 1 } });
  const codings = icd.flatMap((b) =>
    ofType<Condition>(b, 'Condition')
      .filter((c) => c.code!.coding![0]!.code === '239873007')
      .map((c) => c.code!.coding!),
  );
  t.ok(
    codings.every((c) => c[1]?.system === SYSTEM.icd10 && /^M17\.[0-3]$/.test(c[1].code!)),
    'ICD-10 M17.x coding next to SNOMED',
  );
  const injured = one({ kneeOa: true, kneeInjury: true, kneeOaBilateral: false, rates: { kneeOaIcd10: 1 } });
  t.ok(conditionCodes(injured).includes('M17.3'), 'post-traumatic gonarthrosis after a knee injury');
  const injury = ofType<Condition>(injured, 'Condition').find((c) =>
    KNEE_INJURY_CODES.includes(c.code!.coding![0]!.code!),
  )!;
  t.equal(injury.clinicalStatus!.coding![0]!.code, 'resolved');
});

t.test('forced comorbidities, measurements and medications', async (t) => {
  const b = one({
    age: 70,
    gender: 'female',
    diabetes: true,
    hypertension: true,
    heartFailure: true,
    atrialFibrillation: true,
    giBleed: true,
    hipOa: true,
    handOa: true,
    ckdStage: 4,
    melanomaHistory: true,
    smoking: 'former',
    bmi: 33.3,
    painScore: 7,
    egfr: 22.5,
    medications: {
      warfarin: 'active',
      ibuprofen: 'stopped',
      naproxen: null,
      acetaminophen: null,
      clopidogrel: null,
    },
  });
  const patient = patientOf(b);
  t.equal(ageAt(patient.birthDate!, NOW), 70);
  t.equal(patient.gender, 'female');
  const codes = conditionCodes(b);
  for (const code of ['44054006', '88805009', '49436004', '431857002', 'C43.9', '239872002', '201834006']) {
    t.ok(codes.includes(code), `condition ${code}`);
  }
  t.ok(codes.includes('59621000') || codes.includes('38341003'), 'hypertension');
  t.ok(codes.includes('12274003') || codes.includes('74474003'), 'peptic ulcer / GI bleed');
  const melanoma = ofType<Condition>(b, 'Condition').find((c) => c.code!.coding![0]!.code === 'C43.9')!;
  t.equal(melanoma.code!.coding![0]!.system, SYSTEM.icd10);
  t.equal(melanoma.clinicalStatus!.coding![0]!.code, 'resolved');
  t.ok(melanoma.abatementDateTime, 'resolved history has an abatement date');
  t.equal(observations(b, '39156-5').at(-1)!.valueQuantity!.value, 33.3);
  t.equal(observations(b, '72514-3').at(-1)!.valueQuantity!.value, 7);
  t.equal(observations(b, '33914-3').at(-1)!.valueQuantity!.value, 22.5);
  t.equal(observations(b, '72166-2')[0]!.valueCodeableConcept!.coding![0]!.code, SMOKING_ANSWER.former.code);
  const meds = ofType<MedicationRequest>(b, 'MedicationRequest');
  t.same(
    meds.map((m) => [m.medicationCodeableConcept!.coding![0]!.code, m.status]),
    [
      [MEDICATIONS.ibuprofen.code, 'stopped'],
      [MEDICATIONS.warfarin.code, 'active'],
    ],
  );

  const none = one({
    diabetes: false,
    prediabetes: false,
    hypertension: false,
    heartFailure: false,
    atrialFibrillation: false,
    giBleed: false,
    ckdStage: 0,
    melanomaHistory: false,
    hipOa: false,
    handOa: false,
    kneeOa: false,
    kneeInjury: false,
    egfr: null,
    medications: { ibuprofen: null, naproxen: null, acetaminophen: null, warfarin: null, clopidogrel: null },
  });
  t.same(conditionCodes(none), []);
  t.same(observations(none, '33914-3'), []);
  t.same(medicationCodes(none), []);
  t.ok(conditionCodes(one({ prediabetes: true })).includes('15777000'));
  const stage3 = observations(one({ ckdStage: 3 }), '33914-3').at(-1)!.valueQuantity!.value!;
  t.ok(stage3 >= 30 && stage3 < 60, `stage 3 eGFR ${stage3}`);
  const current = observations(one({ smoking: 'current' }), '72166-2')[0]!.valueCodeableConcept!.coding![0]!
    .code;
  t.ok([SMOKING_ANSWER.currentEveryDay.code, SMOKING_ANSWER.currentSomeDay.code].includes(current as never));
});

t.test('forced skin assessment and lesions', async (t) => {
  const b = one({
    skinAssessment: true,
    fitzpatrick: 'II',
    naevusCount: 55,
    atypicalNaevusCount: 2,
    lesions: 3,
  });
  const fitz = observations(b, LOCAL_OBSERVATION.fitzpatrick)[0]!;
  t.same(fitz.valueCodeableConcept!.coding, [{ system: SYSTEM.fitzpatrick, code: 'II', display: 'Type II' }]);
  t.equal(observations(b, LOCAL_OBSERVATION.naevusCountTotal)[0]!.valueInteger, 55);
  t.equal(observations(b, LOCAL_OBSERVATION.naevusCountAtypical)[0]!.valueInteger, 2);
  t.equal(lesionsOf(b).length, 3);
  t.same(observations(one({ skinAssessment: false, lesions: 1 }), LOCAL_OBSERVATION.fitzpatrick), []);
  t.same(lesionsOf(one({ lesions: 0 })), []);

  const noDermoscopy = generateCohort({ seed: 3, count: 10, now: NOW, lesions: 2, dermoscopy: false });
  t.ok(
    noDermoscopy
      .flatMap(lesionsOf)
      .every((o) => o.component!.every((c) => !componentCode(c).startsWith('d7pt-'))),
    'dermoscopy: false leaves out every d7pt item',
  );
  const dermoscopy = generateCohort({ seed: 3, count: 10, now: NOW, lesions: 2, dermoscopy: true });
  t.ok(
    dermoscopy
      .flatMap(lesionsOf)
      .every((o) => DERMOSCOPY_CODES.every((code) => typeof item(o, code)?.valueBoolean === 'boolean')),
    'dermoscopy: true records all seven d7pt items',
  );

  const forced = lesionsOf(
    one({
      lesions: 1,
      lesionSite: 'left forearm',
      lesionDiameterMm: 8.5,
      lesionItems: {
        '7pcl-change-size': true,
        '7pcl-irregular-shape': false,
        '7pcl-irregular-colour': true,
        '7pcl-diameter-7mm': true,
        '7pcl-inflammation': false,
        '7pcl-oozing': null,
        '7pcl-sensation': false,
        'd7pt-regression': true,
      },
    }),
  )[0]!;
  t.equal(forced.bodySite!.text, 'left forearm');
  t.same(
    forced.component!.slice(0, 7).map((c) => [componentCode(c), c.valueBoolean ?? c.valueQuantity]),
    [
      ['7pcl-change-size', true],
      ['7pcl-irregular-shape', false],
      ['7pcl-irregular-colour', true],
      ['7pcl-diameter-7mm', true],
      ['7pcl-inflammation', false],
      ['7pcl-sensation', false],
      ['lesion-max-diameter', { value: 8.5, unit: 'mm', system: SYSTEM.ucum, code: 'mm' }],
    ],
  );
  t.equal(weightedScore(forced), 5);
  t.equal(
    item(forced, LESION.dermoscopy.regression)?.valueBoolean,
    true,
    'a forced d7pt item implies dermoscopy',
  );
  t.equal(forced.component!.length, 7 + 7, '6 recorded 7pcl items + diameter + 7 dermoscopic items');
  t.same(forced.code, {
    coding: [{ system: SYSTEM.localObservation, code: 'lesion-examination', display: 'Lesion examination' }],
    text: 'Lesion examination',
  });

  const small = lesionsOf(one({ lesions: 4, lesionDiameterMm: 3 }));
  t.ok(
    small.every((o) => item(o, LESION.sevenPoint.diameter7mm)?.valueBoolean !== true),
    'a forced diameter < 7 mm makes the recorded item false',
  );
  const unrecorded = lesionsOf(one({ lesions: 2, lesionDiameterMm: null }));
  t.ok(unrecorded.every((o) => !item(o, LESION.maxDiameter)));
  const bigItem = lesionsOf(one({ lesions: 5, lesionItems: { '7pcl-diameter-7mm': true } }));
  t.ok(
    bigItem.every((o) => (item(o, LESION.maxDiameter)?.valueQuantity?.value ?? 7) >= 7),
    'a forced diameter item makes the diameter agree',
  );
});

t.test('objection Consent has exactly the shape of reference/clinical-codes.md §4', async (t) => {
  const b = one({ objection: true });
  const consents = ofType<Consent>(b, 'Consent');
  t.equal(consents.length, 1);
  const consent = consents[0]!;
  t.same(consent, {
    resourceType: 'Consent',
    id: consent.id,
    status: 'active',
    scope: {
      coding: [{ system: 'http://terminology.hl7.org/CodeSystem/consentscope', code: 'patient-privacy' }],
    },
    category: [{ coding: [{ system: 'http://loinc.org', code: '59284-0' }] }],
    patient: { reference: `urn:uuid:${patientOf(b).id}` },
    dateTime: consent.dateTime,
    policy: [{ uri: OBJECTION_POLICY_URI }],
    provision: {
      type: 'deny',
      action: [{ coding: [{ system: 'http://terminology.hl7.org/CodeSystem/consentaction', code: 'use' }] }],
      purpose: [
        { system: `${LOCAL_BASE}/CodeSystem/cds-purpose-of-use`, code: 'algorithmic-decision-support' },
      ],
    },
  });
  t.match(consent.dateTime, /^\d{4}-\d{2}-\d{2}$/);
  t.ok(consent.dateTime! < '2026-01-01');
  t.same(ofType<Consent>(one({ objection: false, objectionRate: 1 }), 'Consent'), []);
  const all = generateCohort({ seed: 8, count: 20, now: NOW, objectionRate: 1 });
  t.ok(all.every((bundle) => ofType<Consent>(bundle, 'Consent').length === 1));
  const some = generateCohort({ seed: 8, count: 400, now: NOW, objectionRate: 0.1 });
  const rate = some.filter((bundle) => ofType<Consent>(bundle, 'Consent').length > 0).length / 400;
  t.ok(rate > 0.06 && rate < 0.14, `objection rate ${rate}`);
});

t.test('onTruth reports the latent knee-OA and melanoma variables', async (t) => {
  let truth: PatientTruth | undefined;
  const b = one({
    kneeOa: true,
    klGrade: 2,
    lesions: 2,
    onTruth: (value) => {
      truth = value;
    },
  });
  t.equal(truth!.patientId, patientOf(b).id);
  t.equal(truth!.kneeOa!.klGrade, 2);
  t.ok(truth!.kneeOa!.progressionProbability > 0 && truth!.kneeOa!.progressionProbability < 1);
  t.type(truth!.kneeOa!.varus, 'boolean');
  t.same(
    truth!.lesions.map((l) => l.observationId),
    lesionsOf(b).map((o) => o.id),
  );
  const knee = truths.filter((x) => x.kneeOa);
  const progressed = knee.filter((x) => x.kneeOa!.progressed24m).length / knee.length;
  t.ok(progressed > 0.09 && progressed < 0.21, `24-month progression ${progressed} (§1.4 designs 15%)`);
  let noKnee: PatientTruth | undefined;
  one({
    kneeOa: false,
    onTruth: (value) => {
      noKnee = value;
    },
  });
  t.equal(noKnee!.kneeOa, null);
});

t.test('bad options are rejected with a clear message', async (t) => {
  const cases: [Partial<GeneratePatientOptions>, Error][] = [
    [{ age: 17 }, new RangeError('age must be an integer from 18 to 90 (got 17)')],
    [{ age: 40.5 }, new RangeError('age must be an integer from 18 to 90 (got 40.5)')],
    [{ klGrade: 5 }, new RangeError('klGrade must be an integer from 0 to 4 (got 5)')],
    [
      { klGrade: 2, kneeOa: false },
      new RangeError('klGrade needs knee OA (it conflicts with kneeOa: false)'),
    ],
    [{ ckdStage: 6 }, new RangeError('ckdStage must be an integer from 0 to 5 (got 6)')],
    [{ bmi: 5 }, new RangeError('bmi must be a number from 12 to 80 (got 5)')],
    [{ egfr: 0 }, new RangeError('egfr must be a number from 1 to 200 (got 0)')],
    [{ lesions: 11 }, new RangeError('lesions must be an integer from 0 to 10 (got 11)')],
    [{ lesionDiameterMm: 0 }, new RangeError('lesionDiameterMm must be a number from 0.1 to 200 (got 0)')],
    [{ objectionRate: 1.5 }, new RangeError('objectionRate must be a number from 0 to 1 (got 1.5)')],
    [{ gender: 'other' as never }, new RangeError("gender must be 'female' or 'male' (got other)")],
    [
      { smoking: 'sometimes' as never },
      new RangeError("smoking must be 'current', 'former' or 'never' (got sometimes)"),
    ],
    [
      { fitzpatrick: 'VII' as never },
      new RangeError('fitzpatrick must be one of I, II, III, IV, V, VI (got VII)'),
    ],
    [{ rates: { kneeOa: 2 } }, new RangeError('rates.kneeOa must be a number from 0 to 1 (got 2)')],
    [{ rates: { knee: 0.1 } as never }, new RangeError('unknown rate "knee"')],
    [{ medications: { aspirin: 'active' } as never }, new RangeError('unknown medication "aspirin"')],
    [
      { medications: { warfarin: 'on' } as never },
      new RangeError("medications.warfarin must be 'active', 'stopped' or null (got on)"),
    ],
    [{ lesionItems: { '7pcl-size': true } as never }, new RangeError('unknown lesion item "7pcl-size"')],
    [
      { lesionItems: { '7pcl-oozing': 1 } as never },
      new RangeError('lesionItems["7pcl-oozing"] must be true, false or null (got 1)'),
    ],
    [
      { lesionItems: { 'd7pt-regression': false }, dermoscopy: false },
      new RangeError('lesionItems["d7pt-regression"] needs dermoscopy (it conflicts with dermoscopy: false)'),
    ],
    [{ now: new Date('not a date') }, new TypeError('now must be a valid Date')],
    [{ now: '2026-01-01' as never }, new TypeError('now must be a valid Date')],
  ];
  for (const [options, error] of cases) t.throws(() => one(options), error, JSON.stringify(options));
  t.throws(
    () => generateCohort({ seed: 1.5, count: 1, now: NOW }),
    new RangeError('seed must be a safe integer (got 1.5)'),
  );
  t.throws(
    () => generateCohort({ seed: 1, count: -1, now: NOW }),
    new RangeError('count must be an integer from 0 to 1000000 (got -1)'),
  );
  t.throws(
    () => iterateCohort({ seed: 1, count: 1, now: NOW, age: 3 }),
    new RangeError('age must be an integer from 18 to 90 (got 3)'),
    'checked before the first next()',
  );
  t.equal(DEFAULT_RATES.kneeOa, 0.15);
  t.ok(Object.isFrozen(DEFAULT_RATES));
});

t.test('CodeSystem files parse, are valid R4 CodeSystems and cover src/codes.ts', async (t) => {
  const load = (name: string) => readJson<CodeSystem>(`../../../fhir-profiles/${name}`);
  const files: [string, string][] = [
    ['CodeSystem-cds-local-observation.json', SYSTEM.localObservation],
    ['CodeSystem-fitzpatrick-skin-type.json', SYSTEM.fitzpatrick],
    ['CodeSystem-cds-override-reason.json', SYSTEM.overrideReason],
    ['CodeSystem-cds-purpose-of-use.json', SYSTEM.purposeOfUse],
  ];
  for (const [file, url] of files) {
    const cs = load(file);
    t.equal(cs.resourceType, 'CodeSystem', file);
    t.equal(cs.url, url, `${file} url`);
    t.equal(cs.id, url.split('/').at(-1), `${file} id`);
    t.equal(cs.version, '1.0.0');
    t.equal(cs.status, 'active');
    t.equal(cs.content, 'complete');
    t.match(cs.name, /^[A-Z][A-Za-z0-9_]*$/, `${file} name is computable`);
    t.ok(cs.title);
    t.equal(cs.count, cs.concept!.length, `${file} count`);
    t.ok(
      cs.concept!.every((c) => c.code && c.display && c.definition),
      `${file}: every concept has code, display and definition`,
    );
    t.equal(new Set(cs.concept!.map((c) => c.code)).size, cs.concept!.length, `${file}: codes are unique`);
    const declared = new Set((cs.property ?? []).map((p) => p.code));
    t.ok(
      cs.concept!.every((c) => (c.property ?? []).every((p) => declared.has(p.code))),
      `${file}: concept properties are declared`,
    );
  }

  const local = load('CodeSystem-cds-local-observation.json');
  const expected = [
    LESION.panel,
    LESION.maxDiameter,
    ...Object.values(LESION.sevenPoint),
    ...Object.values(LESION.dermoscopy),
    ...Object.values(LOCAL_OBSERVATION),
  ];
  t.same(
    local.concept!.map((c) => c.code).sort(),
    [...expected].sort(),
    'exactly the codes of LESION and LOCAL_OBSERVATION',
  );
  for (const concept of local.concept!) {
    t.equal(
      concept.display,
      LOCAL_OBSERVATION_DISPLAY[concept.code],
      `display of ${concept.code} matches the generator`,
    );
  }
  const valueType = (code: string) =>
    local.concept!.find((c) => c.code === code)!.property!.find((p) => p.code === 'value-type')!.valueCode;
  for (const code of [...SEVEN_POINT_CODES, ...DERMOSCOPY_CODES])
    t.equal(valueType(code), 'valueBoolean', code);
  t.equal(valueType(LESION.maxDiameter), 'valueQuantity');
  t.equal(
    local.concept!.find((c) => c.code === LESION.maxDiameter)!.property!.find((p) => p.code === 'unit')!
      .valueString,
    'mm',
  );
  t.equal(valueType(LOCAL_OBSERVATION.klGrade), 'valueInteger');
  t.equal(valueType(LOCAL_OBSERVATION.naevusCountTotal), 'valueInteger');
  t.equal(valueType(LOCAL_OBSERVATION.naevusCountAtypical), 'valueInteger');
  t.equal(valueType(LOCAL_OBSERVATION.fitzpatrick), 'valueCodeableConcept');
  const weight = (code: string) =>
    local.concept!.find((c) => c.code === code)!.property!.find((p) => p.code === 'weight')?.valueInteger;
  t.same(
    SEVEN_POINT_CODES.map(weight),
    SEVEN_POINT_CODES.map((code) => ((SEVEN_POINT_MAJOR as readonly string[]).includes(code) ? 2 : 1)),
    '7pcl weights: major 2, minor 1',
  );
  t.same(DERMOSCOPY_CODES.map(weight), [2, 2, 2, 1, 1, 1, 1], 'd7pt weights: major 2, minor 1');

  const fitz = load('CodeSystem-fitzpatrick-skin-type.json');
  t.same(
    fitz.concept!.map((c) => [c.code, c.display]),
    FITZPATRICK_TYPES.map((type) => [type, FITZPATRICK_DISPLAY[type]]),
  );

  const override = load('CodeSystem-cds-override-reason.json');
  t.same(
    override.concept!.map((c) => [c.code, c.display, c.designation?.find((d) => d.language === 'fr')?.value]),
    Object.entries(OVERRIDE_REASONS).map(([code, text]) => [code, text.en, text.fr]),
    'override reasons: codes, English displays and French designations from src/codes.ts',
  );

  const purpose = load('CodeSystem-cds-purpose-of-use.json');
  t.same(
    purpose.concept!.map((c) => c.code),
    ['algorithmic-decision-support'],
  );
});

t.test('the lesion schema has its $id under LOCAL_BASE and is draft 2020-12', async (t) => {
  const schema = lesionSchema as { $id: string; $schema: string };
  t.equal(schema.$schema, 'https://json-schema.org/draft/2020-12/schema');
  t.ok(schema.$id.startsWith(`${LOCAL_BASE}/`), schema.$id);
});
