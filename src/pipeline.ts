/**
 * The only orchestrator of a hook call, in order: authenticate → validation → prefetch → (terminology,
 * with a terminology server in validate mode) → rules → models → explanation → cards → publish
 * (explanation pages) → inputs (hash for the audit) → audit.
 * Framework-free: the HTTP shell, tests and batch or replay tools call it alike, and all of them are
 * audited. One read-only value per focus, the `Finding`, flows from stage to stage; each stage is timed
 * under its own name (`timing.ts`), so the names in logs, /metrics and the benchmark are the ones here.
 */
import type { AuditTrail } from './audit/audit-trail.js';
import { encounterOf, type ServiceCallRecord } from './audit/events.js';
import { predictionsOf, type PredictionRecord } from './audit/predictions.js';
import { digestInputs, type InputsDigest, type RawInputs } from './audit/inputs.js';
import type { Caller, ModelRef } from './audit/store.js';
import type { CdsClient } from './auth/verify.js';
import { notEvaluableCard } from './cards/not-evaluable.js';
import { type IssuedCard, issueCards } from './cards/render.js';
import { alertFatigueOf, type SuppressedCard, suppressCards } from './cards/suppression.js';
import type { HookRequest, HookResponse } from './cds-hooks.js';
import { explainFinding } from './explain/explain.js';
import { type ExplanationPublisher, publishExplanations } from './explanation-pages/publish.js';
import type { Finding } from './finding.js';
import type { Language } from './language.js';
import { consideredDraftOrders } from './orders/draft-orders.js';
import type { EgressPolicy } from './prefetch/egress.js';
import type { FhirFetch } from './prefetch/fhir-fetch.js';
import { type ResolvedPrefetch, resolvePrefetch } from './prefetch/resolve.js';
import { validateHookRequest } from './request/validate.js';
import { evaluateRules } from './rules/evaluate.js';
import { scoreFocuses } from './scoring/focuses.js';
import type { CompiledService } from './services/load.js';
import { terminologyCheck } from './terminology/stage.js';
import { createStageTimer, type StageTimer, type StageTiming, timingFields } from './timing.js';

/** One call to one service, as the HTTP shell (or a batch tool) hands it over. */
export interface HookCall {
  readonly service: CompiledService;
  /** The request body as received: the pipeline validates it. */
  readonly body: unknown;
  /**
   * The bytes of that body, as received (the HTTP shell has them): the audit then hashes them, and the
   * bytes of fetched answers, instead of the canonical JSON of the data (`audit/inputs.ts`).
   */
  readonly rawBody?: Uint8Array | string;
  /** The CDS client the HTTP authentication scope verified; null when authentication is disabled. */
  readonly client: CdsClient | null;
  readonly language: Language;
}

/** Structured, PHI-free log calls: the request's child logger in the HTTP shell, pino in tools. */
export interface PipelineLog {
  info(fields: Record<string, unknown>, message: string): void;
  warn(fields: Record<string, unknown>, message: string): void;
  child(bindings: Record<string, unknown>): PipelineLog;
}

export interface PipelineDeps {
  fhirFetch: FhirFetch;
  /** Where a client's fallback fetches may go (its trusted issuer entry; the settings without auth). */
  egress: (client: CdsClient | null) => EgressPolicy;
  now: () => Date;
  uuid: () => string;
  /** Base URL of this service as clients reach it (links to model cards). */
  publicUrl: string;
  /** Where the explanations of model-based cards are kept for their pages (none: no link). */
  explanations?: ExplanationPublisher;
  /**
   * Every answered call, and every objection, is recorded here: not optional, a replay is audited too.
   * With `findingFeedback` and `pseudonymise`, cards overridden earlier are suppressed for their window.
   */
  audit: Pick<AuditTrail, 'recordServiceCall' | 'recordObjection'> &
    Partial<Pick<AuditTrail, 'findingFeedback' | 'pseudonymise'>>;
  /** Told about every answered call, after its audit (metrics); tools without /metrics pass none. */
  observe?: (service: CompiledService, outcome: ServiceOutcome) => void;
  log: PipelineLog;
}

