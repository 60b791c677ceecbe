/**
 * Fallback fetch of a prefetch key from the request's `fhirServer` (CDS Hooks 2.0 §Prefetch: the
 * service fetches what the client did not send, with `fhirAuthorization.access_token` as a Bearer
 * token). The only FHIR network client in the service. Bounded: one deadline per key (all pages), a
 * byte cap on what is read, a page cap on searches, and `next` links followed only on the same server,
 * so the token never leaves for another host.
 *
 * Failures are returned as values with a short code, never thrown: the resolver applies the key's
 * policy. Reasons name no patient data (the URL holds the patient id), so they are safe to log.
 */
import { request as httpRequest, type IncomingMessage } from 'node:http';
import { request as httpsRequest } from 'node:https';
import { Readable } from 'node:stream';
import type { Bundle, FhirResource } from 'fhir/r4.js';
import {
  addressRules,
  checkedAddress,
  type EgressPolicy,
  pinnedLookup,
  type ResolvedAddress,
  type Resolver,
  serverAllowed,
  systemResolver,
} from './egress.js';

export type FetchFailureCode =
  | 'timeout'
  | 'too-large'
  | 'network'
  | 'unauthorized'
  | 'http-error'
  | 'not-json'
  | 'not-fhir'
  | 'outcome'
  | 'wrong-type'
  | 'insecure-server'
  | 'foreign-next-link'
  | 'too-many-pages'
  | 'egress-not-allowed'
  | 'egress-forbidden-address'
  | 'egress-unresolvable';

export type FetchResult =
  | {
      ok: true;
      value: FhirResource | null;
      pages: number;
      bytes: number;
      /** The body of each page read, as received (the audit hashes them: `audit/inputs.ts`). */
      raw?: Uint8Array[];
    }
  | { ok: false; code: FetchFailureCode; reason: string };

export interface FhirFetchOptions {
  /**
   * The transport, replacing the service's own (tests fake the network with it). Without it, requests
   * go through node:http(s) to the address the egress check accepted (no second DNS answer is used).
   */
  fetch?: typeof globalThis.fetch | undefined;
  /** Host name resolution for the egress check; the system resolver by default. */
  resolve?: Resolver | undefined;
  timeoutMs: number;
  maxBytes: number;
  maxPages: number;
  allowHttp: boolean;
}

/**
 * Fetches one prefetch key. `egress` is the caller's policy (`egress.ts`): the service always passes
 * one; without it (the fetcher's own unit tests) no allowlist or address check is made.
 */
export type FhirFetch = (
  fhirServer: string,
  query: string,
  resultType: string,
  accessToken: string | undefined,
  egress?: EgressPolicy,
) => Promise<FetchResult>;

const LOOPBACK = new Set(['127.0.0.1', '[::1]', 'localhost']);

class FetchFailure extends Error {
  readonly code: FetchFailureCode;
  constructor(code: FetchFailureCode, reason: string) {
    super(reason);
    this.code = code;
  }
}

/**
 * Checks `fhirServer` may receive the token: https, or http on loopback (or anywhere when allowed).
 * @returns the base URL without a trailing slash
 */
export function checkFhirServer(fhirServer: string, allowHttp: boolean): URL {
  let url: URL;
  try {
    url = new URL(fhirServer);
  } catch {
    throw new FetchFailure('insecure-server', 'fhirServer is not an absolute URL');
  }
  const secure =
    url.protocol === 'https:' || (url.protocol === 'http:' && (allowHttp || LOOPBACK.has(url.hostname)));
  if (!secure)
    throw new FetchFailure('insecure-server', 'fhirServer must use https (CDS Hooks 2.0 §Security)');
  return url;
}

/** GETs a URL: `fetch`-shaped, so the fake transports of the tests and the service's own are alike. */
type Get = (
  url: string,
  init: { headers: Record<string, string>; signal: AbortSignal; redirect?: 'error' },
) => Promise<Response>;

