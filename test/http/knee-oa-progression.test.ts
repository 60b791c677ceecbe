import t from 'tap';
import { EXPLANATION_EXTENSION } from '../../src/explain/explain.js';
import type { PatientOptions } from '../../tools/synthetic/patients.js';
import { assertConforms, buildTestApp } from '../helpers/app.js';
import { HIGH_RISK as HIGH, KNEE_OA_URL as URL, kneeOaCall } from '../helpers/knee-oa-call.js';

/** A generated patient and the hook request carrying its whole record as prefetch. */
function call(options: PatientOptions, seed = 1) {
  const payload = kneeOaCall(options, seed);
  return { patientId: payload.context.patientId, payload };
}

t.test('a knee-OA patient with many risk factors gets a warning card that explains itself', async (t) => {
  const { app } = await buildTestApp({ publicUrl: 'https://cds.example.org' });
  t.teardown(() => app.close());
  const res = await app.inject({ method: 'POST', url: URL, payload: call(HIGH).payload });
  t.equal(res.statusCode, 200);
  const body = res.json();
  assertConforms('HookResponse', body);
  t.equal(body.cards.length, 1);
  const card = body.cards[0];
  t.equal(card.indicator, 'warning');
  t.match(
    card.summary,
    /^Knee OA: estimated \d+% risk of rapid progression within 24 months \(higher risk; demonstration model\)$/,
  );
  t.ok(card.summary.length < 140);
  t.equal(
    card.source.label,
    'Knee OA progression (demonstration model) 1.0.0: Demonstration model trained on simulated data. Not validated; not for clinical use.',
  );
  t.equal(card.source.url, 'https://cds.example.org/models/knee-oa-progression/model-card');
  t.same(card.links.at(-1), {
    label: 'Model card: Knee OA progression (demonstration model)',
    url: 'https://cds.example.org/models/knee-oa-progression/model-card',
    type: 'absolute',
  });
  const explanation = card.extension[EXPLANATION_EXTENSION];
  const model = explanation.model;
  t.equal(model.status, 'scored');
  t.equal(model.model.id, 'knee-oa-progression');
  t.match(model.model.sha256, /^[0-9a-f]{64}$/);
  t.equal(model.band.id, 'higher');
  t.ok(model.probability >= 0.25);
  // Additivity: baseline + contributions = the model's logit.
  const sum = model.contributions.reduce((s: number, c: { contribution: number }) => s + c.contribution, 0);
  t.ok(Math.abs(1 / (1 + Math.exp(-(model.baselineLogit + sum))) - model.probability) < 1e-6);
  const bmi = model.contributions.find((c: { id: string }) => c.id === 'bmi');
  t.equal(bmi.value, 36);
  t.equal(bmi.direction, 'raises');
  t.match(bmi.date, /^\d{4}-\d{2}-\d{2}/);
  const kl = model.contributions.find((c: { id: string }) => c.id === 'klGrade3');
  t.equal(kl.status, 'observed');
  // The detail: the top factors with value, human unit and date, the gaps, the population; the table,
  // the patient sentences and the provenance are on the explanation page and in the extension.
  t.match(
    card.detail,
    /^- ↑ Raised by: [^\n]*Pain score \(0-10\) 9 out of 10 \\\(\d{4}\\-\d{2}\\-\d{2}\\\)/m,
  );
  t.notMatch(card.detail, /\d[.,]\d{3,}/, 'no raw float');
  t.match(card.detail, /Population: adults aged 45 to 79/);
  t.notMatch(card.detail, /For the patient|Pour le patient|\| Factor \||kg\/m2|\{score\}|\(true\)/);
  t.same(
    card.suggestions.map((s: { label: string }) => s.label),
    [
      'Refer to a physiotherapy exercise programme',
      'Offer a weight management programme (if overweight)',
      'Give osteoarthritis self-management information',
    ],
  );
  t.notMatch(JSON.stringify(card), /surgery|arthroplasty|chirurgi/i, 'never surgery');
});

