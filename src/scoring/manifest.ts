/**
 * The model manifest (`models/<id>/manifest.yaml`): everything the service needs to turn a patient's
 * record into the model's input tensor and its output into a card, for a model produced by any tool.
 *
 * The contract with the ONNX file: one float32 input of shape [N, F] whose columns are the features in
 * manifest order, and one float output holding P(outcome) — shape [N], [N, 1], or [N, C] with the
 * column named by `output.column` (e.g. the positive-class column of an ai.onnx.ml
 * TreeEnsembleClassifier's probabilities). The loader checks names, element types and shapes against
 * the session's metadata, and the file's sha256 against the manifest.
 */
import { fhirPath, identifier, localized } from '../services/definition-schema.js';
import type { Localized } from '../language.js';

export interface FeatureRange {
  min: number;
  max: number;
}

export type MissingPolicy = { policy: 'refuse' } | { policy: 'impute'; value: number };

interface FeatureBase {
  id: string;
  label: Localized;
  /** UCUM unit of the value given to the model (`1` for flags and counts). */
  unit: string;
  /** The value contributions are measured against (the training mean for the bundled models). */
  reference: number;
  /** Outside this range the value is implausible and the model does not score. */
  range?: FeatureRange;
  missing?: MissingPolicy;
  /** Turns the value into 1 inside [min, max] (either bound optional), else 0: e.g. an age band. */
  indicator?: { min?: number; max?: number };
}

/** Age in whole years at the time of the call, from Patient.birthDate. */
export interface AgeFeature extends FeatureBase {
  kind: 'age';
  source: string;
}

/** The latest value of a Quantity-valued element, converted to `unit`. */
export interface QuantityFeature extends FeatureBase {
  kind: 'quantity';
  /** FHIRPath returning the candidate resources or elements. */
  source: string;
  /** FHIRPath on each candidate returning the Quantity (default `value.ofType(Quantity)`). */
  value?: string;
  /** FHIRPath on each candidate returning its date (default `effective.ofType(dateTime)`). */
  date?: string;
  staleAfterDays?: number;
}

/** BMI: the latest BMI observation, else computed from the latest weight and height (unit conversion). */
export interface BmiFeature extends FeatureBase {
  kind: 'bmi';
  source: string;
  weight: string;
  height: string;
  staleAfterDays?: number;
}

/** Slope per year of a Quantity over a window (least squares); needs two values far enough apart. */
export interface TrendFeature extends FeatureBase {
  kind: 'trend';
  source: string;
  value?: string;
  date?: string;
  /** Unit of the underlying values; the feature's unit is this unit per year. */
  valueUnit: string;
  windowDays: number;
  minSpanDays: number;
}

/** 1 when the source returns anything, else 0: a condition not recorded is taken as absent. */
export interface FlagFeature extends FeatureBase {
  kind: 'flag';
  source: string;
  /** FHIRPath on the first match returning its date (default `onset.ofType(dateTime) | recordedDate`). */
  date?: string;
}

/** A coded value (or integer) mapped to a number; an unmapped code is implausible. */
export interface CodeFeature extends FeatureBase {
  kind: 'code';
  source: string;
  value: string;
  date?: string;
  map: Record<string, number>;
  staleAfterDays?: number;
  /** `latest` (default) or `max`: the highest mapped value among the fresh candidates (e.g. worse knee). */
  pick?: 'latest' | 'max';
}

/** A boolean or integer element read as a number (true = 1). */
export interface NumberFeature extends FeatureBase {
  kind: 'number';
  source: string;
  value?: string;
  date?: string;
  staleAfterDays?: number;
}

export type FeatureSpec =
  AgeFeature | QuantityFeature | BmiFeature | TrendFeature | FlagFeature | CodeFeature | NumberFeature;

export interface GuardSpec {
  id: string;
  /** FHIRPath returning `true` when the subject is inside the validated population. */
  when: string;
  reason: Localized;
}

export interface BandSpec {
  id: string;
  /** The band holds risks strictly below this; the last band has none. */
  below?: number;
  label: Localized;
}

export type ExplanationSpec =
  { method: 'linear'; intercept: number; coefficients: number[] } | { method: 'shapley' };

export interface ModelManifest {
  id: string;
  version: string;
  title: Localized;
  /** `demonstration`: trained on simulated data; said on every card. */
  status: 'demonstration' | 'validated';
  statusText: Localized;
  file: string;
  sha256: string;
  modelCard: { markdown: string; json: string };
  input: { name: string };
  output: { name: string; column?: number };
  outcome: Localized;
  /** Horizon of the outcome; 0 for a present state (e.g. the examined lesion is a melanoma). */
  horizonMonths: number;
  population: Localized;
  /** Prefetch keys the expressions read as `%variables`; `%focus` (the subject) is always available. */
  requires: string[];
  guards: GuardSpec[];
  features: FeatureSpec[];
  explanation: ExplanationSpec;
  bands: BandSpec[];
  /** Risk at or above which the card is raised to a warning (the threshold of the model card). */
  threshold: number;
  /** Plain-language sentence for the patient; `{risk}` and `{horizon}` are filled. */
  patientSentence: Localized;
}

