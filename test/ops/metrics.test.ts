/**
 * GET /metrics after a few calls: the exact counts of cards by indicator, 412s, feedback outcomes and
 * prefetch keys, a histogram per stage and per model, the audit backlog; and the optional Bearer token.
 */
import type { FastifyInstance } from 'fastify';
import t from 'tap';
import { buildTestApp } from '../helpers/app.js';
import { lesion, patientView, searchset } from '../helpers/hook-request.js';

const MELANOMA = '/cds-services/melanoma-lesion-triage';
const TOKEN = 'm'.repeat(32);

const referral = () =>
  patientView({
    lesions: searchset([lesion({ items: { changeSize: true, irregularColour: true, inflammation: true } })]),
    patient: null,
  });

/** The value of one sample line, e.g. `cds_cards_total{service="x",indicator="warning"}`. */
function sample(text: string, series: string): number | undefined {
  const line = text.split('\n').find((l) => l.startsWith(`${series} `));
  return line === undefined ? undefined : Number(line.slice(series.length + 1));
}

async function scrape(app: FastifyInstance, headers: Record<string, string> = {}): Promise<string> {
  const res = await app.inject({ method: 'GET', url: '/metrics', headers });
  if (res.statusCode !== 200) throw new Error(`/metrics answered ${res.statusCode}: ${res.body}`);
  return res.body;
}

t.test('calls, a 412 and feedback show up with exact counts', async (t) => {
  const { app } = await buildTestApp();
  t.teardown(() => app.close());

  const cardsSeen: Record<string, number> = {};
  const uuids: string[] = [];
  for (let i = 0; i < 2; i++) {
    const res = await app.inject({ method: 'POST', url: MELANOMA, payload: referral() });
    t.equal(res.statusCode, 200);
    for (const card of res.json().cards as { indicator: string; uuid: string }[]) {
      cardsSeen[card.indicator] = (cardsSeen[card.indicator] ?? 0) + 1;
      uuids.push(card.uuid);
    }
  }
  // No lesions sent and no fhirServer to fetch them from: the `fail` key gives a 412.
  const refused = await app.inject({ method: 'POST', url: MELANOMA, payload: patientView({}) });
  t.equal(refused.statusCode, 412);
  const unknown = await app.inject({ method: 'POST', url: '/cds-services/nope', payload: referral() });
  t.equal(unknown.statusCode, 404);

  const outcome = (card: string, what: 'accepted' | 'overridden') => ({
    card,
    outcome: what,
    outcomeTimestamp: '2026-11-22T09:31:00Z',
  });
  const feedback = [outcome(uuids[0]!, 'overridden'), outcome(uuids[1]!, 'overridden')];
  for (let i = 0; i < 2; i++) {
    const res = await app.inject({ method: 'POST', url: `${MELANOMA}/feedback`, payload: { feedback } });
    t.equal(res.statusCode, 200, res.body);
  }

  const res = await app.inject({ method: 'GET', url: '/metrics' });
  t.equal(res.statusCode, 200);
  t.match(res.headers['content-type'], /^text\/plain; version=0\.0\.4/);
  const text = res.body;
  const svc = 'service="melanoma-lesion-triage"';

  t.ok(Object.keys(cardsSeen).length > 0, 'the calls returned cards');
  for (const [indicator, count] of Object.entries(cardsSeen)) {
    t.equal(sample(text, `cds_cards_total{${svc},indicator="${indicator}"}`), count, `${indicator} cards`);
  }
  t.equal(sample(text, 'cds_errors_total{code="CDS_ERR_PREFETCH_UNAVAILABLE",status="412"}'), 1);
  t.equal(sample(text, 'cds_errors_total{code="CDS_ERR_SERVICE_NOT_FOUND",status="404"}'), 1);
  t.equal(sample(text, `cds_service_calls_total{${svc},status="200"}`), 2);
  t.equal(sample(text, `cds_service_calls_total{${svc},status="412"}`), 1);
  t.equal(sample(text, 'cds_service_calls_total{service="unknown",status="404"}'), 1);
  t.equal(sample(text, 'cds_http_requests_total{route="/cds-services/:id",method="POST",status="200"}'), 2);

  t.equal(sample(text, `cds_feedback_items_total{${svc},outcome="overridden"}`), 4);
  t.equal(sample(text, `cds_feedback_items_total{${svc},outcome="accepted"}`), undefined);
  t.equal(sample(text, `cds_feedback_duplicates_total{${svc}}`), 2, 'the retried batch: two duplicates');

  // Per call, lesions and patient sent (patient as null: known absent); conditions, skin and consent
  // neither sent nor fetchable (no fhirServer). The refused call is not counted here.
  t.equal(sample(text, `cds_prefetch_keys_total{${svc},source="sent"}`), 4);
  t.equal(sample(text, `cds_prefetch_keys_total{${svc},source="fetched"}`), 0);
  t.equal(sample(text, `cds_prefetch_keys_total{${svc},source="unavailable"}`), 6);

  for (const stage of ['prefetch', 'rules', 'models', 'cards', 'inputs']) {
    t.equal(sample(text, `cds_service_stage_duration_seconds_count{${svc},stage="${stage}"}`), 2, stage);
  }
  t.equal(sample(text, `cds_service_stage_duration_seconds_count{${svc},stage="total"}`), 3);
  t.match(
    text,
    /^cds_service_stage_duration_seconds_bucket\{le="0\.5",service="melanoma-lesion-triage",stage="models"\} 2$/m,
  );

  // The writer's figures: the two answered calls (feedback is stored directly, in its transaction).
  t.equal(sample(text, 'cds_audit_written_events'), 2);
  t.equal(sample(text, 'cds_audit_pending_events'), 0);
  t.equal(sample(text, 'cds_audit_refused_events'), 0);
  t.equal(sample(text, 'cds_audit_failing'), 0);
  t.equal(sample(text, 'cds_audit_rejected_events'), 0);
});

