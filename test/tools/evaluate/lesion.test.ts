/**
 * `npm run evaluate` with per-lesion outcomes (issue 19): the melanoma service's estimates are linked to
 * the histology of their own lesion (the report's specimen's body site, keyed like the audit's), from a
 * folder and from a FHIR server (a fake one, paged with `link[relation=next]`), which give the same
 * report; a server that fails mid-paging fails the run, with no report.
 */
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import Fastify, { type FastifyInstance } from 'fastify';
import type { Bundle, DiagnosticReport, Resource, Specimen } from 'fhir/r4.js';
import t from 'tap';
import type { LinkedPrediction } from '../../../src/governance/types.js';
import { patientIdOf } from '../../../tools/evaluate/fhir-source.js';
import { openDriver, runEvaluate } from '../../../tools/evaluate/main.js';
import { NOW, tempDir } from '../../helpers/app.js';
import { melanomaFollowUp } from './melanoma-follow-up.js';

const capture = () => {
  let text = '';
  return { write: (s: string) => (text += s), text: () => text };
};

const seeded = await melanomaFollowUp();

async function evaluate(fhir: string, dataDir = seeded.dataDir) {
  const out = join(tempDir('cds-evaluate-out-'), 'report');
  const rowsFile = join(out, '..', 'rows.json');
  const stdout = capture();
  const stderr = capture();
  const code = await runEvaluate(
    [
      ...['--store', join(dataDir, 'audit.sqlite'), '--fhir', fhir],
      ...[
        '--from',
        '2026-11-01',
        '--to',
        '2026-12-01',
        '--out',
        out,
        '--rows-out',
        rowsFile,
        '--min-cell',
        '1',
      ],
    ],
    {},
    stdout,
    stderr,
    () => NOW,
  );
  const read = (file: string) => (existsSync(file) ? readFileSync(file, 'utf8') : undefined);
  return {
    code,
    out,
    stdout: stdout.text(),
    stderr: stderr.text(),
    report: read(join(out, 'report.json')),
    rows: read(rowsFile),
  };
}

function folderOf(resources: readonly Resource[]): string {
  const dir = tempDir('cds-evaluate-fhir-');
  writeFileSync(join(dir, 'follow-up.ndjson'), resources.map((r) => `${JSON.stringify(r)}\n`).join(''));
  return dir;
}

/** Each scored lesion's expected outcome: its own, or any lesion's on the same site of the same patient. */
function expectedOutcomes(): (0 | 1)[] {
  return seeded.truth.flatMap((f) => {
    const sites = f.resources
      .filter((r): r is Specimen => r.resourceType === 'Specimen')
      .map((s) => s.collection!.bodySite!.text!);
    return f.outcomes.map((o, j) => (f.outcomes.some((p, k) => p === 1 && sites[k] === sites[j]) ? 1 : o));
  });
}

