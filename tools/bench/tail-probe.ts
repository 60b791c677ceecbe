/**
 * Loaded into the benchmarked service with `--import` (`npm run bench -- --tail-only`): records every
 * garbage-collection pause and the event loop's delay, and writes them as JSON to the file named by
 * CDS_BENCH_TAIL_OUT when the process exits. It answers where the slowest calls at 16 connections
 * wait: a call that waits behind a pause of the main thread waits as long as the pause.
 */
import { writeFileSync } from 'node:fs';
import {
  constants,
  monitorEventLoopDelay,
  type PerformanceEntry,
  PerformanceObserver,
} from 'node:perf_hooks';

const out = process.env.CDS_BENCH_TAIL_OUT;
if (out) {
  const KINDS: Record<number, string> = {
    [constants.NODE_PERFORMANCE_GC_MAJOR]: 'major',
    [constants.NODE_PERFORMANCE_GC_MINOR]: 'minor',
    [constants.NODE_PERFORMANCE_GC_INCREMENTAL]: 'incremental',
    [constants.NODE_PERFORMANCE_GC_WEAKCB]: 'weak callbacks',
  };
  /** [time since start ms, kind, duration ms] of every pause. */
  const pauses: [number, string, number][] = [];
  new PerformanceObserver((list) => {
    for (const entry of list.getEntries() as (PerformanceEntry & { detail?: { kind?: number } })[]) {
      pauses.push([entry.startTime, KINDS[entry.detail?.kind ?? -1] ?? 'other', entry.duration]);
    }
  }).observe({ entryTypes: ['gc'] });
  const delay = monitorEventLoopDelay({ resolution: 1 });
  delay.enable();
  // SIGUSR2 starts the measurement again (the benchmark sends it after its warm-up).
  process.on('SIGUSR2', () => {
    pauses.length = 0;
    delay.reset();
  });
  process.once('exit', () => {
    delay.disable();
    const ms = (ns: number) => Math.round(ns / 1e4) / 100;
    writeFileSync(
      out,
      JSON.stringify({
        pauses,
        loopDelayMs: {
          p50: ms(delay.percentile(50)),
          p99: ms(delay.percentile(99)),
          max: ms(delay.max),
        },
      }),
    );
  });
}
