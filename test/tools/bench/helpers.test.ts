import type { Bundle, Observation, Patient, Resource } from 'fhir/r4.js';
import t from 'tap';
import {
  type CpuProfile,
  median,
  memoryFromStatus,
  placeOf,
  planCursor,
  planRequests,
  prefetchFrom,
  quantile,
  type RawRequest,
  scalingSummary,
  summariseProfile,
  steadyStateProfile,
  tailSummary,
  cpuBusyShare,
  bodyOfSize,
  olderVisits,
} from '../../../tools/bench/helpers.js';

const bodies = [
  { path: '/cds-services/a', body: '{"n":1}' },
  { path: '/cds-services/b', body: '{"n":2}' },
];

t.test('planRequests pairs bodies round-robin with one token each, minted for the path called', async (t) => {
  let n = 0;
  const minted: string[] = [];
  const plan = await planRequests(bodies, 5, async (path) => {
    minted.push(path);
    return `tok-${n++}`;
  });
  t.same(
    plan.map((p) => [p.path, p.body, p.token]),
    [
      ['/cds-services/a', '{"n":1}', 'tok-0'],
      ['/cds-services/b', '{"n":2}', 'tok-1'],
      ['/cds-services/a', '{"n":1}', 'tok-2'],
      ['/cds-services/b', '{"n":2}', 'tok-3'],
      ['/cds-services/a', '{"n":1}', 'tok-4'],
    ],
  );
  t.same(minted, [
    '/cds-services/a',
    '/cds-services/b',
    '/cds-services/a',
    '/cds-services/b',
    '/cds-services/a',
  ]);
  t.equal(new Set(plan.map((p) => p.token)).size, 5, 'every token is different');
});

t.test('planRequests refuses a repeated token and an empty body list', async (t) => {
  await t.rejects(
    planRequests(bodies, 3, async () => 'same'),
    /token 1 repeats an earlier token/,
  );
  await t.rejects(
    planRequests([], 3, async () => 'x'),
    /no request bodies/,
  );
});

t.test('planCursor hands out each planned request once, then counts the overrun', async (t) => {
  let n = 0;
  const plan = await planRequests(bodies, 2, async () => `tok-${n++}`);
  const cursor = planCursor(plan);
  const first = cursor.setupRequest({} as RawRequest);
  t.same(first, {
    method: 'POST',
    path: '/cds-services/a',
    body: '{"n":1}',
    headers: { 'content-type': 'application/json', 'accept-language': 'en', authorization: 'Bearer tok-0' },
  });
  t.equal(cursor.setupRequest({}).headers?.authorization, 'Bearer tok-1');
  t.equal(cursor.exhausted(), 0);
  t.equal(cursor.used(), 2);
  // Past the pool: the last token again (the service refuses it), and the overrun is counted.
  t.equal(cursor.setupRequest({}).headers?.authorization, 'Bearer tok-1');
  t.equal(cursor.exhausted(), 1);
  t.equal(cursor.used(), 2);
});

t.test(
  'a cycling planCursor (bare server) starts again from the first request and never overruns',
  async (t) => {
    let n = 0;
    const plan = await planRequests(bodies, 2, async () => `tok-${n++}`);
    const cursor = planCursor(plan, true);
    const tokens = [1, 2, 3].map(() => cursor.setupRequest({}).headers?.authorization);
    t.same(tokens, ['Bearer tok-0', 'Bearer tok-1', 'Bearer tok-0']);
    t.equal(cursor.exhausted(), 0);
    t.equal(cursor.used(), 3);
  },
);

const obs = (id: string, code: string, date: string, system = 'http://loinc.org'): Observation => ({
  resourceType: 'Observation',
  id,
  status: 'final',
  code: { coding: [{ system, code }] },
  effectiveDateTime: date,
});
const patient: Patient = { resourceType: 'Patient', id: 'p1' };
const record: Resource[] = [
  patient,
  obs('o1', '8302-2', '2020-01-01'),
  obs('o2', '39156-5', '2024-01-01'),
  obs('o3', '39156-5', '2022-01-01'),
  obs('o4', '39156-5', '2023-01-01', 'http://other.example'),
  obs('o5', '1234-5', '2025-01-01'),
  { resourceType: 'Consent', id: 'c1', status: 'active' } as Resource,
  { resourceType: 'Consent', id: 'c2', status: 'inactive' } as Resource,
];
const ids = (value: Resource | Bundle | null) => ((value as Bundle).entry ?? []).map((e) => e.resource!.id);

