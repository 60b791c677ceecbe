/**
 * The audit trail through the app: what a service call records, and what happens when the store goes
 * down and comes back (calls answered and their records written later; feedback refused with a 503).
 */
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import type { FastifyInstance } from 'fastify';
import t from 'tap';
import { SYSTEM } from '../../src/codes.js';
import { loadModels } from '../../src/scoring/load.js';
import { loadServices } from '../../src/services/load.js';
import { loadValueSets } from '../../src/services/value-sets.js';
import { openAuditTrail } from '../../src/audit/audit-trail.js';
import { createHash } from 'node:crypto';
import { pseudonymiser } from '../../src/audit/pseudonym.js';
import { type AuditStore, openStore } from '../../src/audit/store.js';
import { verifyStore } from '../../tools/audit-verify.js';
import { buildTestApp, NOW, tempDir, testSqliteWorker } from '../helpers/app.js';
import { lesion, PATIENT_ID, patientView, searchset } from '../helpers/hook-request.js';
import { createFhirPath } from '../../src/rules/fhirpath.js';

/** The FHIRPath engine of this file's loads. */
const engine = createFhirPath();

const URL = '/cds-services/melanoma-lesion-triage';
const KEY = 'x'.repeat(32);

const exam = () => lesion({ items: { changeSize: true, irregularColour: true } });

/** A real store that can be switched off. */
function switchable(store: AuditStore) {
  const state = { down: false };
  const guard =
    <A extends unknown[], R>(fn: (...args: A) => Promise<R>) =>
    async (...args: A): Promise<R> => {
      if (state.down) throw Object.assign(new Error('connect ECONNREFUSED'), { code: 'ECONNREFUSED' });
      return fn(...args);
    };
  const wrapped: AuditStore = {
    kind: store.kind,
    append: guard(store.append),
    findCards: guard(store.findCards),
    findExplanation: guard(store.findExplanation),
    eventsFor: guard(store.eventsFor),
    analytics: guard(store.analytics),
    predictions: guard(store.predictions),
    findingFeedback: guard(store.findingFeedback),
    readChain: guard(store.readChain),
    chainHead: guard(store.chainHead),
    chainBase: guard(store.chainBase),
    retentionBoundary: guard(store.retentionBoundary),
    removeArchived: guard(store.removeArchived),
    rememberJti: guard(store.rememberJti),
    ping: guard(store.ping),
    close: store.close,
  };
  return { store: wrapped, state };
}

/** The body sent, as bytes: what the audit hashes (`sha256-raw`). */
const bodyOf = (patientId: string) => {
  const request = patientView({ lesions: searchset([exam()]) });
  request.context.patientId = patientId;
  // Spaced out as no serialiser would: the hash is of the bytes as received, not of a re-serialised form.
  return JSON.stringify(request, null, 3);
};

const call = (app: FastifyInstance, patientId = PATIENT_ID) =>
  app.inject({
    method: 'POST',
    url: URL,
    headers: { 'content-type': 'application/json' },
    payload: bodyOf(patientId),
  });

async function until(condition: () => boolean | Promise<boolean>, timeoutMs = 3000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await condition())) {
    if (Date.now() > deadline) throw new Error('condition not met in time');
    await new Promise((r) => setTimeout(r, 10));
  }
}