t.test('an estimate and a BMI beyond the calibrated range of the model card are flagged', async (t) => {
  const { app } = await buildTestApp();
  t.teardown(() => app.close());
  const res = await app.inject({ method: 'POST', url: URL, payload: call({ ...HIGH, bmi: 50 }).payload });
  t.equal(res.statusCode, 200);
  const card = res.json().cards[0];
  const model = card.extension[EXPLANATION_EXTENSION].model;
  t.ok(model.probability > 0.41, `a risk above the calibrated 41 % (${model.probability})`);
  t.match(model.beyondCalibratedRange, {
    risk: { value: model.probability, min: 0.035, max: 0.41 },
    inputs: [{ id: 'bmi', value: 50, unit: 'kg/m2', min: 15, max: 44 }],
    source: /calibration table/,
  });
  t.match(
    card.detail,
    /^- \*\*Beyond the calibrated range of the model card\*\*: \d+% \(calibrated 4%–41%\); Body mass index 50 kg\/m² \(calibrated 15–44\): the estimate is less reliable there$/m,
  );

  // Inside the range: no flag.
  const inside = await app.inject({
    method: 'POST',
    url: URL,
    payload: call({ ...HIGH, bmi: 30, painScore: 2, diabetes: false, handOa: false, kneeInjury: false })
      .payload,
  });
  const insideModel = inside.json().cards[0].extension[EXPLANATION_EXTENSION].model;
  t.ok(insideModel.probability >= 0.035 && insideModel.probability <= 0.41, `${insideModel.probability}`);
  t.equal(insideModel.beyondCalibratedRange, undefined);
  t.notMatch(inside.json().cards[0].detail, /calibrated range/);
});

t.test('a missing Kellgren-Lawrence grade is imputed and the card says so', async (t) => {
  const { app } = await buildTestApp();
  t.teardown(() => app.close());
  const res = await app.inject({
    method: 'POST',
    url: URL,
    payload: call({ ...HIGH, klGrade: null }).payload,
    headers: { 'accept-language': 'fr' },
  });
  const card = res.json().cards[0];
  const kl = card.extension[EXPLANATION_EXTENSION].model.contributions.find(
    (c: { id: string }) => c.id === 'klGrade3',
  );
  t.same([kl.status, kl.imputedBecause, kl.value], ['imputed', 'missing', 0.54]);
  t.match(card.detail, /Non renseigné\u00a0: Grade Kellgren-Lawrence 3 \(valeur habituelle utilisée\)/);
  t.notMatch(card.detail, /0[.,]54/, 'the imputed share is not shown as a value');
  t.match(card.summary, /^Gonarthrose\u00a0: risque estimé \d+\u00a0% de progression rapide à 24 mois/);
});

t.test('outside the population (age 82): no score, and an info card that says why', async (t) => {
  const { app } = await buildTestApp();
  t.teardown(() => app.close());
  const res = await app.inject({ method: 'POST', url: URL, payload: call({ ...HIGH, age: 82 }).payload });
  t.equal(res.statusCode, 200);
  const [card, ...rest] = res.json().cards;
  t.equal(rest.length, 0);
  t.equal(card.indicator, 'info');
  t.equal(
    card.summary,
    'Knee OA: no risk estimate, age outside 45-79 years, the population the model was trained on',
  );
  const model = card.extension[EXPLANATION_EXTENSION].model;
  t.equal(model.status, 'not-scored');
  t.same(
    model.reasons.map((r: { code: string }) => r.code),
    ['out-of-population'],
  );
  t.match(
    card.detail,
    /\*\*No estimate\*\*: age outside 45\\-79 years, the population the model was trained on\./,
  );
  t.notOk('contributions' in model, 'no contribution without a score');
});

