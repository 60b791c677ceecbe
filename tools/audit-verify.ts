/**
 * `npm run audit:verify`: walks the audit hash chain of the configured store (the same settings as the
 * server: CDS_DATA_DIR, or DATABASE_URL) from the first row to the chain head and reports the first
 * edited or deleted row. Exit code 0 when the chain is intact, 1 when it is not, 2 when the store cannot
 * be read. It changes nothing (no migration either).
 */
import { existsSync } from 'node:fs';
import { loadSettings } from '../src/config.js';
import { invokedDirectly } from './usage.js';
import { type AuditStore, openStore, sqliteFile } from '../src/audit/store.js';
import { type ChainReport, type ChainRow, verifyChain } from '../src/audit/hash-chain.js';

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
  if (!report.ok || base.seq === 0) return report;
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
  process.exitCode = await runVerify(process.env);
}
