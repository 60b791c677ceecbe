import type { Bundle, Observation, Patient, Resource } from 'fhir/r4.js';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import t, { type Test } from 'tap';
import { LESION, SYSTEM } from '../../src/codes.js';
import { type LoadedModel, loadModels, logit } from '../../src/scoring/load.js';
import {
  beyondCalibratedRange,
  type ModelOutcome,
  type NotScoredOutcome,
  type ScoredOutcome,
  scoreSubjects,
} from '../../src/scoring/score.js';
import { resourcesOf, searchset, toServerForm } from '../../tools/synthetic/bundle.js';
import { generateCohort } from '../../tools/synthetic/patients.js';
import { createFhirPath } from '../../src/rules/fhirpath.js';

/** The FHIRPath engine of this file's loads. */
const engine = createFhirPath();

const NOW = new Date('2026-11-22T09:30:00.000Z');
const SEED = 20261122;
const COUNT = 200;

const sigmoid = (z: number): number => 1 / (1 + Math.exp(-z));
const ofType = (resources: Resource[], type: Resource['resourceType']) =>
  resources.filter((r) => r.resourceType === type);

interface Case {
  subject: unknown;
  env: Record<string, unknown>;
}

const BMI_LOINC = ['39156-5', '29463-7', '8302-2'];

/** Knee OA: the subject is the Patient; the prefetch holds the patient, conditions and observations. */
function kneeCases(bundles: Bundle[], withoutBmi = false): Case[] {
  return bundles.map((bundle) => {
    const resources = resourcesOf(toServerForm(bundle)).filter(
      (r) =>
        !withoutBmi ||
        r.resourceType !== 'Observation' ||
        !(r as Observation).code.coding?.some((c) => BMI_LOINC.includes(c.code ?? '')),
    );
    const patient = ofType(resources, 'Patient')[0] as Patient;
    return {
      subject: patient,
      env: {
        patient,
        conditions: searchset(ofType(resources, 'Condition')),
        observations: searchset(ofType(resources, 'Observation')),
      },
    };
  });
}

/** Melanoma: the subject is each lesion-examination Observation; `skin` holds the observations. */
function lesionCases(bundles: Bundle[]): Case[] {
  return bundles.flatMap((bundle) => {
    const resources = resourcesOf(toServerForm(bundle));
    const env = {
      patient: ofType(resources, 'Patient')[0],
      conditions: searchset(ofType(resources, 'Condition')),
      skin: searchset(ofType(resources, 'Observation')),
    };
    return (ofType(resources, 'Observation') as Observation[])
      .filter((o) =>
        o.code.coding?.some((c) => c.system === SYSTEM.localObservation && c.code === LESION.panel),
      )
      .map((subject) => ({ subject, env }));
  });
}

/** Scores every case (one call per patient, as a hook call would). */
async function scoreAll(model: LoadedModel, cases: Case[]): Promise<ModelOutcome[]> {
  const outcomes: ModelOutcome[] = [];
  for (const c of cases) outcomes.push(...(await scoreSubjects(model, [c.subject], c.env, NOW)));
  return outcomes;
}

function expectedRisk(p: number): string {
  return p < 0.01 ? '<1%' : `${Math.round(p * 100)}%`;
}

/** Every check on one model's outcomes; returns the number scored. */
/** Column means of models/<id>/<version>/background.csv, read here on their own (rows in file order). */
function backgroundMeans(m: LoadedModel['manifest']): number[] {
  const lines = readFileSync(join('models', m.id, m.version, m.background!.file), 'utf8')
    .trimEnd()
    .split('\n');
  const rows = lines.slice(1).map((line) => line.split(',').map((v) => Math.fround(Number(v))));
  return m.features.map((_, i) => rows.reduce((s, r) => s + r[i]!, 0) / rows.length);
}

