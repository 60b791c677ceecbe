/**
 * The tamper-evident chain over every audit event (service calls, feedback, objections): each row
 * stores `prev_hash` and `hash = sha256(prev_hash + canonicalJson(content))`, where the content holds
 * every column of the row, its sequence number included. Editing a row breaks its own hash (or, if the
 * hash was recomputed too, the next row's link); deleting a row leaves a gap in the sequence or a link
 * that points nowhere; deleting the last rows leaves the chain head (kept in its own table, updated in
 * the same transaction) ahead of the last row.
 */
import { createHash } from 'node:crypto';

/** The `prev_hash` of the first row. */
export const GENESIS = '0'.repeat(64);

/** A piece of output text already written out, waiting on the stack of {@link canonicalJson}. */
class Text {
  readonly text: string;
  constructor(text: string) {
    this.text = text;
  }
}

/**
 * JSON with object keys sorted (by UTF-16 code units, as RFC 8785) and no whitespace, so the same data
 * always gives the same text whatever order its keys came in. `undefined` members are left out, as
 * JSON.stringify does; non-finite numbers are refused rather than silently written as null. Iterative,
 * so that a deeply nested value from a client cannot overflow the stack.
 */
export function canonicalJson(value: unknown): string {
  const out: string[] = [];
  const stack: unknown[] = [value];
  while (stack.length > 0) {
    const item = stack.pop();
    if (item instanceof Text) out.push(item.text);
    else if (item === null || typeof item === 'boolean' || typeof item === 'string') {
      out.push(JSON.stringify(item));
    } else if (typeof item === 'number') {
      if (!Number.isFinite(item)) throw new TypeError(`canonicalJson: ${item} is not a JSON number`);
      out.push(JSON.stringify(item));
    } else if (Array.isArray(item)) {
      stack.push(new Text(']'));
      for (let i = item.length - 1; i >= 0; i--) {
        stack.push(item[i] === undefined ? null : item[i]);
        if (i > 0) stack.push(new Text(','));
      }
      stack.push(new Text('['));
    } else if (typeof item === 'object') {
      const record = item as Record<string, unknown>;
      const keys = Object.keys(record)
        .filter((k) => record[k] !== undefined)
        .sort();
      stack.push(new Text('}'));
      for (let i = keys.length - 1; i >= 0; i--) {
        stack.push(record[keys[i]!]);
        stack.push(new Text(`${i > 0 ? ',' : ''}${JSON.stringify(keys[i])}:`));
      }
      stack.push(new Text('{'));
    } else throw new TypeError(`canonicalJson: cannot encode a ${typeof item}`);
  }
  return out.join('');
}

export function sha256Hex(text: string): string {
  return createHash('sha256').update(text, 'utf8').digest('hex');
}

/** What a chained row is made of, besides its links. */
export interface ChainContent {
  seq: number;
  kind: string;
  at: string;
  serviceId: string;
  pseudonym: string | null;
  /** The event's details, as stored: canonical JSON text. */
  payload: string;
}

export interface ChainRow extends ChainContent {
  prevHash: string;
  hash: string;
}

/** The hash of a row given the previous row's hash. */
export function chainHash(prevHash: string, content: ChainContent): string {
  const { seq, kind, at, serviceId, pseudonym, payload } = content;
  return sha256Hex(prevHash + canonicalJson({ seq, kind, at, serviceId, pseudonym, payload }));
}

export interface ChainProblem {
  /** The sequence number of the first row found edited or missing. */
  seq: number;
  problem: 'edited' | 'deleted';
  detail: string;
}

export interface ChainReport {
  ok: boolean;
  /** Rows read. */
  rows: number;
  /** Sequence number and hash of the last row read (0 and GENESIS for an empty chain). */
  last: { seq: number; hash: string };
  problem?: ChainProblem;
}

/**
 * Walks rows in sequence order and reports the first edited or deleted row.
 * @param pages yields the rows in ascending `seq`, page after page
 * @param head the chain head the store keeps (`null` when it is missing)
 */
export async function verifyChain(
  pages: AsyncIterable<readonly ChainRow[]>,
  head: { seq: number; hash: string } | null,
): Promise<ChainReport> {
  let prev = { seq: 0, hash: GENESIS };
  let rows = 0;
  const fail = (problem: ChainProblem): ChainReport => ({ ok: false, rows, last: prev, problem });
  for await (const page of pages) {
    for (const row of page) {
      if (row.seq > prev.seq + 1) {
        const missing =
          row.seq - 1 > prev.seq + 1
            ? `rows ${prev.seq + 1}…${row.seq - 1} are missing`
            : `row ${prev.seq + 1} is missing`;
        return fail({
          seq: prev.seq + 1,
          problem: 'deleted',
          detail: `${missing} (row ${row.seq} follows row ${prev.seq})`,
        });
      }
      if (row.seq !== prev.seq + 1) {
        return fail({
          seq: prev.seq + 1,
          problem: 'edited',
          detail: `row ${row.seq} is out of sequence after row ${prev.seq}`,
        });
      }
      const selfConsistent = chainHash(row.prevHash, row) === row.hash;
      if (!selfConsistent) {
        return fail({
          seq: row.seq,
          problem: 'edited',
          detail: `row ${row.seq}'s content no longer matches its hash`,
        });
      }
      if (row.prevHash !== prev.hash && prev.seq === 0) {
        return fail({ seq: row.seq, problem: 'edited', detail: `row ${row.seq} does not start the chain` });
      }
      if (row.prevHash !== prev.hash) {
        // This row is intact but links to another version of the previous row: that row was edited and
        // its hash recomputed.
        return fail({
          seq: prev.seq,
          problem: 'edited',
          detail: `row ${row.seq} links to a different version of row ${prev.seq}: row ${prev.seq} was edited and rehashed`,
        });
      }
      prev = { seq: row.seq, hash: row.hash };
      rows += 1;
    }
  }
  if (!head) {
    return fail({ seq: prev.seq + 1, problem: 'deleted', detail: 'the chain head record is missing' });
  }
  if (head.seq !== prev.seq || head.hash !== prev.hash) {
    return fail(
      head.seq > prev.seq
        ? {
            seq: prev.seq + 1,
            problem: 'deleted',
            detail: `the chain head is at row ${head.seq} but the last row is ${prev.seq}: the last rows were deleted`,
          }
        : {
            seq: head.seq,
            problem: 'edited',
            detail: `the chain head (row ${head.seq}) does not match the last row (${prev.seq})`,
          },
    );
  }
  return { ok: true, rows, last: prev };
}
