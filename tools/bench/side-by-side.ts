/**
 * The side-by-side part of `npm run bench`: the same patients sent to this service, to the bare Fastify
 * server and, when one is installed beside it, to a CQL-based CDS Hooks service (e.g. CQL Services), at
 * one connection and at sixteen, on two sets of bodies (today's, and 40–60 KB patient records). Nothing of
 * the CQL service is part of this repository: it is named by `CDS_BENCH_CQL_URL` (BENCHMARKS.md says how
 * to install and start one); without it, its rows are skipped with a line that says so.
 */
import autocannon from 'autocannon';
import { median, planCursor, type PlannedRequest, processCpuMs, round } from './helpers.js';

/** A server under load: where it listens, the path to call (by the body's path) and how it is driven. */
export interface Target {
  name: string;
  /** `http://host:port` */
  origin: string;
  /** The path to POST a body planned for `path` to (the CQL service has its own service ids). */
  pathFor?: (path: string) => string;
  /**
   * `fresh`: each request needs its own token (this service refuses a replayed `jti`): runs send a
   * planned amount. `reuse`: tokens are not checked (bare, the CQL service): runs last a duration.
   */
  tokens: 'fresh' | 'reuse';
  /**
   * The server's process id, when it runs on this machine: its CPU time per call is then measured (all
   * threads, and the main thread alone), which the load on the machine moves much less than the rate.
   */
  pid?: number;
}

/** The CQL service of the comparison, from the environment, or why there is none. */
export type CqlTarget = { ok: true; target: Target } | { ok: false; reason: string };

/**
 * `CDS_BENCH_CQL_URL`: the URL of one CDS service of a CQL-based CDS Hooks server (e.g.
 * `http://127.0.0.1:3000/cds-services/knee-oa-cql`); every body is POSTed to that path.
 */
export function cqlTarget(env: Record<string, string | undefined>): CqlTarget {
  const raw = env.CDS_BENCH_CQL_URL?.trim();
  if (!raw)
    return {
      ok: false,
      reason:
        'CDS_BENCH_CQL_URL is not set: no CQL-based CDS Hooks service compared (BENCHMARKS.md, "Side by side with a CQL service")',
    };
  let url: URL;
  try {
    url = new URL(raw);
  } catch {
    return { ok: false, reason: `CDS_BENCH_CQL_URL is not a URL: ${raw.slice(0, 80)}` };
  }
  if (url.protocol !== 'http:' || url.pathname === '/')
    return {
      ok: false,
      reason:
        'CDS_BENCH_CQL_URL must be the http URL of one CDS service (http://host:port/cds-services/<id>)',
    };
  const path = url.pathname + url.search;
  return {
    ok: true,
    target: { name: 'CQL service', origin: url.origin, pathFor: () => path, tokens: 'reuse' },
  };
}

/** Whether the CQL service answers a hook call now (it may be configured but not started). */
export async function reachable(target: Target, sample: PlannedRequest): Promise<string | null> {
  try {
    const res = await fetch(`${target.origin}${target.pathFor?.(sample.path) ?? sample.path}`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', authorization: `Bearer ${sample.token}` },
      body: sample.body,
      signal: AbortSignal.timeout(10_000),
    });
    await res.arrayBuffer();
    return res.ok ? null : `it answered ${res.status} to a hook call`;
  } catch (error) {
    return `it could not be reached (${(error as Error).message})`;
  }
}

export interface Drive {
  reqPerSec: number;
  p50: number;
  p99: number;
  requests: number;
  /** CPU ms the server used per answered call (all threads; the main thread), when its pid is known. */
  cpu?: { perCallMs: number; mainPerCallMs: number };
}

/**
 * One load run against `target`: `amount` requests of `plan` (fresh tokens), or `seconds` cycling over
 * it (reused tokens). The rate is timed to the last answer, not by autocannon's whole seconds.
 * @throws Error when any answer is not 2xx (a benchmark of refusals would mean nothing)
 */
export async function drive(
  target: Target,
  plan: readonly PlannedRequest[],
  connections: number,
  size: { amount: number } | { seconds: number },
): Promise<Drive> {
  const mapped = target.pathFor
    ? plan.map((p) => ({ ...p, path: target.pathFor!(p.path) }))
    : (plan as PlannedRequest[]);
  const cursor = planCursor(mapped, 'seconds' in size);
  const cpuBefore = target.pid === undefined ? null : processCpuMs(target.pid);
  const start = performance.now();
  let last = start;
  const result = await autocannon({
    url: target.origin,
    connections,
    ...('amount' in size ? { amount: size.amount } : { duration: size.seconds }),
    timeout: 30,
    requests: [
      {
        setupRequest: cursor.setupRequest as never,
        onResponse: () => {
          last = performance.now();
        },
      },
    ],
  });
  const failures = result.non2xx + result.errors + result.timeouts;
  if (failures > 0 || cursor.exhausted() > 0)
    throw new Error(
      `${target.name}: ${result.non2xx} non-2xx, ${result.errors} errors, ${result.timeouts} timeouts, ` +
        `${cursor.exhausted()} requests past the token pool`,
    );
  const ok = result['2xx'];
  const cpuAfter = target.pid === undefined ? null : processCpuMs(target.pid);
  return {
    reqPerSec: round(ok / ((last - start) / 1000), 1),
    p50: result.latency.p50,
    p99: result.latency.p99,
    requests: ok,
    ...(cpuBefore && cpuAfter && ok > 0
      ? {
          cpu: {
            perCallMs: round((cpuAfter.totalMs - cpuBefore.totalMs) / ok, 2),
            mainPerCallMs: round((cpuAfter.mainMs - cpuBefore.mainMs) / ok, 2),
          },
        }
      : {}),
  };
}