/** A fake FHIR server: searches answered with searchset Bundles of `pageSize`, paged by `link[next]`. */
async function fakeFhirServer(
  resources: readonly Resource[],
  pageSize: number,
  /** The status a page answers with an OperationOutcome instead of its Bundle, if any. */
  fails: (type: string, offset: number) => number | undefined = () => undefined,
): Promise<{ base: string; requests: string[]; app: FastifyInstance }> {
  const app = Fastify();
  const requests: string[] = [];
  let base = '';
  app.get<{ Params: { type: string }; Querystring: Record<string, string> }>(
    '/fhir/:type',
    async (req, reply) => {
      requests.push(req.url);
      const { type } = req.params;
      const offset = Number(req.query._offset ?? 0);
      const failure = fails(type, offset);
      if (failure !== undefined) {
        return reply
          .code(failure)
          .send({ resourceType: 'OperationOutcome', issue: [{ severity: 'error', code: 'transient' }] });
      }
      const count = Math.min(Number(req.query._count ?? pageSize), pageSize);
      const matches = resources.filter(
        (r) =>
          r.resourceType === type &&
          (req.query.patient === undefined || patientIdOf(r) === req.query.patient),
      );
      const next = new URLSearchParams(req.query);
      next.set('_offset', String(offset + count));
      const bundle: Bundle = {
        resourceType: 'Bundle',
        type: 'searchset',
        total: matches.length,
        link: [
          { relation: 'self', url: `${base}${req.url.slice('/fhir'.length)}` },
          ...(offset + count < matches.length ? [{ relation: 'next', url: `${base}/${type}?${next}` }] : []),
        ],
        entry: matches.slice(offset, offset + count).map((resource) => ({
          fullUrl: `${base}/${type}/${resource.id}`,
          resource,
          search: { mode: 'match' as const },
        })),
      };
      return reply.type('application/fhir+json').send(bundle);
    },
  );
  await app.listen({ port: 0, host: '127.0.0.1' });
  const address = app.server.address();
  if (address === null || typeof address === 'string') throw new Error('no port');
  base = `http://127.0.0.1:${address.port}/fhir`;
  return { base, requests, app };
}

/** What the report holds but no patient's data: the period and the run's clock. */
const withoutRunDates = (report: string) => report.replace(/"(from|to|generatedAt)": "[^"]*"/g, '"$1": ""');

t.test('the seed gives what the tests below need', async (t) => {
  t.equal(seeded.truth.length, 8, 'patients scored');
  t.same(
    seeded.truth.map((f) => f.risks.length),
    [1, 2, 1, 2, 2, 2, 2, 1],
    'lesions scored per patient',
  );
  t.same(seeded.firstSites, ['left lower leg', 'left foot'], "the set patient's two lesions, on two sites");
  t.same(seeded.truth[1]!.outcomes, [1, 0], 'the set patient: a melanoma and a benign lesion');
  t.same(seeded.truth[3]!.outcomes, [0, 1], 'a drawn melanoma on the second lesion of another patient');
});

t.test(
  'per lesion: a patient with a melanoma lesion and a benign lesion has one positive, one negative',
  async (t) => {
    const r = await evaluate(folderOf(seeded.resources));
    t.equal(r.code, 0, r.stderr);
    t.equal(
      r.stdout,
      `13 estimates linked (13 with a known outcome: 13 per focus, 0 per patient); report written to ${r.out}\n`,
    );
    t.match(r.stderr, /evaluate: 13 linked per focus \(lesion\), 0 per patient\n/);
    const rows = JSON.parse(r.rows!) as LinkedPrediction[];
    t.same(
      rows.map((x) => x.risk),
      seeded.truth.flatMap((f) => f.risks),
      'one row per lesion scored, in call order',
    );
    t.same(
      rows.map((x) => x.outcome),
      [0, 1, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0],
    );
    t.same(
      rows.map((x) => x.outcome),
      expectedOutcomes(),
      "each lesion's own outcome",
    );
    const report = JSON.parse(r.report!);
    t.same(report.linkage, [
      { modelId: 'melanoma-risk', modelVersion: '1.0.0', mode: 'live', byFocus: 13, byPatient: 0 },
    ]);
    t.equal(report.models[0].outcomeKnown, 13);
    // The audit keeps each lesion's keyed pseudonym, never its site: one key per lesion, two per patient.
    const driver = await openDriver(join(seeded.dataDir, 'audit.sqlite'));
    const keys = (
      await driver.query('SELECT focus_key FROM audit_prediction ORDER BY event_seq, ordinal', [])
    ).map((row) => String(row.focus_key));
    await driver.close();
    t.equal(keys.length, 13);
    t.ok(
      keys.every((k) => /^[0-9a-f]{64}$/.test(k)),
      'HMAC-SHA256',
    );
    t.equal(new Set(keys).size, 13, 'no two lesions share a key');
    // Nothing identifying leaves the linkage: no patient or lesion id, site, key or exact date.
    for (const text of [r.rows!, withoutRunDates(r.report!)]) {
      for (const id of seeded.ids) t.notOk(text.includes(id), 'no patient or examination id');
      for (const site of seeded.firstSites) t.notOk(text.includes(site), 'no body site');
      t.notMatch(text, /\d{4}-\d{2}-\d{2}|pseudonym|focusKey|[0-9a-f]{64}|Observation\/|Specimen/);
    }
  },
);

