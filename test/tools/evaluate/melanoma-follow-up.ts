/**
 * Seeded melanoma follow-up for the evaluate tests (per-lesion outcomes, folder and FHIR-server modes):
 * generated patients with two lesions each call the melanoma service (its estimates go to the audit
 * trail), and each scored lesion gets its histology (tools/synthetic follow-up: a DiagnosticReport and
 * its Specimen at the lesion's body site). The outcomes of the first patient with two lesions scored on
 * two sites are set, not drawn: its first lesion a melanoma, its second benign.
 */
import type { Bundle, Observation, Resource } from 'fhir/r4.js';
import { join } from 'node:path';
import { createFhirPath } from '../../../src/rules/fhirpath.js';
import { loadModel } from '../../../src/scoring/load.js';
import { resourcesOf, searchset, toServerForm } from '../../../tools/synthetic/bundle.js';
import { followUpOf, histology, type FollowUp } from '../../../tools/synthetic/follow-up.js';
import { generatePatient } from '../../../tools/synthetic/patients.js';
import { createRng } from '../../../tools/synthetic/random.js';
import { buildTestApp, NOW, tempDir } from '../../helpers/app.js';

export const MELANOMA_URL = '/cds-services/melanoma-lesion-triage';
const SEED = 19;
const PATIENTS = 8;

/** The patient-view call of the melanoma service for a generated patient, its prefetch from the bundle. */
export function melanomaRequest(generated: Bundle) {
  const resources = resourcesOf(toServerForm(generated));
  const of = (type: string) => resources.filter((r: Resource) => r.resourceType === type);
  const isLesion = (o: Observation) => o.code.coding?.some((c) => c.code === 'lesion-examination') === true;
  const observations = of('Observation') as Observation[];
  return {
    hook: 'patient-view',
    hookInstance: '2c3d1f0e-8d4b-4f5e-9d7a-0b1c2d3e4f51',
    context: { userId: 'Practitioner/p1', patientId: of('Patient')[0]!.id! },
    prefetch: {
      patient: of('Patient')[0]!,
      lesions: searchset(observations.filter(isLesion)),
      conditions: searchset(of('Condition')),
      skin: searchset(observations.filter((o) => !isLesion(o))),
      consent: searchset(of('Consent')),
    },
  };
}

export interface MelanomaFollowUp {
  /** The audit store and its key (pseudonym.key beside it). */
  dataDir: string;
  /** Patients, then their follow-up (Specimen and DiagnosticReport per scored lesion). */
  resources: Resource[];
  truth: FollowUp[];
  /** Every patient id and lesion examination id, none of which may leave the linkage. */
  ids: string[];
  /** The body sites of that patient's two lesions (none if the seed has no such patient). */
  firstSites: string[];
}

export async function melanomaFollowUp(): Promise<MelanomaFollowUp> {
  const dataDir = tempDir('cds-evaluate-melanoma-');
  const { app } = await buildTestApp({ dataDir });
  const model = await loadModel(join('models', 'melanoma-risk', '1.0.0'), createFhirPath());
  const truth: FollowUp[] = [];
  const resources: Resource[] = [];
  const ids: string[] = [];
  let firstSites: string[] = [];
  try {
    for (let i = 0; i < PATIENTS; i += 1) {
      const bundle = generatePatient(createRng(SEED, i), { kneeOa: false, lesions: 2, now: NOW });
      const payload = melanomaRequest(bundle);
      const res = await app.inject({ method: 'POST', url: MELANOMA_URL, payload });
      if (res.statusCode !== 200) throw new Error(`the service answered ${res.statusCode}: ${res.body}`);
      const lesions = payload.prefetch.lesions.entry!.map((e) => e.resource as Observation);
      ids.push(payload.context.patientId, ...lesions.map((l) => l.id!));
      resources.push(payload.prefetch.patient);
      let followUp = await followUpOf(model, bundle, SEED, i, NOW);
      if (!followUp) continue;
      const sites = lesions.map((l) => l.bodySite!.text!);
      if (firstSites.length === 0 && followUp.risks.length === 2 && sites[0] !== sites[1]) {
        // The first patient with two lesions scored on two sites: lesion 1 a melanoma, lesion 2 benign,
        // whatever the draws.
        firstSites = sites;
        const outcomes: (0 | 1)[] = [1, 0];
        followUp = {
          ...followUp,
          outcome: 1,
          outcomes,
          resources: lesions.flatMap((l, j) =>
            histology(followUp!.patientId, outcomes[j]!, NOW, `follow-up-${i}-${j}`, l),
          ),
        };
      }
      truth.push(followUp);
      resources.push(...followUp.resources);
    }
  } finally {
    await app.close();
    await model.session.release();
  }
  return { dataDir, resources, truth, ids, firstSites };
}
