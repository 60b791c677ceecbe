/**
 * The audit spill file: where the writer also keeps the records it holds while the store cannot take
 * them, when a second folder is configured (`CDS_AUDIT_SPILL_DIR`), so that a restart during an outage
 * loses none. One JSON event per line, appended and synced (`fdatasync`) before the call is answered;
 * emptied once every record in it has been written to the store; read back at start-up and written
 * first. The folder should be on another disk than the store's: a full data disk must not also stop the
 * spill.
 *
 * A crash between a store commit and the emptying of the file writes those records a second time at the
 * next start-up (the chain stays valid; a card already stored is refused as a duplicate and counted as
 * rejected, a repeated feedback is recognised).
 */
import { mkdirSync, readFileSync } from 'node:fs';
import { type FileHandle, open } from 'node:fs/promises';
import { join } from 'node:path';
import type { NewAuditEvent } from './store.js';

export const SPILL_FILE = 'audit-spill.jsonl';

export interface AuditSpill {
  /** Appends events, in order, and syncs them to disk. */
  append(events: readonly NewAuditEvent[]): Promise<void>;
  /** Empties the file (everything in it has been written to the store). */
  clear(): Promise<void>;
  close(): Promise<void>;
}

/**
 * Reads what a previous run left in the spill file (a torn last line, from a crash mid-write, is
 * skipped: its call was not answered).
 */
export function readSpill(dir: string): NewAuditEvent[] {
  let text: string;
  try {
    text = readFileSync(join(dir, SPILL_FILE), 'utf8');
  } catch (error) {
    if ((error as { code?: string }).code === 'ENOENT') return [];
    throw error;
  }
  const events: NewAuditEvent[] = [];
  for (const line of text.split('\n')) {
    if (line === '') continue;
    try {
      events.push(JSON.parse(line) as NewAuditEvent);
    } catch {
      // A torn line: not acknowledged.
    }
  }
  return events;
}

/** Opens (creates) the spill file in `dir`; writes are serialized. */
export function openSpill(dir: string): AuditSpill {
  mkdirSync(dir, { recursive: true });
  const file = join(dir, SPILL_FILE);
  let handle: Promise<FileHandle> | undefined;
  let tail: Promise<unknown> = Promise.resolve();
  const serial = <T>(fn: () => Promise<T>): Promise<T> => {
    const next = tail.then(fn, fn);
    tail = next.catch(() => undefined);
    return next;
  };
  const fileHandle = () => (handle ??= open(file, 'a', 0o600));

  return {
    append: (events) =>
      serial(async () => {
        if (events.length === 0) return;
        const fh = await fileHandle();
        await fh.appendFile(events.map((e) => `${JSON.stringify(e)}\n`).join(''), 'utf8');
        await fh.datasync();
      }),
    clear: () =>
      serial(async () => {
        const fh = await fileHandle();
        await fh.truncate(0);
        await fh.datasync();
      }),
    close: () =>
      serial(async () => {
        const fh = handle;
        handle = undefined;
        if (fh) await (await fh).close();
      }),
  };
}
