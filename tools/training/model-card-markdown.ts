/**
 * The markdown rendering of a model card, for clinicians: the demonstration warning first, then what
 * the model is for and whom it applies to, then the evidence (training data, held-out metrics overall and
 * per subgroup, calibration), its limits and sources, and last the provenance of the file.
 *
 * Why fixed decimals and `—`: the card is committed next to the model and compared byte for byte across
 * runs, so every number has one spelling (percentages to 0.1 %, AUC and Brier to 0.001, calibration to
 * 0.01, no "-0.00"), and an undefined quantity reads as a dash explained under the table, never "NaN".
 * Why padded tables and `_italics_`: that is how prettier prints markdown, so a committed card already
 * passes `prettier --check` and reads well as plain text (a test runs prettier over a rendered card).
 * Validation lives in model-card.ts; this module only formats a card that passed it.
 */
import type { Evaluation } from './metrics.js';
import type { ModelCardData, ModelCardReference } from './model-card.js';

const DASH = '—';

/** `x.toFixed(d)` without a negative zero; `—` for null. */
export function fixed(x: number | null, decimals: number): string {
  if (x === null) return DASH;
  const s = x.toFixed(decimals);
  return /^-0(\.0*)?$/.test(s) ? s.slice(1) : s;
}

/** A proportion as a percentage with one decimal, e.g. 0.1234 → "12.3 %". */
export function percent(x: number | null): string {
  return x === null ? DASH : `${fixed(x * 100, 1)} %`;
}

const cell = (s: string): string => s.replace(/\|/g, '\\|').replace(/\s*\n\s*/g, ' ');

/** Width of a cell as prettier measures it for the characters cards use (one column per code point). */
const width = (s: string): number => [...s].length;

/** A table with columns padded to their widest cell, as prettier prints markdown tables. */
function table(header: readonly string[], rows: readonly (readonly string[])[]): string {
  const cells = [header, ...rows].map((row) => row.map(cell));
  const widths = header.map((_, c) => Math.max(3, ...cells.map((row) => width(row[c]!))));
  const line = (row: readonly string[]): string =>
    `| ${row.map((text, c) => text + ' '.repeat(widths[c]! - width(text))).join(' | ')} |`;
  const [head, ...body] = cells;
  return [line(head!), line(widths.map((w) => '-'.repeat(w))), ...body.map(line)].join('\n');
}

const bullets = (items: readonly string[]): string => items.map((item) => `- ${item}`).join('\n');
const cites = (ids: readonly string[]): string => ids.map((id) => `[${id}]`).join(', ');

function header(card: ModelCardData): string {
  return [
    `# ${card.title.en} — model card`,
    `> **${card.status}**`,
    table(
      ['', ''],
      [
        ['Model id', `\`${card.id}\``],
        ['Version', card.version],
        ['Model type', card.modelType],
        ['Status', card.status],
        ['Regulatory status', card.regulatoryStatus],
        ['ONNX sha256', `\`${card.onnxSha256}\``],
        ['Trained', card.dates.trained],
        ['Card written', card.dates.card],
      ],
    ),
  ].join('\n\n');
}

function purpose(card: ModelCardData): string {
  return [
    `## Intended use\n\n${card.intendedUse}`,
    `**Intended users:** ${card.intendedUsers}`,
    `### Out of scope\n\n${bullets(card.outOfScope)}`,
    `## Population\n\n${card.population.description}`,
    `**Inclusion**\n\n${bullets(card.population.inclusion)}`,
    `**Exclusion**\n\n${bullets(card.population.exclusion)}`,
    `## Outcome and horizon\n\n**Outcome:** ${card.outcome.description}  \n**Horizon:** ${card.outcome.horizon}`,
  ].join('\n\n');
}

function features(card: ModelCardData): string {
  const rows = card.features.map((f) => [
    `${f.label} (\`${f.id}\`)`,
    f.unit,
    f.effectSize,
    cites(f.sources) || DASH,
    f.signal ? 'yes' : 'no (noise input)',
    f.coefficient === undefined ? DASH : fixed(f.coefficient, 3),
  ]);
  return [
    '## Input features',
    table(
      [
        'Feature',
        'Unit (UCUM)',
        'Published effect used in the simulation',
        'Sources',
        'Signal',
        'Coefficient',
      ],
      rows,
    ),
    'Coefficient: fitted change in log-odds per unit of the feature (linear models only).',
  ].join('\n\n');
}

function trainingData(card: ModelCardData): string {
  const data = card.trainingData;
  return [
    '## Training data',
    table(
      ['', ''],
      [
        ['Kind', `${data.kind} (no real patient data)`],
        ['Generator', data.generator],
        ['Seed', String(data.seed)],
        [
          'Training set',
          `${data.nTrain} simulated patients, outcome prevalence ${percent(data.prevalence.train)}`,
        ],
        [
          'Held-out test set',
          `${data.nTest} simulated patients, outcome prevalence ${percent(data.prevalence.test)}`,
        ],
      ],
    ),
    `**Generating model.** ${data.generatingModel.description} Sources: ${cites(data.generatingModel.sources) || DASH}.`,
  ].join('\n\n');
}

