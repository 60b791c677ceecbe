/**
 * `npm run audit:archive`: records older than the retention age are exported with their chain head (the
 * archive verifies on its own), removed through one audited transaction (a `retention` event in the
 * chain), and the chain that remains still verifies; on both stores.
 */
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import t from 'tap';
import { archive, runArchive, verifyArchive } from '../../tools/audit-archive.js';
import { verifyStore } from '../../tools/audit-verify.js';
import { tempDir } from '../helpers/app.js';
import { callEvent, feedbackEvent } from '../helpers/audit-events.js';
import { eachStore } from '../helpers/stores.js';

const NOW = new Date('2026-11-22T09:30:00.000Z');
const BEFORE = new Date('2025-11-22T09:30:00.000Z');

const capture = () => {
  let text = '';
  return { write: (s: string) => (text += s), text: () => text };
};

await eachStore(t, async (t, kind) => {
  t.test('old rows are archived, removed and the removal recorded; both parts verify', async (t) => {
    const { store, raw } = await kind.open();
    await store.append([
      callEvent({ at: '2024-01-10T10:00:00.000Z', cards: [{ uuid: 'old-1' }] }),
      {
        ...feedbackEvent({ card: 'old-1', outcomeTimestamp: '2024-01-10T10:05:00Z' }),
        at: '2024-01-10T10:05:00.000Z',
      },
      callEvent({ at: '2025-03-01T10:00:00.000Z', cards: [{ uuid: 'old-2' }] }),
    ]);
    await store.append([callEvent({ at: '2026-11-01T10:00:00.000Z', cards: [{ uuid: 'recent' }] })]);
    const file = join(tempDir('cds-archive-'), 'audit-2025.jsonl');

    const done = await archive(store, BEFORE, file, NOW);
    t.equal(done.rows, 3);
    t.equal(done.through, 3);
    t.equal(done.retentionSeq, 5, 'the retention event is the next row of the chain');

    const archived = await verifyArchive(file);
    t.ok(archived.ok, 'the archive verifies on its own');
    t.equal(archived.rows, 3);
    t.same(archived.header.base, { seq: 0, hash: '0'.repeat(64) });

    const kept = await store.readChain(0, 100);
    t.same(
      kept.map((r) => [r.seq, r.kind]),
      [
        [4, 'service-call'],
        [5, 'retention'],
      ],
    );
    t.equal(kept[0]!.prevHash, archived.last.hash, "the first row kept links to the archive's head");
    const retention = JSON.parse(kept[1]!.payload);
    t.same(retention.through, archived.last);
    t.equal(retention.rows, 3);
    t.match(retention.archiveSha256, /^[0-9a-f]{64}$/);
    t.same(await store.chainBase(), archived.last);
    const report = await verifyStore(store);
    t.ok(report.ok, 'the chain kept verifies');
    t.equal(report.rows, 2);
    t.same(
      [...(await store.findCards('melanoma-lesion-triage', ['old-1', 'old-2', 'recent'])).keys()],
      ['recent'],
    );
    t.same(await raw('SELECT COUNT(*) AS n FROM audit_feedback'), [
      { n: kind.name === 'postgres' ? '0' : 0 },
    ]);

    // Appends go on after a retention; nothing else is old enough now.
    await store.append([callEvent({ at: '2026-11-22T09:00:00.000Z', cards: [{ uuid: 'later' }] })]);
    t.ok((await verifyStore(store)).ok);
    const again = await archive(store, BEFORE, join(tempDir('cds-archive-'), 'none.jsonl'), NOW);
    t.equal(again.rows, 0);

    // The triggers are back: rows cannot be deleted behind the command's back.
    await t.rejects(raw('DELETE FROM audit_event WHERE seq = 4'), /append-only/);
    // An edited archive no longer verifies.
    const lines = readFileSync(file, 'utf8').split('\n');
    lines[2] = lines[2]!.replace('old-1', 'old-X');
    writeFileSync(file, lines.join('\n'));
    t.notOk((await verifyArchive(file)).ok, 'an edited archive is detected');
  });

  t.test('the suppressed cards and model estimates of archived calls go with them', async (t) => {
    const { store, raw } = await kind.open();
    const withIndex = (at: string, finding: string) => {
      const event = callEvent({ at, cards: [] });
      if (event.kind !== 'service-call') throw new Error('a call event');
      const prediction = {
        model: { id: 'melanoma-risk', version: '1.0.0' },
        mode: 'silent' as const,
        risk: 0.3,
        band: 'higher',
        positive: true,
        topFactors: [],
        inputs: { naevusCount: 2 },
        subgroups: { phototype: 'I-II' },
      };
      return {
        ...event,
        payload: {
          ...event.payload,
          suppressed: [{ finding, reason: 'silent' }],
          predictions: [prediction, { ...prediction, mode: 'live' as const }],
        },
      };
    };
    await store.append([
      withIndex('2024-01-10T10:00:00.000Z', 'old@Observation/1'),
      withIndex('2026-11-01T10:00:00.000Z', 'recent@Observation/2'),
    ]);
    const count = async (table: string) => Number((await raw(`SELECT COUNT(*) AS n FROM ${table}`))[0]!.n);
    t.equal(await count('audit_prediction'), 4);
    t.equal(await count('audit_suppressed'), 2);
    const done = await archive(store, BEFORE, join(tempDir('cds-archive-'), 'index.jsonl'), NOW);
    t.equal(done.rows, 1);
    t.same(
      (await raw('SELECT event_seq, ordinal FROM audit_prediction ORDER BY ordinal')).map((r) => [
        Number(r.event_seq),
        Number(r.ordinal),
      ]),
      [
        [2, 0],
        [2, 1],
      ],
    );
    t.same(
      (await raw('SELECT event_seq FROM audit_suppressed')).map((r) => Number(r.event_seq)),
      [2],
    );
    t.ok((await verifyStore(store)).ok);
    // Their append-only triggers are back too.
    await t.rejects(raw('DELETE FROM audit_prediction'), /append-only/);
    await t.rejects(raw('DELETE FROM audit_suppressed'), /append-only/);
  });

  t.test(
    'a row older than the cutoff after a newer one stays (the segment stops at the first newer row)',
    async (t) => {
      const { store } = await kind.open();
      await store.append([
        callEvent({ at: '2024-01-10T10:00:00.000Z', cards: [{ uuid: 'a' }] }),
        callEvent({ at: '2026-01-10T10:00:00.000Z', cards: [{ uuid: 'b' }] }),
        // Written late, after an outage, with its original time.
        callEvent({ at: '2024-02-10T10:00:00.000Z', cards: [{ uuid: 'c' }] }),
      ]);
      const done = await archive(store, BEFORE, join(tempDir('cds-archive-'), 'a.jsonl'), NOW);
      t.equal(done.rows, 1);
      t.ok((await verifyStore(store)).ok);
    },
  );
});

