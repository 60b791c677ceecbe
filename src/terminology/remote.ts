/**
 * Optional FHIR terminology server (`CDS_TERMINOLOGY_URL`): the value sets are expanded by the server
 * (`GET <base>/ValueSet/$expand?url=<canonical>`), and each expansion is kept for a TTL. The bundled
 * expansions stay the offline default: a value set the server has not expanded (unreachable, timed out,
 * an error, an expansion older than its TTL) is matched with the bundled one, and each such fallback is
 * logged as a warning and counted (`/metrics`: cds_terminology_fallbacks).
 *
 * Membership is checked during rule evaluation, which is synchronous: the server is never called while
 * the rules run. Expansions are fetched at start-up (`refresh()`, bounded by the timeout) and, once
 * expired, again in the background on the first lookup after expiry; until then the bundled expansion
 * answers. Only value-set URLs go to the server for an expansion.
 *
 * Value sets the server will not expand: real servers refuse to expand large intensional value sets
 * (SNOMED CT descendants, whole RxNorm classes) with an OperationOutcome whose issue is `too-costly` (FHIR
 * R4 issue-type; some say "too costly" / "too large" in the diagnostics of another issue code), or return
 * an expansion marked incomplete (the `valueset-toocostly` extension, or `total` beyond the codes given).
 * Such a value set goes to **validate mode**: before the rules of a call run, `check()` asks
 * `POST <base>/ValueSet/$validate-code` (Parameters `url`, `system`, `code`: nothing else, never a patient
 * identifier) about the call's codings that are not cached yet, in parallel, and waits for them at most
 * `validateTimeoutMs` for the whole call. Answers (true and false alike) are cached for the TTL; an
 * answer arriving after that deadline still fills the cache for the next calls. A code the server did
 * not answer in time is matched with the bundled expansion: counted as a fallback, and reported by
 * `check()` so the caller logs it (value-set URL and reason only). `$expand` is tried again once per TTL.
 */
import type { ValueSets } from '../services/value-sets.js';

export interface RemoteTerminologyOptions {
  /** Base URL of the FHIR terminology server (no trailing slash needed). */
  baseUrl: string;
  /** Each request is abandoned after this long. */
  timeoutMs: number;
  /** How long an expansion, or a `$validate-code` answer, is used before it is asked again. */
  ttlMs: number;
  /** How long `check()` waits, at most, for the `$validate-code` answers of one call (default 300 ms). */
  validateTimeoutMs?: number;
  fetch?: typeof fetch;
  /** Warnings: value-set URL and reason only. */
  warn: (entry: { valueSet: string; reason: string }, message: string) => void;
  /** A value set entering validate mode: value-set URL and reason only. */
  info?: (entry: { valueSet: string; reason: string }, message: string) => void;
  now?: () => number;
}

export interface TerminologyStats {
  /** Expansions received from the server since start. */
  expansions: number;
  /** Requests that failed (unreachable, timeout, HTTP error, not an expansion or result) since start. */
  failures: number;
  /** Lookups answered with the bundled expansion although a server is configured, since start. */
  fallbacks: number;
  /** `$validate-code` answers received since start. */
  validations: number;
  /** Value sets the server will not expand, checked code by code with `$validate-code` (now). */
  validating: number;
}

/** A value set `check()` could not fully ask the server about, for the caller's warning. */
export interface UncheckedCodes {
  /** Canonical URL of the value set. */
  valueSet: string;
  /** How many distinct codes the bundled expansion answers instead, and why (no code, no patient data). */
  reason: string;
}

export interface RemoteTerminology {
  /** The value sets, answering from the server's expansions when fresh, else from the bundled ones. */
  wrap(bundled: ValueSets): ValueSets;
  /** Fetches every value set's expansion now (each bounded by the timeout); never throws. */
  refresh(): Promise<void>;
  /**
   * Whether any of these value sets (ids or canonical URLs) is in validate mode: only then has `check()`
   * anything to do.
   */
  validating(valueSets: readonly string[]): boolean;
  /**
   * Asks `$validate-code` about the codings found in `data` (any object with a string `system` and
   * `code`, at any depth) for those of the value sets that are in validate mode, keeping to the code
   * systems each value set includes and to the codes not cached; waits at most `validateTimeoutMs`.
   * Never throws.
   * @returns the value sets whose codes the bundled expansion answers, at least in part, and why
   */
  check(valueSets: readonly string[], data: unknown): Promise<UncheckedCodes[]>;
  stats(): TerminologyStats;
  /**
   * The value sets each service names, worked out once per service (src/terminology/stage.ts): kept
   * here, with the server it is used for, rather than at module level.
   */
  readonly namedByService: WeakMap<object, readonly string[]>;
}