t.test('prefetchFrom answers a read and searches by code, status, date order and page size', async (t) => {
  t.equal(prefetchFrom('Patient/p1', record), patient);
  t.equal(prefetchFrom('Patient/nobody', record), null);
  t.same(
    ids(
      prefetchFrom(
        'Observation?patient=p1&code=http://loinc.org|39156-5,http://loinc.org|8302-2&_sort=-date',
        record,
      ),
    ),
    ['o2', 'o3', 'o1'],
  );
  t.same(
    ids(prefetchFrom('Observation?patient=p1&code=http://loinc.org|39156-5&_sort=-date&_count=1', record)),
    ['o2'],
  );
  t.same(
    ids(prefetchFrom('Observation?patient=p1&code=39156-5', record)),
    ['o2', 'o3', 'o4'],
    'code without system',
  );
  t.same(ids(prefetchFrom('Consent?patient=p1&status=active', record)), ['c1']);
  const bundle = prefetchFrom('Condition?patient=p1', record) as Bundle;
  t.same(bundle, { resourceType: 'Bundle', type: 'searchset', total: 0, entry: [] });
  t.equal((prefetchFrom('Observation?code=8302-2', record) as Bundle).entry![0]!.fullUrl, 'Observation/o1');
});

t.test('quantile and median use the nearest rank', async (t) => {
  const values = [5, 1, 4, 2, 3, 10, 9, 8, 7, 6];
  t.equal(median(values), 5);
  t.equal(quantile(values, 0.99), 10);
  t.equal(quantile(values, 0), 1);
  t.equal(quantile([7], 0.5), 7);
  t.ok(Number.isNaN(quantile([], 0.5)));
});

t.test(
  'scalingSummary gives per-resource and marginal cost and the ratio to the previous size',
  async (t) => {
    t.same(
      scalingSummary([
        { resources: 10, ms: 2 },
        { resources: 100, ms: 4 },
        { resources: 1000, ms: 22 },
      ]),
      [
        { resources: 10, ms: 2, msPerResource: 0.2, marginalMsPerResource: null, timeRatio: null },
        { resources: 100, ms: 4, msPerResource: 0.04, marginalMsPerResource: 0.0222, timeRatio: 2 },
        { resources: 1000, ms: 22, msPerResource: 0.022, marginalMsPerResource: 0.02, timeRatio: 5.5 },
      ],
    );
  },
);

t.test('memoryFromStatus reads VmHWM and VmRSS in MB', async (t) => {
  const status = 'Name:\tnode\nVmPeak:\t 999999 kB\nVmHWM:\t  204800 kB\nVmRSS:\t  102400 kB\n';
  t.same(memoryFromStatus(status), { vmHwmMb: 200, vmRssMb: 100 });
  t.ok(Number.isNaN(memoryFromStatus('Name: x').vmHwmMb));
});

t.test('placeOf names a dependency, our source, a node internal or native code', async (t) => {
  t.equal(placeOf('file:///x/node_modules/fhirpath/src/fhirpath.js'), 'pkg:fhirpath');
  t.equal(placeOf('file:///x/node_modules/@fastify/cors/index.js'), 'pkg:@fastify/cors');
  t.equal(placeOf('file:///repo/dist/src/scoring/score.js'), 'src/scoring/score.js');
  t.equal(placeOf('node:internal/streams/readable'), 'node:internal/streams/readable');
  t.equal(placeOf(''), '(native)');
  t.equal(placeOf('/elsewhere/lib/thing.js'), 'lib/thing.js');
});

t.test(
  'summariseProfile ranks self time by function and place, and our functions by inclusive time',
  async (t) => {
    const frame = (functionName: string, url: string, lineNumber: number) => ({
      functionName,
      url,
      lineNumber,
    });
    const profile: CpuProfile = {
      startTime: 0,
      endTime: 1,
      nodes: [
        { id: 1, callFrame: frame('(root)', '', -1), hitCount: 0, children: [4, 5, 6] },
        { id: 2, callFrame: frame('evaluate', 'file:///r/node_modules/fhirpath/src/a.js', 9), hitCount: 6 },
        { id: 3, callFrame: frame('evaluate', 'file:///r/node_modules/fhirpath/src/a.js', 9), hitCount: 2 },
        // runService calls itself (a recursion counted once per sample) and then fhirpath.
        { id: 4, callFrame: frame('', 'file:///r/dist/src/pipeline.js', 0), hitCount: 1, children: [7] },
        { id: 5, callFrame: frame('(garbage collector)', '', -1), hitCount: 1 },
        { id: 6, callFrame: frame('idle', '', -1) },
        { id: 7, callFrame: frame('', 'file:///r/dist/src/pipeline.js', 0), hitCount: 0, children: [2] },
      ],
    };
    t.same(summariseProfile(profile, 2), {
      samples: 10,
      functions: [
        { name: 'evaluate pkg:fhirpath:10', selfPercent: 80 },
        { name: '(anonymous) src/pipeline.js:1', selfPercent: 10 },
      ],
      places: [
        { name: 'pkg:fhirpath', selfPercent: 80 },
        { name: 'src/pipeline.js', selfPercent: 10 },
      ],
      // Its own sample and the six of the evaluate it calls; the other evaluate has no caller here.
      ownInclusive: [{ name: '(anonymous) src/pipeline.js:1', inclusivePercent: 70 }],
    });
  },
);

