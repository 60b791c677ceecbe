/**
 * The model manifest (`models/<id>/manifest.yaml`): everything the service needs to turn a patient's
 * record into the model's input tensor and its output into a card, for a model produced by any tool.
 *
 * The contract with the ONNX file: one float32 (or float64) input of shape [N, F] whose columns are the features in
 * manifest order, and one float output holding P(outcome) — shape [N], [N, 1], or [N, C] with the
 * column named by `output.column` (e.g. the positive-class column of an ai.onnx.ml
 * TreeEnsembleClassifier's probabilities). The loader checks names, element types and shapes against
 * the session's metadata, and the file's sha256 against the manifest.
 *
 * The schema is the one source of truth: the types are derived from it (json-schema-to-ts `FromSchema`).
 */
import type { FromSchema, JSONSchema } from 'json-schema-to-ts';
import { fhirPath, identifier, localized } from '../services/definition-schema.js';

const range = {
  type: 'object',
  additionalProperties: false,
  required: ['min', 'max'],
  description: 'Outside this range the value is implausible and the model does not score.',
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
  unit: {
    type: 'string',
    minLength: 1,
    description: 'UCUM unit of the value given to the model (`1` for flags and counts).',
  },
  reference: {
    type: 'number',
    description:
      'The value contributions are measured against when the manifest declares no `background` sample.',
  },
  range,
  missing,
  display: {
    type: 'object',
    additionalProperties: false,
    minProperties: 1,
    description:
      'How a value reads to a person, where the default from the kind and unit (scoring/display.ts) is not right.',
    properties: {
      kind: { enum: ['number', 'yes-no', 'present-absent'] },
      precision: { type: 'integer', minimum: 0, maximum: 3, description: 'Decimals shown at most.' },
      unit: { ...localized, description: 'The unit as a clinician reads it (e.g. "out of 10").' },
      code: { ...localized, description: 'How a recorded code reads beside yes/no; `{code}` is replaced.' },
    },
  },
  indicator: {
    type: 'object',
    additionalProperties: false,
    minProperties: 1,
    description:
      'Turns the value into 1 inside [min, max] (either bound optional), else 0: e.g. an age band.',
    properties: { min: { type: 'number' }, max: { type: 'number' } },
  },
} as const;
const staleAfterDays = { type: 'integer', minimum: 1 } as const;
const value = (defaultExpression: string) =>
  ({
    ...fhirPath,
    description: `FHIRPath on each candidate returning the value (default \`${defaultExpression}\`).`,
  }) as const;
const date = (defaultExpression: string) =>
  ({
    ...fhirPath,
    description: `FHIRPath on each candidate returning its date (default \`${defaultExpression}\`).`,
  }) as const;

function feature<
  const K extends string,
  const R extends readonly string[],
  const P extends Record<string, JSONSchema>,
>(kind: K, description: string, required: R, properties: P) {
  return {
    type: 'object',
    additionalProperties: false,
    description,
    required: ['id', 'label', 'unit', 'reference', 'kind', 'source', ...required],
    properties: { ...common, kind: { const: kind }, source: fhirPath, ...properties },
  } as const;
}

const ageFeature = feature(
  'age',
  'Age in whole years at the time of the call, from Patient.birthDate.',
  [],
  {},
);
const quantityFeature = feature(
  'quantity',
  'The latest value of a Quantity-valued element, converted to `unit`.',
  [],
  {
    value: value('value.ofType(Quantity)'),
    date: date('effective.ofType(dateTime) | effective.ofType(Period).start | issued'),
    staleAfterDays,
  },
);
const bmiFeature = feature(
  'bmi',
  'BMI: the latest BMI observation, else computed from the latest weight and height (unit conversion).',
  ['weight', 'height'],
  { weight: fhirPath, height: fhirPath, staleAfterDays },
);
const trendFeature = feature(
  'trend',
  'Slope per year of a Quantity over a window (least squares); needs two values far enough apart.',
  ['valueUnit', 'windowDays', 'minSpanDays'],
  {
    value: value('value.ofType(Quantity)'),
    date: date('effective.ofType(dateTime) | effective.ofType(Period).start | issued'),
    valueUnit: {
      type: 'string',
      minLength: 1,
      description: "Unit of the underlying values; the feature's unit is this unit per year.",
    },
    windowDays: { type: 'integer', minimum: 1 },
    minSpanDays: { type: 'integer', minimum: 1 },
  },
);
const flagFeature = feature(
  'flag',
  '1 when the source returns anything, else 0: a condition not recorded is taken as absent.',
  [],
  { date: date('onset.ofType(dateTime) | recordedDate') },
);
const codeFeature = feature(
  'code',
  'A coded value (or integer) mapped to a number; an unmapped code is implausible.',
  ['value', 'map'],
  {
    value: fhirPath,
    date: fhirPath,
    map: { type: 'object', minProperties: 1, additionalProperties: { type: 'number' } },
    staleAfterDays,
    pick: {
      enum: ['latest', 'max'],
      description:
        '`latest` (default) or `max`: the highest mapped value among the fresh candidates (e.g. worse knee).',
    },
  },
);
const numberFeature = feature('number', 'A boolean or integer element read as a number (true = 1).', [], {
  value: fhirPath,
  date: fhirPath,
  staleAfterDays,
});
const guardSpec = {
  type: 'object',
  additionalProperties: false,
  required: ['id', 'when', 'reason'],
  properties: {
    id: identifier,
    when: {
      ...fhirPath,
      description: 'FHIRPath returning `true` when the subject is inside the validated population.',
    },
    reason: localized,
  },
} as const;
const bandSpec = {
  type: 'object',
  additionalProperties: false,
  required: ['id', 'label'],
  properties: {
    id: identifier,
    below: {
      type: 'number',
      exclusiveMinimum: 0,
      maximum: 1,
      description: 'The band holds risks strictly below this; the last band has none.',
    },
    label: localized,
  },
} as const;
const explanationSpec = {
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
      description:
        'Shapley values of the margin against the background: `tree` by exact TreeSHAP (ai.onnx.ml tree ensembles), `shapley` for any model (exact enumeration or a sampling estimate).',
      properties: { method: { enum: ['shapley', 'tree'] } },
    },
  ],
} as const;
const backgroundSpec = {
  type: 'object',
  additionalProperties: false,
  required: ['file'],
  description:
    'The sample explanations are measured against (CSV: a header of the feature ids, one row per subject); without it, the row of the features’ `reference` values.',
  properties: { file: { type: 'string', pattern: '^[A-Za-z0-9._-]+\\.csv$' } },
} as const;

