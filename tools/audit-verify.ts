/**
 * `npm run audit:verify`: walks the audit hash chain of the configured store (the same settings as the
 * server: CDS_DATA_DIR, or DATABASE_URL) from the first row to the chain head and reports the first
 * edited or deleted row, then checks that the model estimates indexed in `audit_prediction` are those
 * the chained events hold. Exit code 0 when the chain is intact, 1 when it is not, 2 when the store cannot
 * be read. It changes nothing (no migration either).
 *
 * `npm run audit:verify -- --input <hookInstance> <file>...` re-checks one call's input against the hash
 * its record holds (`src/audit/inputs.ts`). For a record whose `inputs.method` is `sha256-raw`: the files
 * are the request body as the client sent it, then the body of each page fetched from `fhirServer`, in
 * the order of `inputs.fetched` (pages in order); they are hashed as they are, one after the other. For
 * `sha256-canonical` (or no method: records written before the raw method): one file, the JSON object of
 * the prefetch data as the service resolved it (key → resource, or null), hashed in canonical form.
 * Exit code 0 when the hash matches, 1 when it does not, 2 when the call or a file cannot be read.
 */
import { createHash } from 'node:crypto';
import { existsSync, readFileSync } from 'node:fs';
import { loadSettings } from '../src/config.js';
import { invokedDirectly } from './usage.js';
import {
  type AuditedPrediction,
  type AuditStore,
  openStore,
  type ServiceCallPayload,
  sqliteFile,
} from '../src/audit/store.js';
import {
  canonicalJson,
  type ChainProblem,
  type ChainReport,
  type ChainRow,
  sha256Hex,
  verifyChain,
} from '../src/audit/hash-chain.js';

const PAGE = 1000;

async function* pages(store: AuditStore, after: number): AsyncGenerator<readonly ChainRow[]> {
  for (;;) {
    const rows = await store.readChain(after, PAGE);
    if (rows.length === 0) return;
    yield rows;
    after = rows.at(-1)!.seq;
  }
}

/**
 * Verifies the chain of a store, from the last row archived and removed (retention) if any: the
 * retention event that removed it must then be in the chain, naming the same row and hash.
 */
export async function verifyStore(store: AuditStore): Promise<ChainReport> {
  const base = await store.chainBase();
  const report = await verifyChain(pages(store, base.seq), await store.chainHead(), base);
  if (!report.ok) return report;
  const predictions = await verifyPredictions(store, base.seq);
  if (predictions) return { ok: false, rows: report.rows, last: report.last, problem: predictions };
  if (base.seq === 0) return report;
  let recorded = false;
  for await (const page of pages(store, base.seq)) {
    recorded ||= page.some((row) => {
      if (row.kind !== 'retention') return false;
      const { through } = JSON.parse(row.payload) as { through: { seq: number; hash: string } };
      return through.seq === base.seq && through.hash === base.hash;
    });
    if (recorded) break;
  }
  return recorded
    ? report
    : {
        ok: false,
        rows: report.rows,
        last: report.last,
        problem: {
          seq: base.seq,
          problem: 'deleted',
          detail: `rows up to ${base.seq} are gone but no retention event in the chain records their removal`,
        },
      };
}

/** The inputs of the service call with this hookInstance (the last one, if it was recorded twice). */
async function inputsOf(store: AuditStore, hookInstance: string) {
  let found: ServiceCallPayload['inputs'] | undefined;
  for await (const page of pages(store, (await store.chainBase()).seq)) {
    for (const row of page) {
      if (row.kind !== 'service-call') continue;
      const payload = JSON.parse(row.payload) as ServiceCallPayload;
      if (payload.hookInstance === hookInstance) found = payload.inputs;
    }
  }
  return found;
}

/** `--input <hookInstance> <file>...`: the files' hash, by the record's method, against the record's. */
async function checkInput(
  store: AuditStore,
  args: readonly string[],
  out: Output,
  err: Output,
): Promise<number> {
  const [hookInstance, ...files] = args;
  if (!hookInstance || files.length === 0) {
    err.write('audit:verify: usage: --input <hookInstance> <request body> [<fetched page>...]\n');
    return 2;
  }
  const inputs = await inputsOf(store, hookInstance);
  if (!inputs) {
    err.write(`audit:verify: no service call with hookInstance ${hookInstance}\n`);
    return 2;
  }
  const method = inputs.method ?? 'sha256-canonical';
  let sha256: string;
  try {
    if (method === 'sha256-raw') {
      const hash = createHash('sha256');
      for (const file of files) hash.update(readFileSync(file));
      sha256 = hash.digest('hex');
    } else {
      if (files.length !== 1) {
        err.write(
          'audit:verify: a sha256-canonical record is checked against one file (the prefetch data)\n',
        );
        return 2;
      }
      sha256 = sha256Hex(canonicalJson(JSON.parse(readFileSync(files[0]!, 'utf8'))));
    }
  } catch (error) {
    err.write(`audit:verify: cannot read the input: ${(error as Error).message}\n`);
    return 2;
  }
  const fetched = inputs.fetched?.length ? ` (fetched keys in order: ${inputs.fetched.join(', ')})` : '';
  if (sha256 === inputs.sha256) {
    out.write(`input matches the record of ${hookInstance} (${method})${fetched}\n`);
    return 0;
  }
  out.write(
    `input DIFFERS from the record of ${hookInstance} (${method}${fetched}): recorded ${inputs.sha256}, computed ${sha256}\n`,
  );
  return 1;
}

