/**
 * Maximum-likelihood logistic regression, fitted by Newton–Raphson (IRLS) in float64.
 *
 * Why a hand-written fitter: training must be reproducible byte for byte from a seed, in the repo's own
 * language, without a numerical dependency whose results could drift between versions. For the few
 * features of a clinical risk score, Newton's method is exact enough to converge to the last bits in a
 * handful of iterations, and every operation here is a fixed sequence of float64 additions and
 * multiplications over the rows in their given order — so the same inputs give the same coefficients on
 * every platform.
 *
 * Contract:
 * - `X` is rows × features (the intercept is added here, never passed as a column); `y` holds 0 or 1.
 * - `l2` adds a ridge penalty `l2/2 · Σ βⱼ²` over the coefficients, never over the intercept, so the
 *   fitted mean risk still matches the observed prevalence.
 * - `offset` (optional) is a fixed term added to every row's logit; calibration-in-the-large uses it.
 * - Convergence means the largest absolute Newton step fell below `tolerance`. A fit that has not
 *   converged after `maxIterations` is returned with `converged: false` (e.g. separable data without a
 *   penalty, whose maximum-likelihood estimate does not exist); callers decide what that means for them.
 * - Bad input (empty, ragged, non-finite, labels other than 0/1) and singular systems (a constant or
 *   collinear feature) throw an `Error` that says which.
 * - A step that would lower the penalised log-likelihood (beyond rounding noise) is halved, up to 30
 *   times, which keeps Newton from overshooting on extreme data without changing the fixed point.
 */

/** A fitted logistic model: logit(p) = intercept + Σ coefficients[j] · x[j]. */
export interface LogisticFit {
  intercept: number;
  coefficients: number[];
  /** Newton iterations performed. */
  iterations: number;
  /** Whether the largest Newton step fell below the tolerance. */
  converged: boolean;
}

/** Options of {@link fitLogistic}. */
export interface LogisticOptions {
  /** Ridge penalty on the coefficients (not the intercept). Default 0. */
  l2?: number;
  /** Maximum Newton iterations. Default 50. */
  maxIterations?: number;
  /** Convergence threshold on max |Δβ|. Default 1e-10. */
  tolerance?: number;
  /** A fixed term added to each row's logit (length = rows). Default none. */
  offset?: readonly number[];
}

const DEFAULT_MAX_ITERATIONS = 50;
const DEFAULT_TOLERANCE = 1e-10;
const MAX_STEP_HALVINGS = 30;
/**
 * Relative slack when comparing objectives: near the optimum a Newton step improves the log-likelihood
 * by less than the rounding noise of summing it over thousands of rows, and rejecting such a step would
 * stall the fit just short of the tolerance.
 */
const OBJECTIVE_SLACK = 1e-12;
/** A Cholesky pivot this small relative to the diagonal means the system is singular in float64. */
const SINGULAR_RATIO = 1e-13;

interface Design {
  rows: number;
  /** Parameters including the intercept (features + 1). */
  width: number;
  /** Row-major, with a leading 1 in each row for the intercept. */
  values: Float64Array;
}

function checkInput(
  X: readonly (readonly number[])[],
  y: readonly number[],
  offset?: readonly number[],
): Design {
  if (X.length === 0) throw new Error('fitLogistic: no rows');
  if (y.length !== X.length) throw new Error(`fitLogistic: ${X.length} rows but ${y.length} labels`);
  if (offset !== undefined && offset.length !== X.length) {
    throw new Error(`fitLogistic: ${X.length} rows but ${offset.length} offsets`);
  }
  const features = X[0]!.length;
  const width = features + 1;
  const values = new Float64Array(X.length * width);
  X.forEach((row, i) => {
    if (row.length !== features) {
      throw new Error(`fitLogistic: row ${i} has ${row.length} features, expected ${features}`);
    }
    const label = y[i];
    if (label !== 0 && label !== 1) throw new Error(`fitLogistic: label ${i} is ${label}, expected 0 or 1`);
    if (offset !== undefined && !Number.isFinite(offset[i])) {
      throw new Error(`fitLogistic: offset ${i} is not a finite number`);
    }
    values[i * width] = 1;
    row.forEach((v, j) => {
      if (!Number.isFinite(v)) throw new Error(`fitLogistic: X[${i}][${j}] is not a finite number`);
      values[i * width + j + 1] = v;
    });
  });
  return { rows: X.length, width, values };
}

