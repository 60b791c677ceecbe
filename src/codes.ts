/**
 * Code systems and codes used by the platform and the bundled services.
 *
 * Standard systems follow the FHIR R4 terminology page (hl7.org/fhir/R4/terminologies-systems.html).
 * Local code systems live under {@link LOCAL_BASE}; their FHIR CodeSystem resources are in
 * `fhir-profiles/`. A site deploying the service replaces the base with its own canonical URL.
 */

/** Canonical base of this project's local code systems (example.org: a placeholder a site replaces). */
export const LOCAL_BASE = 'https://explainable-cds.example.org/fhir';

export const SYSTEM = {
  loinc: 'http://loinc.org',
  snomed: 'http://snomed.info/sct',
  rxnorm: 'http://www.nlm.nih.gov/research/umls/rxnorm',
  ucum: 'http://unitsofmeasure.org',
  icd10: 'http://hl7.org/fhir/sid/icd-10',
  icd10cm: 'http://hl7.org/fhir/sid/icd-10-cm',
  observationCategory: 'http://terminology.hl7.org/CodeSystem/observation-category',
  conditionClinical: 'http://terminology.hl7.org/CodeSystem/condition-clinical',
  conditionVerification: 'http://terminology.hl7.org/CodeSystem/condition-ver-status',
  consentScope: 'http://terminology.hl7.org/CodeSystem/consentscope',
  consentAction: 'http://terminology.hl7.org/CodeSystem/consentaction',
  /** Local observation codes where no standard code exists (reference/clinical-codes.md §5). */
  localObservation: `${LOCAL_BASE}/CodeSystem/cds-local-observation`,
  fitzpatrick: `${LOCAL_BASE}/CodeSystem/fitzpatrick-skin-type`,
  /** Local codes of the prescribing-safety services (fhir-profiles/CodeSystem-cds-local-prescribing.json). */
  localPrescribing: `${LOCAL_BASE}/CodeSystem/cds-local-prescribing`,
  atc: 'http://www.whocc.no/atc',
  purposeOfUse: `${LOCAL_BASE}/CodeSystem/cds-purpose-of-use`,
  overrideReason: `${LOCAL_BASE}/CodeSystem/cds-override-reason`,
  errorCode: `${LOCAL_BASE}/CodeSystem/cds-error`,
  cardTopic: `${LOCAL_BASE}/CodeSystem/cds-card-topic`,
} as const;

/**
 * A lesion examination is one Observation per examined lesion (a panel, like a blood-pressure panel):
 * `code` = {@link LESION.panel}, `bodySite.text` = where the lesion is, one `component` per item
 * recorded. Checklist items are `valueBoolean` (true = present, false = looked for and absent, no
 * component = not recorded); the diameter is a `valueQuantity` in UCUM `mm`. Dermoscopic items are only
 * present when dermoscopy was performed. JSON Schema: fhir-profiles/lesion-examination.schema.json.
 */
export const LESION = {
  panel: 'lesion-examination',
  maxDiameter: 'lesion-max-diameter',
  /** Weighted 7-point checklist (NICE NG12): major items 2 points, minor items 1 point. */
  sevenPoint: {
    changeSize: '7pcl-change-size',
    irregularShape: '7pcl-irregular-shape',
    irregularColour: '7pcl-irregular-colour',
    diameter7mm: '7pcl-diameter-7mm',
    inflammation: '7pcl-inflammation',
    oozing: '7pcl-oozing',
    sensation: '7pcl-sensation',
  },
  /** Dermoscopic 7-point checklist (Argenziano 1998): major items 2 points, minor items 1 point. */
  dermoscopy: {
    atypicalNetwork: 'd7pt-atypical-network',
    blueWhitishVeil: 'd7pt-blue-whitish-veil',
    atypicalVascular: 'd7pt-atypical-vascular',
    irregularStreaks: 'd7pt-irregular-streaks',
    irregularPigmentation: 'd7pt-irregular-pigmentation',
    irregularDotsGlobules: 'd7pt-irregular-dots-globules',
    regression: 'd7pt-regression',
  },
} as const;

/** Other local observation codes (reference/clinical-codes.md §5). */
export const LOCAL_OBSERVATION = {
  klGrade: 'kl-grade',
  fitzpatrick: 'fitzpatrick-skin-type',
  naevusCountTotal: 'naevus-count-total',
  naevusCountAtypical: 'naevus-count-atypical',
  /** Follow-up radiograph (issue 19 outcome linkage): medial joint space lost since baseline, mm. */
  medialJsnLoss: 'medial-jsn-loss',
} as const;

/**
 * Local codes the prescribing-safety services read (reference/clinical-codes.md has no standard code for
 * them; each is also the only member of a value set in fhir-profiles/ that a site extends with its own
 * codes): `valproate-ppp` is an Observation with `valueBoolean: true` recorded at the annual review of a
 * valproate pregnancy prevention programme (risk acknowledgement form signed); `brain-mri` is a
 * completed Procedure, a brain MRI done for meningioma monitoring.
 */
export const PRESCRIBING = {
  valproatePpp: 'valproate-ppp',
  topiramatePpp: 'topiramate-ppp',
  brainMri: 'brain-mri',
} as const;

/**
 * Coded override reasons every card offers (design.md, non-negotiables). Displays in English and
 * French; the CodeSystem resource is fhir-profiles/CodeSystem-cds-override-reason.json.
 */
export const OVERRIDE_REASONS = {
  'patient-preference': {
    en: 'Patient preference / shared decision',
    fr: 'Préférence du patient / décision partagée',
  },
  'clinical-context': {
    en: 'Clinical context not in the record',
    fr: 'Contexte clinique absent du dossier',
  },
  'input-data-wrong': {
    en: 'Input data wrong or out of date',
    fr: 'Données d’entrée erronées ou périmées',
  },
  'disagree-estimate': {
    en: 'Disagree with the estimate or rule',
    fr: 'Désaccord avec l’estimation ou la règle',
  },
  'already-handled': { en: 'Already handled', fr: 'Déjà pris en charge' },
  'not-relevant-now': { en: 'Not relevant now', fr: 'Non pertinent pour le moment' },
} as const;

export type OverrideReasonCode = keyof typeof OVERRIDE_REASONS;
