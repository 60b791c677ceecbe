/**
 * Prometheus metrics (prom-client), one registry per app so that apps built side by side (tests) do not
 * share counters. Framework-free: the HTTP shell (`http/ops.ts`) feeds it from Fastify hooks. What is
 * counted, and where it is observed:
 * - every HTTP answer (route template, method, status) and its latency: `observeAnswer`;
 * - every error answer by catalogue code: `countError`, read from the OperationOutcome the error
 *   handler wrote (the one place errors become answers stays the only one);
 * - per service call: the duration of each stage the pipeline timed (`timing.ts`), prefetch keys by
 *   where they came from, cards by indicator, the inference time of each model: `observeCall`, which
 *   the pipeline calls with the outcome;
 * - feedback items acknowledged, by outcome, and duplicates: `countFeedback`;
 * - the audit writer's backlog: gauges read at scrape time.
 * Labels only carry ids of loaded services and models, route templates, stage names and catalogue codes:
 * nothing a caller can make up (an unknown service id is counted as "unknown"), and no patient data.
 */
import type { TerminologyStats } from '../terminology/remote.js';
import { collectDefaultMetrics, Counter, Gauge, Histogram, Registry } from 'prom-client';
import type { ServiceOutcome } from '../pipeline.js';
import type { CompiledService } from '../services/load.js';
import type { Registry as ServiceRegistry } from '../services/registry.js';
import type { AuditBacklog } from '../audit/audit-writer.js';

/** The route template of a service call (the only route whose answers also count per service). */
export const CALL_ROUTE = '/cds-services/:id';

/** CDS Hooks asks for answers in about 500 ms: buckets resolve the range around it finely. */
const SECONDS_BUCKETS = [0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10];

export type CallObserver = (service: CompiledService, outcome: ServiceOutcome) => void;

/** One HTTP answer. */
export interface Answer {
  /** The route template matched, or "unmatched". */
  route: string;
  method: string;
  status: number;
  seconds: number;
  /** For a service call: the id in the URL, as the caller sent it. */
  serviceId?: string;
}

export interface Metrics {
  readonly registry: Registry;
  observeCall: CallObserver;
  observeAnswer(answer: Answer): void;
  /** An error answer, by catalogue code ("unknown" when the body named none). */
  countError(code: string, status: number): void;
  /** Feedback acknowledged for a service (id as in the URL): each item's outcome, and the duplicates. */
  countFeedback(serviceId: string | undefined, outcomes: readonly string[], duplicates: number): void;
  /** The exposition text and its content type. */
  render(): Promise<{ contentType: string; text: string }>;
}

export interface MetricsDeps {
  services: ServiceRegistry;
  backlog: () => AuditBacklog;
  /** Whether audit records cannot be written now. */
  failing: () => boolean;
  /** Token ids claimed in memory during an outage of the shared replay cache, since start. */
  replayDegraded: () => number;
  /**
   * In a cluster worker (`ops/cluster.ts`): given this app's registry, returns the function that
   * collects the metrics of every worker, which `render` then answers instead of this process's own.
   */
  cluster?: (registry: Registry) => () => Promise<string>;
  /** The terminology server's counts since start, when one is configured (`terminology/remote.ts`). */
  terminology?: () => TerminologyStats;
}

