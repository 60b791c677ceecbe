/**
 * What the model cards of the bundled demonstration models say beyond the numbers: intended use,
 * population, where each simulated effect comes from (reference/risk-factors.md, with the source of
 * every figure), the limits. The numbers (metrics, coefficients, sha256) come from the training run.
 */
import type { ModelManifest } from '../../src/scoring/manifest.js';
import type { Evaluation } from './metrics.js';
import {
  DEMONSTRATION_STATUS,
  type ModelCardData,
  type ModelCardFeature,
  type ModelCardReference,
  type ModelCardSubgroup,
} from './model-card.js';

export interface TrainingResults {
  sha256: string;
  seed: number;
  nTrain: number;
  nTest: number;
  excludedTrain: Record<string, number>;
  prevalenceTrain: number;
  intercept: number;
  coefficients: number[];
  references: number[];
  overall: Evaluation;
  subgroups: ModelCardSubgroup[];
  /** Rows of the background sample written beside the model (background.csv). */
  backgroundRows?: number;
}

/** The date of the bundled demonstration models (the synthetic cohort's "today"). */
export const BUNDLED_MODEL_DATE = '2026-11-22';

/** Whom the bundled demonstration models are for. */
export const BUNDLED_INTENDED_USERS =
  'Clinicians and integrators trying the service (general practitioners, rheumatologists or dermatologists in a demonstration); not patients directly.';

interface Content {
  intendedUse: string;
  outOfScope: string[];
  inclusion: string[];
  exclusion: string[];
  generator: string;
  generatingModel: string;
  generatingSources: string[];
  effects: Record<string, { effectSize: string; sources: string[]; signal: boolean }>;
  thresholdRationale: string;
  references: ModelCardReference[];
  limits: string[];
}

