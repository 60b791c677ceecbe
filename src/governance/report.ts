/**
 * The governance report of issue 19 ("Local validation before go-live"): for a period, per model version
 * and mode (live: cards shown; silent: recorded only), the number scored, discrimination (AUC with its
 * DeLong 95 % interval), calibration (observed against predicted by decile, calibration slope and
 * intercept), sensitivity, specificity, PPV and NPV at the card threshold with Wilson intervals, the same
 * by the subgroups of the model card, and the drift of every input and of the risk distribution against
 * the model's background sample (PSI); for rules, the alert rate, acceptance, override by reason and the
 * PPV where an outcome is defined. The statistics are in ./metrics.ts. Pure: the JSON is this object.
 *
 * **Small cells** (./suppression.ts). A count from 1 to `minCellSize − 1` is shown as "suppressed"; so is
 * a rate whose denominator is below `minCellSize` or whose numerator or complement is such a small count
 * (either would give the count back), a figure computed from fewer rows than `minCellSize` (AUC and calibration need
 * that many rows with and without the outcome), and a whole subgroup or decile holding fewer rows. The ROC
 * curve is drawn between groups of at least `minCellSize` rows. Zero is shown: it identifies no one.
 *
 * **Pseudonymisation.** The rows carry no patient id, birth date or exact date (src/governance/types.ts);
 * the report keeps only aggregates and ISO weeks, and refuses a row whose labels look like a date, so a
 * linkage step that let one through fails loudly instead of publishing it.
 */
import {
  aucDeLong,
  calibrationByDecile,
  confusion,
  type Interval,
  type Outcome,
  psi,
  psiLevel,
  recalibration,
  rocPoints,
} from './metrics.js';
import { type Cell, type Rate, SUPPRESSED, suppressor } from './suppression.js';
import type { LinkedPrediction, RuleStats } from './types.js';

export { renderReportHtml } from './report-html.js';
export { type Cell, type Rate, SUPPRESSED } from './suppression.js';

export interface ClassificationFigures {
  tp: Cell<number>;
  fp: Cell<number>;
  tn: Cell<number>;
  fn: Cell<number>;
  /** Null: undefined (no row in the denominator). */
  sensitivity: Cell<Rate> | null;
  specificity: Cell<Rate> | null;
  ppv: Cell<Rate> | null;
  npv: Cell<Rate> | null;
}

export interface PerformanceFigures {
  /** Rows with a known outcome. */
  n: Cell<number>;
  /** Of which the outcome occurred. */
  events: Cell<number>;
  auc: Cell<{ value: number; ci: Interval; method: 'DeLong' }> | null;
  calibrationSlope: Cell<number> | null;
  calibrationIntercept: Cell<number> | null;
  atThreshold: ClassificationFigures;
}

export interface DecileFigure {
  decile: number;
  n: Cell<number>;
  meanPredicted: Cell<number>;
  observedRate: Cell<number>;
}

export interface DriftFigure {
  /** The input's feature id, or `risk` for the distribution of the estimates. */
  of: string;
  psi: Cell<number>;
  level: Cell<'stable' | 'moderate' | 'major'>;
}

export interface ModelSection {
  modelId: string;
  modelVersion: string;
  mode: 'live' | 'silent';
  /** From the caller (e.g. the manifest's title and status text: "Demonstration model…"). */
  title?: string;
  statusText?: string;
  serviceIds: string[];
  /** First and last ISO week with an estimate. */
  weeks: { first: string; last: string };
  scored: Cell<number>;
  outcomeKnown: Cell<number>;
  overall: PerformanceFigures;
  deciles: DecileFigure[];
  /** ROC curve between groups of rows; suppressed with too few rows; null with one class only. */
  roc: Cell<{ fpr: number; tpr: number }[]> | null;
  /** Estimates per tenth of the 0-1 range. */
  riskHistogram: Cell<number>[];
  subgroups: { variable: string; group: string; figures: PerformanceFigures }[];
  /** Null: no background sample was given for this version. */
  drift: { backgroundRows: number; risk: DriftFigure | null; inputs: DriftFigure[] } | null;
}

