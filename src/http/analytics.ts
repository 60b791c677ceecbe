/**
 * The governance team's endpoints, outside `/cds-services` and protected by their own credential
 * (`analyticsToken`), not by the CDS clients' JWTs:
 * - `GET /analytics`: the override analytics report as JSON;
 * - `GET /analytics/page`: the same report as a self-contained HTML page;
 * - `POST /analytics/patient-export` `{ "patientId": … }`: a patient's audit events (right of access),
 *   found through the keyed pseudonym. POST so that the patient id never appears in a URL or access log.
 *
 * - the governance page, the stored validation reports and every version's model card (governance.ts).
 *
 * The credential is sent as `Authorization: Bearer <token>`, or as the password of HTTP Basic (any user
 * name), which lets a browser open the page. Without a configured token every route answers 404. A 401
 * sends each challenge in its own `WWW-Authenticate` header (RFC 9110 §11.6.1 allows several challenges
 * in one, but browsers read only the first of a header: Chromium never prompted for Basic behind Bearer),
 * Basic first to a browser (`Accept: text/html`), Bearer first to anything else.
 */
import { createHash, timingSafeEqual } from 'node:crypto';
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import { renderReportPage } from '../analytics/page.js';
import { buildReport } from '../analytics/report.js';
import { CdsError } from '../errors.js';
import type { AuditTrail } from '../audit/audit-trail.js';
import type { AnalyticsScope } from '../audit/store.js';
import { describeError, validatorFor } from '../request/validate.js';
import { type GovernanceDeps, registerGovernanceRoutes } from './governance.js';

export interface AnalyticsDeps {
  audit: Pick<AuditTrail, 'use' | 'pseudonymise'>;
  token: string | undefined;
  now: () => Date;
  /** The governance page's sources; without them, no governance route. */
  governance?: Omit<GovernanceDeps, 'now' | 'csp'>;
}

/** The two challenges of a 401 (RFC 7617 §2.1: the charset tells the browser to send UTF-8). */
const BASIC_CHALLENGE = 'Basic realm="cds-analytics", charset="UTF-8"';
const BEARER_CHALLENGE = 'Bearer realm="cds-analytics"';

/** Basic first to a browser asking for a page, so that it prompts; Bearer first to API clients. */
export function challenges(accept: string | undefined): string[] {
  return /\btext\/html\b/i.test(accept ?? '')
    ? [BASIC_CHALLENGE, BEARER_CHALLENGE]
    : [BEARER_CHALLENGE, BASIC_CHALLENGE];
}

/** No script, no external asset, not framed: the page needs nothing but its own inline style. */
export const PAGE_CSP =
  "default-src 'none'; style-src 'unsafe-inline'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'";

/** The credential in an Authorization header: a Bearer token, or a Basic password. */
export function presentedCredential(header: string | undefined): string | undefined {
  const match = /^(\w+) +(\S+)$/.exec(header?.trim() ?? '');
  if (!match) return undefined;
  const [, scheme, value] = match;
  if (scheme!.toLowerCase() === 'bearer') return value;
  if (scheme!.toLowerCase() === 'basic') {
    const decoded = Buffer.from(value!, 'base64').toString('utf8');
    const colon = decoded.indexOf(':');
    return colon < 0 ? undefined : decoded.slice(colon + 1);
  }
  return undefined;
}

const digest = (text: string) => createHash('sha256').update(text, 'utf8').digest();

/** Compares in constant time (over digests, so the lengths do not leak either). */
function matches(given: string | undefined, expected: string): boolean {
  return given !== undefined && timingSafeEqual(digest(given), digest(expected));
}

/**
 * `?issuer=…&tenant=…`: the figures of one client's cards only (tenancy). A tenant is within an issuer:
 * tenant alone would mix the tenants of the same name of several EHR vendors.
 */
const SCOPE_QUERY = {
  type: 'object',
  additionalProperties: false,
  properties: {
    issuer: { type: 'string', minLength: 1, maxLength: 2048 },
    tenant: { type: 'string', minLength: 1, maxLength: 256 },
  },
} as const;

function scopeOf(query: unknown): AnalyticsScope {
  const { issuer, tenant } = (query ?? {}) as AnalyticsScope;
  if (tenant !== undefined && issuer === undefined)
    throw new CdsError('CDS_ERR_REQUEST_INVALID', { reason: 'query: tenant is given within an issuer' });
  return { ...(issuer === undefined ? {} : { issuer }), ...(tenant === undefined ? {} : { tenant }) };
}

export function registerAnalytics(app: FastifyInstance, deps: AnalyticsDeps): void {
  const { audit, token, now } = deps;
  const report = async (request: FastifyRequest) => {
    const scope = scopeOf(request.query);
    return { ...buildReport(await audit.use((store) => store.analytics(scope)), now()), scope };
  };

  void app.register(async (scope) => {
    scope.addHook('onRequest', async (request: FastifyRequest, reply: FastifyReply) => {
      reply.header('cache-control', 'no-store');
      if (!token) throw new CdsError('CDS_ERR_ANALYTICS_DISABLED');
      if (!matches(presentedCredential(request.headers.authorization), token)) {
        reply.header('www-authenticate', challenges(request.headers.accept));
        throw new CdsError('CDS_ERR_ANALYTICS_UNAUTHORIZED');
      }
    });

    // No HEAD twins: these are read by people and scripts with GET.
    scope.get('/analytics', { exposeHeadRoute: false, schema: { querystring: SCOPE_QUERY } }, report);

    const pageOptions = { exposeHeadRoute: false, schema: { querystring: SCOPE_QUERY } };
    scope.get('/analytics/page', pageOptions, async (request, reply) => {
      const page = renderReportPage(await report(request));
      return reply.type('text/html; charset=utf-8').header('content-security-policy', PAGE_CSP).send(page);
    });

    if (deps.governance) registerGovernanceRoutes(scope, { ...deps.governance, now, csp: PAGE_CSP });

    scope.post('/analytics/patient-export', async (request) => {
      const validate = validatorFor('PatientExportRequest');
      if (!validate(request.body)) {
        throw new CdsError('CDS_ERR_REQUEST_INVALID', { reason: describeError(validate.errors, 'body') });
      }
      const pseudonym = audit.pseudonymise((request.body as { patientId: string }).patientId);
      const events = await audit.use((store) => store.eventsFor(pseudonym));
      request.log.info({ events: events.length }, 'patient audit export');
      return { generatedAt: now().toISOString(), pseudonym, events };
    });
  });
}