t.test('the command: archives with the configured age, verifies an archive', async (t) => {
  const dataDir = tempDir('cds-archive-data-');
  const { openStore } = await import('../../src/audit/store.js');
  const { testSqliteWorker } = await import('../helpers/app.js');
  const store = await openStore({ dataDir }, { worker: testSqliteWorker });
  await store.append([
    callEvent({ at: '2020-01-10T10:00:00.000Z', cards: [{ uuid: 'x' }] }),
    callEvent({ at: '2026-11-20T10:00:00.000Z', cards: [{ uuid: 'y' }] }),
  ]);
  await store.close();
  const file = join(tempDir('cds-archive-'), 'out.jsonl');
  const env = { CDS_DATA_DIR: dataDir, CDS_AUDIT_RETENTION_DAYS: '365' };
  const out = capture();
  const err = capture();
  t.equal(await runArchive(['--out', file], env, out, err, () => NOW), 0, err.text());
  t.match(out.text(), /^archived 1 rows \(through row 1\) older than 2025-11-22T09:30:00.000Z to /);
  const verified = capture();
  t.equal(await runArchive(['--verify', file], env, verified, err), 0);
  t.match(verified.text(), /^archive intact: 1 rows after row 0, head 1 [0-9a-f]{64}\n$/);
  const missing = capture();
  t.equal(await runArchive([], env, capture(), missing), 2);
  t.match(missing.text(), /--out <file> is required/);
  t.equal(
    await runArchive(['--out', file], env, capture(), capture(), () => NOW),
    0,
    'nothing left to archive',
  );
});