export interface RuleSection {
  serviceId: string;
  template: string;
  cardsShown: Cell<number>;
  accepted: Cell<number>;
  overridden: Cell<number>;
  /**
   * Share of the service's calls that showed this card (a template shows one card per call, or per lesion:
   * counted at most once per call); null when the number of calls was not given.
   */
  alertRate: Cell<Rate> | null;
  acceptanceRate: Cell<Rate> | null;
  overrideRate: Cell<Rate> | null;
  overrideReasons: { reason: string; count: Cell<number> }[];
  /** What the outcome is and its horizon; null when the card defines none. */
  outcome: { label: { en: string; fr: string }; horizonMonths: number } | null;
  /** Cards whose outcome is known (their patient's later data was present); null: no outcome defined. */
  outcomeKnown: Cell<number> | null;
  /** Null: no outcome defined or none known. */
  ppv: Cell<Rate> | null;
  /**
   * The PPV of the cards accepted and of those overridden (latest feedback) apart: following a card can
   * prevent the harm it warns of, or bring the test that finds it, so the two differ by design.
   * Suppressed together (complementary suppression) when either is, or when the cards without feedback
   * are a small count, since the overall PPV would then give them back.
   */
  ppvAccepted: Cell<Rate> | null;
  ppvOverridden: Cell<Rate> | null;
}

export interface GovernanceReport {
  kind: 'cds-governance-report';
  formatVersion: 1;
  generatedAt: string;
  period: { from: string; to: string };
  minCellSize: number;
  models: ModelSection[];
  rules: RuleSection[];
}

export interface GovernanceInput {
  period: { from: string; to: string };
  predictions: LinkedPrediction[];
  rules: RuleStats[];
  /** Background sample rows (feature id → value) by `modelId@version`. */
  background: Record<string, Record<string, number>[]>;
  minCellSize: number;
  generatedAt: Date;
  /** Risks of the background rows by `modelId@version`, for the drift of the risk distribution. */
  backgroundRisk?: Record<string, number[]>;
  /** Calls of each service in the period, for the rules' alert rate. */
  serviceCalls?: Record<string, number>;
  /** Title and status text of each model version, shown beside its figures. */
  modelInfo?: Record<string, { title?: string; statusText?: string }>;
}

const WEEK = /^\d{4}-W(0[1-9]|[1-4]\d|5[0-3])$/;
const LOOKS_LIKE_DATE = /\d{4}-\d{2}-\d{2}|\d{1,2}\/\d{1,2}\/\d{2,4}/;

/** Refuses rows a report must not be built from (the value itself is never echoed). */
function checkRows(input: GovernanceInput): void {
  input.predictions.forEach((row, i) => {
    if (!WEEK.test(row.week)) throw new Error(`prediction ${i}: week is not an ISO week (YYYY-Www)`);
    if (!(Number.isFinite(row.risk) && row.risk >= 0 && row.risk <= 1))
      throw new Error(`prediction ${i}: risk is not a probability`);
    if (row.outcome !== 0 && row.outcome !== 1 && row.outcome !== null)
      throw new Error(`prediction ${i}: outcome is not 0, 1 or null`);
    const labels = [
      row.serviceId,
      row.modelId,
      row.modelVersion,
      row.band ?? '',
      ...Object.entries(row.subgroups).flat(),
    ];
    if (labels.some((label) => LOOKS_LIKE_DATE.test(label)))
      throw new Error(`prediction ${i}: a label looks like a date; the report shows ISO weeks only`);
  });
  if (!(Number.isInteger(input.minCellSize) && input.minCellSize >= 1))
    throw new Error('minCellSize must be a positive integer');
}

function performance(rows: readonly LinkedPrediction[], min: number): PerformanceFigures {
  const { count, rate } = suppressor(min);
  const known = rows.filter((r) => r.outcome !== null);
  const risks = known.map((r) => r.risk);
  const outcomes = known.map((r) => r.outcome as Outcome);
  const events = outcomes.reduce<number>((s, y) => s + y, 0);
  const enough = events >= min && known.length - events >= min;
  const auc = aucDeLong(risks, outcomes);
  const cal = recalibration(risks, outcomes);
  const c = confusion(
    known.map((r) => r.positive),
    outcomes,
  );
  const figure = <T>(value: T | null): Cell<T> | null =>
    value === null ? null : enough ? value : SUPPRESSED;
  return {
    n: count(known.length),
    events: count(events),
    auc: figure(auc && { value: auc.auc, ci: auc.ci, method: 'DeLong' as const }),
    calibrationSlope: figure(cal.slope),
    calibrationIntercept: figure(cal.intercept),
    atThreshold: {
      tp: count(c.tp),
      fp: count(c.fp),
      tn: count(c.tn),
      fn: count(c.fn),
      sensitivity: rate(c.tp, c.tp + c.fn),
      specificity: rate(c.tn, c.tn + c.fp),
      ppv: rate(c.tp, c.tp + c.fp),
      npv: rate(c.tn, c.tn + c.fn),
    },
  };
}