const EGRESS_REASONS = {
  'not-allowed': ['egress-not-allowed', "fhirServer is not one of this client's allowed FHIR servers"],
  'forbidden-address': [
    'egress-forbidden-address',
    'fhirServer resolves to an address this client may not reach',
  ],
  unresolvable: ['egress-unresolvable', 'the host name of fhirServer could not be resolved'],
} as const;

/** A GET to an address already checked: node:http(s) with a lookup that can only answer it. */
function pinnedGet(address: ResolvedAddress): Get {
  return (url, init) =>
    new Promise<Response>((resolve, reject) => {
      const target = new URL(url);
      const send = target.protocol === 'https:' ? httpsRequest : httpRequest;
      const req = send(target, {
        method: 'GET',
        headers: init.headers,
        signal: init.signal,
        lookup: pinnedLookup(address) as never,
        // One request per connection: a kept-alive socket would outlive the check it was made under.
        agent: false,
      });
      req.on('error', reject);
      req.on('response', (res: IncomingMessage) => {
        const headers = new Headers();
        for (const [name, value] of Object.entries(res.headers)) {
          if (value !== undefined) headers.set(name, Array.isArray(value) ? value.join(', ') : value);
        }
        const status = res.statusCode ?? 502;
        const empty = status === 204 || status === 205 || status === 304 || status < 200;
        if (empty) res.resume();
        const body = empty ? null : (Readable.toWeb(res) as ReadableStream<Uint8Array>);
        resolve(new Response(body, { status: status < 200 ? 502 : status, headers }));
      });
      req.end();
    });
}

/** Builds the fetcher with its bounds; `fetch` is injected so tests and the benchmark control the network. */
export function createFhirFetch(options: FhirFetchOptions): FhirFetch {
  const rules = addressRules();
  const resolver = options.resolve ?? systemResolver;
  /** The transport for one URL: checked against the policy, connected to the checked address. */
  const transport = async (url: string, egress: EgressPolicy | undefined): Promise<Get> => {
    if (!egress) return options.fetch ?? globalThis.fetch;
    const checked = await checkedAddress(new URL(url), egress, rules, resolver);
    if (!checked.ok) {
      const [code, reason] = EGRESS_REASONS[checked.refusal];
      throw new FetchFailure(code, reason);
    }
    return options.fetch ?? pinnedGet(checked.address);
  };
  return async (fhirServer, query, resultType, accessToken, egress) => {
    const signal = AbortSignal.timeout(options.timeoutMs);
    try {
      const base = checkFhirServer(fhirServer, options.allowHttp);
      // Refused before any lookup or connection: the token goes only where the configuration says.
      if (egress && !serverAllowed(egress, base)) {
        const [code, reason] = EGRESS_REASONS['not-allowed'];
        throw new FetchFailure(code, reason);
      }
      const baseText = base.href.replace(/\/$/, '');
      const budget = { bytes: options.maxBytes };
      const raw: Uint8Array[] = [];
      const get = async (url: string) =>
        getJson(await transport(url, egress), url, accessToken, signal, budget, raw);
      const first = await get(`${baseText}/${query}`);
      if (first === null) {
        if (resultType === 'Bundle')
          throw new FetchFailure('http-error', 'the FHIR server answered 404 to a search');
        return { ok: true, value: null, pages: 1, bytes: options.maxBytes - budget.bytes, raw };
      }
      checkResource(first, resultType);
      let pages = 1;
      if (first.resourceType === 'Bundle') {
        let next = nextLink(first);
        while (next && pages < options.maxPages) {
          if (!next.startsWith(`${baseText}/`)) {
            throw new FetchFailure('foreign-next-link', 'a next link points outside fhirServer');
          }
          const page = await get(next);
          if (page === null || page.resourceType !== 'Bundle')
            throw new FetchFailure('not-fhir', 'a result page is not a Bundle');
          first.entry = [...(first.entry ?? []), ...(page.entry ?? [])];
          pages += 1;
          next = nextLink(page);
        }
        // Rules must not run on a silently truncated search: more pages than allowed is a failure.
        if (next)
          throw new FetchFailure('too-many-pages', `the search has more than ${options.maxPages} pages`);
        // The merged Bundle holds every page; drop paging links that no longer describe it.
        first.link = (first.link ?? []).filter((l) => l.relation === 'self');
      }
      return { ok: true, value: first, pages, bytes: options.maxBytes - budget.bytes, raw };
    } catch (error) {
      if (error instanceof FetchFailure) return { ok: false, code: error.code, reason: error.message };
      if (signal.aborted)
        return { ok: false, code: 'timeout', reason: `no answer within ${options.timeoutMs} ms` };
      return { ok: false, code: 'network', reason: 'the FHIR server could not be reached' };
    }
  };
}

