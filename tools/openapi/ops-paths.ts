/**
 * The OpenAPI paths and security schemes of the operations endpoints (src/http/ops.ts), merged into the
 * document by build.ts, which lends its helpers for error answers and CORS preflights.
 */

type Helpers = {
  errorResponse: (status: number, summary: string) => Record<string, unknown>;
  preflight: (operationId: string, methods: string) => Record<string, unknown>;
};

const json = (description: string) => ({ description, content: { 'application/json': {} } });

/** The operations endpoints (`paths` entries). */
export function opsPaths({ errorResponse, preflight }: Helpers): Record<string, unknown> {
  const head = (operationId: string) => ({
    operationId,
    summary: 'Headers only',
    security: [],
    responses: { '200': { description: 'Headers only' } },
  });
  return {
    '/metrics': {
      get: {
        operationId: 'metrics',
        summary: 'Prometheus metrics',
        description: [
          'Text exposition format (prom-client): HTTP answers and latency by route, service call stages,',
          'prefetch keys by source, errors by catalogue code, cards by indicator, feedback outcomes, model',
          'inference time, audit backlog. Open unless CDS_METRICS_TOKEN is set, then a Bearer token.',
        ].join(' '),
        security: [{}, { metricsBearer: [] }],
        responses: {
          '200': { description: 'The metrics', content: { 'text/plain': { schema: { type: 'string' } } } },
          '401': errorResponse(401, 'CDS_METRICS_TOKEN is set and the Bearer token is missing or wrong'),
        },
      },
      head: head('metricsHead'),
      options: preflight('metricsPreflight', 'GET'),
    },
    '/health/live': {
      get: {
        operationId: 'healthLive',
        summary: 'Liveness: the process answers',
        security: [],
        responses: { '200': json('{ "status": "live" }') },
      },
      head: head('healthLiveHead'),
      options: preflight('healthLivePreflight', 'GET'),
    },
    '/health/ready': {
      get: {
        operationId: 'healthReady',
        summary: 'Readiness: services and models loaded, audit store answering and taking records',
        security: [],
        responses: {
          '200': json('{ "status": "ready", "services": <count>, "models": <count> }'),
          '503': errorResponse(
            503,
            'The audit store does not answer, or audit records cannot be written (disk full, read-only)',
          ),
        },
      },
      head: head('healthReadyHead'),
      options: preflight('healthReadyPreflight', 'GET'),
    },
    '/admin/reload': {
      post: {
        operationId: 'adminReload',
        summary: 'Reload cds-services/ and models/',
        description: [
          'Loads and checks every service definition, value set and model as at start-up, then replaces',
          'the running set at once; on any problem the running set is unchanged. Same as SIGHUP. Needs',
          'CDS_ADMIN_TOKEN as a Bearer token; answers 404 when none is configured.',
        ].join(' '),
        security: [{ adminBearer: [] }],
        responses: {
          '200': json('{ "reloaded": true, "services": [ids], "models": [{ id, version, sha256 }] }'),
          '401': errorResponse(401, 'The Bearer token is missing or wrong'),
          '404': errorResponse(404, 'No CDS_ADMIN_TOKEN is configured'),
          '500': {
            ...errorResponse(500, 'A bug'),
            description:
              'A file is invalid (CDS_ERR_DEFINITION_INVALID or CDS_ERR_MODEL_INVALID, naming the file and the reason): nothing was replaced. An OperationOutcome.',
          },
        },
      },
      options: preflight('adminReloadPreflight', 'POST'),
    },
  };
}

export const OPS_SECURITY_SCHEMES = {
  metricsBearer: { type: 'http', scheme: 'bearer', description: 'CDS_METRICS_TOKEN' },
  adminBearer: { type: 'http', scheme: 'bearer', description: 'CDS_ADMIN_TOKEN' },
} as const;
