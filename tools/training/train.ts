/**
 * `npm run train`: rebuilds the bundled demonstration models from nothing but a seed.
 *
 *   npm run train                        both models, written into models/<id>/<version>/ (the highest)
 *   npm run train -- --model melanoma-risk
 *   npm run train -- --check             rebuild in memory and compare with the committed files
 *
 * For each model: a synthetic cohort (tools/training/datasets.ts), features extracted by the service's
 * own code, a logistic regression fitted on the training patients, written as ONNX (float32 weights),
 * then evaluated on held-out patients by running that ONNX file in onnxruntime, exactly as the service
 * will. The manifest (sha256, coefficients, references, reference examples) and the model card are
 * rewritten from the results. The reference examples' probabilities come from this tool's own float64
 * implementation of the fitted model (not from onnxruntime), so the service's conversion check compares
 * the ONNX file with an independent computation. Nothing reads the clock or Math.random: same seed, same bytes (--check proves it).
 */
import type { CalibratedRange } from '../../src/scoring/model-card.js';
import { createHash } from 'node:crypto';
import { existsSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import * as ort from 'onnxruntime-node';
import { parseDocument } from 'yaml';
import { compareVersions, compileManifest, readManifest, SESSION_OPTIONS } from '../../src/scoring/load.js';
import type { ModelManifest } from '../../src/scoring/manifest.js';
import { buildDataset, DATASETS, type Dataset } from './datasets.js';
import { fitLogistic } from './logistic.js';
import { describeModel } from './model-cards.js';
import { type ModelCardData, renderModelCard } from './model-card.js';
import { bySubgroup, evaluate } from './metrics.js';
import { logisticToOnnx } from './onnx-writer.js';
import { invokedDirectly, parseOptions, UsageError } from '../usage.js';
import { createFhirPath } from '../../src/rules/fhirpath.js';
import { formatBackground } from '../../src/scoring/background.js';

export interface TrainOptions {
  modelsDir: string;
  modelId: string;
  seed: number;
  nTrain: number;
  nTest: number;
  /** Progress lines (stderr in the CLI). */
  log?: (line: string) => void;
  /** The command that reproduces the files, for the model card; default `npm run train -- --model <id>`. */
  command?: string;
}

export interface TrainedFiles {
  /** File name → bytes, for models/<id>/. */
  files: Record<string, Uint8Array>;
  summary: string;
}

/** Rows of the background sample written for a manifest that declares one. */
export const BACKGROUND_ROWS = 100;

/** Defaults of the bundled models: enough held-out events for stable subgroup figures. */
export const DEFAULTS = { seed: 20261122, nTrain: 20_000, nTest: 10_000 } as const;

async function probabilities(onnx: Uint8Array, inputName: string, outputName: string, rows: number[][]) {
  const session = await ort.InferenceSession.create(onnx, SESSION_OPTIONS);
  const width = rows[0]?.length ?? 0;
  const data = new Float32Array(rows.length * width);
  rows.forEach((r, i) => data.set(r, i * width));
  const out = await session.run({ [inputName]: new ort.Tensor('float32', data, [rows.length, width]) });
  await session.release();
  return Array.from(out[outputName]!.data as Float32Array, Number);
}

/**
 * The folder a model is trained into: `<modelsDir>/<id>/<version>/`, the highest version on disk (or
 * `<modelsDir>/<id>/` when it has no version folders).
 */
export function modelFolder(modelsDir: string, modelId: string): string {
  const base = join(modelsDir, modelId);
  if (existsSync(join(base, 'manifest.yaml'))) return base;
  const versions = existsSync(base)
    ? readdirSync(base).filter((v) => existsSync(join(base, v, 'manifest.yaml')))
    : [];
  const latest = versions.sort(compareVersions).pop();
  // No manifest at all: the base folder, for readManifest to say so.
  return latest === undefined ? base : join(base, latest);
}

/** How many held-out rows become the manifest's reference examples. */
export const EXAMPLE_COUNT = 8;
/** float32 inference against the float64 reference: differences are around 1e-7. */
export const EXAMPLE_TOLERANCE = 1e-5;

/**
 * The fitted model computed in float64 from the float32 weights and float32 inputs the ONNX file holds:
 * the reference the ONNX file is checked against.
 */
export function referenceProbability(
  intercept: number,
  coefficients: readonly number[],
  x: readonly number[],
) {
  const z = x.reduce((s, v, i) => s + coefficients[i]! * Math.fround(v), intercept);
  return 1 / (1 + Math.exp(-z));
}

/**
 * The manifest's reference examples: the first held-out rows (so that a few held-out patients rebuild
 * them), with the probability of the float64 reference implementation.
 */
export function referenceExamples(test: Dataset, intercept: number, coefficients: readonly number[]) {
  return test.rows.slice(0, EXAMPLE_COUNT).map((row, i) => {
    const input = row.x.map((v) => Math.fround(v));
    return {
      id: `heldOut${i + 1}`,
      input,
      probability: referenceProbability(intercept, coefficients, input),
    };
  });
}

function mean(values: readonly number[]): number {
  return values.reduce((s, v) => s + v, 0) / values.length;
}

/** Rewrites the trained fields of the manifest, keeping its comments and layout. */
export function updateManifest(
  text: string,
  sha256: string,
  intercept: number,
  coefficients: number[],
  references: number[],
  examples: { id: string; input: number[]; probability: number }[],
) {
  const doc = parseDocument(text);
  doc.setIn(
    ['examples'],
    doc.createNode({
      source: 'npm run train (float64 logistic model, the fitted weights rounded to float32)',
      tolerance: EXAMPLE_TOLERANCE,
      rows: examples.map((e) => ({ ...e, input: doc.createNode(e.input, { flow: true }) })),
    }),
  );
  doc.setIn(['sha256'], sha256);
  doc.setIn(['explanation', 'intercept'], intercept);
  doc.setIn(['explanation', 'coefficients'], doc.createNode(coefficients, { flow: true }));
  references.forEach((r, i) => doc.setIn(['features', i, 'reference'], r));
  return doc.toString({ lineWidth: 0 });
}

/** Trains one model and returns the files of its folder (nothing is written). */
export async function trainModel(options: TrainOptions): Promise<TrainedFiles> {
  const log = options.log ?? (() => {});
  const folder = modelFolder(options.modelsDir, options.modelId);
  const spec = DATASETS[options.modelId];
  if (!spec)
    throw new Error(
      `no training recipe for model "${options.modelId}" (known: ${Object.keys(DATASETS).join(', ')})`,
    );
  const manifest: ModelManifest = readManifest(folder);
  const compiled = compileManifest(manifest, createFhirPath());
  const progress = (what: string, total: number) => (done: number) =>
    log(`${manifest.id}: ${what} ${done}/${total} patients`);
  const train: Dataset = buildDataset(
    spec,
    compiled,
    options.seed,
    0,
    options.nTrain,
    progress('training', options.nTrain),
  );
  const test: Dataset = buildDataset(
    spec,
    compiled,
    options.seed,
    options.nTrain,
    options.nTest,
    progress('held-out', options.nTest),
  );
  if (train.rows.length === 0 || test.rows.length === 0)
    throw new Error(`${manifest.id}: no subject to train or test on`);
  // The background sample of the explanations: simulated patients after the test set (used for
  // neither), through the same feature extraction; float32, as the model sees them.
  const background = manifest.background
    ? buildDataset(spec, compiled, options.seed, options.nTrain + options.nTest, 2 * BACKGROUND_ROWS)
        .rows.slice(0, BACKGROUND_ROWS)
        .map((r) => r.x.map((v) => Math.fround(v)))
    : undefined;
  if (background && background.length < BACKGROUND_ROWS)
    throw new Error(`${manifest.id}: fewer than ${BACKGROUND_ROWS} background subjects`);
  const fit = fitLogistic(
    train.rows.map((r) => r.x),
    train.rows.map((r) => r.y),
  );
  if (!fit.converged) throw new Error(`${manifest.id}: the logistic regression did not converge`);
  // The ONNX file holds float32 weights; the manifest states the same float32 values, so the
  // explanation reproduces the model's logit exactly.
  const intercept = Math.fround(fit.intercept);
  const coefficients = fit.coefficients.map((c) => Math.fround(c));
  const references = manifest.features.map((_, i) => Math.fround(mean(train.rows.map((r) => r.x[i]!))));
  const onnx = logisticToOnnx(
    { intercept, coefficients },
    {
      inputName: manifest.input.name,
      outputName: manifest.output.name,
      producerName: 'explainable-cds-hooks npm run train',
      producerVersion: manifest.version,
      docString: `${manifest.title.en}. ${manifest.statusText.en}`,
      metadata: {
        model_id: manifest.id,
        model_version: manifest.version,
        seed: String(options.seed),
        status: manifest.status,
        features: manifest.features.map((f) => f.id).join(','),
      },
    },
  );
  const sha256 = createHash('sha256').update(onnx).digest('hex');
  const scores = await probabilities(
    onnx,
    manifest.input.name,
    manifest.output.name,
    test.rows.map((r) => r.x),
  );
  const labels = test.rows.map((r) => r.y);
  const overall = evaluate(scores, labels, manifest.threshold);
  const variables = Object.keys(test.rows[0]!.groups);
  const subgroups = variables.flatMap((variable) =>
    bySubgroup(test.rows, (r) => r.groups[variable]!, scores, labels, manifest.threshold).map((g) => ({
      variable,
      ...g,
    })),
  );
  const examples = referenceExamples(test, intercept, coefficients);
  const manifestText = updateManifest(
    readFileSync(join(folder, 'manifest.yaml'), 'utf8'),
    sha256,
    intercept,
    coefficients,
    references,
    examples,
  );
  // The French card is translated by hand: it stays named in the manifest only while it states this
  // model's sha256 (a retrained model needs a new translation; the loader would refuse the old one).
  const frCard = manifest.modelCard.markdownFr;
  const frCurrent =
    frCard !== undefined &&
    existsSync(join(folder, frCard)) &&
    readFileSync(join(folder, frCard), 'utf8').includes(sha256);
  const manifestOut =
    frCard !== undefined && !frCurrent
      ? manifestText.replace(/,\s*markdownFr:\s*[^,}\s]+/, '')
      : manifestText;
  // The calibrated range is the model owner's statement (model-card.json `calibratedRange`), not
  // something training derives: carried over from the card in place.
  const previousCard = join(folder, manifest.modelCard.json);
  const calibratedRange = existsSync(previousCard)
    ? (JSON.parse(readFileSync(previousCard, 'utf8')) as { calibratedRange?: CalibratedRange })
        .calibratedRange
    : undefined;
  const card: ModelCardData = describeModel(manifest, {
    sha256,
    seed: options.seed,
    nTrain: train.rows.length,
    nTest: test.rows.length,
    excludedTrain: train.excluded,
    prevalenceTrain: mean(train.rows.map((r) => r.y)),
    intercept,
    coefficients,
    references,
    overall,
    subgroups,
    ...(background ? { backgroundRows: background.length } : {}),
  });
  if (options.command !== undefined) card.trainingCommand = options.command;
  if (calibratedRange) card.calibratedRange = calibratedRange;
  const { markdown, json } = renderModelCard(card);
  const encoder = new TextEncoder();
  return {
    files: {
      'model.onnx': onnx,
      'manifest.yaml': encoder.encode(manifestOut),
      [manifest.modelCard.markdown]: encoder.encode(markdown),
      [manifest.modelCard.json]: encoder.encode(json),
      ...(background && manifest.background
        ? {
            [manifest.background.file]: encoder.encode(
              formatBackground(
                manifest.features.map((f) => f.id),
                background,
              ),
            ),
          }
        : {}),
    },
    summary:
      `${manifest.id} ${manifest.version}: trained on ${train.rows.length}, tested on ${test.rows.length} ` +
      `(prevalence ${(mean(labels) * 100).toFixed(1)}%), AUC ${overall.auc?.toFixed(3)}, ` +
      `calibration slope ${overall.calibrationSlope?.toFixed(2)}, sha256 ${sha256.slice(0, 12)}…`,
  };
}

