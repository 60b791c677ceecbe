/**
 * What a model card must contain before the service runs the model (the design's "model card for every
 * model"): intended use and users, population, training data, outcome and horizon, metrics with
 * subgroups and calibration, limits, status, version, dates and the sha256 of the file it describes.
 * `model-card.json` is checked against this schema at start-up and reload (any other field is allowed);
 * its version and sha256 must be the manifest's, and the markdown must state both. `npm run model -- card`
 * runs the same check and renders the markdown.
 */
import type { FromSchema } from 'json-schema-to-ts';

const text = { type: 'string', minLength: 1 } as const;
const texts = { type: 'array', minItems: 1, items: text } as const;
const isoDate = { type: 'string', pattern: '^\\d{4}-\\d{2}-\\d{2}$' } as const;

const range = {
  type: 'object',
  additionalProperties: false,
  required: ['min', 'max'],
  properties: { min: { type: 'number' }, max: { type: 'number' } },
} as const;

/** Calibration is stated as a slope, an intercept or a table of observed against predicted risks. */
const calibrated = {
  properties: {
    calibrationSlope: { type: 'number' },
    calibrationIntercept: { type: 'number' },
    calibrationTable: { type: 'array', minItems: 1 },
  },
  anyOf: [
    { required: ['calibrationSlope'], properties: { calibrationSlope: { type: 'number' } } },
    { required: ['calibrationIntercept'], properties: { calibrationIntercept: { type: 'number' } } },
    { required: ['calibrationTable'], properties: { calibrationTable: { type: 'array' } } },
  ],
} as const;

export const MODEL_CARD_SCHEMA = {
  $schema: 'https://json-schema.org/draft/2020-12/schema',
  title: 'Model card (JSON): the sections every model must document',
  type: 'object',
  required: [
    'id',
    'version',
    'status',
    'intendedUse',
    'intendedUsers',
    'population',
    'trainingData',
    'outcome',
    'metrics',
    'limits',
    'dates',
    'onnxSha256',
  ],
  properties: {
    id: text,
    version: { type: 'string', pattern: '^\\d+\\.\\d+\\.\\d+$' },
    status: { ...text, description: 'e.g. "Demonstration model…", "Validated at <site> on <date>".' },
    intendedUse: text,
    intendedUsers: { ...text, description: 'Who reads the estimate (e.g. general practitioners).' },
    population: {
      type: 'object',
      required: ['description'],
      properties: { description: text },
    },
    trainingData: {
      type: 'object',
      required: ['kind'],
      properties: {
        kind: { ...text, description: '`simulated`, `retrospective cohort`, `registry`, `trial`…' },
      },
    },
    outcome: {
      type: 'object',
      required: ['description', 'horizon'],
      properties: { description: text, horizon: text },
    },
    metrics: {
      type: 'object',
      required: ['overall', 'subgroups'],
      properties: {
        overall: { type: 'object', minProperties: 1, ...calibrated },
        subgroups: { type: 'array', minItems: 1, items: { type: 'object', minProperties: 1 } },
      },
    },
    limits: texts,
    dates: {
      type: 'object',
      required: ['trained', 'card'],
      properties: { trained: isoDate, card: isoDate, validated: isoDate },
    },
    onnxSha256: { type: 'string', pattern: '^[0-9a-f]{64}$' },
    calibratedRange: {
      type: 'object',
      additionalProperties: false,
      required: ['risk', 'source'],
      description:
        'Where the model is calibrated: the risks, and the inputs (by feature id, in the feature unit), ' +
        'over which calibration was checked. An estimate or an input outside is flagged on the card.',
      properties: {
        risk: range,
        inputs: { type: 'object', additionalProperties: range },
        source: { ...text, description: 'How the range was derived (e.g. from the calibration table).' },
      },
    },
  },
} as const;

/** The calibrated range a model card may state (`calibratedRange`). */
export type CalibratedRange = FromSchema<typeof MODEL_CARD_SCHEMA.properties.calibratedRange>;

export type RequiredModelCard = FromSchema<typeof MODEL_CARD_SCHEMA>;

/** The marker `npm run model -- init` puts in every field left to fill; nothing holding it loads. */
export const FILL_MARKER = '<<FILL';
