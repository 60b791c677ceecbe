/**
 * The governance team's pages (issue 19), inside the analytics scope (same credential, see analytics.ts):
 * - `GET /analytics/governance`: the model versions with their model cards and approval records, and the
 *   local validation reports (src/governance/page.ts);
 * - `GET /analytics/reports/{name}`: one report of the reports folder, as HTML in the reader's language
 *   (`?lang=`, else `Accept-Language`) or as its JSON (`?format=json`);
 * - `GET /analytics/models/{id}/{version}/model-card`: the model card of any version on disk (the public
 *   `/models/{id}/model-card` shows the serving version only).
 */
import type { FastifyInstance, FastifyRequest } from 'fastify';
import { CdsError } from '../errors.js';
import { renderModelCardPage } from '../explanation-pages/model-card-page.js';
import { type Approval, type GovernanceModelVersion, renderGovernancePage } from '../governance/page.js';
import { renderReportHtml } from '../governance/report.js';
import { listStoredReports, readStoredReport } from '../governance/reports-dir.js';
import type { Language } from '../language.js';
import { type ApprovedModel, modelKey, type ModelRegistry, readApprovedModels } from '../scoring/load.js';
import { pickLanguage } from './service-call.js';

export interface GovernanceDeps {
  /** The version of each model the services run, by id. */
  models: ModelRegistry;
  /** Every version on disk, by `modelKey(id, version)`. */
  versions: ModelRegistry;
  approvedModelsFile: string | undefined;
  reportsDir: string | undefined;
  reportMinCell: number;
  defaultLanguage: Language;
  now: () => Date;
  /** The page's Content-Security-Policy. */
  csp: string;
}

const LANG_QUERY = {
  type: 'object',
  additionalProperties: false,
  properties: { lang: { type: 'string', enum: ['en', 'fr'] } },
} as const;

const REPORT_QUERY = {
  type: 'object',
  additionalProperties: false,
  properties: {
    lang: { type: 'string', enum: ['en', 'fr'] },
    format: { type: 'string', enum: ['html', 'json'] },
  },
} as const;

function languageOf(request: FastifyRequest, fallback: Language): Language {
  const { lang } = (request.query ?? {}) as { lang?: Language };
  return lang ?? pickLanguage(request.headers['accept-language'], fallback);
}

/** The approval record of each version, from the approved-models file as it reads now. */
function approvals(file: string | undefined): (id: string, version: string, sha256: string) => Approval {
  if (!file) return () => ({ state: 'no-list' });
  let list: readonly ApprovedModel[];
  try {
    list = readApprovedModels(file).models;
  } catch (error) {
    const reason = (error as CdsError).message;
    return () => ({ state: 'list-unreadable', reason });
  }
  return (id, version, sha256) => {
    const entry = list.find((a) => a.id === id && a.version === version && a.sha256 === sha256);
    if (!entry) return { state: 'not-listed' };
    const { approvedBy, approvedAt, report } = entry;
    return {
      state: 'approved',
      ...(approvedBy === undefined ? {} : { approvedBy }),
      ...(approvedAt === undefined ? {} : { approvedAt }),
      ...(report === undefined ? {} : { report }),
    };
  };
}

const notFound = (url: string) =>
  new CdsError('CDS_ERR_ROUTE_NOT_FOUND', { method: 'GET', url: url.slice(0, 120) });

/** Registers the governance routes in the (authenticated) analytics scope. */
export function registerGovernanceRoutes(scope: FastifyInstance, deps: GovernanceDeps): void {
  const options = { exposeHeadRoute: false, schema: { querystring: LANG_QUERY } };

  scope.get('/analytics/governance', options, async (request, reply) => {
    const lang = languageOf(request, deps.defaultLanguage);
    const approvalOf = approvals(deps.approvedModelsFile);
    const models: GovernanceModelVersion[] = [...deps.versions.values()]
      .map(({ manifest: m, sha256 }) => ({
        id: m.id,
        version: m.version,
        title: m.title[lang],
        statusText: m.statusText[lang],
        sha256,
        serving: deps.models.get(m.id)?.manifest.version === m.version,
        approval: approvalOf(m.id, m.version, sha256),
      }))
      .sort(
        (a, b) => a.id.localeCompare(b.id) || b.version.localeCompare(a.version, 'en', { numeric: true }),
      );
    const reports = deps.reportsDir ? listStoredReports(deps.reportsDir, deps.reportMinCell) : null;
    const page = renderGovernancePage({ generatedAt: deps.now().toISOString(), models, reports }, lang);
    return reply
      .type('text/html; charset=utf-8')
      .header('content-language', lang)
      .header('content-security-policy', deps.csp)
      .send(page);
  });

  scope.get<{ Params: { name: string }; Querystring: { lang?: Language; format?: 'html' | 'json' } }>(
    '/analytics/reports/:name',
    { exposeHeadRoute: false, schema: { querystring: REPORT_QUERY } },
    async (request, reply) => {
      const stored = deps.reportsDir
        ? readStoredReport(deps.reportsDir, request.params.name, deps.reportMinCell)
        : undefined;
      if (!stored || stored.status !== 'ok') throw notFound(request.url);
      if (request.query.format === 'json') return stored.report;
      const lang = languageOf(request, deps.defaultLanguage);
      return reply
        .type('text/html; charset=utf-8')
        .header('content-language', lang)
        .header('content-security-policy', deps.csp)
        .send(renderReportHtml(stored.report, lang));
    },
  );

  scope.get<{ Params: { id: string; version: string }; Querystring: { lang?: Language } }>(
    '/analytics/models/:id/:version/model-card',
    options,
    async (request, reply) => {
      const model = deps.versions.get(modelKey(request.params.id, request.params.version));
      if (!model) throw notFound(request.url);
      const lang = languageOf(request, deps.defaultLanguage);
      const { manifest } = model;
      const translated = lang === 'fr' && model.card.markdownFr !== undefined;
      return reply
        .type('text/html; charset=utf-8')
        .header('content-language', lang)
        .header('content-security-policy', deps.csp)
        .send(
          renderModelCardPage(
            {
              id: manifest.id,
              title: manifest.title[lang],
              markdown: translated ? model.card.markdownFr! : model.card.markdown,
              language: translated ? 'fr' : 'en',
            },
            lang,
          ),
        );
    },
  );
}
