/**
 * Stage timing: one helper that times a synchronous or asynchronous step, so the pipeline names each
 * stage once and the same names reach the logs, /metrics and the benchmark.
 */

/**
 * The stages of a service call the pipeline times, in the order it runs them. These are label values
 * of `cds_service_stage_duration_seconds` and columns of the benchmark: renaming one breaks dashboards.
 */
export const STAGES = [
  'validation',
  'prefetch',
  'rules',
  'models',
  'explanation',
  'cards',
  'publish',
  'inputs',
  'audit',
] as const;

export type Stage = (typeof STAGES)[number];

export interface StageTiming {
  readonly stage: Stage;
  readonly ms: number;
}

/** Milliseconds since a `process.hrtime.bigint()` reading. */
const since = (start: bigint) => Number(process.hrtime.bigint() - start) / 1e6;

/**
 * Runs `fn` and hands its duration in milliseconds to `record`, once it has returned or, for a promise,
 * once it has settled (a step that fails is timed too).
 */
export function timeWith<T>(record: (ms: number) => void, fn: () => T): T {
  const start = process.hrtime.bigint();
  let result: T;
  try {
    result = fn();
  } catch (error) {
    record(since(start));
    throw error;
  }
  if (result instanceof Promise) {
    return result.finally(() => record(since(start))) as T;
  }
  record(since(start));
  return result;
}

export interface StageTimer {
  /** Runs one stage (sync or async) and keeps its duration under its name. */
  timed<T>(stage: Stage, fn: () => T): T;
  /** The stages timed so far, in the order they ran. */
  readonly timings: readonly StageTiming[];
  /** Milliseconds since the timer was created. */
  elapsedMs(): number;
}

/** A timer for the stages of one call. */
export function createStageTimer(): StageTimer {
  const start = process.hrtime.bigint();
  const timings: StageTiming[] = [];
  return {
    timed: (stage, fn) => timeWith((ms) => timings.push({ stage, ms }), fn),
    timings,
    elapsedMs: () => since(start),
  };
}

/** Timings as log fields, named as before the timer existed: `{ prefetchMs: 1.2, rulesMs: 0.4, … }`. */
export function timingFields(timings: readonly StageTiming[]): Record<string, number> {
  return Object.fromEntries(timings.map(({ stage, ms }) => [`${stage}Ms`, ms]));
}
