/**
 * `npm run bench`: the whole service, as in production (compiled, JWT verification on, SQLite audit
 * store, logging at warn), against a bare Fastify server parsing the same bodies, over loopback with
 * autocannon; the per-stage breakdown (in-process, on the same requests), the prefetch scaling curve,
 * cold start, the cost of one JWT verification and a CPU profile of the service under load. Writes
 * tools/bench/results/bench-results.json and the generated section of BENCHMARKS.md.
 * Options: --rounds N (default 3), --seconds S per measured run (default 6), --connections C (16),
 * --workers-only (only one process against a cluster of two, printed as JSON; no file is written),
 * --side-by-side-only (only this service, bare Fastify and the CQL service of CDS_BENCH_CQL_URL at one and
 * C connections, on today's bodies and on 40–60 KB records, printed; no file is written), --before DIR
 * (with --side-by-side-only: also the server of another checkout, built, e.g. the main branch, in the
 * same rounds, so that a change is measured before and after under the same load), --profile-only
 * (CPU profiles under load on both sets of bodies, printed; with --before DIR, that server's too;
 * --cold-only (only cold starts, with --before DIR that checkout's too, interleaved; printed);
 * --profile-calls N calls each, 1,500 by default; CDS_BENCH_KEEP_PROFILES=DIR keeps the .cpuprofile files
 * of every thread there).
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import {
  copyFileSync,
  mkdirSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  rmSync,
  writeFileSync,
  existsSync,
} from 'node:fs';
import { createServer } from 'node:net';
import { availableParallelism, loadavg, tmpdir } from 'node:os';
import { join } from 'node:path';
import autocannon from 'autocannon';
import type { Bundle, Observation, Resource } from 'fhir/r4.js';
import { type CryptoKey, exportJWK, generateKeyPair, type JWK, SignJWT } from 'jose';
import { pino } from 'pino';
import * as prettier from 'prettier';
import { createVerifier } from '../../src/auth/verify.js';
import { loadTrustedIssuers } from '../../src/auth/issuers.js';
import { createMemoryReplayCache } from '../../src/auth/replay.js';
import type { HookRequest } from '../../src/cds-hooks.js';
import { loadConfig } from '../../src/config.js';
import { loadModels } from '../../src/scoring/load.js';
import { runHook } from '../../src/pipeline.js';
import { compileEgress } from '../../src/prefetch/egress.js';
import { createFhirFetch } from '../../src/prefetch/fhir-fetch.js';
import { loadServices, type CompiledService } from '../../src/services/load.js';
import { loadValueSets } from '../../src/services/value-sets.js';
import { openAuditTrail } from '../../src/audit/audit-trail.js';
import { patientOf, resourcesOf, toServerForm } from '../synthetic/bundle.js';
import { generatePatient } from '../synthetic/patients.js';
import { createRng } from '../synthetic/random.js';
import {
  type BodyFor,
  benchRecords,
  bodyOfSize,
  cpuBusyShare,
  median,
  memoryFromStatus,
  planCursor,
  type PlannedRequest,
  planRequests,
  prefetchFrom,
  processCpuMs,
  quantile,
  round,
  scalingSummary,
  summariseProfile,
  steadyStateProfile,
  tailSummary,
  type CpuProfile,
  type TailProbe,
} from './helpers.js';
import { renderBenchmarks, STAGES } from './report.js';
import { cqlTarget, reachable, sideBySide, sideBySideTable, type Target } from './side-by-side.js';
import { createFhirPath } from '../../src/rules/fhirpath.js';

/** The FHIRPath engine of this file's loads. */
const engine = createFhirPath();

const argOf = (name: string, fallback: number) => {
  const i = process.argv.indexOf(`--${name}`);
  return i > 0 ? Number(process.argv[i + 1]) : fallback;
};
const ROUNDS = argOf('rounds', 3);
const SECONDS = argOf('seconds', 6);
const CONNECTIONS = argOf('connections', 16);
const PUBLIC_URL = 'https://cds.bench.example.org';
const ISSUER = 'https://ehr.bench.example.org';
const SERVICE_IDS = ['knee-oa-progression', 'melanoma-lesion-triage'] as const;
const SYNTHEA = join('..', 'shared', 'synthea');
const MAIN = join('dist', 'src', 'main.js');
const BARE = join('dist', 'tools', 'bench', 'bare-server.js');

const log = (message: string) => process.stderr.write(`[bench] ${message}\n`);
const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));
const nowS = () => Math.floor(Date.now() / 1000);

// ---------- keys, tokens, trusted issuers ----------

interface BenchKey {
  alg: 'RS384' | 'ES384';
  kid: string;
  privateKey: CryptoKey;
  publicJwk: JWK;
}

async function makeKey(alg: BenchKey['alg']): Promise<BenchKey> {
  const { privateKey, publicKey } = await generateKeyPair(alg, { extractable: true });
  const kid = `bench-${alg.toLowerCase()}`;
  return { alg, kid, privateKey, publicJwk: { ...(await exportJWK(publicKey)), kid, alg, use: 'sig' } };
}

const mint = (key: BenchKey) => (path: string) =>
  new SignJWT({ iss: ISSUER, aud: PUBLIC_URL + path, iat: nowS(), exp: nowS() + 300, jti: randomUUID() })
    .setProtectedHeader({ alg: key.alg, typ: 'JWT', kid: key.kid })
    .sign(key.privateKey);

const tmp = mkdtempSync(join(tmpdir(), 'cds-bench-'));
const keys = { RS384: await makeKey('RS384'), ES384: await makeKey('ES384') };
const issuersFile = join(tmp, 'trusted-issuers.json');
writeFileSync(
  issuersFile,
  JSON.stringify([{ iss: ISSUER, jwks: { keys: [keys.RS384.publicJwk, keys.ES384.publicJwk] } }]),
);

// ---------- workload ----------

const models = await loadModels('models', engine);
const services = new Map(
  loadServices('cds-services', engine, loadValueSets('fhir-profiles'), models).map((s) => [
    s.definition.id,
    s,
  ]),
);
const servicePath = (id: string) => `/cds-services/${id}`;

