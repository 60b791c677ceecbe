/**
 * Prefetch resolution (CDS Hooks 2.0 §Prefetch). For each key the service declares:
 * - sent with a resource → used as is (after checking it is what the template returns);
 * - sent as `null` → the client ran the query and found nothing: known absent, not fetched again;
 * - sent as an OperationOutcome → the client failed to get it: a failure, not retried;
 * - not sent → fetched from `fhirServer` with the `fhirAuthorization` token (all keys in parallel).
 * A key that cannot be had follows its `onFailure` policy: `fail` answers 412 naming every such key;
 * `omit` goes on without it and the cards say which data was not available.
 *
 * Every value used, sent or fetched, is then checked against the structure FHIR R4 requires
 * (`structure.ts`): malformed data is never read as absent. The service's `malformedPrefetch` policy
 * decides: `reject` (the default) answers 400 naming the key and the path; `not-evaluable` goes on
 * with the key marked malformed, and the pipeline answers with a card saying the service could not
 * evaluate (no rule runs on such a call).
 */
import type { FhirResource } from 'fhir/r4.js';
import type { HookRequest } from '../cds-hooks.js';
import { CdsError } from '../errors.js';
import type { CompiledPrefetch } from '../services/load.js';
import { article, type FetchFailureCode, type FhirFetch } from './fhir-fetch.js';
import { checkResourceStructure } from './structure.js';
import { renderTemplate } from './template.js';
import type { Localized } from '../language.js';

export type PrefetchSource = 'prefetch' | 'fetched';

export interface UnavailableData {
  key: string;
  description: Localized;
  code: FailureCode;
  reason: string;
}

/** A key whose value is not well-formed FHIR R4, under the `not-evaluable` policy. */
export interface MalformedData {
  key: string;
  description: Localized;
  /** Where in the key's value, FHIRPath-like (`entry[0].resource.birthDate`); empty for the value itself. */
  path: string;
  /** What is wrong there (names JSON types and FHIR types, never the value). */
  problem: string;
  source: PrefetchSource;
}

/** What a service does with malformed data (definition `malformedPrefetch`). */
export type MalformedPolicy = 'reject' | 'not-evaluable';

export interface ResolvedPrefetch {
  /** Value per key: a resource, or `null` when known absent, omitted or malformed. */
  data: Record<string, FhirResource | null>;
  /** Keys whose data could not be had and whose policy is `omit`. */
  unavailable: UnavailableData[];
  /** Keys whose data is malformed (policy `not-evaluable`; `reject` throws instead). */
  malformed: MalformedData[];
  /** Where each available key came from. */
  sources: Record<string, PrefetchSource>;
  /**
   * The bodies of each fetched key's pages as received, in key order (for the audit's hash of the
   * inputs); a key whose fetcher did not give them (a fake of the tests) is listed with `pages: null`.
   */
  fetchedRaw: { key: string; pages: readonly Uint8Array[] | null }[];
}

export type FailureCode =
  FetchFailureCode | 'client-outcome' | 'no-fhir-server' | 'unresolved-token' | 'malformed';

type KeyResult =
  | { ok: true; value: FhirResource | null; source: PrefetchSource; raw?: readonly Uint8Array[] }
  | { ok: false; code: Exclude<FailureCode, 'malformed'>; reason: string }
  | { ok: false; code: 'malformed'; path: string; problem: string; source: PrefetchSource };

/** `prefetch.lesions.entry[0].resource.birthDate`. */
export const malformedExpression = (key: string, path: string) =>
  `prefetch.${key}${path === '' || path.startsWith('[') ? '' : '.'}${path}`;

/**
 * Resolves the service's prefetch for one request.
 * @throws CdsError CDS_ERR_PREFETCH_INVALID when a sent value is not what its template returns
 * @throws CdsError CDS_ERR_PREFETCH_UNAVAILABLE (412) when a `fail` key cannot be had
 * @throws CdsError CDS_ERR_PREFETCH_MALFORMED (400) when a value is not well-formed FHIR R4 and the
 *   policy is `reject`
 */
