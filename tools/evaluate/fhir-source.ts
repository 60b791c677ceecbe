/**
 * The FHIR data `npm run evaluate` reads outcomes from, one patient's resources at a time:
 * - a folder of `.json` files (a Bundle, transaction bundles with `urn:uuid:` references included, or
 *   one resource) and `.ndjson` files (one resource per line, as FHIR Bulk Data `$export` writes);
 * - a FHIR server's base URL: its patients (`Patient`, paged), then, for the patients the audit has
 *   estimates for only, the resources of the types asked for (`<Type>?patient=<id>`, paged).
 * Resources are grouped by the patient they are about (the Patient itself, `subject` or `patient`).
 */
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import type { Bundle, Resource } from 'fhir/r4.js';
import { resourcesOf, toServerForm } from '../synthetic/bundle.js';

/** The patient id a resource is about, if any. */
export function patientIdOf(resource: Resource): string | undefined {
  if (resource.resourceType === 'Patient') return resource.id;
  const r = resource as { subject?: { reference?: string }; patient?: { reference?: string } };
  const reference = r.subject?.reference ?? r.patient?.reference;
  return reference === undefined ? undefined : /(?:^|\/)Patient\/([^/]+)$/.exec(reference)?.[1];
}

function resourcesOfJson(value: unknown): Resource[] {
  const resource = value as Resource;
  if (resource?.resourceType !== 'Bundle') return resource?.resourceType ? [resource] : [];
  try {
    return resourcesOf(toServerForm(value as Bundle));
  } catch {
    // Not a transaction in urn:uuid form: the entries as they are.
    return resourcesOf(value as Bundle);
  }
}

export interface Progress {
  (line: string): void;
}

/**
 * Every resource of a folder, grouped by patient id (resources about no patient are left out).
 * @throws Error naming the file and line that is not JSON
 */
export function readFolder(dir: string, progress: Progress): Map<string, Resource[]> {
  const files = readdirSync(dir)
    .filter((f) => f.endsWith('.json') || f.endsWith('.ndjson'))
    .sort();
  if (files.length === 0) throw new Error(`${dir} holds no .json or .ndjson file`);
  const byPatient = new Map<string, Resource[]>();
  const add = (resource: Resource) => {
    const id = patientIdOf(resource);
    if (id === undefined) return;
    const list = byPatient.get(id);
    if (list) list.push(resource);
    else byPatient.set(id, [resource]);
  };
  files.forEach((file, i) => {
    const text = readFileSync(join(dir, file), 'utf8');
    if (file.endsWith('.ndjson')) {
      text.split('\n').forEach((line, n) => {
        if (line.trim() === '') return;
        try {
          for (const r of resourcesOfJson(JSON.parse(line))) add(r);
        } catch (error) {
          throw new Error(`${file} line ${n + 1} is not JSON: ${(error as Error).message}`);
        }
      });
    } else {
      let value: unknown;
      try {
        value = JSON.parse(text);
      } catch (error) {
        throw new Error(`${file} is not JSON: ${(error as Error).message}`);
      }
      for (const r of resourcesOfJson(value)) add(r);
    }
    if ((i + 1) % 500 === 0 || i + 1 === files.length) progress(`read ${i + 1}/${files.length} files`);
  });
  return byPatient;
}

/** Most pages one search may take before it is refused rather than read in part. */
export const MAX_PAGES = 10_000;

/**
 * Fetches a search and its next pages. Any page that fails (an error status, a body that is not a
 * searchset Bundle, a broken connection) or a search longer than MAX_PAGES fails the whole search: a
 * report must never be computed from part of the data.
 * @throws Error naming the page's URL
 */
async function searchAll(url: string, fetcher: typeof fetch): Promise<Resource[]> {
  const found: Resource[] = [];
  let next: string | undefined = url;
  for (let page = 0; next !== undefined; page += 1) {
    if (page === MAX_PAGES) throw new Error(`${url} has more than ${MAX_PAGES} pages`);
    const response: Response = await fetcher(next, { headers: { accept: 'application/fhir+json' } });
    if (!response.ok) throw new Error(`${next} answered ${response.status}`);
    const bundle = (await response.json().catch(() => undefined)) as Bundle | undefined;
    if (bundle?.resourceType !== 'Bundle' || bundle.type !== 'searchset')
      throw new Error(`${next} did not answer a searchset Bundle`);
    found.push(...resourcesOf(bundle));
    next = bundle.link?.find((l) => l.relation === 'next')?.url;
  }
  return found;
}

/**
 * The resources of the wanted patients on a FHIR server.
 * @param wanted whether the audit has estimates for a patient (by id: the caller pseudonymises)
 * @param types the resource types to fetch for each wanted patient
 */
export async function readServer(
  base: string,
  wanted: (patientId: string) => boolean,
  types: readonly string[],
  progress: Progress,
  fetcher: typeof fetch = fetch,
): Promise<Map<string, Resource[]>> {
  const root = base.replace(/\/+$/, '');
  const patients = (await searchAll(`${root}/Patient?_count=100&_elements=id`, fetcher)).filter(
    (p) => p.id !== undefined && wanted(p.id),
  );
  progress(`${patients.length} patients of the server have estimates in the period`);
  const byPatient = new Map<string, Resource[]>();
  for (const [i, patient] of patients.entries()) {
    const resources: Resource[] = [];
    for (const type of types) {
      resources.push(
        ...(await searchAll(
          `${root}/${type}?patient=${encodeURIComponent(patient.id!)}&_count=100`,
          fetcher,
        )),
      );
    }
    byPatient.set(patient.id!, resources);
    if ((i + 1) % 100 === 0 || i + 1 === patients.length)
      progress(`fetched ${i + 1}/${patients.length} patients`);
  }
  return byPatient;
}
