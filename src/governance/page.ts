/**
 * The governance page (issue 19), behind the analytics credential: every model version on disk with its
 * status, whether it issues cards, its model card, and its approval record (who approved it, when, on
 * which report, from the approved-models file); then the local validation reports of the reports folder,
 * each in English, French and JSON. Self-contained HTML: inline CSS, no script, every value escaped.
 */
import { escapeHtml } from '../analytics/page.js';
import type { StoredReport } from './reports-dir.js';

type Lang = 'en' | 'fr';

export type Approval =
  | { state: 'approved'; approvedBy?: string; approvedAt?: string; report?: string }
  | { state: 'not-listed' }
  | { state: 'no-list' }
  | { state: 'list-unreadable'; reason: string };

export interface GovernanceModelVersion {
  id: string;
  version: string;
  title: string;
  statusText: string;
  sha256: string;
  /** The version the services run (its cards are shown). */
  serving: boolean;
  approval: Approval;
}

export interface GovernancePage {
  generatedAt: string;
  models: GovernanceModelVersion[];
  /** Null when no reports folder is configured. */
  reports: StoredReport[] | null;
}

const TEXT = {
  en: {
    title: 'Model governance',
    intro:
      'Models on this service, their approval records and the local validation reports. The bundled models are demonstration models trained on simulated data.',
    models: 'Model versions',
    model: 'Model',
    serving: 'issues cards',
    notServing: 'on disk, no card (silent evaluation possible)',
    card: 'model card',
    approval: 'Approval',
    approvedBy: 'approved by',
    approvedAt: 'on',
    onReport: 'report',
    missingReport: '(not in the reports folder)',
    notListed: 'not in the approved-models file: it cannot load while that file is set',
    noList: 'no approved-models file configured (CDS_APPROVED_MODELS_FILE): any checked model loads',
    unreadable: 'approved-models file unreadable',
    reports: 'Local validation reports',
    noDir: 'No reports folder configured (CDS_REPORTS_DIR).',
    noReport: 'No report in the reports folder.',
    period: 'Period',
    generated: 'Generated',
    covers: 'Covers',
    open: 'Open',
    notShown: 'not shown',
  },
  fr: {
    title: 'Gouvernance des modèles',
    intro:
      'Modèles de ce service, leurs décisions d’approbation et les rapports de validation locale. Les modèles fournis sont des modèles de démonstration entraînés sur des données simulées.',
    models: 'Versions des modèles',
    model: 'Modèle',
    serving: 'produit les cartes',
    notServing: 'présent, sans carte (évaluation silencieuse possible)',
    card: 'fiche du modèle',
    approval: 'Approbation',
    approvedBy: 'approuvé par',
    approvedAt: 'le',
    onReport: 'rapport',
    missingReport: '(absent du dossier des rapports)',
    notListed:
      'absent du fichier des modèles approuvés : il ne peut pas être chargé tant que ce fichier est défini',
    noList: 'aucun fichier des modèles approuvés (CDS_APPROVED_MODELS_FILE) : tout modèle vérifié est chargé',
    unreadable: 'fichier des modèles approuvés illisible',
    reports: 'Rapports de validation locale',
    noDir: 'Aucun dossier de rapports configuré (CDS_REPORTS_DIR).',
    noReport: 'Aucun rapport dans le dossier.',
    period: 'Période',
    generated: 'Produit le',
    covers: 'Porte sur',
    open: 'Ouvrir',
    notShown: 'non affiché',
  },
} as const;

type Text = (typeof TEXT)[Lang];

const reportLinks = (name: string, lang: Lang) => {
  const url = `/analytics/reports/${encodeURIComponent(name)}`;
  return `<a href="${url}?lang=${lang}">HTML</a> · <a href="${url}?lang=${lang === 'en' ? 'fr' : 'en'}">${lang === 'en' ? 'FR' : 'EN'}</a> · <a href="${url}?format=json">JSON</a>`;
};

