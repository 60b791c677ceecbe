/**
 * Small-cell suppression of the governance report (see src/governance/report.ts for the rule): a count
 * from 1 to `min − 1` is not shown, nor a rate whose denominator is below `min` or whose numerator or
 * complement is such a count (either would give the count back). Zero is shown: it identifies no one.
 */
import { type Interval, wilson } from './metrics.js';

export const SUPPRESSED = 'suppressed';
/** A figure, or "suppressed" when it would describe fewer than the minimum cell size. */
export type Cell<T> = T | typeof SUPPRESSED;

/** A proportion with its Wilson 95 % interval. */
export interface Rate {
  value: number;
  ci: Interval;
}

/** The suppression of counts and rates for a minimum cell size. */
export function suppressor(min: number) {
  const small = (k: number) => k > 0 && k < min;
  return {
    count: (k: number): Cell<number> => (small(k) ? SUPPRESSED : k),
    /** k of n with its Wilson interval; null when n is 0 (undefined). */
    rate: (k: number, n: number): Cell<Rate> | null => {
      if (n === 0) return null;
      if (n < min || small(k) || small(n - k)) return SUPPRESSED;
      return { value: k / n, ci: wilson(k, n)! };
    },
  };
}