export interface ServiceOutcome {
  response: HookResponse;
  /** Each stage timed, in the order it ran. */
  timings: readonly StageTiming[];
  /** Prefetch keys fetched from fhirServer, and keys that were not available (omitted). */
  fetchedKeys: string[];
  unavailableKeys: string[];
  /** Time taken by each model that scored (by model id): features, inference and explanation. */
  modelMs: Record<string, number>;
  /** The models run (or not run, on an objection) with their versions and file hashes. */
  models: { id: string; version: string; sha256: string }[];
  /** An active objection to algorithmic processing: no model ran. */
  objection: { consentId: string } | null;
  /** For the audit: hash of the prefetch data used and the references of its resources. */
  inputs: InputsDigest;
  /** What the service found, focus by focus, and the cards issued about it. */
  findings: readonly Finding[];
  cards: readonly IssuedCard[];
  /** Cards the alert fatigue controls did not show, and why. */
  suppressed: readonly SuppressedCard[];
}

/**
 * Runs one hook call, from the authenticated client to the audit record.
 * @throws CdsError for a 4xx the client must see (invalid request, hook or context; invalid prefetch;
 *   412 when required data is missing)
 */
export async function runHook(call: HookCall, deps: PipelineDeps): Promise<ServiceOutcome> {
  const { service } = call;
  const now = deps.now();
  const { timed, timings, elapsedMs } = createStageTimer();
  const caller = authenticated(call.client);
  const request = timed('validation', () => validateHookRequest(service, call.body));
  const log = deps.log.child({ serviceId: service.definition.id, hookInstance: request.hookInstance });
  const policy = service.definition.malformedPrefetch ?? 'reject';
  const egress = deps.egress(call.client);
  const fhirFetch: FhirFetch = (server, query, type, token) =>
    deps.fhirFetch(server, query, type, token, egress);
  const prefetch = await timed('prefetch', () =>
    resolvePrefetch(service.prefetch, request, fhirFetch, policy),
  );
  const { findings, cards, objection, modelMs, suppressed, predictions } =
    prefetch.malformed.length > 0
      ? notEvaluable(call, prefetch, deps)
      : await evaluate(call, request, prefetch, deps, { now, timed, log });
  const inputs = timed('inputs', () => digestInputs(prefetch.data, rawInputsOf(call, prefetch)));
  const models = modelRefs(service);
  // The pages go into the audit store with the record, so that any instance serves their links.
  const pages = cards.flatMap((c) => deps.explanations?.pageOf?.(c.card.uuid ?? '') ?? []);
  const record = {
    service,
    request,
    cards,
    inputs,
    caller,
    at: now,
    latencyMs: elapsedMs(),
    models,
    suppressed,
    pages,
    predictions,
  };
  await timed('audit', () => audit(deps.audit, record, objection));
  const outcome: ServiceOutcome = {
    response: { cards: cards.map((c) => c.card) },
    timings,
    fetchedKeys: Object.keys(prefetch.sources).filter((k) => prefetch.sources[k] === 'fetched'),
    unavailableKeys: prefetch.unavailable.map((u) => u.key),
    modelMs,
    models,
    objection,
    inputs,
    findings,
    cards,
    suppressed,
  };
  deps.observe?.(service, outcome);
  const { fetchedKeys, unavailableKeys } = outcome;
  const malformedKeys = prefetch.malformed.map((m) => m.key);
  const fields = {
    cards: cards.length,
    ...(suppressed.length > 0 ? { suppressed: suppressed.map((s) => s.reason) } : {}),
    timings: timingFields(timings),
    fetchedKeys,
    unavailableKeys,
    ...(malformedKeys.length > 0 ? { malformedKeys } : {}),
  };
  log.info(fields, 'hook answered');
  return outcome;
}

