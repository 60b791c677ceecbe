/**
 * The pipeline without Fastify: the stages it runs and times, in order; the audit record built from
 * the findings (risk, band, models) rather than from the rendered cards; an objection recorded as such;
 * validation refusing a request with the catalogue's codes; explanation pages published after the
 * cards are rendered.
 */
import { createHash } from 'node:crypto';
import { compileEgress } from '../src/prefetch/egress.js';
import t from 'tap';
import { serviceCallEvent } from '../src/audit/events.js';
import type { AuditedCard } from '../src/audit/store.js';
import { CdsError } from '../src/errors.js';
import type { ExplanationPublisher } from '../src/explanation-pages/publish.js';
import { type HookCall, type PipelineDeps, runHook } from '../src/pipeline.js';
import { createFhirPath } from '../src/rules/fhirpath.js';
import { loadModels } from '../src/scoring/load.js';
import { loadServices } from '../src/services/load.js';
import { loadValueSets } from '../src/services/value-sets.js';
import { NOW } from './helpers/app.js';
import { lesion, patientView, searchset } from './helpers/hook-request.js';
import { HIGH_RISK, kneeOaCall } from './helpers/knee-oa-call.js';
import { type LogLine, memoryAudit, memoryLog } from './helpers/pipeline.js';

const engine = createFhirPath();
const services = loadServices(
  'cds-services',
  engine,
  loadValueSets('fhir-profiles'),
  await loadModels('models', engine),
);
const knee = services.find((s) => s.definition.id === 'knee-oa-progression')!;
const melanoma = services.find((s) => s.definition.id === 'melanoma-lesion-triage')!;
const client = { iss: 'https://ehr.example.org', tenant: 'hospital-a', sub: null };

function setup(extra: Partial<PipelineDeps> = {}) {
  let n = 0;
  const audit = memoryAudit();
  const lines: LogLine[] = [];
  const deps: PipelineDeps = {
    fhirFetch: async () => {
      throw new Error('everything is prefetched');
    },
    egress: () => compileEgress('none'),
    now: () => NOW,
    uuid: () => `00000000-0000-4000-8000-${String((n += 1)).padStart(12, '0')}`,
    publicUrl: 'https://cds.example.org',
    audit,
    log: memoryLog(lines),
    ...extra,
  };
  return { audit, lines, deps };
}

const kneeCall = (body: unknown): HookCall => ({ service: knee, body, client, language: 'en' });

t.test('every stage runs and is timed under its name, in pipeline order', async (t) => {
  const { deps, lines } = setup();
  const outcome = await runHook(kneeCall(kneeOaCall(HIGH_RISK)), deps);
  t.same(
    outcome.timings.map((s) => s.stage),
    ['validation', 'prefetch', 'rules', 'models', 'explanation', 'cards', 'publish', 'inputs', 'audit'],
  );
  t.ok(
    outcome.timings.every((s) => s.ms >= 0),
    'durations in ms',
  );
  const answered = lines.find((l) => l.message === 'hook answered')!;
  t.equal(answered.level, 'info');
  t.equal(answered.fields.serviceId, 'knee-oa-progression');
  t.equal(answered.fields.hookInstance, '2c3d1f0e-8d4b-4f5e-9d7a-0b1c2d3e4f50');
  t.same(Object.keys(answered.fields.timings as object), [
    'validationMs',
    'prefetchMs',
    'rulesMs',
    'modelsMs',
    'explanationMs',
    'cardsMs',
    'publishMs',
    'inputsMs',
    'auditMs',
  ]);
  t.same(Object.keys(outcome.modelMs), [knee.models[0]!.manifest.id], 'each model that scored is timed');
});

t.test('the audit record is built from the findings: risk, band, models, caller', async (t) => {
  const { deps, audit } = setup();
  const outcome = await runHook(kneeCall(kneeOaCall(HIGH_RISK)), deps);
  t.equal(audit.calls.length, 1);
  t.equal(audit.objections.length, 0);
  const record = audit.calls[0]!;
  const [finding] = outcome.findings;
  const estimate = finding!.models[0]!;
  if (estimate.status !== 'scored') throw new Error(`expected a scored estimate, got ${estimate.status}`);
  const card = record.cards.find((c) => c.model !== undefined)!;
  t.equal(card.model, estimate, "the card's estimate is the finding's");
  t.equal(card.model?.status === 'scored' && card.model.band.id, estimate.band.id);
  t.same(record.caller, { issuer: client.iss, tenant: 'hospital-a' });
  t.same(record.models, [
    {
      id: knee.models[0]!.manifest.id,
      version: knee.models[0]!.manifest.version,
      sha256: knee.models[0]!.sha256,
    },
  ]);
  t.equal(record.inputs, outcome.inputs);
  t.equal(record.at, NOW);
  t.same(
    record.cards.map((c) => c.card),
    outcome.response.cards,
    'the cards recorded are the cards answered',
  );
  const event = serviceCallEvent(record, (id) => `pseudo(${id})`);
  const audited = (event.payload as { cards: AuditedCard[] }).cards.find((c) => c.risk !== undefined)!;
  t.equal(audited.risk, estimate.probability);
  t.equal(audited.uuid, card.card.uuid);
  t.equal(audited.topFactors!.length, Math.min(5, estimate.contributions.length));
});