export const USAGE = `Usage: train [--model <id>] [--check] [--models-dir <dir>] [--seed <n>]
  --model <id>        train one model (${Object.keys(DATASETS).join(', ')}); default all
  --check             compare with the committed files instead of writing them (exit 1 if one differs)
  --models-dir <dir>  the models folder; default models
  --seed <n>          the simulator's seed (a candidate version retrained on another cohort); default ${DEFAULTS.seed}
  --help              this text`;

const OPTIONS = {
  model: { type: 'string' },
  check: { type: 'boolean' },
  'models-dir': { type: 'string' },
  seed: { type: 'string' },
  help: { type: 'boolean' },
} as const;

/**
 * The CLI; returns the exit code: 0 done (or every file reproduced), 1 a file differs, 2 a usage error.
 * An unknown option is refused before any training starts (a run takes minutes and rewrites models/).
 */
export async function main(
  args: string[],
  out: (line: string) => void,
  err: (line: string) => void,
): Promise<number> {
  let values: ReturnType<typeof parseOptions<typeof OPTIONS>>;
  try {
    values = parseOptions(args, OPTIONS);
  } catch (error) {
    if (!(error instanceof UsageError)) throw error;
    err(`train: ${error.message}\n${USAGE}`);
    return 2;
  }
  if (values.help) {
    out(USAGE);
    return 0;
  }
  const only = typeof values.model === 'string' ? values.model : undefined;
  const check = values.check === true;
  const modelsDir = typeof values['models-dir'] === 'string' ? values['models-dir'] : 'models';
  const ids = only ? [only] : Object.keys(DATASETS);
  const seed = typeof values.seed === 'string' ? Number(values.seed) : DEFAULTS.seed;
  if (!Number.isSafeInteger(seed) || seed < 0) {
    err(`train: --seed must be a non-negative integer, not "${String(values.seed)}"\n${USAGE}`);
    return 2;
  }
  let differences = 0;
  for (const modelId of ids) {
    const { files, summary } = await trainModel({
      modelsDir,
      modelId,
      ...DEFAULTS,
      seed,
      log: err,
      // The model card says how to reproduce a model trained elsewhere or on another seed.
      ...(seed !== DEFAULTS.seed || modelsDir !== 'models'
        ? { command: `npm run train -- --model ${modelId} --models-dir ${modelsDir} --seed ${seed}` }
        : {}),
    });
    out(summary);
    for (const [name, bytes] of Object.entries(files)) {
      const path = join(modelFolder(modelsDir, modelId), name);
      if (check) {
        let current: Buffer | undefined;
        try {
          current = readFileSync(path);
        } catch {
          current = undefined;
        }
        if (!current || !current.equals(Buffer.from(bytes))) {
          differences += 1;
          out(`DIFFERS: ${path} is not what training reproduces`);
        }
      } else writeFileSync(path, bytes);
    }
  }
  if (check)
    out(differences === 0 ? 'all model files are reproduced byte for byte' : `${differences} file(s) differ`);
  return differences === 0 ? 0 : 1;
}

/* c8 ignore start */
if (invokedDirectly(import.meta.url)) {
  main(
    process.argv.slice(2),
    (line) => process.stdout.write(`${line}\n`),
    (line) => process.stderr.write(`${line}\n`),
  ).then(
    (code) => process.exit(code),
    (error: unknown) => {
      process.stderr.write(`train: ${(error as Error).message}\n`);
      process.exit(2);
    },
  );
}
/* c8 ignore stop */
