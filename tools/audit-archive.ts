/**
 * `npm run audit:archive -- --out <file> [--older-than-days N]`: the audit retention command. Rows of
 * the audit chain older than `CDS_AUDIT_RETENTION_DAYS` (or N) days are
 * 1. verified, then exported to `<file>` (JSON lines: a header with the row the segment links to, the
 *    rows, and a trailer with the segment's head, so that the archive verifies on its own), synced;
 * 2. removed from the store with their index rows (cards, feedback, suppressed cards, model
 *    estimates), in one transaction that records the
 *    archive (`audit_archive`) and appends a `retention` event to the chain naming the segment and the
 *    archive's SHA-256: the removal is itself audited, and `npm run audit:verify` then starts after it.
 * Nothing is removed unless the export was written and synced first. `--verify <file>` checks an archive.
 * Same settings as the server (CDS_DATA_DIR or DATABASE_URL). Exit code 0 done (or nothing to archive),
 * 1 refused (chain broken, archive not valid), 2 store or file unusable.
 */
import { createHash } from 'node:crypto';
import { existsSync, readFileSync } from 'node:fs';
import { open } from 'node:fs/promises';
import { parseArgs } from 'node:util';
import { loadSettings } from '../src/config.js';
import { type ChainReport, type ChainRow, verifyChain } from '../src/audit/hash-chain.js';
import { type AuditStore, openStore, sqliteFile } from '../src/audit/store.js';
import { invokedDirectly } from './usage.js';

export const ARCHIVE_FORMAT = 'explainable-cds-audit-archive/1';
const PAGE = 1000;
const DAY_MS = 86_400_000;

interface Output {
  write(text: string): unknown;
}

interface Header {
  format: string;
  createdAt: string;
  before: string;
  base: { seq: number; hash: string };
}

/** Reads an archive file and verifies its rows from its base to its head. */
export async function verifyArchive(file: string): Promise<ChainReport & { header: Header }> {
  const lines = readFileSync(file, 'utf8').trim().split('\n');
  const header = JSON.parse(lines[0]!) as Header;
  if (header.format !== ARCHIVE_FORMAT) throw new Error(`${file} is not an audit archive`);
  const trailer = JSON.parse(lines.at(-1)!) as { head?: { seq: number; hash: string } };
  const rows = lines.slice(1, -1).map((l) => JSON.parse(l) as ChainRow);
  async function* one() {
    yield rows;
  }
  return { ...(await verifyChain(one(), trailer.head ?? null, header.base)), header };
}

/**
 * Archives and removes the rows older than `before`.
 * @returns what was done, for the command's output
 * @throws Error when the chain to archive does not verify, or the store moved during the export
 */
export async function archive(
  store: AuditStore,
  before: Date,
  file: string,
  now: Date,
): Promise<{ rows: number; through: number; retentionSeq?: number; sha256?: string }> {
  const base = await store.chainBase();
  const through = await store.retentionBoundary(before.toISOString());
  if (through <= base.seq) return { rows: 0, through: base.seq };
  const rows: ChainRow[] = [];
  for (let after = base.seq; after < through;) {
    const page = await store.readChain(after, Math.min(PAGE, through - after));
    if (page.length === 0) break;
    rows.push(...page);
    after = page.at(-1)!.seq;
  }
  const last = rows.at(-1);
  if (!last || last.seq !== through) throw new Error(`rows ${base.seq + 1}…${through} could not all be read`);
  async function* one() {
    yield rows;
  }
  const report = await verifyChain(one(), { seq: last.seq, hash: last.hash }, base);
  if (!report.ok) {
    throw new Error(
      `the chain to archive does not verify at row ${report.problem!.seq}: ${report.problem!.detail}`,
    );
  }
  const header: Header = {
    format: ARCHIVE_FORMAT,
    createdAt: now.toISOString(),
    before: before.toISOString(),
    base,
  };
  const text = [header, ...rows, { head: { seq: last.seq, hash: last.hash } }]
    .map((v) => JSON.stringify(v))
    .join('\n')
    .concat('\n');
  // Written and synced before anything is removed; never over an existing file.
  const handle = await open(file, 'wx', 0o600);
  try {
    await handle.writeFile(text, 'utf8');
    await handle.sync();
  } finally {
    await handle.close();
  }
  const sha256 = createHash('sha256').update(text, 'utf8').digest('hex');
  const retentionSeq = await store.removeArchived({
    kind: 'retention',
    at: now.toISOString(),
    serviceId: 'audit',
    pseudonym: null,
    payload: {
      before: before.toISOString(),
      base,
      through: { seq: last.seq, hash: last.hash },
      rows: rows.length,
      archiveSha256: sha256,
    },
  });
  return { rows: rows.length, through: last.seq, retentionSeq, sha256 };
}

/**
 * The command.
 * @returns the exit code
 */
export async function runArchive(
  argv: readonly string[],
  env: Record<string, string | undefined>,
  out: Output = process.stdout,
  err: Output = process.stderr,
  now: () => Date = () => new Date(),
): Promise<number> {
  let args;
  try {
    args = parseArgs({
      args: [...argv],
      options: {
        out: { type: 'string' },
        'older-than-days': { type: 'string' },
        verify: { type: 'string' },
      },
      strict: true,
    }).values;
  } catch (error) {
    err.write(`audit:archive: ${(error as Error).message}\n`);
    return 2;
  }
  if (args.verify) {
    try {
      const report = await verifyArchive(args.verify);
      if (!report.ok) {
        out.write(`archive BROKEN at row ${report.problem!.seq}: ${report.problem!.detail}\n`);
        return 1;
      }
      out.write(
        `archive intact: ${report.rows} rows after row ${report.header.base.seq}, head ${report.last.seq} ${report.last.hash}\n`,
      );
      return 0;
    } catch (error) {
      err.write(`audit:archive: cannot read ${args.verify}: ${(error as Error).message}\n`);
      return 2;
    }
  }
  if (!args.out) {
    err.write('audit:archive: --out <file> is required (where the archived rows are written)\n');
    return 2;
  }
  let store: AuditStore;
  let days: number;
  try {
    const config = loadSettings(env);
    days =
      args['older-than-days'] === undefined ? config.auditRetentionDays : Number(args['older-than-days']);
    if (!Number.isInteger(days) || days < 1) throw new Error('--older-than-days must be a whole number ≥ 1');
    if (!config.databaseUrl && !existsSync(sqliteFile(config.dataDir))) {
      throw new Error(`no audit store at ${sqliteFile(config.dataDir)}`);
    }
    store = await openStore(config);
  } catch (error) {
    err.write(`audit:archive: cannot open the audit store: ${(error as Error).message}\n`);
    return 2;
  }
  try {
    const at = now();
    const before = new Date(at.getTime() - days * DAY_MS);
    const done = await archive(store, before, args.out, at);
    if (done.rows === 0) {
      out.write(`nothing to archive: no row older than ${before.toISOString()}\n`);
      return 0;
    }
    out.write(
      `archived ${done.rows} rows (through row ${done.through}) older than ${before.toISOString()} to ${args.out} (sha256 ${done.sha256}); removed from the store, recorded as row ${done.retentionSeq}\n`,
    );
    return 0;
  } catch (error) {
    err.write(`audit:archive: refused: ${(error as Error).message}\n`);
    return 1;
  } finally {
    await store.close();
  }
}

// Run only as a script, not when imported.
if (invokedDirectly(import.meta.url)) {
  process.exitCode = await runArchive(process.argv.slice(2), process.env);
}