const KNEE: Content = {
  intendedUse:
    'To show, on simulated data, how a CDS Hooks service can give a clinician an explained estimate of the risk that knee osteoarthritis progresses rapidly on X-ray within 24 months, during a patient-view, to support the timing of first-line care (exercise, weight management, education).',
  outOfScope: [
    'Any clinical decision: the model is a demonstration trained on simulated data.',
    'Surgical decisions: the service never suggests surgery.',
    'Patients outside the population below (the service refuses to score them and says why).',
  ],
  inclusion: [
    'Adults aged 45 to 79',
    'Knee osteoarthritis recorded (SNOMED CT 239873007 or ICD-10 M17.x)',
    'Index knee Kellgren-Lawrence grade 2 or 3 when recorded',
  ],
  exclusion: [
    'Recorded Kellgren-Lawrence grade 4 (cannot progress by KL) or only grades 0-1',
    'No BMI, or weight and height, within 2 years',
    'Implausible values (BMI outside 12-80 kg/m2, pain outside 0-10)',
    'Active objection to algorithmic processing (FHIR Consent)',
  ],
  generator:
    'tools/synthetic/patients.ts (FHIR R4 bundles like Synthea output). Marginals of reference/risk-factors.md section 1.4: age N(62, 9) truncated to 45-79, 60% female, BMI N(29.5, 4.8), KL2 46% / KL3 54% (recorded for 30% of patients), WOMAC pain N(26.5, 19) written as a 0-10 pain score, prior specific knee injury 19%, hand OA 35%, type 2 diabetes 10% (more frequent with BMI >= 30), varus alignment 45% (latent, never recorded).',
  generatingModel:
    'logit P(progression within 24 months) = -3.761 + ln(1.10)(age-62)/10 + ln(1.35)(BMI-29.5)/5 + ln(2.0)[KL3] + ln(1.38)(WOMAC-26.5)/10 + ln(2.90)[injury] + ln(2.66)[hand OA] + ln(2.1)[diabetes] + ln(3.59)[varus]; prevalence about 15%. Varus alignment drives progression but is not in routine records, which caps the achievable AUC (about 0.74 with the observed inputs).',
  generatingSources: [
    'belo2007',
    'bastick2015ar',
    'zheng2015',
    'bmc2013',
    'bastick2015corr',
    'schett2013',
    'sharma2010',
  ],
  effects: {
    age: {
      effectSize: 'OR 1.10 per 10 years (design: evidence conflicting)',
      sources: ['belo2007', 'bastick2015ar'],
      signal: true,
    },
    female: {
      effectSize: 'none: not associated with radiographic progression (strong evidence)',
      sources: ['belo2007'],
      signal: false,
    },
    bmi: {
      effectSize: 'OR 1.35 per 5 kg/m2 (incidence meta-analysis, used as a proxy)',
      sources: ['zheng2015'],
      signal: true,
    },
    bmiTrend: {
      effectSize: 'none: no verified progression effect; simulated with no effect',
      sources: [],
      signal: false,
    },
    pain: {
      effectSize: 'OR 1.38 per 10 WOMAC points (derived from pooled OR 2.38 for knee pain)',
      sources: ['bastick2015corr'],
      signal: true,
    },
    klGrade3: {
      effectSize: 'OR 2.0 for KL3 vs KL2 (proxy from RR 2.09 per KL grade for surgery)',
      sources: ['bastick2015ar'],
      signal: true,
    },
    kneeInjury: { effectSize: 'OR 2.90 for a specific knee injury', sources: ['bmc2013'], signal: true },
    handOa: {
      effectSize: "OR 2.66 for hand OA / Heberden's nodes (pooled)",
      sources: ['bastick2015corr'],
      signal: true,
    },
    diabetes: {
      effectSize: 'OR 2.1 (HR for arthroplasty, used as a proxy)',
      sources: ['schett2013'],
      signal: true,
    },
  },
  thresholdRationale:
    'A risk of 25% or more (about the top fifth of the population) raises the card from info to warning; the choice is a demonstration setting a site would calibrate to its own pathway.',
  references: [
    {
      id: 'belo2007',
      citation:
        'Belo JN et al. Prognostic factors of progression of osteoarthritis of the knee: a systematic review. Arthritis Rheum 2007;57:13-26',
      doi: '10.1002/art.22475',
    },
    {
      id: 'bastick2015ar',
      citation:
        'Bastick AN et al. Prognostic factors for progression of clinical osteoarthritis of the knee. Arthritis Res Ther 2015;17:152',
      doi: '10.1186/s13075-015-0670-x',
    },
    {
      id: 'bastick2015corr',
      citation:
        'Bastick AN et al. What are the prognostic factors for radiographic progression of knee osteoarthritis? A meta-analysis. Clin Orthop Relat Res 2015;473:2969-89',
      doi: '10.1007/s11999-015-4349-z',
    },
    {
      id: 'zheng2015',
      citation:
        'Incident knee OA and BMI, meta-analysis of 14 prospective studies (PMC4679914; authors and journal unverified)',
      url: 'https://www.ncbi.nlm.nih.gov/pmc/articles/PMC4679914/',
    },
    {
      id: 'bmc2013',
      citation:
        'Knee injury and knee OA incidence or progression in adults aged 40+ with knee pain. BMC Musculoskelet Disord 2013;14:309 (authors unverified)',
      doi: '10.1186/1471-2474-14-309',
    },
    {
      id: 'schett2013',
      citation:
        'Schett G et al. Diabetes is an independent predictor for severe osteoarthritis. Diabetes Care 2013;36:403-9',
      doi: '10.2337/dc12-0924',
    },
    {
      id: 'sharma2010',
      citation:
        'Sharma L et al. Varus and valgus alignment and incident and progressive knee osteoarthritis. Ann Rheum Dis 2010;69:1940-5',
      doi: '10.1136/ard.2010.129742',
    },
    {
      id: 'lavalley2017',
      citation:
        'LaValley MP et al. Development of a clinical prediction algorithm for knee osteoarthritis structural progression. Arthritis Res Ther 2017;19:95 (published clinical-variables AUC 0.65)',
      doi: '10.1186/s13075-017-1291-3',
    },
  ],
  limits: [
    'Trained and tested on simulated patients only: the figures below describe the simulation, not real patients.',
    'Effect sizes come from observational cohorts with different outcomes and horizons, combined into one logistic model for demonstration.',
    'Alignment, bone marrow lesions and effusion drive progression but are not in routine records; published clinical-variable models reach AUC 0.65-0.75.',
    'Sex and BMI trend carry no signal by construction; a model that finds them informative has overfitted.',
    'Most records lack a Kellgren-Lawrence grade: it is then imputed with the population share of KL3 (54%) and the card says so.',
  ],
};

