/**
 * Training sets of the bundled demonstration models: a seeded synthetic cohort (tools/synthetic, whose
 * risk factors follow reference/risk-factors.md), turned into feature rows by the SAME extraction code
 * the service runs on a hook call (src/scoring/features.ts), and labelled with the generator's latent
 * outcome. Subjects the service would refuse to score (outside the population, implausible values) are
 * left out and counted, as they would get no score in service either.
 */
import type { Bundle, Observation, Patient, Resource } from 'fhir/r4.js';
import { LESION, SYSTEM } from '../../src/codes.js';
import { extractFeatures, type FeatureValue } from '../../src/scoring/features.js';
import type { CompiledFeature, CompiledGuard } from '../../src/scoring/features.js';
import { resourcesOf, searchset, toServerForm } from '../synthetic/bundle.js';
import { generatePatient, type PatientOptions, type PatientTruth } from '../synthetic/patients.js';
import { createRng } from '../synthetic/random.js';

export interface Row {
  /** Feature values in manifest order. */
  x: number[];
  y: 0 | 1;
  /** Subgroups for the model card's metrics. */
  groups: Record<string, string>;
  values: FeatureValue[];
}

export interface Dataset {
  rows: Row[];
  /** Subjects left out, by refusal code. */
  excluded: Record<string, number>;
}

export interface DatasetSpec {
  /** Generator options of every patient (cohort membership, e.g. knee OA). */
  cohort: PatientOptions;
  /** The prefetch keys the model reads, built from a patient's resources. */
  env(resources: Resource[]): Record<string, unknown>;
  /** The subjects of one patient, each with its label. */
  subjects(resources: Resource[], truth: PatientTruth): { subject: unknown; y: 0 | 1 }[];
  groups(resources: Resource[], subject: unknown, x: Map<string, FeatureValue>): Record<string, string>;
}

function ofType<T extends Resource['resourceType']>(resources: Resource[], type: T) {
  return resources.filter((r) => r.resourceType === type);
}

function ageBand(age: number, cuts: readonly number[]): string {
  for (let i = 0; i < cuts.length; i += 1)
    if (age < cuts[i]!) return i === 0 ? `<${cuts[0]}` : `${cuts[i - 1]}-${cuts[i]! - 1}`;
  return `${cuts[cuts.length - 1]}+`;
}

function ageAt(birthDate: string | undefined, now: Date): number {
  const b = Date.parse(birthDate ?? '');
  return Math.floor((now.getTime() - b) / (365.25 * 86_400_000));
}

const GENERATION_NOW = new Date('2026-01-01T00:00:00.000Z');

/** The cohorts the bundled models are trained on, by model id. */
export const DATASETS: Record<string, DatasetSpec> = {
  'knee-oa-progression': {
    cohort: { kneeOa: true, lesions: 0 },
    env: (resources) => ({
      patient: ofType(resources, 'Patient')[0],
      conditions: searchset(ofType(resources, 'Condition')),
      observations: searchset(ofType(resources, 'Observation')),
    }),
    subjects: (_resources, truth) => [{ subject: {}, y: truth.kneeOa?.progressed24m ? 1 : 0 }],
    groups: (resources, _subject, x) => {
      const patient = ofType(resources, 'Patient')[0] as Patient;
      return {
        sex: patient.gender ?? 'unknown',
        ageBand: ageBand(ageAt(patient.birthDate, GENERATION_NOW), [55, 65]),
        klGrade:
          x.get('klGrade3')?.status === 'imputed'
            ? 'not recorded'
            : x.get('klGrade3')?.value
              ? 'KL 3'
              : 'KL 2',
      };
    },
  },
  'melanoma-risk': {
    cohort: { kneeOa: false, lesions: 1 },
    env: (resources) => ({
      patient: ofType(resources, 'Patient')[0],
      conditions: searchset(ofType(resources, 'Condition')),
      skin: searchset(ofType(resources, 'Observation')),
    }),
    subjects: (resources, truth) =>
      (ofType(resources, 'Observation') as Observation[])
        .filter((o) =>
          o.code.coding?.some((c) => c.system === SYSTEM.localObservation && c.code === LESION.panel),
        )
        .map((o) => ({
          subject: o,
          y: truth.lesions.find((l) => l.observationId === o.id)?.melanoma ? 1 : 0,
        })),
    groups: (resources) => {
      const patient = ofType(resources, 'Patient')[0] as Patient;
      const phototype = (ofType(resources, 'Observation') as Observation[]).find((o) =>
        o.code.coding?.some((c) => c.code === 'fitzpatrick-skin-type'),
      )?.valueCodeableConcept?.coding?.[0]?.code;
      return {
        sex: patient.gender ?? 'unknown',
        ageBand: ageBand(ageAt(patient.birthDate, GENERATION_NOW), [31, 61]),
        phototype:
          phototype === undefined ? 'not recorded' : ['I', 'II'].includes(phototype) ? 'I-II' : 'III-IV',
      };
    },
  },
};

/**
 * Generates patients `start … start + count − 1` of the seed's streams and extracts their rows.
 * @param onProgress called every 1,000 patients (for a progress line on long runs)
 */
export function buildDataset(
  spec: DatasetSpec,
  model: { features: readonly CompiledFeature[]; guards: readonly CompiledGuard[] },
  seed: number,
  start: number,
  count: number,
  onProgress: (done: number) => void = () => {},
): Dataset {
  const rows: Row[] = [];
  const excluded: Record<string, number> = {};
  for (let i = start; i < start + count; i += 1) {
    let truth: PatientTruth | undefined;
    const bundle: Bundle = generatePatient(createRng(seed, i), {
      ...spec.cohort,
      now: GENERATION_NOW,
      onTruth: (t) => (truth = t),
    });
    const resources = resourcesOf(toServerForm(bundle));
    const env = spec.env(resources);
    for (const { subject, y } of spec.subjects(resources, truth!)) {
      const extraction = extractFeatures(model.features, model.guards, subject, env, GENERATION_NOW);
      if (extraction.refusals.length > 0) {
        const code = extraction.refusals[0]!.code;
        excluded[code] = (excluded[code] ?? 0) + 1;
        continue;
      }
      const byId = new Map(extraction.values.map((v) => [v.id, v]));
      rows.push({
        x: extraction.values.map((v) => v.value),
        y,
        groups: spec.groups(resources, subject, byId),
        values: extraction.values,
      });
    }
    if ((i - start + 1) % 1000 === 0) onProgress(i - start + 1);
  }
  return { rows, excluded };
}