t.test('steadyStateProfile counts from the first call, leaves idle out, and gives µs per call', async (t) => {
  const frame = (functionName: string, url: string) => ({ functionName, url, lineNumber: 0 });
  const profile: CpuProfile = {
    startTime: 0,
    endTime: 1,
    nodes: [
      { id: 1, callFrame: frame('(root)', ''), children: [2, 3, 5] },
      // Start-up: loading the services, before any call.
      { id: 2, callFrame: frame('loadServices', 'file:///r/dist/src/services/load.js') },
      { id: 3, callFrame: frame('runHook', 'file:///r/dist/src/pipeline.js'), children: [4] },
      { id: 4, callFrame: frame('evaluate', 'file:///r/node_modules/fhirpath/src/a.js') },
      { id: 5, callFrame: frame('(idle)', '') },
    ],
    // loadServices twice, then runHook, evaluate twice, idle, loadServices again (a late compile).
    samples: [2, 2, 3, 4, 4, 5, 2],
    timeDeltas: [0, 100, 100, 10, 20, 30, 40],
  };
  t.same(steadyStateProfile(profile, 2, 2), {
    calls: 2,
    // Each sample lasts until the next one: runHook 10, evaluate 20 + 30, the late loadServices 40 (its
    // own delta, being the last); start-up's 200 and idle's 40 are left out. Per call: halved.
    busyUsPerCall: 50,
    self: [
      { name: 'evaluate pkg:fhirpath:1', usPerCall: 25 },
      { name: 'loadServices src/services/load.js:1', usPerCall: 20 },
    ],
    inclusive: [
      { name: '(root) (native)', usPerCall: 50 },
      { name: 'runHook src/pipeline.js:1', usPerCall: 30 },
    ],
  });
  t.same(steadyStateProfile({ ...profile, samples: [2, 5] }, 1).busyUsPerCall, 0, 'no call: nothing counted');
});

t.test('cpuBusyShare is the busy share of the CPU time between two /proc/stat readings', async (t) => {
  const stat = (user: number, idle: number, iowait: number) =>
    `cpu  ${user} 0 0 ${idle} ${iowait} 0 0 0 0 0\ncpu0 1 2 3 4 5 6 7 8 9 10\n`;
  // 300 ticks elapsed: 60 of work, 200 idle, 40 waiting for I/O.
  t.equal(cpuBusyShare(stat(100, 1000, 10), stat(160, 1200, 50)), 0.2);
  t.equal(cpuBusyShare(stat(1, 1, 1), stat(1, 1, 1)), 0, 'no time elapsed');
});

t.test('older visits: dated Observations copied years earlier; bodies grown to a size range', async (t) => {
  const obs = (id: string, date: string): Observation => ({
    resourceType: 'Observation',
    id,
    status: 'final',
    code: { text: 'BMI' },
    effectiveDateTime: date,
    issued: `${date}T12:00:00Z`,
  });
  const patient: Patient = { resourceType: 'Patient', id: 'p1' };
  const resources: Resource[] = [
    patient,
    obs('bmi-1', '2026-03-04'),
    { ...obs('x', ''), effectiveDateTime: undefined },
  ];
  t.same(olderVisits(resources, 2), [{ ...obs('bmi-1-y2', '2024-03-04'), issued: '2024-03-04T12:00:00Z' }]);
  const build = (rs: readonly Resource[]) => JSON.stringify(rs);
  const one = build(resources).length;
  const grown = bodyOfSize(resources, build, one * 3, one * 5)!;
  t.ok(grown.length >= one * 3 && grown.length <= one * 5, 'within the range');
  t.match(grown, /"bmi-1-y1".*"bmi-1-y2"/, 'the years added in order');
  t.equal(bodyOfSize(resources, build, 1, one - 1), null, 'already over the maximum');
  t.equal(bodyOfSize([patient], build, 10_000, 20_000), null, 'nothing to add: never reaches the minimum');
});

t.test(
  'tailSummary groups the pauses by kind, largest total first, with their share of the run',
  async (t) => {
    const summary = tailSummary(
      {
        pauses: [
          [10, 'minor', 4],
          [20, 'minor', 12],
          [30, 'major', 20],
          [40, 'minor', 5],
        ],
        loopDelayMs: { p50: 1.1, p99: 16.5, max: 52.8 },
      },
      1000.4,
    );
    t.same(summary, {
      runMs: 1000,
      gc: [
        { kind: 'minor', count: 3, totalMs: 21, shareOfRun: 0.021, p50Ms: 5, maxMs: 12, atLeast10Ms: 1 },
        { kind: 'major', count: 1, totalMs: 20, shareOfRun: 0.02, p50Ms: 20, maxMs: 20, atLeast10Ms: 1 },
      ],
      loopDelayMs: { p50: 1.1, p99: 16.5, max: 52.8 },
    });
  },
);
