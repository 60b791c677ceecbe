/**
 * `model explain`: scores one patient with a model folder and prints the estimate and its factors the
 * way a clinician reads them (value, unit, date, which way and how much each moved the estimate), what
 * was imputed, or why there is no estimate. The patient comes from a bundle file or a FHIR server.
 *
 * The manifest's `%variables` are filled like a service's prefetch: `%patient` is the Patient resource,
 * every other key a searchset of the patient's other resources (the manifest's expressions select by
 * resource type and code). The subject (`%focus`) is the patient, or `--focus Type/id`.
 */
import type { Bundle, Resource } from 'fhir/r4.js';
import { createFhirPath } from '../../src/rules/fhirpath.js';
import { loadModel } from '../../src/scoring/load.js';
import { formatRisk, type ModelOutcome, scoreSubjects } from '../../src/scoring/score.js';

export interface ExplainOptions {
  folder: string;
  resources: readonly Resource[];
  patientId?: string;
  focus?: string;
  now: Date;
  language: 'en' | 'fr';
}

/** Resource types fetched from a FHIR server for `explain --fhir-server`. */
export const FETCHED_TYPES = [
  'Condition',
  'Observation',
  'MedicationRequest',
  'MedicationStatement',
  'Procedure',
  'AllergyIntolerance',
  'Consent',
];

/** The patient's resources from a FHIR server (read-only GETs, following `next` links, 20 pages at most). */
export async function fetchPatient(
  base: string,
  patientId: string,
  fetchImpl: typeof fetch = fetch,
): Promise<Resource[]> {
  const root = base.replace(/\/+$/, '');
  const get = async (url: string): Promise<unknown> => {
    const res = await fetchImpl(url, { headers: { accept: 'application/fhir+json' } });
    if (!res.ok) throw new Error(`GET ${url}: HTTP ${res.status}`);
    return res.json();
  };
  const resources = [(await get(`${root}/Patient/${encodeURIComponent(patientId)}`)) as Resource];
  for (const type of FETCHED_TYPES) {
    let url: string | undefined = `${root}/${type}?patient=${encodeURIComponent(patientId)}&_count=200`;
    for (let page = 0; url && page < 20; page += 1) {
      const bundle = (await get(url)) as Bundle;
      for (const e of bundle.entry ?? []) if (e.resource) resources.push(e.resource);
      url = bundle.link?.find((l) => l.relation === 'next')?.url;
    }
  }
  return resources;
}

/** The resources of a bundle file's content (a Bundle, or one resource). */
export function resourcesOf(content: unknown): Resource[] {
  const v = content as { resourceType?: string; entry?: { resource?: Resource }[] };
  if (v?.resourceType === 'Bundle') return (v.entry ?? []).flatMap((e) => (e.resource ? [e.resource] : []));
  if (typeof v?.resourceType === 'string') return [content as Resource];
  throw new Error('not a FHIR Bundle or resource');
}

const signed = (x: number) => `${x >= 0 ? '+' : '−'}${Math.abs(x).toFixed(2)}`;

/** The outcome in words, as lines. */
export function describeOutcome(outcome: ModelOutcome, language: 'en' | 'fr', title: string): string[] {
  const lines = [`${title} ${outcome.model.version} — ${outcome.model.statusText[language]}`];
  if (outcome.status === 'objection')
    return [...lines, 'The patient objects to algorithmic processing: no estimate.'];
  if (outcome.status === 'not-scored') {
    return [
      ...lines,
      'No estimate for this patient:',
      ...outcome.reasons.map((r) => `  - ${r.text[language]}`),
      `Population of the model: ${outcome.population[language]}`,
    ];
  }
  const o = outcome;
  const horizon = o.horizonMonths > 0 ? ` within ${o.horizonMonths} months` : '';
  lines.push(
    `Estimated risk of ${o.outcome[language]}${horizon}: ${formatRisk(o.probability)} (${o.band.label[language]}; ` +
      `${o.aboveThreshold ? 'at or above' : 'below'} the threshold of ${formatRisk(o.threshold)})`,
    `Compared with the reference patient (${formatRisk(1 / (1 + Math.exp(-o.baselineLogit)))}), what raised or lowered it (log-odds):`,
  );
  const factors = [...o.contributions].sort((a, b) => Math.abs(b.contribution) - Math.abs(a.contribution));
  for (const c of factors) {
    const value = `${c.recorded ?? `${Number(c.value.toFixed(2))}${c.unit === '1' ? '' : ` ${c.unit}`}`}`;
    const when = c.date ? `, ${c.date.slice(0, 10)}` : '';
    const how =
      c.status === 'imputed'
        ? ` — imputed (${c.imputedBecause ?? 'missing'})`
        : c.status === 'assumed-absent'
          ? ' — not recorded, taken as absent'
          : '';
    const arrow = c.direction === 'raises' ? '↑ raises' : c.direction === 'lowers' ? '↓ lowers' : '· neutral';
    lines.push(`  ${arrow} ${signed(c.contribution)}  ${c.label[language]}: ${value}${when}${how}`);
  }
  lines.push(
    `Sum check: reference ${signed(o.baselineLogit)} + factors ${signed(o.contributions.reduce((s, c) => s + c.contribution, 0))} = logit of the estimate ${signed(Math.log(o.probability / (1 - o.probability)))}`,
    `For the patient: ${o.patientSentence[language]}`,
  );
  return lines;
}

/** Scores and explains the patient; returns the lines to print. */
export async function explainPatient(o: ExplainOptions): Promise<string[]> {
  const fhirpath = createFhirPath();
  const model = await loadModel(o.folder, fhirpath);
  try {
    const patients = o.resources.filter((r) => r.resourceType === 'Patient');
    const patient = o.patientId ? patients.find((p) => p.id === o.patientId) : patients[0];
    if (!patient)
      throw new Error(o.patientId ? `no Patient/${o.patientId} in the data` : 'no Patient in the data');
    const others = o.resources.filter((r) => r.resourceType !== 'Patient');
    const bundle: Bundle = {
      resourceType: 'Bundle',
      type: 'searchset',
      total: others.length,
      entry: others.map((resource) => ({ resource })),
    };
    const env: Record<string, unknown> = {};
    for (const key of model.manifest.requires) env[key] = key === 'patient' ? patient : bundle;
    let subject: unknown = patient;
    if (o.focus) {
      const [type, id] = o.focus.split('/');
      subject = o.resources.find((r) => r.resourceType === type && r.id === id);
      if (!subject) throw new Error(`no ${o.focus} in the data`);
    }
    const [outcome] = await scoreSubjects(model, [subject], env, o.now);
    return describeOutcome(outcome!, o.language, model.manifest.title[o.language]);
  } finally {
    await model.session.release();
  }
}
