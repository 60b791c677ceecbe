/**
 * Walks the audit hash chain of a store, a page at a time, from the first row to the chain head: the
 * check behind `npm run audit:verify` (tools/audit-verify.ts) and the tests.
 */
import { type ChainReport, type ChainRow, verifyChain } from './hash-chain.js';
import type { AuditStore } from './store.js';

const PAGE = 1000;

async function* pages(store: AuditStore): AsyncGenerator<readonly ChainRow[]> {
  let after = 0;
  for (;;) {
    const rows = await store.readChain(after, PAGE);
    if (rows.length === 0) return;
    yield rows;
    after = rows.at(-1)!.seq;
  }
}

/** Verifies the chain of a store. */
export async function verifyStore(store: AuditStore): Promise<ChainReport> {
  return verifyChain(pages(store), await store.chainHead());
}
