import { existsSync } from 'node:fs';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Bundle, Organization, Resource } from 'fhir/r4.js';
import t, { type Test } from 'tap';
import { countByType, dedupe, loadBundleFolder, loadGenerated } from '../../../tools/sandbox/load.js';
import { generateCohort } from '../../../tools/synthetic/patients.js';
import { NOW } from '../../helpers/app.js';

const ORG: Organization = { resourceType: 'Organization', id: 'org-1', name: 'Clinic' };
const orgBatch = (name: string): Bundle => ({
  resourceType: 'Bundle',
  type: 'batch',
  entry: [
    { resource: { ...ORG, name } as Organization, request: { method: 'PUT', url: 'Organization/org-1' } },
  ],
});

async function folder(t: Test, files: Record<string, string>): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), 'cds-sandbox-'));
  t.teardown(() => rm(dir, { recursive: true, force: true }));
  for (const [name, text] of Object.entries(files)) await writeFile(join(dir, name), text);
  return dir;
}

t.test('a folder of generated transaction bundles, repeated resources kept once', async (t) => {
  const cohort = generateCohort({ seed: 3, count: 4, now: NOW });
  const files: Record<string, string> = {
    'orgs-a.json': JSON.stringify(orgBatch('first')),
    'orgs-b.json': JSON.stringify(orgBatch('second')),
    'notes.txt': 'not a bundle, not read',
  };
  cohort.forEach((bundle, i) => (files[`patient-${i}.json`] = JSON.stringify(bundle)));
  const dir = await folder(t, files);

  const loaded = await loadBundleFolder(dir);
  const entries = cohort.reduce((n, b) => n + (b.entry ?? []).length, 0);
  t.equal(loaded.files, 6);
  t.equal(loaded.duplicates, 1);
  t.equal(loaded.resources.length, entries + 1);
  t.same(
    loaded.resources.filter((r) => r.resourceType === 'Organization'),
    [{ ...ORG, name: 'first' }],
    'the first copy wins',
  );
  const keys = loaded.resources.map((r) => `${r.resourceType}/${r.id}`);
  t.equal(new Set(keys).size, keys.length);
  const text = JSON.stringify(loaded.resources);
  t.notMatch(text, /urn:uuid:/, 'references in server form');
  t.equal(countByType(loaded.resources).find(([type]) => type === 'Patient')?.[1], 4);
});

t.test('a file that is not a bundle is named in the error', async (t) => {
  const broken = await folder(t, { 'a.json': JSON.stringify(orgBatch('x')), 'b.json': '{"resourceType":' });
  await t.rejects(loadBundleFolder(broken), { message: /^b\.json: / });
  const patient = await folder(t, { 'p.json': JSON.stringify({ resourceType: 'Patient', id: 'p' }) });
  await t.rejects(loadBundleFolder(patient), { message: 'p.json: not a FHIR Bundle' });
  const nullFile = await folder(t, { 'n.json': 'null' });
  await t.rejects(loadBundleFolder(nullFile), { message: 'n.json: not a FHIR Bundle' });
  const noId = await folder(t, {
    'x.json': JSON.stringify({
      resourceType: 'Bundle',
      type: 'collection',
      entry: [{ resource: ORG }, { resource: { resourceType: 'Patient' } }],
    }),
  });
  await t.rejects(loadBundleFolder(noId), { message: /^x\.json: entry 1 \(Patient\) has no id/ });
});

t.test('loadGenerated is the seeded cohort in server form', async (t) => {
  const a = loadGenerated(5, 11, NOW);
  const b = loadGenerated(5, 11, NOW);
  t.same(a, b, 'same seed, same resources');
  t.equal(a.files, 5);
  t.equal(a.duplicates, 0);
  t.equal(a.resources.filter((r) => r.resourceType === 'Patient').length, 5);
  t.notMatch(JSON.stringify(a.resources), /urn:uuid:/);
  t.notSame(loadGenerated(5, 12, NOW).resources[0], a.resources[0], 'another seed, other patients');
});

t.test('dedupe and countByType', async (t) => {
  const p = (id: string): Resource => ({ resourceType: 'Patient', id });
  const bundle = (...resources: Resource[]): Bundle => ({
    resourceType: 'Bundle',
    type: 'collection',
    entry: resources.map((resource) => ({ resource })),
  });
  const { resources, duplicates } = dedupe([bundle(p('a'), ORG), bundle(p('a'), p('b'), ORG)]);
  t.same(resources, [p('a'), ORG, p('b')]);
  t.equal(duplicates, 2);
  t.same(countByType(resources), [
    ['Patient', 2],
    ['Organization', 1],
  ]);
  t.same(
    countByType([ORG, p('a')]),
    [
      ['Organization', 1],
      ['Patient', 1],
    ],
    'ties by name',
  );
});

const SYNTHEA = join('..', 'shared', 'synthea');
if (!existsSync(SYNTHEA)) {
  t.comment(`SKIPPED: ${SYNTHEA} not found; the Synthea loading test needs it beside the checkout`);
  t.test('loads ../shared/synthea', { skip: `${SYNTHEA} not found` }, () => {});
} else {
  t.test('loads ../shared/synthea', async (t) => {
    const loaded = await loadBundleFolder(SYNTHEA);
    t.equal(loaded.resources.filter((r) => r.resourceType === 'Patient').length, 41);
    t.ok(loaded.duplicates > 0, `${loaded.duplicates} repeated organizations/practitioners kept once`);
    const keys = loaded.resources.map((r) => `${r.resourceType}/${r.id}`);
    t.equal(new Set(keys).size, keys.length);
    t.comment(
      `Synthea: ${loaded.resources.length} resources, ${JSON.stringify(countByType(loaded.resources).slice(0, 6))}`,
    );
  });
}