const MELANOMA: Content = {
  intendedUse:
    'To show, on simulated data, how a CDS Hooks service can put beside the published 7-point checklists an explained estimate of the probability that an examined pigmented lesion is a melanoma, combining the checklist items with patient risk factors. The checklists, not the model, follow NICE NG12.',
  outOfScope: [
    'Any clinical decision: the model is a demonstration trained on simulated data.',
    'Lowering the urgency a checklist or a clinical concern calls for.',
    'Children, Fitzpatrick skin types V-VI, acral, amelanotic or nodular melanoma (poorly represented in the evidence).',
  ],
  inclusion: [
    'Adults aged 18 and over',
    'A lesion examination recorded in the last 90 days',
    'Fitzpatrick skin type I-IV or not recorded',
  ],
  exclusion: [
    'Fitzpatrick skin type V or VI',
    'Under 18 or no birth date',
    'Active objection to algorithmic processing (FHIR Consent)',
  ],
  generator:
    'tools/synthetic/patients.ts, one lesion per patient. Marginals of reference/risk-factors.md section 2.4: age N(45, 18) truncated to 18-90, 65% female, phototype I 10%, II 25%, III 48%, IV 12%, V-VI 5%, naevus count negative binomial (mean 30), personal history of melanoma 3%, family history 5% and immunosuppression 1% (latent, not recorded); checklist items drawn given the latent melanoma status (major items 0.757 vs 0.395, minor 0.346 vs 0.258); dermoscopy recorded for half of the lesions.',
  generatingModel:
    'logit P(melanoma) = -5.715 + ln(3.0)[age 31-60] + ln(6.0)[age > 60] + ln(3.2)[phototype I-II] + ln(1.017) x naevi + ln(3.2)[personal or family history] + ln(2.71)[immunosuppressed]; about 4% of lesions are melanomas (UK primary care and referral case mix). The lesion features then follow the class.',
  generatingSources: ['idscore2021', 'olsen2010', 'green2015', 'walter2013'],
  effects: {
    age31to60: {
      effectSize: 'OR 3.0 vs 30 or under (design, direction from iDScore)',
      sources: ['idscore2021'],
      signal: true,
    },
    ageOver60: {
      effectSize: 'OR 6.0 vs 30 or under (design, direction from iDScore)',
      sources: ['idscore2021'],
      signal: true,
    },
    phototypeFair: {
      effectSize: 'OR 3.2 for types I-II',
      sources: ['idscore2021', 'gandini2005c'],
      signal: true,
    },
    naevusCount: { effectSize: 'RR 1.017 per naevus', sources: ['olsen2010'], signal: true },
    melanomaHistory: {
      effectSize: 'OR 3.2 for a personal or family history',
      sources: ['idscore2021'],
      signal: true,
    },
    changeSize: {
      effectSize: 'major item: present in 75.7% of melanomas vs 39.5% (OR about 4.8)',
      sources: ['walter2013'],
      signal: true,
    },
    irregularShape: { effectSize: 'major item: 75.7% vs 39.5%', sources: ['walter2013'], signal: true },
    irregularColour: { effectSize: 'major item: 75.7% vs 39.5%', sources: ['walter2013'], signal: true },
    diameter7mm: {
      effectSize: 'minor item: 34.6% vs 25.8% (OR about 1.5)',
      sources: ['walter2013'],
      signal: true,
    },
    inflammation: { effectSize: 'minor item: 34.6% vs 25.8%', sources: ['walter2013'], signal: true },
    oozing: { effectSize: 'minor item: 34.6% vs 25.8%', sources: ['walter2013'], signal: true },
    sensation: { effectSize: 'minor item: 34.6% vs 25.8%', sources: ['walter2013'], signal: true },
  },
  thresholdRationale:
    'A probability of 3% or more (about the simulated prevalence) is reported as the operating point; the card stays informational whatever the estimate, because the referral decision follows the published checklists.',
  references: [
    {
      id: 'walter2013',
      citation:
        'Walter FM et al. Using the 7-point checklist as a diagnostic aid for pigmented skin lesions in general practice. Br J Gen Pract 2013;63:e345-53',
      doi: '10.3399/bjgp13X667213',
    },
    {
      id: 'idscore2021',
      citation:
        'iDScore 2021 lesion-level risk factors (as tabulated in reference/risk-factors.md section 2.4; magnitudes damped by design)',
    },
    {
      id: 'olsen2010',
      citation:
        'Olsen CM, Carroll HJ, Whiteman DC. Estimating the attributable fraction for melanoma: a meta-analysis of pigmentary characteristics and freckling. Cancer Prev Res 2010;3:233-45 (authors unverified)',
    },
    {
      id: 'gandini2005c',
      citation:
        'Gandini S et al. Meta-analysis of risk factors for cutaneous melanoma: III. Family history, actinic damage and phenotypic factors. Eur J Cancer 2005',
      doi: '10.1016/j.ejca.2005.03.034',
    },
    {
      id: 'green2015',
      citation:
        'Green AC, Olsen CM. Increased risk of melanoma in organ transplant recipients: systematic review and meta-analysis. Acta Derm Venereol 2015;95:923-7',
      doi: '10.2340/00015555-2148',
    },
    {
      id: 'usher2014',
      citation:
        'Usher-Smith JA et al. Risk prediction models for melanoma: a systematic review. Cancer Epidemiol Biomarkers Prev 2014;23:1450-63 (person-level models AUC about 0.75)',
    },
  ],
  limits: [
    'Trained and tested on simulated lesions only: the figures below describe the simulation, not real patients.',
    'Person-level relative risks are used as lesion-level odds ratios, an approximation.',
    'The evidence comes almost entirely from white populations; phototypes V-VI are refused. Nodular and amelanotic melanomas often score low on these items.',
    'Family history and immunosuppression raise the simulated risk but are not model inputs (not recorded in the data the service reads).',
    'Dermoscopy is left out of the model (often not done in primary care); the dermoscopic checklist is shown on its own card.',
  ],
};

