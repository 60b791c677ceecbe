/**
 * Loads the models folder at start-up (and reload) in two steps, so that nothing is opened until every
 * file is known good. A model lives in `models/<id>/<version>/` (several versions side by side; a plain
 * `models/<id>/` with its manifest is one version too). `readModels` checks the files: the manifest is
 * validated (its id and version must be its folders'), the ONNX file's sha256 compared with the
 * manifest's and, when the configuration names an approved-models file, with the approved list; the
 * FHIRPath of every feature and guard compiled; the model card checked for its required sections.
 * `openModels` then creates one onnxruntime session per model version (kept warm for the life of the
 * process), matches its input/output names, element types and shapes against the manifest, runs the
 * manifest's reference examples (the conversion check) and, for a manifest declaring linear
 * coefficients, checks those coefficients against the model on probe rows, so an explanation can never
 * disagree with the score. Any problem stops start-up with CDS_ERR_MODEL_INVALID naming the model
 * (and the example, the hash or the section) and the reason.
 */
import { createHash } from 'node:crypto';
import { existsSync, readdirSync, readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';
import * as ort from 'onnxruntime-node';
import { parse as parseYaml, parseDocument } from 'yaml';
import { CdsError } from '../errors.js';
import * as generated from '../generated/models.js';
import { generatedValidator } from '../validators.js';
import type { FhirPath } from '../rules/fhirpath.js';
import { type CompiledFeature, type CompiledGuard, compileFeatureDefaults } from './features.js';
import type { ModelManifest } from './manifest.js';
import { FILL_MARKER, type RequiredModelCard } from './model-card.js';
import { isKnownUnit } from './units.js';
import { parseBackground } from './background.js';
import { applyLink, readTreeModel, treeMargin } from './trees.js';
import { float32Input } from './cast-input.js';
import { treeExplainer } from '../explain/tree-shap.js';
import {
  linearExplainer,
  modelAgnosticExplainer,
  type ModelExplainer,
  treeModelExplainer,
} from '../explain/shapley.js';

/** A model folder read and checked, everything but what needs the ONNX session: no resource held. */
export interface ModelFiles {
  readonly manifest: ModelManifest;
  /** sha256 of the ONNX file's bytes, as read (equal to the manifest's). */
  readonly sha256: string;
  /** The ONNX file's bytes, for the session. */
  readonly bytes: Buffer;
  readonly features: readonly CompiledFeature[];
  readonly guards: readonly CompiledGuard[];
  /** The model card: markdown (and its French version when the manifest names one) and JSON. */
  readonly card: { markdown: string; json: unknown; markdownFr?: string };
  /**
   * The rows explanations are measured against: the manifest's background sample, else the one row of
   * the features' reference values (rounded to float32, as the model sees them).
   */
  readonly background: readonly (readonly number[])[];
}

export interface LoadedModel extends Omit<ModelFiles, 'bytes'> {
  readonly session: ort.InferenceSession;
  /**
   * Element type of the file's input. The session always takes float32 rows: a float64 input gets a
   * Cast inserted at load (src/scoring/cast-input.ts).
   */
  readonly fileInputType: 'float32' | 'float64';
  /** Shapley values of the margin against the background (src/explain/shapley.ts). */
  readonly explainer: ModelExplainer;
}

/** Models by id (the version services run), or by `modelKey(id, version)` for every version on disk. */
export type ModelRegistry = ReadonlyMap<string, LoadedModel>;

/** The key of one version of a model among all versions on disk. */
export function modelKey(id: string, version: string): string {
  return `${id}@${version}`;
}

/**
 * One entry of the approved-models file: the only model files start-up accepts when the file is set. The
 * approval record (who approved, when, on which report) is shown on the governance page.
 */
export interface ApprovedModel {
  id: string;
  version: string;
  sha256: string;
  /** Who approved this version (a name or a role; the governance page shows it). */
  approvedBy?: string;
  /** When: a date (YYYY-MM-DD) or a date-time. */
  approvedAt?: string;
  /** The local validation report the approval rests on: a file name in the reports folder. */
  report?: string;
}

export interface ReadOptions {
  /** The approved list (`approvedModelsFile`); when given, any model not on it is refused. */
  approved?: { file: string; models: readonly ApprovedModel[] };
}

/** The approved-models file (`approvedModelsFile`): see {@link readApprovedModels}. */
export const APPROVED_MODELS_SCHEMA = {
  type: 'array',
  items: {
    type: 'object',
    additionalProperties: false,
    required: ['id', 'version', 'sha256'],
    properties: {
      id: { type: 'string', minLength: 1 },
      version: { type: 'string', pattern: '^\\d+\\.\\d+\\.\\d+$' },
      sha256: { type: 'string', pattern: '^[0-9a-f]{64}$' },
      approvedBy: { type: 'string', minLength: 1, maxLength: 200 },
      approvedAt: { type: 'string', pattern: '^\\d{4}-\\d{2}-\\d{2}(T[\\d:.]+(Z|[+-]\\d{2}:\\d{2}))?$' },
      report: { type: 'string', pattern: '^[A-Za-z0-9][A-Za-z0-9._-]{0,199}$' },
    },
  },
} as const;

// MANIFEST_SCHEMA, MODEL_CARD_SCHEMA and APPROVED_MODELS_SCHEMA, compiled by `npm run schemas`.
const validateManifest = generatedValidator<ModelManifest>(generated.manifest);
const validateCard = generatedValidator<RequiredModelCard>(generated.modelCard);
const validateApproved = generatedValidator<ApprovedModel[]>(generated.approvedModels);

/**
 * Reads the approved-models file (YAML or JSON: a list of `{ id, version, sha256 }`, each with its
 * optional approval record `approvedBy`, `approvedAt`, `report`), kept outside the
 * models folder so that whoever can change a model file and its manifest cannot also approve it.
 * @throws CdsError CDS_ERR_MODEL_INVALID naming the file
 */
export function readApprovedModels(file: string): NonNullable<ReadOptions['approved']> {
  const name = file.split(/[\\/]/).pop()!;
  let list: unknown;
  try {
    list = parseYaml(readFileSync(file, 'utf8'));
  } catch (error) {
    fail(`approved list ${name}`, `cannot read it: ${(error as Error).message.split('\n')[0]}`);
  }
  if (!validateApproved(list)) {
    const e = validateApproved.errors![0]!;
    fail(`approved list ${name}`, `${e.instancePath || '/'} ${e.message}`);
  }
  return { file: name, models: list };
}

function fail(model: string, reason: string): never {
  throw new CdsError('CDS_ERR_MODEL_INVALID', { model, reason });
}

/** Session options: one thread per session is fastest for small models on small machines. */
export const SESSION_OPTIONS: ort.InferenceSession.SessionOptions = {
  intraOpNumThreads: 1,
  interOpNumThreads: 1,
  executionMode: 'sequential',
  graphOptimizationLevel: 'all',
};

/**
 * Loads the models of `dir`, one version per id (the highest when several are on disk), keyed by id:
 * for tools and tests. A missing folder means no models. The service itself loads every version
 * (`readModels`) and serves the ones its services name (src/ops/live-set.ts).
 * @param fhirpath the engine that compiles the features' and guards' expressions
 * @throws CdsError CDS_ERR_MODEL_INVALID
 */
export async function loadModels(dir: string, fhirpath: FhirPath): Promise<ModelRegistry> {
  const latest = new Map<string, ModelFiles>();
  for (const files of readModels(dir, fhirpath).values()) {
    const seen = latest.get(files.manifest.id);
    if (!seen || compareVersions(files.manifest.version, seen.manifest.version) > 0)
      latest.set(files.manifest.id, files);
  }
  return openModels(latest);
}

/** Orders two `major.minor.patch` versions numerically. */
export function compareVersions(a: string, b: string): number {
  const pa = a.split('.').map(Number);
  const pb = b.split('.').map(Number);
  for (let i = 0; i < 3; i += 1) if (pa[i] !== pb[i]) return (pa[i] ?? 0) - (pb[i] ?? 0);
  return 0;
}

const isDirectory = (path: string) => {
  try {
    return statSync(path).isDirectory();
  } catch {
    return false;
  }
};

/**
 * Reads and checks every model version of `dir` without opening a session, keyed by
 * `modelKey(id, version)`: `<dir>/<id>/<version>/manifest.yaml`, or `<dir>/<id>/manifest.yaml` for a
 * model kept without version folders. A missing folder means no models.
 * @throws CdsError CDS_ERR_MODEL_INVALID
 */
export function readModels(
  dir: string,
  fhirpath: FhirPath,
  options: ReadOptions = {},
): ReadonlyMap<string, ModelFiles> {
  const models = new Map<string, ModelFiles>();
  if (!existsSync(dir)) return models;
  const folders = readdirSync(dir, { withFileTypes: true })
    .filter((d) => d.isDirectory())
    .map((d) => d.name)
    .sort();
  for (const folder of folders) {
    const path = join(dir, folder);
    const versions = existsSync(join(path, 'manifest.yaml'))
      ? [undefined]
      : readdirSync(path)
          .filter((v) => existsSync(join(path, v, 'manifest.yaml')) && isDirectory(join(path, v)))
          .sort(compareVersions);
    for (const version of versions) {
      const here = version === undefined ? path : join(path, version);
      // The folders name the model: checked before anything else is read.
      const m = readManifest(here);
      if (m.id !== folder) fail(folder, `manifest id "${m.id}" differs from its folder`);
      if (version !== undefined && m.version !== version)
        fail(`${folder} ${version}`, `manifest version "${m.version}" differs from its folder`);
      // The manifest just read and checked: reading it again would parse the YAML twice.
      models.set(modelKey(m.id, m.version), readModelWith(here, m, fhirpath, options));
    }
  }
  return models;
}

/**
 * Opens one onnxruntime session per model and checks it against the manifest; if any model fails, the
 * sessions already opened are released before the error is thrown.
 * @throws CdsError CDS_ERR_MODEL_INVALID
 */
export async function openModels(files: ReadonlyMap<string, ModelFiles>): Promise<ModelRegistry> {
  const models = new Map<string, LoadedModel>();
  try {
    for (const [id, model] of files) models.set(id, await openModel(model));
  } catch (error) {
    await releaseModels(models);
    throw error;
  }
  return models;
}

/** Releases the sessions of models that will not serve (a failed start-up, a replaced set). */
export async function releaseModels(models: ModelRegistry): Promise<void> {
  await Promise.all([...models.values()].map((m) => m.session.release().catch(() => undefined)));
}

/** Reads and validates `<folder>/manifest.yaml`. */
export function readManifest(folder: string): ModelManifest {
  // `<id>/<version>` names the model as "<id> <version>"; a folder without versions by its name.
  const [parent, last] = folder.split(/[\\/]/).slice(-2);
  const name = /^\d+\.\d+\.\d+$/.test(last ?? '') && parent ? `${parent} ${last}` : (last ?? parent!);
  let text: string;
  try {
    text = readFileSync(join(folder, 'manifest.yaml'), 'utf8');
  } catch (error) {
    fail(name, `cannot read manifest.yaml: ${(error as Error).message}`);
  }
  const document = parseDocument(text, { prettyErrors: false, uniqueKeys: true });
  const marker = unfilled(text);
  if (marker !== undefined) fail(name, `manifest.yaml still has a field to fill: ${marker}`);
  if (document.errors.length > 0) fail(name, `manifest.yaml: ${document.errors[0]!.message}`);
  const manifest: unknown = document.toJS();
  if (!validateManifest(manifest)) {
    const e = validateManifest.errors![0]!;
    fail(name, `manifest.yaml ${e.instancePath || '/'} ${e.message}`);
  }
  checkManifest(manifest);
  return manifest;
}

/** The first `<<FILL …>>` marker left by `npm run model -- init`, if any. */
export function unfilled(text: string): string | undefined {
  const at = text.indexOf(FILL_MARKER);
  if (at < 0) return undefined;
  const end = text.indexOf('>>', at);
  return text.slice(at, end < 0 ? at + 60 : end + 2);
}

function checkManifest(m: ModelManifest): void {
  const ids = m.features.map((f) => f.id);
  const dup = ids.find((id, i) => ids.indexOf(id) !== i);
  if (dup) fail(m.id, `feature id "${dup}" is used twice`);
  for (const f of m.features) {
    if ((f.kind === 'quantity' || f.kind === 'bmi') && !isKnownUnit(f.unit)) {
      fail(m.id, `feature "${f.id}": unit "${f.unit}" is not one the service can convert to`);
    }
    if (f.kind === 'trend' && !isKnownUnit(f.valueUnit)) {
      fail(m.id, `feature "${f.id}": unit "${f.valueUnit}" is not one the service can convert to`);
    }
    if (f.range && f.range.min > f.range.max) fail(m.id, `feature "${f.id}": range min is above max`);
  }
  const below = m.bands.map((b) => b.below);
  if (below[below.length - 1] !== undefined) fail(m.id, 'the last risk band must have no upper bound');
  for (let i = 0; i < below.length - 1; i += 1) {
    const here = below[i];
    if (here === undefined || (i > 0 && here <= below[i - 1]!)) {
      fail(m.id, 'risk bands must have increasing upper bounds, all but the last');
    }
  }
  if (m.explanation.method === 'linear' && m.explanation.coefficients.length !== m.features.length) {
    fail(
      m.id,
      `explanation has ${m.explanation.coefficients.length} coefficients for ${m.features.length} features`,
    );
  }
  const width = m.examples.rows.find((e) => e.input.length !== m.features.length);
  if (width) {
    fail(
      m.id,
      `example "${width.id}" has ${width.input.length} input values for ${m.features.length} features`,
    );
  }
  for (const minimum of m.minimumRecorded ?? []) {
    const unknown = minimum.features.find((id) => !ids.includes(id));
    if (unknown) fail(m.id, `minimumRecorded "${minimum.id}": no feature "${unknown}"`);
    if (minimum.count > minimum.features.length) {
      fail(
        m.id,
        `minimumRecorded "${minimum.id}": count ${minimum.count} is above its ${minimum.features.length} features`,
      );
    }
  }
  const ids2 = m.examples.rows.map((e) => e.id);
  const dupExample = ids2.find((id, i) => ids2.indexOf(id) !== i);
  if (dupExample) fail(m.id, `example id "${dupExample}" is used twice`);
}

function checkSession(m: ModelManifest, session: ort.InferenceSession): void {
  const input = session.inputMetadata.find((i) => i.name === m.input.name);
  if (!input)
    fail(m.id, `the ONNX model has no input "${m.input.name}" (it has ${session.inputNames.join(', ')})`);
  if (session.inputNames.length !== 1)
    fail(m.id, `the ONNX model must have one input, not ${session.inputNames.length}`);
  if (!input.isTensor || (input.type !== 'float32' && input.type !== 'float64'))
    fail(m.id, `input "${m.input.name}" must be a float32 or float64 tensor`);
  const [, width] = input.shape;
  if (input.shape.length !== 2 || (typeof width === 'number' && width !== m.features.length)) {
    fail(
      m.id,
      `input "${m.input.name}" must have shape [N, ${m.features.length}], not [${input.shape.join(', ')}]`,
    );
  }
  const output = session.outputMetadata.find((o) => o.name === m.output.name);
  if (!output)
    fail(m.id, `the ONNX model has no output "${m.output.name}" (it has ${session.outputNames.join(', ')})`);
  if (!output.isTensor || (output.type !== 'float32' && output.type !== 'float64')) {
    fail(m.id, `output "${m.output.name}" must be a float tensor`);
  }
  const columns = output.shape.length === 2 ? output.shape[1] : 1;
  if (output.shape.length > 2 || (typeof columns === 'number' && (m.output.column ?? 0) >= columns)) {
    fail(
      m.id,
      `output "${m.output.name}" of shape [${output.shape.join(', ')}] has no column ${m.output.column ?? 0}`,
    );
  }
}

/** Compiles the FHIRPath of a manifest's features and guards (the training script uses it too). */
export function compileManifest(
  m: ModelManifest,
  fhirpath: FhirPath,
): { features: CompiledFeature[]; guards: CompiledGuard[] } {
  const variables = [...m.requires, 'focus'];
  const defaults = compileFeatureDefaults((source) => fhirpath.compile(source, []));
  const compile = (source: string, where: string) => {
    try {
      return fhirpath.compile(source, variables);
    } catch (error) {
      return fail(m.id, `${where}: ${(error as Error).message}`);
    }
  };
  const features = m.features.map((spec): CompiledFeature => {
    const where = `feature "${spec.id}"`;
    return {
      spec,
      source: compile(spec.source, where),
      value: 'value' in spec && spec.value !== undefined ? compile(spec.value, where) : undefined,
      date: 'date' in spec && spec.date !== undefined ? compile(spec.date, where) : undefined,
      weight: spec.kind === 'bmi' ? compile(spec.weight, where) : undefined,
      height: spec.kind === 'bmi' ? compile(spec.height, where) : undefined,
      defaults,
    };
  });
  const guards = m.guards.map((spec) => ({ spec, when: compile(spec.when, `guard "${spec.id}"`) }));
  return { features, guards };
}

/** Loads one model folder. */
export async function loadModel(
  folder: string,
  fhirpath: FhirPath,
  options: ReadOptions = {},
): Promise<LoadedModel> {
  return openModel(readModel(folder, fhirpath, options));
}

/** Reads and checks one model folder, without opening a session. */
export function readModel(folder: string, fhirpath: FhirPath, options: ReadOptions = {}): ModelFiles {
  return readModelWith(folder, readManifest(folder), fhirpath, options);
}

/** `readModel` with the folder's manifest already read by `readManifest`. */
function readModelWith(
  folder: string,
  manifest: ModelManifest,
  fhirpath: FhirPath,
  options: ReadOptions,
): ModelFiles {
  const m = manifest;
  let bytes: Buffer;
  try {
    bytes = readFileSync(join(folder, m.file));
  } catch (error) {
    fail(m.id, `cannot read ${m.file}: ${(error as Error).message}`);
  }
  const sha256 = createHash('sha256').update(bytes).digest('hex');
  if (sha256 !== m.sha256) fail(m.id, `${m.file} has sha256 ${sha256}, the manifest says ${m.sha256}`);
  if (options.approved) {
    const { file, models } = options.approved;
    if (!models.some((a) => a.id === m.id && a.version === m.version && a.sha256 === sha256)) {
      fail(m.id, `version ${m.version}, ${m.file} with sha256 ${sha256} is not approved in ${file}`);
    }
  }
  const { features, guards } = compileManifest(m, fhirpath);
  let card: ModelFiles['card'];
  try {
    card = {
      markdown: readFileSync(join(folder, m.modelCard.markdown), 'utf8'),
      json: JSON.parse(readFileSync(join(folder, m.modelCard.json), 'utf8')) as unknown,
      ...(m.modelCard.markdownFr
        ? { markdownFr: readFileSync(join(folder, m.modelCard.markdownFr), 'utf8') }
        : {}),
    };
  } catch (error) {
    fail(m.id, `model card: ${(error as Error).message}`);
  }
  for (const problem of modelCardProblems(card, m, sha256)) fail(m.id, `model card: ${problem}`);
  return { manifest, sha256, bytes, features, guards, card, background: readBackground(folder, m) };
}

/** The manifest's background sample, else the reference row; float32 as the model sees it. */
function readBackground(folder: string, m: ModelManifest): number[][] {
  const toFloat32 = (rows: number[][]) => rows.map((r) => r.map((v) => Math.fround(v)));
  if (!m.background) return toFloat32([m.features.map((f) => f.reference)]);
  let text: string;
  try {
    text = readFileSync(join(folder, m.background.file), 'utf8');
  } catch (error) {
    fail(m.id, `cannot read the background ${m.background.file}: ${(error as Error).message}`);
  }
  try {
    return toFloat32(
      parseBackground(
        text,
        m.features.map((f) => f.id),
      ),
    );
  } catch (error) {
    fail(m.id, `background ${m.background.file}: ${(error as Error).message}`);
  }
}

/**
 * What a model card lacks, in words: a required section (MODEL_CARD_SCHEMA), a version or sha256 other
 * than the manifest's and the file's, a markdown not stating them, a field left to fill.
 */
export function modelCardProblems(
  card: { markdown: string; json: unknown; markdownFr?: string },
  m: Pick<ModelManifest, 'id' | 'version' | 'modelCard'>,
  sha256: string,
): string[] {
  const problems: string[] = [];
  if (!validateCard(card.json)) {
    for (const e of validateCard.errors!) {
      if (e.keyword === 'anyOf' || e.schemaPath.includes('/anyOf/')) {
        if (!problems.some((p) => p.includes('calibration'))) {
          problems.push(
            `${m.modelCard.json} ${e.instancePath} must state calibration (calibrationSlope, calibrationIntercept or calibrationTable)`,
          );
        }
        continue;
      }
      const field =
        e.keyword === 'required' ? `${e.instancePath}/${String(e.params.missingProperty)}` : e.instancePath;
      problems.push(
        e.keyword === 'required'
          ? `${m.modelCard.json} has no ${field} (a required section)`
          : `${m.modelCard.json} ${field || '/'} ${e.message}`,
      );
    }
    return problems;
  }
  const json = card.json;
  if (json.id !== m.id) problems.push(`${m.modelCard.json} is the card of "${json.id}", not "${m.id}"`);
  if (json.version !== m.version)
    problems.push(`${m.modelCard.json} describes version ${json.version}, the manifest ${m.version}`);
  if (json.onnxSha256 !== sha256)
    problems.push(`${m.modelCard.json} states sha256 ${json.onnxSha256}, the file has ${sha256}`);
  if (!card.markdown.includes(sha256))
    problems.push(`${m.modelCard.markdown} does not state the sha256 ${sha256}`);
  if (!card.markdown.includes(m.version))
    problems.push(`${m.modelCard.markdown} does not state the version ${m.version}`);
  if (card.markdownFr !== undefined) {
    // The French card describes the same file: a stale translation is refused like a stale card.
    if (!card.markdownFr.includes(sha256))
      problems.push(`${m.modelCard.markdownFr} does not state the sha256 ${sha256}`);
    if (!card.markdownFr.includes(m.version))
      problems.push(`${m.modelCard.markdownFr} does not state the version ${m.version}`);
  }
  const marker =
    unfilled(card.markdown) ?? unfilled(card.markdownFr ?? '') ?? unfilled(JSON.stringify(card.json));
  if (marker !== undefined) problems.push(`a field is still to fill: ${marker}`);
  return problems;
}

/**
 * Opens the session of a checked model folder and checks it against the manifest (and the linear
 * coefficients against the model); the session is released if a check fails.
 */
export async function openModel(
  files: ModelFiles,
  options: { skipExamples?: boolean } = {},
): Promise<LoadedModel> {
  const { bytes, ...rest } = files;
  const m = files.manifest;
  let session: ort.InferenceSession;
  let fileInputType: LoadedModel['fileInputType'];
  try {
    const runnable = float32Input(bytes, m.input.name);
    fileInputType = runnable.fileInputType;
    session = await ort.InferenceSession.create(runnable.bytes, SESSION_OPTIONS);
  } catch (error) {
    fail(m.id, `onnxruntime cannot load ${m.file}: ${(error as Error).message.split('\n')[0]}`);
  }
  let model: LoadedModel;
  try {
    checkSession(m, session);
    const explainer = await buildExplainer(files, session);
    model = { ...rest, session, fileInputType, explainer };
    // Only `npm run model -- validate` skips them, to list every example's difference itself.
    if (!options.skipExamples) await checkExamples(model);
    if (m.explanation.method === 'linear') await checkLinear(model);
    return model;
  } catch (error) {
    await session.release().catch(() => undefined);
    throw error;
  }
}

/** Largest gap allowed between onnxruntime's output and the trees' link(margin) (float32 rounding). */
const TREE_TOLERANCE = 1e-5;

/**
 * The explainer of the manifest's method, its background summarised once. For trees, the ensemble is
 * read from the ONNX file and must reproduce onnxruntime's output on every background row and the
 * reference row, so the trees explained are the trees that score.
 */
async function buildExplainer(files: ModelFiles, session: ort.InferenceSession): Promise<ModelExplainer> {
  const m = files.manifest;
  const e = m.explanation;
  const background = files.background;
  const run = (rows: readonly (readonly number[])[]) => runSession(session, m, rows);
  if (e.method === 'linear') {
    try {
      return linearExplainer(e, background);
    } catch (error) {
      fail(m.id, (error as Error).message);
    }
  }
  if (e.method === 'tree') {
    let tree: ReturnType<typeof readTreeModel>;
    try {
      tree = readTreeModel(files.bytes, m.output, m.features.length);
    } catch (error) {
      fail(m.id, `explanation method tree: ${(error as Error).message}`);
    }
    if (tree.link !== 'logistic')
      fail(
        m.id,
        `explanation method tree: the output is the trees' sum itself (${tree.layout}), not a probability on the log-odds scale`,
      );
    const reference = m.features.map((f) => Math.fround(f.reference));
    const rows = [reference, ...background];
    const outputs = await run(rows);
    rows.forEach((row, r) => {
      const mine = applyLink(tree, treeMargin(tree, row));
      if (!(Math.abs(mine - outputs[r]!) <= TREE_TOLERANCE)) {
        const which = r === 0 ? 'the reference row' : `background row ${r}`;
        fail(
          m.id,
          `explanation method tree: on ${which} onnxruntime gives ${outputs[r]} but the trees read from ${m.file} give ${mine} (${tree.layout})`,
        );
      }
    });
    return treeModelExplainer(treeExplainer(tree, background));
  }
  const margins = Array.from(await run(background), logit);
  const baseline = margins.reduce((s, v) => s + v, 0) / margins.length;
  return modelAgnosticExplainer(m.features.length, background, baseline);
}

/**
 * The conversion check: every reference example, run through the ONNX file, must give the probability
 * the source framework gave, within the manifest's tolerance (a mis-converted model, with flipped or
 * shifted outputs, is refused before any card uses it).
 */
async function checkExamples(model: LoadedModel): Promise<void> {
  const { manifest: m } = model;
  const { tolerance, source } = m.examples;
  for (const { id, expected, actual } of await exampleDifferences(model)) {
    if (!(Math.abs(actual - expected) <= tolerance)) {
      fail(
        m.id,
        `example "${id}": the ONNX model gives ${actual.toPrecision(6)}, ${source} gave ` +
          `${expected} (tolerance ${tolerance}): a wrong conversion or a wrong example`,
      );
    }
  }
}

/** Each reference example with the probability the source gave and the ONNX model's. */
export async function exampleDifferences(
  model: LoadedModel,
): Promise<{ id: string; expected: number; actual: number }[]> {
  const { rows } = model.manifest.examples;
  const probabilities = await predict(
    model,
    rows.map((r) => r.input),
  );
  return rows.map((r, i) => ({ id: r.id, expected: r.probability, actual: probabilities[i]! }));
}

/**
 * A manifest's linear coefficients must reproduce the model: on the reference row and on one row per
 * feature moved by one unit, the logit they give equals the logit of the model's output.
 */
async function checkLinear(model: LoadedModel): Promise<void> {
  const { manifest: m } = model;
  if (m.explanation.method !== 'linear') return;
  const { intercept, coefficients } = m.explanation;
  const reference = m.features.map((f) => f.reference);
  const rows = [reference, ...reference.map((_, i) => reference.map((v, j) => (i === j ? v + 1 : v)))];
  const probabilities = await predict(model, rows);
  rows.forEach((row, r) => {
    const expected = row.reduce((s, v, i) => s + coefficients[i]! * v, intercept);
    const actual = logit(probabilities[r]!);
    if (Math.abs(expected - actual) > 1e-4) {
      fail(
        m.id,
        `the manifest's linear coefficients do not reproduce the model (logit ${actual} vs ${expected})`,
      );
    }
  });
}

export function logit(p: number): number {
  const q = Math.min(Math.max(p, 1e-12), 1 - 1e-12);
  return Math.log(q / (1 - q));
}

/**
 * Runs the model on rows of feature values.
 * @returns P(outcome) per row, in float64
 */
export async function predict(
  model: Pick<LoadedModel, 'manifest' | 'session'>,
  rows: readonly (readonly number[])[],
): Promise<Float64Array> {
  return runSession(model.session, model.manifest, rows);
}

async function runSession(
  session: ort.InferenceSession,
  m: ModelManifest,
  rows: readonly (readonly number[])[],
): Promise<Float64Array> {
  const width = m.features.length;
  const data = new Float32Array(rows.length * width);
  rows.forEach((row, r) => data.set(row, r * width));
  const input = new ort.Tensor('float32', data, [rows.length, width]);
  const results = await session.run({ [m.input.name]: input }, [m.output.name]);
  const output = results[m.output.name]!;
  const values = output.data as Float32Array | Float64Array;
  const columns = output.dims.length === 2 ? output.dims[1]! : 1;
  const column = m.output.column ?? 0;
  const probabilities = new Float64Array(rows.length);
  for (let r = 0; r < rows.length; r += 1) probabilities[r] = values[r * columns + column]!;
  return probabilities;
}