/**
 * A minimum of recorded inputs (`minimumRecorded`): the model does not score a subject unless at least
 * `count` of `features` are recorded as observed values (not imputed, not assumed absent, not stale).
 * E.g. the checklist items of a lesion: filling most of them with population shares would give an
 * estimate that reads as an answer about the lesion when it is mostly about the population.
 */
const minimumRecordedSpec = {
  type: 'object',
  additionalProperties: false,
  required: ['id', 'label', 'features', 'count'],
  properties: {
    id: identifier,
    label: {
      ...localized,
      description: 'What the inputs are, as the card names them (e.g. "weighted 7-point checklist items").',
    },
    features: { type: 'array', minItems: 1, uniqueItems: true, items: identifier },
    count: {
      type: 'integer',
      minimum: 1,
      description: 'How many of `features` must be recorded (at most their number; all of them = every one).',
    },
  },
} as const;

const exampleSpec = {
  type: 'object',
  additionalProperties: false,
  required: ['id', 'input', 'probability'],
  properties: {
    id: identifier,
    input: {
      type: 'array',
      minItems: 1,
      items: { type: 'number' },
      description: 'One value per feature, in manifest order, as given to the source model.',
    },
    probability: {
      type: 'number',
      minimum: 0,
      maximum: 1,
      description: 'P(outcome) the source framework (not onnxruntime) gave for this row.',
    },
  },
} as const;
/**
 * The conversion check: rows with the probabilities the source framework gave (scikit-learn, XGBoost,
 * the training tool's own implementation...). Start-up and reload run them through the ONNX file and
 * refuse the model when one differs by more than `tolerance`, naming the example.
 */
const examplesSpec = {
  type: 'object',
  additionalProperties: false,
  required: ['source', 'tolerance', 'rows'],
  properties: {
    source: {
      type: 'string',
      minLength: 1,
      description: 'What computed the expected probabilities (framework and version, or script).',
    },
    tolerance: {
      type: 'number',
      exclusiveMinimum: 0,
      maximum: 0.01,
      description: 'Largest accepted |ONNX probability − expected probability| (float32 inference: 1e-5).',
    },
    rows: { type: 'array', minItems: 1, maxItems: 1000, items: exampleSpec },
  },
} as const;

/**
 * A subgroup of the model card, read from a feature's value (issue 19: the audit keeps which subgroups
 * a patient belongs to, never the data itself). `cuts` bands a number (`<55`, `55-64`, `65+`), `labels`
 * names a value (`'1': female`); an imputed value is `not recorded`, a value without a label `other`.
 */
const subgroupSpec = {
  type: 'object',
  additionalProperties: false,
  required: ['id', 'feature'],
  properties: {
    id: { type: 'string', pattern: '^[a-z][A-Za-z0-9]*$' },
    feature: { type: 'string', minLength: 1 },
    cuts: { type: 'array', minItems: 1, items: { type: 'number' } },
    labels: { type: 'object', additionalProperties: { type: 'string', minLength: 1 } },
  },
  // Exactly one of cuts and labels.
  oneOf: [
    { type: 'object', required: ['cuts'], properties: { cuts: { type: 'array' } } },
    { type: 'object', required: ['labels'], properties: { labels: { type: 'object' } } },
  ],
} as const;