t.test('an objection: no model runs, no card, and the objection is recorded', async (t) => {
  const { deps, audit } = setup();
  const body = kneeOaCall({ ...HIGH_RISK, objection: true });
  const outcome = await runHook(kneeCall(body), deps);
  t.ok(outcome.objection, 'the Consent was found');
  t.same(
    outcome.findings.flatMap((f) => f.models.map((m) => m.status)),
    ['objection'],
  );
  t.same(outcome.response.cards, []);
  t.same(outcome.modelMs, {});
  t.equal(audit.calls.length, 1, 'the call is recorded too');
  t.same(audit.calls[0]!.cards, []);
  t.equal(audit.objections.length, 1);
  const objection = audit.objections[0]!;
  t.equal(objection.consentId, outcome.objection!.consentId);
  t.same(objection.caller, { issuer: client.iss, tenant: 'hospital-a' });
  t.equal(objection.request.hookInstance, body.hookInstance);
});

t.test('validation refuses a request with the catalogue codes, before anything is audited', async (t) => {
  const cases: [string, unknown, string][] = [
    ['not a hook request', { hook: 'patient-view' }, 'CDS_ERR_REQUEST_INVALID'],
    ['an unknown hook', { ...kneeOaCall(HIGH_RISK), hook: 'chart-open' }, 'CDS_ERR_HOOK_UNKNOWN'],
    ['another hook', { ...kneeOaCall(HIGH_RISK), hook: 'order-sign' }, 'CDS_ERR_HOOK_MISMATCH'],
    [
      'a context without userId',
      { ...kneeOaCall(HIGH_RISK), context: { patientId: 'p' } },
      'CDS_ERR_CONTEXT_INVALID',
    ],
  ];
  for (const [what, body, code] of cases) {
    const { deps, audit, lines } = setup();
    await t.rejects(runHook(kneeCall(body), deps), { code, status: 400 }, what);
    await runHook(kneeCall(body), deps).catch((error: unknown) => t.type(error, CdsError, what));
    t.same(audit.calls, [], `${what}: nothing audited`);
    t.same(lines, [], `${what}: nothing logged`);
  }
});

t.test('a client-less call (authentication disabled) is recorded without a caller', async (t) => {
  const { deps, audit } = setup();
  const body = patientView({ lesions: searchset([lesion({ items: { changeSize: true } })]) });
  const outcome = await runHook({ service: melanoma, body, client: null, language: 'fr' }, deps);
  t.ok(outcome.response.cards.length > 0);
  t.same(audit.calls[0]!.caller, { issuer: null, tenant: null });
  const findingModels = outcome.findings.flatMap((f) => f.models);
  t.ok(
    audit.calls[0]!.cards.every((c) => c.model === undefined || findingModels.includes(c.model)),
    "each card's estimate, if any, is one of the findings'",
  );
});

t.test('explanation pages: published after rendering, linked before the model card', async (t) => {
  const published: { uuid: string; summary: string; model: unknown }[] = [];
  const explanations: ExplanationPublisher = {
    publish(uuid, explanation, summary) {
      published.push({ uuid, summary, model: explanation.model });
      return `https://cds.example.org/explanations/${uuid}`;
    },
  };
  const { deps } = setup({ explanations });
  const outcome = await runHook(kneeCall(kneeOaCall(HIGH_RISK)), deps);
  const issued = outcome.cards.find((c) => c.model !== undefined)!;
  t.same(published, [{ uuid: issued.card.uuid, summary: issued.card.summary, model: issued.model }]);
  const links = issued.card.links!.map((l) => l.url);
  t.equal(links.at(-2), `https://cds.example.org/explanations/${issued.card.uuid}`);
  t.match(links.at(-1), /\/models\/.+\/model-card$/);
  const { deps: without } = setup();
  const plain = await runHook(kneeCall(kneeOaCall(HIGH_RISK)), without);
  const card = plain.cards.find((c) => c.model !== undefined)!.card;
  t.equal(card.links!.length, issued.card.links!.length - 1, 'no publisher: no page, no link');
});

t.test('the inputs hash: the bytes when the caller has them, else the canonical form', async (t) => {
  const body = kneeOaCall(HIGH_RISK);
  const text = JSON.stringify(body);
  const raw = await runHook({ ...kneeCall(body), rawBody: text }, setup().deps);
  t.equal(raw.inputs.method, 'sha256-raw');
  t.equal(raw.inputs.sha256, createHash('sha256').update(text).digest('hex'));
  t.equal(raw.inputs.fetched, undefined, 'nothing fetched');
  const parsed = await runHook(kneeCall(body), setup().deps);
  t.equal(parsed.inputs.method, 'sha256-canonical', 'a batch tool hands a parsed body');
  t.same(parsed.inputs.references, raw.inputs.references, 'the same references either way');

  // A key fetched by a fetcher that keeps no bytes (a fake): the canonical form, not a partial hash.
  const { deps } = setup({
    fhirFetch: async () => ({ ok: true, value: null, pages: 1, bytes: 0 }),
    egress: () => compileEgress('any'),
  });
  const { consent: _, ...prefetch } = body.prefetch as Record<string, unknown>;
  const fetching = await runHook(
    {
      ...kneeCall({ ...body, prefetch, fhirServer: 'https://fhir.example.org/r4' }),
      rawBody: text,
    },
    deps,
  );
  t.equal(fetching.inputs.method, 'sha256-canonical');
});