t.test('a service call is recorded before it is answered, with what is needed to explain it', async (t) => {
  const dataDir = tempDir();
  const { app } = await buildTestApp({ dataDir, auditPseudonymKey: KEY });
  t.teardown(() => app.close());
  const res = await call(app);
  t.equal(res.statusCode, 200);
  // The referral card alone: no model card beside a checklist that reached its threshold (issue 15).
  const [card, ...others] = res.json().cards;
  t.same(others, []);
  const store = await openStore({ dataDir }, { worker: testSqliteWorker });
  t.teardown(() => store.close());
  const [row] = await store.readChain(0, 10);
  t.equal(row!.kind, 'service-call');
  t.equal(row!.pseudonym, pseudonymiser(Buffer.from(KEY))(PATIENT_ID));
  const payload = JSON.parse(row!.payload);
  t.equal(payload.hook, 'patient-view');
  t.equal(payload.hookInstance, 'd1577c69-dfbe-44ad-ba6d-3e05e953b2ea');
  t.same(payload.caller, { issuer: null, tenant: null });
  t.equal(payload.service.id, 'melanoma-lesion-triage');
  t.match(payload.service.sha256, /^[0-9a-f]{64}$/);
  t.same(
    payload.models.map((m: { id: string; version: string }) => `${m.id} ${m.version}`),
    ['melanoma-risk 1.0.0'],
  );
  t.match(payload.models[0].sha256, /^[0-9a-f]{64}$/);
  t.same(payload.inputs, {
    // Nothing was fetched (no fhirServer): the hash is the sha256sum of the request body as sent.
    sha256: createHash('sha256').update(bodyOf(PATIENT_ID)).digest('hex'),
    method: 'sha256-raw',
    references: ['Observation/lesion-1'],
  });
  t.same(payload.cards, [
    {
      uuid: card.uuid,
      indicator: 'warning',
      summary: card.summary,
      suggestions: card.suggestions.map((s: { uuid: string }) => s.uuid),
      finding: 'refer@Observation/lesion-1',
    },
  ]);
  t.ok(payload.latencyMs > 0 && payload.latencyMs < 5000);
});

t.test('the database holds no patient id, no resource body and no card detail', async (t) => {
  const dataDir = tempDir();
  const { app } = await buildTestApp({ dataDir });
  const request = patientView({
    lesions: searchset([
      lesion({ site: 'left-shoulder-blade', items: { changeSize: true, irregularColour: true } }),
    ]),
  });
  request.context.patientId = 'patient-zz-9876';
  const res = await app.inject({ method: 'POST', url: URL, payload: request });
  t.equal(res.statusCode, 200);
  await app.close();
  const bytes = readdirSync(dataDir)
    .map((f) => readFileSync(join(dataDir, f)).toString('latin1'))
    .join('');
  t.match(bytes, /melanoma-lesion-triage/, 'the files were read');
  t.notMatch(bytes, /patient-zz-9876/);
  t.notMatch(bytes, /Weighted 7-point checklist: 4/, 'no card detail');
  t.notMatch(bytes, /7pcl-change-size|"bodySite"|"component"/, 'no resource body');
});

t.test(
  'with the store down: calls are answered, records wait in order; feedback is a 503; then all is written',
  async (t) => {
    const dataDir = tempDir();
    const real = await openStore({ dataDir }, { worker: testSqliteWorker });
    const { store, state } = switchable(real);
    const { app, logs } = await buildTestApp(
      { dataDir, auditPseudonymKey: KEY },
      { store, auditRetryMs: 20 },
    );
    t.teardown(() => app.close());
    const before = await call(app, 'pat-0');
    t.equal(before.statusCode, 200);

    state.down = true;
    const during = await Promise.all(['pat-1', 'pat-2', 'pat-3'].map((p) => call(app, p)));
    t.same(
      during.map((r) => r.statusCode),
      [200, 200, 200],
      'service calls are still answered',
    );
    t.same(
      during.map((r) => r.json().cards.length),
      [1, 1, 1],
    );
    const card = during[0]!.json().cards[0];
    const body = {
      feedback: [
        {
          card: card.uuid,
          outcome: 'overridden',
          overrideReason: { reason: { system: SYSTEM.overrideReason, code: 'already-handled' } },
          outcomeTimestamp: '2026-11-22T09:35:00Z',
        },
      ],
    };
    const feedback = await app.inject({ method: 'POST', url: `${URL}/feedback`, payload: body });
    t.equal(feedback.statusCode, 503);
    t.equal(feedback.json().issue[0].details.coding[0].code, 'CDS_ERR_STORE_UNAVAILABLE');
    t.equal(feedback.json().issue[0].code, 'transient');
    t.equal(feedback.headers['retry-after'], '5', 'with Retry-After');
    const error = logs().find((l) => l.msg === 'audit records cannot be written');
    t.ok(error, 'the outage is logged');
    t.equal(error!.level, 50);
    t.equal(error!.error, 'ECONNREFUSED');
    t.equal(error!.pending, 1);

    state.down = false;
    await until(async () => (await real.chainHead())?.seq === 4);
    const rows = await real.readChain(0, 10);
    const pseudonymise = pseudonymiser(Buffer.from(KEY));
    t.same(
      rows.map((r) => r.pseudonym),
      ['pat-0', 'pat-1', 'pat-2', 'pat-3'].map(pseudonymise),
      'written in the order the calls were answered',
    );
    t.ok(logs().some((l) => l.msg === 'audit store available again; queued records written'));
    const retried = await app.inject({ method: 'POST', url: `${URL}/feedback`, payload: body });
    t.equal(retried.statusCode, 200, 'the card issued during the outage now takes feedback');
    t.equal((await verifyStore(real)).ok, true);
  },
);

