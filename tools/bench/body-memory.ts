/**
 * What a request body costs in heap, and which heap cap survives what (issue 16 §5), measured on the
 * largest-case knee-OA body (`large-body.ts`): every Observation is read by the rules and the model.
 *
 * 1. Heap per MiB of body: the service (uncapped, `--trace-gc`) answers one body of each size in turn;
 *    the largest heap V8 reports before a collection, minus the heap before any body, over the size.
 * 2. For a heap cap and a number of concurrent bodies of the largest size, with no in-flight limit:
 *    does the process survive?
 * `npm run bench:memory` (a few minutes).
 */
import { largeKneeOaBody } from './large-body.js';
import { postTo, serveChild } from './serve-child.js';

const MIB = 1024 * 1024;
const URL = '/cds-services/knee-oa-progression';
const log = (message: string) => process.stderr.write(`[memory] ${message}\n`);
const NO_LIMITS = {
  CDS_BODY_LIMIT_BYTES: String(17 * MIB),
  CDS_MAX_BYTES_IN_FLIGHT: String(1024 * MIB),
  CDS_MAX_REQUESTS_IN_FLIGHT: '1000',
  CDS_LOG_LEVEL: 'warn',
};

async function perMib() {
  const served = await serveChild(['--trace-gc'], { ...NO_LIMITS, CDS_LOG_LEVEL: 'info' });
  const points: { baseMb: number; mib: number; heapMb: number; ms: number; status: number }[] = [];
  try {
    await postTo(served.port, URL, largeKneeOaBody(64 * 1024, 'warm-up'));
    for (const mib of [2, 8, 16]) {
      const body = largeKneeOaBody(mib * MIB - 4096, `size-${mib}`);
      const before = served.resetMaxHeap();
      const start = performance.now();
      const answer = await postTo(served.port, URL, body);
      points.push({
        baseMb: before,
        mib,
        heapMb: served.maxHeapMb(),
        ms: Math.round(performance.now() - start),
        status: answer.status,
      });
      log(
        `${mib} MiB: status ${answer.status}, heap after the last GC before it ${before} MB, largest during it ${served.maxHeapMb()} MB`,
      );
    }
  } finally {
    await served.stop();
  }
  return points;
}

async function survives(capMb: number, concurrent: number, mib: number) {
  const served = await serveChild([`--max-old-space-size=${capMb}`], NO_LIMITS);
  try {
    const body = largeKneeOaBody(mib * MIB - 4096);
    const answers = await Promise.all(
      Array.from({ length: concurrent }, () => postTo(served.port, URL, body)),
    );
    await new Promise((resolve) => setTimeout(resolve, 500));
    const alive = served.exited() === null && (await postTo(served.port, '/health/live', '')).status === 200;
    const statuses = answers.map((a) => a.status);
    log(`cap ${capMb} MB, ${concurrent} × ${mib} MiB: ${alive ? 'alive' : 'DIED'} (${statuses.join(',')})`);
    return { capMb, concurrent, mib, alive, statuses };
  } finally {
    await served.stop();
  }
}

const sizes = await perMib();
const runs = [];
for (const [cap, n, mib] of [[256, 3, 16]] as const) {
  runs.push(await survives(cap, n, mib));
}
process.stdout.write(`${JSON.stringify({ sizes, runs }, null, 2)}\n`);
