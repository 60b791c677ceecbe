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
import type { Bundle, FhirResource } from 'fhir/r4.js';

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
  | 'too-many-pages';

export type FetchResult =
  | { ok: true; value: FhirResource | null; pages: number; bytes: number }
  | { ok: false; code: FetchFailureCode; reason: string };

export interface FhirFetchOptions {
  fetch: typeof globalThis.fetch;
  timeoutMs: number;
  maxBytes: number;
  maxPages: number;
  allowHttp: boolean;
}

export type FhirFetch = (
  fhirServer: string,
  query: string,
  resultType: string,
  accessToken: string | undefined,
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

/** Builds the fetcher with its bounds; `fetch` is injected so tests and the benchmark control the network. */
export function createFhirFetch(options: FhirFetchOptions): FhirFetch {
  return async (fhirServer, query, resultType, accessToken) => {
    const signal = AbortSignal.timeout(options.timeoutMs);
    try {
      const base = checkFhirServer(fhirServer, options.allowHttp);
      const baseText = base.href.replace(/\/$/, '');
      const budget = { bytes: options.maxBytes };
      const first = await getJson(options.fetch, `${baseText}/${query}`, accessToken, signal, budget);
      if (first === null) {
        if (resultType === 'Bundle')
          throw new FetchFailure('http-error', 'the FHIR server answered 404 to a search');
        return { ok: true, value: null, pages: 1, bytes: options.maxBytes - budget.bytes };
      }
      checkResource(first, resultType);
      let pages = 1;
      if (first.resourceType === 'Bundle') {
        let next = nextLink(first);
        while (next && pages < options.maxPages) {
          if (!next.startsWith(`${baseText}/`)) {
            throw new FetchFailure('foreign-next-link', 'a next link points outside fhirServer');
          }
          const page = await getJson(options.fetch, next, accessToken, signal, budget);
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
      return { ok: true, value: first, pages, bytes: options.maxBytes - budget.bytes };
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
    throw new FetchFailure(
      'wrong-type',
      `expected ${article(resultType)}, got ${article(resource.resourceType)}`,
    );
  }
}

/** GETs one URL; `null` for 404/410 (a read of a resource that does not exist). */
async function getJson(
  fetchFn: typeof globalThis.fetch,
  url: string,
  accessToken: string | undefined,
  signal: AbortSignal,
  budget: { bytes: number },
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
    throw new FetchFailure('unauthorized', `the FHIR server refused the access token (${response.status})`);
  }
  if (!response.ok) {
    await response.body?.cancel();
    throw new FetchFailure('http-error', `the FHIR server answered ${response.status}`);
  }
  const text = await readCapped(response, budget);
  let parsed: unknown;
  try {
    parsed = JSON.parse(text);
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

async function readCapped(response: Response, budget: { bytes: number }): Promise<string> {
  const tooLarge = () => new FetchFailure('too-large', 'the FHIR server answer exceeds the size limit');
  const declared = Number(response.headers.get('content-length'));
  if (Number.isFinite(declared) && declared > budget.bytes) {
    await response.body?.cancel();
    throw tooLarge();
  }
  if (!response.body) return '';
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
  return Buffer.concat(chunks).toString('utf8');
}
