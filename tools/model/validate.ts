/**
 * `model validate`: every check start-up makes on a model folder, plus the reference examples one by
 * one, printed in plain words. Fields still to fill are all listed (start-up stops at the first).
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { CdsError } from '../../src/errors.js';
import { createFhirPath } from '../../src/rules/fhirpath.js';
import {
  exampleDifferences,
  type LoadedModel,
  openModel,
  readApprovedModels,
  readModel,
  type ReadOptions,
} from '../../src/scoring/load.js';
import { FILL_MARKER } from '../../src/scoring/model-card.js';

export interface ValidateReport {
  ok: boolean;
  lines: string[];
}

/** Every `<<FILL …>>` of a text, with its line number. */
export function fillMarkers(text: string): { line: number; marker: string }[] {
  const found: { line: number; marker: string }[] = [];
  text.split('\n').forEach((line, i) => {
    let at = line.indexOf(FILL_MARKER);
    while (at >= 0) {
      const end = line.indexOf('>>', at);
      found.push({ line: i + 1, marker: line.slice(at, end < 0 ? undefined : end + 2) });
      at = line.indexOf(FILL_MARKER, end < 0 ? line.length : end);
    }
  });
  return found;
}

/** What start-up's messages mean, for someone who converted their own model. */
function hint(reason: string): string | undefined {
  if (/^example /.test(reason))
    return 'the ONNX file does not give what your framework gave: check the conversion (ZipMap, the class column in output.column, the feature order) and the example rows';
  if (/sha256 .* the manifest says/.test(reason))
    return 'the file changed since the manifest was written: put the new sha256 in the manifest only if this file is the one you mean to run';
  if (/is not approved/.test(reason))
    return 'ask whoever keeps the approved-models file to add this id, version and sha256';
  if (/model card/.test(reason))
    return 'fill model-card.json, then run `npm run model -- card --model <folder> --write`';
  if (/must have shape/.test(reason))
    return 'the manifest needs one feature per input column, in the same order';
  return undefined;
}

function problem(lines: string[], error: unknown): void {
  if (!(error instanceof CdsError)) throw error;
  const reason = String(error.params?.reason ?? error.message);
  lines.push(`✗ ${reason}`);
  const h = hint(reason);
  if (h) lines.push(`  → ${h}`);
}

/** Runs the checks on `<folder>` (a model version folder). */
export async function validateModel(folder: string, approvedFile?: string): Promise<ValidateReport> {
  const lines: string[] = [];
  let unfilled = 0;
  for (const name of ['manifest.yaml', 'model-card.json', 'model-card.md']) {
    let text = '';
    try {
      text = readFileSync(join(folder, name), 'utf8');
    } catch {
      continue;
    }
    for (const { line, marker } of fillMarkers(text)) {
      unfilled += 1;
      lines.push(`✗ ${name} line ${line}: still to fill: ${marker}`);
    }
  }
  if (unfilled > 0) {
    lines.push(`${unfilled} field(s) to fill; the other checks run once they are filled.`);
    return { ok: false, lines };
  }
  let options: ReadOptions = {};
  let model: LoadedModel | undefined;
  try {
    if (approvedFile) options = { approved: readApprovedModels(approvedFile) };
    const files = readModel(folder, createFhirPath(), options);
    lines.push(
      `✓ manifest, file sha256${approvedFile ? ' (approved)' : ''}, FHIRPath of ${files.features.length} features and ${files.guards.length} guards, model card sections`,
    );
    model = await openModel(files, { skipExamples: true });
    lines.push(
      `✓ onnxruntime loads ${files.manifest.file}: input "${files.manifest.input.name}" (${model.fileInputType === 'float64' ? 'float64 in the file, fed float32 through a Cast inserted at load' : 'float32'}), output "${files.manifest.output.name}"${files.manifest.explanation.method === 'linear' ? ', linear coefficients reproduce the model' : ''}`,
    );
  } catch (error) {
    problem(lines, error);
    return { ok: false, lines };
  }
  try {
    const { tolerance, source } = model.manifest.examples;
    let ok = true;
    for (const { id, expected, actual } of await exampleDifferences(model)) {
      const diff = Math.abs(actual - expected);
      const pass = diff <= tolerance;
      ok &&= pass;
      lines.push(
        `${pass ? '✓' : '✗'} example "${id}": ${source} gave ${expected}, the ONNX model ${actual.toPrecision(8)} (difference ${diff.toExponential(1)}, tolerance ${tolerance})`,
      );
    }
    if (!ok) {
      lines.push(`  → ${hint('example ')!}`);
      return { ok: false, lines };
    }
  } finally {
    await model.session.release();
  }
  lines.push(`${model.manifest.id} ${model.manifest.version} is ready: start-up will load it.`);
  return { ok: true, lines };
}
