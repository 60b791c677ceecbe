import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import t, { type Test } from 'tap';
import { SYSTEM } from '../../src/codes.js';
import { assertConforms, buildTestApp } from '../helpers/app.js';

/** A temporary services folder holding the given files; removed when the test ends. */
function servicesDir(t: Test, files: Record<string, string>): string {
  const dir = mkdtempSync(join(tmpdir(), 'cds-discovery-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  for (const [name, text] of Object.entries(files)) writeFileSync(join(dir, name), text);
  return dir;
}

/** The smallest valid definition: one condition rule and one card. */
function definition(id: string, extra = ''): string {
  return `id: ${id}
version: 1.0.0
hook: patient-view
title: Title of ${id}
description: Description of ${id}
guideline:
  - label: A guideline
prefetch: {}
rules:
  - id: always
    kind: condition
    title: { en: Always, fr: Toujours }
    when: "true"
    source: { label: A source }
cards:
  - id: info
    when: { anyFired: [always] }
    indicator: info
    summary: { en: Summary, fr: Résumé }
${extra}`;
}

const PATIENT_PREFETCH = `prefetch:
  patient:
    query: "Patient/{{context.patientId}}"
    onFailure: omit
    description: { en: the patient, fr: le patient }`;

t.test('discovery lists the bundled service exactly, sorted by id, conforming to the schema', async (t) => {
  const { app } = await buildTestApp();
  t.teardown(() => app.close());
  const res = await app.inject({ method: 'GET', url: '/cds-services' });
  t.equal(res.statusCode, 200);
  t.match(res.headers['content-type'], /^application\/json/);
  const body = res.json();
  assertConforms('DiscoveryResponse', body);
  const ids = body.services.map((s: { id: string }) => s.id);
  t.same(ids, [...ids].sort(), 'sorted by id');
  const melanoma = body.services.find((s: { id: string }) => s.id === 'melanoma-lesion-triage');
  t.equal(melanoma.hook, 'patient-view');
  t.equal(melanoma.id, 'melanoma-lesion-triage');
  t.equal(melanoma.title, 'Melanoma lesion triage (7-point checklists and demonstration risk model)');
  const code = `${SYSTEM.localObservation}|lesion-examination`;
  const query = `Observation?patient={{context.patientId}}&code=${code}&_sort=-date&_count=100`;
  t.same(melanoma.prefetch, {
    lesions: query,
    patient: 'Patient/{{context.patientId}}',
    conditions: 'Condition?patient={{context.patientId}}',
    skin: `Observation?patient={{context.patientId}}&code=${SYSTEM.localObservation}|fitzpatrick-skin-type,${SYSTEM.localObservation}|naevus-count-total&_sort=-date&_count=20`,
    consent: 'Consent?patient={{context.patientId}}&status=active',
  });
  t.match(melanoma.description, /never rules melanoma out/);
  // The model's status is part of what the service is: discovery says it and where the model card is.
  t.match(
    melanoma.description,
    /Model melanoma-risk 1\.0\.0: Demonstration model trained on simulated data\. Not validated; not for clinical use\. Model card: \/models\/melanoma-risk\/model-card\./,
  );
  const knee = body.services.find((s: { id: string }) => s.id === 'knee-oa-progression');
  t.match(
    knee.description,
    /Model knee-oa-progression 1\.0\.0: Demonstration model trained on simulated data/,
  );
  t.type(melanoma.usageRequirements, 'string');
  t.notOk('extension' in melanoma);
});

t.test('two discovery calls answer identical bytes', async (t) => {
  const { app } = await buildTestApp();
  t.teardown(() => app.close());
  const first = await app.inject({ method: 'GET', url: '/cds-services' });
  const second = await app.inject({ method: 'GET', url: '/cds-services' });
  t.equal(first.statusCode, 200);
  t.ok(first.rawPayload.equals(second.rawPayload), 'same bytes');
  t.equal(first.headers['content-length'], second.headers['content-length']);
});

t.test('services are ordered by id, not by file name', async (t) => {
  const dir = servicesDir(t, {
    'a-first-file.yaml': definition('zeta-service', 'usageRequirements: Needs nothing.\n'),
    'b-second-file.yml': definition('alpha-service').replace('prefetch: {}', PATIENT_PREFETCH),
    'ignored.txt': 'not a definition',
  });
  const { app } = await buildTestApp({ servicesDir: dir });
  t.teardown(() => app.close());
  const res = await app.inject({ method: 'GET', url: '/cds-services' });
  t.equal(res.statusCode, 200);
  const body = res.json();
  assertConforms('DiscoveryResponse', body);
  t.same(body, {
    services: [
      {
        hook: 'patient-view',
        title: 'Title of alpha-service',
        description: 'Description of alpha-service',
        id: 'alpha-service',
        prefetch: { patient: 'Patient/{{context.patientId}}' },
      },
      {
        hook: 'patient-view',
        title: 'Title of zeta-service',
        description: 'Description of zeta-service',
        id: 'zeta-service',
        usageRequirements: 'Needs nothing.',
      },
    ],
  });
});

t.test('an empty services folder gives an empty list', async (t) => {
  const { app } = await buildTestApp({ servicesDir: servicesDir(t, {}) });
  t.teardown(() => app.close());
  const res = await app.inject({ method: 'GET', url: '/cds-services' });
  t.equal(res.statusCode, 200);
  t.equal(res.body, '{"services":[]}');
  assertConforms('DiscoveryResponse', res.json());
  const call = await app.inject({ method: 'POST', url: '/cds-services/melanoma-lesion-triage', payload: {} });
  t.equal(call.statusCode, 404);
  t.equal(call.json().issue[0].details.coding[0].code, 'CDS_ERR_SERVICE_NOT_FOUND');
});
