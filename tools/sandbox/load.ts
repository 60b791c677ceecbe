/**
 * What the sandbox serves: a generated cohort (tools/synthetic) or a folder of FHIR bundles (Synthea
 * output, `npm run fixtures` output, any transaction/batch/collection bundle), in server form
 * (`Type/id` references), with resources that recur across files (organizations, practitioners, …)
 * kept once.
 */
import { readdir, readFile } from 'node:fs/promises';
import { join } from 'node:path';
import type { Bundle, Resource } from 'fhir/r4.js';
import { resourcesOf, toServerForm } from '../synthetic/bundle.js';
import { generateCohort } from '../synthetic/patients.js';

export interface LoadedResources {
  resources: Resource[];
  /** Resources skipped because an earlier file already held the same `Type/id`. */
  duplicates: number;
  /** Files read (a generated cohort counts one per patient). */
  files: number;
}

/** Keeps the first copy of each `Type/id`. */
export function dedupe(bundles: readonly Bundle[]): { resources: Resource[]; duplicates: number } {
  const unique = new Map<string, Resource>();
  let duplicates = 0;
  for (const resource of bundles.flatMap((b) => resourcesOf(b))) {
    const key = `${resource.resourceType}/${resource.id}`;
    if (unique.has(key)) duplicates++;
    else unique.set(key, resource);
  }
  return { resources: [...unique.values()], duplicates };
}

/** A seeded synthetic cohort in server form. */
export function loadGenerated(count: number, seed: number, now: Date): LoadedResources {
  const bundles = generateCohort({ seed, count, now }).map((b) => toServerForm(b));
  return { ...dedupe(bundles), files: bundles.length };
}

/**
 * Every `*.json` file of `folder` (not recursive, sorted by name), each a Bundle.
 *
 * @throws Error naming the file when one is not JSON, not a Bundle, or cannot be put in server form.
 */
export async function loadBundleFolder(folder: string): Promise<LoadedResources> {
  const names = (await readdir(folder)).filter((name) => name.endsWith('.json')).sort();
  const bundles: Bundle[] = [];
  for (const name of names) {
    const path = join(folder, name);
    try {
      const json = JSON.parse(await readFile(path, 'utf8')) as Bundle;
      if (json?.resourceType !== 'Bundle') throw new Error('not a FHIR Bundle');
      bundles.push(toServerForm(json));
    } catch (error) {
      throw new Error(`${name}: ${(error as Error).message}`);
    }
  }
  return { ...dedupe(bundles), files: names.length };
}

/** Resources per type, most frequent first (ties by name). */
export function countByType(resources: readonly Resource[]): [string, number][] {
  const counts = new Map<string, number>();
  for (const r of resources) counts.set(r.resourceType, (counts.get(r.resourceType) ?? 0) + 1);
  return [...counts].sort((a, b) => b[1] - a[1] || a[0].localeCompare(b[0]));
}
