/**
 * Seeded, deterministic FHIR R4 synthetic patients for tests, demos and model training.
 *
 * Each patient is one `transaction` Bundle shaped like Synthea's output (`fullUrl: urn:uuid:<id>`,
 * `request: {method: POST, url: <Type>}`, references as `urn:uuid:<id>`), holding a Patient and the
 * Conditions, Observations, MedicationRequests and (optionally) a Consent that the bundled services read.
 *
 * Distributions follow reference/risk-factors.md: knee-OA patients use the §1.4 marginals (age, sex,
 * BMI, KL grade, pain, knee injury, hand OA), lesion patients the §2.4 marginals (age, sex, phototype,
 * naevus count, melanoma history), and lesion features follow §2.4 step 2 given a latent melanoma status
 * drawn from step 1. Latent variables (melanoma status, varus alignment, progression) are never written
 * into the bundle; {@link PatientOptions.onTruth} is the only way to read them.
 *
 * Determinism: every value comes from the {@link Rng} passed in and from the fixed `now`; nothing reads
 * the clock. Same seed + same `now` + same options ⇒ byte-identical JSON.
 */
import type {
  Bundle,
  BundleEntry,
  CodeableConcept,
  Coding,
  Condition,
  Consent,
  FhirResource,
  MedicationRequest,
  Observation,
  ObservationComponent,
  Patient,
  Quantity,
} from 'fhir/r4.js';
import { LESION, LOCAL_BASE, LOCAL_OBSERVATION, SYSTEM } from '../../src/codes.js';
import { createRng, type Rng } from './random.js';

// ---------------------------------------------------------------------------------------------------
// Public vocabulary
// ---------------------------------------------------------------------------------------------------

export type Gender = 'female' | 'male';
export type SmokingStatus = 'current' | 'former' | 'never';
export type Knee = 'left' | 'right';
export type FitzpatrickType = 'I' | 'II' | 'III' | 'IV' | 'V' | 'VI';
export type MedicationKey = 'ibuprofen' | 'naproxen' | 'acetaminophen' | 'warfarin' | 'clopidogrel';
export type MedicationStatus = 'active' | 'stopped';
export type SevenPointCode = (typeof LESION.sevenPoint)[keyof typeof LESION.sevenPoint];
export type DermoscopyCode = (typeof LESION.dermoscopy)[keyof typeof LESION.dermoscopy];
/** A lesion checklist item code: weighted 7-point checklist (`7pcl-*`) or dermoscopic (`d7pt-*`). */
export type LesionItemCode = SevenPointCode | DermoscopyCode;

export const SEVEN_POINT_CODES: readonly SevenPointCode[] = Object.values(LESION.sevenPoint);
export const DERMOSCOPY_CODES: readonly DermoscopyCode[] = Object.values(LESION.dermoscopy);
/** Major items of the weighted 7-point checklist (2 points each); the other four score 1 point. */
export const SEVEN_POINT_MAJOR: readonly SevenPointCode[] = [
  LESION.sevenPoint.changeSize,
  LESION.sevenPoint.irregularShape,
  LESION.sevenPoint.irregularColour,
];
/** Major criteria of the dermoscopic 7-point checklist (2 points each); the other four score 1 point. */
export const DERMOSCOPY_MAJOR: readonly DermoscopyCode[] = [
  LESION.dermoscopy.atypicalNetwork,
  LESION.dermoscopy.blueWhitishVeil,
  LESION.dermoscopy.atypicalVascular,
];
export const FITZPATRICK_TYPES: readonly FitzpatrickType[] = ['I', 'II', 'III', 'IV', 'V', 'VI'];

/**
 * English displays of every local observation code (system {@link SYSTEM.localObservation}); the same
 * strings are the displays in fhir-profiles/CodeSystem-cds-local-observation.json (a test checks it).
 */
export const LOCAL_OBSERVATION_DISPLAY: Readonly<Record<string, string>> = {
  [LESION.panel]: 'Lesion examination',
  [LESION.maxDiameter]: 'Lesion maximum diameter',
  [LESION.sevenPoint.changeSize]: 'Change in size',
  [LESION.sevenPoint.irregularShape]: 'Irregular shape',
  [LESION.sevenPoint.irregularColour]: 'Irregular colour',
  [LESION.sevenPoint.diameter7mm]: 'Largest diameter 7 mm or more',
  [LESION.sevenPoint.inflammation]: 'Inflammation',
  [LESION.sevenPoint.oozing]: 'Oozing',
  [LESION.sevenPoint.sensation]: 'Change in sensation',
  [LESION.dermoscopy.atypicalNetwork]: 'Atypical pigment network',
  [LESION.dermoscopy.blueWhitishVeil]: 'Blue-whitish veil',
  [LESION.dermoscopy.atypicalVascular]: 'Atypical vascular pattern',
  [LESION.dermoscopy.irregularStreaks]: 'Irregular streaks',
  [LESION.dermoscopy.irregularPigmentation]: 'Irregular pigmentation (blotches)',
  [LESION.dermoscopy.irregularDotsGlobules]: 'Irregular dots/globules',
  [LESION.dermoscopy.regression]: 'Regression structures',
  [LOCAL_OBSERVATION.klGrade]: 'Kellgren-Lawrence grade',
  [LOCAL_OBSERVATION.fitzpatrick]: 'Fitzpatrick skin type',
  [LOCAL_OBSERVATION.naevusCountTotal]: 'Number of naevi, total',
  [LOCAL_OBSERVATION.naevusCountAtypical]: 'Number of atypical naevi',
  [LOCAL_OBSERVATION.medialJsnLoss]: 'Medial joint space narrowing since baseline',
};

/** English displays of the Fitzpatrick skin types (fhir-profiles/CodeSystem-fitzpatrick-skin-type.json). */
export const FITZPATRICK_DISPLAY: Readonly<Record<FitzpatrickType, string>> = {
  I: 'Type I',
  II: 'Type II',
  III: 'Type III',
  IV: 'Type IV',
  V: 'Type V',
  VI: 'Type VI',
};

/** LOINC codes written by the generator (reference/clinical-codes.md §1.1, §1.3). */
export const LOINC = {
  bmi: { code: '39156-5', display: 'Body mass index (BMI) [Ratio]' },
  weight: { code: '29463-7', display: 'Body weight' },
  height: { code: '8302-2', display: 'Body height' },
  pain: { code: '72514-3', display: 'Pain severity - 0-10 verbal numeric rating [Score] - Reported' },
  smoking: { code: '72166-2', display: 'Tobacco smoking status NHIS' },
  egfr: {
    code: '33914-3',
    display:
      'Glomerular filtration rate/1.73 sq M.predicted [Volume Rate/Area] in Serum or Plasma by Creatinine-based formula (MDRD)',
  },
} as const;

/** SNOMED CT answers of 72166-2 (reference/clinical-codes.md §1.2). */
export const SMOKING_ANSWER = {
  currentEveryDay: { code: '449868002', display: 'Current every day smoker' },
  currentSomeDay: { code: '428041000124106', display: 'Current some day smoker' },
  former: { code: '8517006', display: 'Former smoker' },
  never: { code: '266919005', display: 'Never smoker' },
} as const;

