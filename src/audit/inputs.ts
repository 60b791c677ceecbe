/**
 * What the audit keeps of a call's input data: a SHA-256 of the canonical JSON of the prefetch data the
 * service used (key by key, as resolved), and the reference of each resource in it. The data itself is
 * not stored: with the references (and their versions when the server gives them) the same data can be
 * fetched again, and the hash proves whether it is the same.
 */
import type { Bundle, FhirResource, Resource } from 'fhir/r4.js';
import { canonicalJson, sha256Hex } from './hash-chain.js';

export interface InputsDigest {
  sha256: string;
  /** `Type/id`, or `Type/id/_history/version` when the resource carries `meta.versionId`; sorted, unique. */
  references: string[];
}

function referencesOf(resource: Resource | null, into: Set<string>): void {
  if (!resource) return;
  if (resource.resourceType === 'Bundle') {
    for (const entry of (resource as Bundle).entry ?? []) referencesOf(entry.resource ?? null, into);
    return;
  }
  // The patient is recorded by pseudonym only: `Patient/<id>` would put the id back in clear.
  if (!resource.id || resource.resourceType === 'Patient') return;
  const version = resource.meta?.versionId;
  into.add(`${resource.resourceType}/${resource.id}${version ? `/_history/${version}` : ''}`);
}

/** Digests the resolved prefetch data (key → resource, or null when absent). */
export function digestInputs(data: Readonly<Record<string, FhirResource | null>>): InputsDigest {
  const references = new Set<string>();
  for (const value of Object.values(data)) referencesOf(value, references);
  return { sha256: sha256Hex(canonicalJson(data)), references: [...references].sort() };
}