function checkOutcomes(t: Test, model: LoadedModel, outcomes: ModelOutcome[]): number {
  const m = model.manifest;
  let scored = 0;
  let worstSigmoid = 0;
  let worstLogit = 0;
  let linearMismatches = 0;
  let bandMismatches = 0;
  let sentenceMismatches = 0;
  let notScoredProblems = 0;
  const reasonCodes = new Map<string, number>();
  for (const outcome of outcomes) {
    t.equal(outcome.model.id, m.id);
    if (outcome.status === 'scored') {
      scored += 1;
      const o: ScoredOutcome = outcome;
      const sum = o.contributions.reduce((s, c) => s + c.contribution, o.baselineLogit);
      worstSigmoid = Math.max(worstSigmoid, Math.abs(sigmoid(sum) - o.probability));
      worstLogit = Math.max(worstLogit, Math.abs(sum - logit(o.probability)));
      if (m.explanation.method === 'linear') {
        const { intercept, coefficients } = m.explanation;
        const ids = o.contributions.map((c) => c.id);
        if (ids.join() !== m.features.map((f) => f.id).join()) linearMismatches += 1;
        // Measured against the mean of the background sample the manifest declares.
        const means = backgroundMeans(m);
        o.contributions.forEach((c, i) => {
          const expected = coefficients[i]! * (Math.fround(c.value) - means[i]!);
          if (c.contribution !== expected) linearMismatches += 1;
        });
        const baseline = means.reduce((s, mean, i) => s + coefficients[i]! * mean, intercept);
        if (o.baselineLogit !== baseline) linearMismatches += 1;
        if (o.background.kind !== 'sample' || o.background.rows !== 100) linearMismatches += 1;
      }
      // The band: the first whose upper bound is above the risk; the one below it ends at or below the risk.
      const index = m.bands.findIndex((b) => b.below === undefined || o.probability < b.below);
      const lower = index > 0 ? m.bands[index - 1]!.below! : 0;
      if (o.band.id !== m.bands[index]!.id || o.probability < lower) bandMismatches += 1;
      if (o.aboveThreshold !== o.probability >= m.threshold) bandMismatches += 1;
      const risk = expectedRisk(o.probability);
      const { en, fr } = o.patientSentence;
      if (
        !en.includes(risk) ||
        !fr.includes(risk) ||
        /[{}]/.test(en + fr) ||
        en === fr ||
        (m.patientSentence.en.includes('{horizon}') && !en.includes(`${m.horizonMonths} months`)) ||
        (m.patientSentence.fr.includes('{horizon}') && !fr.includes(`${m.horizonMonths} mois`))
      )
        sentenceMismatches += 1;
    } else if (outcome.status === 'not-scored') {
      const o: NotScoredOutcome = outcome;
      const ok =
        o.reasons.length > 0 &&
        o.reasons.every((r) => r.text.en.length > 0 && r.text.fr.length > 0 && r.text.en !== r.text.fr) &&
        !('contributions' in o) &&
        !('probability' in o) &&
        !('baselineLogit' in o);
      if (!ok) notScoredProblems += 1;
      for (const r of o.reasons) reasonCodes.set(r.code, (reasonCodes.get(r.code) ?? 0) + 1);
    } else {
      t.fail(`unexpected outcome ${outcome.status}`);
    }
  }
  t.ok(worstSigmoid < 1e-6, `${m.id}: max |σ(baseline + Σ) − p| = ${worstSigmoid}`);
  // On the logit scale the float32 output limits the agreement near p = 1 (1 − p has few bits left).
  if (scored > 0) t.comment(`${m.id}: max |baseline + Σ − logit(p)| = ${worstLogit}`);
  if (m.explanation.method === 'linear')
    t.equal(
      linearMismatches,
      0,
      `${m.id}: contribution_i = coefficient_i × (value_i − mean of the background sample), exactly`,
    );
  t.equal(bandMismatches, 0, `${m.id}: band and threshold flag follow the manifest`);
  t.equal(sentenceMismatches, 0, `${m.id}: the patient sentence carries the risk in English and French`);
  t.equal(notScoredProblems, 0, `${m.id}: not-scored outcomes give en+fr reasons and no contribution`);
  t.comment(
    `${m.id}: ${scored}/${outcomes.length} scored; not-scored reasons ${JSON.stringify(Object.fromEntries(reasonCodes))}`,
  );
  return scored;
}