t.test('model inference time is a histogram per model, observed only when the model scored', async (t) => {
  const { app } = await buildTestApp();
  t.teardown(() => app.close());
  const series = 'cds_model_inference_duration_seconds_count{model="melanoma-risk"}';
  // Without conditions, skin and consent (unavailable) the model does not run: nothing is observed.
  const partial = await app.inject({ method: 'POST', url: MELANOMA, payload: referral() });
  t.equal(partial.statusCode, 200);
  t.equal(sample(await scrape(app), series), undefined);
  const complete = referral();
  complete.prefetch = {
    ...complete.prefetch,
    conditions: searchset([]),
    skin: searchset([]),
    consent: searchset([]),
  };
  for (let i = 0; i < 3; i++) {
    const res = await app.inject({ method: 'POST', url: MELANOMA, payload: complete });
    t.equal(res.statusCode, 200);
  }
  const text = await scrape(app);
  t.equal(sample(text, series), 3);
  t.ok(sample(text, 'cds_model_inference_duration_seconds_sum{model="melanoma-risk"}')! > 0);
});

t.test('with metricsToken set, /metrics needs it as a Bearer token', async (t) => {
  const { app } = await buildTestApp({ metricsToken: TOKEN });
  t.teardown(() => app.close());
  const none = await app.inject({ method: 'GET', url: '/metrics' });
  t.equal(none.statusCode, 401);
  t.equal(none.json().issue[0].details.coding[0].code, 'CDS_ERR_OPS_UNAUTHORIZED');
  t.equal(none.headers['www-authenticate'], 'Bearer realm="cds-operations"');
  const wrong = await app.inject({
    method: 'GET',
    url: '/metrics',
    headers: { authorization: `Bearer ${'x'.repeat(32)}` },
  });
  t.equal(wrong.statusCode, 401);
  const text = await scrape(app, { authorization: `Bearer ${TOKEN}` });
  // The refusals above are counted too.
  t.equal(sample(text, 'cds_errors_total{code="CDS_ERR_OPS_UNAUTHORIZED",status="401"}'), 2);
  t.match(text, /^process_cpu_seconds_total /m, 'process metrics are there');
});

t.test('two apps in one process keep separate counters', async (t) => {
  const one = await buildTestApp();
  const two = await buildTestApp();
  t.teardown(() => Promise.all([one.app.close(), two.app.close()]));
  await one.app.inject({ method: 'GET', url: '/health/live' });
  const route = 'cds_http_requests_total{route="/health/live",method="GET",status="200"}';
  t.equal(sample(await scrape(one.app), route), 1);
  t.equal(sample(await scrape(two.app), route), undefined);
});