const range = {
  type: 'object',
  additionalProperties: false,
  required: ['min', 'max'],
  properties: { min: { type: 'number' }, max: { type: 'number' } },
} as const;
const missing = {
  oneOf: [
    {
      type: 'object',
      additionalProperties: false,
      required: ['policy'],
      properties: { policy: { const: 'refuse' } },
    },
    {
      type: 'object',
      additionalProperties: false,
      required: ['policy', 'value'],
      properties: { policy: { const: 'impute' }, value: { type: 'number' } },
    },
  ],
} as const;
const common = {
  id: identifier,
  label: localized,
  unit: { type: 'string', minLength: 1 },
  reference: { type: 'number' },
  range,
  missing,
  indicator: {
    type: 'object',
    additionalProperties: false,
    minProperties: 1,
    properties: { min: { type: 'number' }, max: { type: 'number' } },
  },
} as const;
const staleAfterDays = { type: 'integer', minimum: 1 } as const;

function feature<K extends string, P extends Record<string, unknown>>(
  kind: K,
  required: readonly string[],
  properties: P,
) {
  return {
    type: 'object',
    additionalProperties: false,
    required: ['id', 'label', 'unit', 'reference', 'kind', 'source', ...required],
    properties: { ...common, kind: { const: kind }, source: fhirPath, ...properties },
  } as const;
}

export const MANIFEST_SCHEMA = {
  $schema: 'https://json-schema.org/draft/2020-12/schema',
  title: 'ONNX model manifest',
  type: 'object',
  additionalProperties: false,
  required: [
    'id',
    'version',
    'title',
    'status',
    'statusText',
    'file',
    'sha256',
    'modelCard',
    'input',
    'output',
    'outcome',
    'horizonMonths',
    'population',
    'requires',
    'guards',
    'features',
    'explanation',
    'bands',
    'threshold',
    'patientSentence',
  ],
  properties: {
    id: { type: 'string', pattern: '^[a-z0-9][a-z0-9-]{0,63}$' },
    version: { type: 'string', pattern: '^\\d+\\.\\d+\\.\\d+$' },
    title: localized,
    status: { enum: ['demonstration', 'validated'] },
    statusText: localized,
    file: { type: 'string', pattern: '^[A-Za-z0-9._-]+\\.onnx$' },
    sha256: { type: 'string', pattern: '^[0-9a-f]{64}$' },
    modelCard: {
      type: 'object',
      additionalProperties: false,
      required: ['markdown', 'json'],
      properties: {
        markdown: { type: 'string', pattern: '^[A-Za-z0-9._-]+\\.md$' },
        json: { type: 'string', pattern: '^[A-Za-z0-9._-]+\\.json$' },
      },
    },
    input: {
      type: 'object',
      additionalProperties: false,
      required: ['name'],
      properties: { name: { type: 'string', minLength: 1 } },
    },
    output: {
      type: 'object',
      additionalProperties: false,
      required: ['name'],
      properties: { name: { type: 'string', minLength: 1 }, column: { type: 'integer', minimum: 0 } },
    },
    outcome: localized,
    horizonMonths: { type: 'integer', minimum: 0 },
    population: localized,
    requires: { type: 'array', items: { type: 'string', pattern: '^[A-Za-z][A-Za-z0-9]*$' } },
    guards: {
      type: 'array',
      items: {
        type: 'object',
        additionalProperties: false,
        required: ['id', 'when', 'reason'],
        properties: { id: identifier, when: fhirPath, reason: localized },
      },
    },
    features: {
      type: 'array',
      minItems: 1,
      maxItems: 64,
      items: {
        oneOf: [
          feature('age', [], {}),
          feature('quantity', [], { value: fhirPath, date: fhirPath, staleAfterDays }),
          feature('bmi', ['weight', 'height'], { weight: fhirPath, height: fhirPath, staleAfterDays }),
          feature('trend', ['valueUnit', 'windowDays', 'minSpanDays'], {
            value: fhirPath,
            date: fhirPath,
            valueUnit: { type: 'string', minLength: 1 },
            windowDays: { type: 'integer', minimum: 1 },
            minSpanDays: { type: 'integer', minimum: 1 },
          }),
          feature('flag', [], { date: fhirPath }),
          feature('code', ['value', 'map'], {
            value: fhirPath,
            date: fhirPath,
            map: { type: 'object', minProperties: 1, additionalProperties: { type: 'number' } },
            staleAfterDays,
            pick: { enum: ['latest', 'max'] },
          }),
          feature('number', [], { value: fhirPath, date: fhirPath, staleAfterDays }),
        ],
      },
    },
    explanation: {
      oneOf: [
        {
          type: 'object',
          additionalProperties: false,
          required: ['method', 'intercept', 'coefficients'],
          properties: {
            method: { const: 'linear' },
            intercept: { type: 'number' },
            coefficients: { type: 'array', items: { type: 'number' } },
          },
        },
        {
          type: 'object',
          additionalProperties: false,
          required: ['method'],
          properties: { method: { const: 'shapley' } },
        },
      ],
    },
    bands: {
      type: 'array',
      minItems: 1,
      items: {
        type: 'object',
        additionalProperties: false,
        required: ['id', 'label'],
        properties: {
          id: identifier,
          below: { type: 'number', exclusiveMinimum: 0, maximum: 1 },
          label: localized,
        },
      },
    },
    threshold: { type: 'number', exclusiveMinimum: 0, exclusiveMaximum: 1 },
    patientSentence: localized,
  },
} as const;