const models = await loadModels('models', engine);

t.test('knee OA progression: additivity and exact linear contributions on 200 patients', async (t) => {
  const model = models.get('knee-oa-progression')!;
  const bundles = generateCohort({ seed: SEED, count: COUNT, now: NOW, kneeOa: true, lesions: 0 });
  const outcomes = await scoreAll(model, kneeCases(bundles));
  t.equal(outcomes.length, COUNT, 'one outcome per patient');
  const scored = checkOutcomes(t, model, outcomes);
  t.ok(scored > 0.8 * COUNT, `${scored}/${COUNT} scored (> 80%)`);
  // The generated knee-OA cohort is (nearly) all inside the population: add patients who are not.
  const outside = [
    ...kneeCases(generateCohort({ seed: SEED + 10, count: 10, now: NOW, kneeOa: true, age: 40 })),
    ...kneeCases(generateCohort({ seed: SEED + 11, count: 10, now: NOW, kneeOa: true, klGrade: 4 })),
    ...kneeCases(generateCohort({ seed: SEED + 12, count: 10, now: NOW, kneeOa: true, age: 60 }), true),
  ];
  const refused = await scoreAll(model, outside);
  t.equal(checkOutcomes(t, model, refused), 0, 'none of the 30 outside patients is scored');
  const codes = refused.map((o) => (o as NotScoredOutcome).reasons.map((r) => r.featureId ?? r.code).join());
  t.same(codes, [...Array<string>(20).fill('out-of-population'), ...Array<string>(10).fill('bmi')]);
  t.match(refused[29], {
    reasons: [
      {
        code: 'missing',
        text: { en: /^Body mass index: not recorded/, fr: /^Indice de masse corporelle : non renseigné/ },
      },
    ],
  });
  const scoredOutcomes = outcomes.filter((o): o is ScoredOutcome => o.status === 'scored');
  const bands = new Set(scoredOutcomes.map((o) => o.band.id));
  t.ok(bands.size >= 2, `the cohort spans several bands (${[...bands].join(', ')})`);
  // Most records lack a KL grade: imputed and flagged, still scored.
  const imputedKl = scoredOutcomes.filter(
    (o) => o.contributions.find((c) => c.id === 'klGrade3')?.status === 'imputed',
  ).length;
  t.ok(imputedKl > 0, `${imputedKl} scored with the KL grade imputed`);
});

t.test('melanoma risk: additivity and exact linear contributions on 200 lesion patients', async (t) => {
  const model = models.get('melanoma-risk')!;
  const bundles = generateCohort({ seed: SEED, count: COUNT, now: NOW, kneeOa: false, lesions: 1 });
  const cases = lesionCases(bundles);
  t.equal(cases.length, COUNT, 'one lesion examination per patient');
  const outcomes = await scoreAll(model, cases);
  const scored = checkOutcomes(t, model, outcomes);
  // The cohort leaves each checklist item unrecorded 5% of the time; the manifest's minimumRecorded
  // asks for all seven, so about 30% of lesions are not scored, all of them for that reason or the guards.
  t.ok(scored > 0.65 * cases.length, `${scored}/${cases.length} scored (> 65%)`);
  const items = model.manifest.minimumRecorded![0]!.features;
  const notScored = outcomes.filter((o): o is NotScoredOutcome => o.status === 'not-scored');
  const incomplete = notScored.filter((o) => o.reasons.some((r) => r.code === 'incomplete'));
  t.ok(incomplete.length > 0, `${incomplete.length} not scored for a checklist item not recorded`);
  t.ok(
    incomplete.every((o) => items.some((id) => o.values.find((v) => v.id === id)?.status !== 'observed')),
    'each of them has a checklist item not recorded',
  );
  const scoredOutcomes = outcomes.filter((o): o is ScoredOutcome => o.status === 'scored');
  t.ok(
    scoredOutcomes.every((o) =>
      items.every((id) => o.contributions.find((c) => c.id === id)?.status === 'observed'),
    ),
    'no lesion is scored with a checklist item imputed',
  );
  t.ok(
    scoredOutcomes.some((o) => o.aboveThreshold) && scoredOutcomes.some((o) => !o.aboveThreshold),
    'risks fall on both sides of the threshold',
  );
});

