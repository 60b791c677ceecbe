/**
 * A knee-OA patient-view call built from a generated patient (the setup of
 * test/http/knee-oa-progression.test.ts), for tests that need a real model-based card.
 */
import type { Bundle, Resource } from 'fhir/r4.js';
import type { PatientOptions } from '../../tools/synthetic/patients.js';
import { generatePatient } from '../../tools/synthetic/patients.js';
import { resourcesOf, searchset, toServerForm } from '../../tools/synthetic/bundle.js';
import { createRng } from '../../tools/synthetic/random.js';
import { NOW } from './app.js';

export const KNEE_OA_URL = '/cds-services/knee-oa-progression';

/** Many risk factors: a scored, warning card. */
export const HIGH_RISK: PatientOptions = {
  kneeOa: true,
  age: 70,
  gender: 'female',
  bmi: 36,
  painScore: 9,
  kneeInjury: true,
  handOa: true,
  diabetes: true,
  klGrade: 3,
  lesions: 0,
};

export function kneeOaCall(options: PatientOptions, seed = 1) {
  return kneeOaRequest(generatePatient(createRng(seed, 0), { ...options, now: NOW }));
}

/** The patient-view request for a generated patient's bundle, its prefetch taken from the bundle. */
export function kneeOaRequest(generated: Bundle) {
  const resources = resourcesOf(toServerForm(generated));
  const of = (type: string) => resources.filter((r: Resource) => r.resourceType === type);
  const patient = of('Patient')[0]!;
  return {
    hook: 'patient-view',
    hookInstance: '2c3d1f0e-8d4b-4f5e-9d7a-0b1c2d3e4f50',
    context: { userId: 'Practitioner/p1', patientId: patient.id! },
    prefetch: {
      patient,
      conditions: searchset(of('Condition')),
      observations: searchset(of('Observation')),
      consent: searchset(of('Consent')),
    },
  };
}
