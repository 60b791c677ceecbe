/**
 * `npm run bench:audit-commit [-- --records N]`: where a call waits for its audit record (issue 18). A
 * call is answered only once its record is committed (SQLite, WAL, `synchronous = FULL`, in the worker
 * thread of `worker-store.ts`); this splits that wait, on a fresh store in a temporary folder, with a
 * service-call record shaped like a knee-OA call's (a model card, its prediction, 40 references, an
 * explanation page):
 *
 * - the CPU parts, in this thread: the structured clone of a record (what postMessage does to it), its
 *   canonical JSON and chain hash;
 * - one append in a thread-local store (the worker's own work): the transaction's statements (chain,
 *   index rows, page) against its COMMIT, which is where the disk sync happens;
 * - the round trip of one append through the worker (what a call at one connection waits for);
 * - the writer's group commit with 16 records always waiting (what calls at 16 connections wait for):
 *   records per second, the wait of each record and the records per transaction.
 *
 * Times are wall-clock milliseconds: on a loaded machine they include waiting for a CPU, and the disk
 * sync depends on the disk. Printed as JSON; nothing is written to the repository.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { createAuditWriter } from '../../src/audit/audit-writer.js';
import { canonicalJson, chainHash, GENESIS } from '../../src/audit/hash-chain.js';
import { createSqlStore, type SqlDriver } from '../../src/audit/sql-store.js';
import { openSqliteDriver } from '../../src/audit/sqlite.js';
import type { AuditStore, NewAuditEvent } from '../../src/audit/store.js';
import { openWorkerStore } from '../../src/audit/worker-store.js';
import { median, quantile, round } from './helpers.js';

const { values } = parseArgs({ options: { records: { type: 'string', default: '400' } } });
const RECORDS = Number(values.records);

const hex = (n: number, width = 64) => n.toString(16).padStart(width, '0');
const uuid = (n: number) => {
  const h = hex(n, 32);
  return `${h.slice(0, 8)}-${h.slice(8, 12)}-4${h.slice(13, 16)}-8${h.slice(17, 20)}-${h.slice(20, 32)}`;
};

/** A knee-OA call's record: one model card with its factors, its prediction, its explanation page. */
function record(n: number): Extract<NewAuditEvent, { kind: 'service-call' }> {
  const factors = ['age', 'bmi', 'pain', 'klGrade3', 'kneeInjury'].map((id, i) => ({
    id,
    value: 1 + i,
    contribution: 0.1 * (i + 1),
  }));
  const card = uuid(n * 2 + 1);
  return {
    kind: 'service-call',
    at: new Date(Date.UTC(2026, 10, 22, 9, 30, 0, n)).toISOString(),
    serviceId: 'knee-oa-progression',
    pseudonym: hex(n * 7919),
    payload: {
      hook: 'patient-view',
      hookInstance: uuid(n * 2),
      caller: { issuer: 'https://ehr.bench.example.org', tenant: null },
      service: { id: 'knee-oa-progression', version: '1.0.0', sha256: hex(1) },
      models: [{ id: 'knee-oa-progression', version: '1.0.0', sha256: hex(2) }],
      inputs: {
        sha256: hex(n),
        method: 'sha256-raw',
        references: Array.from({ length: 40 }, (_, i) => `Observation/${uuid(n * 100 + i)}`),
      },
      cards: [
        {
          uuid: card,
          indicator: 'warning',
          summary: 'Knee osteoarthritis: higher estimated risk of progression within 2 years',
          suggestions: [uuid(n * 2 + 3)],
          risk: 0.41,
          topFactors: factors,
          finding: 'knee-oa-risk@Patient',
        },
      ],
      latencyMs: 1.234,
      predictions: [
        {
          model: { id: 'knee-oa-progression', version: '1.0.0' },
          mode: 'live',
          risk: 0.41,
          band: 'higher',
          positive: true,
          topFactors: factors,
          inputs: Object.fromEntries(factors.map((f) => [f.id, f.value])),
          subgroups: { ageBand: '65-74', sex: 'female' },
        },
      ],
    },
    pages: [{ uuid: card, exp: 1_800_000_000, content: JSON.stringify({ text: 'x'.repeat(3000) }) }],
  };
}