t.test(
  'scoring all lesions of a patient in one batch gives the same outcomes as one at a time',
  async (t) => {
    const model = models.get('melanoma-risk')!;
    const bundles = generateCohort({ seed: SEED + 2, count: 5, now: NOW, kneeOa: false, lesions: 3 });
    for (const bundle of bundles) {
      const lesions = lesionCases([bundle]);
      t.equal(lesions.length, 3);
      const batch = await scoreSubjects(
        model,
        lesions.map((c) => c.subject),
        lesions[0]!.env,
        NOW,
      );
      t.same(batch, await scoreAll(model, lesions), 'batched outcomes equal single ones');
    }
  },
);

t.test('a birthDate given as a dateTime gives a not-scored outcome, not an exception', async (t) => {
  const bundles = generateCohort({ seed: SEED, count: 3, now: NOW, kneeOa: true, lesions: 1 });
  for (const id of ['knee-oa-progression', 'melanoma-risk']) {
    const model = models.get(id)!;
    const cases = id === 'knee-oa-progression' ? kneeCases(bundles) : lesionCases(bundles);
    const c = cases[0]!;
    const patient = structuredClone(c.env.patient) as Patient;
    patient.birthDate = '1960-05-01T10:00:00Z';
    const env = { ...c.env, patient };
    const subject = id === 'knee-oa-progression' ? patient : c.subject;
    const [outcome] = await scoreSubjects(model, [subject], env, NOW);
    t.equal(outcome!.status, 'not-scored', `${id}: not scored`);
    const o = outcome as NotScoredOutcome;
    t.ok(o.reasons.length > 0, `${id}: with a reason`);
    t.ok(
      o.reasons.every((r) => r.text.en.length > 0 && r.text.fr.length > 0),
      `${id}: reasons in en and fr (${o.reasons.map((r) => r.text.en).join('; ')})`,
    );
    t.notOk('contributions' in o, `${id}: no contribution`);
  }
});

t.test('an estimate or an input beyond the calibrated range of the model card is flagged', async (t) => {
  const card = {
    calibratedRange: {
      risk: { min: 0.035, max: 0.41 },
      inputs: { bmi: { min: 15, max: 44 } },
      source: 'calibration table',
    },
  };
  const label = { en: 'Body mass index', fr: 'Indice de masse corporelle' };
  const bmi = (value: number, status: 'observed' | 'imputed' = 'observed') =>
    ({
      id: 'bmi',
      label,
      unit: 'kg/m2',
      value,
      status,
      state: status === 'observed' ? 'met' : 'stale',
    }) as const;
  t.equal(beyondCalibratedRange(card, 0.2, [bmi(30)]), undefined, 'inside: no flag');
  t.equal(beyondCalibratedRange({}, 0.9, [bmi(60)]), undefined, 'a card stating no range: no flag');
  t.same(beyondCalibratedRange(card, 0.55, [bmi(48)]), {
    risk: { value: 0.55, min: 0.035, max: 0.41 },
    inputs: [{ id: 'bmi', label, value: 48, unit: 'kg/m2', min: 15, max: 44 }],
    source: 'calibration table',
  });
  t.same(beyondCalibratedRange(card, 0.02, [bmi(30)]), {
    risk: { value: 0.02, min: 0.035, max: 0.41 },
    inputs: [],
    source: 'calibration table',
  });
  t.equal(
    beyondCalibratedRange(card, 0.2, [bmi(48, 'imputed')]),
    undefined,
    'an imputed value is not the record’s',
  );
});