/** What a prediction row and its event's payload must agree on. */
const predictionKey = (p: AuditedPrediction) =>
  canonicalJson({
    model: p.model,
    mode: p.mode,
    focus: p.focus ?? null,
    risk: p.risk,
    band: p.band,
    positive: p.positive,
    topFactors: p.topFactors,
    inputs: p.inputs,
    subgroups: p.subgroups,
  });

/**
 * The model estimates (`audit_prediction`, issue 19) are index rows outside the chain: each must be what
 * its service-call event (hashed) holds, so that an edited estimate cannot skew a validation report.
 * @returns the first event whose rows differ, or undefined when all agree
 */
async function verifyPredictions(store: AuditStore, after: number): Promise<ChainProblem | undefined> {
  const stored = new Map<number, string[]>();
  const all = { from: '0000-01-01T00:00:00.000Z', to: '9999-12-31T23:59:59.999Z' };
  for (let from = { seq: 0, ordinal: -1 }; ;) {
    const page = await store.predictions(all, from, PAGE);
    for (const p of page) stored.set(p.eventSeq, [...(stored.get(p.eventSeq) ?? []), predictionKey(p)]);
    if (page.length < PAGE) break;
    from = { seq: page.at(-1)!.eventSeq, ordinal: page.at(-1)!.ordinal };
  }
  for await (const page of pages(store, after)) {
    for (const row of page) {
      if (row.kind !== 'service-call') continue;
      const { predictions = [] } = JSON.parse(row.payload) as ServiceCallPayload;
      const expected = predictions.map(predictionKey);
      const found = stored.get(row.seq) ?? [];
      stored.delete(row.seq);
      if (canonicalJson(found) !== canonicalJson(expected)) {
        return {
          seq: row.seq,
          problem: 'edited',
          detail: `the model estimates of row ${row.seq} (audit_prediction) differ from what the row holds`,
        };
      }
    }
  }
  const orphan = [...stored.keys()].sort((a, b) => a - b)[0];
  return orphan === undefined
    ? undefined
    : {
        seq: orphan,
        problem: 'edited',
        detail: `audit_prediction holds estimates of row ${orphan}, which holds none`,
      };
}

interface Output {
  write(text: string): unknown;
}

/**
 * The command: verifies the store the environment names and prints the verdict.
 * @returns the exit code: 0 intact, 1 broken, 2 unreadable
 */
export async function runVerify(
  env: Record<string, string | undefined>,
  out: Output = process.stdout,
  err: Output = process.stderr,
  args: readonly string[] = [],
): Promise<number> {
  let store: AuditStore;
  try {
    // The store's settings only: the server's checks across settings (authentication...) do not apply.
    const config = loadSettings(env);
    if (!config.databaseUrl && !existsSync(sqliteFile(config.dataDir))) {
      throw new Error(`no audit store at ${sqliteFile(config.dataDir)}`);
    }
    store = await openStore(config, { migrate: false });
  } catch (error) {
    err.write(`audit:verify: cannot open the audit store: ${(error as Error).message}\n`);
    return 2;
  }
  try {
    if (args[0] === '--input') return await checkInput(store, args.slice(1), out, err);
    const report = await verifyStore(store);
    if (report.ok) {
      out.write(`audit chain intact: ${report.rows} rows, head ${report.last.seq} ${report.last.hash}\n`);
      return 0;
    }
    const { seq, problem, detail } = report.problem!;
    out.write(
      `audit chain BROKEN at row ${seq} (${problem}): ${detail}. ${report.rows} intact rows before it.\n`,
    );
    return 1;
  } catch (error) {
    err.write(`audit:verify: cannot read the audit store: ${(error as Error).message}\n`);
    return 2;
  } finally {
    await store.close();
  }
}

// Run only as a script, not when imported.
if (invokedDirectly(import.meta.url)) {
  process.exitCode = await runVerify(process.env, process.stdout, process.stderr, process.argv.slice(2));
}
