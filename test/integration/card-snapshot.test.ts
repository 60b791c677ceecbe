/**
 * Behaviour pinned across refactorings: the cards of every bundled service on the generated cohort
 * (and on ../shared/synthea when it is beside the checkout) must hash to the figures in
 * test/fixtures/card-snapshot.json. A deliberate change to what a card says updates that file with
 * `CARD_SNAPSHOT_UPDATE=1`; `CARD_SNAPSHOT_OUT=<dir>` writes the cards themselves, to diff two runs.
 */
import { createHash } from 'node:crypto';
import { existsSync, mkdirSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { Bundle } from 'fhir/r4.js';
import t from 'tap';
import { toServerForm } from '../../tools/synthetic/bundle.js';
import { generateCohort } from '../../tools/synthetic/patients.js';
import { buildTestApp, NOW } from '../helpers/app.js';
import { type SnapshotLine, snapshotCards } from '../helpers/card-snapshot.js';

// Thousands of calls: on a loaded 2-core machine this file alone takes minutes, beyond tap's default.
t.setTimeout(600_000);

const FIXTURE = join('test', 'fixtures', 'card-snapshot.json');
const SYNTHEA = join('..', 'shared', 'synthea');
const EXPLANATION_KEY = 'card-snapshot-explanation-key-0123456789';

type Figures = Record<string, { calls: number; cards: number; sha256: string }>;

function figures(lines: readonly SnapshotLine[]): Figures['x'] {
  const text = lines.map((l) => `${l.call}\n${l.status}\n${l.body}\n`).join('');
  const cards = lines.reduce(
    (n, l) => n + ((JSON.parse(l.body) as { cards?: unknown[] }).cards?.length ?? 0),
    0,
  );
  return { calls: lines.length, cards, sha256: createHash('sha256').update(text).digest('hex') };
}

const sets: Record<string, () => Bundle[]> = {
  generated: () => generateCohort({ seed: 7, count: 60, now: NOW, lesions: 2 }).map((b) => toServerForm(b)),
};
if (existsSync(SYNTHEA)) {
  sets.synthea = () =>
    readdirSync(SYNTHEA)
      .filter((f) => f.endsWith('.json'))
      .sort()
      .map((f) => toServerForm(JSON.parse(readFileSync(join(SYNTHEA, f), 'utf8')) as Bundle));
} else {
  t.comment(`SKIPPED: ${SYNTHEA} not found; only the generated cohort is compared`);
}

const expected = JSON.parse(readFileSync(FIXTURE, 'utf8')) as Figures;
const measured: Figures = {};

for (const [name, records] of Object.entries(sets)) {
  t.test(`the cards on the ${name} records are those of the snapshot`, async (t) => {
    // One client sends thousands of calls here: the per-client rate limit (3000/min) is not under test.
    const { app } = await buildTestApp({ explanationKey: EXPLANATION_KEY, rateLimitMax: 1_000_000 });
    t.teardown(() => app.close());
    const lines = await snapshotCards(app, records());
    const out = process.env.CARD_SNAPSHOT_OUT;
    if (out) {
      mkdirSync(out, { recursive: true });
      writeFileSync(
        join(out, `${name}.txt`),
        lines.map((l) => `${l.call}\n${l.status}\n${l.body}\n`).join(''),
      );
    }
    measured[name] = figures(lines);
    t.ok(
      lines.every((l) => l.status === 200),
      'every call answered 200',
    );
    t.ok(measured[name].cards > 100, `a snapshot worth the name (${measured[name].cards} cards)`);
    if (process.env.CARD_SNAPSHOT_UPDATE !== '1') t.same(measured[name], expected[name]);
  });
}

t.teardown(() => {
  if (process.env.CARD_SNAPSHOT_UPDATE === '1') {
    writeFileSync(FIXTURE, `${JSON.stringify({ ...expected, ...measured }, null, 2)}\n`);
  }
});