interface Expansion {
  codes: ReadonlySet<string>;
  expires: number;
}

/** The pause before asking the server again for a value set it failed to expand or validate. */
const RETRY_MS = 60_000;
/** Default deadline of the `$validate-code` requests of one call. */
export const VALIDATE_TIMEOUT_MS = 300;
/** Codes asked about in one call, at most (the rest: bundled expansion, reported). */
export const MAX_CODES_PER_CALL = 100;
/** `$validate-code` answers kept, at most (the oldest go first). */
const MAX_ANSWERS = 100_000;
const TOO_COSTLY_EXTENSION = 'http://hl7.org/fhir/StructureDefinition/valueset-toocostly';

const key = (system: string, code: string) => `${system}|${code}`;

/** The terminology server answering for these value sets, when one is configured. */
export function remoteOf(valueSets: ValueSets): RemoteTerminology | undefined {
  return valueSets.remote;
}

/** The codes of a ValueSet expansion (`expansion.contains`, nested `contains` included). */
function expansionOf(body: unknown): { codes: Set<string>; complete: boolean } | undefined {
  const valueSet = (body ?? {}) as {
    resourceType?: unknown;
    expansion?: { contains?: unknown; total?: unknown; extension?: unknown; offset?: unknown };
  };
  if (valueSet.resourceType !== 'ValueSet' || typeof valueSet.expansion !== 'object') return undefined;
  const codes = new Set<string>();
  let items = 0;
  const walk = (list: unknown): void => {
    if (!Array.isArray(list)) return;
    for (const item of list as { system?: unknown; code?: unknown; contains?: unknown }[]) {
      items += 1;
      if (typeof item.system === 'string' && typeof item.code === 'string')
        codes.add(key(item.system, item.code));
      walk(item.contains);
    }
  };
  const { expansion } = valueSet;
  walk(expansion.contains);
  // An expansion the server cut short (marked too costly, or fewer codes than its total, or a page
  // after the first) is not the value set: its missing codes would silently be non-members.
  const truncated =
    (Array.isArray(expansion.extension) &&
      (expansion.extension as { url?: unknown; valueBoolean?: unknown }[]).some(
        (e) => e.url === TOO_COSTLY_EXTENSION && e.valueBoolean === true,
      )) ||
    (typeof expansion.total === 'number' && expansion.total > items) ||
    (typeof expansion.offset === 'number' && expansion.offset > 0);
  return { codes, complete: !truncated };
}

/**
 * Whether an answer to `$expand` is the server refusing to expand because the value set is too large:
 * an OperationOutcome issue `too-costly`, or another issue saying so in its text (servers differ).
 */
function tooCostly(body: unknown): boolean {
  const outcome = (body ?? {}) as { resourceType?: unknown; issue?: unknown };
  if (outcome.resourceType !== 'OperationOutcome' || !Array.isArray(outcome.issue)) return false;
  return (outcome.issue as { code?: unknown; diagnostics?: unknown; details?: { text?: unknown } }[]).some(
    (issue) =>
      issue.code === 'too-costly' ||
      /too[\s-]?(costly|large|many)|exceeds? the (maximum|limit)/i.test(
        `${String(issue.diagnostics ?? '')} ${String(issue.details?.text ?? '')}`,
      ),
  );
}

/** The `result` of a `$validate-code` answer (a Parameters resource), if it is one. */
function resultOf(body: unknown): boolean | undefined {
  const parameters = (body ?? {}) as { resourceType?: unknown; parameter?: unknown };
  if (parameters.resourceType !== 'Parameters' || !Array.isArray(parameters.parameter)) return undefined;
  const result = (parameters.parameter as { name?: unknown; valueBoolean?: unknown }[]).find(
    (p) => p.name === 'result',
  );
  return typeof result?.valueBoolean === 'boolean' ? result.valueBoolean : undefined;
}

/** Every distinct `system|code` of the objects of `data` that have both as strings (Codings). */
function codingsIn(data: unknown): Map<string, { system: string; code: string }> {
  const found = new Map<string, { system: string; code: string }>();
  const stack: unknown[] = [data];
  while (stack.length > 0) {
    const value = stack.pop();
    if (typeof value !== 'object' || value === null) continue;
    if (Array.isArray(value)) {
      for (const item of value) if (typeof item === 'object' && item !== null) stack.push(item);
      continue;
    }
    const { system, code } = value as { system?: unknown; code?: unknown };
    if (typeof system === 'string' && typeof code === 'string')
      found.set(key(system, code), { system, code });
    for (const child of Object.values(value)) {
      if (typeof child === 'object' && child !== null) stack.push(child);
    }
  }
  return found;
}

