/**
 * Pure pieces of `npm run bench`: the request plan (one fresh JWT per request), prefetch built from a
 * record by a service's query templates, summary statistics and the CPU-profile summary. No I/O here,
 * so test/bench/helpers.test.ts can check them without running the benchmark.
 */
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import type { Bundle, Resource } from 'fhir/r4.js';
import { toServerForm } from '../synthetic/bundle.js';
import { generatePatient } from '../synthetic/patients.js';
import { createRng } from '../synthetic/random.js';

/** One request as the load generator sends it. */
export interface PlannedRequest {
  path: string;
  body: string;
  token: string;
}

/** A body for a service path (the JWT audience is the public URL + this path). */
export interface BodyFor {
  path: string;
  body: string;
}

/**
 * Pairs `count` requests, taken round-robin from `bodies`, with one token each, minted by `mint` for
 * the path called. Tokens are never reused: the service refuses a replayed `jti`.
 * @throws Error when a minted token repeats one already in the plan
 */
export async function planRequests(
  bodies: readonly BodyFor[],
  count: number,
  mint: (path: string) => Promise<string>,
): Promise<PlannedRequest[]> {
  if (bodies.length === 0) throw new Error('no request bodies to send');
  const seen = new Set<string>();
  const plan: PlannedRequest[] = [];
  for (let i = 0; i < count; i += 1) {
    const { path, body } = bodies[i % bodies.length]!;
    const token = await mint(path);
    if (seen.has(token)) throw new Error(`token ${i} repeats an earlier token`);
    seen.add(token);
    plan.push({ path, body, token });
  }
  return plan;
}

/** Raw request as autocannon's `setupRequest` receives and returns it. */
export interface RawRequest {
  method?: string;
  path?: string;
  body?: string | Buffer;
  headers?: Record<string, string>;
}

/**
 * A cursor over a plan for autocannon's `setupRequest`: each call takes the next request. Past the end
 * it repeats the last one (the service then refuses the replayed token, which the run counts as a
 * non-2xx) and `exhausted()` says so, so an undersized pool can never go unnoticed. With `cycle` (for the
 * bare server, which verifies no token) it starts again from the first.
 */
export function planCursor(plan: readonly PlannedRequest[], cycle = false) {
  let next = 0;
  let overrun = 0;
  return {
    setupRequest(request: RawRequest): RawRequest {
      if (next >= plan.length && !cycle) overrun += 1;
      const item = plan[cycle ? next % plan.length : Math.min(next, plan.length - 1)]!;
      next += 1;
      request.method = 'POST';
      request.path = item.path;
      request.body = item.body;
      request.headers = {
        'content-type': 'application/json',
        'accept-language': 'en',
        authorization: `Bearer ${item.token}`,
      };
      return request;
    },
    used: () => (cycle ? next : Math.min(next, plan.length)),
    exhausted: () => overrun,
  };
}

/** The value of a FHIR search parameter token list `system|code,system|code`. */
function tokenMatches(resource: Resource, tokens: string[]): boolean {
  const codings = ((resource as { code?: { coding?: { system?: string; code?: string }[] } }).code?.coding ??
    []) as { system?: string; code?: string }[];
  return tokens.some((token) => {
    const [system, code] = token.includes('|') ? token.split('|') : [undefined, token];
    return codings.some((c) => c.code === code && (system === undefined || c.system === system));
  });
}

function dateOf(resource: Resource): string {
  const r = resource as { effectiveDateTime?: string; recordedDate?: string; dateTime?: string };
  return r.effectiveDateTime ?? r.recordedDate ?? r.dateTime ?? '';
}

/**
 * What an EHR would prefetch for `query` (a service's template, already filled with the patient id) from
 * one patient's resources: `Type/id` reads, and `Type?…` searches honouring `code`, `status`,
 * `_sort=-date` and `_count` (the first page). Other parameters (`patient`) hold by construction.
 * @returns the resource, a searchset Bundle, or null when a read finds nothing
 */