/** "a Patient", "an Observation". */
export function article(noun: string): string {
  return `${/^[AEIOU]/.test(noun) ? 'an' : 'a'} ${noun}`;
}

function nextLink(bundle: Bundle): string | undefined {
  return bundle.link?.find((l) => l.relation === 'next')?.url;
}

function checkResource(resource: FhirResource, resultType: string): void {
  if (resource.resourceType === 'OperationOutcome') {
    throw new FetchFailure('outcome', 'the FHIR server answered with an OperationOutcome');
  }
  if (resource.resourceType !== resultType) {
    // The type received is the remote answer's: not echoed to the client.
    throw new FetchFailure('wrong-type', `expected ${article(resultType)}, got another resource type`);
  }
}

/**
 * GETs one URL; `null` for 404/410 (a read of a resource that does not exist). The body read is
 * appended to `raw`, as received.
 */
async function getJson(
  fetchFn: Get,
  url: string,
  accessToken: string | undefined,
  signal: AbortSignal,
  budget: { bytes: number },
  raw: Uint8Array[],
): Promise<FhirResource | null> {
  const headers: Record<string, string> = { accept: 'application/fhir+json, application/json' };
  if (accessToken) headers.authorization = `Bearer ${accessToken}`;
  const response = await fetchFn(url, { headers, signal, redirect: 'error' });
  if (response.status === 404 || response.status === 410) {
    await response.body?.cancel();
    return null;
  }
  if (response.status === 401 || response.status === 403) {
    await response.body?.cancel();
    throw new FetchFailure('unauthorized', 'the FHIR server refused the access token');
  }
  if (!response.ok) {
    await response.body?.cancel();
    // The status stays out of the reason, which reaches the client: it would map what answers where.
    throw new FetchFailure('http-error', 'the FHIR server answered with an error status');
  }
  const bytes = await readCapped(response, budget);
  raw.push(bytes);
  let parsed: unknown;
  try {
    parsed = JSON.parse(bytes.toString('utf8'));
  } catch {
    throw new FetchFailure('not-json', 'the FHIR server answer is not JSON');
  }
  if (
    typeof parsed !== 'object' ||
    parsed === null ||
    typeof (parsed as FhirResource).resourceType !== 'string'
  ) {
    throw new FetchFailure('not-fhir', 'the FHIR server answer is not a FHIR resource');
  }
  return parsed as FhirResource;
}

async function readCapped(response: Response, budget: { bytes: number }): Promise<Buffer> {
  const tooLarge = () => new FetchFailure('too-large', 'the FHIR server answer exceeds the size limit');
  const declared = Number(response.headers.get('content-length'));
  if (Number.isFinite(declared) && declared > budget.bytes) {
    await response.body?.cancel();
    throw tooLarge();
  }
  if (!response.body) return Buffer.alloc(0);
  const chunks: Uint8Array[] = [];
  const reader = response.body.getReader();
  for (;;) {
    const { done, value } = await reader.read();
    if (done) break;
    budget.bytes -= value.byteLength;
    if (budget.bytes < 0) {
      await reader.cancel();
      throw tooLarge();
    }
    chunks.push(value);
  }
  return Buffer.concat(chunks);
}
