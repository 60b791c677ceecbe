/**
 * How far V8 lets the old generation grow past what survived the last full collection. By default the
 * factor is dynamic, up to 4x when the mutator allocates fast and the machine has memory to spare: under
 * sustained load the old generation filled with promoted garbage from finished calls (and kept their
 * request buffers alive) until resident memory reached 374 MB in `npm run bench`. A fixed factor of 1.5
 * collects sooner; it is no cap (the heap still grows to whatever the live data need, so a largest body
 * cannot run out of heap because of it).
 */
import { setFlagsFromString } from 'node:v8';

/** Old generation allowed after a full collection: live size x (1 + this / 100). */
export const HEAP_GROWING_PERCENT = 50;

const FLAG = 'heap-growing-percent';

/**
 * The V8 flag to set at start-up, or none when the operator chose a factor (in `node` arguments or
 * NODE_OPTIONS): theirs wins.
 */
export function heapGrowthFlag(execArgv: readonly string[], nodeOptions: string | undefined): string | null {
  const given = [...execArgv, ...(nodeOptions ?? '').split(/\s+/)].some((arg) =>
    arg.replaceAll('_', '-').startsWith(`--${FLAG}`),
  );
  return given ? null : `--${FLAG}=${HEAP_GROWING_PERCENT}`;
}

/**
 * Sets the flag in this process (every isolate, the audit worker's too). V8 reads it each time it
 * recomputes the heap limits after a collection, so setting it once started takes effect from the next
 * collection on.
 */
export function applyHeapGrowth(execArgv: readonly string[], nodeOptions: string | undefined): string | null {
  const flag = heapGrowthFlag(execArgv, nodeOptions);
  if (flag) setFlagsFromString(flag);
  return flag;
}
