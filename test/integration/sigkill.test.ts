/**
 * Nothing acknowledged is lost: the real server (src/main.ts, SQLite store) issues cards, takes a
 * concurrent feedback load, and is killed with SIGKILL in the middle of it. Every feedback item it
 * answered 200 must be in the store afterwards, and the chain must verify.
 */
import { type ChildProcess, spawn } from 'node:child_process';
import Database from 'better-sqlite3';
import t from 'tap';
import { SYSTEM } from '../../src/codes.js';
import { openStore, sqliteFile } from '../../src/audit/store.js';
import { verifyStore } from '../../tools/audit-verify.js';
import { tempDir } from '../helpers/app.js';
import { lesion, patientView, searchset } from '../helpers/hook-request.js';
import { childEnv, killOnExit, LOADER } from '../helpers/child.js';

// Starting the real server under the full suite's load takes up to two minutes (see startServer).
t.setTimeout(600_000);

const CARDS = 40;
const WORKERS = 16;
const KILL_AFTER_ACKS = 150;

/** Starts the server on a free port and resolves with its base URL once it listens. */
function startServer(
  dataDir: string,
): Promise<{ child: ChildProcess; base: string; exited: Promise<unknown> }> {
  const child = spawn(process.execPath, [`--import=${LOADER}`, 'src/main.ts'], {
    env: childEnv({ CDS_PORT: '0', CDS_DATA_DIR: dataDir, CDS_LOG_LEVEL: 'info', CDS_AUTH_DISABLED: 'true' }),
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  killOnExit(child);
  const exited = new Promise((resolve) => child.once('exit', resolve));
  return new Promise((resolve, reject) => {
    let buffer = '';
    let stderr = '';
    // The server is started from TypeScript (transpiled on load): about 10 s on an idle 2-core machine,
    // three times that when the rest of the suite loads it. A server that does not start is killed, so
    // the test fails at once rather than at tap's timeout with the child still open.
    const timer = setTimeout(() => {
      child.kill('SIGKILL');
      reject(new Error(`server did not start within 120 s: ${stderr}`));
    }, 120_000);
    child.stderr!.on('data', (chunk) => (stderr += String(chunk)));
    child.stdout!.on('data', (chunk: Buffer) => {
      buffer += String(chunk);
      const match = /Server listening at (http:\/\/127\.0\.0\.1:\d+)/.exec(buffer);
      if (match) {
        clearTimeout(timer);
        buffer = '';
        resolve({ child, base: match[1]!, exited });
      }
      if (buffer.length > 1e6) buffer = buffer.slice(-1000);
    });
    child.once('exit', (code) => reject(new Error(`server exited with ${code}: ${stderr}`)));
  });
}

t.test('SIGKILL during a feedback load loses no acknowledged feedback', async (t) => {
  const dataDir = tempDir('cds-sigkill-');
  const { child, base, exited } = await startServer(dataDir);
  t.teardown(() => {
    if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
  });
  const url = `${base}/cds-services/melanoma-lesion-triage`;

  const cards: { uuid: string; suggestion: string }[] = [];
  for (let i = 0; i < CARDS; i++) {
    const request = patientView({
      lesions: searchset([lesion({ items: { changeSize: true, irregularColour: true } })]),
    });
    request.context.patientId = `pat-${i}`;
    const res = await fetch(url, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify(request),
    });
    t.equal(res.status, 200);
    const [card] = ((await res.json()) as { cards: { uuid: string; suggestions: { uuid: string }[] }[] })
      .cards;
    cards.push({ uuid: card!.uuid, suggestion: card!.suggestions[0]!.uuid });
  }

  // Each item is unique: a card, an outcome and an instant.
  let next = 0;
  const item = (n: number) => {
    const card = cards[n % CARDS]!;
    const outcomeTimestamp = new Date(Date.UTC(2026, 10, 22, 10, 0, 0, n)).toISOString();
    return n % 2
      ? {
          card: card.uuid,
          outcome: 'accepted',
          acceptedSuggestions: [{ id: card.suggestion }],
          outcomeTimestamp,
        }
      : {
          card: card.uuid,
          outcome: 'overridden',
          overrideReason: { reason: { system: SYSTEM.overrideReason, code: 'already-handled' } },
          outcomeTimestamp,
        };
  };
  const acked: { card: string; outcome: string; outcomeTimestamp: string }[] = [];
  let failed = 0;
  let killedAt = 0;
  const started = Date.now();
  const worker = async () => {
    while (child.signalCode === null) {
      const body = item(next++);
      try {
        const res = await fetch(`${url}/feedback`, {
          method: 'POST',
          headers: { 'content-type': 'application/json' },
          body: JSON.stringify({ feedback: [body] }),
        });
        if (res.status === 200) {
          acked.push(body);
          if (acked.length === KILL_AFTER_ACKS) {
            killedAt = Date.now();
            child.kill('SIGKILL');
          }
        } else failed += 1;
        await res.arrayBuffer();
      } catch {
        // Refused or cut by the kill: not acknowledged, so nothing is promised about it.
      }
    }
  };
  await Promise.all(Array.from({ length: WORKERS }, worker));
  await exited;
  t.equal(child.signalCode, 'SIGKILL');
  t.equal(failed, 0, 'no feedback was refused before the kill');
  t.ok(acked.length >= KILL_AFTER_ACKS, `${acked.length} feedback items acknowledged before the kill`);
  t.ok(next > acked.length, `${next - acked.length} requests were in flight or unsent when it died`);

  const db = new Database(sqliteFile(dataDir), { readonly: true });
  const stored = new Set(
    (
      db.prepare('SELECT card_uuid, outcome, outcome_instant FROM audit_feedback').all() as Record<
        string,
        string
      >[]
    ).map((r) => `${r.card_uuid}|${r.outcome}|${r.outcome_instant}`),
  );
  db.close();
  const missing = acked.filter((a) => !stored.has(`${a.card}|${a.outcome}|${a.outcomeTimestamp}`));
  t.same(missing, [], 'every acknowledged item is stored');
  t.ok(stored.size >= acked.length);
  t.comment(
    `${acked.length} acknowledged in ${killedAt - started} ms under ${WORKERS} concurrent clients; ${stored.size} stored`,
  );

  const store = await openStore({ dataDir });
  t.teardown(() => store.close());
  const report = await verifyStore(store);
  t.equal(report.ok, true, 'the chain is intact after the kill');
  t.equal(report.rows, CARDS + stored.size);
});