function approvalCell(a: Approval, known: ReadonlySet<string>, t: Text, lang: Lang): string {
  switch (a.state) {
    case 'approved': {
      const parts = [
        a.approvedBy ? `${t.approvedBy} <strong>${escapeHtml(a.approvedBy)}</strong>` : '',
        a.approvedAt ? `${t.approvedAt} ${escapeHtml(a.approvedAt)}` : '',
        a.report
          ? `${t.onReport} ${known.has(a.report) ? `<a href="/analytics/reports/${encodeURIComponent(a.report)}?lang=${lang}">${escapeHtml(a.report)}</a>` : `${escapeHtml(a.report)} ${t.missingReport}`}`
          : '',
      ].filter(Boolean);
      return `<span class="ok">✔</span> ${parts.join(', ') || '✔'}`;
    }
    case 'not-listed':
      return `<span class="warn">${t.notListed}</span>`;
    case 'no-list':
      return `<span class="note">${t.noList}</span>`;
    case 'list-unreadable':
      return `<span class="warn">${t.unreadable}: ${escapeHtml(a.reason)}</span>`;
  }
}

function modelRow(m: GovernanceModelVersion, known: ReadonlySet<string>, t: Text, lang: Lang): string {
  const card = `/analytics/models/${encodeURIComponent(m.id)}/${encodeURIComponent(m.version)}/model-card?lang=${lang}`;
  return `<tr><td><strong>${escapeHtml(m.title)}</strong><br><code>${escapeHtml(m.id)} ${escapeHtml(m.version)}</code> <small>sha256 ${escapeHtml(m.sha256.slice(0, 12))}…</small><br><small>${escapeHtml(m.statusText)}</small></td><td>${m.serving ? `<strong>${t.serving}</strong>` : t.notServing}</td><td><a href="${card}">${t.card}</a></td><td>${approvalCell(m.approval, known, t, lang)}</td></tr>`;
}

function reportRow(r: StoredReport, t: Text, lang: Lang): string {
  if (r.status !== 'ok')
    return `<tr><td><code>${escapeHtml(r.name)}</code></td><td colspan="4" class="warn">${t.notShown}: ${escapeHtml(r.reason)}</td></tr>`;
  const { report } = r;
  const covers = report.models
    .map((m) => `${escapeHtml(m.modelId)} ${escapeHtml(m.modelVersion)} (${m.mode})`)
    .join(', ');
  return `<tr><td><code>${escapeHtml(r.name)}</code></td><td>${escapeHtml(report.period.from)} – ${escapeHtml(report.period.to)}</td><td>${escapeHtml(report.generatedAt.slice(0, 10))}</td><td>${covers || '—'}</td><td>${reportLinks(r.name, lang)}</td></tr>`;
}

/** Renders the governance page in one language. */
export function renderGovernancePage(page: GovernancePage, lang: Lang): string {
  const t = TEXT[lang];
  const known = new Set((page.reports ?? []).filter((r) => r.status === 'ok').map((r) => r.name));
  const reports =
    page.reports === null
      ? `<p>${t.noDir}</p>`
      : page.reports.length === 0
        ? `<p>${t.noReport}</p>`
        : `<table><tr><th></th><th>${t.period}</th><th>${t.generated}</th><th>${t.covers}</th><th>${t.open}</th></tr>${page.reports.map((r) => reportRow(r, t, lang)).join('')}</table>`;
  return `<!doctype html>
<html lang="${lang}">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>${t.title}</title>
<style>
body{font:15px/1.4 system-ui,sans-serif;margin:2rem;color:#1b1b1b;max-width:64rem}
table{border-collapse:collapse;margin:.5rem 0 1rem}
th,td{border-bottom:1px solid #ddd;padding:.35rem .75rem;text-align:left;vertical-align:top}
.ok{color:#1e7b34}.warn{color:#a33}.note{color:#555}
</style>
</head>
<body>
<h1>${t.title}</h1>
<p>${t.intro}</p>
<h2>${t.models}</h2>
<table><tr><th>${t.model}</th><th></th><th></th><th>${t.approval}</th></tr>${page.models.map((m) => modelRow(m, known, t, lang)).join('')}</table>
<h2>${t.reports}</h2>
${reports}
<footer><small>${escapeHtml(page.generatedAt)}</small></footer>
</body>
</html>
`;
}
