/**
 * What the structural check of prefetch data (`src/prefetch/structure.ts`) costs per call, next to what
 * parsing the same body costs: the knee-OA and melanoma bodies built from the ../shared/synthea records
 * (the benchmark's workload), each checked many times. `npm run bench:structure`.
 */
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import type { Bundle } from 'fhir/r4.js';
import { parse } from 'yaml';
import { checkResourceStructure } from '../../src/prefetch/structure.js';
import { patientOf, resourcesOf, toServerForm } from '../synthetic/bundle.js';
import { median, prefetchFrom } from './helpers.js';

const SYNTHEA = join('..', 'shared', 'synthea');
const SERVICES = ['knee-oa-progression', 'melanoma-lesion-triage'];

const queries = SERVICES.map((id) => {
  const definition = parse(readFileSync(join('cds-services', `${id}.yaml`), 'utf8')) as {
    prefetch: Record<string, { query: string }>;
  };
  return Object.values(definition.prefetch).map((p) => p.query);
});
const bodies = readdirSync(SYNTHEA)
  .filter((f) => f.endsWith('.json'))
  .sort()
  .flatMap((file) => {
    const record = toServerForm(JSON.parse(readFileSync(join(SYNTHEA, file), 'utf8')) as Bundle);
    const resources = resourcesOf(record);
    const id = patientOf(record).id!;
    return queries.map((service) => {
      const prefetch = service
        .map((q) => prefetchFrom(q.replaceAll('{{context.patientId}}', id), resources))
        .filter((v) => v !== null);
      return JSON.stringify({
        hook: 'patient-view',
        hookInstance: 'x',
        context: { patientId: id },
        prefetch,
      });
    });
  });

function perCall(fn: (text: string) => void, text: string, reps: number): number {
  for (let i = 0; i < 20; i += 1) fn(text);
  const start = process.hrtime.bigint();
  for (let i = 0; i < reps; i += 1) fn(text);
  return Number(process.hrtime.bigint() - start) / 1e6 / reps;
}

const rows = bodies.map((text) => {
  const parsed = JSON.parse(text) as { prefetch: unknown[] };
  for (const value of parsed.prefetch) {
    const problem = checkResourceStructure(value);
    if (problem) throw new Error(`a Synthea body is malformed at ${problem.path}: ${problem.problem}`);
  }
  const reps = 200;
  return {
    bytes: Buffer.byteLength(text),
    parseMs: perCall((t) => JSON.parse(t), text, reps),
    checkMs: perCall(() => parsed.prefetch.forEach((v) => checkResourceStructure(v)), text, reps),
  };
});
const bytes = rows.map((r) => r.bytes);
const mean = Math.round(bytes.reduce((a, b) => a + b, 0) / bytes.length);
// The bodies of about 46 KB (a knee-OA call of a patient with a long record).
const near = rows.filter((r) => r.bytes >= 40_000 && r.bytes <= 52_000);
const report = {
  bodies: rows.length,
  meanBytes: mean,
  medianParseMs: +median(rows.map((r) => r.parseMs)).toFixed(4),
  medianCheckMs: +median(rows.map((r) => r.checkMs)).toFixed(4),
  around46KB: {
    bodies: near.length,
    medianBytes: median(near.map((r) => r.bytes)),
    medianParseMs: +median(near.map((r) => r.parseMs)).toFixed(4),
    medianCheckMs: +median(near.map((r) => r.checkMs)).toFixed(4),
  },
  largest: rows.reduce((a, b) => (b.bytes > a.bytes ? b : a)),
};
process.stdout.write(`${JSON.stringify(report, null, 2)}\n`);
