/**
 * Follow-up records for outcome linkage (issue 19, `npm run evaluate`): for each generated patient a
 * model scores, the outcome is drawn from the model's own estimate (Bernoulli with its probability, a
 * seeded stream of its own), and written as the record the model's `outcomeDefinition` looks for, so
 * that a test knows the truth it should find:
 * - knee-oa-progression: a medial joint space narrowing Observation (local code `medial-jsn-loss`),
 *   0.5-1.5 mm 12 months later when the outcome occurred, 0-0.4 mm 25 months later (after the 24-month
 *   horizon) when it did not;
 * - melanoma-risk: for each examined lesion, its own draw and its own histology DiagnosticReport,
 *   melanoma (ICD-10 C43.9) one month later when the lesion is drawn a melanoma, melanocytic naevus
 *   (D22.9) four months later (after the 3-month horizon) otherwise; the report is tied to its lesion
 *   as a pathology report is, through its Specimen (`DiagnosticReport.specimen`), whose
 *   `collection.bodySite` is the lesion examination's body site.
 * Simulated data for demonstration models: the outcomes are as calibrated as the model is, by design.
 */
import type { Bundle, Condition, DiagnosticReport, Observation, Resource, Specimen } from 'fhir/r4.js';
import { LOCAL_OBSERVATION, SYSTEM } from '../../src/codes.js';
import type { LoadedModel } from '../../src/scoring/load.js';
import { scoreSubjects } from '../../src/scoring/score.js';
import { DATASETS } from '../training/datasets.js';
import { resourcesOf, toServerForm } from './bundle.js';
import { LOCAL_OBSERVATION_DISPLAY, type PatientTruth } from './patients.js';
import { createRng } from './random.js';

/** The seeded stream of the follow-up draws (apart from the patients' own streams). */
const FOLLOW_UP_STREAM = 0x5f0110;

/** What the follow-up of one patient holds, and the truth a test can check. */
export interface FollowUp {
  patientId: string;
  /** The model's estimates (one per subject: per lesion for melanoma-risk). */
  risks: number[];
  /** The patient's outcome: 1 when any subject's is. */
  outcome: 0 | 1;
  /** Each subject's outcome, as `risks` (melanoma-risk: each lesion's; knee-oa-progression: the one). */
  outcomes: (0 | 1)[];
  resources: Resource[];
}

function addMonths(at: Date, months: number): string {
  const d = new Date(at.getTime());
  d.setUTCMonth(d.getUTCMonth() + months);
  return d.toISOString();
}

function kneeRecord(patientId: string, outcome: 0 | 1, u: number, now: Date, index: number): Observation {
  return {
    resourceType: 'Observation',
    id: `follow-up-${index}`,
    status: 'final',
    category: [{ coding: [{ system: SYSTEM.observationCategory, code: 'imaging' }] }],
    code: {
      coding: [
        {
          system: SYSTEM.localObservation,
          code: LOCAL_OBSERVATION.medialJsnLoss,
          display: LOCAL_OBSERVATION_DISPLAY[LOCAL_OBSERVATION.medialJsnLoss]!,
        },
      ],
    },
    subject: { reference: `Patient/${patientId}` },
    effectiveDateTime: addMonths(now, outcome === 1 ? 12 : 25),
    valueQuantity: {
      value: Math.round((outcome === 1 ? 0.5 + u : 0.4 * u) * 100) / 100,
      unit: 'mm',
      system: SYSTEM.ucum,
      code: 'mm',
    },
  };
}

/**
 * The histology of one examined lesion: its Specimen (the excision, collected at the lesion's body site)
 * and the DiagnosticReport about it.
 */
export function histology(
  patientId: string,
  outcome: 0 | 1,
  now: Date,
  id: string,
  lesion: Observation,
): [Specimen, DiagnosticReport] {
  const code =
    outcome === 1
      ? ['C43.9', 'Malignant melanoma of skin, unspecified']
      : ['D22.9', 'Melanocytic naevi, unspecified'];
  const effective = addMonths(now, outcome === 1 ? 1 : 4);
  const specimen: Specimen = {
    resourceType: 'Specimen',
    id: `${id}-specimen`,
    type: { text: 'Excision biopsy of skin lesion' },
    subject: { reference: `Patient/${patientId}` },
    collection: {
      collectedDateTime: effective,
      ...(lesion.bodySite === undefined ? {} : { bodySite: lesion.bodySite }),
    },
  };
  const report: DiagnosticReport = {
    resourceType: 'DiagnosticReport',
    id,
    status: 'final',
    code: { text: 'Histology of excised skin lesion' },
    subject: { reference: `Patient/${patientId}` },
    effectiveDateTime: effective,
    specimen: [{ reference: `Specimen/${specimen.id}` }],
    conclusionCode: [{ coding: [{ system: SYSTEM.icd10, code: code[0], display: code[1] }] }],
  };
  return [specimen, report];
}

/** A knee osteoarthritis Condition (SNOMED CT 239873007, ICD-10 M17.x), as the service's focus finds it. */
function hasKneeOa(resource: Resource): boolean {
  if (resource.resourceType !== 'Condition') return false;
  return ((resource as Condition).code?.coding ?? []).some(
    (c) => (c.system === SYSTEM.snomed && c.code === '239873007') || (c.code ?? '').startsWith('M17'),
  );
}

/**
 * The follow-up of one generated patient (its bundle as the generator wrote it), or undefined when the
 * model does not score it (outside its population, no lesion).
 * @param index the patient's index in the cohort: its draw comes from stream `index` of the seed
 */
export async function followUpOf(
  model: LoadedModel,
  bundle: Bundle,
  seed: number,
  index: number,
  now: Date,
): Promise<FollowUp | undefined> {
  const spec = DATASETS[model.manifest.id];
  if (!spec) throw new Error(`no follow-up recipe for model "${model.manifest.id}"`);
  const resources = resourcesOf(toServerForm(bundle));
  const patientId = resources.find((r) => r.resourceType === 'Patient')?.id;
  if (patientId === undefined) return undefined;
  // The subjects only: their labels (the generator's latent truth) are not used.
  const noTruth = { lesions: [] } as unknown as PatientTruth;
  // The knee-OA service assesses patients with knee osteoarthritis recorded only (its focus).
  if (model.manifest.id === 'knee-oa-progression' && !resources.some(hasKneeOa)) return undefined;
  const subjects = spec.subjects(resources, noTruth).map((s) => s.subject);
  if (subjects.length === 0) return undefined;
  const scored = await scoreSubjects(model, subjects, spec.env(resources), now);
  const scoredSubjects = scored.flatMap((o, i) =>
    o.status === 'scored' ? [{ risk: o.probability, subject: subjects[i] as Observation }] : [],
  );
  const risks = scoredSubjects.map((s) => s.risk);
  if (risks.length === 0) return undefined;
  const rng = createRng(seed ^ FOLLOW_UP_STREAM, index);
  const outcomes = risks.map((p): 0 | 1 => (rng.next() < p ? 1 : 0));
  const outcome = outcomes.includes(1) ? 1 : 0;
  const u = rng.next();
  const records =
    model.manifest.id === 'melanoma-risk'
      ? scoredSubjects.flatMap((s, j) =>
          histology(patientId, outcomes[j]!, now, `follow-up-${index}-${j}`, s.subject),
        )
      : [kneeRecord(patientId, outcome, u, now, index)];
  return { patientId, risks, outcome, outcomes, resources: records };
}
