/**
 * Model cards: the one document that says what a bundled model is for, whom it applies to, what it was
 * trained on, how well it did on held-out data (overall and per subgroup), where it fails, and which exact
 * file it describes.
 *
 * Why two renderings of one structure: clinicians read the markdown; the service, the audit trail and
 * the tests read the JSON. Both come from the same `ModelCardData`, checked here, so they cannot drift.
 *
 * Contract:
 * - The status is fixed: every bundled model is a demonstration trained on simulated data, and both
 *   renderings open with that warning (the markdown also in French). A card with any other status, or
 *   with training data that is not marked simulated, is refused.
 * - Inconsistent cards are refused with an `Error` naming the field: unknown or duplicate reference ids,
 *   duplicate feature ids, a sha256 that is not 64 lower-case hex digits, risk bands that overlap or
 *   leave [0, 1], metrics computed at a threshold other than the card's, non-finite numbers.
 * - Output is deterministic: no timestamp (provenance is the version, seed and training command), JSON
 *   keys sorted at every level, 2-space indent, trailing newline; numbers in the markdown have fixed
 *   decimals (percentages 1, AUC and Brier 3, calibration 2, coefficients 3) and `—` where undefined.
 * - Both outputs are printed exactly as the repository's prettier would print them, so the committed
 *   card passes `prettier --check` without being listed in .prettierignore (tests run prettier on them).
 */
import type { CalibratedRange } from '../../src/scoring/model-card.js';
import type { Evaluation, SubgroupEvaluation } from './metrics.js';
import { renderMarkdown } from './model-card-markdown.js';

/** The fixed status of every bundled model. */
export const DEMONSTRATION_STATUS =
  'Demonstration model trained on simulated data. Not validated; not for clinical use.' as const;

/** The same statement in French, shown beside it in the markdown. */
export const DEMONSTRATION_STATUS_FR =
  'Modèle de démonstration entraîné sur des données simulées. Non validé ; ne pas utiliser en clinique.' as const;

export interface LocalizedText {
  en: string;
  fr: string;
}

/** One input of the model, with where its simulated effect comes from. */
export interface ModelCardFeature {
  /** The manifest's feature id. */
  id: string;
  label: string;
  /** UCUM unit ('1' for dimensionless and yes/no inputs). */
  unit: string;
  /** The published effect the simulation used, in words (e.g. "OR 1.9 per 5 kg/m²"), or why there is none. */
  effectSize: string;
  /** Ids in `references` that support `effectSize`. */
  sources: string[];
  /** Whether the simulation makes the outcome depend on this feature (false: a deliberate noise input). */
  signal: boolean;
  /** Fitted coefficient on the log-odds scale per unit, for linear models. */
  coefficient?: number;
}

export interface ModelCardReference {
  id: string;
  citation: string;
  doi?: string;
  url?: string;
}

/** A named range of predicted risk, lower bound included, upper bound excluded (1 included for the last). */
export interface RiskBand {
  id: string;
  label: LocalizedText;
  lower: number;
  upper: number;
}

/** A subgroup's evaluation, with the variable that defines it (sex, age band, skin phototype…). */
export interface ModelCardSubgroup extends SubgroupEvaluation {
  variable: string;
}

export interface ModelCardData {
  id: string;
  version: string;
  title: LocalizedText;
  status: typeof DEMONSTRATION_STATUS;
  regulatoryStatus: string;
  /** e.g. "logistic regression (12 inputs)" or "gradient-boosted trees (50 trees, depth 3)". */
  modelType: string;
  intendedUse: string;
  /** Who reads the estimate. */
  intendedUsers: string;
  outOfScope: string[];
  population: { description: string; inclusion: string[]; exclusion: string[] };
  outcome: { description: string; horizon: string };
  features: ModelCardFeature[];
  trainingData: {
    kind: 'simulated';
    /** What generated the cohort (program, distributions of the inputs). */
    generator: string;
    seed: number;
    nTrain: number;
    nTest: number;
    prevalence: { train: number; test: number };
    /** The true risk model of the simulation, and its sources. */
    generatingModel: { description: string; sources: string[] };
  };
  metrics: { overall: Evaluation; subgroups: ModelCardSubgroup[] };
  threshold: { value: number; rationale: string };
  riskBands: RiskBand[];
  /** How the contributions on the cards are computed, and the background sample they are measured against. */
  explanations?: { method: string; background: string };
  references: ModelCardReference[];
  limits: string[];
  /** sha256 (hex) of the model.onnx the card describes. */
  onnxSha256: string;
  /** Where the model is stated to be calibrated (the owner's statement, carried over by training). */
  calibratedRange?: CalibratedRange;
  /** ISO dates (fixed for the bundled models, so the bytes are reproducible). */
  dates: { trained: string; card: string };
  /** The command that reproduces the model and this card. */
  trainingCommand: string;
  /** Tool and version that wrote the card (no timestamp, so the bytes are reproducible). */
  createdBy: string;
}