const summaryHeader = ['n', 'Prevalence', 'AUC', 'Brier', 'Calibration slope', 'Calibration intercept'];
const summary = (e: Evaluation): string[] => [
  String(e.n),
  percent(e.prevalence),
  fixed(e.auc, 3),
  fixed(e.brier, 3),
  fixed(e.calibrationSlope, 2),
  fixed(e.calibrationIntercept, 2),
];
const thresholdHeader = ['Sensitivity', 'Specificity', 'PPV', 'NPV'];
const atThreshold = (e: Evaluation): string[] => [
  percent(e.atThreshold.sensitivity),
  percent(e.atThreshold.specificity),
  percent(e.atThreshold.ppv),
  percent(e.atThreshold.npv),
];

function metrics(card: ModelCardData): string {
  const overall = card.metrics.overall;
  const t = overall.atThreshold;
  const calibrationRows = overall.calibrationTable.map((b) => [
    String(b.bin),
    String(b.n),
    percent(b.meanPredicted),
    percent(b.observedRate),
  ]);
  const subgroupRows = card.metrics.subgroups.map((g) => [
    g.variable,
    g.group,
    ...summary(g),
    ...atThreshold(g),
  ]);
  return [
    '## Performance on the held-out test set',
    table(summaryHeader, [summary(overall)]),
    'Calibration slope: 1 is ideal (below 1: predictions too extreme). Calibration intercept ' +
      '(calibration-in-the-large): 0 is ideal (above 0: risks underestimated on average).',
    `### At the decision threshold (predicted risk ≥ ${percent(t.threshold)})`,
    table(
      [...thresholdHeader, 'TP', 'FP', 'TN', 'FN'],
      [[...atThreshold(overall), String(t.tp), String(t.fp), String(t.tn), String(t.fn)]],
    ),
    '### Calibration by quantile of predicted risk',
    table(['Group', 'n', 'Mean predicted risk', 'Observed rate'], calibrationRows),
    ...calibratedRange(card),
    '### Subgroups',
    table(['Variable', 'Group', ...summaryHeader, ...thresholdHeader], subgroupRows),
    `${DASH}: not defined in this group (no patient, a single outcome class, or predictions that ` +
      'separate the outcomes perfectly). Per-subgroup calibration tables are in the JSON card.',
  ].join('\n\n');
}

/** The "Calibrated range" section, when the card states one. */
function calibratedRange(card: ModelCardData): string[] {
  const range = card.calibratedRange;
  if (!range) return [];
  const inputs = Object.entries(range.inputs ?? {}).map(([id, r]) => `${id} ${r.min} to ${r.max}`);
  return [
    '### Calibrated range',
    `The estimate is calibrated for risks from ${percent(range.risk.min)} to ${percent(range.risk.max)}` +
      `${inputs.length > 0 ? ` and inputs within: ${inputs.join(', ')}` : ''}. ${range.source} An estimate ` +
      'or an input outside this range is flagged on the card as beyond the calibrated range: the estimate ' +
      'is less reliable there.',
  ];
}

function thresholdAndBands(card: ModelCardData): string {
  const rows = card.riskBands.map((band, i) => {
    const last = i === card.riskBands.length - 1 && band.upper === 1;
    return [band.label.en, `${percent(band.lower)} to ${last ? '≤' : '<'} ${percent(band.upper)}`];
  });
  return [
    '## Threshold and risk bands',
    `**Threshold:** ${percent(card.threshold.value)}. ${card.threshold.rationale}`,
    table(['Band', 'Predicted risk'], rows),
  ].join('\n\n');
}

function reference(r: ModelCardReference): string {
  const links = [
    r.doi === undefined ? '' : ` https://doi.org/${r.doi}`,
    r.url === undefined ? '' : ` ${r.url}`,
  ];
  return `- [${r.id}] ${r.citation}${links.join('')}`;
}

function closing(card: ModelCardData): string {
  const explanations = card.explanations
    ? [`## Explanations\n\n${card.explanations.method}\n\n${card.explanations.background}`]
    : [];
  return [
    ...explanations,
    `## Limits\n\n${bullets(card.limits)}`,
    `## Sources\n\n${card.references.map(reference).join('\n')}`,
    '## Reproducibility',
    bullets([
      `Training command: \`${card.trainingCommand}\``,
      `Seed: ${card.trainingData.seed}`,
      `Created by: ${card.createdBy}`,
      `ONNX sha256: \`${card.onnxSha256}\``,
    ]),
  ].join('\n\n');
}

/**
 * The whole card as markdown in English, ending with a newline. One language per card: a French card
 * is a separate file (`modelCard.markdownFr` in the manifest), not French lines inside this one.
 */
export function renderMarkdown(card: ModelCardData): string {
  const sections = [purpose, features, trainingData, metrics, thresholdAndBands, closing];
  return `${[header(card), ...sections.map((section) => section(card))].join('\n\n')}\n`;
}