export function prefetchFrom(query: string, resources: readonly Resource[]): Resource | Bundle | null {
  const [head = '', search] = query.split('?');
  if (search === undefined) {
    const [type, id] = head.split('/');
    return resources.find((r) => r.resourceType === type && r.id === id) ?? null;
  }
  const params = new URLSearchParams(search);
  let found = resources.filter((r) => r.resourceType === head);
  const code = params.get('code');
  if (code) found = found.filter((r) => tokenMatches(r, code.split(',')));
  const status = params.get('status');
  if (status) found = found.filter((r) => (r as { status?: string }).status === status);
  if (params.get('_sort') === '-date') found = [...found].sort((a, b) => dateOf(b).localeCompare(dateOf(a)));
  const count = Number(params.get('_count') ?? Number.NaN);
  if (Number.isInteger(count) && count > 0) found = found.slice(0, count);
  return {
    resourceType: 'Bundle',
    type: 'searchset',
    total: found.length,
    entry: found.map((resource) => ({ fullUrl: `${resource.resourceType}/${resource.id}`, resource })),
  };
}

/**
 * A longer history for one patient: copies of their dated Observations `years` years earlier (ids
 * suffixed `-y<years>`), as the visits of the years before the record begins would have left them. The
 * benchmark's 40–60 KB bodies are a record with a few such years added until the body is that size.
 */
export function olderVisits(resources: readonly Resource[], years: number): Resource[] {
  const shift = (date: string) =>
    `${String(Number(date.slice(0, 4)) - years).padStart(4, '0')}${date.slice(4)}`;
  return resources.flatMap((resource) => {
    const o = resource as Resource & { effectiveDateTime?: string; issued?: string };
    if (resource.resourceType !== 'Observation' || !o.effectiveDateTime) return [];
    return [
      {
        ...o,
        id: `${o.id}-y${years}`,
        effectiveDateTime: shift(o.effectiveDateTime),
        ...(o.issued ? { issued: shift(o.issued) } : {}),
      },
    ];
  });
}

/**
 * The body built by `build` from `resources` with as many earlier years added (`olderVisits`) as bring
 * it to at least `min` bytes; null when even the first body is over `max`, or `max` is overshot.
 */
export function bodyOfSize(
  resources: readonly Resource[],
  build: (resources: readonly Resource[]) => string,
  min: number,
  max: number,
): string | null {
  let all = [...resources];
  let body = build(all);
  for (let years = 1; body.length < min && years <= 60; years += 1) {
    all = [...all, ...olderVisits(resources, years)];
    body = build(all);
  }
  return body.length >= min && body.length <= max ? body : null;
}

/** Value at quantile q (0–1) of `values`, nearest rank. */
export function quantile(values: readonly number[], q: number): number {
  if (values.length === 0) return Number.NaN;
  const sorted = [...values].sort((a, b) => a - b);
  const rank = Math.min(sorted.length - 1, Math.max(0, Math.ceil(q * sorted.length) - 1));
  return sorted[rank]!;
}

export const median = (values: readonly number[]) => quantile(values, 0.5);

export const round = (value: number, digits = 2) => Number(value.toFixed(digits));

/** Per-resource cost at each prefetch size, and how it changes from one size to the next. */
export function scalingSummary(points: readonly { resources: number; ms: number }[]) {
  return points.map((p, i) => {
    const previous = points[i - 1];
    return {
      resources: p.resources,
      ms: round(p.ms, 3),
      msPerResource: round(p.ms / p.resources, 4),
      // Marginal cost of the added resources, free of the fixed per-request part.
      marginalMsPerResource: previous
        ? round((p.ms - previous.ms) / (p.resources - previous.resources), 4)
        : null,
      // 10× the resources: linear growth gives a time ratio near 10 (less while fixed costs dominate).
      timeRatio: previous ? round(p.ms / previous.ms, 2) : null,
    };
  });
}

/**
 * The share of CPU time spent busy (not idle, not waiting for I/O) between two readings of /proc/stat,
 * over all CPUs: whether something else was running when the benchmark started.
 */
export function cpuBusyShare(before: string, after: string): number {
  const totals = (text: string) => {
    const fields = (/^cpu\s+(.*)$/m.exec(text)?.[1] ?? '').trim().split(/\s+/).map(Number);
    const total = fields.reduce((a, b) => a + b, 0);
    // user nice system idle iowait irq softirq steal …: idle and iowait are not work.
    return { total, idle: (fields[3] ?? 0) + (fields[4] ?? 0) };
  };
  const a = totals(before);
  const b = totals(after);
  const elapsed = b.total - a.total;
  return elapsed > 0 ? round(1 - (b.idle - a.idle) / elapsed, 3) : 0;
}

/**
 * CPU time (user + system, ms) a process has used so far, from /proc: in all its threads, and in its main
 * thread alone (the thread whose id is the process id: the event loop; the rest is worker threads, GC
 * helpers and libuv's pool). Null when /proc cannot be read (the process has exited, not Linux).
 */