/** Runs `fn` `times` times; the milliseconds of each run. */
async function timed(times: number, fn: (i: number) => unknown): Promise<number[]> {
  const ms: number[] = [];
  for (let i = 0; i < times; i++) {
    const start = performance.now();
    await fn(i);
    ms.push(performance.now() - start);
  }
  return ms;
}

const summary = (ms: readonly number[]) => ({
  meanMs: round(ms.reduce((a, b) => a + b, 0) / ms.length, 3),
  p50Ms: round(median(ms), 3),
  p99Ms: round(quantile(ms, 0.99), 3),
});

/** A driver that times each transaction's statements apart from the whole (the rest is the COMMIT). */
function timedDriver(driver: SqlDriver, body: number[], whole: number[]): SqlDriver {
  return {
    ...driver,
    async transaction(fn) {
      const start = performance.now();
      const result = await driver.transaction(async (q) => {
        const bodyStart = performance.now();
        const value = await fn(q);
        body.push(performance.now() - bodyStart);
        return value;
      });
      whole.push(performance.now() - start);
      return result;
    },
  };
}

const dir = mkdtempSync(join(tmpdir(), 'cds-audit-commit-'));
let next = 0;
const out: Record<string, unknown> = { records: RECORDS };
try {
  const sample = record(0);
  out.recordBytes = canonicalJson(sample.payload).length + JSON.stringify(sample.pages).length;
  out.cloneMs = summary(await timed(RECORDS, () => structuredClone(record(next++))));
  out.canonicalAndHashMs = summary(
    await timed(RECORDS, () => {
      const event = record(next++);
      chainHash(GENESIS, {
        seq: 1,
        kind: event.kind,
        at: event.at,
        serviceId: event.serviceId,
        pseudonym: event.pseudonym,
        payload: canonicalJson(event.payload),
      });
    }),
  );

  // The worker's own work, in this thread: statements, then COMMIT (the disk sync).
  const body: number[] = [];
  const whole: number[] = [];
  const local = await createSqlStore(timedDriver(openSqliteDriver(join(dir, 'local.sqlite')), body, whole), {
    migrate: true,
  });
  body.length = 0;
  whole.length = 0;
  await timed(RECORDS, () => local.append([record(next++)]));
  out.inThreadAppend = {
    statementsMs: summary(body),
    commitMs: summary(whole.map((w, i) => w - body[i]!)),
  };
  await local.close();

  // Through the worker thread, one record at a time: a call at one connection.
  const worker = await openWorkerStore(join(dir, 'worker.sqlite'), { migrate: true });
  try {
    out.workerRoundTripMs = summary(await timed(RECORDS, () => worker.append([record(next++)])));

    // The writer's group commit with 16 records always waiting: calls at 16 connections.
    let transactions = 0;
    const counting: AuditStore = {
      ...worker,
      append: (events) => {
        transactions += 1;
        return worker.append(events);
      },
    };
    const writer = createAuditWriter(counting, {
      maxQueue: 10_000,
      log: { warn: () => undefined, error: () => undefined, info: () => undefined },
    });
    const waits: number[] = [];
    let issued = 0;
    const start = performance.now();
    await Promise.all(
      Array.from({ length: 16 }, async () => {
        while (issued < RECORDS) {
          issued += 1;
          const at = performance.now();
          await writer.record(record(next++));
          waits.push(performance.now() - at);
        }
      }),
    );
    const seconds = (performance.now() - start) / 1000;
    await writer.close();
    out.groupCommit16 = {
      recordsPerSecond: round(waits.length / seconds, 1),
      waitMs: summary(waits),
      recordsPerTransaction: round(waits.length / transactions, 2),
    };
  } finally {
    await worker.close();
  }
} finally {
  rmSync(dir, { recursive: true, force: true });
}
process.stdout.write(`${JSON.stringify(out, null, 2)}\n`);