t.test(
  'a report naming no lesion: that patient falls back to per patient, and both its lesions are positive',
  async (t) => {
    const set = seeded.truth[1]!;
    const resources = seeded.resources.map((r) => {
      if (r.resourceType !== 'DiagnosticReport' || patientIdOf(r) !== set.patientId) return r;
      const { specimen: _, ...withoutSpecimen } = r as DiagnosticReport;
      return withoutSpecimen;
    });
    const r = await evaluate(folderOf(resources));
    t.equal(r.code, 0, r.stderr);
    t.equal(
      r.stdout,
      `13 estimates linked (13 with a known outcome: 11 per focus, 2 per patient); report written to ${r.out}\n`,
    );
    t.same(
      (JSON.parse(r.rows!) as LinkedPrediction[]).map((x) => x.outcome),
      [0, 1, 1, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0],
    );
    t.same(JSON.parse(r.report!).linkage, [
      { modelId: 'melanoma-risk', modelVersion: '1.0.0', mode: 'live', byFocus: 11, byPatient: 2 },
    ]);
  },
);

t.test('FHIR-server mode: the same data, paged, gives the same report as the folder', async (t) => {
  const folder = await evaluate(folderOf(seeded.resources));
  const server = await fakeFhirServer(seeded.resources, 1);
  t.teardown(() => server.app.close());
  const r = await evaluate(server.base);
  t.equal(r.code, 0, r.stderr);
  t.match(r.stderr, /evaluate: 8 patients of the server have estimates in the period\n/);
  t.equal(r.report, folder.report, 'report.json is the same');
  t.equal(r.rows, folder.rows, 'and so are the linked rows');
  t.equal(
    r.stdout,
    `13 estimates linked (13 with a known outcome: 13 per focus, 0 per patient); report written to ${r.out}\n`,
  );
  // Paged, one resource a page: the 8 patients took 8 pages; a patient's 2 reports and specimens, 2.
  t.equal(server.requests.filter((u) => u.startsWith('/fhir/Patient?')).length, 8);
  t.ok(server.requests.some((u) => u.startsWith('/fhir/Specimen?') && u.includes('_offset=')));
  t.equal(
    server.requests.filter((u) => !u.includes('_offset=')).length,
    // DiagnosticReport, Specimen (the lesion's site), Encounter, and Condition (the outcome of the
    // NSAID card, read for the rule cards' PPV).
    1 + 8 * 4,
    'one search per patient and type',
  );
});

t.test(
  'a FHIR server failing mid-paging fails the run: exit code 2, the page named, no report',
  async (t) => {
    const cases: [string, number, string][] = [
      ['Patient', 503, 'answered 503'],
      ['DiagnosticReport', 500, 'answered 500'],
      ['Specimen', 200, 'did not answer a searchset Bundle'],
    ];
    for (const [type, status, message] of cases) {
      const server = await fakeFhirServer(seeded.resources, 1, (t2, offset) =>
        t2 === type && offset === 1 ? status : undefined,
      );
      const r = await evaluate(server.base);
      await server.app.close();
      t.equal(r.code, 2, type);
      t.match(
        r.stderr,
        new RegExp(
          `evaluate: cannot read the FHIR data at ${server.base}: ${server.base}/${type}\\?.*_offset=1 ${message}\\n$`,
        ),
      );
      t.equal(r.stdout, '');
      t.equal(r.report, undefined, 'no report');
      t.equal(r.rows, undefined, 'no rows');
    }
  },
);
