/**
 * Optional FHIR terminology server (`CDS_TERMINOLOGY_URL`): the value sets are expanded by the server
 * (`GET <base>/ValueSet/$expand?url=<canonical>`), and each expansion is kept for a TTL. The bundled
 * expansions stay the offline default: a value set the server has not expanded (unreachable, timed out,
 * an error, an expansion older than its TTL) is matched with the bundled one, and each such fallback is
 * logged as a warning and counted (`/metrics`: cds_terminology_fallbacks).
 *
 * Membership is checked during rule evaluation, which is synchronous: the server is never called on a
 * hook call's path. Expansions are fetched at start-up (`refresh()`, bounded by the timeout) and, once
 * expired, again in the background on the first lookup after expiry; until then the bundled expansion
 * answers. Only value-set URLs go to the server, never patient data.
 */
import type { ValueSets } from '../services/value-sets.js';

export interface RemoteTerminologyOptions {
  /** Base URL of the FHIR terminology server (no trailing slash needed). */
  baseUrl: string;
  /** Each request is abandoned after this long. */
  timeoutMs: number;
  /** How long an expansion is used before it is fetched again. */
  ttlMs: number;
  fetch?: typeof fetch;
  /** Warnings: value-set URL and reason only. */
  warn: (entry: { valueSet: string; reason: string }, message: string) => void;
  now?: () => number;
}

export interface TerminologyStats {
  /** Expansions received from the server since start. */
  expansions: number;
  /** Requests that failed (unreachable, timeout, HTTP error, not an expansion) since start. */
  failures: number;
  /** Lookups answered with the bundled expansion although a server is configured, since start. */
  fallbacks: number;
}

export interface RemoteTerminology {
  /** The value sets, answering from the server's expansions when fresh, else from the bundled ones. */
  wrap(bundled: ValueSets): ValueSets;
  /** Fetches every value set's expansion now (each bounded by the timeout); never throws. */
  refresh(): Promise<void>;
  stats(): TerminologyStats;
}

interface Expansion {
  codes: ReadonlySet<string>;
  expires: number;
}

/** The pause before asking the server again for a value set it failed to expand. */
const RETRY_MS = 60_000;

const key = (system: string, code: string) => `${system}|${code}`;

/** The codes of a ValueSet expansion (`expansion.contains`, nested `contains` included). */
function codesOf(body: unknown): Set<string> | undefined {
  const expansion = (body as { resourceType?: unknown; expansion?: { contains?: unknown } } | null) ?? {};
  if (expansion.resourceType !== 'ValueSet' || typeof expansion.expansion !== 'object') return undefined;
  const codes = new Set<string>();
  const walk = (items: unknown): void => {
    if (!Array.isArray(items)) return;
    for (const item of items as { system?: unknown; code?: unknown; contains?: unknown }[]) {
      if (typeof item.system === 'string' && typeof item.code === 'string')
        codes.add(key(item.system, item.code));
      walk(item.contains);
    }
  };
  walk(expansion.expansion?.contains);
  return codes;
}

export function createRemoteTerminology(options: RemoteTerminologyOptions): RemoteTerminology {
  const base = options.baseUrl.replace(/\/+$/, '');
  const doFetch = options.fetch ?? fetch;
  const now = options.now ?? Date.now;
  const expansions = new Map<string, Expansion>();
  const inFlight = new Map<string, Promise<void>>();
  const stats: TerminologyStats = { expansions: 0, failures: 0, fallbacks: 0 };
  /** Canonical URL by id or URL, for every value set wrapped. */
  const urls = new Map<string, string>();
  /** After a failure, the server is not asked again for that value set before this time (no storm). */
  const retryAt = new Map<string, number>();

  const fail = (url: string, reason: string) => {
    stats.failures += 1;
    retryAt.set(url, now() + Math.min(options.ttlMs, RETRY_MS));
    options.warn(
      { valueSet: url, reason },
      'terminology server unavailable for this value set: the bundled expansion is used',
    );
  };

  const expand = (url: string): Promise<void> => {
    const running = inFlight.get(url);
    if (running) return running;
    const request = (async () => {
      try {
        const res = await doFetch(`${base}/ValueSet/$expand?url=${encodeURIComponent(url)}`, {
          headers: { accept: 'application/fhir+json' },
          signal: AbortSignal.timeout(options.timeoutMs),
        });
        if (!res.ok) return fail(url, `HTTP ${res.status}`);
        const codes = codesOf(await res.json());
        if (!codes) return fail(url, 'the answer is not a ValueSet expansion');
        expansions.set(url, { codes, expires: now() + options.ttlMs });
        retryAt.delete(url);
        stats.expansions += 1;
      } catch (error) {
        const e = error as Error;
        fail(url, e.name === 'TimeoutError' ? `no answer within ${options.timeoutMs} ms` : e.message);
      } finally {
        inFlight.delete(url);
      }
    })();
    inFlight.set(url, request);
    return request;
  };

  return {
    wrap(bundled) {
      for (const id of bundled.ids) {
        const url = bundled.get(id)?.url;
        if (url) {
          urls.set(id, url);
          urls.set(url, url);
        }
      }
      return Object.freeze({
        ids: bundled.ids,
        get: (idOrUrl: string) => bundled.get(idOrUrl),
        provenance: bundled.provenance,
        contains(idOrUrl: string, system: string, code: string): boolean {
          const url = urls.get(idOrUrl);
          if (url === undefined) return bundled.contains(idOrUrl, system, code);
          const expansion = expansions.get(url);
          if (expansion && expansion.expires > now()) return expansion.codes.has(key(system, code));
          // Expired or never fetched: the bundled expansion answers; the server is asked again, off
          // this call's path.
          stats.fallbacks += 1;
          if ((retryAt.get(url) ?? 0) <= now()) void expand(url);
          return bundled.contains(idOrUrl, system, code);
        },
      });
    },
    async refresh() {
      await Promise.all([...new Set(urls.values())].map((url) => expand(url)));
    },
    stats: () => ({ ...stats }),
  };
}