t.test('a store that answers but refuses an operation is a 500, not an outage', async (t) => {
  const real = await openStore({ dataDir: tempDir() }, { worker: testSqliteWorker });
  const store: AuditStore = {
    ...real,
    findCards: async () => {
      throw new Error('no such column: card_uuid');
    },
  };
  const { app, logs } = await buildTestApp({}, { store });
  t.teardown(() => app.close());
  const res = await app.inject({
    method: 'POST',
    url: `${URL}/feedback`,
    payload: {
      feedback: [
        {
          card: 'c',
          outcome: 'overridden',
          overrideReason: { userComment: 'x' },
          outcomeTimestamp: '2026-11-22T09:35:00Z',
        },
      ],
    },
  });
  t.equal(res.statusCode, 500);
  t.ok(logs().some((l) => l.msg === 'unexpected error'));
});

t.test('start-up stops when PostgreSQL is configured without a pseudonym key', async (t) => {
  await t.rejects(buildTestApp({ databaseUrl: 'postgres://postgres@127.0.0.1:1/none' }), {
    message: /auditPseudonymKey \(CDS_AUDIT_PSEUDONYM_KEY\) must be set when DATABASE_URL is/,
  });
});

t.test('start-up stops when PostgreSQL cannot be reached', async (t) => {
  await t.rejects(
    buildTestApp({ databaseUrl: 'postgres://postgres@127.0.0.1:1/none', auditPseudonymKey: KEY }),
    {
      message: /^cannot reach PostgreSQL: /,
    },
  );
});

t.test('an objection is recorded with the Consent and the pseudonym, nothing clinical', async (t) => {
  const service = loadServices(
    'cds-services',
    engine,
    loadValueSets('fhir-profiles'),
    await loadModels('models', engine),
  ).find((s) => s.definition.id === 'melanoma-lesion-triage')!;
  const lines: string[] = [];
  const log = {
    warn: () => lines.push('warn'),
    error: () => lines.push('error'),
    info: () => lines.push('info'),
  };
  const audit = await openAuditTrail(
    { dataDir: tempDir(), auditPseudonymKey: KEY, auditQueueMax: 10 },
    { log },
  );
  t.teardown(() => audit.close());
  const request = patientView({ lesions: searchset([exam()]) });
  await audit.recordObjection({
    service: service!,
    request,
    consentId: 'consent-7',
    caller: { issuer: 'https://ehr.example', tenant: null },
    at: NOW,
  });
  const events = await audit.use((store) => store.eventsFor(audit.pseudonymise(PATIENT_ID)));
  t.same(events, [
    {
      seq: 1,
      kind: 'objection',
      at: '2026-11-22T09:30:00.000Z',
      serviceId: 'melanoma-lesion-triage',
      pseudonym: pseudonymiser(Buffer.from(KEY))(PATIENT_ID),
      payload: {
        hook: 'patient-view',
        hookInstance: 'd1577c69-dfbe-44ad-ba6d-3e05e953b2ea',
        consent: 'Consent/consent-7',
        caller: { issuer: 'https://ehr.example', tenant: null },
      },
    },
  ]);
  t.same(audit.backlog(), { pending: 0, spilled: 0, refused: 0, rejected: 0, written: 1 });
  t.same(lines, []);
});