export async function resolvePrefetch(
  keys: readonly CompiledPrefetch[],
  request: HookRequest,
  fhirFetch: FhirFetch,
  policy: MalformedPolicy = 'reject',
): Promise<ResolvedPrefetch> {
  const sent = request.prefetch;
  // Every key sent (the usual call): nothing to fetch, so no promise per key. The same results, and the
  // same error first (the first key in order that throws), as the keys resolved in parallel.
  const results =
    sent && keys.every((key) => Object.hasOwn(sent, key.key))
      ? keys.map((key) => sentKey(key, sent))
      : await Promise.all(keys.map((key) => resolveKey(key, request, fhirFetch)));
  const resolved: ResolvedPrefetch = {
    data: {},
    unavailable: [],
    malformed: [],
    sources: {},
    fetchedRaw: [],
  };
  const failed: CompiledPrefetch[] = [];
  const reasons: string[] = [];
  results.forEach((result, i) => {
    const { key, spec } = keys[i]!;
    if (result.ok) {
      resolved.data[key] = result.value;
      resolved.sources[key] = result.source;
      if (result.source === 'fetched') resolved.fetchedRaw.push({ key, pages: result.raw ?? null });
      return;
    }
    resolved.data[key] = null;
    if (result.code === 'malformed') {
      const { path, problem, source } = result;
      if (policy === 'reject') throw malformedError(key, path, problem, source);
      resolved.malformed.push({ key, description: spec.description, path, problem, source });
    } else if (spec.onFailure === 'fail') {
      failed.push(keys[i]!);
      reasons.push(`${key} (${result.reason})`);
    } else
      resolved.unavailable.push({
        key,
        description: spec.description,
        code: result.code,
        reason: result.reason,
      });
  });
  if (failed.length > 0) {
    throw new CdsError(
      'CDS_ERR_PREFETCH_UNAVAILABLE',
      { details: reasons.join('; ') },
      { expression: failed.map((k) => `prefetch.${k.key}`) },
    );
  }
  return resolved;
}

async function resolveKey(
  key: CompiledPrefetch,
  request: HookRequest,
  fhirFetch: FhirFetch,
): Promise<KeyResult> {
  const sent = request.prefetch;
  if (sent && Object.hasOwn(sent, key.key)) return sentKey(key, sent);
  const rendered = renderTemplate(key.template, request.context);
  if (!rendered.ok) return { ok: false, code: 'unresolved-token', reason: rendered.reason };
  if (!request.fhirServer) {
    return { ok: false, code: 'no-fhir-server', reason: 'not sent, and the request has no fhirServer' };
  }
  const fetched = await fhirFetch(
    request.fhirServer,
    rendered.query,
    key.template.resultType,
    request.fhirAuthorization?.access_token,
  );
  return fetched.ok ? checked(fetched.value, 'fetched', fetched.raw) : fetched;
}

/** A key the client sent: null (known absent), its OperationOutcome, or the resource, checked. */
function sentKey(key: CompiledPrefetch, sent: NonNullable<HookRequest['prefetch']>): KeyResult {
  const value = sent[key.key] ?? null;
  if (value === null) return { ok: true, value: null, source: 'prefetch' };
  if (value.resourceType === 'OperationOutcome') {
    return { ok: false, code: 'client-outcome', reason: 'the CDS client reported an OperationOutcome' };
  }
  if (value.resourceType !== key.template.resultType) {
    throw new CdsError(
      'CDS_ERR_PREFETCH_INVALID',
      {
        key: key.key,
        reason: `${article(value.resourceType)} where its template returns ${article(key.template.resultType)}`,
      },
      { expression: [`prefetch.${key.key}`] },
    );
  }
  return checked(value, 'prefetch');
}

/** The value if it is well-formed FHIR R4, else where and why it is not. */
function checked(value: FhirResource | null, source: PrefetchSource, raw?: readonly Uint8Array[]): KeyResult {
  const problem = value === null ? null : checkResourceStructure(value);
  if (problem) return { ok: false, code: 'malformed', ...problem, source };
  return raw ? { ok: true, value, source, raw } : { ok: true, value, source };
}

function malformedError(key: string, path: string, problem: string, source: PrefetchSource): CdsError {
  const expression = malformedExpression(key, path);
  const where = source === 'fetched' ? ' (as fetched from fhirServer)' : '';
  return new CdsError(
    'CDS_ERR_PREFETCH_MALFORMED',
    { key, path: expression, problem: `${problem}${where}` },
    { expression: [expression] },
  );
}