/** SNOMED CT condition codes written by the generator (reference/clinical-codes.md §2.1). */
export const SNOMED_CONDITION = {
  kneeOa: { code: '239873007', display: 'Osteoarthritis of knee' },
  hipOa: { code: '239872002', display: 'Osteoarthritis of hip' },
  handOa: { code: '201834006', display: 'Localized, primary osteoarthritis of the hand' },
  aclInjury: { code: '444470001', display: 'Injury of anterior cruciate ligament' },
  mclInjury: { code: '444448004', display: 'Injury of medial collateral ligament of knee' },
  meniscusTear: { code: '239720000', display: 'Tear of meniscus of knee' },
  patellarTendonRupture: { code: '30832001', display: 'Rupture of patellar tendon' },
  diabetesType2: { code: '44054006', display: 'Diabetes mellitus type 2 (disorder)' },
  prediabetes: { code: '15777000', display: 'Prediabetes' },
  hypertension: { code: '59621000', display: 'Essential hypertension (disorder)' },
  hypertensionOld: { code: '38341003', display: 'Hypertension' },
  heartFailure: { code: '88805009', display: 'Chronic congestive heart failure (disorder)' },
  atrialFibrillation: { code: '49436004', display: 'Atrial fibrillation' },
  pepticUlcerHaemorrhage: { code: '12274003', display: 'Acute peptic ulcer with hemorrhage' },
  giHaemorrhage: { code: '74474003', display: 'Gastrointestinal hemorrhage' },
  ckdStage1: { code: '431855005', display: 'Chronic kidney disease stage 1 (disorder)' },
  ckdStage2: { code: '431856006', display: 'Chronic kidney disease stage 2 (disorder)' },
  ckdStage3: { code: '433144002', display: 'Chronic kidney disease stage 3 (disorder)' },
  ckdStage4: { code: '431857002', display: 'Chronic kidney disease stage 4 (disorder)' },
  ckdStage5: { code: '433146000', display: 'Chronic kidney disease stage 5 (disorder)' },
} as const;

/** SNOMED CT knee-injury codes the generator picks from (all "specific" injuries in §1.1's sense). */
export const KNEE_INJURY_CODES: readonly string[] = [
  SNOMED_CONDITION.aclInjury.code,
  SNOMED_CONDITION.mclInjury.code,
  SNOMED_CONDITION.meniscusTear.code,
  SNOMED_CONDITION.patellarTendonRupture.code,
];

/** CKD stage Condition codes, index = stage − 1. */
export const CKD_STAGE_CODES: readonly string[] = [
  SNOMED_CONDITION.ckdStage1.code,
  SNOMED_CONDITION.ckdStage2.code,
  SNOMED_CONDITION.ckdStage3.code,
  SNOMED_CONDITION.ckdStage4.code,
  SNOMED_CONDITION.ckdStage5.code,
];

/** ICD-10 (WHO, {@link SYSTEM.icd10}) codes written by the generator (reference/clinical-codes.md §2.2). */
export const ICD10 = {
  kneeOaPrimaryBilateral: { code: 'M17.0', display: 'Primary gonarthrosis, bilateral' },
  kneeOaPrimaryOther: { code: 'M17.1', display: 'Other primary gonarthrosis' },
  kneeOaPostTraumaticBilateral: { code: 'M17.2', display: 'Post-traumatic gonarthrosis, bilateral' },
  kneeOaPostTraumaticOther: { code: 'M17.3', display: 'Other post-traumatic gonarthrosis' },
  melanoma: { code: 'C43.9', display: 'Malignant melanoma of skin, unspecified' },
} as const;

/** RxNorm products (SCD) written by the generator (reference/clinical-codes.md §3.2). */
export const MEDICATIONS: Readonly<Record<MedicationKey, { code: string; display: string }>> = {
  ibuprofen: { code: '310965', display: 'Ibuprofen 200 MG Oral Tablet' },
  naproxen: { code: '849574', display: 'Naproxen sodium 220 MG Oral Tablet' },
  acetaminophen: { code: '313782', display: 'Acetaminophen 325 MG Oral Tablet' },
  warfarin: { code: '855332', display: 'Warfarin Sodium 5 MG Oral Tablet' },
  clopidogrel: { code: '309362', display: 'Clopidogrel 75 MG Oral Tablet' },
};

/** Purpose-of-use code of an objection to algorithmic processing (reference/clinical-codes.md §4). */
export const OBJECTION_PURPOSE = 'algorithmic-decision-support';
/** Placeholder policy URI of the objection Consent (a site replaces it with its published policy). */
export const OBJECTION_POLICY_URI = `${new URL(LOCAL_BASE).origin}/policies/objection-to-automated-processing`;

// ---------------------------------------------------------------------------------------------------
// Options
// ---------------------------------------------------------------------------------------------------

/**
 * Probabilities (0–1) the generator draws with. Defaults in {@link DEFAULT_RATES}; they are design
 * choices for demonstration data (reference/risk-factors.md labels them [design]), not prevalences of any
 * real population. Rates marked "age-adjusted" are multiplied by an age factor whose mean over the
 * default age distribution is about 1, so the cohort share stays close to the rate.
 */
export interface Rates {
  /** Patient has knee osteoarthritis. Knee-OA patients then follow the §1.4 marginals (age 45–79, 60% female). */
  kneeOa: number;
  /** Share of knee-OA Conditions that also carry an ICD-10 M17.x coding. */
  kneeOaIcd10: number;
  /** Share of knee-OA patients with OA in both knees. */
  kneeOaBilateral: number;
  /** Share of knee-OA patients with a recorded Kellgren-Lawrence grade (local `kl-grade`). */
  klGradeRecorded: number;
  /** Hip OA. */
  hipOa: number;
  /** Hand OA in patients without knee OA. */
  handOa: number;
  /** Hand OA / Heberden's nodes in knee-OA patients (§1.4: 35%). */
  handOaWithKneeOa: number;
  /** Prior knee injury in patients without knee OA. */
  kneeInjury: number;
  /** Prior specific knee injury in knee-OA patients (§1.4: 19%). */
  kneeInjuryWithKneeOa: number;
  /** Type 2 diabetes (BMI-adjusted: ×1.8 when BMI ≥ 30, ×0.7 below). */
  diabetes: number;
  /** Prediabetes, among patients without type 2 diabetes. */
  prediabetes: number;
  /** Hypertension (age-adjusted). */
  hypertension: number;
  /** Chronic heart failure (age-adjusted). */
  heartFailure: number;
  /** Atrial fibrillation (age-adjusted). */
  atrialFibrillation: number;
  /** History of peptic ulcer with haemorrhage or GI haemorrhage. */
  giBleed: number;
  /** Chronic kidney disease, any stage (age-adjusted; ×1.5 with diabetes). */
  ckd: number;
  /** Personal history of melanoma (resolved ICD-10 C43.9 Condition). */
  melanomaHistory: number;
  /** Current smoker (every day or some days). */
  currentSmoker: number;
  /** Former smoker. */
  formerSmoker: number;
  /** Patient has at least one lesion examination (1 lesion 85%, 2 12%, 3 3%). */
  lesion: number;
  /** Skin assessment (Fitzpatrick type, naevus counts) recorded, in patients with a lesion examination. */
  skinAssessmentWithLesion: number;
  /** Skin assessment recorded, in patients without a lesion examination. */
  skinAssessment: number;
  /** Dermoscopy performed, per lesion. */
  dermoscopy: number;
  /** Each 7-point-checklist item and the diameter is left unrecorded (component omitted) with this probability. */
  lesionItemMissing: number;
  /** An NSAID, paracetamol, warfarin or clopidogrel request is still active (else stopped). */
  medicationActive: number;
}

/** Default {@link Rates}. */
export const DEFAULT_RATES: Readonly<Rates> = Object.freeze({
  kneeOa: 0.15,
  kneeOaIcd10: 0.5,
  kneeOaBilateral: 0.4,
  klGradeRecorded: 0.3,
  hipOa: 0.05,
  handOa: 0.05,
  handOaWithKneeOa: 0.35,
  kneeInjury: 0.04,
  kneeInjuryWithKneeOa: 0.19,
  diabetes: 0.1,
  prediabetes: 0.15,
  hypertension: 0.3,
  heartFailure: 0.03,
  atrialFibrillation: 0.04,
  giBleed: 0.04,
  ckd: 0.08,
  melanomaHistory: 0.03,
  currentSmoker: 0.15,
  formerSmoker: 0.25,
  lesion: 0.2,
  skinAssessmentWithLesion: 0.8,
  skinAssessment: 0.1,
  dermoscopy: 0.5,
  lesionItemMissing: 0.05,
  medicationActive: 0.7,
});