function deciles(rows: readonly LinkedPrediction[], min: number): DecileFigure[] {
  const known = rows.filter((r) => r.outcome !== null);
  const { rate } = suppressor(min);
  return calibrationByDecile(
    known.map((r) => r.risk),
    known.map((r) => r.outcome as Outcome),
  ).map((d) => {
    const observed = rate(d.events, d.n);
    const shown = d.n >= min;
    return {
      decile: d.decile,
      n: shown ? d.n : SUPPRESSED,
      meanPredicted: shown ? d.meanPredicted : SUPPRESSED,
      observedRate: observed === null || observed === SUPPRESSED ? SUPPRESSED : observed.value,
    };
  });
}

function roc(rows: readonly LinkedPrediction[], min: number): ModelSection['roc'] {
  const known = rows.filter((r) => r.outcome !== null);
  const outcomes = known.map((r) => r.outcome as Outcome);
  const events = outcomes.reduce<number>((s, y) => s + y, 0);
  if (events === 0 || events === known.length) return null;
  const groups = Math.min(20, Math.floor(known.length / min));
  if (groups < 2 || events < min || known.length - events < min) return SUPPRESSED;
  return rocPoints(
    known.map((r) => r.risk),
    outcomes,
    groups,
  );
}

function driftOf(
  of: string,
  expected: readonly number[],
  actual: readonly number[],
  min: number,
): DriftFigure | null {
  const figure = psi(expected, actual);
  if (figure === null) return null;
  if (actual.length < min) return { of, psi: SUPPRESSED, level: SUPPRESSED };
  return { of, psi: figure.psi, level: psiLevel(figure.psi) };
}

function drift(
  key: string,
  rows: readonly LinkedPrediction[],
  input: GovernanceInput,
): ModelSection['drift'] {
  const sample = input.background[key];
  if (!sample || sample.length === 0) return null;
  const features = [...new Set(sample.flatMap((r) => Object.keys(r)))].sort();
  const value = (r: Record<string, number>, f: string) => r[f] ?? Number.NaN;
  const risks = input.backgroundRisk?.[key];
  return {
    backgroundRows: sample.length,
    risk: risks
      ? driftOf(
          'risk',
          risks,
          rows.map((r) => r.risk),
          input.minCellSize,
        )
      : null,
    inputs: features
      .map((f) =>
        driftOf(
          f,
          sample.map((r) => value(r, f)),
          rows.map((r) => value(r.inputs, f)),
          input.minCellSize,
        ),
      )
      .filter((d): d is DriftFigure => d !== null),
  };
}

function subgroups(rows: readonly LinkedPrediction[], min: number): ModelSection['subgroups'] {
  const groups = new Map<string, LinkedPrediction[]>();
  for (const row of rows) {
    for (const [variable, group] of Object.entries(row.subgroups)) {
      const id = JSON.stringify([variable, group]);
      const members = groups.get(id);
      if (members) members.push(row);
      else groups.set(id, [row]);
    }
  }
  return [...groups.keys()].sort().map((id) => {
    const [variable, group] = JSON.parse(id) as [string, string];
    return { variable, group, figures: performance(groups.get(id)!, min) };
  });
}