function checkOptions(options: LogisticOptions): { l2: number; maxIterations: number; tolerance: number } {
  const { l2 = 0, maxIterations = DEFAULT_MAX_ITERATIONS, tolerance = DEFAULT_TOLERANCE } = options;
  if (!(Number.isFinite(l2) && l2 >= 0)) throw new Error(`fitLogistic: l2 must be ≥ 0 (got ${l2})`);
  if (!(Number.isInteger(maxIterations) && maxIterations >= 1)) {
    throw new Error(`fitLogistic: maxIterations must be a positive integer (got ${maxIterations})`);
  }
  if (!(Number.isFinite(tolerance) && tolerance > 0)) {
    throw new Error(`fitLogistic: tolerance must be > 0 (got ${tolerance})`);
  }
  return { l2, maxIterations, tolerance };
}

/** log(1 + e^η) without overflow. */
function softplus(eta: number): number {
  return eta > 0 ? eta + Math.log1p(Math.exp(-eta)) : Math.log1p(Math.exp(eta));
}

function sigmoid(eta: number): number {
  return eta >= 0 ? 1 / (1 + Math.exp(-eta)) : Math.exp(eta) / (1 + Math.exp(eta));
}

function linearPredictor(
  d: Design,
  beta: Float64Array,
  offset: readonly number[] | undefined,
  i: number,
): number {
  let eta = offset === undefined ? 0 : offset[i]!;
  const base = i * d.width;
  for (let j = 0; j < d.width; j++) eta += d.values[base + j]! * beta[j]!;
  return eta;
}

/** Penalised log-likelihood Σ [y·η − log(1 + e^η)] − l2/2 · Σ_{j≥1} βⱼ². */
function objective(
  d: Design,
  y: readonly number[],
  offset: readonly number[] | undefined,
  beta: Float64Array,
  l2: number,
): number {
  let ll = 0;
  for (let i = 0; i < d.rows; i++) {
    const eta = linearPredictor(d, beta, offset, i);
    ll += y[i]! * eta - softplus(eta);
  }
  let penalty = 0;
  for (let j = 1; j < d.width; j++) penalty += beta[j]! * beta[j]!;
  return ll - (l2 / 2) * penalty;
}

/** Gradient and negative Hessian (upper triangle filled, then mirrored) of the objective at beta. */
function derivatives(
  d: Design,
  y: readonly number[],
  offset: readonly number[] | undefined,
  beta: Float64Array,
  l2: number,
): { gradient: Float64Array; hessian: Float64Array } {
  const w = d.width;
  const gradient = new Float64Array(w);
  const hessian = new Float64Array(w * w);
  for (let i = 0; i < d.rows; i++) {
    const p = sigmoid(linearPredictor(d, beta, offset, i));
    const residual = y[i]! - p;
    const weight = p * (1 - p);
    const base = i * w;
    for (let a = 0; a < w; a++) {
      const xa = d.values[base + a]!;
      gradient[a]! += xa * residual;
      const wxa = weight * xa;
      for (let b = a; b < w; b++) hessian[a * w + b]! += wxa * d.values[base + b]!;
    }
  }
  for (let j = 1; j < w; j++) {
    gradient[j]! -= l2 * beta[j]!;
    hessian[j * w + j]! += l2;
  }
  for (let a = 0; a < w; a++) for (let b = 0; b < a; b++) hessian[a * w + b] = hessian[b * w + a]!;
  return { gradient, hessian };
}

/**
 * Solves A·x = b for a symmetric positive-definite A (row-major, n × n) by Cholesky decomposition.
 * Throws when a pivot vanishes relative to its diagonal entry, i.e. A is singular in float64.
 */