/**
 * Per-patient options. Every forcing option is optional: when absent the feature is drawn at its rate.
 * Forcing one feature does not force related ones (e.g. `ckdStage: 4` does not add an eGFR unless the
 * patient gets one anyway; it does make the eGFR consistent with stage 4).
 */
export interface PatientOptions {
  /** Age in whole years at `now`, 18–90. Default: drawn from the patient's cohort marginal. */
  age?: number;
  /** Administrative gender. Default: drawn (60% female with knee OA, 65% with lesions, else 52%). */
  gender?: Gender;
  /** Force knee osteoarthritis present (`true`) or absent (`false`). */
  kneeOa?: boolean;
  /** Force bilateral (`true`) or unilateral (`false`) knee OA; only used when the patient has knee OA. */
  kneeOaBilateral?: boolean;
  /**
   * Force a recorded Kellgren-Lawrence grade 0–4 for the index knee (implies knee OA). `null` forces no
   * KL-grade Observation.
   */
  klGrade?: number | null;
  /** Force hip OA present or absent. */
  hipOa?: boolean;
  /** Force hand OA present or absent. */
  handOa?: boolean;
  /** Force a prior knee injury present or absent. */
  kneeInjury?: boolean;
  /** Force type 2 diabetes present or absent. */
  diabetes?: boolean;
  /** Force prediabetes present or absent (independent of `diabetes` when both are forced). */
  prediabetes?: boolean;
  /** Force hypertension present or absent. */
  hypertension?: boolean;
  /** Force chronic heart failure present or absent. */
  heartFailure?: boolean;
  /** Force atrial fibrillation present or absent. */
  atrialFibrillation?: boolean;
  /** Force a history of peptic ulcer / GI bleed present or absent. */
  giBleed?: boolean;
  /** Force a CKD stage 1–5, or 0 for no CKD Condition. */
  ckdStage?: number;
  /** Force a personal history of melanoma present or absent. */
  melanomaHistory?: boolean;
  /** Force the smoking status. */
  smoking?: SmokingStatus;
  /** Force the latest BMI (kg/m², 12–80); earlier visits still form a trend ending there. */
  bmi?: number;
  /** Force the latest pain score (0–10). */
  painScore?: number;
  /** Force the latest eGFR (mL/min/1.73 m², 1–200); `null` forces no eGFR Observation. */
  egfr?: number | null;
  /**
   * Force medication requests: per drug, `'active'` or `'stopped'` adds one request with that status,
   * `null` forbids the drug; drugs not listed are drawn as usual.
   */
  medications?: Partial<Record<MedicationKey, MedicationStatus | null>>;
  /** Force the skin assessment (Fitzpatrick type and naevus counts) recorded or not. */
  skinAssessment?: boolean;
  /** Force the Fitzpatrick skin type (used in the latent melanoma risk whether recorded or not). */
  fitzpatrick?: FitzpatrickType;
  /** Force the total naevus count (0–1000). */
  naevusCount?: number;
  /** Force the atypical naevus count (0–1000). */
  atypicalNaevusCount?: number;
  /** Force the number of lesion examinations, 0–10. */
  lesions?: number;
  /** Force dermoscopy performed (`true`, all `d7pt-*` items recorded) or not (`false`, none) on every lesion. */
  dermoscopy?: boolean;
  /**
   * Force checklist items on every lesion: `true` present, `false` looked for and absent, `null` not
   * recorded (component omitted). Forcing a `d7pt-*` item implies dermoscopy (and conflicts with
   * `dermoscopy: false`). A forced `7pcl-diameter-7mm` makes the generated diameter agree with it.
   */
  lesionItems?: Partial<Record<LesionItemCode, boolean | null>>;
  /** Force the lesion maximum diameter in mm (0.1–200); `null` = not recorded. */
  lesionDiameterMm?: number | null;
  /** Force the lesion body site text (default: drawn, e.g. 'left forearm'). */
  lesionSite?: string;
  /** Force an active objection Consent present (`true`) or absent (`false`). */
  objection?: boolean;
  /** Probability of an active objection Consent (§4 of reference/clinical-codes.md). Default 0. */
  objectionRate?: number;
  /** Overrides of {@link DEFAULT_RATES}. */
  rates?: Partial<Rates>;
  /**
   * Receives the latent variables of each generated patient (never written into the bundle), e.g. to
   * label a training set. Called once per patient, after the bundle is built.
   */
  onTruth?: (truth: PatientTruth) => void;
}

/** Options of {@link generatePatient}: {@link PatientOptions} plus the fixed clock. */
export interface GeneratePatientOptions extends PatientOptions {
  /** The fixed "current time"; every date is computed relative to it. */
  now: Date;
}

/** Options of {@link generateCohort}. */
export interface CohortOptions extends PatientOptions {
  /** Any safe integer. Patient `i` uses stream `i` of this seed, so it does not depend on `count`. */
  seed: number;
  /** Number of patients, 0–1,000,000. */
  count: number;
  /** The fixed "current time"; every date is computed relative to it. */
  now: Date;
}

/** Latent knee-OA variables (reference/risk-factors.md §1.4). */
export interface KneeOaTruth {
  indexKnee: Knee;
  /** KL grade of the index knee (equals the recorded value when one is recorded). */
  klGrade: number;
  /** WOMAC pain 0–100 (latent; the written pain score is derived from it). */
  womacPain: number;
  /** Varus alignment (latent, never written). */
  varus: boolean;
  /** P(rapid radiographic progression within 24 months) from the §1.4 data-generating model. */
  progressionProbability: number;
  /** Drawn outcome: rapid progression within 24 months. */
  progressed24m: boolean;
}

/** Latent lesion variables (reference/risk-factors.md §2.4). */
export interface LesionTruth {
  /** `id` of the lesion-examination Observation. */
  observationId: string;
  /** P(melanoma) from §2.4 step 1 (patient factors). */
  melanomaProbability: number;
  /** Drawn latent melanoma status. */
  melanoma: boolean;
}

/** Everything latent about one generated patient. */
export interface PatientTruth {
  patientId: string;
  kneeOa: KneeOaTruth | null;
  /** Latent family history of melanoma (raises the melanoma risk; not written). */
  familyHistoryMelanoma: boolean;
  /** Latent immunosuppression (raises the melanoma risk; not written). */
  immunosuppressed: boolean;
  lesions: LesionTruth[];
}

// ---------------------------------------------------------------------------------------------------
// Small helpers
// ---------------------------------------------------------------------------------------------------

const DAY_MS = 86_400_000;
const YEAR_DAYS = 365.25;