/**
 * How `npm run evaluate` finds the outcome in data recorded after an estimate (issue 19): a resource of
 * `resourceType` of the same patient on which `expression` is true, dated (by `date`) after the estimate
 * and within `horizonMonths` of it. With `focus`, the outcome is the focus's (a lesion's) rather than
 * the patient's wherever the resource names the focus the estimate was about (models/README.md).
 */
const outcomeDefinitionSpec = {
  type: 'object',
  additionalProperties: false,
  required: ['resourceType', 'expression', 'date', 'horizonMonths'],
  properties: {
    resourceType: { type: 'string', pattern: '^[A-Z][A-Za-z]+$' },
    expression: {
      type: 'string',
      minLength: 1,
      description: 'FHIRPath over one later resource: true when it shows the outcome.',
    },
    date: { type: 'string', minLength: 1, description: 'FHIRPath giving the date of the resource.' },
    horizonMonths: { type: 'integer', minimum: 1, maximum: 240 },
    focus: {
      type: 'string',
      minLength: 1,
      description:
        "FHIRPath over one later resource giving the identity of the focus it is about, compared with the estimate's focus label (case and spacing aside); %resources is the patient's resources (one resource type per `%resources.ofType(Type)`, fetched too from a FHIR server).",
    },
  },
} as const;

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
    'examples',
    'bands',
    'threshold',
    'patientSentence',
  ],
  properties: {
    id: { type: 'string', pattern: '^[a-z0-9][a-z0-9-]{0,63}$' },
    version: { type: 'string', pattern: '^\\d+\\.\\d+\\.\\d+$' },
    title: localized,
    status: {
      enum: ['demonstration', 'validated'],
      description: '`demonstration`: trained on simulated data; said on every card.',
    },
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
        markdownFr: {
          type: 'string',
          pattern: '^[A-Za-z0-9._-]+\\.md$',
          description:
            'The card in French (served to French readers); without it they get the English card under a notice.',
        },
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
    horizonMonths: {
      type: 'integer',
      minimum: 0,
      description: 'Horizon of the outcome; 0 for a present state (e.g. the examined lesion is a melanoma).',
    },
    population: localized,
    requires: {
      type: 'array',
      items: { type: 'string', pattern: '^[A-Za-z][A-Za-z0-9]*$' },
      description:
        'Prefetch keys the expressions read as `%variables`; `%focus` (the subject) is always available.',
    },
    guards: { type: 'array', items: guardSpec },
    minimumRecorded: {
      type: 'array',
      items: minimumRecordedSpec,
      description:
        'Inputs that must be recorded for the model to score; below the count the card says which are missing.',
    },
    features: {
      type: 'array',
      minItems: 1,
      maxItems: 64,
      items: {
        oneOf: [
          ageFeature,
          quantityFeature,
          bmiFeature,
          trendFeature,
          flagFeature,
          codeFeature,
          numberFeature,
        ],
      },
    },
    explanation: explanationSpec,
    examples: examplesSpec,
    background: backgroundSpec,
    bands: { type: 'array', minItems: 1, items: bandSpec },
    threshold: {
      type: 'number',
      exclusiveMinimum: 0,
      exclusiveMaximum: 1,
      description:
        'Risk at or above which the card is raised to a warning (the threshold of the model card).',
    },
    patientSentence: {
      ...localized,
      description: 'Plain-language sentence for the patient; `{risk}` and `{horizon}` are filled.',
    },
    subgroups: { type: 'array', items: subgroupSpec },
    outcomeDefinition: outcomeDefinitionSpec,
  },
} as const;

export type ModelManifest = FromSchema<typeof MANIFEST_SCHEMA>;
export type FeatureRange = FromSchema<typeof range>;
export type MissingPolicy = FromSchema<typeof missing>;
export type AgeFeature = FromSchema<typeof ageFeature>;
export type QuantityFeature = FromSchema<typeof quantityFeature>;
export type BmiFeature = FromSchema<typeof bmiFeature>;
export type TrendFeature = FromSchema<typeof trendFeature>;
export type FlagFeature = FromSchema<typeof flagFeature>;
export type CodeFeature = FromSchema<typeof codeFeature>;
export type NumberFeature = FromSchema<typeof numberFeature>;
export type FeatureSpec =
  AgeFeature | QuantityFeature | BmiFeature | TrendFeature | FlagFeature | CodeFeature | NumberFeature;
export type GuardSpec = FromSchema<typeof guardSpec>;
export type MinimumRecordedSpec = FromSchema<typeof minimumRecordedSpec>;
export type SubgroupSpec = FromSchema<typeof subgroupSpec>;
export type OutcomeDefinition = FromSchema<typeof outcomeDefinitionSpec>;
export type BandSpec = FromSchema<typeof bandSpec>;
export type ExplanationSpec = FromSchema<typeof explanationSpec>;
export type ExamplesSpec = FromSchema<typeof examplesSpec>;