interface Evaluated {
  findings: readonly Finding[];
  cards: IssuedCard[];
  objection: { consentId: string } | null;
  modelMs: Record<string, number>;
  /** Cards the alert fatigue controls held back (`cards/suppression.ts`), and the silent cards. */
  suppressed: SuppressedCard[];
  /** Every model estimate, live and silent, for the audit (issue 19). */
  predictions: PredictionRecord[];
}

/** The stages from the rules to the published cards, on well-formed data. */
async function evaluate(
  call: HookCall,
  request: HookRequest,
  prefetch: ResolvedPrefetch,
  deps: PipelineDeps,
  { now, timed, log }: { now: Date; timed: StageTimer['timed']; log: PipelineLog },
): Promise<Evaluated> {
  const { service, language } = call;
  const env = variables(service, request, prefetch);
  const rules = () =>
    evaluateRules(service.rules, service.focus, env, now, ruleErrorLog(log), service.defines, service.data);
  // Terminology stage: a value set the terminology server will not expand has the codes of this call
  // checked ($validate-code) within one deadline before the rules read them (`terminology/stage.ts`).
  // None without a server. Timed with the rules it serves (the benchmark has no server).
  const checkCodes = terminologyCheck(service);
  const focuses = checkCodes
    ? await timed('rules', async () => {
        await checkCodes([prefetch.data, request.context], log);
        return rules();
      })
    : timed('rules', rules);
  const { scored, silent } = await timed('models', async () => ({
    scored: await scoreFocuses(service, focuses, prefetch, env, now, patientOf(request)),
    // Silent models: the same focuses and data, recorded only (never in a finding, so never on a card).
    silent:
      service.silentModels.length === 0
        ? undefined
        : await scoreFocuses(
            { ...service, models: service.silentModels },
            focuses,
            prefetch,
            env,
            now,
            patientOf(request),
          ),
  }));
  const predictions = [
    ...predictionsOf(service.models, scored.focuses, 'live'),
    ...(silent ? predictionsOf(service.silentModels, silent.focuses, 'silent') : []),
  ];
  const findings: Finding[] = timed('explanation', () =>
    scored.focuses.map((f) => ({ ...f, explanations: explainFinding(service, f, prefetch.unavailable) })),
  );
  const { uuid, publicUrl } = deps;
  const context = request.context;
  // Rendering, then the alert fatigue controls (cards/suppression.ts): one stage, what is shown.
  // Cards in `mode: silent` are evaluated and recorded as suppressed (`silent`), never shown.
  const { shown, suppressed } = await timed('cards', async () => {
    const rendered = issueCards({ service, findings, context, language, now, uuid, publicUrl });
    const silentCards = rendered.filter((c) => c.spec.mode === 'silent');
    const live = silentCards.length === 0 ? rendered : rendered.filter((c) => c.spec.mode !== 'silent');
    const controlled = await alertFatigue(service, live, request, now, deps, log);
    return {
      shown: controlled.shown,
      suppressed: [
        ...silentCards.map((c): SuppressedCard => ({ findingKey: c.findingKey, reason: 'silent' })),
        ...controlled.suppressed,
      ],
    };
  });
  const cards = timed('publish', () => publishExplanations(shown, deps.explanations, language));
  return {
    findings,
    cards,
    objection: scored.objection,
    modelMs: scored.modelMs,
    suppressed,
    predictions,
  };
}

/**
 * Data the service reads is malformed and its policy is `not-evaluable`: no rule or model runs on it;
 * one card says the service could not evaluate, and why (`cards/not-evaluable.ts`).
 */
function notEvaluable(call: HookCall, prefetch: ResolvedPrefetch, deps: PipelineDeps): Evaluated {
  const card = notEvaluableCard({
    service: call.service,
    malformed: prefetch.malformed,
    unavailable: prefetch.unavailable,
    language: call.language,
    uuid: deps.uuid,
  });
  return {
    findings: [card.finding],
    cards: [card],
    objection: null,
    modelMs: {},
    suppressed: [],
    predictions: [],
  };
}