const FEMALE_GIVEN: readonly string[] = (
  'Alice Amelie Anna Beatrice Camille Chloe Claire Clara Elena Elise Emma Eva Fatima Frida ' +
  'Grace Hannah Helene Ines Ingrid Irene Jeanne Julia Lea Lina Louise Lucia Margaux Maria ' +
  'Marta Maya Nadia Nina Olivia Paula Rosa Sarah Sofia Sophie Vera Zoe'
).split(' ');
const MALE_GIVEN: readonly string[] = (
  'Adam Ahmed Albert Anton Arthur Benoit Carl David Elias Emil Felix Florian Gabriel Hugo ' +
  'Ivan Jakob Jonas Jules Karim Leon Lucas Luis Marc Mateo Max Nathan Nils Noah Oscar Pablo ' +
  'Paul Pierre Rafael Samuel Simon Teo Thomas Victor Yann Yusuf'
).split(' ');
const FAMILY: readonly string[] = (
  'Andersen Bauer Bernard Berg Blanc Brown Costa Dubois Durand Eriksen Fischer Fontaine ' +
  'Garcia Girard Hansen Hoffmann Jansen Keller Klein Koch Lambert Larsen Laurent Lefebvre ' +
  'Lopez Martin Meier Mercier Meyer Moreau Muller Nielsen Novak Petit Peeters Richter Roux ' +
  'Rossi Schmid Schneider Silva Smith Vidal Wagner Weber Wilson Wolf Young Zimmermann ' +
  'Ziegler'
).split(' ');
const LESION_SITES: readonly string[] = [
  'upper back',
  'lower back',
  'chest',
  'abdomen',
  'neck',
  'face',
  'scalp',
  'left shoulder',
  'right shoulder',
  'left upper arm',
  'right upper arm',
  'left forearm',
  'right forearm',
  'left thigh',
  'right thigh',
  'left lower leg',
  'right lower leg',
  'left foot',
  'right foot',
];

function round(value: number, digits = 1): number {
  const f = 10 ** digits;
  return Math.round(value * f) / f;
}

function clamp(value: number, lo: number, hi: number): number {
  return Math.min(hi, Math.max(lo, value));
}

function logistic(x: number): number {
  return 1 / (1 + Math.exp(-x));
}

/** FHIR dateTime without milliseconds, in UTC: `2025-03-04T09:15:00Z`. */
function dateTime(date: Date): string {
  return `${date.toISOString().slice(0, 19)}Z`;
}

/** FHIR date (UTC): `2025-03-04`. */
function dateOnly(date: Date): string {
  return date.toISOString().slice(0, 10);
}

function checkRange(name: string, value: number | undefined, lo: number, hi: number, integer: boolean): void {
  if (value === undefined) return;
  const ok = typeof value === 'number' && Number.isFinite(value) && value >= lo && value <= hi;
  if (!ok || (integer && !Number.isInteger(value))) {
    const what = integer ? `an integer from ${lo} to ${hi}` : `a number from ${lo} to ${hi}`;
    throw new RangeError(`${name} must be ${what} (got ${String(value)})`);
  }
}

function resolveRates(overrides: Partial<Rates> | undefined): Rates {
  const rates: Rates = { ...DEFAULT_RATES };
  if (overrides === undefined) return rates;
  for (const [key, value] of Object.entries(overrides)) {
    if (!Object.hasOwn(DEFAULT_RATES, key)) throw new RangeError(`unknown rate "${key}"`);
    if (value === undefined) continue;
    checkRange(`rates.${key}`, value, 0, 1, false);
    rates[key as keyof Rates] = value;
  }
  return rates;
}

function validateOptions(options: GeneratePatientOptions): void {
  const { now } = options;
  if (!(now instanceof Date) || Number.isNaN(now.getTime())) {
    throw new TypeError('now must be a valid Date');
  }
  checkRange('age', options.age, 18, 90, true);
  checkRange('klGrade', options.klGrade ?? undefined, 0, 4, true);
  checkRange('ckdStage', options.ckdStage, 0, 5, true);
  checkRange('bmi', options.bmi, 12, 80, false);
  checkRange('painScore', options.painScore, 0, 10, true);
  checkRange('egfr', options.egfr ?? undefined, 1, 200, false);
  checkRange('naevusCount', options.naevusCount, 0, 1000, true);
  checkRange('atypicalNaevusCount', options.atypicalNaevusCount, 0, 1000, true);
  checkRange('lesions', options.lesions, 0, 10, true);
  checkRange('lesionDiameterMm', options.lesionDiameterMm ?? undefined, 0.1, 200, false);
  checkRange('objectionRate', options.objectionRate, 0, 1, false);
  if (options.gender !== undefined && options.gender !== 'female' && options.gender !== 'male') {
    throw new RangeError(`gender must be 'female' or 'male' (got ${String(options.gender)})`);
  }
  if (options.smoking !== undefined && !['current', 'former', 'never'].includes(options.smoking)) {
    throw new RangeError(`smoking must be 'current', 'former' or 'never' (got ${String(options.smoking)})`);
  }
  if (options.fitzpatrick !== undefined && !FITZPATRICK_TYPES.includes(options.fitzpatrick)) {
    throw new RangeError(
      `fitzpatrick must be one of I, II, III, IV, V, VI (got ${String(options.fitzpatrick)})`,
    );
  }
  if (options.klGrade !== undefined && options.klGrade !== null && options.kneeOa === false) {
    throw new RangeError('klGrade needs knee OA (it conflicts with kneeOa: false)');
  }
  for (const [key, status] of Object.entries(options.medications ?? {})) {
    if (!Object.hasOwn(MEDICATIONS, key)) throw new RangeError(`unknown medication "${key}"`);
    if (status !== undefined && status !== null && status !== 'active' && status !== 'stopped') {
      throw new RangeError(`medications.${key} must be 'active', 'stopped' or null (got ${String(status)})`);
    }
  }
  const items = options.lesionItems ?? {};
  for (const [code, value] of Object.entries(items)) {
    const known =
      (SEVEN_POINT_CODES as readonly string[]).includes(code) ||
      (DERMOSCOPY_CODES as readonly string[]).includes(code);
    if (!known) throw new RangeError(`unknown lesion item "${code}"`);
    if (value !== undefined && value !== null && typeof value !== 'boolean') {
      throw new RangeError(`lesionItems["${code}"] must be true, false or null (got ${String(value)})`);
    }
    const forcesDermoscopy = (DERMOSCOPY_CODES as readonly string[]).includes(code) && value !== undefined;
    if (forcesDermoscopy && options.dermoscopy === false) {
      throw new RangeError(`lesionItems["${code}"] needs dermoscopy (it conflicts with dermoscopy: false)`);
    }
  }
}

// ---------------------------------------------------------------------------------------------------
// Resource builders
// ---------------------------------------------------------------------------------------------------

function coding(system: string, entry: { code: string; display: string }): Coding {
  return { system, code: entry.code, display: entry.display };
}

function concept(codings: Coding[], text?: string): CodeableConcept {
  return text === undefined ? { coding: codings } : { coding: codings, text };
}

const CATEGORY_DISPLAY = {
  'vital-signs': 'Vital Signs',
  laboratory: 'Laboratory',
  survey: 'Survey',
  exam: 'Exam',
  imaging: 'Imaging',
} as const;
type ObservationCategory = keyof typeof CATEGORY_DISPLAY;

function category(code: ObservationCategory): CodeableConcept[] {
  return [{ coding: [{ system: SYSTEM.observationCategory, code, display: CATEGORY_DISPLAY[code] }] }];
}

function quantity(value: number, unit: string): Quantity {
  return { value, unit, system: SYSTEM.ucum, code: unit };
}

function localCode(code: string): CodeableConcept {
  const display = LOCAL_OBSERVATION_DISPLAY[code] ?? code;
  return { coding: [{ system: SYSTEM.localObservation, code, display }], text: display };
}

/** Collects the entries of one patient's bundle. */
interface Builder {
  rng: Rng;
  now: Date;
  patientRef: string;
  entries: BundleEntry[];
}

function add(builder: Builder, resource: FhirResource & { id: string }): void {
  builder.entries.push({
    fullUrl: `urn:uuid:${resource.id}`,
    resource,
    request: { method: 'POST', url: resource.resourceType },
  });
}

interface ConditionSpec {
  codings: Coding[];
  text: string;
  onset: Date;
  clinicalStatus?: 'active' | 'resolved' | 'inactive' | 'remission';
  abatement?: Date;
  bodySite?: string[];
}