export function processCpuMs(pid: number): { totalMs: number; mainMs: number } | null {
  const ticks = (text: string) => {
    // The command name (2nd field) may hold spaces: fields are counted after its closing parenthesis.
    const fields = text.slice(text.lastIndexOf(')') + 2).split(' ');
    // utime and stime are the 14th and 15th fields, the 12th and 13th after the name.
    return Number(fields[11]) + Number(fields[12]);
  };
  try {
    // USER_HZ is 100 on every Linux Node supports.
    const msPerTick = 10;
    return {
      totalMs: ticks(readFileSync(`/proc/${pid}/stat`, 'utf8')) * msPerTick,
      mainMs: ticks(readFileSync(`/proc/${pid}/task/${pid}/stat`, 'utf8')) * msPerTick,
    };
  } catch {
    return null;
  }
}

/** Peak and current resident memory from the text of /proc/<pid>/status, in MB. */
export function memoryFromStatus(text: string): { vmHwmMb: number; vmRssMb: number } {
  const kb = (field: string) => Number(new RegExp(`^${field}:\\s+(\\d+) kB`, 'm').exec(text)?.[1] ?? NaN);
  return { vmHwmMb: round(kb('VmHWM') / 1024, 1), vmRssMb: round(kb('VmRSS') / 1024, 1) };
}

/** The parts of a V8 .cpuprofile the summary reads. */
export interface CpuProfile {
  nodes: {
    id: number;
    callFrame: { functionName: string; url: string; lineNumber: number };
    hitCount?: number;
    children?: number[];
  }[];
  startTime: number;
  endTime: number;
  /** The node sampled at each tick, and the microseconds since the previous tick (absent in tests). */
  samples?: number[];
  timeDeltas?: number[];
}