export function createRemoteTerminology(options: RemoteTerminologyOptions): RemoteTerminology {
  const base = options.baseUrl.replace(/\/+$/, '');
  const doFetch = options.fetch ?? fetch;
  const now = options.now ?? Date.now;
  const validateTimeoutMs = options.validateTimeoutMs ?? VALIDATE_TIMEOUT_MS;
  const expansions = new Map<string, Expansion>();
  const inFlight = new Map<string, Promise<void>>();
  const stats = { expansions: 0, failures: 0, fallbacks: 0, validations: 0 };
  /** Canonical URL by id or URL, for every value set wrapped. */
  const urls = new Map<string, string>();
  /** The code systems each value set (canonical URL) includes, from its bundled definition. */
  const systems = new Map<string, ReadonlySet<string>>();
  /** After a failure, the server is not asked again for that value set before this time (no storm). */
  const retryAt = new Map<string, number>();
  /** Value sets in validate mode (canonical URL), with the time `$expand` is tried again. */
  const validating = new Map<string, number>();
  /** `$validate-code` answers by `<value set>\n<system>|<code>`, kept for the TTL. */
  const answers = new Map<string, { member: boolean; expires: number }>();
  /** `$validate-code` requests running, by the same key: resolve to null (answered) or a failure reason. */
  const validations = new Map<string, Promise<string | null>>();
  /** After a `$validate-code` failure, that value set's codes are not asked about before this time. */
  const validateRetryAt = new Map<string, number>();

  const fail = (url: string, reason: string) => {
    stats.failures += 1;
    retryAt.set(url, now() + Math.min(options.ttlMs, RETRY_MS));
    options.warn(
      { valueSet: url, reason },
      validating.has(url)
        ? 'terminology server could not expand this value set again: its codes are still checked with $validate-code'
        : 'terminology server unavailable for this value set: the bundled expansion is used',
    );
  };

  const validateMode = (url: string, reason: string) => {
    const entering = !validating.has(url);
    validating.set(url, now() + options.ttlMs);
    expansions.delete(url);
    retryAt.delete(url);
    if (entering) {
      options.info?.(
        { valueSet: url, reason },
        'the terminology server does not expand this value set: its codes are checked with $validate-code',
      );
    }
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
        const body: unknown = await res.json().catch(() => undefined);
        if (tooCostly(body)) return validateMode(url, `$expand refused as too costly (HTTP ${res.status})`);
        if (!res.ok) return fail(url, `HTTP ${res.status}`);
        const expansion = expansionOf(body);
        if (!expansion) return fail(url, 'the answer is not a ValueSet expansion');
        if (!expansion.complete) return validateMode(url, 'the server sent an incomplete expansion');
        expansions.set(url, { codes: expansion.codes, expires: now() + options.ttlMs });
        validating.delete(url);
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

  /** The cached answer for a code, if fresh. */
  const answerOf = (url: string, system: string, code: string) => {
    const answer = answers.get(`${url}\n${key(system, code)}`);
    return answer !== undefined && answer.expires > now() ? answer.member : undefined;
  };

  /** One `$validate-code` request (one at a time per code): null once answered, else why not. */
  const validate = (url: string, system: string, code: string): Promise<string | null> => {
    const id = `${url}\n${key(system, code)}`;
    const running = validations.get(id);
    if (running) return running;
    const request = (async (): Promise<string | null> => {
      let reason: string;
      try {
        // POST: the codes stay out of URLs (and the access logs that keep them); only these three.
        const res = await doFetch(`${base}/ValueSet/$validate-code`, {
          method: 'POST',
          headers: { accept: 'application/fhir+json', 'content-type': 'application/fhir+json' },
          body: JSON.stringify({
            resourceType: 'Parameters',
            parameter: [
              { name: 'url', valueUri: url },
              { name: 'system', valueUri: system },
              { name: 'code', valueCode: code },
            ],
          }),
          signal: AbortSignal.timeout(options.timeoutMs),
        });
        const member = res.ok ? resultOf(await res.json().catch(() => undefined)) : undefined;
        if (member !== undefined) {
          if (answers.size >= MAX_ANSWERS) answers.delete(answers.keys().next().value!);
          answers.delete(id);
          answers.set(id, { member, expires: now() + options.ttlMs });
          stats.validations += 1;
          return null;
        }
        reason = res.ok ? 'the answer is not a $validate-code result' : `HTTP ${res.status}`;
      } catch (error) {
        const e = error as Error;
        reason = e.name === 'TimeoutError' ? `no answer within ${options.timeoutMs} ms` : e.message;
      } finally {
        validations.delete(id);
      }
      stats.failures += 1;
      validateRetryAt.set(url, now() + Math.min(options.ttlMs, RETRY_MS));
      return `$validate-code failed: ${reason}`;
    })();
    validations.set(id, request);
    return request;
  };

  /** In validate mode, `$expand` is tried again once per TTL (off the call's path). */
  const expandAgainIfDue = (url: string) => {
    if ((validating.get(url) ?? Infinity) <= now() && (retryAt.get(url) ?? 0) <= now()) void expand(url);
  };

  const canonical = (idsOrUrls: readonly string[]) =>
    [...new Set(idsOrUrls.map((k) => urls.get(k)))].filter(
      (url): url is string => url !== undefined && validating.has(url),
    );

  const remote: RemoteTerminology = {
    wrap(bundled) {
      for (const id of bundled.ids) {
        const matcher = bundled.get(id);
        if (matcher?.url) {
          urls.set(id, matcher.url);
          urls.set(matcher.url, matcher.url);
          systems.set(matcher.url, matcher.systems);
        }
      }
      const wrapped: ValueSets = Object.freeze({
        ids: bundled.ids,
        get: (idOrUrl: string) => bundled.get(idOrUrl),
        provenance: bundled.provenance,
        remote,
        contains(idOrUrl: string, system: string, code: string): boolean {
          const url = urls.get(idOrUrl);
          if (url === undefined) return bundled.contains(idOrUrl, system, code);
          if (validating.has(url)) {
            // Validate mode: the answers check() gathered before the rules ran.
            expandAgainIfDue(url);
            // Another system's code is not a member, by the value set's definition: nothing to ask.
            if (!systems.get(url)?.has(system)) return bundled.contains(idOrUrl, system, code);
            const member = answerOf(url, system, code);
            if (member !== undefined) return member;
            stats.fallbacks += 1;
            return bundled.contains(idOrUrl, system, code);
          }
          const expansion = expansions.get(url);
          if (expansion && expansion.expires > now()) return expansion.codes.has(key(system, code));
          // Expired or never fetched: the bundled expansion answers; the server is asked again, off
          // this call's path.
          stats.fallbacks += 1;
          if ((retryAt.get(url) ?? 0) <= now()) void expand(url);
          return bundled.contains(idOrUrl, system, code);
        },
      });
      return wrapped;
    },
    async refresh() {
      await Promise.all([...new Set(urls.values())].map((url) => expand(url)));
    },
    validating: (idsOrUrls) => canonical(idsOrUrls).length > 0,
    namedByService: new WeakMap(),
    async check(idsOrUrls, data) {
      const targets = canonical(idsOrUrls);
      if (targets.length === 0) return [];
      const codings = [...codingsIn(data).values()];
      const unchecked = new Map<string, { count: number; reason: string }>();
      const skip = (url: string, reason: string) => {
        const entry = unchecked.get(url);
        if (entry) entry.count += 1;
        else unchecked.set(url, { count: 1, reason });
      };
      const asked: { url: string; outcome: Promise<string | null>; settled?: string | null }[] = [];
      for (const url of targets) {
        expandAgainIfDue(url);
        const included = systems.get(url);
        const pausedUntil = validateRetryAt.get(url) ?? 0;
        for (const { system, code } of codings) {
          if (!included?.has(system) || answerOf(url, system, code) !== undefined) continue;
          if (pausedUntil > now()) {
            skip(url, 'the server failed to validate a code of this value set less than a minute ago');
          } else if (asked.length >= MAX_CODES_PER_CALL) {
            skip(url, `more than ${MAX_CODES_PER_CALL} codes to check in one call`);
          } else {
            const entry: (typeof asked)[number] = { url, outcome: validate(url, system, code) };
            void entry.outcome.then((reason) => (entry.settled = reason));
            asked.push(entry);
          }
        }
      }
      if (asked.length > 0) {
        let timer: NodeJS.Timeout | undefined;
        await Promise.race([
          Promise.all(asked.map((a) => a.outcome)),
          new Promise((resolve) => (timer = setTimeout(resolve, validateTimeoutMs))),
        ]);
        clearTimeout(timer);
        // Let the handlers above record the outcomes that settled at the deadline.
        await Promise.resolve();
        for (const entry of asked) {
          if (entry.settled === null) continue;
          skip(entry.url, entry.settled ?? `no answer within ${validateTimeoutMs} ms`);
        }
      }
      return [...unchecked].map(([valueSet, { count, reason }]) => ({
        valueSet,
        reason: `${count} code${count === 1 ? '' : 's'}: ${reason}`,
      }));
    },
    stats: () => ({ ...stats, validating: validating.size }),
  };
  return remote;
}