const CONTENT: Record<string, Content> = { 'knee-oa-progression': KNEE, 'melanoma-risk': MELANOMA };

/** Assembles the model card of a trained model. */
export function describeModel(manifest: ModelManifest, results: TrainingResults): ModelCardData {
  const content = CONTENT[manifest.id];
  if (!content) throw new Error(`no model card text for "${manifest.id}"`);
  const features: ModelCardFeature[] = manifest.features.map((f, i) => {
    const effect = content.effects[f.id];
    if (!effect) throw new Error(`model card of ${manifest.id}: no effect source for feature "${f.id}"`);
    return { id: f.id, label: f.label.en, unit: f.unit, ...effect, coefficient: results.coefficients[i]! };
  });
  let lower = 0;
  const riskBands = manifest.bands.map((b) => {
    const band = { id: b.id, label: b.label, lower, upper: b.below ?? 1 };
    lower = b.below ?? 1;
    return band;
  });
  const excluded = Object.entries(results.excludedTrain)
    .map(([code, n]) => `${n} ${code}`)
    .join(', ');
  return {
    id: manifest.id,
    version: manifest.version,
    title: manifest.title,
    status: DEMONSTRATION_STATUS,
    regulatoryStatus:
      'Not a medical device; not CE-marked or FDA-cleared. Demonstration software: a site deploying its own validated model is responsible for its regulatory status.',
    modelType: `logistic regression (${manifest.features.length} inputs), float32 ONNX (MatMul, Add, Sigmoid)`,
    intendedUse: content.intendedUse,
    intendedUsers: BUNDLED_INTENDED_USERS,
    outOfScope: content.outOfScope,
    population: {
      description: manifest.population.en,
      inclusion: content.inclusion,
      exclusion: content.exclusion,
    },
    outcome: {
      description: manifest.outcome.en,
      horizon: manifest.horizonMonths > 0 ? `${manifest.horizonMonths} months` : 'present at examination',
    },
    features,
    trainingData: {
      kind: 'simulated',
      generator:
        content.generator +
        (excluded ? ` Left out of training as the service would refuse them: ${excluded}.` : ''),
      seed: results.seed,
      nTrain: results.nTrain,
      nTest: results.nTest,
      prevalence: { train: results.prevalenceTrain, test: results.overall.prevalence ?? 0 },
      generatingModel: { description: content.generatingModel, sources: content.generatingSources },
    },
    metrics: { overall: results.overall, subgroups: results.subgroups },
    threshold: { value: manifest.threshold, rationale: content.thresholdRationale },
    riskBands,
    ...(results.backgroundRows !== undefined && manifest.background
      ? {
          explanations: {
            method:
              'Each factor on a card is a Shapley value of the model’s log-odds against the background sample: for this logistic model, coefficient × (patient value − sample mean), exact; the factors add up, with the mean log-odds of the sample, to the patient’s log-odds.',
            background: `Background sample: ${results.backgroundRows} SIMULATED patients (${manifest.background.file}), drawn by the same simulator and seed as the training data, from patients used neither for training nor for testing, and passed through the service’s own feature extraction (so binary flags are 0 or 1, never a mean such as 0.19).`,
          },
        }
      : {}),
    references: content.references,
    limits: content.limits,
    onnxSha256: results.sha256,
    // The simulated cohort's reference date: no clock is read, so a rebuild gives the same bytes.
    dates: { trained: BUNDLED_MODEL_DATE, card: BUNDLED_MODEL_DATE },
    trainingCommand: `npm run train -- --model ${manifest.id}`,
    createdBy: `explainable-cds-hooks training (model ${manifest.id} ${manifest.version}, seed ${results.seed})`,
  };
}