/** Where code lives, short: `pkg:<name>` for a dependency, `src/…` for ours, `node:` internals. */
export function placeOf(url: string): string {
  if (url === '') return '(native)';
  const pkg = /node_modules\/((?:@[^/]+\/)?[^/]+)/.exec(url);
  if (pkg) return `pkg:${pkg[1]}`;
  const own = /\/((?:dist\/)?src\/.*)$/.exec(url);
  if (own) return own[1]!.replace(/^dist\//, '');
  return url.startsWith('node:') ? url : url.split('/').slice(-2).join('/');
}

const frameName = ({ functionName, url, lineNumber }: CpuProfile['nodes'][number]['callFrame']) =>
  `${functionName || '(anonymous)'} ${placeOf(url)}${url ? `:${lineNumber + 1}` : ''}`;

/**
 * Self time by function and by place (package or source file), and inclusive time (the function and
 * what it calls, a recursive function counted once per sample) of the service's own functions, as
 * shares of all samples, largest first.
 */
export function summariseProfile(profile: CpuProfile, top = 15) {
  const total = profile.nodes.reduce((sum, n) => sum + (n.hitCount ?? 0), 0);
  const byFunction = new Map<string, number>();
  const byPlace = new Map<string, number>();
  const parentOf = new Map<number, number>();
  for (const node of profile.nodes) for (const child of node.children ?? []) parentOf.set(child, node.id);
  const byId = new Map(profile.nodes.map((n) => [n.id, n]));
  const inclusive = new Map<string, number>();
  for (const node of profile.nodes) {
    const hits = node.hitCount ?? 0;
    if (hits === 0) continue;
    const place = placeOf(node.callFrame.url);
    const name = frameName(node.callFrame);
    byFunction.set(name, (byFunction.get(name) ?? 0) + hits);
    byPlace.set(place, (byPlace.get(place) ?? 0) + hits);
    const onStack = new Set<string>();
    for (let id: number | undefined = node.id; id !== undefined; id = parentOf.get(id)) {
      const frame = byId.get(id)!.callFrame;
      if (placeOf(frame.url).startsWith('src/')) onStack.add(frameName(frame));
    }
    for (const own of onStack) inclusive.set(own, (inclusive.get(own) ?? 0) + hits);
  }
  const ranked = (map: Map<string, number>) =>
    [...map.entries()]
      .sort((a, b) => b[1] - a[1])
      .slice(0, top)
      .map(([name, hits]) => ({ name, selfPercent: round((100 * hits) / total, 1) }));
  return {
    samples: total,
    functions: ranked(byFunction),
    places: ranked(byPlace),
    ownInclusive: ranked(inclusive).map(({ name, selfPercent }) => ({ name, inclusivePercent: selfPercent })),
  };
}

/**
 * The service's steady state: CPU microseconds per call by function, self and inclusive (any frame, a
 * recursive function counted once per sample), counting only the samples from the first one inside
 * `firstCall` (start-up, which a short profile is mostly made of, left out) and none of the idle ones.
 */
export function steadyStateProfile(profile: CpuProfile, calls: number, top = 25, firstCall = 'runHook') {
  const samples = profile.samples ?? [];
  const deltas = profile.timeDeltas ?? [];
  const byId = new Map(profile.nodes.map((n) => [n.id, n]));
  const parentOf = new Map<number, number>();
  for (const node of profile.nodes) for (const child of node.children ?? []) parentOf.set(child, node.id);
  const stackOf = new Map<number, string[]>();
  const stack = (id: number) => {
    let names = stackOf.get(id);
    if (!names) {
      names = [];
      for (let at: number | undefined = id; at !== undefined; at = parentOf.get(at)) {
        names.push(frameName(byId.get(at)!.callFrame));
      }
      stackOf.set(id, names);
    }
    return names;
  };
  const first = samples.findIndex((id) => stack(id).some((name) => name.startsWith(`${firstCall} `)));
  const self = new Map<string, number>();
  const inclusive = new Map<string, number>();
  let busy = 0;
  for (let i = Math.max(first, 0); first >= 0 && i < samples.length; i += 1) {
    const node = byId.get(samples[i]!)!;
    if (node.callFrame.functionName === '(idle)') continue;
    // A sample stands for the time until the next one.
    const us = deltas[i + 1] ?? deltas[i] ?? 0;
    busy += us;
    const name = frameName(node.callFrame);
    self.set(name, (self.get(name) ?? 0) + us);
    for (const own of new Set(stack(samples[i]!))) inclusive.set(own, (inclusive.get(own) ?? 0) + us);
  }
  const ranked = (map: Map<string, number>) =>
    [...map.entries()]
      .sort((a, b) => b[1] - a[1])
      .slice(0, top)
      .map(([name, us]) => ({ name, usPerCall: round(us / calls, 1) }));
  return { calls, busyUsPerCall: round(busy / calls, 1), self: ranked(self), inclusive: ranked(inclusive) };
}

/**
 * The records the benchmarks send: 40 generated patients (knee OA and skin lesions in turn, seed 7) as of
 * `today`, and every Synthea bundle of `syntheaDir` when it exists (none otherwise), in server form.
 */
export function benchRecords(today: Date, syntheaDir: string): { generated: Bundle[]; synthea: Bundle[] } {
  const generated = Array.from({ length: 40 }, (_, i) =>
    toServerForm(
      generatePatient(
        createRng(7, i),
        i % 2 === 0
          ? { now: today, kneeOa: true, age: 55 + (i % 25) }
          : { now: today, kneeOa: false, lesions: 1 + (i % 3), skinAssessment: true },
      ),
    ),
  );
  const synthea = existsSync(syntheaDir)
    ? readdirSync(syntheaDir)
        .filter((f) => f.endsWith('.json'))
        .sort()
        .map((f) => toServerForm(JSON.parse(readFileSync(join(syntheaDir, f), 'utf8')) as Bundle))
    : [];
  return { generated, synthea };
}

/** What tools/bench/tail-probe.ts writes. */
export interface TailProbe {
  pauses: [number, string, number][];
  loopDelayMs: { p50: number; p99: number; max: number };
}

/**
 * The garbage-collection pauses of a run, by kind: how many, their total and share of the run, the
 * median and longest, and how many lasted 10 ms or more (each of those holds every call in flight).
 */
export function tailSummary(probe: TailProbe, runMs: number) {
  const kinds = new Map<string, number[]>();
  for (const [, kind, ms] of probe.pauses) kinds.set(kind, [...(kinds.get(kind) ?? []), ms]);
  const r = (x: number) => Math.round(x * 10) / 10;
  const gc = [...kinds].map(([kind, durations]) => {
    const total = durations.reduce((a, b) => a + b, 0);
    return {
      kind,
      count: durations.length,
      totalMs: r(total),
      shareOfRun: Math.round((total / runMs) * 1000) / 1000,
      p50Ms: r(quantile(durations, 0.5)),
      maxMs: r(Math.max(...durations)),
      atLeast10Ms: durations.filter((d) => d >= 10).length,
    };
  });
  gc.sort((a, b) => b.totalMs - a.totalMs);
  return { runMs: Math.round(runMs), gc, loopDelayMs: probe.loopDelayMs };
}
