/**
 * The folder of local validation reports (`reportsDir`): one JSON file per report, the object
 * buildGovernanceReport returns (written by `npm run evaluate -- --out`). The governance page lists them
 * and serves each one, rendered in the reader's language. A report is served only when it was built with
 * at least the configured minimum cell size, so lowering the floor in a file cannot publish small cells.
 */
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import type { GovernanceReport } from './report.js';

/** A report's file name: no path, no hidden file, `.json`. */
export const REPORT_NAME = /^[A-Za-z0-9][A-Za-z0-9._-]{0,199}\.json$/;

export type StoredReport =
  | { name: string; status: 'ok'; report: GovernanceReport }
  | { name: string; status: 'unreadable' | 'not-a-report' | 'cells-too-small'; reason: string };

function isReport(value: unknown): value is GovernanceReport {
  const r = value as Partial<GovernanceReport> | null;
  return (
    typeof r === 'object' &&
    r !== null &&
    r.kind === 'cds-governance-report' &&
    r.formatVersion === 1 &&
    typeof r.minCellSize === 'number' &&
    typeof r.generatedAt === 'string' &&
    typeof r.period?.from === 'string' &&
    typeof r.period.to === 'string' &&
    Array.isArray(r.models) &&
    Array.isArray(r.rules)
  );
}

/** Reads one report of the folder; `name` must match {@link REPORT_NAME} (else: not found, undefined). */
export function readStoredReport(dir: string, name: string, minCell: number): StoredReport | undefined {
  if (!REPORT_NAME.test(name)) return undefined;
  let value: unknown;
  try {
    value = JSON.parse(readFileSync(join(dir, name), 'utf8'));
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    return { name, status: 'unreadable', reason: (error as Error).message.split('\n')[0]! };
  }
  if (!isReport(value))
    return { name, status: 'not-a-report', reason: 'not a governance report (kind, formatVersion)' };
  if (value.minCellSize < minCell)
    return {
      name,
      status: 'cells-too-small',
      reason: `built with a minimum cell size of ${value.minCellSize}; this site requires ${minCell}`,
    };
  return { name, status: 'ok', report: value };
}

/** Every report of the folder, newest first (by generatedAt, then name); a missing folder holds none. */
export function listStoredReports(dir: string, minCell: number): StoredReport[] {
  let names: string[];
  try {
    names = readdirSync(dir).filter((n) => REPORT_NAME.test(n));
  } catch {
    return [];
  }
  const reports = names.map((n) => readStoredReport(dir, n, minCell)).filter((r): r is StoredReport => !!r);
  const when = (r: StoredReport) => (r.status === 'ok' ? r.report.generatedAt : '');
  return reports.sort((a, b) => when(b).localeCompare(when(a)) || a.name.localeCompare(b.name));
}