t.test('no BMI in the last two years: no score, the stale input is named', async (t) => {
  const { app } = await buildTestApp();
  t.teardown(() => app.close());
  const { payload } = call(HIGH);
  const observations = payload.prefetch.observations;
  for (const entry of observations.entry ?? []) {
    const o = entry.resource as unknown as {
      code: { coding: { code: string }[] };
      effectiveDateTime?: string;
    };
    if (['39156-5', '29463-7', '8302-2'].includes(o.code.coding[0]!.code)) o.effectiveDateTime = '2023-01-10';
  }
  const res = await app.inject({ method: 'POST', url: URL, payload });
  const card = res.json().cards[0];
  const model = card.extension[EXPLANATION_EXTENSION].model;
  t.equal(model.status, 'not-scored');
  t.equal(model.reasons[0].code, 'stale');
  // The summary states the reason, in human units, with the date of the stale value (issue 15).
  t.match(
    card.summary,
    /^Knee OA: no risk estimate, Body mass index: too old \(\d+(\.\d)? kg\/m², 2023-01-10\)$/,
  );
  t.match(model.reasons[0].text.en, /^Body mass index: too old \(/);
});

t.test('a patient without knee osteoarthritis gets no card', async (t) => {
  const { app } = await buildTestApp();
  t.teardown(() => app.close());
  const res = await app.inject({
    method: 'POST',
    url: URL,
    payload: call({ kneeOa: false, lesions: 0, age: 60 }).payload,
  });
  t.equal(res.statusCode, 200);
  t.same(res.json(), { cards: [] });
});

t.test(
  'an active objection to algorithmic processing: no model runs, no card, the audit records it',
  async (t) => {
    const token = 'g'.repeat(40);
    const { app, logs } = await buildTestApp({ analyticsToken: token });
    t.teardown(() => app.close());
    const { payload, patientId } = call({ ...HIGH, objection: true });
    const res = await app.inject({ method: 'POST', url: URL, payload });
    t.equal(res.statusCode, 200);
    t.same(res.json(), { cards: [] });
    const answered = logs().find((l) => l.msg === 'hook answered');
    t.equal(answered?.cards, 0);
    const exported = await app.inject({
      method: 'POST',
      url: '/analytics/patient-export',
      headers: { authorization: `Bearer ${token}` },
      payload: { patientId },
    });
    t.equal(exported.statusCode, 200);
    const events = exported.json().events as { kind: string }[];
    t.same(
      events.map((e) => e.kind),
      ['service-call', 'objection'],
    );
    t.notOk(JSON.stringify(events).includes(patientId), 'the audit holds a pseudonym, not the patient id');
  },
);

t.test('observations the EHR could not provide: no score, and the card names the data', async (t) => {
  const { app } = await buildTestApp();
  t.teardown(() => app.close());
  const { payload } = call(HIGH);
  const { observations: _omitted, ...prefetch } = payload.prefetch;
  const res = await app.inject({ method: 'POST', url: URL, payload: { ...payload, prefetch } });
  t.equal(res.statusCode, 200);
  const model = res.json().cards[0].extension[EXPLANATION_EXTENSION].model;
  t.equal(model.status, 'not-scored');
  t.equal(model.reasons[0].text.en, 'BMI, weight, height, pain score and KL grade: not available');
});

t.test('model cards are served, public, as markdown and JSON', async (t) => {
  const { app } = await buildTestApp();
  t.teardown(() => app.close());
  const list = await app.inject({ method: 'GET', url: '/models' });
  t.equal(list.statusCode, 200);
  t.same(
    list.json().models.map((m: { id: string; status: string }) => [m.id, m.status]),
    [
      ['knee-oa-progression', 'demonstration'],
      ['melanoma-risk', 'demonstration'],
    ],
  );
  const md = await app.inject({ method: 'GET', url: '/models/knee-oa-progression/model-card' });
  t.equal(md.statusCode, 200);
  t.match(md.headers['content-type'], /^text\/markdown/);
  t.match(md.body, /Demonstration model trained on simulated data/);
  const json = await app.inject({ method: 'GET', url: '/models/melanoma-risk/model-card.json' });
  t.equal(json.statusCode, 200);
  t.equal(json.json().id, 'melanoma-risk');
  const missing = await app.inject({ method: 'GET', url: '/models/nope/model-card' });
  t.equal(missing.statusCode, 404);
  t.equal(missing.json().resourceType, 'OperationOutcome');
});
