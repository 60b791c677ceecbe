/**
 * Pure helpers over FHIR R4 bundles: list and filter the resources of a (transaction) bundle, turn a
 * Synthea-style transaction bundle (`urn:uuid:` fullUrls and references) into server form (`Type/id`
 * references, `PUT Type/id` requests), and build `searchset` bundles such as a FHIR server returns, e.g.
 * for CDS Hooks prefetch.
 *
 * None of these functions mutates its input.
 */
import type { Bundle, BundleEntry, FhirResource, Resource } from 'fhir/r4.js';

/** A resource type name of FHIR R4. */
export type ResourceType = FhirResource['resourceType'];
/** The resource interface of a type name, e.g. `ResourceOf<'Observation'>` = `Observation`. */
export type ResourceOf<K extends ResourceType> = Extract<FhirResource, { resourceType: K }>;

/** Options of {@link toServerForm} and {@link searchset}. */
export interface ServerFormOptions {
  /**
   * Base URL of the FHIR server (e.g. `https://fhir.example.org/r4`). When given, entries get an absolute
   * `fullUrl` `<baseUrl>/<Type>/<id>`. Without it, {@link searchset} uses the relative `<Type>/<id>`
   * and {@link toServerForm} leaves `fullUrl` out (it must be absolute in a transaction).
   */
  baseUrl?: string;
}

const URN_UUID = /^urn:uuid:/;

/** The resources of a bundle's entries, in entry order (entries without a resource are skipped). */
export function resourcesOf(bundle: Bundle): Resource[] {
  const resources: Resource[] = [];
  for (const entry of bundle.entry ?? []) {
    if (entry.resource !== undefined) resources.push(entry.resource);
  }
  return resources;
}

/** The resources of one type, from a bundle or a list of resources, in order. */
export function byType<K extends ResourceType>(
  source: Bundle | readonly Resource[],
  type: K,
): ResourceOf<K>[] {
  const resources = isBundle(source) ? resourcesOf(source) : source;
  return resources.filter((resource) => resource.resourceType === type) as ResourceOf<K>[];
}

/** The single Patient of a bundle; throws when there is none or more than one. */
export function patientOf(bundle: Bundle): ResourceOf<'Patient'> {
  const patients = byType(bundle, 'Patient');
  if (patients.length !== 1)
    throw new Error(`expected exactly one Patient in the bundle, found ${patients.length}`);
  return patients[0]!;
}

/** `Type/id` of a resource; throws when the resource has no id. */
export function referenceTo(resource: Resource): string {
  if (!resource.id) throw new Error(`${resource.resourceType} has no id`);
  return `${resource.resourceType}/${resource.id}`;
}

function isBundle(source: Bundle | readonly Resource[]): source is Bundle {
  return !Array.isArray(source) && (source as Bundle).resourceType === 'Bundle';
}

function trimBase(baseUrl: string): string {
  return baseUrl.replace(/\/+$/, '');
}

/** Replaces every string `reference` at any depth (contained resources too) by `rewrite(reference)`. */
function rewriteReferences(node: unknown, rewrite: (reference: string) => string): void {
  if (Array.isArray(node)) {
    for (const item of node) rewriteReferences(item, rewrite);
    return;
  }
  if (node === null || typeof node !== 'object') return;
  const record = node as Record<string, unknown>;
  for (const [key, value] of Object.entries(record)) {
    if (key === 'reference' && typeof value === 'string') record[key] = rewrite(value);
    else rewriteReferences(value, rewrite);
  }
}

/** The first string `reference` at any depth that starts with `urn:uuid:`, if any. */
function findUrnReference(node: unknown): string | undefined {
  if (Array.isArray(node)) {
    for (const item of node) {
      const found = findUrnReference(item);
      if (found !== undefined) return found;
    }
    return undefined;
  }
  if (node === null || typeof node !== 'object') return undefined;
  for (const [key, value] of Object.entries(node)) {
    if (key === 'reference' && typeof value === 'string') {
      if (URN_UUID.test(value)) return value;
    } else {
      const found = findUrnReference(value);
      if (found !== undefined) return found;
    }
  }
  return undefined;
}

