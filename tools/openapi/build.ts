/**
 * The OpenAPI 3.1 description of the HTTP API, built from the very schemas the server validates with
 * (`schemas.ts`), the service definition schema and the error catalogue, so that it cannot drift from the
 * code. `npm run openapi` writes it to `openapi.yaml`; `test/http/openapi.test.ts` fails when the file
 * and this function disagree, or when a route the app serves is missing here.
 */
import { existsSync, readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { stringify } from 'yaml';
import { KNOWN_HOOKS } from '../../src/cds-hooks.js';
import { ERRORS, type ErrorCode } from '../../src/errors.js';
import { MANIFEST_SCHEMA } from '../../src/scoring/manifest.js';
import { OPS_SECURITY_SCHEMES, opsPaths } from './ops-paths.js';
import { DEFINITION_SCHEMA } from '../../src/services/definition-schema.js';
import { CONTEXT_SCHEMAS, SCHEMAS } from '../../src/request/schemas.js';

/** Codes that never reach a client: they stop start-up instead. */
export const START_UP_CODES: readonly ErrorCode[] = ['CDS_ERR_DEFINITION_INVALID'];

/**
 * The folder holding the project's package.json, found by walking up from this module, so that it is
 * found both from `src/http/` and from the compiled `dist/src/http/`.
 */
export function projectRoot(): string {
  let dir = dirname(fileURLToPath(import.meta.url));
  while (!existsSync(join(dir, 'package.json'))) {
    const parent = dirname(dir);
    if (parent === dir) throw new Error('package.json not found above tools/openapi');
    dir = parent;
  }
  return dir;
}

function packageVersion(): string {
  const pkg = JSON.parse(readFileSync(join(projectRoot(), 'package.json'), 'utf8')) as { version: string };
  return pkg.version;
}

const schemaRef = (name: string) => ({ $ref: `#/components/schemas/${name}` });
const headerRef = (name: string) => ({ $ref: `#/components/headers/${name}` });

/** Every catalogue code a client can receive with an HTTP status, in catalogue order. */
function codesFor(status: number): ErrorCode[] {
  return (Object.keys(ERRORS) as ErrorCode[]).filter(
    (code) => ERRORS[code].status === status && !START_UP_CODES.includes(code),
  );
}

function errorResponse(status: number, summary: string) {
  const codes = codesFor(status).join(', ');
  return {
    description: `${summary}. An OperationOutcome whose issue[0].details.coding[0].code is one of: ${codes}.`,
    headers: { 'X-Request-Id': headerRef('X-Request-Id') },
    content: { 'application/fhir+json': { schema: schemaRef('OperationOutcome') } },
  };
}

/** A 503 for audit records that cannot be written, with its Retry-After (CDS_STORE_RETRY_AFTER_S). */
function storeUnavailable(summary: string) {
  const response = errorResponse(503, summary);
  return {
    ...response,
    headers: {
      ...response.headers,
      'Retry-After': {
        description: 'Seconds to wait (CDS_STORE_RETRY_AFTER_S)',
        schema: { type: 'integer' },
      },
    },
  };
}

/** The two answers of the edge that every CDS endpoint can give. */
function edgeResponses() {
  return {
    '401': {
      ...errorResponse(401, 'No valid CDS client JWT; the body is the same whatever the cause'),
      headers: {
        'X-Request-Id': headerRef('X-Request-Id'),
        'WWW-Authenticate': { schema: { const: 'Bearer' } },
      },
    },
    '429': {
      ...errorResponse(
        429,
        'Too many requests from this client (CDS_RATE_LIMIT_MAX per CDS_RATE_LIMIT_WINDOW_MS)',
      ),
      headers: {
        'X-Request-Id': headerRef('X-Request-Id'),
        'Retry-After': { description: 'Seconds until the window resets', schema: { type: 'integer' } },
      },
    },
  };
}

const SECURITY = [{ cdsClientJwt: [] }];

function preflight(operationId: string, methods: string) {
  return {
    operationId,
    security: [],
    summary: 'CORS preflight',
    description: [
      `Answered by the CORS layer for ${methods}: allowed origins come from CDS_CORS_ORIGINS (default any`,
      'origin); allowed request headers are Content-Type, Authorization and Accept-Language. A foreign',
      'origin gets no Access-Control-Allow-Origin header.',
    ].join(' '),
    parameters: [
      { name: 'Origin', in: 'header', required: true, schema: { type: 'string' } },
      {
        name: 'Access-Control-Request-Method',
        in: 'header',
        required: true,
        schema: { type: 'string' },
      },
      {
        name: 'Access-Control-Request-Headers',
        in: 'header',
        required: false,
        schema: { type: 'string' },
      },
    ],
    responses: {
      '204': {
        description: 'Preflight accepted',
        headers: {
          'Access-Control-Allow-Origin': {
            description: 'The origin, or `*`; absent when the origin is not allowed',
            schema: { type: 'string' },
          },
          'Access-Control-Allow-Methods': { schema: { type: 'string', examples: ['GET, POST, OPTIONS'] } },
          'Access-Control-Allow-Headers': {
            schema: { type: 'string', examples: ['Content-Type, Authorization, Accept-Language'] },
          },
          'Access-Control-Max-Age': { schema: { type: 'string', examples: ['600'] } },
        },
      },
    },
  };
}

/** The `x-error-codes` table: every catalogue code, its status, FHIR issue type and message template. */
function errorCodeTable() {
  return Object.fromEntries(
    (Object.keys(ERRORS) as ErrorCode[]).map((code) => {
      const entry = ERRORS[code];
      return [
        code,
        {
          status: entry.status,
          issue: entry.issue,
          message: entry.message,
          ...(START_UP_CODES.includes(code) ? { startUpOnly: true } : {}),
        },
      ];
    }),
  );
}

/** The OpenAPI 3.1.0 document of every endpoint the app serves. */
export function buildOpenApi(): Record<string, unknown> {
  const { $schema: _dialect, ...ServiceDefinition } = DEFINITION_SCHEMA;
  const { $schema: _manifestDialect, ...ModelManifest } = MANIFEST_SCHEMA;
  const contextSchemas = Object.fromEntries(
    KNOWN_HOOKS.map((hook) => [`Context_${hook}`, CONTEXT_SCHEMAS[hook]]),
  );
  const internal = errorResponse(500, 'A bug; logged with the request id, which the body names');
  // Tenancy: the figures of one client's cards (src/http/analytics.ts).
  const analyticsScope = [
    {
      name: 'issuer',
      in: 'query',
      required: false,
      description: 'Only the cards issued to this client (its JWT `iss`)',
      schema: { type: 'string', minLength: 1, maxLength: 2048 },
    },
    {
      name: 'tenant',
      in: 'query',
      required: false,
      description: 'Within `issuer` (required with it), only the cards of this tenant',
      schema: { type: 'string', minLength: 1, maxLength: 256 },
    },
  ];
  const governanceLang = {
    name: 'lang',
    in: 'query',
    required: false,
    description: 'Language of the page (else Accept-Language, else the default language)',
    schema: { type: 'string', enum: ['en', 'fr'] },
  };
  const analyticsErrors = {
    '401': errorResponse(
      401,
      'The analytics credential is missing or wrong: one WWW-Authenticate header per scheme, Basic first to a browser (Accept: text/html), else Bearer first',
    ),
    '404': errorResponse(404, 'Analytics are disabled (no CDS_ANALYTICS_TOKEN)'),
    '500': internal,
    '503': storeUnavailable('The audit store is unavailable'),
  };
  return {
    openapi: '3.1.0',
    jsonSchemaDialect: 'https://json-schema.org/draft/2020-12/schema',
    info: {
      title: 'Explainable CDS Hooks service',
      version: packageVersion(),
      description: [
        'Implements HL7 CDS Hooks 2.0.1 (https://cds-hooks.hl7.org/2.0/) over FHIR R4: discovery and service',
        'calls. Answers carry cards only (advisory, explainable, overridable); the service never returns',
        'systemActions. Every error body is a FHIR OperationOutcome whose issue[0].details.coding[0].code is',
        'a stable code of `x-error-codes`. Every call except CORS preflights carries the CDS client JWT',
        '(CDS Hooks 2.0 §"Trusting CDS Clients"): see components.securitySchemes.cdsClientJwt; the analytics',
        'and operations (metrics, health, reload) endpoints have their own credential or none.',
        'Generated by `npm run openapi` from src/request/schemas.ts, src/services/definition-schema.ts and',
        'src/errors.ts; do not edit by hand.',
      ].join(' '),
      license: { name: 'Apache-2.0', identifier: 'Apache-2.0' },
    },
    servers: [{ url: 'http://127.0.0.1:8080', description: 'Default local address' }],
    paths: {
      '/cds-services': {
        get: {
          operationId: 'discovery',
          summary: 'Discovery',
          description: 'The services of this server, sorted by id; built at start-up, same on every call.',
          security: SECURITY,
          responses: {
            '200': {
              description: 'The discovery document (`{"services": []}` when no service is loaded)',
              headers: { 'X-Request-Id': headerRef('X-Request-Id') },
              content: { 'application/json': { schema: schemaRef('DiscoveryResponse') } },
            },
            ...edgeResponses(),
            '500': internal,
          },
        },
        head: {
          operationId: 'discoveryHead',
          summary: 'Discovery headers only',
          description: 'As GET, without a body.',
          security: SECURITY,
          responses: {
            '200': {
              description: 'Headers of the discovery document',
              headers: { 'X-Request-Id': headerRef('X-Request-Id') },
            },
            '401': { description: 'No valid CDS client JWT' },
          },
        },
        options: preflight('discoveryPreflight', 'GET'),
      },
      '/cds-services/{id}': {
        parameters: [
          {
            name: 'id',
            in: 'path',
            required: true,
            description: 'A service id from discovery',
            schema: { type: 'string' },
          },
        ],
        post: {
          operationId: 'callService',
          summary: 'Call a CDS service',
          description: [
            'The body must fit HookRequest; the hook must be the service hook and the context must fit',
            "that hook's context schema (components.schemas.Context_<hook>). Prefetch keys the client did",
            'not send are fetched from fhirServer with the fhirAuthorization bearer token. Cards are in',
            'French or English after Accept-Language (else the configured default).',
          ].join(' '),
          security: SECURITY,
          parameters: [
            {
              name: 'Accept-Language',
              in: 'header',
              required: false,
              description: 'The first of `fr` / `en` by preference picks the language of the cards',
              schema: { type: 'string' },
            },
          ],
          requestBody: {
            required: true,
            content: {
              'application/json': { schema: schemaRef('HookRequest') },
              'application/fhir+json': { schema: schemaRef('HookRequest') },
            },
          },
          responses: {
            '200': {
              description: 'Cards (possibly none); never systemActions',
              headers: {
                'X-Request-Id': headerRef('X-Request-Id'),
                'Content-Language': {
                  description: 'Language of the cards',
                  schema: { enum: ['en', 'fr'] },
                },
              },
              content: { 'application/json': { schema: schemaRef('HookResponse') } },
            },
            '400': errorResponse(400, 'The request is malformed or does not fit the service'),
            '401': edgeResponses()['401'],
            '404': errorResponse(404, 'No such service (or no such route)'),
            '412': errorResponse(412, 'Data the service requires was neither sent nor obtainable'),
            '413': errorResponse(413, 'The body is larger than CDS_BODY_LIMIT_BYTES'),
            '415': errorResponse(415, 'The Content-Type is not application/json or application/fhir+json'),
            '429': edgeResponses()['429'],
            '500': internal,
            '503': storeUnavailable(
              "The call's audit record can be neither written nor held (CDS_AUDIT_FAIL_POLICY): no card is shown that cannot be audited",
            ),
          },
        },
        options: preflight('callServicePreflight', 'POST'),
      },
      '/cds-services/{id}/feedback': {
        parameters: [
          {
            name: 'id',
            in: 'path',
            required: true,
            description: 'The id of the service that issued the cards',
            schema: { type: 'string' },
          },
        ],
        post: {
          operationId: 'feedback',
          security: SECURITY,
          summary: 'Feedback on cards (CDS Hooks 2.0 §Feedback)',
          description: [
            'What the clinician did with each card: accepted (with the suggestions taken) or overridden (with a',
            'coded reason and/or a comment). Each item must name a card this service issued; accepted',
            "suggestions must be that card's, and a reason must be one the service offers. The batch is",
            'checked whole, then stored in one transaction: 200 is sent only once it is durable. A retry of an',
            'item already stored (same card, outcome and outcome instant) is counted as a duplicate, not stored',
            'again.',
          ].join(' '),
          requestBody: {
            required: true,
            content: {
              'application/json': { schema: schemaRef('FeedbackRequest') },
              'application/fhir+json': { schema: schemaRef('FeedbackRequest') },
            },
          },
          responses: {
            '200': {
              description: 'Stored (durably), or already stored',
              headers: { 'X-Request-Id': headerRef('X-Request-Id') },
              content: { 'application/json': { schema: schemaRef('FeedbackResponse') } },
            },
            '400': errorResponse(400, 'The body does not fit the feedback schema'),
            '401': edgeResponses()['401'],
            '404': errorResponse(404, 'No such service, or a card this service did not issue'),
            '413': errorResponse(413, 'The body is larger than CDS_BODY_LIMIT_BYTES'),
            '415': errorResponse(415, 'The Content-Type is not application/json or application/fhir+json'),
            '422': errorResponse(422, 'A suggestion or an override reason that does not belong to the card'),
            '429': edgeResponses()['429'],
            '500': internal,
            '503': storeUnavailable('The audit store is unavailable: nothing was stored, retry later'),
          },
        },
        options: preflight('feedbackPreflight', 'POST'),
      },
      '/analytics': {
        get: {
          operationId: 'analytics',
          summary: 'Override analytics (governance team)',
          description: [
            'Per service version and models: cards issued, acceptance and override rates (over cards issued,',
            "each card counted by its latest feedback), override reasons, rate of 'input data wrong', and the",
            'weekly risk distribution. Needs the analytics credential (CDS_ANALYTICS_TOKEN), not a CDS client',
            'JWT; answers 404 when none is configured.',
          ].join(' '),
          security: [{ analyticsBearer: [] }, { analyticsBasic: [] }],
          parameters: analyticsScope,
          responses: {
            '200': {
              description: 'The report',
              content: { 'application/json': { schema: schemaRef('AnalyticsReport') } },
            },
            ...analyticsErrors,
          },
        },
        options: preflight('analyticsPreflight', 'GET'),
      },
      '/analytics/page': {
        get: {
          operationId: 'analyticsPage',
          summary: 'Override analytics as an HTML page',
          description:
            'The same report, server-rendered, without script or external asset. A browser can open it with HTTP Basic (any user name, the token as password).',
          security: [{ analyticsBearer: [] }, { analyticsBasic: [] }],
          parameters: analyticsScope,
          responses: {
            '200': { description: 'The page', content: { 'text/html': { schema: { type: 'string' } } } },
            ...analyticsErrors,
          },
        },
        options: preflight('analyticsPagePreflight', 'GET'),
      },
      '/analytics/patient-export': {
        post: {
          operationId: 'patientExport',
          summary: "A patient's audit trail (right of access)",
          description:
            'Every audit event recorded under the pseudonym of the patient id sent in the body (never in the URL, so that it stays out of access logs).',
          security: [{ analyticsBearer: [] }, { analyticsBasic: [] }],
          requestBody: {
            required: true,
            content: { 'application/json': { schema: schemaRef('PatientExportRequest') } },
          },
          responses: {
            '200': {
              description: "The patient's events, in chain order",
              content: { 'application/json': { schema: schemaRef('PatientExport') } },
            },
            '400': errorResponse(400, 'The body is not { patientId }'),
            ...analyticsErrors,
          },
        },
        options: preflight('patientExportPreflight', 'POST'),
      },
      '/analytics/governance': {
        get: {
          operationId: 'governancePage',
          summary: 'Governance page: model versions, model cards, approval records, validation reports',
          description:
            'Every model version on disk with its status, whether it issues cards, a link to its model card and its approval record (approvedBy, approvedAt, report, from CDS_APPROVED_MODELS_FILE), then the local validation reports of CDS_REPORTS_DIR. Self-contained HTML in `lang`, else `Accept-Language`.',
          security: [{ analyticsBearer: [] }, { analyticsBasic: [] }],
          parameters: [governanceLang],
          responses: {
            '200': { description: 'The page', content: { 'text/html': { schema: { type: 'string' } } } },
            '400': errorResponse(400, 'An unknown query parameter or value'),
            ...analyticsErrors,
          },
        },
        options: preflight('governancePagePreflight', 'GET'),
      },
      '/analytics/reports/{name}': {
        parameters: [
          {
            name: 'name',
            in: 'path',
            required: true,
            description: 'File name of the report in CDS_REPORTS_DIR (`*.json`)',
            schema: { type: 'string', pattern: '^[A-Za-z0-9][A-Za-z0-9._-]{0,199}\\.json$' },
          },
        ],
        get: {
          operationId: 'governanceReport',
          summary: 'A local validation report (issue 19): HTML with SVG charts, or its JSON',
          description:
            'Discrimination, calibration, classification at the card threshold, subgroups, drift and rule figures for a period, per model version and mode, with small cells suppressed. HTML in `lang` (else `Accept-Language`), or the JSON with `format=json`. A report built with a minimum cell size below CDS_REPORT_MIN_CELL is not served.',
          security: [{ analyticsBearer: [] }, { analyticsBasic: [] }],
          parameters: [
            governanceLang,
            {
              name: 'format',
              in: 'query',
              required: false,
              description: '`json` for the report object, else the HTML page',
              schema: { type: 'string', enum: ['html', 'json'] },
            },
          ],
          responses: {
            '200': {
              description: 'The report',
              content: { 'text/html': { schema: { type: 'string' } }, 'application/json': {} },
            },
            '400': errorResponse(400, 'An unknown query parameter or value'),
            ...analyticsErrors,
          },
        },
        options: preflight('governanceReportPreflight', 'GET'),
      },
      '/analytics/models/{id}/{version}/model-card': {
        parameters: [
          modelId,
          {
            name: 'version',
            in: 'path',
            required: true,
            description: 'Model version on disk',
            schema: { type: 'string' },
          },
        ],
        get: {
          operationId: 'governanceModelCard',
          summary: 'Model card of any version on disk (HTML page)',
          security: [{ analyticsBearer: [] }, { analyticsBasic: [] }],
          parameters: [governanceLang],
          responses: {
            '200': { description: 'The page', content: { 'text/html': { schema: { type: 'string' } } } },
            '400': errorResponse(400, 'An unknown query parameter or value'),
            ...analyticsErrors,
          },
        },
        options: preflight('governanceModelCardPreflight', 'GET'),
      },
      '/models': {
        get: {
          operationId: 'listModels',
          summary: 'Loaded models',
          description:
            'Each model with its version, status (demonstration or validated), sha256 and model card link.',
          responses: { '200': { description: 'The loaded models', content: { 'application/json': {} } } },
        },
        head: {
          operationId: 'listModelsHead',
          summary: 'Loaded models, headers only',
          responses: { '200': { description: 'Headers only' } },
        },
        options: preflight('listModelsPreflight', 'GET'),
      },
      '/models/{id}/model-card': {
        parameters: [modelId],
        get: {
          operationId: 'modelCard',
          summary: 'Model card (HTML page, markdown or JSON by content negotiation)',
          description:
            'Intended use, population, training data, metrics with subgroups, limits, status, sha256. ' +
            'The format follows `format`, else `Accept` (text/html: a self-contained page; ' +
            'text/markdown, or */* and no header: markdown; application/json: JSON). The page is in ' +
            'the language of `lang`, else `Accept-Language` (fr, en; else the default language).',
          parameters: [
            {
              name: 'format',
              in: 'query',
              required: false,
              schema: { enum: ['html', 'markdown', 'json'] },
            },
            { name: 'lang', in: 'query', required: false, schema: { enum: ['en', 'fr'] } },
          ],
          responses: {
            '200': {
              description: 'The model card',
              content: {
                'text/html': { schema: { type: 'string' } },
                'text/markdown': { schema: { type: 'string' } },
                'application/json': { schema: { type: 'object' } },
              },
            },
            '404': errorResponse(404, 'No such model'),
          },
        },
        head: {
          operationId: 'modelCardHead',
          summary: 'Model card headers',
          responses: { '200': { description: 'Headers only' }, '404': errorResponse(404, 'No such model') },
        },
        options: preflight('modelCardPreflight', 'GET'),
      },
      '/models/{id}/model-card.json': {
        parameters: [modelId],
        get: {
          operationId: 'modelCardJson',
          summary: 'Model card (machine-readable)',
          responses: {
            '200': { description: 'The model card as JSON', content: { 'application/json': {} } },
            '404': errorResponse(404, 'No such model'),
          },
        },
        head: {
          operationId: 'modelCardJsonHead',
          summary: 'Model card JSON headers',
          responses: { '200': { description: 'Headers only' }, '404': errorResponse(404, 'No such model') },
        },
        options: preflight('modelCardJsonPreflight', 'GET'),
      },
      ...opsPaths({ errorResponse, preflight }),
      '/explanations/{uuid}': {
        get: {
          operationId: 'explanationPage',
          summary: 'Explanation page of a model-based card',
          description:
            'Server-rendered HTML (no script, no external asset): the estimate, a waterfall chart of the contributions, the data used, the model card summary and the patient sentences. The link on the card is the credential (no CDS client JWT); a forged, expired or unknown link gets the same 404 page.',
          security: [],
          parameters: [
            {
              name: 'uuid',
              in: 'path',
              required: true,
              description: 'The card uuid',
              schema: { type: 'string' },
            },
            {
              name: 'exp',
              in: 'query',
              required: true,
              description: 'Expiry of the link (unix seconds)',
              schema: { type: 'string', pattern: '^[1-9][0-9]*$' },
            },
            {
              name: 'sig',
              in: 'query',
              required: true,
              description: 'base64url HMAC-SHA256 of "uuid.exp" (CDS_EXPLANATION_KEY)',
              schema: { type: 'string', pattern: '^[A-Za-z0-9_-]{43}$' },
            },
            {
              name: 'lang',
              in: 'query',
              required: false,
              description: 'Page language; default: the card language',
              schema: { type: 'string', enum: ['en', 'fr'] },
            },
          ],
          responses: {
            '200': { description: 'The page', content: { 'text/html': { schema: { type: 'string' } } } },
            '404': {
              description:
                'The link is not valid, has expired or is unknown to this instance (one fixed page)',
              content: { 'text/html': { schema: { type: 'string' } } },
            },
          },
        },
        options: preflight('explanationPagePreflight', 'GET'),
      },
    },
    components: {
      schemas: { ...SCHEMAS, ServiceDefinition, ModelManifest, ...contextSchemas },
      securitySchemes: {
        cdsClientJwt: {
          type: 'http',
          scheme: 'bearer',
          bearerFormat: 'JWT',
          description: [
            'A JWT signed by the CDS client (CDS Hooks 2.0 §"Trusting CDS Clients") with a key of an issuer',
            'listed in CDS_TRUSTED_ISSUERS_FILE. Header: alg one of RS256/384/512, PS256/384/512,',
            'ES256/384/512; kid required; jku only when allowlisted for the issuer. Claims: iss (trusted),',
            'aud (exactly CDS_PUBLIC_URL followed by the path called, without the query string), exp, iat',
            '(exp - iat at most CDS_JWT_MAX_LIFETIME_S, both within CDS_JWT_CLOCK_SKEW_S of the server clock),',
            'jti (single use), tenant (required to match when the issuer entry names one); nbf honoured.',
            'Any failure is a 401 with the same body; the reason is logged.',
          ].join(' '),
        },
        analyticsBearer: { type: 'http', scheme: 'bearer', description: 'CDS_ANALYTICS_TOKEN' },
        analyticsBasic: {
          type: 'http',
          scheme: 'basic',
          description: 'Any user name, CDS_ANALYTICS_TOKEN as password (lets a browser open the page)',
        },
        ...OPS_SECURITY_SCHEMES,
      },
      headers: {
        'X-Request-Id': {
          description: 'The id of the request in the service logs',
          schema: { type: 'string', format: 'uuid' },
        },
      },
    },
    'x-error-codes': errorCodeTable(),
  };
}

const modelId = {
  name: 'id',
  in: 'path',
  required: true,
  description: 'A model id (GET /models)',
  schema: { type: 'string' },
} as const;

/** The text of openapi.yaml: stable options, no anchors (shared schema objects are repeated), no folding. */
export function renderOpenApi(): string {
  const header = '# Generated by `npm run openapi` from the code (tools/openapi/build.ts). Do not edit.\n';
  return header + stringify(buildOpenApi(), { lineWidth: 0, aliasDuplicateObjects: false, indent: 2 });
}