export interface SideBySideRow {
  bodies: string;
  connections: number;
  server: string;
  reqPerSec: number;
  p50: number;
  p99: number;
  /** Throughput over the bare server's in the same round (medians of the rounds' ratios). */
  ratioToBare: number;
  /** CPU ms per call of the server (medians of the rounds), when it was measured: all threads, main thread. */
  cpuMsPerCall?: number;
  mainCpuMsPerCall?: number;
}

export interface SideBySideOptions {
  targets: readonly Target[];
  /** The name of the baseline among the targets (the bare server). */
  baseline: string;
  workloads: readonly { name: string; plan: (amount: number) => Promise<PlannedRequest[]> }[];
  connections: readonly number[];
  rounds: number;
  seconds: number;
  log: (message: string) => void;
}

/**
 * Interleaved rounds: per workload and connection count, each target in turn for about `seconds`;
 * the ratio to the baseline is taken within each round, and the medians are reported.
 */
export async function sideBySide(options: SideBySideOptions): Promise<SideBySideRow[]> {
  const rows: SideBySideRow[] = [];
  for (const workload of options.workloads) {
    const reusable = await workload.plan(512);
    for (const connections of options.connections) {
      const rate = new Map<string, number>();
      // Warm-up: a short run each, which also gives the amount of a fresh-token run.
      for (const target of options.targets) {
        const warm = await drive(target, await freshOrReused(target, workload, reusable, 200), connections, {
          amount: 200,
        });
        rate.set(target.name, warm.reqPerSec);
      }
      const perRound = new Map<string, { load: Drive; ratio: number }[]>();
      for (let r = 0; r < options.rounds; r += 1) {
        const loads = new Map<string, Drive>();
        for (const target of options.targets) {
          const amount = Math.max(100, Math.round(rate.get(target.name)! * options.seconds));
          const load =
            target.tokens === 'fresh'
              ? await drive(target, await workload.plan(amount + 4 * connections), connections, { amount })
              : await drive(target, reusable, connections, { seconds: options.seconds });
          rate.set(target.name, load.reqPerSec);
          loads.set(target.name, load);
        }
        const bare = loads.get(options.baseline)!.reqPerSec;
        for (const [name, load] of loads) {
          const list = perRound.get(name) ?? [];
          list.push({ load, ratio: round(load.reqPerSec / bare, 3) });
          perRound.set(name, list);
        }
        options.log(
          `${workload.name} c=${connections} round ${r + 1}: ` +
            [...loads]
              .map(
                ([name, l]) =>
                  `${name} ${l.reqPerSec}/s` +
                  (l.cpu ? ` (${l.cpu.perCallMs} CPU ms/call, main thread ${l.cpu.mainPerCallMs})` : ''),
              )
              .join(', '),
        );
      }
      for (const target of options.targets) {
        const list = perRound.get(target.name)!;
        const cpu = list.flatMap((x) => (x.load.cpu ? [x.load.cpu] : []));
        rows.push({
          bodies: workload.name,
          connections,
          server: target.name,
          reqPerSec: median(list.map((x) => x.load.reqPerSec)),
          p50: median(list.map((x) => x.load.p50)),
          p99: median(list.map((x) => x.load.p99)),
          ratioToBare: median(list.map((x) => x.ratio)),
          ...(cpu.length > 0
            ? {
                cpuMsPerCall: median(cpu.map((c) => c.perCallMs)),
                mainCpuMsPerCall: median(cpu.map((c) => c.mainPerCallMs)),
              }
            : {}),
        });
      }
    }
  }
  return rows;
}

async function freshOrReused(
  target: Target,
  workload: SideBySideOptions['workloads'][number],
  reusable: readonly PlannedRequest[],
  amount: number,
): Promise<readonly PlannedRequest[]> {
  return target.tokens === 'fresh' ? workload.plan(amount + 64) : reusable;
}

/**
 * The Markdown rows of the side-by-side table (also used by the report); with the CPU columns when some
 * server's CPU time was measured (`–` for the others).
 */
export function sideBySideTable(rows: readonly SideBySideRow[], skipped: string | null): string[] {
  const line = (cells: (string | number)[]) => `| ${cells.join(' | ')} |`;
  const cpu = rows.some((r) => r.cpuMsPerCall !== undefined);
  return [
    line([
      'bodies',
      'connections',
      'server',
      'req/s',
      'p50 ms',
      'p99 ms',
      'ratio to bare',
      ...(cpu ? ['CPU ms/call', 'main thread ms/call'] : []),
    ]),
    line(['---', '---:', '---', '---:', '---:', '---:', '---:', ...(cpu ? ['---:', '---:'] : [])]),
    ...rows.map((r) =>
      line([
        r.bodies,
        r.connections,
        r.server,
        r.reqPerSec,
        r.p50,
        r.p99,
        r.ratioToBare,
        ...(cpu ? [r.cpuMsPerCall ?? '–', r.mainCpuMsPerCall ?? '–'] : []),
      ]),
    ),
    ...(skipped ? ['', `CQL-based service: skipped (${skipped}).`] : []),
  ];
}
