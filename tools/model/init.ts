/**
 * `model init`: reads an ONNX file's inputs and outputs and writes, into `<models>/<id>/<version>/`, the
 * file itself, a manifest skeleton, a model-card template (JSON, rendered to markdown by `model card`)
 * and a service-YAML snippet. Every field left to fill holds a `<<FILL …>>` marker saying what goes there;
 * the service refuses to load anything still holding one, and `model validate` lists them all.
 */
import { createHash } from 'node:crypto';
import { copyFileSync, existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { basename, join } from 'node:path';
import * as ort from 'onnxruntime-node';
import { SESSION_OPTIONS } from '../../src/scoring/load.js';
import { readTreeModel } from '../../src/scoring/trees.js';

export interface InitOptions {
  onnx: string;
  id: string;
  version: string;
  modelsDir: string;
  force?: boolean;
}

export interface InitResult {
  folder: string;
  files: string[];
  /** What was read from the ONNX file, in words. */
  notes: string[];
}

/** What `init` could not adapt: the user has to re-export the model. */
export class InitError extends Error {
  override name = 'InitError';
}

interface OnnxShape {
  input: { name: string; type: string; width: number | undefined };
  output: { name: string; columns: number | undefined; column: number | undefined };
  /** The tree ensemble computing the output, in words, when TreeSHAP can read it. */
  trees?: string;
  notes: string[];
}

/**
 * Whether the output is computed by a tree ensemble TreeSHAP explains exactly (the loader checks the
 * trees against onnxruntime again): then the manifest gets `explanation: { method: tree }`.
 */
function treeLayout(bytes: Uint8Array, shape: OnnxShape, width: number, notes: string[]): string | undefined {
  try {
    const tree = readTreeModel(bytes, { name: shape.output.name, column: shape.output.column }, width);
    if (tree.link !== 'logistic') {
      notes.push(
        `the output is a tree ensemble's sum on the probability scale (${tree.layout}): explained by enumeration or sampling`,
      );
      return undefined;
    }
    notes.push(`the output is a tree ensemble (${tree.layout}): explanation method tree (exact TreeSHAP)`);
    return tree.layout;
  } catch (error) {
    const reason = (error as Error).message;
    // Not a tree ensemble at all: nothing to say; a tree ensemble TreeSHAP cannot read: say why.
    if (!/is computed by|no node computes/.test(reason))
      notes.push(
        `the trees cannot be explained by TreeSHAP (${reason}): explained by enumeration or sampling`,
      );
    return undefined;
  }
}

/** Reads the one input and the probability output of an ONNX file through onnxruntime's metadata. */
export async function inspectOnnx(bytes: Uint8Array): Promise<OnnxShape> {
  let session: ort.InferenceSession;
  try {
    session = await ort.InferenceSession.create(bytes, SESSION_OPTIONS);
  } catch (error) {
    throw new InitError(`onnxruntime cannot load the file: ${(error as Error).message.split('\n')[0]}`);
  }
  try {
    const notes: string[] = [];
    if (session.inputMetadata.length !== 1) {
      throw new InitError(
        `the model has ${session.inputMetadata.length} inputs (${session.inputNames.join(', ')}); the service ` +
          'gives one tensor [N, F] with every feature: export the model with a single input',
      );
    }
    const input = session.inputMetadata[0]!;
    if (!input.isTensor || (input.type !== 'float32' && input.type !== 'float64')) {
      throw new InitError(`input "${input.name}" must be a float32 or float64 tensor`);
    }
    if (input.type === 'float64') {
      notes.push(
        `input "${input.name}" is float64: the service inserts a Cast at load and feeds it float32 rows (the file stays as it is)`,
      );
    }
    const width = input.shape.length === 2 && typeof input.shape[1] === 'number' ? input.shape[1] : undefined;
    const tensors = session.outputMetadata.filter(
      (o) => o.isTensor && (o.type === 'float32' || o.type === 'float64'),
    );
    const maps = session.outputMetadata.filter((o) => !o.isTensor);
    if (tensors.length === 0) {
      throw new InitError(
        maps.length > 0
          ? `output "${maps[0]!.name}" is a sequence of maps (ZipMap): re-export without it ` +
              '(skl2onnx: options={id(model): {"zipmap": False}}; see the README, Bring your own model)'
          : 'the model has no float tensor output holding the probability',
      );
    }
    const output = tensors.find((o) => /prob/i.test(o.name)) ?? tensors[tensors.length - 1]!;
    const shape = output.isTensor ? output.shape : [];
    const columns = shape.length === 2 && typeof shape[1] === 'number' ? shape[1] : undefined;
    const column = columns !== undefined && columns >= 2 ? columns - 1 : undefined;
    if (column !== undefined) {
      notes.push(`output "${output.name}" has ${columns} columns: column ${column} is taken as P(outcome)`);
    }
    if (width === undefined)
      notes.push(`input "${input.name}" has no fixed width: the manifest gets one feature per --features`);
    return {
      input: { name: input.name, type: input.type, width },
      output: { name: output.name, columns, column },
      notes,
    };
  } finally {
    await session.release();
  }
}

const FEATURE_KINDS = 'age | quantity | bmi | trend | flag | code | number';

function featureSkeleton(i: number): string {
  const n = i + 1;
  return `  - id: '<<FILL id of column ${i}, letters and digits, e.g. age>>'
    label: { en: '<<FILL label of feature ${n} in English>>', fr: '<<FILL label of feature ${n} in French>>' }
    kind: '<<FILL one of ${FEATURE_KINDS}>>'
    source: '<<FILL FHIRPath over the prefetch, e.g. %patient or %observations.entry.resource.ofType(Observation).where(...)>>'
    unit: '<<FILL UCUM unit of the value the model expects; 1 for flags and counts>>'
    range: { min: '<<FILL lowest plausible value>>', max: '<<FILL highest plausible value>>' }
    missing: { policy: refuse }
    reference: '<<FILL training mean of column ${i}>>'`;
}

function explanationSkeleton(shape: OnnxShape): string {
  const method = shape.trees
    ? `# tree: exact interventional TreeSHAP on the trees read from the file (${shape.trees}).
explanation: { method: tree }`
    : `# shapley: Shapley values for any model (exact while 2^F × background rows ≤ 65,536, else a sampling
# estimate with its error); linear: give intercept and coefficients (checked against the model).
explanation: { method: shapley }`;
  return `${method}
# Contributions are measured against a background sample: write about 100 rows of your training data
# (a header of the feature ids in manifest order, one row per subject, an empty cell for a missing value)
# to background.csv and uncomment the next line. Without it, the features' reference values are used.
# background: { file: background.csv }`;
}

function manifestSkeleton(o: InitOptions, file: string, sha256: string, shape: OnnxShape, width: number) {
  const zeros = Array.from({ length: width }, () => "'<<FILL>>'").join(', ');
  const column = shape.output.column === undefined ? '' : `, column: ${shape.output.column}`;
  return `# Manifest of ${o.id} ${o.version}, written by \`npm run model -- init\`. Replace every FILL marker
# (the service refuses a manifest still holding one), then run \`npm run model -- validate\`.
# The fields are described in the README (Models) and in openapi.yaml (ModelManifest).
id: ${o.id}
version: ${o.version}
title: { en: '<<FILL title in English>>', fr: '<<FILL title in French>>' }
# demonstration: trained on simulated data (said on every card); validated: validated at your site.
status: '<<FILL demonstration or validated>>'
statusText: { en: '<<FILL status sentence shown on every card>>', fr: '<<FILL the same in French>>' }
file: ${file}
sha256: '${sha256}'
modelCard: { markdown: model-card.md, json: model-card.json }
input: { name: ${JSON.stringify(shape.input.name)} }
output: { name: ${JSON.stringify(shape.output.name)}${column} }
outcome: { en: '<<FILL the outcome predicted>>', fr: '<<FILL the same in French>>' }
horizonMonths: '<<FILL horizon in months, 0 for a present state>>'
population: { en: '<<FILL the validated population>>', fr: '<<FILL the same in French>>' }
# Prefetch keys the expressions read as %variables (the service YAML must have them).
requires: [ patient, observations, conditions ]
# FHIRPath returning true inside the validated population; outside, no score and the reason on the card.
guards:
  - id: adult
    when: "%patient.birthDate.exists() and %patient.birthDate <= today() - 18 years"
    reason: { en: 'younger than 18 years', fr: 'moins de 18 ans' }
# One entry per input column, in column order (${width} columns). kind: ${FEATURE_KINDS}.
features:
${Array.from({ length: width }, (_, i) => featureSkeleton(i)).join('\n')}
${explanationSkeleton(shape)}
# The conversion check: rows (one value per feature, in column order) and the probability YOUR framework
# gave for each (e.g. model.predict_proba(X)[:, 1] in scikit-learn), not onnxruntime's. Start-up refuses
# the model if the ONNX file differs by more than the tolerance on any of them.
examples:
  source: '<<FILL framework and version, e.g. scikit-learn 1.5.2 predict_proba>>'
  tolerance: 0.00001
  rows:
    - id: example1
      input: [ ${zeros} ]
      probability: '<<FILL P(outcome) given by the source framework>>'
bands:
  - id: lower
    below: 0.1
    label: { en: 'lower risk', fr: 'risque plus faible' }
  - id: higher
    label: { en: 'higher risk', fr: 'risque plus élevé' }
threshold: '<<FILL risk at or above which the card is a warning, as in the model card>>'
patientSentence:
  en: 'About {risk} of people like you <<FILL what happens>> within {horizon}.'
  fr: 'Environ {risk} des personnes comme vous <<FILL ce qui arrive>> en {horizon}.'
`;
}

/** The JSON model card template: the sections the service requires, to fill. */
export function cardTemplate(id: string, version: string, sha256: string): Record<string, unknown> {
  return {
    id,
    version,
    title: '<<FILL title>>',
    status: '<<FILL e.g. Validated at <site> on <date>, or Demonstration model trained on simulated data>>',
    intendedUse: '<<FILL what the estimate is for, and the decision it supports>>',
    intendedUsers: '<<FILL who reads it, e.g. general practitioners>>',
    population: { description: '<<FILL the population the model was developed and validated on>>' },
    trainingData: {
      kind: '<<FILL retrospective cohort, registry, trial, simulated…>>',
      description: '<<FILL source, period, size, prevalence>>',
    },
    outcome: { description: '<<FILL the outcome>>', horizon: '<<FILL e.g. 24 months>>' },
    metrics: {
      overall: { auc: '<<FILL>>', calibrationSlope: '<<FILL>>', calibrationIntercept: '<<FILL>>' },
      subgroups: [
        { variable: '<<FILL e.g. sex>>', group: '<<FILL e.g. female>>', n: '<<FILL>>', auc: '<<FILL>>' },
      ],
    },
    limits: ['<<FILL where the model is known to fail or was not evaluated>>'],
    dates: { trained: '<<FILL YYYY-MM-DD>>', card: '<<FILL YYYY-MM-DD>>' },
    onnxSha256: sha256,
  };
}

function serviceSnippet(o: InitOptions): string {
  return `# Service YAML for ${o.id}, written by \`npm run model -- init\`: copy it to cds-services/${o.id}.yaml,
# replace every FILL marker and make the prefetch fetch what the manifest's features read.
id: ${o.id}
version: 1.0.0
hook: patient-view
title: '<<FILL title shown in discovery>>'
description: '<<FILL what the service does, for whom; say the model status>>'
guideline:
  - label: '<<FILL the publication or local protocol behind the model (authors, year, section)>>'
    url: '<<FILL https://…>>'
prefetch:
  patient:
    query: 'Patient/{{context.patientId}}'
    onFailure: fail
    description: { en: 'the patient record', fr: 'le dossier patient' }
  conditions:
    query: 'Condition?patient={{context.patientId}}'
    onFailure: fail
    description: { en: 'conditions', fr: 'problèmes de santé' }
  observations:
    query: 'Observation?patient={{context.patientId}}&_sort=-date&_count=200'
    onFailure: omit
    description: { en: 'observations', fr: 'observations' }
  consent:
    query: 'Consent?patient={{context.patientId}}&status=active'
    onFailure: fail
    description: { en: "the patient's consent and objection records", fr: 'les consentements et oppositions du patient' }
patientObjection: consent
# The version that issues cards: the one place where it is chosen (models/${o.id}/<version>/).
models:
  - id: ${o.id}
    version: ${o.version}
rules: []
cards:
  - id: scored
    when: { model: ${o.id}, scored: true }
    indicator: info
    summary:
      en: '<<FILL one line under 140 characters, e.g. Estimated {{model.risk}} risk of … ({{model.band}})>>'
      fr: '<<FILL the same in French>>'
  - id: notScored
    when: { model: ${o.id}, scored: false }
    indicator: info
    summary:
      en: '<<FILL e.g. No estimate for this patient; the card says why>>'
      fr: '<<FILL the same in French>>'
`;
}

/** Writes the skeleton folder; refuses to overwrite an existing one unless `force`. */
export async function initModel(o: InitOptions, features?: number): Promise<InitResult> {
  if (!/^[a-z0-9][a-z0-9-]{0,63}$/.test(o.id))
    throw new InitError(`id "${o.id}": lower-case letters, digits and dashes, 64 at most`);
  if (!/^\d+\.\d+\.\d+$/.test(o.version)) throw new InitError(`version "${o.version}": major.minor.patch`);
  let bytes: Buffer;
  try {
    bytes = readFileSync(o.onnx);
  } catch (error) {
    throw new InitError(`cannot read ${o.onnx}: ${(error as NodeJS.ErrnoException).code ?? 'error'}`);
  }
  const shape = await inspectOnnx(bytes);
  const width = shape.input.width ?? features;
  if (width === undefined)
    throw new InitError(`input "${shape.input.name}" has no fixed width: give --features <count>`);
  shape.trees = treeLayout(bytes, shape, width, shape.notes);
  const folder = join(o.modelsDir, o.id, o.version);
  if (existsSync(join(folder, 'manifest.yaml')) && !o.force)
    throw new InitError(`${folder} already has a manifest (--force overwrites it)`);
  mkdirSync(folder, { recursive: true });
  const file = /^[A-Za-z0-9._-]+\.onnx$/.test(basename(o.onnx)) ? basename(o.onnx) : 'model.onnx';
  const sha256 = createHash('sha256').update(bytes).digest('hex');
  copyFileSync(o.onnx, join(folder, file));
  writeFileSync(join(folder, 'manifest.yaml'), manifestSkeleton(o, file, sha256, shape, width));
  writeFileSync(
    join(folder, 'model-card.json'),
    `${JSON.stringify(cardTemplate(o.id, o.version, sha256), null, 2)}\n`,
  );
  writeFileSync(
    join(folder, 'model-card.md'),
    `# ${o.id} ${o.version}\n\n<<FILL: fill model-card.json, then run npm run model -- card --model ${folder} --write>>\n`,
  );
  writeFileSync(join(folder, 'service-snippet.yaml'), serviceSnippet(o));
  return {
    folder,
    files: [file, 'manifest.yaml', 'model-card.json', 'model-card.md', 'service-snippet.yaml'],
    notes: [
      `input "${shape.input.name}" (${shape.input.type}, ${width} columns), output "${shape.output.name}"`,
      ...shape.notes,
    ],
  };
}