function addCondition(builder: Builder, spec: ConditionSpec): Condition {
  const status = spec.clinicalStatus ?? 'active';
  const resource: Condition & { id: string } = {
    resourceType: 'Condition',
    id: builder.rng.uuid(),
    clinicalStatus: { coding: [{ system: SYSTEM.conditionClinical, code: status }] },
    verificationStatus: { coding: [{ system: SYSTEM.conditionVerification, code: 'confirmed' }] },
    code: concept(spec.codings, spec.text),
    ...(spec.bodySite ? { bodySite: spec.bodySite.map((text) => ({ text })) } : {}),
    subject: { reference: builder.patientRef },
    onsetDateTime: dateTime(spec.onset),
    ...(spec.abatement ? { abatementDateTime: dateTime(spec.abatement) } : {}),
    recordedDate: dateTime(spec.onset),
  };
  add(builder, resource);
  return resource;
}

type ObservationValue = Pick<
  Observation,
  'valueQuantity' | 'valueCodeableConcept' | 'valueInteger' | 'valueBoolean'
>;

interface ObservationSpec {
  category: ObservationCategory;
  code: CodeableConcept;
  when: Date;
  value?: ObservationValue;
  bodySite?: string;
  component?: ObservationComponent[];
}

function addObservation(builder: Builder, spec: ObservationSpec): Observation & { id: string } {
  const resource: Observation & { id: string } = {
    resourceType: 'Observation',
    id: builder.rng.uuid(),
    status: 'final',
    category: category(spec.category),
    code: spec.code,
    subject: { reference: builder.patientRef },
    effectiveDateTime: dateTime(spec.when),
    ...(spec.value ?? {}),
    ...(spec.bodySite ? { bodySite: { text: spec.bodySite } } : {}),
    ...(spec.component ? { component: spec.component } : {}),
  };
  add(builder, resource);
  return resource;
}

function loincCode(entry: { code: string; display: string }): CodeableConcept {
  return concept([coding(SYSTEM.loinc, entry)], entry.display);
}

// ---------------------------------------------------------------------------------------------------
// The generator
// ---------------------------------------------------------------------------------------------------

/** Years-ago of an abatement `gap` years after an onset `years` ago, never at or before the onset. */
function abatementYears(years: number, gap: number): number {
  return Math.max(years / 2, years - gap);
}

/** Age-adjustment factor: `young` below `a`, 1 from `a` to below `b`, `old` from `b` on. */
function ageFactor(age: number, a: number, b: number, young: number, old: number): number {
  if (age < a) return young;
  return age < b ? 1 : old;
}

/** Forced boolean if given, else a draw (the draw is made either way, so later draws stay aligned). */
function decide(rng: Rng, forced: boolean | undefined, p: number): boolean {
  const drawn = rng.bool(clamp(p, 0, 1));
  return forced ?? drawn;
}

/**
 * Generates one patient as a transaction Bundle. All randomness comes from `rng`; all dates are
 * relative to `options.now`.
 *
 * @throws RangeError when an option is out of range, TypeError when `now` is not a valid Date.
 */
