#!/usr/bin/env node
/**
 * The model CLI (`cds-model`, `npm run model -- …`): from an ONNX file to a model the service loads.
 *
 *   init      reads an ONNX file's inputs and outputs; writes models/<id>/<version>/ with the file, a
 *             manifest skeleton, a model-card template and a service-YAML snippet, every field to fill
 *             marked <<FILL …>>
 *   validate  runs every start-up check on a model folder plus the reference examples, in plain words
 *   card      checks model-card.json against the required sections and renders the markdown
 *   explain   scores and explains one patient (a bundle file, or a FHIR server and a patient id)
 *
 * Exit codes: 0 done, 1 the model (or card) has problems, 2 a bad command line or unreadable input.
 */
import { readFileSync } from 'node:fs';
import { CdsError } from '../../src/errors.js';
import { invokedDirectly, parseOptions, UsageError } from '../usage.js';
import { checkCard, writeCard } from './card.js';
import { explainPatient, fetchPatient, resourcesOf } from './explain.js';
import { InitError, initModel } from './init.js';
import { validateModel } from './validate.js';

export const USAGE = `Usage: model <command> [options]
  init --onnx <file.onnx> --id <id> [--version 1.0.0] [--models-dir models] [--features <count>] [--force]
        writes models/<id>/<version>/: the ONNX file, manifest.yaml, model-card.json, model-card.md and
        service-snippet.yaml, every field to fill marked <<FILL …>>
  validate --model <folder> [--approved <file>]
        every start-up check, then each reference example against the ONNX file
  card --model <folder> [--write]
        checks model-card.json for the required sections; prints the markdown (--write: into the folder)
  explain --model <folder> (--bundle <file.json> | --fhir-server <url> --patient <id>) [--patient <id>]
          [--focus <Type/id>] [--now <ISO date>] [--language en|fr]
        scores one patient and prints the factors as a clinician reads them
  --help  this text`;

const OPTIONS = {
  onnx: { type: 'string' },
  id: { type: 'string' },
  version: { type: 'string' },
  'models-dir': { type: 'string' },
  features: { type: 'string' },
  force: { type: 'boolean' },
  model: { type: 'string' },
  approved: { type: 'string' },
  write: { type: 'boolean' },
  bundle: { type: 'string' },
  'fhir-server': { type: 'string' },
  patient: { type: 'string' },
  focus: { type: 'string' },
  now: { type: 'string' },
  language: { type: 'string' },
  help: { type: 'boolean' },
} as const;

export interface ModelCliIo {
  out: (line: string) => void;
  err: (line: string) => void;
  fetch?: typeof fetch;
}

function need(values: Record<string, unknown>, name: string): string {
  const v = values[name];
  if (typeof v !== 'string' || v === '') throw new UsageError(`--${name} is required`);
  return v;
}

/** The CLI; returns the exit code. */
export async function main(args: readonly string[], io: ModelCliIo): Promise<number> {
  const [command, ...rest] = args;
  if (command === undefined || command === '--help' || command === 'help') {
    (command === undefined ? io.err : io.out)(USAGE);
    return command === undefined ? 2 : 0;
  }
  try {
    const values = parseOptions(rest, OPTIONS) as Record<string, string | boolean | undefined>;
    if (values.help) {
      io.out(USAGE);
      return 0;
    }
    switch (command) {
      case 'init': {
        const features = values.features === undefined ? undefined : Number(values.features);
        if (features !== undefined && !(Number.isInteger(features) && features > 0))
          throw new UsageError('--features must be a positive integer');
        const result = await initModel(
          {
            onnx: need(values, 'onnx'),
            id: need(values, 'id'),
            version: typeof values.version === 'string' ? values.version : '1.0.0',
            modelsDir: typeof values['models-dir'] === 'string' ? values['models-dir'] : 'models',
            force: values.force === true,
          },
          features,
        );
        io.out(`Wrote ${result.folder}/: ${result.files.join(', ')}`);
        for (const note of result.notes) io.out(`  ${note}`);
        io.out(
          'Next: replace every <<FILL …>> in manifest.yaml and model-card.json, run `model card --write`, ' +
            'then `model validate`, and copy service-snippet.yaml into cds-services/.',
        );
        return 0;
      }
      case 'validate': {
        const report = await validateModel(
          need(values, 'model'),
          typeof values.approved === 'string' ? values.approved : undefined,
        );
        report.lines.forEach((l) => io.out(l));
        return report.ok ? 0 : 1;
      }
      case 'card': {
        const folder = need(values, 'model');
        const report = checkCard(folder);
        report.lines.forEach((l) => (report.ok ? io.err : io.out)(l));
        if (!report.ok) return 1;
        if (values.write) io.out(`Wrote ${writeCard(folder, report.markdown!)}`);
        else io.out(report.markdown!);
        return 0;
      }
      case 'explain': {
        const language = values.language ?? 'en';
        if (language !== 'en' && language !== 'fr') throw new UsageError('--language is en or fr');
        const now = typeof values.now === 'string' ? new Date(values.now) : new Date();
        if (Number.isNaN(now.getTime())) throw new UsageError('--now must be an ISO date');
        const server = values['fhir-server'];
        const patientId = typeof values.patient === 'string' ? values.patient : undefined;
        let resources;
        if (typeof server === 'string') {
          if (!patientId) throw new UsageError('--fhir-server needs --patient');
          resources = await fetchPatient(server, patientId, io.fetch);
        } else {
          const file = need(values, 'bundle');
          resources = resourcesOf(JSON.parse(readFileSync(file, 'utf8')));
        }
        const lines = await explainPatient({
          folder: need(values, 'model'),
          resources,
          ...(patientId ? { patientId } : {}),
          ...(typeof values.focus === 'string' ? { focus: values.focus } : {}),
          now,
          language,
        });
        lines.forEach((l) => io.out(l));
        return 0;
      }
      default:
        throw new UsageError(`unknown command "${command}"`);
    }
  } catch (error) {
    if (error instanceof UsageError) {
      io.err(`model: ${error.message}\n${USAGE}`);
      return 2;
    }
    if (error instanceof InitError || error instanceof CdsError) {
      io.err(`model: ${error.message}`);
      return 1;
    }
    io.err(`model: ${(error as Error).message}`);
    return 2;
  }
}

/* c8 ignore start */
if (invokedDirectly(import.meta.url)) {
  main(process.argv.slice(2), {
    out: (line) => process.stdout.write(`${line}\n`),
    err: (line) => process.stderr.write(`${line}\n`),
  }).then(
    (code) => process.exit(code),
    (error: unknown) => {
      process.stderr.write(`model: ${(error as Error).message}\n`);
      process.exit(2);
    },
  );
}
/* c8 ignore stop */