function modelSection(rows: LinkedPrediction[], input: GovernanceInput): ModelSection {
  const { modelId, modelVersion, mode } = rows[0]!;
  const min = input.minCellSize;
  const { count } = suppressor(min);
  const key = `${modelId}@${modelVersion}`;
  const weeks = rows.map((r) => r.week).sort();
  const histogram = new Array<number>(10).fill(0);
  for (const r of rows) histogram[Math.min(9, Math.floor(r.risk * 10))]!++;
  const info = input.modelInfo?.[key] ?? {};
  return {
    modelId,
    modelVersion,
    mode,
    ...(info.title === undefined ? {} : { title: info.title }),
    ...(info.statusText === undefined ? {} : { statusText: info.statusText }),
    serviceIds: [...new Set(rows.map((r) => r.serviceId))].sort(),
    weeks: { first: weeks[0]!, last: weeks[weeks.length - 1]! },
    scored: count(rows.length),
    outcomeKnown: count(rows.filter((r) => r.outcome !== null).length),
    overall: performance(rows, min),
    deciles: deciles(rows, min),
    roc: roc(rows, min),
    riskHistogram: histogram.map(count),
    subgroups: subgroups(rows, min),
    drift: drift(key, rows, input),
  };
}

function ruleSection(stats: RuleStats, input: GovernanceInput): RuleSection {
  const { count, rate } = suppressor(input.minCellSize);
  const calls = input.serviceCalls?.[stats.serviceId];
  return {
    serviceId: stats.serviceId,
    template: stats.template,
    cardsShown: count(stats.cardsShown),
    accepted: count(stats.accepted),
    overridden: count(stats.overridden),
    alertRate: calls === undefined ? null : rate(Math.min(stats.cardsShown, calls), calls),
    acceptanceRate: rate(stats.accepted, stats.cardsShown),
    overrideRate: rate(stats.overridden, stats.cardsShown),
    overrideReasons: Object.entries(stats.overrideReasons)
      .sort((a, b) => b[1] - a[1] || a[0].localeCompare(b[0]))
      .map(([reason, n]) => ({ reason, count: count(n) })),
    ...outcomeFigures(stats, input.minCellSize),
  };
}

function outcomeFigures(
  stats: RuleStats,
  min: number,
): Pick<RuleSection, 'outcome' | 'outcomeKnown' | 'ppv' | 'ppvAccepted' | 'ppvOverridden'> {
  const { count, rate } = suppressor(min);
  const w = stats.withOutcome;
  const outcome = stats.outcome ?? null;
  if (!w) return { outcome, outcomeKnown: null, ppv: null, ppvAccepted: null, ppvOverridden: null };
  const none = { known: 0, positive: 0 };
  const accepted = w.accepted ?? none;
  const overridden = w.overridden ?? none;
  let ppvAccepted = rate(accepted.positive, accepted.known);
  let ppvOverridden = rate(overridden.positive, overridden.known);
  // The cards without feedback are the overall less the two groups: a small count there, or one group
  // suppressed beside the other, would give a suppressed count back by subtraction.
  const small = (k: number) => k > 0 && k < min;
  const restKnown = w.known - accepted.known - overridden.known;
  const restPositive = w.positive - accepted.positive - overridden.positive;
  if (
    ppvAccepted === SUPPRESSED ||
    ppvOverridden === SUPPRESSED ||
    small(restKnown) ||
    small(restPositive) ||
    small(restKnown - restPositive)
  ) {
    if (ppvAccepted !== null) ppvAccepted = SUPPRESSED;
    if (ppvOverridden !== null) ppvOverridden = SUPPRESSED;
  }
  return {
    outcome,
    outcomeKnown: count(w.known),
    ppv: rate(w.positive, w.known),
    ppvAccepted,
    ppvOverridden,
  };
}

/**
 * Builds the report: one section per model version and mode (sorted by model id, version, live first),
 * one per rule template (sorted by service and template).
 * @throws Error naming the row (never its content) when a row is not fit for a report
 */
export function buildGovernanceReport(input: GovernanceInput): GovernanceReport {
  checkRows(input);
  const sections = new Map<string, LinkedPrediction[]>();
  for (const row of input.predictions) {
    const id = JSON.stringify([row.modelId, row.modelVersion, row.mode === 'live' ? 0 : 1]);
    const members = sections.get(id);
    if (members) members.push(row);
    else sections.set(id, [row]);
  }
  return {
    kind: 'cds-governance-report',
    formatVersion: 1,
    generatedAt: input.generatedAt.toISOString(),
    period: { from: input.period.from, to: input.period.to },
    minCellSize: input.minCellSize,
    models: [...sections.keys()].sort().map((id) => modelSection(sections.get(id)!, input)),
    rules: [...input.rules]
      .sort((a, b) => a.serviceId.localeCompare(b.serviceId) || a.template.localeCompare(b.template))
      .map((r) => ruleSection(r, input)),
  };
}