/**
 * Server form of a bundle: a deep copy in which
 * - every entry's resource has an `id` (taken from a `urn:uuid:` fullUrl when missing);
 * - every `reference` equal to another entry's `fullUrl` (typically `urn:uuid:<id>`) becomes
 *   `<Type>/<id>`; references to nothing in the bundle are left unchanged;
 * - `request` (when present, as in transaction and batch bundles) becomes `PUT <Type>/<id>`, so a FHIR
 *   server keeps the ids ("update as create");
 * - `fullUrl` becomes `<baseUrl>/<Type>/<id>`, or is left out when no `baseUrl` is given.
 *
 * @throws Error when an entry's resource has neither an `id` nor a `urn:uuid:` fullUrl, or when two
 *   entries end up with the same `Type/id`.
 */
export function toServerForm(bundle: Bundle, options: ServerFormOptions = {}): Bundle {
  const copy = structuredClone(bundle);
  const entries = copy.entry ?? [];
  const byFullUrl = new Map<string, string>();
  const seen = new Set<string>();
  entries.forEach((entry, index) => {
    const resource = entry.resource;
    if (resource === undefined) return;
    if (!resource.id) {
      if (entry.fullUrl === undefined || !URN_UUID.test(entry.fullUrl)) {
        throw new Error(`entry ${index} (${resource.resourceType}) has no id and no urn:uuid fullUrl`);
      }
      resource.id = entry.fullUrl.replace(URN_UUID, '');
    }
    const local = referenceTo(resource);
    if (seen.has(local)) throw new Error(`duplicate resource ${local} (entry ${index})`);
    seen.add(local);
    if (entry.fullUrl !== undefined) byFullUrl.set(entry.fullUrl, local);
  });
  for (const entry of entries) {
    if (entry.resource === undefined) continue;
    rewriteReferences(entry.resource, (reference) => byFullUrl.get(reference) ?? reference);
  }
  if (copy.entry === undefined) return copy;
  copy.entry = entries.map((entry) => {
    const resource = entry.resource;
    if (resource === undefined) return entry;
    const local = referenceTo(resource);
    const { fullUrl: _fullUrl, request, ...rest } = entry;
    const next: BundleEntry = {};
    if (options.baseUrl !== undefined) next.fullUrl = `${trimBase(options.baseUrl)}/${local}`;
    Object.assign(next, rest);
    if (request !== undefined) next.request = { method: 'PUT', url: local };
    return next;
  });
  return copy;
}

/**
 * A `searchset` Bundle of `resources` as a FHIR search would return it: `total` = number of resources,
 * each entry `{fullUrl: <Type>/<id> (or absolute with baseUrl), resource, search: {mode: 'match'}}`; no
 * `entry` when there are no resources.
 * Resources are included as given (not copied).
 *
 * @throws Error when a resource has no `id` or still holds a `urn:uuid:` reference (pass the bundle
 *   through {@link toServerForm} first).
 */
export function searchset(resources: readonly Resource[], options: ServerFormOptions = {}): Bundle {
  const base = options.baseUrl === undefined ? '' : `${trimBase(options.baseUrl)}/`;
  const entry: BundleEntry[] = resources.map((resource, index) => {
    if (!resource.id) throw new Error(`searchset: resource ${index} (${resource.resourceType}) has no id`);
    const urn = findUrnReference(resource);
    if (urn !== undefined) {
      throw new Error(
        `searchset: ${referenceTo(resource)} still references ${urn}; convert the bundle with toServerForm() first`,
      );
    }
    return { fullUrl: `${base}${referenceTo(resource)}`, resource, search: { mode: 'match' } };
  });
  // FHIR JSON never has empty arrays: an empty result has no `entry`.
  return entry.length === 0
    ? { resourceType: 'Bundle', type: 'searchset', total: 0 }
    : { resourceType: 'Bundle', type: 'searchset', total: entry.length, entry };
}
