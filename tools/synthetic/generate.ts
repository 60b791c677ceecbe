/**
 * CLI: writes a seeded synthetic cohort as one FHIR R4 transaction bundle per patient.
 *
 *   node dist/tools/synthetic/generate.js --seed 42 --count 50 --out data/synthetic [--now 2026-01-01]
 *
 * Each file is `<Given>_<Family>_<id>.json`. Progress goes to stderr, the summary to stdout. Bad
 * arguments print the reason and the usage to stderr and exit with code 2; I/O errors exit with 1.
 * Without `--now`, the current UTC date at midnight is used (and printed, so a run can be repeated).
 */
import { mkdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import type { Bundle, Patient } from 'fhir/r4.js';
import { iterateCohort } from './patients.js';
import { type FollowUp, followUpOf } from './follow-up.js';
import { type LoadedModel, loadModel } from '../../src/scoring/load.js';
import { createFhirPath } from '../../src/rules/fhirpath.js';
import { invokedDirectly, parseOptions, UsageError } from '../usage.js';

/** Largest accepted --count. */
export const MAX_COUNT = 100_000;

export const USAGE = `Usage: generate --seed <integer> --count <1-${MAX_COUNT}> --out <dir> [options]

Writes one FHIR R4 transaction bundle per synthetic patient, as <Given>_<Family>_<id>.json.

Options:
  --seed <integer>          seed of the generator (same seed + same --now = identical files)
  --count <n>               number of patients, 1 to ${MAX_COUNT}
  --out <dir>               output directory (created if missing; existing files are overwritten)
  --now <date>              fixed "current" time: YYYY-MM-DD (UTC midnight) or an ISO 8601 date-time
                            with a time zone, e.g. 2026-01-01T09:00:00Z (default: today, UTC midnight)
  --objection-rate <p>      share of patients with an active objection Consent, 0 to 1 (default 0)
  --follow-up <model dir>   also write, for each patient the model (e.g. models/knee-oa-progression/1.0.0)
                            scores at --now, a follow-up record with an outcome drawn from the model's
                            own estimate (seeded; melanoma-risk: a histology report per lesion, tied to
                            it by its specimen's body site), into <out>/follow-up/follow-up.ndjson, and
                            the truth (patient id, estimates, outcome of the patient and of each
                            estimate) into <out>/follow-up-truth.json, for npm run evaluate
  -h, --help                show this help
`;

/** Validated CLI arguments. */
export interface CliArgs {
  seed: number;
  count: number;
  out: string;
  now: Date;
  objectionRate: number;
  /** A model folder: write follow-up records drawn from its estimates (tools/synthetic/follow-up.ts). */
  followUp?: string;
}

/** Result of {@link parseCliArgs}: arguments to run with, or a request for help. */
export type ParsedCli = { kind: 'run'; args: CliArgs } | { kind: 'help' };

const OPTIONS = {
  seed: { type: 'string' },
  count: { type: 'string' },
  out: { type: 'string' },
  now: { type: 'string' },
  'objection-rate': { type: 'string' },
  'follow-up': { type: 'string' },
  help: { type: 'boolean', short: 'h' },
} as const;

const DATE_ONLY = /^(\d{4})-(\d{2})-(\d{2})$/;
const DATE_TIME =
  /^(\d{4})-(\d{2})-(\d{2})T([01]\d|2[0-3]):[0-5]\d(:[0-5]\d(\.\d{1,9})?)?(Z|[+-](?:[01]\d|2[0-3]):[0-5]\d)$/;

function validCalendarDate(year: string, month: string, day: string): boolean {
  const date = new Date(Date.UTC(Number(year), Number(month) - 1, Number(day)));
  return date.getUTCMonth() === Number(month) - 1 && date.getUTCDate() === Number(day);
}

/** Parses `--now`: `YYYY-MM-DD` (UTC midnight) or an ISO 8601 date-time with a time zone. */
export function parseNow(text: string): Date | undefined {
  const date = DATE_ONLY.exec(text);
  if (date) {
    const [, y, m, d] = date as unknown as [string, string, string, string];
    return validCalendarDate(y, m, d) ? new Date(Date.UTC(Number(y), Number(m) - 1, Number(d))) : undefined;
  }
  const dateTime = DATE_TIME.exec(text);
  if (dateTime) {
    const [, y, m, d] = dateTime as unknown as [string, string, string, string];
    const ms = Date.parse(text);
    return validCalendarDate(y, m, d) && !Number.isNaN(ms) ? new Date(ms) : undefined;
  }
  return undefined;
}

function required(values: Record<string, string | boolean | undefined>, name: string): string {
  const value = values[name];
  if (value === undefined) throw new UsageError(`--${name} is required`);
  return String(value);
}

/**
 * Parses and validates the command line (without `node` and the script path). Pure: `today` is the
 * date used when `--now` is absent (its UTC midnight).
 *
 * @throws UsageError with a one-line message naming the bad option.
 */
export function parseCliArgs(argv: readonly string[], today: Date): ParsedCli {
  const values = parseOptions(argv, OPTIONS);
  if (values.help === true) return { kind: 'help' };

  const seedText = required(values, 'seed');
  const seed = Number(seedText);
  if (!/^-?\d+$/.test(seedText) || !Number.isSafeInteger(seed)) {
    throw new UsageError(`--seed must be an integer (got "${seedText}")`);
  }
  const countText = required(values, 'count');
  const count = Number(countText);
  if (!/^\d+$/.test(countText) || count < 1 || count > MAX_COUNT) {
    throw new UsageError(`--count must be an integer from 1 to ${MAX_COUNT} (got "${countText}")`);
  }
  const out = required(values, 'out');
  if (out.trim() === '') throw new UsageError('--out must not be empty');

  let now: Date;
  if (values.now === undefined) {
    if (Number.isNaN(today.getTime())) throw new UsageError('the current date is not valid; pass --now');
    now = new Date(Date.UTC(today.getUTCFullYear(), today.getUTCMonth(), today.getUTCDate()));
  } else {
    const parsed = parseNow(String(values.now));
    if (parsed === undefined) {
      throw new UsageError(
        `--now must be a date (YYYY-MM-DD) or a date-time with a time zone (e.g. 2026-01-01T09:00:00Z) (got "${String(values.now)}")`,
      );
    }
    now = parsed;
  }

  let objectionRate = 0;
  if (values['objection-rate'] !== undefined) {
    const text = String(values['objection-rate']);
    objectionRate = Number(text);
    if (text.trim() === '' || !Number.isFinite(objectionRate) || objectionRate < 0 || objectionRate > 1) {
      throw new UsageError(`--objection-rate must be a number from 0 to 1 (got "${text}")`);
    }
  }
  const followUp = values['follow-up'];
  if (followUp !== undefined && String(followUp).trim() === '')
    throw new UsageError('--follow-up must name a model folder');
  return {
    kind: 'run',
    args: {
      seed,
      count,
      out,
      now,
      objectionRate,
      ...(followUp === undefined ? {} : { followUp: String(followUp) }),
    },
  };
}

function safeName(text: string | undefined): string {
  const cleaned = (text ?? '').normalize('NFKD').replace(/[^A-Za-z0-9-]/g, '');
  return cleaned === '' ? 'Unknown' : cleaned;
}

/** `<Given>_<Family>_<id>.json` for a bundle whose first Patient has a name and an id. */
export function fileNameFor(bundle: Bundle): string {
  const patient = bundle.entry?.find((entry) => entry.resource?.resourceType === 'Patient')?.resource as
    Patient | undefined;
  if (patient?.id === undefined) throw new Error('bundle has no Patient with an id');
  const name = patient.name?.[0];
  return `${safeName(name?.given?.[0])}_${safeName(name?.family)}_${patient.id}.json`;
}

/** Where {@link run} writes text; `progressIsTty` selects `\r` counter updates instead of lines. */
export interface CliIo {
  stdout: (text: string) => void;
  stderr: (text: string) => void;
  progressIsTty: boolean;
  /** The current date, used only when `--now` is absent. */
  today: Date;
}

/** Runs the CLI. Returns the exit code: 0 done, 1 I/O error, 2 bad arguments. */
export async function run(argv: readonly string[], io: CliIo): Promise<number> {
  let parsed: ParsedCli;
  try {
    parsed = parseCliArgs(argv, io.today);
  } catch (error) {
    if (!(error instanceof UsageError)) throw error;
    io.stderr(`generate: ${error.message}\n\n${USAGE}`);
    return 2;
  }
  if (parsed.kind === 'help') {
    io.stdout(USAGE);
    return 0;
  }
  const { seed, count, out, now, objectionRate, followUp } = parsed.args;
  const byType = new Map<string, number>();
  let written = 0;
  const step = Math.max(1, Math.ceil(count / 10));
  let model: LoadedModel | undefined;
  if (followUp !== undefined) {
    try {
      model = await loadModel(followUp, createFhirPath());
    } catch (error) {
      io.stderr(`generate: --follow-up: cannot load the model at ${followUp}: ${(error as Error).message}\n`);
      return 2;
    }
  }
  const followUps: FollowUp[] = [];
  try {
    await mkdir(out, { recursive: true });
    for (const bundle of iterateCohort({ seed, count, now, objectionRate })) {
      await writeFile(join(out, fileNameFor(bundle)), `${JSON.stringify(bundle, null, 2)}\n`);
      if (model) {
        const f = await followUpOf(model, bundle, seed, written, now);
        if (f) followUps.push(f);
      }
      for (const entry of bundle.entry ?? []) {
        const type = entry.resource?.resourceType ?? 'unknown';
        byType.set(type, (byType.get(type) ?? 0) + 1);
      }
      written++;
      if (io.progressIsTty) io.stderr(`\rgenerated ${written}/${count}`);
      else if (written % step === 0 || written === count) io.stderr(`generated ${written}/${count}\n`);
    }
    if (model) {
      await mkdir(join(out, 'follow-up'), { recursive: true });
      const lines = followUps.flatMap((f) => f.resources.map((r) => JSON.stringify(r)));
      await writeFile(join(out, 'follow-up', 'follow-up.ndjson'), lines.map((l) => `${l}\n`).join(''));
      const truth = followUps.map(({ patientId, risks, outcome, outcomes }) => ({
        patientId,
        risks,
        outcome,
        outcomes,
      }));
      await writeFile(join(out, 'follow-up-truth.json'), `${JSON.stringify(truth, null, 2)}\n`);
    }
  } catch (error) {
    if (io.progressIsTty && written > 0) io.stderr('\n');
    io.stderr(`generate: cannot write to ${out}: ${(error as Error).message}\n`);
    return 1;
  } finally {
    await model?.session.release();
  }
  if (io.progressIsTty) io.stderr('\n');
  const total = [...byType.values()].reduce((sum, n) => sum + n, 0);
  const types = [...byType.entries()].map(([type, n]) => `${type} ${n}`).join(', ');
  io.stdout(`wrote ${written} patients to ${out} (seed ${seed}, now ${now.toISOString()})\n`);
  io.stdout(`resources: ${total} (${types})\n`);
  if (model) {
    const events = followUps.filter((f) => f.outcome === 1).length;
    io.stdout(
      `follow-up: ${followUps.length} patients scored by ${model.manifest.id} ${model.manifest.version}, ${events} with the outcome (simulated)\n`,
    );
  }
  return 0;
}

if (invokedDirectly(import.meta.url)) {
  process.exitCode = await run(process.argv.slice(2), {
    stdout: (text) => process.stdout.write(text),
    stderr: (text) => process.stderr.write(text),
    progressIsTty: process.stderr.isTTY === true,
    today: new Date(),
  });
}

export { UsageError };
