/**
 * Prometheus metrics (prom-client), one registry per app so that apps built side by side (tests) do not
 * share counters. What is counted, and where it is observed:
 * - every HTTP answer (route template, method, status) and its latency: `onResponse` hook;
 * - every error answer by catalogue code: `onSend` hook, read from the OperationOutcome the error
 *   handler wrote (the one place errors become answers stays the only one);
 * - per service call: stage durations, prefetch keys by where they came from, cards by indicator, the
 *   inference time of each model: `observeCall`, called by the service-call handler with the outcome;
 * - feedback items acknowledged, by outcome, and duplicates: `preSerialization` on the feedback route;
 * - the audit writer's backlog: gauges read at scrape time.
 * Labels only carry ids of loaded services and models, route templates and catalogue codes: nothing a
 * caller can make up (an unknown service id is counted as "unknown"), and no patient data.
 */
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import { collectDefaultMetrics, Counter, Gauge, Histogram, Registry } from 'prom-client';
import type { Feedback, HookResponse } from '../cds-hooks.js';
import type { ServiceOutcome } from '../pipeline.js';
import type { CompiledService } from '../services/load.js';
import type { Registry as ServiceRegistry } from '../services/registry.js';
import type { AuditBacklog } from '../audit/audit-writer.js';

const CALL_ROUTE = '/cds-services/:id';
const FEEDBACK_ROUTE = '/cds-services/:id/feedback';

/** CDS Hooks asks for answers in about 500 ms: buckets resolve the range around it finely. */
const SECONDS_BUCKETS = [0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10];

export type CallObserver = (service: CompiledService, outcome: ServiceOutcome) => void;

export interface Metrics {
  readonly registry: Registry;
  observeCall: CallObserver;
  /** The exposition text and its content type. */
  render(): Promise<{ contentType: string; text: string }>;
}

export interface MetricsDeps {
  services: ServiceRegistry;
  backlog: () => AuditBacklog;
}

/** Creates the metrics and registers the hooks that feed them on `app`. */
export function registerMetrics(app: FastifyInstance, deps: MetricsDeps): Metrics {
  const registry = new Registry();
  const registers = [registry];
  collectDefaultMetrics({ register: registry });

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
    help: 'Service call stages (prefetch, rules, models, cards, inputs hash) of answered calls, and total of every call',
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
  backlogGauge('pending', 'Audit events waiting in memory to be written (store unavailable)');
  backlogGauge('dropped', 'Audit events lost since start because the queue was full');
  backlogGauge('rejected', 'Audit events the store refused since start (not retried)');
  backlogGauge('written', 'Audit events written since start');

  /** A service label: the id of a loaded service, else "unknown" (ids in URLs are caller-chosen). */
  const serviceLabel = (request: FastifyRequest) => {
    const id = (request.params as { id?: string } | undefined)?.id;
    return id !== undefined && deps.services.get(id) ? id : 'unknown';
  };

  app.addHook('onResponse', async (request: FastifyRequest, reply: FastifyReply) => {
    const route = request.routeOptions.url ?? 'unmatched';
    const seconds = reply.elapsedTime / 1000;
    requests.inc({ route, method: request.method, status: String(reply.statusCode) });
    requestSeconds.observe({ route, method: request.method }, seconds);
    if (route === CALL_ROUTE && request.method === 'POST') {
      const service = serviceLabel(request);
      calls.inc({ service, status: String(reply.statusCode) });
      stageSeconds.observe({ service, stage: 'total' }, seconds);
    }
  });

  app.addHook('onSend', async (_request, reply, payload) => {
    if (reply.statusCode < 400 || typeof payload !== 'string') return payload;
    let code = 'unknown';
    try {
      const body = JSON.parse(payload) as {
        issue?: { details?: { coding?: { code?: unknown }[] } }[];
      };
      const found = body.issue?.[0]?.details?.coding?.[0]?.code;
      if (typeof found === 'string' && /^CDS_ERR_[A-Z_]+$/.test(found)) code = found;
    } catch {
      // Not JSON: counted as unknown.
    }
    errors.inc({ code, status: String(reply.statusCode) });
    return payload;
  });

  app.addHook('preSerialization', async (request: FastifyRequest, reply: FastifyReply, payload: unknown) => {
    if (request.routeOptions.url !== FEEDBACK_ROUTE || reply.statusCode !== 200) return payload;
    const service = serviceLabel(request);
    for (const item of (request.body as { feedback: Feedback[] }).feedback) {
      feedbackItems.inc({ service, outcome: item.outcome });
    }
    feedbackDuplicates.inc({ service }, (payload as { duplicates: number }).duplicates);
    return payload;
  });

  return {
    registry,
    observeCall(service, outcome) {
      const id = service.definition.id;
      const { prefetchMs, rulesMs, modelsMs, cardsMs, inputsMs } = outcome.timings;
      const stages = {
        prefetch: prefetchMs,
        rules: rulesMs,
        models: modelsMs,
        cards: cardsMs,
        inputs: inputsMs,
      };
      for (const [stage, ms] of Object.entries(stages))
        stageSeconds.observe({ service: id, stage }, ms / 1000);
      const fetched = outcome.fetchedKeys.length;
      const unavailable = outcome.unavailableKeys.length;
      prefetchKeys.inc({ service: id, source: 'sent' }, service.prefetch.length - fetched - unavailable);
      prefetchKeys.inc({ service: id, source: 'fetched' }, fetched);
      prefetchKeys.inc({ service: id, source: 'unavailable' }, unavailable);
      for (const card of (outcome.response as HookResponse).cards) {
        cards.inc({ service: id, indicator: card.indicator });
      }
      for (const [model, ms] of Object.entries(outcome.modelMs)) modelSeconds.observe({ model }, ms / 1000);
    },
    async render() {
      return { contentType: registry.contentType, text: await registry.metrics() };
    },
  };
}