export function solveSymmetric(a: Float64Array, b: Float64Array): Float64Array {
  const n = b.length;
  if (a.length !== n * n) throw new Error(`solveSymmetric: matrix is not ${n} × ${n}`);
  const l = new Float64Array(n * n);
  for (let i = 0; i < n; i++) {
    for (let j = 0; j <= i; j++) {
      let sum = a[i * n + j]!;
      for (let k = 0; k < j; k++) sum -= l[i * n + k]! * l[j * n + k]!;
      if (i === j) {
        const diagonal = a[i * n + i]!;
        if (!(sum > SINGULAR_RATIO * Math.abs(diagonal)) || !(diagonal > 0)) {
          throw new Error(`singular system: parameter ${i} is constant or collinear with earlier ones`);
        }
        l[i * n + i] = Math.sqrt(sum);
      } else {
        l[i * n + j] = sum / l[j * n + j]!;
      }
    }
  }
  const z = new Float64Array(n);
  for (let i = 0; i < n; i++) {
    let sum = b[i]!;
    for (let k = 0; k < i; k++) sum -= l[i * n + k]! * z[k]!;
    z[i] = sum / l[i * n + i]!;
  }
  const x = new Float64Array(n);
  for (let i = n - 1; i >= 0; i--) {
    let sum = z[i]!;
    for (let k = i + 1; k < n; k++) sum -= l[k * n + i]! * x[k]!;
    x[i] = sum / l[i * n + i]!;
  }
  return x;
}

/**
 * Fits logit(P(y = 1 | x)) = β₀ + Σ βⱼ xⱼ by maximum (optionally ridge-penalised) likelihood.
 *
 * @param X rows × features, finite numbers; every row the same length (may be 0: intercept only)
 * @param y one label per row, 0 or 1
 * @returns the fitted intercept and coefficients, with the iteration count and convergence flag
 * @example
 *   // one binary feature: the intercept is the log-odds at x = 0, the coefficient the log odds ratio
 *   fitLogistic([[0], [0], [0], [0], [1], [1], [1], [1]], [1, 0, 0, 0, 1, 1, 1, 0])
 *   // ≈ { intercept: ln(1/3), coefficients: [ln 9], converged: true }
 */
export function fitLogistic(
  X: readonly (readonly number[])[],
  y: readonly number[],
  options: LogisticOptions = {},
): LogisticFit {
  const { l2, maxIterations, tolerance } = checkOptions(options);
  const { offset } = options;
  const design = checkInput(X, y, offset);
  let beta = new Float64Array(design.width);
  let current = objective(design, y, offset, beta, l2);
  let iterations = 0;
  let converged = false;
  while (iterations < maxIterations && !converged) {
    iterations++;
    const { gradient, hessian } = derivatives(design, y, offset, beta, l2);
    let step: Float64Array;
    try {
      step = solveSymmetric(hessian, gradient);
    } catch (error) {
      throw new Error(`fitLogistic: ${(error as Error).message}`);
    }
    const maxStep = step.reduce((m, s) => Math.max(m, Math.abs(s)), 0);
    let scale = 1;
    let candidate = beta.map((b, j) => b + step[j]!);
    let next = objective(design, y, offset, candidate, l2);
    const floor = current - OBJECTIVE_SLACK * (1 + Math.abs(current));
    for (let h = 0; h < MAX_STEP_HALVINGS && !(next >= floor); h++) {
      scale /= 2;
      candidate = beta.map((b, j) => b + scale * step[j]!);
      next = objective(design, y, offset, candidate, l2);
    }
    beta = candidate;
    current = next;
    converged = maxStep < tolerance;
  }
  return { intercept: beta[0]!, coefficients: Array.from(beta.subarray(1)), iterations, converged };
}

/** The linear predictor (log-odds) of a fitted model for one feature vector. */
export function logitOf(fit: Pick<LogisticFit, 'intercept' | 'coefficients'>, x: readonly number[]): number {
  if (x.length !== fit.coefficients.length) {
    throw new Error(`logitOf: ${x.length} features, the model has ${fit.coefficients.length}`);
  }
  let eta = fit.intercept;
  for (let j = 0; j < x.length; j++) eta += fit.coefficients[j]! * x[j]!;
  return eta;
}

/** The predicted probability of a fitted model for one feature vector. */
export function predictLogistic(
  fit: Pick<LogisticFit, 'intercept' | 'coefficients'>,
  x: readonly number[],
): number {
  return sigmoid(logitOf(fit, x));
}