function bodyFor(service: CompiledService, resources: readonly Resource[], patientId: string): BodyFor {
  const prefetch: Record<string, unknown> = {};
  for (const { key, spec } of service.prefetch) {
    const value = prefetchFrom(spec.query.replaceAll('{{context.patientId}}', patientId), resources);
    if (value !== null) prefetch[key] = value;
  }
  const request: HookRequest = {
    hook: 'patient-view',
    hookInstance: randomUUID(),
    context: { userId: 'Practitioner/bench-practitioner', patientId },
    prefetch: prefetch as HookRequest['prefetch'],
  };
  return { path: servicePath(service.definition.id), body: JSON.stringify(request) };
}

function workload(records: readonly Bundle[]): BodyFor[] {
  return records.flatMap((bundle) => {
    const resources = resourcesOf(bundle);
    const id = patientOf(bundle).id!;
    return SERVICE_IDS.map((sid) => bodyFor(services.get(sid)!, resources, id));
  });
}

const today = new Date();
const { generated: generatedRecords, synthea: syntheaRecords } = benchRecords(today, SYNTHEA);
const source = syntheaRecords.length > 0 ? 'synthea' : 'generated';
const headlineBodies = workload(source === 'synthea' ? syntheaRecords : generatedRecords);
const generatedBodies = workload(generatedRecords);

/**
 * Realistic larger bodies: knee-OA calls of 40–60 KB, each one patient's record (Synthea when present,
 * then the generated ones) with earlier years of visits added until its body is that size.
 */
const LARGE = { min: 40_000, max: 60_000 };
function largeWorkload(): BodyFor[] {
  const knee = services.get('knee-oa-progression')!;
  return [...syntheaRecords, ...generatedRecords].flatMap((bundle) => {
    const id = patientOf(bundle).id!;
    const body = bodyOfSize(resourcesOf(bundle), (rs) => bodyFor(knee, rs, id).body, LARGE.min, LARGE.max);
    return body ? [{ path: servicePath(knee.definition.id), body }] : [];
  });
}
const largeBodies = largeWorkload();
const meanKb = (bodies: readonly BodyFor[]) =>
  round(bodies.reduce((sum, b) => sum + Buffer.byteLength(b.body), 0) / bodies.length / 1024, 1);

// ---------- child processes ----------

async function freePort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const port = (server.address() as { port: number }).port;
  await new Promise<void>((resolve) => server.close(() => resolve()));
  return port;
}

interface Child {
  process: ChildProcess;
  port: number;
  output: () => string;
}

function keepOutput(child: ChildProcess): () => string {
  let text = '';
  const take = (chunk: Buffer) => {
    text = (text + chunk.toString()).slice(-4000);
  };
  child.stdout?.on('data', take);
  child.stderr?.on('data', take);
  return () => text;
}