export function generatePatient(rng: Rng, options: GeneratePatientOptions): Bundle {
  validateOptions(options);
  const rates = resolveRates(options.rates);
  const now = options.now;
  const patientId = rng.uuid();
  const builder: Builder = { rng, now, patientRef: `urn:uuid:${patientId}`, entries: [] };
  const today = Date.UTC(now.getUTCFullYear(), now.getUTCMonth(), now.getUTCDate());

  // ---- cohort membership: decided first, because it selects the marginals ----
  const kneeOa = decide(
    rng,
    options.kneeOa ?? (typeof options.klGrade === 'number' ? true : undefined),
    rates.kneeOa,
  );
  const drawnLesionCount = rng.bool(rates.lesion)
    ? rng.weighted([
        [1, 85],
        [2, 12],
        [3, 3],
      ] as const)
    : 0;
  const lesionCount = options.lesions ?? drawnLesionCount;

  // ---- demographics ----
  let drawnAge: number;
  let pFemale: number;
  if (kneeOa) {
    drawnAge = rng.truncNormal(62, 9, 45, 79.999);
    pFemale = 0.6;
  } else if (lesionCount > 0) {
    drawnAge = rng.truncNormal(45, 18, 18, 90.999);
    pFemale = 0.65;
  } else {
    drawnAge = rng.truncNormal(50, 17, 18, 90.999);
    pFemale = 0.52;
  }
  const age = options.age ?? Math.floor(drawnAge);
  const drawnGender: Gender = rng.bool(pFemale) ? 'female' : 'male';
  const gender = options.gender ?? drawnGender;
  const given = rng.pick(gender === 'female' ? FEMALE_GIVEN : MALE_GIVEN);
  const family = rng.pick(FAMILY);
  const birthOffsetDays = rng.int(0, 363);
  const anniversary = Date.UTC(now.getUTCFullYear() - age, now.getUTCMonth(), now.getUTCDate());
  const birthDate = new Date(anniversary - birthOffsetDays * DAY_MS);

  const patient: Patient & { id: string } = {
    resourceType: 'Patient',
    id: patientId,
    name: [{ use: 'official', family, given: [given] }],
    gender,
    birthDate: dateOnly(birthDate),
  };
  add(builder, patient);

  /** A moment `years` before now (fractional), at a drawn working hour. */
  const yearsAgo = (years: number): Date => {
    const days = Math.max(1, Math.round(years * YEAR_DAYS));
    return new Date(today - days * DAY_MS + rng.int(8 * 60, 17 * 60) * 60_000);
  };
  /** Onset between `lo` and `hi` years ago, never before the 18th birthday. */
  const onsetYearsAgo = (lo: number, hi: number): number => {
    const adultYears = Math.max(0.1, age - 18);
    const top = Math.min(hi, adultYears);
    const bottom = Math.min(lo, top);
    return bottom + rng.next() * (top - bottom);
  };

  // ---- visits (vital signs at each; the latest within the last 60 days) ----
  const visitCount = rng.int(3, 5);
  const visitDaysAgo: number[] = [rng.int(1, 60)];
  for (let i = 1; i < visitCount; i++) visitDaysAgo.push(visitDaysAgo[i - 1]! + rng.int(150, 400));
  visitDaysAgo.reverse(); // oldest first
  const visits = visitDaysAgo.map(
    (days) => new Date(today - days * DAY_MS + rng.int(8 * 60, 17 * 60) * 60_000),
  );
  const latestVisit = visits[visits.length - 1]!;

  // ---- anthropometrics ----
  const drawnHeight =
    gender === 'female' ? rng.truncNormal(163, 6.5, 140, 190) : rng.truncNormal(176, 7, 150, 205);
  const heightCm = round(drawnHeight, 1);
  const drawnBmi = kneeOa ? rng.truncNormal(29.5, 4.8, 18.5, 50) : rng.truncNormal(27.5, 5.5, 17, 55);
  const bmiLatest = options.bmi ?? round(drawnBmi, 1);
  const bmiSlope = rng.normal(0.2, 0.7); // kg/m² per year

  // ---- comorbidities ----
  const diabetes = decide(rng, options.diabetes, rates.diabetes * (bmiLatest >= 30 ? 1.8 : 0.7));
  const prediabetes = decide(rng, options.prediabetes, diabetes ? 0 : rates.prediabetes);
  const hypertension = decide(
    rng,
    options.hypertension,
    rates.hypertension * ageFactor(age, 40, 60, 0.3, 1.9),
  );
  const heartFailure = decide(rng, options.heartFailure, rates.heartFailure * ageFactor(age, 50, 70, 0.2, 3));
  const atrialFibrillation = decide(
    rng,
    options.atrialFibrillation,
    rates.atrialFibrillation * ageFactor(age, 50, 70, 0.2, 3),
  );
  const giBleed = decide(rng, options.giBleed, rates.giBleed);
  const hasCkd = rng.bool(clamp(rates.ckd * ageFactor(age, 50, 70, 0.4, 2.2) * (diabetes ? 1.5 : 1), 0, 1));
  const drawnStage = rng.weighted([
    [1, 10],
    [2, 30],
    [3, 45],
    [4, 12],
    [5, 3],
  ] as const);
  const ckdStage = options.ckdStage ?? (hasCkd ? drawnStage : 0);
  const melanomaHistory = decide(rng, options.melanomaHistory, rates.melanomaHistory);
  const hipOa = decide(rng, options.hipOa, rates.hipOa);
  const handOa = decide(rng, options.handOa, kneeOa ? rates.handOaWithKneeOa : rates.handOa);
  const kneeInjury = decide(rng, options.kneeInjury, kneeOa ? rates.kneeInjuryWithKneeOa : rates.kneeInjury);
  const smokingDraw = rng.next();
  const drawnSmoking: SmokingStatus =
    smokingDraw < rates.currentSmoker
      ? 'current'
      : smokingDraw < rates.currentSmoker + rates.formerSmoker
        ? 'former'
        : 'never';
  const smoking = options.smoking ?? drawnSmoking;

  // ---- knee injury (before any knee OA) ----
  const kneeOaOnsetYears = onsetYearsAgo(0.5, 12);
  const indexKnee: Knee = rng.bool(0.5) ? 'left' : 'right';
  const injuryCode = rng.pick(KNEE_INJURY_CODES);
  const injuryKnee: Knee = kneeOa ? indexKnee : rng.bool(0.5) ? 'left' : 'right';
  if (kneeInjury) {
    const entry = Object.values(SNOMED_CONDITION).find((c) => c.code === injuryCode)!;
    const injuryYears = kneeOa
      ? Math.min(Math.max(0.1, age - 16), kneeOaOnsetYears + 1 + rng.next() * 15)
      : onsetYearsAgo(0.5, 30);
    addCondition(builder, {
      codings: [coding(SYSTEM.snomed, entry)],
      text: entry.display,
      onset: yearsAgo(injuryYears),
      clinicalStatus: 'resolved',
      abatement: yearsAgo(abatementYears(injuryYears, 0.5)),
      bodySite: [`${injuryKnee} knee`],
    });
  }

  // ---- knee OA ----
  let kneeTruth: KneeOaTruth | null = null;
  const bilateralDraw = rng.bool(rates.kneeOaBilateral);
  const icdDraw = rng.bool(rates.kneeOaIcd10);
  const klRecordedDraw = rng.bool(rates.klGradeRecorded);
  const drawnKl = rng.bool(0.46) ? 2 : 3;
  const womac = clamp(rng.normal(26.5, 19), 0, 100);
  const varus = rng.bool(0.45);
  const progressionDraw = rng.next();
  if (kneeOa) {
    const bilateral = options.kneeOaBilateral ?? bilateralDraw;
    const sites = bilateral ? ['left knee', 'right knee'] : [`${indexKnee} knee`];
    const codings = [coding(SYSTEM.snomed, SNOMED_CONDITION.kneeOa)];
    if (icdDraw) {
      const icd = kneeInjury
        ? bilateral
          ? ICD10.kneeOaPostTraumaticBilateral
          : ICD10.kneeOaPostTraumaticOther
        : bilateral
          ? ICD10.kneeOaPrimaryBilateral
          : ICD10.kneeOaPrimaryOther;
      codings.push(coding(SYSTEM.icd10, icd));
    }
    addCondition(builder, {
      codings,
      text: SNOMED_CONDITION.kneeOa.display,
      onset: yearsAgo(kneeOaOnsetYears),
      bodySite: sites,
    });
    const klGrade = typeof options.klGrade === 'number' ? options.klGrade : drawnKl;
    const logit =
      -3.761 +
      (Math.log(1.1) * (age - 62)) / 10 +
      (Math.log(1.35) * (bmiLatest - 29.5)) / 5 +
      (klGrade >= 3 ? Math.log(2.0) : 0) +
      (Math.log(1.38) * (womac - 26.5)) / 10 +
      (kneeInjury ? Math.log(2.9) : 0) +
      (handOa ? Math.log(2.66) : 0) +
      (diabetes ? Math.log(2.1) : 0) +
      (varus ? Math.log(3.59) : 0);
    const p = logistic(logit);
    kneeTruth = {
      indexKnee,
      klGrade,
      womacPain: round(womac, 1),
      varus,
      progressionProbability: p,
      progressed24m: progressionDraw < p,
    };
    const klRecorded =
      options.klGrade === null ? false : typeof options.klGrade === 'number' || klRecordedDraw;
    const otherKl = bilateral ? rng.int(Math.min(1, klGrade), klGrade) : rng.int(0, Math.min(1, klGrade));
    if (klRecorded) {
      const when = yearsAgo(rng.next() * 2);
      const knees: [Knee, number][] = [
        [indexKnee, klGrade],
        [indexKnee === 'left' ? 'right' : 'left', otherKl],
      ];
      knees.sort((a, b) => a[0].localeCompare(b[0]));
      for (const [knee, grade] of knees) {
        addObservation(builder, {
          category: 'imaging',
          code: localCode(LOCAL_OBSERVATION.klGrade),
          when,
          value: { valueInteger: grade },
          bodySite: `${knee} knee`,
        });
      }
    }
  }

  // ---- other musculoskeletal; metabolic, cardiovascular, renal ----
  // One Condition per flag, onset drawn in [min, max] years ago; the draws happen in this order.
  const addSnomed = (entry: { code: string; display: string }, minYears: number, maxYears: number) =>
    addCondition(builder, {
      codings: [coding(SYSTEM.snomed, entry)],
      text: entry.display,
      onset: yearsAgo(onsetYearsAgo(minYears, maxYears)),
    });
  if (hipOa) addSnomed(SNOMED_CONDITION.hipOa, 0.5, 15);
  if (handOa) addSnomed(SNOMED_CONDITION.handOa, 0.5, 15);
  if (diabetes) addSnomed(SNOMED_CONDITION.diabetesType2, 0.5, 20);
  if (prediabetes) addSnomed(SNOMED_CONDITION.prediabetes, 0.5, 15);
  if (hypertension) {
    // Accept both Synthea generations: current 59621000, older 38341003.
    addSnomed(rng.bool(0.7) ? SNOMED_CONDITION.hypertension : SNOMED_CONDITION.hypertensionOld, 0.5, 25);
  }
  if (heartFailure) addSnomed(SNOMED_CONDITION.heartFailure, 0.3, 10);
  if (atrialFibrillation) addSnomed(SNOMED_CONDITION.atrialFibrillation, 0.3, 10);
  if (ckdStage > 0) {
    addSnomed(
      Object.values(SNOMED_CONDITION).find((c) => c.code === CKD_STAGE_CODES[ckdStage - 1])!,
      0.5,
      10,
    );
  }
  if (giBleed) {
    const entry = rng.bool(0.5) ? SNOMED_CONDITION.pepticUlcerHaemorrhage : SNOMED_CONDITION.giHaemorrhage;
    const years = onsetYearsAgo(0.2, 20);
    const active = rng.bool(0.2);
    addCondition(builder, {
      codings: [coding(SYSTEM.snomed, entry)],
      text: entry.display,
      onset: yearsAgo(years),
      ...(active
        ? {}
        : { clinicalStatus: 'resolved' as const, abatement: yearsAgo(abatementYears(years, 0.1)) }),
    });
  }
  if (melanomaHistory) {
    const years = onsetYearsAgo(1, 25);
    addCondition(builder, {
      codings: [coding(SYSTEM.icd10, ICD10.melanoma)],
      text: 'Personal history of melanoma',
      onset: yearsAgo(years),
      clinicalStatus: 'resolved',
      abatement: yearsAgo(abatementYears(years, 0.5)),
    });
  }

  // ---- vital signs: height, weight, BMI at every visit (weight and BMI form a trend) ----
  for (const visit of visits) {
    const yearsBeforeLatest = (latestVisit.getTime() - visit.getTime()) / (YEAR_DAYS * DAY_MS);
    const noise = visit === latestVisit ? 0 : rng.normal(0, 0.3);
    const bmiTrue = clamp(bmiLatest - bmiSlope * yearsBeforeLatest + noise, 12, 80);
    const h = round(heightCm + (visit === latestVisit ? 0 : rng.normal(0, 0.3)), 1);
    const weight = round(bmiTrue * (h / 100) ** 2, 1);
    const bmi =
      visit === latestVisit && options.bmi !== undefined ? options.bmi : round(weight / (h / 100) ** 2, 1);
    addObservation(builder, {
      category: 'vital-signs',
      code: loincCode(LOINC.height),
      when: visit,
      value: { valueQuantity: quantity(h, 'cm') },
    });
    addObservation(builder, {
      category: 'vital-signs',
      code: loincCode(LOINC.weight),
      when: visit,
      value: { valueQuantity: quantity(weight, 'kg') },
    });
    addObservation(builder, {
      category: 'vital-signs',
      code: loincCode(LOINC.bmi),
      when: visit,
      value: { valueQuantity: quantity(bmi, 'kg/m2') },
    });
  }

  // ---- pain: at every visit with knee OA (at the knee), else sometimes at the latest visit ----
  const painAt = kneeOa ? visits : rng.bool(0.5) || options.painScore !== undefined ? [latestVisit] : [];
  for (const visit of painAt) {
    const base = kneeOa
      ? 1.5 + womac / 10
      : rng.weighted([
          [0, 5],
          [1, 2],
          [2, 2],
          [3, 1],
          [5, 1],
        ] as const);
    const drawn = Math.round(clamp(base + rng.normal(0, 1), 0, 10));
    const score = visit === latestVisit && options.painScore !== undefined ? options.painScore : drawn;
    addObservation(builder, {
      category: 'survey',
      code: loincCode(LOINC.pain),
      when: visit,
      value: { valueQuantity: quantity(score, '{score}') },
      ...(kneeOa ? { bodySite: `${indexKnee} knee` } : {}),
    });
  }

  // ---- smoking status at the latest visit ----
  const smokingAnswer =
    smoking === 'current'
      ? rng.bool(0.8)
        ? SMOKING_ANSWER.currentEveryDay
        : SMOKING_ANSWER.currentSomeDay
      : smoking === 'former'
        ? SMOKING_ANSWER.former
        : SMOKING_ANSWER.never;
  addObservation(builder, {
    category: 'survey',
    code: loincCode(LOINC.smoking),
    when: latestVisit,
    value: { valueCodeableConcept: concept([coding(SYSTEM.snomed, smokingAnswer)], smokingAnswer.display) },
  });

  // ---- eGFR (MDRD 33914-3, as Synthea writes it) ----
  const egfrLikely = ckdStage > 0 || diabetes || hypertension || heartFailure || age >= 65;
  const egfrDrawn = rng.bool(egfrLikely ? 0.95 : 0.4);
  const egfrRanges: readonly (readonly [number, number])[] = [
    [90, 115],
    [60, 89.9],
    [30, 59.9],
    [15, 29.9],
    [5, 14.9],
  ];
  const normalEgfr = rng.truncNormal(105 - 0.9 * (age - 30), 13, 60, 140);
  const stageRange = ckdStage > 0 ? egfrRanges[ckdStage - 1]! : undefined;
  const stageEgfr = stageRange ? stageRange[0] + rng.next() * (stageRange[1] - stageRange[0]) : normalEgfr;
  const egfrLatest = options.egfr ?? round(stageEgfr, 1);
  const egfrCount = rng.int(1, Math.min(3, visits.length));
  if (options.egfr !== null && (egfrDrawn || options.egfr !== undefined || ckdStage > 0)) {
    const egfrVisits = visits.slice(visits.length - egfrCount);
    for (const visit of egfrVisits) {
      const yearsBefore = (latestVisit.getTime() - visit.getTime()) / (YEAR_DAYS * DAY_MS);
      const value =
        visit === latestVisit
          ? egfrLatest
          : round(clamp(egfrLatest + 1.5 * yearsBefore + rng.normal(0, 3), 3, 150), 1);
      addObservation(builder, {
        category: 'laboratory',
        code: loincCode(LOINC.egfr),
        when: visit,
        value: { valueQuantity: quantity(value, 'mL/min/{1.73_m2}') },
      });
    }
  }

  // ---- skin: phototype, naevi, lesions (reference/risk-factors.md §2.4) ----
  const drawnPhototype = rng.weighted<FitzpatrickType>([
    ['I', 10],
    ['II', 25],
    ['III', 48],
    ['IV', 12],
    ['V', 3],
    ['VI', 2],
  ]);
  const phototype = options.fitzpatrick ?? drawnPhototype;
  const naevi = options.naevusCount ?? Math.min(300, rng.negBinomial(30, 1.2));
  const drawnAtypical = rng.bool(0.14) ? 1 + Math.min(20, rng.poisson(1)) : 0;
  const atypicalNaevi = options.atypicalNaevusCount ?? drawnAtypical;
  const familyHistoryMelanoma = rng.bool(0.05);
  const immunosuppressed = rng.bool(0.01);
  const skinAssessed = decide(
    rng,
    options.skinAssessment,
    lesionCount > 0 ? rates.skinAssessmentWithLesion : rates.skinAssessment,
  );
  const skinExamDate = new Date(latestVisit.getTime() + rng.int(0, 30) * 60_000);
  if (skinAssessed) {
    addObservation(builder, {
      category: 'exam',
      code: localCode(LOCAL_OBSERVATION.fitzpatrick),
      when: skinExamDate,
      value: {
        valueCodeableConcept: concept(
          [{ system: SYSTEM.fitzpatrick, code: phototype, display: FITZPATRICK_DISPLAY[phototype] }],
          FITZPATRICK_DISPLAY[phototype],
        ),
      },
    });
    addObservation(builder, {
      category: 'exam',
      code: localCode(LOCAL_OBSERVATION.naevusCountTotal),
      when: skinExamDate,
      value: { valueInteger: naevi },
    });
    addObservation(builder, {
      category: 'exam',
      code: localCode(LOCAL_OBSERVATION.naevusCountAtypical),
      when: skinExamDate,
      value: { valueInteger: Math.min(atypicalNaevi, naevi) },
    });
  }

  const melanomaLogit =
    -5.715 +
    (age >= 31 && age <= 60 ? Math.log(3.0) : 0) +
    (age > 60 ? Math.log(6.0) : 0) +
    (phototype === 'I' || phototype === 'II' ? Math.log(3.2) : 0) +
    Math.log(1.017) * naevi +
    (melanomaHistory || familyHistoryMelanoma ? Math.log(3.2) : 0) +
    (immunosuppressed ? Math.log(2.71) : 0);
  const melanomaProbability = logistic(melanomaLogit);
  const lesionTruths: LesionTruth[] = [];
  const forcedItems = options.lesionItems ?? {};
  const dermoscopyForcedByItems = DERMOSCOPY_CODES.some((code) => forcedItems[code] !== undefined);
  for (let i = 0; i < lesionCount; i++) {
    const melanoma = rng.next() < melanomaProbability;
    // Weighted 7-point checklist items, conditionally independent given the latent status (§2.4 step 2).
    const drawnItems = new Map<LesionItemCode, boolean>();
    const recorded = new Map<LesionItemCode, boolean | null>();
    for (const code of SEVEN_POINT_CODES) {
      const p = SEVEN_POINT_MAJOR.includes(code) ? (melanoma ? 0.757 : 0.395) : melanoma ? 0.346 : 0.258;
      const value = rng.bool(p);
      drawnItems.set(code, value);
      recorded.set(code, rng.bool(rates.lesionItemMissing) ? null : value);
    }
    // The diameter agrees with the "diameter ≥ 7 mm" item (as forced, else as drawn before missingness).
    const forcedDiameterItem = forcedItems[LESION.sevenPoint.diameter7mm];
    const atLeast7 =
      typeof forcedDiameterItem === 'boolean'
        ? forcedDiameterItem
        : drawnItems.get(LESION.sevenPoint.diameter7mm) === true;
    const big = Math.min(60, 7 + rng.gamma(2, 2));
    const small = 2 + rng.next() * 4.9;
    const diameterMissing = rng.bool(rates.lesionItemMissing);
    const diameter =
      options.lesionDiameterMm !== undefined
        ? options.lesionDiameterMm
        : diameterMissing
          ? null
          : round(atLeast7 ? big : small, 1);
    // Dermoscopic items share one latent atypia so they agree with each other (§2.4 step 2).
    const dermoscopyDraw = rng.bool(rates.dermoscopy);
    const dermoscopyDone = options.dermoscopy ?? (dermoscopyForcedByItems || dermoscopyDraw);
    const atypia = rng.normal(melanoma ? 0.91 : 0, 1);
    for (const code of DERMOSCOPY_CODES) {
      const value = atypia + rng.normal(0, 1.513) > 1.195;
      if (dermoscopyDone) recorded.set(code, value);
    }
    for (const [code, value] of Object.entries(forcedItems) as [
      LesionItemCode,
      boolean | null | undefined,
    ][]) {
      if (value !== undefined) recorded.set(code, value);
    }
    const forcedDiameter = options.lesionDiameterMm;
    if (typeof forcedDiameter === 'number' && forcedDiameterItem === undefined) {
      if (typeof recorded.get(LESION.sevenPoint.diameter7mm) === 'boolean') {
        recorded.set(LESION.sevenPoint.diameter7mm, forcedDiameter >= 7);
      }
    }
    const components: ObservationComponent[] = [];
    for (const code of SEVEN_POINT_CODES) {
      const value = recorded.get(code);
      if (typeof value === 'boolean') components.push({ code: localCode(code), valueBoolean: value });
    }
    if (diameter !== null) {
      components.push({ code: localCode(LESION.maxDiameter), valueQuantity: quantity(diameter, 'mm') });
    }
    for (const code of DERMOSCOPY_CODES) {
      const value = recorded.get(code);
      if (typeof value === 'boolean') components.push({ code: localCode(code), valueBoolean: value });
    }
    const drawnSite = rng.pick(LESION_SITES);
    const observation = addObservation(builder, {
      category: 'exam',
      code: localCode(LESION.panel),
      when: new Date(skinExamDate.getTime() + (i + 1) * 60_000),
      bodySite: options.lesionSite ?? drawnSite,
      component: components,
    });
    lesionTruths.push({ observationId: observation.id, melanomaProbability, melanoma });
  }

  // ---- medications ----
  const forcedMeds = options.medications ?? {};
  const medRates: Record<MedicationKey, number> = {
    naproxen: kneeOa ? 0.4 : 0.05,
    ibuprofen: kneeOa ? 0.2 : 0.08,
    acetaminophen: kneeOa ? 0.5 : 0.15,
    warfarin: atrialFibrillation ? 0.6 : 0.005,
    clopidogrel: hypertension || diabetes ? 0.05 : 0.01,
  };
  for (const key of Object.keys(MEDICATIONS) as MedicationKey[]) {
    const drawn = rng.bool(medRates[key]);
    const activeDraw = rng.bool(rates.medicationActive);
    const forced = forcedMeds[key];
    const prescribe = forced === undefined ? drawn : forced !== null;
    const status: MedicationStatus = forced ?? (activeDraw ? 'active' : 'stopped');
    const authoredYears = status === 'active' ? 0.02 + rng.next() * 0.98 : 1 + rng.next() * 4;
    if (!prescribe) continue;
    const med = MEDICATIONS[key];
    const request: MedicationRequest & { id: string } = {
      resourceType: 'MedicationRequest',
      id: rng.uuid(),
      status,
      intent: 'order',
      medicationCodeableConcept: concept([coding(SYSTEM.rxnorm, med)], med.display),
      subject: { reference: builder.patientRef },
      authoredOn: dateTime(yearsAgo(authoredYears)),
      dosageInstruction: [
        key === 'warfarin' || key === 'clopidogrel'
          ? {
              sequence: 1,
              text: 'Take as directed',
              timing: { repeat: { frequency: 1, period: 1, periodUnit: 'd' } },
            }
          : { sequence: 1, text: 'Take as needed for pain', asNeededBoolean: true },
      ],
    };
    add(builder, request);
  }

  // ---- objection to algorithmic processing (reference/clinical-codes.md §4) ----
  const objection = decide(rng, options.objection, options.objectionRate ?? 0);
  const consentDate = yearsAgo(0.05 + rng.next() * 2);
  if (objection) {
    const consent: Consent & { id: string } = {
      resourceType: 'Consent',
      id: rng.uuid(),
      status: 'active',
      scope: { coding: [{ system: SYSTEM.consentScope, code: 'patient-privacy' }] },
      category: [{ coding: [{ system: SYSTEM.loinc, code: '59284-0' }] }],
      patient: { reference: builder.patientRef },
      dateTime: dateOnly(consentDate),
      policy: [{ uri: OBJECTION_POLICY_URI }],
      provision: {
        type: 'deny',
        action: [{ coding: [{ system: SYSTEM.consentAction, code: 'use' }] }],
        purpose: [{ system: SYSTEM.purposeOfUse, code: OBJECTION_PURPOSE }],
      },
    };
    add(builder, consent);
  }

  options.onTruth?.({
    patientId,
    kneeOa: kneeTruth,
    familyHistoryMelanoma,
    immunosuppressed,
    lesions: lesionTruths,
  });

  return { resourceType: 'Bundle', type: 'transaction', entry: builder.entries };
}

/**
 * Generates `count` patients. Patient `i` is drawn from stream `i` of `seed` (see `createRng`), so the
 * first patients of a larger cohort equal a smaller cohort with the same seed, `now` and options.
 *
 * @throws RangeError when `seed`, `count` or an option is out of range; TypeError for an invalid `now`.
 */
export function generateCohort(options: CohortOptions): Bundle[] {
  return [...iterateCohort(options)];
}

/**
 * Like {@link generateCohort}, but yields one bundle at a time (for writing large cohorts without
 * holding them in memory). The options are checked when this function is called, not on the first
 * `next()`.
 */
export function iterateCohort(options: CohortOptions): IterableIterator<Bundle> {
  const { seed, count, ...patientOptions } = options;
  if (!Number.isSafeInteger(seed)) throw new RangeError(`seed must be a safe integer (got ${String(seed)})`);
  checkRange('count', count, 0, 1_000_000, true);
  validateOptions(patientOptions);
  resolveRates(patientOptions.rates);
  return (function* patients() {
    for (let i = 0; i < count; i++) yield generatePatient(createRng(seed, i), patientOptions);
  })();
}