function fail(field: string, problem: string): never {
  throw new Error(`model card ${field}: ${problem}`);
}

function checkReferences(card: ModelCardData): void {
  const ids = card.references.map((r) => r.id);
  const duplicate = ids.find((id, i) => ids.indexOf(id) !== i);
  if (duplicate !== undefined) fail('references', `id '${duplicate}' is used twice`);
  const cite = (field: string, sources: readonly string[]): void => {
    for (const source of sources)
      if (!ids.includes(source)) fail(field, `cites unknown reference '${source}'`);
  };
  card.features.forEach((f) => cite(`features.${f.id}.sources`, f.sources));
  cite('trainingData.generatingModel.sources', card.trainingData.generatingModel.sources);
}

function checkBands(bands: readonly RiskBand[]): void {
  let previous = 0;
  bands.forEach((band, i) => {
    if (!(band.lower >= previous && band.lower < band.upper && band.upper <= 1)) {
      fail(
        `riskBands[${i}]`,
        `[${band.lower}, ${band.upper}) must lie in [0, 1], ascending and not overlapping`,
      );
    }
    previous = band.upper;
  });
}

function checkThresholds(card: ModelCardData): void {
  const value = card.threshold.value;
  if (!(value > 0 && value < 1)) fail('threshold.value', `must be a probability in (0, 1) (got ${value})`);
  const evaluations = [card.metrics.overall, ...card.metrics.subgroups];
  if (evaluations.some((e) => e.atThreshold.threshold !== value)) {
    fail('metrics', `were computed at a threshold other than ${value}`);
  }
}

function check(card: ModelCardData): void {
  if (card.status !== DEMONSTRATION_STATUS) fail('status', `must be "${DEMONSTRATION_STATUS}"`);
  if (card.trainingData.kind !== 'simulated') fail('trainingData.kind', "must be 'simulated'");
  if (card.id.trim() === '') fail('id', 'is empty');
  if (card.version.trim() === '') fail('version', 'is empty');
  if (!/^[0-9a-f]{64}$/.test(card.onnxSha256)) fail('onnxSha256', 'must be 64 lower-case hex digits');
  const featureIds = card.features.map((f) => f.id);
  const duplicate = featureIds.find((id, i) => featureIds.indexOf(id) !== i);
  if (duplicate !== undefined) fail('features', `id '${duplicate}' is used twice`);
  checkReferences(card);
  checkBands(card.riskBands);
  checkThresholds(card);
}

/** Copy with object keys sorted at every level; throws on a non-finite number (JSON would write null). */
function canonical(value: unknown, path: string): unknown {
  if (typeof value === 'number' && !Number.isFinite(value)) fail(path, `is not a finite number (${value})`);
  if (Array.isArray(value)) return value.map((v, i) => canonical(v, `${path}[${i}]`));
  if (value !== null && typeof value === 'object') {
    const entries = Object.entries(value)
      .filter(([, v]) => v !== undefined)
      .sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0));
    return Object.fromEntries(entries.map(([k, v]) => [k, canonical(v, path === '' ? k : `${path}.${k}`)]));
  }
  return value;
}

/** The repository's prettier printWidth: a card is written the way prettier would print it. */
const PRINT_WIDTH = 110;

/**
 * JSON with a 2-space indent, printed as prettier prints JSON: objects always expanded, an array of
 * scalars on one line when it fits in the print width (with the text before it and the comma after it),
 * otherwise one element per line. Model cards hold no long arrays of numbers (which prettier would fill).
 */
function printJson(value: unknown, indent: string, prefix: number, comma: boolean): string {
  const inner = `${indent}  `;
  if (Array.isArray(value)) {
    if (value.length === 0) return '[]';
    if (value.every((v) => v === null || typeof v !== 'object')) {
      const oneLine = `[${value.map((v) => JSON.stringify(v)).join(', ')}]`;
      if ([...oneLine].length + prefix + (comma ? 1 : 0) <= PRINT_WIDTH) return oneLine;
    }
    const items = value.map((v, i) => inner + printJson(v, inner, inner.length, i < value.length - 1));
    return `[\n${items.join(',\n')}\n${indent}]`;
  }
  if (value !== null && typeof value === 'object') {
    const entries = Object.entries(value);
    if (entries.length === 0) return '{}';
    const lines = entries.map(([key, v], i) => {
      const head = `${inner}${JSON.stringify(key)}: `;
      return head + printJson(v, inner, [...head].length, i < entries.length - 1);
    });
    return `{\n${lines.join(',\n')}\n${indent}}`;
  }
  return JSON.stringify(value);
}

/**
 * Renders a model card as clinician-readable markdown and canonical JSON.
 *
 * @throws Error naming the field when the card is inconsistent (see the header)
 */
export function renderModelCard(card: ModelCardData): { markdown: string; json: string } {
  check(card);
  const json = `${printJson(canonical(card, ''), '', 0, false)}\n`;
  return { markdown: renderMarkdown(card), json };
}