async function spawnService(
  nodeArgs: string[] = [],
  extraEnv: Record<string, string> = {},
  /** Another checkout, built (`--before <dir>`): its server, started in its folder. */
  checkout?: string,
): Promise<Child & { spawnedAt: number }> {
  const port = await freePort();
  const dataDir = mkdtempSync(join(tmp, 'data-'));
  const spawnedAt = performance.now();
  const child = spawn(process.execPath, [...nodeArgs, checkout ? join(checkout, MAIN) : MAIN], {
    ...(checkout ? { cwd: checkout } : {}),
    env: {
      PATH: process.env.PATH,
      CDS_HOST: '127.0.0.1',
      CDS_PORT: String(port),
      CDS_PUBLIC_URL: PUBLIC_URL,
      CDS_TRUSTED_ISSUERS_FILE: issuersFile,
      CDS_DATA_DIR: dataDir,
      CDS_LOG_LEVEL: 'warn',
      // One load generator is one client: the per-client limit (3000/min) would throttle the benchmark
      // itself. The limiter still runs on every request.
      CDS_RATE_LIMIT_MAX: '1000000000',
      ...extraEnv,
    },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  return { process: child, port, output: keepOutput(child), spawnedAt };
}

async function spawnBare(responseBytes: number): Promise<Child> {
  const child = spawn(process.execPath, [BARE, String(responseBytes)], { stdio: ['ignore', 'pipe', 'pipe'] });
  const output = keepOutput(child);
  const port = await new Promise<number>((resolve, reject) => {
    child.stdout!.once('data', (chunk: Buffer) => resolve(Number(chunk.toString().trim())));
    child.once('exit', (code) => reject(new Error(`bare server exited (${code}): ${output()}`)));
  });
  return { process: child, port, output };
}

async function stop(child: Child): Promise<void> {
  if (child.process.exitCode !== null) return;
  const exited = new Promise((resolve) => child.process.once('exit', resolve));
  child.process.kill('SIGTERM');
  await exited;
}

/** The process and, for a cluster, its workers (Linux lists a task's children in /proc). */
function processTree(pid: number): number[] {
  let children: number[] = [];
  try {
    children = readFileSync(`/proc/${pid}/task/${pid}/children`, 'utf8')
      .split(/\s+/)
      .filter(Boolean)
      .map(Number);
  } catch {
    // The process has exited, or the kernel does not expose children: the process alone.
  }
  return [pid, ...children];
}

/** The memory of the largest process (RSS per process: the target is per process, workers included). */
const memoryOf = (child: Child) => {
  const readings = processTree(child.process.pid!).flatMap((pid) => {
    try {
      return [memoryFromStatus(readFileSync(`/proc/${pid}/status`, 'utf8'))];
    } catch {
      return [];
    }
  });
  return {
    vmHwmMb: Math.max(...readings.map((r) => r.vmHwmMb)),
    vmRssMb: Math.max(...readings.map((r) => r.vmRssMb)),
  };
};

/** Sends one request; resolves with the status, or null while nothing listens yet. */
async function post(port: number, item: PlannedRequest): Promise<number | null> {
  try {
    const res = await fetch(`http://127.0.0.1:${port}${item.path}`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', authorization: `Bearer ${item.token}` },
      body: item.body,
    });
    await res.arrayBuffer();
    return res.status;
  } catch (error) {
    if ((error as { cause?: { code?: string } }).cause?.code === 'ECONNREFUSED') return null;
    throw error;
  }
}

/** Polls with real hook calls until the first 200; the time since spawn, in ms. */
async function untilFirstAnswer(child: Child & { spawnedAt: number }, key: BenchKey): Promise<number> {
  const sample = headlineBodies[0]!;
  for (;;) {
    if (child.process.exitCode !== null) throw new Error(`service exited: ${child.output()}`);
    const status = await post(child.port, { ...sample, token: await mint(key)(sample.path) });
    if (status === 200) return performance.now() - child.spawnedAt;
    if (status !== null) throw new Error(`service answered ${status} to a valid call: ${child.output()}`);
    await sleep(5);
  }
}

// ---------- load runs ----------

interface LoadResult {
  requests: number;
  reqPerSec: number;
  p50: number;
  p975: number;
  p99: number;
  rssPeakMb: number;
}

/**
 * Drives `child` with `plan`: `amount` requests, or for `seconds` cycling over the plan (the bare server
 * only, which verifies no token).
 */
async function load(
  child: Child,
  plan: PlannedRequest[],
  size: { amount: number } | { seconds: number },
  connections = CONNECTIONS,
): Promise<LoadResult> {
  const cursor = planCursor(plan, 'seconds' in size);
  let rssPeak = 0;
  const sampler = setInterval(() => {
    rssPeak = Math.max(rssPeak, memoryOf(child).vmRssMb);
  }, 100);
  // Timed here, from the start to the last answer: autocannon's own `duration` counts whole seconds
  // (a run given an amount of requests ends at its next one-second tick), which for a run of a few
  // seconds moves the rate by up to a fifth.
  const runStart = performance.now();
  let lastAnswer = runStart;
  const result = await autocannon({
    url: `http://127.0.0.1:${child.port}`,
    connections,
    ...('amount' in size ? { amount: size.amount } : { duration: size.seconds }),
    timeout: 30,
    requests: [
      {
        setupRequest: cursor.setupRequest as never,
        onResponse: () => {
          lastAnswer = performance.now();
        },
      },
    ],
  });
  const elapsedS = (lastAnswer - runStart) / 1000;
  clearInterval(sampler);
  const memory = memoryOf(child);
  const failures = result.non2xx + result.errors + result.timeouts;
  if (failures > 0 || cursor.exhausted() > 0) {
    throw new Error(
      `load run failed: ${result.non2xx} non-2xx, ${result.errors} errors, ${result.timeouts} timeouts, ` +
        `${cursor.exhausted()} requests past the token pool. Service output:\n${child.output()}`,
    );
  }
  return {
    requests: result['2xx'],
    reqPerSec: round(result['2xx'] / elapsedS, 1),
    p50: result.latency.p50,
    p975: result.latency.p97_5,
    p99: result.latency.p99,
    rssPeakMb: Math.max(rssPeak, memory.vmHwmMb),
  };
}

/** A plan of `amount` requests plus what the connections may build beyond it, each with a new token. */
const planFor = (bodies: BodyFor[], amount: number, key: BenchKey) =>
  planRequests(bodies, amount + 4 * CONNECTIONS, mint(key));

interface Comparison {
  rounds: { pipeline: LoadResult; bare: LoadResult; ratio: number }[];
  median: { pipeline: LoadResult; bare: LoadResult; ratio: number };
}

const medianOf = (results: LoadResult[]): LoadResult => ({
  requests: median(results.map((r) => r.requests)),
  reqPerSec: median(results.map((r) => r.reqPerSec)),
  p50: median(results.map((r) => r.p50)),
  p975: median(results.map((r) => r.p975)),
  p99: median(results.map((r) => r.p99)),
  rssPeakMb: Math.max(...results.map((r) => r.rssPeakMb)),
});

/**
 * Interleaved rounds of bare then pipeline, about SECONDS each: the bare server for that duration, the
 * pipeline for as many requests as the previous run's rate gives (each needs its own pre-minted token).
 */
async function compare(bodies: BodyFor[], key: BenchKey, bare: Child): Promise<Comparison> {
  const service = await spawnService();
  try {
    await untilFirstAnswer(service, key);
    log(`${key.alg}: warming up`);
    let rate = (await load(service, await planFor(bodies, 600, key), { amount: 600 })).reqPerSec;
    // The bare server verifies nothing: its requests carry the same bodies and (reused) tokens.
    const barePlan = await planFor(bodies, 2000, key);
    await load(bare, barePlan, { seconds: 2 });
    const rounds: Comparison['rounds'] = [];
    for (let r = 0; r < ROUNDS; r += 1) {
      const bareResult = await load(bare, barePlan, { seconds: SECONDS });
      const amount = Math.max(300, Math.round(rate * SECONDS));
      const pipeline = await load(service, await planFor(bodies, amount, key), { amount });
      rate = pipeline.reqPerSec;
      const ratio = round(pipeline.reqPerSec / bareResult.reqPerSec, 3);
      log(
        `${key.alg} round ${r + 1}: pipeline ${pipeline.reqPerSec}/s, bare ${bareResult.reqPerSec}/s, ratio ${ratio}`,
      );
      rounds.push({ pipeline, bare: bareResult, ratio });
    }
    return {
      rounds,
      median: {
        pipeline: medianOf(rounds.map((r) => r.pipeline)),
        bare: medianOf(rounds.map((r) => r.bare)),
        ratio: median(rounds.map((r) => r.ratio)),
      },
    };
  } finally {
    await stop(service);
  }
}

// ---------- per-stage breakdown, in process, on the same requests ----------

type Stage = (typeof STAGES)[number];

const benchConfig = (prefix: string) =>
  loadConfig({
    CDS_DATA_DIR: mkdtempSync(join(tmp, prefix)),
    CDS_PUBLIC_URL: PUBLIC_URL,
    CDS_TRUSTED_ISSUERS_FILE: issuersFile,
  });

/** The service's own client JWT verifier, as `http/auth.ts` builds it, with the in-memory replay cache. */
function serviceVerifier(config: ReturnType<typeof loadConfig>, now: () => Date) {
  return createVerifier({
    issuers: loadTrustedIssuers(issuersFile),
    remoteJwks: () => {
      throw new Error('the benchmark trusts inline keys only');
    },
    replayCache: createMemoryReplayCache({ maxEntries: 1_000_000, now }),
    now,
    maxBytes: config.jwtMaxBytes,
    clockSkewS: config.jwtClockSkewS,
    maxLifetimeS: config.jwtMaxLifetimeS,
  });
}

async function stageBreakdown(bodies: BodyFor[], passes: number, key: BenchKey) {
  if (passes < 2) throw new Error('the stage breakdown needs two passes at least: the first is warm-up');
  const config = benchConfig('stages-');
  const now = () => new Date();
  const verify = serviceVerifier(config, now);
  const logger = pino({ level: 'warn' });
  const audit = await openAuditTrail(config, { log: logger });
  const fhirFetch = createFhirFetch({
    fetch: globalThis.fetch,
    timeoutMs: config.fhirFetchTimeoutMs,
    maxBytes: config.fhirFetchMaxBytes,
    maxPages: config.fhirFetchMaxPages,
    allowHttp: false,
  });
  const samples = new Map<string, Record<Stage | 'total', number[]>>();
  const responseBytes: number[] = [];
  const plan = await planRequests(bodies, bodies.length * passes, mint(key));
  for (const [i, item] of plan.entries()) {
    const times = {} as Record<Stage, number>;
    let start = performance.now();
    const body = JSON.parse(item.body) as HookRequest;
    times.parse = performance.now() - start;
    start = performance.now();
    const verdict = await verify(`Bearer ${item.token}`, PUBLIC_URL + item.path);
    times.auth = performance.now() - start;
    if (!verdict.ok) throw new Error(`in-process verification refused a token: ${verdict.reason}`);
    const service = services.get(item.path.split('/').at(-1)!)!;
    const outcome = await runHook(
      // The bytes as received, as over HTTP: the audit hashes them (`sha256-raw`).
      { service, body, rawBody: item.body, client: verdict.client, language: 'en' },
      {
        fhirFetch,
        // Every key is prefetched: no fallback fetch may go anywhere.
        egress: () => compileEgress('bench'),
        now,
        uuid: randomUUID,
        publicUrl: PUBLIC_URL,
        audit,
        log: logger,
      },
    );
    for (const { stage, ms } of outcome.timings) times[stage] = ms;
    if (i < bodies.length) continue; // first pass: warm-up
    responseBytes.push(Buffer.byteLength(JSON.stringify(outcome.response)));
    const id = service.definition.id;
    const row = samples.get(id) ?? (Object.fromEntries([...STAGES, 'total'].map((s) => [s, []])) as never);
    samples.set(id, row);
    for (const s of STAGES) row[s].push(times[s]);
    row.total.push(STAGES.reduce((sum, s) => sum + times[s], 0));
  }
  await audit.close();
  const byService = Object.fromEntries(
    [...samples].map(([id, row]) => [
      id,
      Object.fromEntries(
        Object.entries(row).map(([stage, values]) => [
          stage,
          {
            meanMs: round(values.reduce((a, b) => a + b, 0) / values.length, 3),
            medianMs: round(median(values), 3),
            p99Ms: round(quantile(values, 0.99), 3),
          },
        ]),
      ),
    ]),
  );
  return {
    byService,
    meanResponseBytes: Math.round(responseBytes.reduce((a, b) => a + b, 0) / responseBytes.length),
  };
}

// ---------- scaling curve ----------

const SIZES = [10, 100, 1000, 10_000];

function scalingBodies(): BodyFor[] {
  const record = toServerForm(generatePatient(createRng(11, 0), { now: today, kneeOa: true, age: 64 }));
  const resources = resourcesOf(record);
  const patient = patientOf(record);
  const knee = services.get('knee-oa-progression')!;
  const base = bodyFor(knee, resources, patient.id!);
  const request = JSON.parse(base.body) as { prefetch: Record<string, Bundle> };
  const observations = (request.prefetch.observations!.entry ?? []).map((e) => e.resource as Observation);
  if (observations.length === 0) throw new Error('the generated knee-OA patient has no knee observations');
  return SIZES.map((size) => {
    const entry = Array.from({ length: size }, (_, i) => {
      const source = observations[i % observations.length]!;
      const when =
        Date.parse(source.effectiveDateTime ?? today.toISOString()) -
        Math.floor(i / observations.length) * 86_400_000;
      const resource: Observation = {
        ...source,
        id: `bench-obs-${i}`,
        effectiveDateTime: new Date(when).toISOString(),
      };
      return { fullUrl: `Observation/${resource.id}`, resource };
    });
    const prefetch = {
      ...request.prefetch,
      observations: { resourceType: 'Bundle', type: 'searchset', total: size, entry },
    };
    return { path: base.path, body: JSON.stringify({ ...request, hookInstance: randomUUID(), prefetch }) };
  });
}

async function scalingOverHttp(child: Child, bodies: BodyFor[], key: BenchKey) {
  const points: { resources: number; ms: number; bodyBytes: number }[] = [];
  for (const [i, body] of bodies.entries()) {
    const reps = SIZES[i]! >= 10_000 ? 7 : 15;
    const times: number[] = [];
    for (let r = 0; r < reps + 2; r += 1) {
      const token = await mint(key)(body.path);
      const start = performance.now();
      const status = await post(child.port, { ...body, token });
      const ms = performance.now() - start;
      if (status !== 200)
        throw new Error(`scaling: ${SIZES[i]} observations answered ${status}: ${child.output()}`);
      if (r >= 2) times.push(ms);
    }
    points.push({ resources: SIZES[i]!, ms: median(times), bodyBytes: Buffer.byteLength(body.body) });
  }
  return points;
}

// ---------- JWT verification micro-loop ----------

/**
 * What the service pays per token: its own verifier (`auth/verify.ts`: parsing, checks, signature, claims,
 * replay cache), on distinct tokens minted beforehand since each jti passes once.
 */
async function verifyCost(key: BenchKey): Promise<number> {
  const verify = serviceVerifier(benchConfig('verify-'), () => new Date());
  const path = '/cds-services/knee-oa-progression';
  const n = key.alg === 'RS384' ? 1000 : 300;
  const tokens = await Promise.all(Array.from({ length: n / 4 + 5 * n }, () => mint(key)(path)));
  let next = 0;
  const once = async () => {
    const verdict = await verify(`Bearer ${tokens[next++]}`, PUBLIC_URL + path);
    if (!verdict.ok) throw new Error(`the verifier refused a benchmark token: ${verdict.reason}`);
  };
  for (let i = 0; i < n / 4; i += 1) await once();
  const batches: number[] = [];
  for (let b = 0; b < 5; b += 1) {
    const start = performance.now();
    for (let i = 0; i < n; i += 1) await once();
    batches.push((performance.now() - start) / n);
  }
  return round(median(batches), 4);
}

// ---------- memory with a capped heap ----------

/**
 * V8 sizes its heap lazily: on a machine with plenty of memory the old generation grows long before a
 * full collection, so resident memory under load says more about that policy than about what the service
 * keeps. The same load with the old generation capped shows what the service needs.
 */
const HEAP_CAP_MB = 256;

async function cappedHeap(bodies: BodyFor[], key: BenchKey) {
  const child = await spawnService([`--max-old-space-size=${HEAP_CAP_MB}`]);
  try {
    await untilFirstAnswer(child, key);
    await load(child, await planFor(bodies, 600, key), { amount: 600 });
    const amount = 3000;
    return {
      heapCapMb: HEAP_CAP_MB,
      load: await load(child, await planFor(bodies, amount, key), { amount }),
    };
  } finally {
    await stop(child);
  }
}

// ---------- one process against two (CDS_WORKERS=2) ----------

/** CPU time (ms) of each process of a service, all threads and the main thread: the process itself first, then its workers. */
const cpuOfTree = (child: Child) =>
  processTree(child.process.pid!).map((pid) => ({
    pid,
    ...(processCpuMs(pid) ?? { totalMs: 0, mainMs: 0 }),
  }));

/**
 * Where a load run's CPU went, per call: the whole service (all its processes and threads), and of it the
 * main threads (the event loops running the pipeline) and the other threads (the SQLite audit thread, GC
 * helpers, libuv's pool); the first process (the cluster's primary, which hands out the connections and
 * keeps the replay cache; the service itself when alone) and each worker; and this process (autocannon,
 * which on a small machine competes with the service for the same cores).
 */
interface CpuPerCall {
  serviceMs: number;
  mainThreadsMs: number;
  otherThreadsMs: number;
  primaryMs: number;
  workersMs: number[];
  loadGeneratorMs: number;
}

async function loadWithCpu(child: Child, plan: PlannedRequest[], amount: number) {
  const before = cpuOfTree(child);
  const ownBefore = process.cpuUsage();
  const result = await load(child, plan, { amount });
  const own = process.cpuUsage(ownBefore);
  const after = cpuOfTree(child);
  const per = (ms: number) => round(ms / result.requests, 3);
  const delta = after.map((a) => {
    const b = before.find((x) => x.pid === a.pid) ?? { totalMs: 0, mainMs: 0 };
    return { totalMs: a.totalMs - b.totalMs, mainMs: a.mainMs - b.mainMs };
  });
  const sum = (values: number[]) => values.reduce((x, y) => x + y, 0);
  const total = sum(delta.map((d) => d.totalMs));
  const main = sum(delta.map((d) => d.mainMs));
  const cpu: CpuPerCall = {
    serviceMs: per(total),
    mainThreadsMs: per(main),
    otherThreadsMs: per(total - main),
    primaryMs: per(delta[0]?.totalMs ?? 0),
    workersMs: delta.slice(1).map((d) => per(d.totalMs)),
    loadGeneratorMs: per((own.user + own.system) / 1000),
  };
  return { ...result, cpu };
}

/**
 * Interleaved rounds of the same load on one process, on a cluster of two workers and on two independent
 * processes (half the connections each, at once), each given as many requests as its previous run's
 * rate fills in SECONDS; with the CPU one process and the cluster spent per call, and the ceiling that
 * the cores one process keeps busy (with the load generator's share) leave to two.
 */
async function workersScaling(bodies: BodyFor[], key: BenchKey) {
  const one = await spawnService();
  const two = await spawnService([], { CDS_WORKERS: '2' });
  // Two single processes with a store each, sharing nothing: what two processes reach on this machine
  // whatever the cluster does (its primary, the shared audit store).
  const pair = [await spawnService(), await spawnService()] as const;
  const half = Math.max(1, Math.round(CONNECTIONS / 2));
  try {
    for (const child of [one, two, ...pair]) await untilFirstAnswer(child, key);
    // Both workers of the cluster start together; the warm-up reaches each of them many times.
    const rate = { one: 0, two: 0, pair: [0, 0] };
    rate.one = (await load(one, await planFor(bodies, 600, key), { amount: 600 })).reqPerSec;
    rate.two = (await load(two, await planFor(bodies, 1200, key), { amount: 1200 })).reqPerSec;
    for (const [i, child] of pair.entries()) {
      rate.pair[i] = (await load(child, await planFor(bodies, 600, key), { amount: 600 }, half)).reqPerSec;
    }
    type Measured = Awaited<ReturnType<typeof loadWithCpu>>;
    const rounds: {
      one: Measured;
      two: Measured;
      ratio: number;
      independent: { reqPerSec: number[]; ratio: number };
      ceiling: { coresUsedByOne: number; ratio: number };
    }[] = [];
    const cpus = availableParallelism();
    for (let r = 0; r < ROUNDS; r += 1) {
      const amountOne = Math.max(300, Math.round(rate.one * SECONDS));
      const resultOne = await loadWithCpu(one, await planFor(bodies, amountOne, key), amountOne);
      const amountTwo = Math.max(300, Math.round(rate.two * SECONDS));
      const resultTwo = await loadWithCpu(two, await planFor(bodies, amountTwo, key), amountTwo);
      // The pair, each with half the connections, at the same time.
      const amounts = rate.pair.map((x) => Math.max(150, Math.round(x * SECONDS)));
      const plans = [await planFor(bodies, amounts[0]!, key), await planFor(bodies, amounts[1]!, key)];
      const both = await Promise.all(
        pair.map((child, i) => load(child, plans[i]!, { amount: amounts[i]! }, half)),
      );
      rate.one = resultOne.reqPerSec;
      rate.two = resultTwo.reqPerSec;
      rate.pair = both.map((b) => b.reqPerSec);
      const ratio = round(resultTwo.reqPerSec / resultOne.reqPerSec, 3);
      const independent = {
        reqPerSec: rate.pair,
        ratio: round((rate.pair[0]! + rate.pair[1]!) / resultOne.reqPerSec, 3),
      };
      // One process at its rate keeps this many cores busy, with the load generator's share: two
      // processes cannot do better than the machine's cores over that, whatever they share.
      const coresUsedByOne = round(
        ((resultOne.cpu.serviceMs + resultOne.cpu.loadGeneratorMs) * resultOne.reqPerSec) / 1000,
        2,
      );
      const ceiling = { coresUsedByOne, ratio: round(cpus / coresUsedByOne, 2) };
      log(
        `workers round ${r + 1}: one ${resultOne.reqPerSec}/s ${resultOne.cpu.serviceMs} ms CPU/call ` +
          `(main ${resultOne.cpu.mainThreadsMs}), two ${resultTwo.reqPerSec}/s ${resultTwo.cpu.serviceMs} ms ` +
          `CPU/call (main ${resultTwo.cpu.mainThreadsMs}, primary ${resultTwo.cpu.primaryMs}, workers ` +
          `${resultTwo.cpu.workersMs.join(' + ')}), ratio ${ratio}; two independent ${rate.pair.join(' + ')}/s, ` +
          `ratio ${independent.ratio}; one keeps ${coresUsedByOne} of ${cpus} cores busy: at most ${ceiling.ratio}×`,
      );
      rounds.push({ one: resultOne, two: resultTwo, ratio, independent, ceiling });
    }
    const cpuMedian = (results: Measured[]) => ({
      serviceMs: median(results.map((r) => r.cpu.serviceMs)),
      mainThreadsMs: median(results.map((r) => r.cpu.mainThreadsMs)),
      otherThreadsMs: median(results.map((r) => r.cpu.otherThreadsMs)),
      primaryMs: median(results.map((r) => r.cpu.primaryMs)),
      loadGeneratorMs: median(results.map((r) => r.cpu.loadGeneratorMs)),
    });
    return {
      rounds,
      median: {
        one: { ...medianOf(rounds.map((r) => r.one)), cpuMsPerCall: cpuMedian(rounds.map((r) => r.one)) },
        two: { ...medianOf(rounds.map((r) => r.two)), cpuMsPerCall: cpuMedian(rounds.map((r) => r.two)) },
        ratio: median(rounds.map((r) => r.ratio)),
        independentRatio: median(rounds.map((r) => r.independent.ratio)),
        ceiling: {
          cpus,
          coresUsedByOne: median(rounds.map((r) => r.ceiling.coresUsedByOne)),
          ratio: median(rounds.map((r) => r.ceiling.ratio)),
        },
      },
    };
  } finally {
    for (const child of [one, two, ...pair]) await stop(child);
  }
}

// ---------- side by side: this service, bare Fastify, a CQL-based service ----------

/**
 * This service (RS384 tokens), the bare server and, when CDS_BENCH_CQL_URL names one that answers, a
 * CQL-based CDS Hooks service, at one connection and at CONNECTIONS, on today's bodies and the 40–60 KB
 * ones (`side-by-side.ts`).
 */
async function sideBySideRun(bare: Child, before?: string) {
  const service = await spawnService();
  const previous = before ? await spawnService([], {}, before) : null;
  const key = keys.RS384;
  try {
    await untilFirstAnswer(service, key);
    if (previous) await untilFirstAnswer(previous, key);
    const targets: Target[] = [
      {
        name: 'this service',
        origin: `http://127.0.0.1:${service.port}`,
        tokens: 'fresh',
        pid: service.process.pid!,
      },
      ...(previous
        ? [
            {
              name: 'before',
              origin: `http://127.0.0.1:${previous.port}`,
              tokens: 'fresh' as const,
              pid: previous.process.pid!,
            },
          ]
        : []),
      { name: 'bare Fastify', origin: `http://127.0.0.1:${bare.port}`, tokens: 'reuse' },
    ];
    const cql = cqlTarget(process.env);
    let skipped = cql.ok ? null : cql.reason;
    if (cql.ok) {
      const problem = await reachable(cql.target, (await planRequests(headlineBodies, 1, mint(key)))[0]!);
      if (problem) skipped = `CDS_BENCH_CQL_URL is set but ${problem}`;
      else targets.push(cql.target);
    }
    if (skipped) log(`CQL-based service skipped: ${skipped}`);
    const workloads = [
      { name: `today's (${source})`, bodies: headlineBodies },
      { name: '40–60 KB records', bodies: largeBodies },
    ];
    const rows = await sideBySide({
      targets,
      baseline: 'bare Fastify',
      workloads: workloads.map((w) => ({
        name: w.name,
        plan: (n: number) => planRequests(w.bodies, n, mint(key)),
      })),
      connections: [1, CONNECTIONS],
      rounds: ROUNDS,
      seconds: Math.max(2, SECONDS / 2),
      log,
    });
    return {
      rows,
      skipped,
      bodies: workloads.map((w) => ({ name: w.name, count: w.bodies.length, meanKb: meanKb(w.bodies) })),
    };
  } finally {
    await stop(service);
    if (previous) await stop(previous);
  }
}

// ---------- CPU profile ----------

async function profile(bodies: BodyFor[], key: BenchKey, checkout?: string) {
  const dir = mkdtempSync(join(tmp, 'profile-'));
  const child = await spawnService(['--cpu-prof', `--cpu-prof-dir=${dir}`], {}, checkout);
  await untilFirstAnswer(child, key);
  const calls = argOf('profile-calls', 1500);
  await load(child, await planFor(bodies, calls, key), { amount: calls });
  await stop(child);
  // One file per thread, named …<pid>.<thread>.<sequence>.cpuprofile: the main thread's sorts first.
  const files = readdirSync(dir)
    .filter((f) => f.endsWith('.cpuprofile'))
    .sort();
  if (files.length === 0) throw new Error('the profiled service wrote no .cpuprofile');
  const keep = process.env.CDS_BENCH_KEEP_PROFILES;
  if (keep) for (const f of files) copyFileSync(join(dir, f), join(keep, `${Date.now()}-${f}`));
  const main = JSON.parse(readFileSync(join(dir, files[0]!), 'utf8')) as CpuProfile;
  return { ...summariseProfile(main, 20), steadyState: steadyStateProfile(main, calls) };
}

/**
 * One service under the load of the headline runs (CONNECTIONS connections) with tools/bench/tail-probe.ts
 * loaded: its latency and, over the same calls, the garbage-collection pauses and the event loop's delay.
 */
async function tail(bodies: BodyFor[], key: BenchKey) {
  const probeFile = join(tmp, `tail-${Date.now()}.json`);
  const probe = join(import.meta.dirname, 'tail-probe.js');
  const child = await spawnService([`--import=${probe}`], { CDS_BENCH_TAIL_OUT: probeFile });
  try {
    await untilFirstAnswer(child, key);
    await load(child, await planFor(bodies, 600, key), { amount: 600 });
    child.process.kill('SIGUSR2');
    await sleep(100);
    const calls = argOf('tail-calls', 6000);
    const started = performance.now();
    const result = await load(child, await planFor(bodies, calls, key), { amount: calls });
    const runMs = performance.now() - started;
    await stop(child);
    const measured = JSON.parse(readFileSync(probeFile, 'utf8')) as TailProbe;
    return { latency: result, ...tailSummary(measured, runMs) };
  } finally {
    await stop(child);
  }
}

// ---------- the run ----------

const started = new Date();
const cpuModel = /^model name\s*:\s*(.*)$/m.exec(readFileSync('/proc/cpuinfo', 'utf8'))?.[1] ?? 'unknown';
const loadBefore = loadavg();
// Whether the machine was otherwise idle: CPU busy share over 3 s, after the build and before any run.
const statBefore = readFileSync('/proc/stat', 'utf8');
await sleep(3000);
const cpuBusyBefore = cpuBusyShare(statBefore, readFileSync('/proc/stat', 'utf8'));
log(`source: ${source} (${headlineBodies.length} request bodies); tmp ${tmp}`);
if (process.argv.includes('--workers-only')) {
  // Only the one-against-two comparison, printed; the results files are left as they are.
  try {
    log('one process against two workers');
    process.stdout.write(`${JSON.stringify(await workersScaling(headlineBodies, keys.RS384), null, 2)}\n`);
  } finally {
    rmSync(tmp, { recursive: true, force: true });
  }
  process.exit(0);
}
if (process.argv.includes('--cold-only')) {
  // Only cold starts (spawn to the first answered hook call), 5 of this server and, with --before DIR,
  // 5 of that checkout's, interleaved; printed as JSON, the results files left as they are.
  try {
    const at = process.argv.indexOf('--before');
    const before = at > 0 ? process.argv[at + 1] : undefined;
    const times: Record<string, number[]> = { this: [], ...(before ? { before: [] } : {}) };
    for (let i = 0; i < 5; i += 1) {
      for (const [name, checkout] of [
        ['this', undefined],
        ['before', before],
      ] as const) {
        if (name === 'before' && !checkout) continue;
        const child = await spawnService([], {}, checkout);
        times[name]!.push(round(await untilFirstAnswer(child, keys.RS384), 0));
        await stop(child);
      }
    }
    const medians = Object.fromEntries(Object.entries(times).map(([k, v]) => [k, median(v)]));
    process.stdout.write(`${JSON.stringify({ times, medians })}\n`);
  } finally {
    rmSync(tmp, { recursive: true, force: true });
  }
  process.exit(0);
}
if (process.argv.includes('--tail-only')) {
  // Only where the slowest calls wait (garbage collection, event-loop delay) on today's bodies and the
  // 40–60 KB ones, printed as JSON; the results files are left as they are.
  try {
    const out: Record<string, unknown> = {};
    for (const [name, bodies] of [
      ['today', headlineBodies],
      ['large', largeBodies],
    ] as const)
      out[name] = await tail(bodies, keys.RS384);
    process.stdout.write(`${JSON.stringify(out, null, 1)}\n`);
  } finally {
    rmSync(tmp, { recursive: true, force: true });
  }
  process.exit(0);
}
if (process.argv.includes('--profile-only')) {
  // Only CPU profiles under load (today's bodies, then the 40–60 KB ones; with --before DIR, that
  // checkout's server too), printed as JSON; the results files are left as they are.
  try {
    const at = process.argv.indexOf('--before');
    const before = at > 0 ? process.argv[at + 1] : undefined;
    const out: Record<string, unknown> = {};
    for (const [name, bodies] of [
      ['today', headlineBodies],
      ['large', largeBodies],
    ] as const) {
      out[name] = await profile(bodies, keys.RS384);
      if (before) out[`${name} (before)`] = await profile(bodies, keys.RS384, before);
    }
    process.stdout.write(`${JSON.stringify(out, null, 1)}\n`);
  } finally {
    rmSync(tmp, { recursive: true, force: true });
  }
  process.exit(0);
}
if (process.argv.includes('--side-by-side-only')) {
  // Only the side-by-side table, printed; the results files are left as they are.
  try {
    // Two passes: the first is warm-up and not measured (one pass gave no answer size, and the bare
    // server then answered 19 bytes instead of the service's mean answer).
    const { meanResponseBytes } = await stageBreakdown(headlineBodies.slice(0, 20), 2, keys.RS384);
    const bare = await spawnBare(meanResponseBytes);
    try {
      const at = process.argv.indexOf('--before');
      const result = await sideBySideRun(bare, at > 0 ? process.argv[at + 1] : undefined);
      process.stdout.write(
        `${JSON.stringify(result.bodies)}\n${sideBySideTable(result.rows, result.skipped).join('\n')}\n`,
      );
    } finally {
      await stop(bare);
    }
  } finally {
    rmSync(tmp, { recursive: true, force: true });
  }
  process.exit(0);
}
try {
  log('in-process stage breakdown');
  const stagesRs = await stageBreakdown(headlineBodies, 4, keys.RS384);
  const stagesGenerated = await stageBreakdown(generatedBodies, 4, keys.RS384);
  const bare = await spawnBare(stagesRs.meanResponseBytes);
  let results;
  try {
    log('cold start');
    const coldStarts: number[] = [];
    for (let i = 0; i < 5; i += 1) {
      const child = await spawnService();
      coldStarts.push(await untilFirstAnswer(child, keys.RS384));
      await stop(child);
    }
    const rs384 = await compare(headlineBodies, keys.RS384, bare);
    const es384 = await compare(headlineBodies, keys.ES384, bare);
    const generated = source === 'synthea' ? await compare(generatedBodies, keys.RS384, bare) : null;
    log('side by side: this service, bare Fastify, a CQL-based service');
    const sideBySideResult = await sideBySideRun(bare);
    log('scaling curve');
    // The 10,000-Observation body is larger than the default body limit (6 MiB): this run raises the
    // limit and the bytes in flight (one call at a time) so that the curve reaches it.
    const service = await spawnService([], {
      CDS_BODY_LIMIT_BYTES: String(32 * 1024 * 1024),
      CDS_MAX_BYTES_IN_FLIGHT: String(64 * 1024 * 1024),
    });
    let scaling;
    let scalingStages;
    try {
      await untilFirstAnswer(service, keys.RS384);
      const bodies = scalingBodies();
      scaling = scalingSummary(await scalingOverHttp(service, bodies, keys.RS384));
      scalingStages = [];
      for (const [i, body] of bodies.entries()) {
        const { byService } = await stageBreakdown([body], SIZES[i]! >= 10_000 ? 4 : 8, keys.RS384);
        scalingStages.push({ resources: SIZES[i]!, stages: byService['knee-oa-progression'] });
      }
    } finally {
      await stop(service);
    }
    log('JWT verification cost');
    const verifyMs = { RS384: await verifyCost(keys.RS384), ES384: await verifyCost(keys.ES384) };
    log(`memory with the heap capped at ${HEAP_CAP_MB} MB`);
    const memory = await cappedHeap(headlineBodies, keys.RS384);
    log('one process against two workers');
    const workers = await workersScaling(headlineBodies, keys.RS384);
    log('CPU profile');
    const cpuProfile = await profile(headlineBodies, keys.RS384);
    const perRequestMs = (r: Comparison) => 1000 / r.median.pipeline.reqPerSec;
    results = {
      date: started.toISOString(),
      command: 'npm run bench',
      options: { rounds: ROUNDS, secondsPerRun: SECONDS, connections: CONNECTIONS },
      machine: {
        cpus: availableParallelism(),
        cpuModel,
        node: process.version,
        loadAverageBefore: loadBefore.map((l) => round(l, 2)),
        loadAverageAfter: loadavg().map((l) => round(l, 2)),
        cpuBusyBefore,
        shared: cpuBusyBefore > 0.2,
      },
      source,
      requestBodies: headlineBodies.length,
      responseBytes: stagesRs.meanResponseBytes,
      headline: {
        throughputRatio: rs384.median.ratio,
        pipeline: rs384.median.pipeline,
        bare: rs384.median.bare,
        coldStartMs: round(median(coldStarts), 1),
      },
      runs: { RS384: rs384, ES384: es384, ...(generated ? { generatedRS384: generated } : {}) },
      coldStartMs: coldStarts.map((c) => round(c, 1)),
      stages: {
        [source]: stagesRs.byService,
        ...(source === 'synthea' ? { generated: stagesGenerated.byService } : {}),
      },
      jwtVerify: {
        msPerVerify: verifyMs,
        // Share of the service's time per request at saturation (one JS thread: 1 / throughput).
        shareOfRequestTime: {
          RS384: round(verifyMs.RS384 / perRequestMs(rs384), 3),
          ES384: round(verifyMs.ES384 / perRequestMs(es384), 3),
        },
      },
      scaling: { overHttp: scaling, inProcess: scalingStages },
      memory,
      workers,
      sideBySide: sideBySideResult,
      cpuProfile,
    };
  } finally {
    await stop(bare);
  }
  mkdirSync(join('tools', 'bench', 'results'), { recursive: true });
  const file = join('tools', 'bench', 'results', 'bench-results.json');
  writeFileSync(file, await prettier.format(JSON.stringify(results), { parser: 'json' }));
  const benchmarks = existsSync('BENCHMARKS.md') ? readFileSync('BENCHMARKS.md', 'utf8') : '';
  const markdown = await prettier.format(renderBenchmarks(results, benchmarks), {
    ...(await prettier.resolveConfig('BENCHMARKS.md')),
    parser: 'markdown',
  });
  writeFileSync('BENCHMARKS.md', markdown);
  log(`wrote ${file} and BENCHMARKS.md`);
} finally {
  rmSync(tmp, { recursive: true, force: true });
}
