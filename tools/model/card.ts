/**
 * `model card`: checks a model card (model-card.json) against the sections the service requires
 * (src/scoring/model-card.ts) and renders it as markdown: to stdout, or into the folder with --write.
 */
import { createHash } from 'node:crypto';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { parse } from 'yaml';
import { modelCardProblems } from '../../src/scoring/load.js';

/** The manifest fields the card depends on, read without the other checks (fields may be unfilled). */
function manifestOf(folder: string) {
  const m = parse(readFileSync(join(folder, 'manifest.yaml'), 'utf8')) as {
    id: string;
    version: string;
    file: string;
    modelCard: { markdown: string; json: string };
  };
  return m;
}

const TITLES: Record<string, string> = {
  intendedUse: 'Intended use',
  intendedUsers: 'Intended users',
  population: 'Population',
  trainingData: 'Training data',
  outcome: 'Outcome and horizon',
  metrics: 'Metrics',
  limits: 'Limits',
};

const label = (key: string) =>
  key.replace(/([a-z0-9])([A-Z])/g, '$1 $2').replace(/^./, (c) => c.toUpperCase());

/** A JSON value as markdown: text as is, lists as bullets, objects as "Key: value" bullets. */
function block(value: unknown, indent = ''): string {
  if (Array.isArray(value)) return value.map((v) => `${indent}- ${inline(v, `${indent}  `)}`).join('\n');
  if (value !== null && typeof value === 'object') {
    return Object.entries(value)
      .map(([k, v]) => `${indent}- **${label(k)}:** ${inline(v, `${indent}  `)}`)
      .join('\n');
  }
  return `${indent}${String(value)}`;
}

function inline(value: unknown, indent: string): string {
  if (value !== null && typeof value === 'object') return `\n${block(value, indent)}`;
  return String(value);
}

/** Renders any card holding the required sections; other fields follow under their own headings. */
export function renderCardMarkdown(json: Record<string, unknown>): string {
  const t = json.title as string | { en?: string } | undefined;
  const title = typeof t === 'string' ? t : (t?.en ?? String(json.id));
  const dates = (json.dates ?? {}) as Record<string, unknown>;
  const head = [
    `# ${title} — model card`,
    `> **${String(json.status)}**`,
    [
      '|  |  |',
      '| --- | --- |',
      `| Model id | \`${String(json.id)}\` |`,
      `| Version | ${String(json.version)} |`,
      `| Status | ${String(json.status)} |`,
      `| ONNX sha256 | \`${String(json.onnxSha256)}\` |`,
      ...Object.entries(dates).map(([k, v]) => `| ${label(k)} | ${String(v)} |`),
    ].join('\n'),
  ];
  const shown = new Set(['id', 'version', 'title', 'status', 'onnxSha256', 'dates']);
  const sections = [
    ...Object.keys(TITLES),
    ...Object.keys(json).filter((k) => !shown.has(k) && !(k in TITLES)),
  ]
    .filter((k) => json[k] !== undefined)
    .map((k) => `## ${TITLES[k] ?? label(k)}\n\n${block(json[k])}`);
  return `${[...head, ...sections].join('\n\n')}\n`;
}

export interface CardReport {
  ok: boolean;
  lines: string[];
  markdown?: string;
}

/** Checks the card of the model folder `folder`; renders it when it holds every required section. */
export function checkCard(folder: string): CardReport {
  const manifest = manifestOf(folder);
  const sha256 = createHash('sha256')
    .update(readFileSync(join(folder, manifest.file)))
    .digest('hex');
  const json = JSON.parse(readFileSync(join(folder, manifest.modelCard.json), 'utf8')) as Record<
    string,
    unknown
  >;
  const markdown = renderCardMarkdown(json);
  // The markdown checked is the one rendered: what --write would put beside the JSON.
  const problems = modelCardProblems({ json, markdown }, manifest, sha256);
  if (problems.length > 0) return { ok: false, lines: problems.map((p) => `✗ ${p}`) };
  return { ok: true, lines: [`✓ ${manifest.modelCard.json} has every required section`], markdown };
}

export function writeCard(folder: string, markdown: string): string {
  const path = join(folder, manifestOf(folder).modelCard.markdown);
  writeFileSync(path, markdown);
  return path;
}