/**
 * The alert fatigue controls of the service over the rendered cards. Earlier overrides are looked up
 * (by the patient's pseudonym) only when there are cards and windows to apply; a store that does not
 * answer shows every card (a warning is logged): a missing suppression is safer than a missing card.
 */
async function alertFatigue(
  service: CompiledService,
  rendered: IssuedCard[],
  request: HookRequest,
  now: Date,
  deps: PipelineDeps,
  log: PipelineLog,
): Promise<{ shown: IssuedCard[]; suppressed: SuppressedCard[] }> {
  const settings = alertFatigueOf(service.definition);
  const patientId = patientOf(request);
  const { findingFeedback, pseudonymise } = deps.audit;
  let overrides: Awaited<ReturnType<NonNullable<typeof findingFeedback>>> = [];
  if (
    rendered.length > 0 &&
    patientId !== undefined &&
    findingFeedback &&
    Object.keys(settings.afterOverride).length > 0
  ) {
    const findings = [...new Set(rendered.map((c) => c.findingKey))];
    try {
      overrides = await findingFeedback(service.definition.id, patientId, findings);
    } catch (error) {
      log.warn(
        { error: (error as Error).name },
        'earlier overrides unavailable: no card suppressed for them',
      );
    }
  }
  const encounter = pseudonymise ? encounterOf(request, pseudonymise) : null;
  return suppressCards({ cards: rendered, settings, overrides, encounter, now });
}

/**
 * The bytes the audit hashes (`sha256-raw`): the body, then each fetched key's pages. Undefined (the
 * canonical method) when the caller handed no bytes, or a fetcher gave none for a key.
 */
function rawInputsOf(call: HookCall, prefetch: ResolvedPrefetch): RawInputs | undefined {
  if (call.rawBody === undefined) return undefined;
  const fetched: RawInputs['fetched'][number][] = [];
  for (const { key, pages } of prefetch.fetchedRaw) {
    if (pages === null) return undefined;
    fetched.push({ key, pages });
  }
  return { body: call.rawBody, fetched };
}

/** The authenticate stage: who called, from the client the HTTP scope verified (CDS Hooks 2.0 §"Trusting CDS Clients"). */
function authenticated(client: CdsClient | null): Caller {
  return { issuer: client?.iss ?? null, tenant: client?.tenant ?? null };
}

const patientOf = (request: HookRequest) =>
  typeof request.context.patientId === 'string' ? request.context.patientId : undefined;

/** The FHIRPath variables of the rules and models: the prefetch keys, the hook context, the draft orders. */
function variables(service: CompiledService, request: HookRequest, prefetch: ResolvedPrefetch) {
  return {
    ...prefetch.data,
    hookContext: request.context,
    draftOrders: consideredDraftOrders(request.hook, request.context),
    valueSets: service.valueSets,
  };
}

/** A rule that throws on unexpected data is reported not evaluable, and logged without the data. */
function ruleErrorLog(log: PipelineLog) {
  return ({ ruleId, error }: { ruleId: string; error: unknown }) =>
    log.warn({ ruleId, error: (error as Error).name }, 'rule not evaluable');
}

/** The models of the service (all of them, run or not), with their versions and file hashes. */
const modelRefs = (service: CompiledService): ModelRef[] =>
  service.models.map((m) => ({ id: m.manifest.id, version: m.manifest.version, sha256: m.sha256 }));

/**
 * The audit stage. Written before the cards leave, so feedback on them finds them; never fails the call
 * (the writer queues when the store is down). An objection is recorded as such, with the Consent's id
 * and no clinical data.
 */
async function audit(
  trail: PipelineDeps['audit'],
  record: ServiceCallRecord,
  objection: { consentId: string } | null,
): Promise<void> {
  await trail.recordServiceCall(record);
  if (objection) {
    const { service, request, caller, at } = record;
    await trail.recordObjection({ service, request, consentId: objection.consentId, caller, at });
  }
}