/** Creates the metrics of one app. */
export function createMetrics(deps: MetricsDeps): Metrics {
  const registry = new Registry();
  const registers = [registry];
  collectDefaultMetrics({ register: registry });
  const allWorkers = deps.cluster?.(registry);

  const requests = new Counter({
    name: 'cds_http_requests_total',
    help: 'HTTP answers by route template, method and status code',
    labelNames: ['route', 'method', 'status'] as const,
    registers,
  });
  const requestSeconds = new Histogram({
    name: 'cds_http_request_duration_seconds',
    help: 'Time from request received to answer sent, by route template and method',
    labelNames: ['route', 'method'] as const,
    buckets: SECONDS_BUCKETS,
    registers,
  });
  const errors = new Counter({
    name: 'cds_errors_total',
    help: 'Error answers by catalogue code and status (412: CDS_ERR_PREFETCH_UNAVAILABLE)',
    labelNames: ['code', 'status'] as const,
    registers,
  });
  const calls = new Counter({
    name: 'cds_service_calls_total',
    help: 'Service calls by service and status code',
    labelNames: ['service', 'status'] as const,
    registers,
  });
  const stageSeconds = new Histogram({
    name: 'cds_service_stage_duration_seconds',
    help: 'Service call stages (validation, prefetch, rules, models, explanation, cards, publish, inputs hash, audit) of answered calls, and total of every call',
    labelNames: ['service', 'stage'] as const,
    buckets: SECONDS_BUCKETS,
    registers,
  });
  const prefetchKeys = new Counter({
    name: 'cds_prefetch_keys_total',
    help: 'Prefetch keys of answered calls: sent by the client (hit), fetched from fhirServer (miss, fallback fetch) or unavailable (miss, omitted)',
    labelNames: ['service', 'source'] as const,
    registers,
  });
  const cards = new Counter({
    name: 'cds_cards_total',
    help: 'Cards returned, by service and indicator',
    labelNames: ['service', 'indicator'] as const,
    registers,
  });
  const modelSeconds = new Histogram({
    name: 'cds_model_inference_duration_seconds',
    help: 'Time to score the subjects of one call with one model (features, inference, explanation)',
    labelNames: ['model'] as const,
    buckets: SECONDS_BUCKETS,
    registers,
  });
  const feedbackItems = new Counter({
    name: 'cds_feedback_items_total',
    help: 'Feedback items acknowledged (stored or duplicate), by service and outcome',
    labelNames: ['service', 'outcome'] as const,
    registers,
  });
  const feedbackDuplicates = new Counter({
    name: 'cds_feedback_duplicates_total',
    help: 'Feedback items acknowledged that had already been stored (retries)',
    labelNames: ['service'] as const,
    registers,
  });
  const backlogGauge = (name: keyof AuditBacklog, help: string) =>
    new Gauge({
      name: `cds_audit_${name}_events`,
      help,
      registers,
      collect() {
        this.set(deps.backlog()[name]);
      },
    });
  if (deps.terminology) {
    const stats = deps.terminology;
    const terminologyGauge = (name: keyof TerminologyStats, help: string) =>
      new Gauge({
        name: `cds_terminology_${name}`,
        help,
        registers,
        collect() {
          this.set(stats()[name]);
        },
      });
    terminologyGauge('expansions', 'Value-set expansions received from the terminology server since start');
    terminologyGauge('failures', 'Terminology server requests that failed or timed out since start');
    terminologyGauge(
      'fallbacks',
      'Value-set lookups answered by the bundled expansion, the server having no fresh expansion or $validate-code answer, since start',
    );
    terminologyGauge(
      'validations',
      '$validate-code answers received from the terminology server since start',
    );
    terminologyGauge(
      'validating',
      'Value sets the terminology server does not expand (too costly), checked code by code with $validate-code',
    );
  }
  backlogGauge('pending', 'Audit events held to be written (store unavailable, disk full or read-only)');
  backlogGauge('spilled', 'Of the held audit events, those in the spill file');
  backlogGauge(
    'refused',
    'Calls refused (503) since start because their audit record could be neither written nor held',
  );
  backlogGauge('rejected', 'Audit events the store refused since start (not retried)');
  backlogGauge('written', 'Audit events written since start');
  new Gauge({
    name: 'cds_audit_failing',
    help: '1 while audit records cannot be written (store down, disk full, read-only), else 0',
    registers,
    collect() {
      this.set(deps.failing() ? 1 : 0);
    },
  });
  new Counter({
    name: 'cds_replay_cache_degraded_total',
    help: "Client tokens checked against this instance's memory only because the shared replay cache (PostgreSQL) was unavailable",
    registers,
    collect() {
      this.reset();
      this.inc(deps.replayDegraded());
    },
  });

  /** A service label: the id of a loaded service, else "unknown" (ids in URLs are caller-chosen). */
  const serviceLabel = (id: string | undefined) =>
    id !== undefined && deps.services.get(id) ? id : 'unknown';

  return {
    registry,
    observeCall(service, outcome) {
      const id = service.definition.id;
      for (const { stage, ms } of outcome.timings) stageSeconds.observe({ service: id, stage }, ms / 1000);
      const fetched = outcome.fetchedKeys.length;
      const unavailable = outcome.unavailableKeys.length;
      prefetchKeys.inc({ service: id, source: 'sent' }, service.prefetch.length - fetched - unavailable);
      prefetchKeys.inc({ service: id, source: 'fetched' }, fetched);
      prefetchKeys.inc({ service: id, source: 'unavailable' }, unavailable);
      for (const card of outcome.response.cards) cards.inc({ service: id, indicator: card.indicator });
      for (const [model, ms] of Object.entries(outcome.modelMs)) modelSeconds.observe({ model }, ms / 1000);
    },
    observeAnswer({ route, method, status, seconds, serviceId }) {
      requests.inc({ route, method, status: String(status) });
      requestSeconds.observe({ route, method }, seconds);
      if (route === CALL_ROUTE && method === 'POST') {
        const service = serviceLabel(serviceId);
        calls.inc({ service, status: String(status) });
        stageSeconds.observe({ service, stage: 'total' }, seconds);
      }
    },
    countError(code, status) {
      errors.inc({ code, status: String(status) });
    },
    countFeedback(serviceId, outcomes, duplicates) {
      const service = serviceLabel(serviceId);
      for (const outcome of outcomes) feedbackItems.inc({ service, outcome });
      feedbackDuplicates.inc({ service }, duplicates);
    },
    async render() {
      return { contentType: registry.contentType, text: await (allWorkers ?? (() => registry.metrics()))() };
    },
  };
}
