import t from 'tap';
import { type BenchResults, END, renderBenchmarks, START } from '../../../tools/bench/report.js';

const load = { reqPerSec: 100, p50: 5, p975: 9, p99: 12, rssPeakMb: 150 };
const bare = { reqPerSec: 400, p50: 1, p975: 2, p99: 3, rssPeakMb: 60 };
const results: BenchResults = {
  date: '2026-11-22T09:30:00.000Z',
  command: 'npm run bench',
  options: { rounds: 2, secondsPerRun: 6, connections: 16 },
  machine: {
    cpus: 2,
    cpuModel: 'Test CPU',
    node: 'v22.0.0',
    loadAverageBefore: [1],
    loadAverageAfter: [2],
    cpuBusyBefore: 0.55,
    shared: true,
  },
  source: 'generated',
  requestBodies: 80,
  responseBytes: 900,
  headline: { throughputRatio: 0.25, pipeline: load, bare, coldStartMs: 1500 },
  runs: {
    RS384: {
      rounds: [
        { pipeline: load, bare, ratio: 0.24 },
        { pipeline: load, bare, ratio: 0.25 },
      ],
      median: { pipeline: load, bare, ratio: 0.25 },
    },
  },
  coldStartMs: [1500, 1400, 1600],
  stages: { generated: { 'knee-oa-progression': { total: { meanMs: 9.5, medianMs: 9.25, p99Ms: 20 } } } },
  jwtVerify: { msPerVerify: { RS384: 0.05 }, shareOfRequestTime: { RS384: 0.005 } },
  scaling: {
    overHttp: [
      { resources: 10, ms: 5, msPerResource: 0.5, marginalMsPerResource: null, timeRatio: null },
      { resources: 100, ms: 10, msPerResource: 0.1, marginalMsPerResource: 0.0556, timeRatio: 2 },
    ],
    inProcess: [{ resources: 10, stages: undefined }],
  },
  memory: { heapCapMb: 256, load: { reqPerSec: 98, p50: 5, p975: 9, p99: 13, rssPeakMb: 120 } },
  cpuProfile: {
    samples: 10,
    functions: [{ name: 'f pkg:x:1', selfPercent: 50 }],
    places: [],
    ownInclusive: [{ name: 'runService src/pipeline.js:40', inclusivePercent: 42.5 }],
  },
};

t.test(
  'the generated section states the headline, the rounds, the machine and that it was shared',
  async (t) => {
    const text = renderBenchmarks(results, '');
    t.match(text, /^# Benchmarks\n/);
    t.match(text, /pipeline throughput = 25% of bare Fastify\*\*; cold start 1500 ms \(median of 3\)/);
    t.match(text, /\| RS384 \| pipeline \| 100 \| 5 \| 9 \| 12 \| 150 \| 0.25 \|/);
    t.match(text, /Ratios per round: RS384 0.24, 0.25\./);
    t.match(
      text,
      /2 CPUs \(Test CPU\), Node.js v22.0.0; \*\*shared with other work while measured\*\* \(55% CPU busy just before\)/,
    );
    t.match(text, /\| `runService src\/pipeline.js:40` \| 42.5 \|/);
    t.match(
      text,
      /\| \(none: V8 defaults\) \| 100 \| 12 \| 150 \|\n\| `--max-old-space-size=256` \| 98 \| 13 \| 120 \|/,
    );
    t.ok(
      // parse, auth and the pipeline's 9 stages (explanation and publish among them) have no figure.
      text.includes(`| generated | knee-oa-progression | ${' | '.repeat(11)}9.25 |`),
      'only the stages measured',
    );
    t.match(text, /\| RS384 \| 0.05 \| 0.5% \|/);
  },
);

t.test('an idle machine is said to be idle; results without inclusive times still render', async (t) => {
  const { ownInclusive: _, ...cpuProfile } = results.cpuProfile;
  const text = renderBenchmarks(
    { ...results, machine: { ...results.machine, shared: false }, cpuProfile },
    '',
  );
  t.match(text, /Node.js v22.0.0; otherwise idle while measured/);
  t.notMatch(text, /inclusive %/);
});

t.test('a second run replaces only the generated section, keeping the text around it', async (t) => {
  const before = `# Benchmarks\n\nAnalysis by people.\n\n${START}\nold figures\n${END}\n\n## After\n`;
  const text = renderBenchmarks(results, before);
  t.ok(text.startsWith('# Benchmarks\n\nAnalysis by people.\n\n<!-- bench:start'));
  t.ok(text.endsWith(`${END}\n\n## After\n`));
  t.notMatch(text, /old figures/);
  t.equal(text.split(START).length, 2, 'one generated section');
});

t.test('the side-by-side table names its bodies, each server and a skipped CQL service', async (t) => {
  const row = { bodies: '40–60 KB records', connections: 16, p50: 30, p99: 80 };
  const text = renderBenchmarks(
    {
      ...results,
      sideBySide: {
        rows: [
          { ...row, server: 'this service', reqPerSec: 120, ratioToBare: 0.2 },
          { ...row, server: 'bare Fastify', reqPerSec: 600, ratioToBare: 1 },
        ],
        skipped: 'CDS_BENCH_CQL_URL is not set',
        bodies: [{ name: '40–60 KB records', count: 76, meanKb: 45 }],
      },
    },
    '',
  );
  t.match(text, /### Side by side: this service, bare Fastify and a CQL-based service/);
  t.match(text, /Bodies: 40–60 KB records, 76 bodies of 45 KB on average\./);
  t.match(text, /\| 40–60 KB records \| 16 \| this service \| 120 \| 30 \| 80 \| 0.2 \|/);
  t.match(text, /CQL-based service: skipped \(CDS_BENCH_CQL_URL is not set\)\./);
  t.notMatch(renderBenchmarks(results, ''), /Side by side/, 'older results: no such section');
});

t.test(
  'the workers table gives two independent processes and the ceiling one process leaves to two',
  async (t) => {
    const one = { ...load, reqPerSec: 1000, p99: 45 };
    const two = { ...load, reqPerSec: 800, p99: 70 };
    const text = renderBenchmarks(
      {
        ...results,
        workers: {
          rounds: [
            {
              one,
              two,
              ratio: 0.8,
              independent: { reqPerSec: [480, 470], ratio: 0.95 },
              ceiling: { coresUsedByOne: 1.6, ratio: 1.25 },
            },
          ],
          median: {
            one,
            two,
            ratio: 0.8,
            independentRatio: 0.95,
            ceiling: { cpus: 2, coresUsedByOne: 1.6, ratio: 1.25 },
          },
        },
      },
      '',
    );
    t.match(text, /\| 1 \| 1000 \| 800 \| 0.8 \| 480 \+ 470 \| 0.95 \| 1.6 \| 1.25× \| 45 \/ 70 \|/);
    t.match(
      text,
      /\| \*\*median\*\* \| 1000 \| 800 \| \*\*0.8\*\* \|  \| 0.95 \| 1.6 \| 1.25× \| 45 \/ 70 \|/,
    );
    t.match(text, /keeps 1.6 of the machine's 2 cores busy .* cannot go faster than 1.25× one here/);
    // Results written before these were measured still render, with empty cells and no ceiling sentence.
    const older = renderBenchmarks(
      { ...results, workers: { rounds: [{ one, two, ratio: 0.8 }], median: { one, two, ratio: 0.8 } } },
      '',
    );
    t.match(older, /\| 1 \| 1000 \| 800 \| 0.8 \|  \|  \|  \|  \| 45 \/ 70 \|/);
    t.notMatch(older, /cannot go faster/);
  },
);
