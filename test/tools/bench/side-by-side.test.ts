/**
 * The side-by-side benchmark against tiny fake CDS Hooks servers: the CQL service is found by its URL
 * (or skipped with a reason), receives every body at its own path, and gets rows at each connection
 * count beside the bare server's; this service's stand-in gets a fresh token for every request.
 */
import { createServer, type IncomingMessage, type Server } from 'node:http';
import t, { type Test } from 'tap';
import { planRequests } from '../../../tools/bench/helpers.js';
import {
  cqlTarget,
  reachable,
  sideBySide,
  sideBySideTable,
  type Target,
} from '../../../tools/bench/side-by-side.js';

interface Fake {
  origin: string;
  paths: string[];
  bodies: string[];
  tokens: string[];
  server: Server;
}

/** A CDS Hooks server that answers `{ cards: [] }` to any POST, and 409 to a token seen before if asked. */
async function fakeServer(t: Test, refuseReplay = false): Promise<Fake> {
  const fake = { paths: [] as string[], bodies: [] as string[], tokens: [] as string[] } as Fake;
  const seen = new Set<string>();
  fake.server = createServer((req: IncomingMessage, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      const token = req.headers.authorization ?? '';
      fake.paths.push(req.url ?? '');
      fake.bodies.push(Buffer.concat(chunks).toString());
      fake.tokens.push(token);
      const replay = refuseReplay && seen.has(token);
      seen.add(token);
      res.writeHead(replay ? 409 : 200, { 'content-type': 'application/json' });
      res.end(replay ? '{}' : '{"cards":[]}');
    });
  });
  await new Promise<void>((resolve) => fake.server.listen(0, '127.0.0.1', resolve));
  fake.origin = `http://127.0.0.1:${(fake.server.address() as { port: number }).port}`;
  t.teardown(() => new Promise<void>((resolve) => fake.server.close(() => resolve())));
  return fake;
}

const BODIES = [
  { path: '/cds-services/knee-oa-progression', body: '{"hook":"patient-view","n":1}' },
  { path: '/cds-services/melanoma-lesion-triage', body: '{"hook":"patient-view","n":2}' },
];
let minted = 0;
const plan = (amount: number) => planRequests(BODIES, amount, async () => `token-${(minted += 1)}`);

t.test('the CQL service is named by CDS_BENCH_CQL_URL, or skipped with the reason', async (t) => {
  const absent = cqlTarget({});
  t.equal(absent.ok, false);
  if (!absent.ok) t.match(absent.reason, /^CDS_BENCH_CQL_URL is not set: .*BENCHMARKS\.md/);
  const notUrl = cqlTarget({ CDS_BENCH_CQL_URL: 'cql-services' });
  t.same(notUrl, { ok: false, reason: 'CDS_BENCH_CQL_URL is not a URL: cql-services' });
  const noService = cqlTarget({ CDS_BENCH_CQL_URL: 'http://127.0.0.1:3000' });
  t.equal(noService.ok, false, 'a server without the path of one service');
  const found = cqlTarget({ CDS_BENCH_CQL_URL: ' http://127.0.0.1:3000/cds-services/knee-cql ' });
  t.equal(found.ok, true);
  if (!found.ok) return;
  t.equal(found.target.origin, 'http://127.0.0.1:3000');
  t.equal(found.target.tokens, 'reuse');
  t.equal(found.target.pathFor?.('/cds-services/knee-oa-progression'), '/cds-services/knee-cql');
});

t.test('a configured CQL service that does not answer is reported, not benchmarked', async (t) => {
  const fake = await fakeServer(t);
  const [sample] = await plan(1);
  const found = cqlTarget({ CDS_BENCH_CQL_URL: `${fake.origin}/cds-services/cql` });
  t.equal(found.ok && (await reachable(found.target, sample!)), null, 'answers: nothing to report');
  const closed = cqlTarget({ CDS_BENCH_CQL_URL: 'http://127.0.0.1:1/cds-services/cql' });
  t.match(closed.ok && (await reachable(closed.target, sample!)), /^it could not be reached/);
});

t.test('three servers side by side, at each connection count, on each set of bodies', async (t) => {
  const pipeline = await fakeServer(t, true);
  const bare = await fakeServer(t);
  const cql = await fakeServer(t);
  const cqlFound = cqlTarget({ CDS_BENCH_CQL_URL: `${cql.origin}/cds-services/cql-knee` });
  if (!cqlFound.ok) throw new Error(cqlFound.reason);
  const targets: Target[] = [
    // The fake runs in this process: its CPU time is this process's.
    { name: 'pipeline', origin: pipeline.origin, tokens: 'fresh', pid: process.pid },
    { name: 'bare Fastify', origin: bare.origin, tokens: 'reuse' },
    cqlFound.target,
  ];
  const logged: string[] = [];
  const rows = await sideBySide({
    targets,
    baseline: 'bare Fastify',
    workloads: [
      { name: 'today', plan },
      { name: '40-60 KB', plan },
    ],
    connections: [1, 4],
    rounds: 1,
    seconds: 0.3,
    log: (m) => logged.push(m),
  });
  t.same(
    rows.map((r) => `${r.bodies} c=${r.connections} ${r.server}`),
    ['today', '40-60 KB'].flatMap((b) =>
      [1, 4].flatMap((c) => ['pipeline', 'bare Fastify', 'CQL service'].map((s) => `${b} c=${c} ${s}`)),
    ),
  );
  for (const row of rows) t.ok(row.reqPerSec > 0, `${row.server} answered`);
  t.equal(rows.find((r) => r.server === 'bare Fastify')!.ratioToBare, 1);
  t.ok(cql.paths.length > 0, 'the CQL service was called');
  t.ok(
    cql.paths.every((p) => p === '/cds-services/cql-knee'),
    'at its own service path',
  );
  t.same(new Set(cql.bodies), new Set(BODIES.map((b) => b.body)), 'with the same bodies');
  t.equal(new Set(pipeline.tokens).size, pipeline.tokens.length, 'a fresh token for every pipeline call');
  t.equal(logged.length, 4, 'one line per round, workload and connection count');
  const table = sideBySideTable(rows, null);
  t.equal(table.length, 2 + rows.length);
  t.match(table[0], /\| CPU ms\/call \| main thread ms\/call \|$/, 'CPU columns: one server was measured');
  t.match(table[2], /^\| today \| 1 \| pipeline \| [\d.]+ \|.* \| [\d.]+ \| [\d.]+ \|$/);
  t.match(table[3], /^\| today \| 1 \| bare Fastify \|.* \| – \| – \|$/, 'not measured: a dash');
  const pipelineRow = rows.find((r) => r.server === 'pipeline')!;
  t.ok(pipelineRow.cpuMsPerCall! >= pipelineRow.mainCpuMsPerCall!, 'the main thread is part of the whole');
  t.equal(rows.find((r) => r.server === 'bare Fastify')!.cpuMsPerCall, undefined);
  t.same(sideBySideTable([], 'CDS_BENCH_CQL_URL is not set').slice(-1), [
    'CQL-based service: skipped (CDS_BENCH_CQL_URL is not set).',
  ]);
});
