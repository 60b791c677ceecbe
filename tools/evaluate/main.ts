/**
 * `npm run evaluate`: local validation before go-live (issue 19). Links the model estimates of the
 * audit trail (`audit_prediction`, live and silent) to outcomes found later in FHIR data, by the same
 * keyed pseudonym the audit uses, with each model's `outcomeDefinition` (models/README.md states the
 * rule), and the rule cards shown to the outcome their card template defines (`cards[].outcome` of
 * the service YAML, ./rule-outcomes.ts), and writes the governance report. No patient id, birth date or
 * exact date leaves the linkage: the linked rows carry the ISO week only.
 *
 *   npm run evaluate -- --store data/audit.sqlite --fhir follow-up/ --from 2026-01-01 --to 2026-07-01 --out report/
 *
 * Exit code 0 done, 2 bad input (arguments, store, key, FHIR data), 1 anything else.
 */
import { existsSync, mkdirSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import type { Resource } from 'fhir/r4.js';
import { pseudonymiser } from '../../src/audit/pseudonym.js';
import { openPostgresDriver } from '../../src/audit/postgres.js';
import { createSqlStore, type SqlDriver } from '../../src/audit/sql-store.js';
import { openSqliteDriver } from '../../src/audit/sqlite.js';
import type { StoredPrediction } from '../../src/audit/store.js';
import { focusKeyOf } from '../../src/audit/predictions.js';
import { suppressor } from '../../src/governance/suppression.js';
import {
  compileOutcome,
  type CompiledOutcome,
  focusEvidence,
  focusResourceTypes,
  type LinkedBy,
  evidenceOf,
  linkageCounts,
  linked,
  type OutcomeEvidence,
  outcomeOf,
  patientEvidence,
} from './linkage.js';
// INTEGRATION POINT (issue 19): the governance engineer's report replaces the placeholder of this branch.
import { buildGovernanceReport, renderReportHtml } from '../../src/governance/report.js';
import type { LinkedPrediction } from '../../src/governance/types.js';
import { createFhirPath } from '../../src/rules/fhirpath.js';
import { modelKey, readModels } from '../../src/scoring/load.js';
import { readFolder, readServer } from './fhir-source.js';
import { readCardOutcomes, ruleCards, ruleStatsOf, templateKey } from './rule-outcomes.js';
import { invokedDirectly, parseOptions, UsageError } from '../usage.js';

export const USAGE = `Usage: evaluate --store <file|url> --fhir <folder|url> --from <date> --to <date> --out <dir> [options]

Links the model estimates of the audit trail (live and silent), and the rule cards whose template
defines an outcome, to outcomes recorded later and writes the governance report (report.json,
report.en.html, report.fr.html) into --out.

  --store <file|url>   the audit store: its SQLite file (audit.sqlite of the data folder) or a
                       postgres:// URL
  --fhir <folder|url>  later FHIR data: a folder of bundles (.json) and NDJSON files (.ndjson, as FHIR
                       Bulk Data $export writes them), or a FHIR server's base URL
  --from <date>        estimates made on or after this date (YYYY-MM-DD, UTC)
  --to <date>          and before this date
  --out <dir>          where the report goes (created if missing)
  --key-file <file>    the pseudonym key file (default: pseudonym.key beside the SQLite file);
                       CDS_AUDIT_PSEUDONYM_KEY, when set, is the key
  --models-dir <dir>   the models (outcome definitions, background samples); default models
  --services-dir <dir> the service definitions (outcomes of rules' cards); default cds-services
  --rows-out <file>    also write the linked estimates as JSON (pseudonymised: ISO week only)
  --reports-dir <dir>  also store the report there for the governance page, as
                       validation-<from>-to-<to>.json (default: CDS_REPORTS_DIR when set)
  --min-cell <n>       smallest count the report shows (default 10)
  -h, --help           this text
`;

const OPTIONS = {
  store: { type: 'string' },
  fhir: { type: 'string' },
  from: { type: 'string' },
  to: { type: 'string' },
  out: { type: 'string' },
  'key-file': { type: 'string' },
  'models-dir': { type: 'string' },
  'services-dir': { type: 'string' },
  'rows-out': { type: 'string' },
  'reports-dir': { type: 'string' },
  'min-cell': { type: 'string' },
  help: { type: 'boolean', short: 'h' },
} as const;

interface Output {
  write(text: string): unknown;
}

export interface EvaluateArgs {
  store: string;
  fhir: string;
  from: string;
  to: string;
  out: string;
  keyFile: string | undefined;
  modelsDir: string;
  /** The service definitions, for the outcomes their rule cards define (`cards[].outcome`). */
  servicesDir: string;
  rowsOut: string | undefined;
  /** Folder of the governance page's reports (CDS_REPORTS_DIR), if the report is to be stored there. */
  reportsDir: string | undefined;
  minCell: number;
}

const isUrl = (text: string, schemes: readonly string[]) => schemes.some((s) => text.startsWith(s));

function dateArg(values: Record<string, unknown>, name: string): string {
  const text = values[name];
  if (typeof text !== 'string') throw new UsageError(`--${name} is required`);
  const ms = /^\d{4}-\d{2}-\d{2}$/.test(text) ? Date.parse(`${text}T00:00:00.000Z`) : NaN;
  if (Number.isNaN(ms) || new Date(ms).toISOString().slice(0, 10) !== text)
    throw new UsageError(`--${name} must be a date YYYY-MM-DD (got "${text}")`);
  return new Date(ms).toISOString();
}

/** @throws UsageError naming the bad option */
export function parseEvaluateArgs(argv: readonly string[]): EvaluateArgs | 'help' {
  const values = parseOptions(argv, OPTIONS);
  if (values.help === true) return 'help';
  for (const name of ['store', 'fhir', 'out'] as const) {
    if (typeof values[name] !== 'string' || values[name] === '')
      throw new UsageError(`--${name} is required`);
  }
  const from = dateArg(values, 'from');
  const to = dateArg(values, 'to');
  if (to <= from) throw new UsageError('--to must be after --from');
  const minCellText = values['min-cell'];
  const minCell = minCellText === undefined ? 10 : Number(minCellText);
  if (!Number.isInteger(minCell) || minCell < 1)
    throw new UsageError('--min-cell must be a positive integer');
  return {
    store: String(values.store),
    fhir: String(values.fhir),
    from,
    to,
    out: String(values.out),
    keyFile: typeof values['key-file'] === 'string' ? values['key-file'] : undefined,
    modelsDir: typeof values['models-dir'] === 'string' ? values['models-dir'] : 'models',
    servicesDir: typeof values['services-dir'] === 'string' ? values['services-dir'] : 'cds-services',
    rowsOut: typeof values['rows-out'] === 'string' ? values['rows-out'] : undefined,
    reportsDir:
      typeof values['reports-dir'] === 'string'
        ? values['reports-dir']
        : process.env.CDS_REPORTS_DIR || undefined,
    minCell,
  };
}

/** Bad input the user can fix: exit code 2 with the message. */
class InputError extends Error {}

function pseudonymKey(args: EvaluateArgs, env: NodeJS.ProcessEnv): Buffer {
  if (env.CDS_AUDIT_PSEUDONYM_KEY) return Buffer.from(env.CDS_AUDIT_PSEUDONYM_KEY, 'utf8');
  const file =
    args.keyFile ??
    (isUrl(args.store, ['postgres']) ? undefined : join(dirname(args.store), 'pseudonym.key'));
  if (file === undefined)
    throw new InputError('with PostgreSQL, give the pseudonym key: CDS_AUDIT_PSEUDONYM_KEY or --key-file');
  if (!existsSync(file))
    throw new InputError(
      `no pseudonym key at ${file}: the key of the service that wrote the store is needed`,
    );
  const text = readFileSync(file, 'utf8').trim();
  if (!/^[0-9a-f]{64}$/.test(text)) throw new InputError(`${file} does not hold a 64-hex-digit key`);
  return Buffer.from(text, 'hex');
}

export async function openDriver(store: string): Promise<SqlDriver> {
  if (isUrl(store, ['postgres://', 'postgresql://'])) return openPostgresDriver(store);
  if (!existsSync(store) || !statSync(store).isFile())
    throw new InputError(`no audit store file at ${store}`);
  return openSqliteDriver(store);
}

/** The service calls of each service in the period (the denominator of a rule's alert rate). */
export async function serviceCallCounts(
  driver: SqlDriver,
  from: string,
  to: string,
): Promise<Record<string, number>> {
  const rows = await driver.query(
    `SELECT service_id, COUNT(*) AS n FROM audit_event
     WHERE kind = 'service-call' AND at >= ? AND at < ? GROUP BY service_id`,
    [from, to],
  );
  return Object.fromEntries(rows.map((r) => [String(r.service_id), Number(r.n)]));
}

/** Runs the command; returns the exit code. */
export async function runEvaluate(
  argv: readonly string[],
  env: NodeJS.ProcessEnv,
  out: Output,
  err: Output,
  now: () => Date = () => new Date(),
): Promise<number> {
  let args: EvaluateArgs | 'help';
  try {
    args = parseEvaluateArgs(argv);
  } catch (error) {
    if (!(error instanceof UsageError)) throw error;
    err.write(`evaluate: ${error.message}\n${USAGE}`);
    return 2;
  }
  if (args === 'help') {
    out.write(USAGE);
    return 0;
  }
  const progress = (line: string) => err.write(`evaluate: ${line}\n`);
  let driver: SqlDriver | undefined;
  try {
    const pseudonymise = pseudonymiser(pseudonymKey(args, env));
    const fhirpath = createFhirPath();
    const clock = now();

    // 1. The estimates of the period.
    driver = await openDriver(args.store);
    const store = await createSqlStore(driver, { migrate: false });
    const predictions: StoredPrediction[] = [];
    try {
      for (let after = { seq: 0, ordinal: -1 }; ;) {
        const page = await store.predictions({ from: args.from, to: args.to }, after, 1000);
        predictions.push(...page);
        if (page.length < 1000) break;
        after = { seq: page.at(-1)!.eventSeq, ordinal: page.at(-1)!.ordinal };
        progress(`read ${predictions.length} estimates`);
      }
    } catch (error) {
      throw new InputError(
        `cannot read the estimates of ${args.store} (${(error as Error).message}): is it an audit store of a version with silent mode (migration 8)?`,
      );
    }
    progress(`${predictions.length} estimates from ${args.from.slice(0, 10)} to ${args.to.slice(0, 10)}`);

    // 2. Outcome definitions and background samples of the models that made them.
    const models = readModels(args.modelsDir, fhirpath);
    const outcomes = new Map<string, CompiledOutcome>();
    const background: Record<string, Record<string, number>[]> = {};
    for (const key of new Set(predictions.map((p) => modelKey(p.model.id, p.model.version)))) {
      const files = models.get(key);
      if (!files) {
        progress(`model ${key} is not in ${args.modelsDir}: its outcomes stay unknown`);
        continue;
      }
      const m = files.manifest;
      if (m.outcomeDefinition) outcomes.set(key, compileOutcome(m.outcomeDefinition, fhirpath));
      else progress(`model ${key} declares no outcomeDefinition: its outcomes stay unknown`);
      if (m.background) {
        const ids = m.features.map((f) => f.id);
        background[key] = files.background.map((row) =>
          Object.fromEntries(ids.map((id, i) => [id, row[i]!])),
        );
      }
    }

    // 2b. The rule cards of the period and the outcomes their templates define (rule-outcomes.ts).
    const cards = await ruleCards(driver, args.from, args.to);
    let cardOutcomes: ReturnType<typeof readCardOutcomes>;
    try {
      cardOutcomes = readCardOutcomes(args.servicesDir, fhirpath);
    } catch (error) {
      throw new InputError(`cannot read the service definitions: ${(error as Error).message}`);
    }
    const linkedCards = cards.filter(
      (c) => c.pseudonym !== null && cardOutcomes.has(templateKey(c.serviceId, c.template)),
    );

    // 3. The later data of the patients with estimates or such cards (matched by pseudonym, never by id).
    const wanted = new Set([
      ...predictions.flatMap((p) => (p.pseudonym === null ? [] : [p.pseudonym])),
      ...linkedCards.map((c) => c.pseudonym!),
    ]);
    const types = [
      ...new Set([
        ...[...outcomes.values()].flatMap((o) => [
          o.definition.resourceType,
          ...focusResourceTypes(o.definition),
        ]),
        ...[...cardOutcomes.values()].map((o) => o.definition.resourceType),
        'Encounter',
      ]),
    ];
    let data: Map<string, Resource[]>;
    try {
      data = isUrl(args.fhir, ['http://', 'https://'])
        ? await readServer(args.fhir, (id) => wanted.has(pseudonymise(id)), types, progress)
        : readFolder(args.fhir, progress);
    } catch (error) {
      throw new InputError(`cannot read the FHIR data at ${args.fhir}: ${(error as Error).message}`);
    }
    const evidence = new Map<string, OutcomeEvidence[]>();
    for (const [patientId, resources] of data) {
      const pseudonym = pseudonymise(patientId);
      if (!wanted.has(pseudonym)) continue;
      for (const [key, outcome] of outcomes) {
        const found = patientEvidence(resources, outcome, clock, (identity) =>
          focusKeyOf(pseudonymise, patientId, identity),
        );
        evidence.set(`${pseudonym}|${key}`, found);
      }
      for (const [key, outcome] of cardOutcomes) {
        const found = resources.flatMap((r) => evidenceOf(r, outcome, clock) ?? []);
        evidence.set(`${pseudonym}|rule|${key}`, found);
      }
    }

    // 4. Linked, pseudonymised rows: per focus (lesion) where both sides name it, else per patient.
    const outcomesOf = predictions.map((p) => {
      const key = modelKey(p.model.id, p.model.version);
      const outcome = outcomes.get(key);
      if (!outcome || p.pseudonym === null)
        return { prediction: p, outcome: null, by: 'patient' as LinkedBy };
      const { by, evidence: found } = focusEvidence(evidence.get(`${p.pseudonym}|${key}`) ?? [], p.focusKey);
      return {
        prediction: p,
        outcome: outcomeOf(new Date(p.at), outcome.definition.horizonMonths, found),
        by,
      };
    });
    const linkedRows: LinkedPrediction[] = outcomesOf.map((r) => linked(r.prediction, r.outcome));
    const known = linkedRows.filter((r) => r.outcome !== null).length;
    const counts = linkageCounts(outcomesOf);
    const byFocus = counts.reduce((n, c) => n + c.byFocus, 0);
    progress(`${known} of ${linkedRows.length} estimates have a known outcome`);
    progress(`${byFocus} linked per focus (lesion), ${known - byFocus} per patient`);
    const rules = ruleStatsOf(cards, cardOutcomes, (pseudonym, key) =>
      evidence.get(`${pseudonym}|rule|${key}`),
    );
    const cardsKnown = rules.reduce((n, r) => n + (r.withOutcome?.known ?? 0), 0);
    progress(
      `${cards.length} rule cards, ${linkedCards.length} of templates with an outcome, ${cardsKnown} with a known outcome`,
    );

    // 5. The report (INTEGRATION POINT: buildGovernanceReport / renderReportHtml of src/governance/report.ts).
    const period = { from: args.from.slice(0, 10), to: args.to.slice(0, 10) };
    const cell = suppressor(args.minCell);
    const report = {
      ...buildGovernanceReport({
        period,
        predictions: linkedRows,
        rules,
        serviceCalls: await serviceCallCounts(driver, args.from, args.to),
        background,
        minCellSize: args.minCell,
        generatedAt: clock,
      }),
      // How the estimates with a known outcome were linked: per focus (lesion) or per patient.
      linkage: counts.map((c) => ({
        ...c,
        byFocus: cell.count(c.byFocus),
        byPatient: cell.count(c.byPatient),
      })),
    };
    mkdirSync(args.out, { recursive: true });
    writeFileSync(join(args.out, 'report.json'), `${JSON.stringify(report, null, 2)}\n`);
    writeFileSync(join(args.out, 'report.en.html'), renderReportHtml(report, 'en'));
    writeFileSync(join(args.out, 'report.fr.html'), renderReportHtml(report, 'fr'));
    if (args.rowsOut) writeFileSync(args.rowsOut, `${JSON.stringify(linkedRows, null, 2)}\n`);
    if (args.reportsDir) {
      mkdirSync(args.reportsDir, { recursive: true });
      const name = `validation-${period.from}-to-${period.to}.json`;
      writeFileSync(join(args.reportsDir, name), `${JSON.stringify(report, null, 2)}\n`);
      progress(`report stored for the governance page as ${join(args.reportsDir, name)}`);
    }
    out.write(
      `${linkedRows.length} estimates linked (${known} with a known outcome: ${byFocus} per focus, ${known - byFocus} per patient); report written to ${args.out}\n`,
    );
    return 0;
  } catch (error) {
    if (error instanceof InputError) {
      err.write(`evaluate: ${error.message}\n`);
      return 2;
    }
    err.write(`evaluate: ${(error as Error).message}\n`);
    return 1;
  } finally {
    await driver?.close();
  }
}

/* c8 ignore start */
if (invokedDirectly(import.meta.url)) {
  process.exitCode = await runEvaluate(process.argv.slice(2), process.env, process.stdout, process.stderr);
}
/* c8 ignore stop */
