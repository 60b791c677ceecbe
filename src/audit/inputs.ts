/**
 * What the audit keeps of a call's input data: a SHA-256 of the data and the reference of each resource
 * in it. The data itself is not stored: with the references (and their versions when the server gives
 * them) the same data can be fetched again, and the hash proves whether it is the same.
 *
 * Two methods, named in the record (`inputs.method`) so that a site knows how to re-check an input:
 *
 * - `sha256-raw` (calls over HTTP): SHA-256 of the bytes as received, in this order, with nothing between
 *   them: the request body exactly as the client sent it (before any parsing; it contains
 *   `fhirAuthorization`, whose token a hash does not disclose), then the body of each response fetched
 *   from `fhirServer`, key by key in the order `inputs.fetched` lists (the order of the keys in the service
 *   definition), each key's result pages in the order they were read. Without fetched keys it is the
 *   `sha256sum` of the request body. The hash costs one pass of native SHA-256 over bytes the service
 *   reads anyway (2.1 ms per ~900 KB, against 8.1 ms for the canonical form and 28 ms for JSON.parse).
 * - `sha256-canonical` (callers that hand the pipeline a parsed body: batch and replay tools; every record
 *   written before the raw method existed, which carry no `method`): SHA-256 of the canonical JSON
 *   (`hash-chain.ts`, keys sorted) of the resolved prefetch data, key → resource or null.
 */
import { createHash } from 'node:crypto';
import type { Bundle, FhirResource, Resource } from 'fhir/r4.js';
import { canonicalJson, sha256Hex } from './hash-chain.js';

export type InputsHashMethod = 'sha256-raw' | 'sha256-canonical';

export interface InputsDigest {
  sha256: string;
  /** How `sha256` was computed (see above); records written before the raw method carry none. */
  method: InputsHashMethod;
  /** `sha256-raw` only, when some keys were fetched: those keys, in the order their bytes were hashed. */
  fetched?: string[];
  /** `Type/id`, or `Type/id/_history/version` when the resource carries `meta.versionId`; sorted, unique. */
  references: string[];
}

/** The bytes as received: the request body, and the pages read for each fetched key. */
export interface RawInputs {
  body: Uint8Array | string;
  /** Fetched keys in the order of the service's prefetch, each with its pages' bytes in reading order. */
  fetched: readonly { key: string; pages: readonly Uint8Array[] }[];
}

/**
 * Appends the reference of the resource, or of each resource in a Bundle, to `into` (duplicates
 * included: {@link sortedUnique} removes them after sorting, which costs less than a Set's hashing).
 */
function referencesOf(resource: Resource | null, into: string[]): void {
  if (!resource) return;
  if (resource.resourceType === 'Bundle') {
    for (const entry of (resource as Bundle).entry ?? []) referencesOf(entry.resource ?? null, into);
    return;
  }
  // The patient is recorded by pseudonym only: `Patient/<id>` would put the id back in clear.
  if (!resource.id || resource.resourceType === 'Patient') return;
  const version = resource.meta?.versionId;
  into.push(`${resource.resourceType}/${resource.id}${version ? `/_history/${version}` : ''}`);
}

/** The strings sorted (UTF-16 code units, as `sort()` without comparator), duplicates removed, in place. */
function sortedUnique(values: string[]): string[] {
  values.sort();
  let kept = 0;
  for (const value of values) if (kept === 0 || value !== values[kept - 1]) values[kept++] = value;
  values.length = kept;
  return values;
}

/** SHA-256 of the raw inputs, as `sha256-raw` defines it (hex). */
export function rawInputsSha256(raw: RawInputs): string {
  const hash = createHash('sha256');
  hash.update(raw.body);
  for (const { pages } of raw.fetched) for (const page of pages) hash.update(page);
  return hash.digest('hex');
}

/**
 * Digests the resolved prefetch data (key → resource, or null when absent): from the bytes as received
 * when the caller has them (`sha256-raw`), else from the canonical JSON of the data (`sha256-canonical`).
 */
export function digestInputs(
  data: Readonly<Record<string, FhirResource | null>>,
  raw?: RawInputs,
): InputsDigest {
  // An array sorted then deduplicated rather than a Set (hashing each reference into the Set cost more
  // than the sort): digestInputs 34 -> 30 µs per call on the benchmark's 27 KB bodies, 65-69 -> 55-59 µs
  // on its 40-60 KB ones, with the same list.
  const references: string[] = [];
  for (const value of Object.values(data)) referencesOf(value, references);
  const sorted = sortedUnique(references);
  if (!raw) return { sha256: sha256Hex(canonicalJson(data)), method: 'sha256-canonical', references: sorted };
  const fetched = raw.fetched.map((f) => f.key);
  return {
    sha256: rawInputsSha256(raw),
    method: 'sha256-raw',
    ...(fetched.length > 0 ? { fetched } : {}),
    references: sorted,
  };
}
