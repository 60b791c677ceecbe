/**
 * `npm run bench:audit-bytes [-- --calls N]`: the disk the audit trail takes per answered call, on SQLite
 * and, when TEST_DATABASE_URL (or the default local server) answers, PostgreSQL. It answers N knee-OA
 * calls (a model card with its top factors) and N melanoma calls (rule cards) through the real app
 * (`app.inject`, authentication off), and divides the growth of the store by the calls: SQLite file and
 * WAL after a checkpoint; PostgreSQL tables with their indexes and TOAST (`pg_total_relation_size`, a
 * fresh schema, dropped at the end; the server's WAL is not counted). Feedback is not included.
 */
import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import Database from 'better-sqlite3';
import pg from 'pg';
import { buildApp } from '../../src/app.js';
import { loadConfig } from '../../src/config.js';
import { resourcesOf, searchset, toServerForm } from '../synthetic/bundle.js';
import { generatePatient } from '../synthetic/patients.js';
import { createRng } from '../synthetic/random.js';

const NOW = new Date('2026-11-22T09:30:00.000Z');

function kneeOaBody(seed: number) {
  const bundle = toServerForm(
    generatePatient(createRng(seed, 0), {
      kneeOa: true,
      age: 70,
      gender: 'female',
      bmi: 36,
      painScore: 9,
      kneeInjury: true,
      handOa: true,
      diabetes: true,
      klGrade: 3,
      lesions: 0,
      now: NOW,
    }),
  );
  const resources = resourcesOf(bundle);
  const of = (type: string) => resources.filter((r) => r.resourceType === type);
  const patient = of('Patient')[0]!;
  return {
    hook: 'patient-view',
    hookInstance: '2c3d1f0e-8d4b-4f5e-9d7a-0b1c2d3e4f50',
    context: { userId: 'Practitioner/p1', patientId: patient.id! },
    prefetch: {
      patient,
      conditions: searchset(of('Condition')),
      observations: searchset(of('Observation')),
      consent: searchset(of('Consent')),
    },
  };
}

function melanomaBody(seed: number) {
  const bundle = toServerForm(
    generatePatient(createRng(seed, 1), { kneeOa: false, age: 55, gender: 'male', lesions: 2, now: NOW }),
  );
  const resources = resourcesOf(bundle);
  const of = (type: string) => resources.filter((r) => r.resourceType === type);
  const patient = of('Patient')[0]!;
  return {
    hook: 'patient-view',
    hookInstance: '3c3d1f0e-8d4b-4f5e-9d7a-0b1c2d3e4f51',
    context: { userId: 'Practitioner/p1', patientId: patient.id! },
    prefetch: { patient, lesions: searchset(of('Observation')), consent: searchset(of('Consent')) },
  };
}

async function answer(
  databaseUrl: string | undefined,
  dataDir: string,
  calls: number,
  size: () => Promise<number>,
) {
  const app = await buildApp(
    loadConfig(
      {},
      {
        authDisabled: true,
        logLevel: 'warn',
        dataDir,
        auditPseudonymKey: 'b'.repeat(32),
        ...(databaseUrl ? { databaseUrl } : {}),
      },
    ),
    { now: () => NOW },
  );
  const bodies = [
    ...Array.from(
      { length: 20 },
      (_, i) => ['/cds-services/knee-oa-progression', kneeOaBody(i + 1)] as const,
    ),
    ...Array.from(
      { length: 20 },
      (_, i) => ['/cds-services/melanoma-lesion-triage', melanomaBody(i + 1)] as const,
    ),
  ];
  const run = async (n: number) => {
    let cards = 0;
    for (let i = 0; i < n; i++) {
      const [url, payload] = bodies[i % bodies.length]!;
      const res = await app.inject({ method: 'POST', url, payload });
      if (res.statusCode !== 200) throw new Error(`${url} answered ${res.statusCode}: ${res.body}`);
      cards += (res.json() as { cards: unknown[] }).cards.length;
    }
    return cards;
  };
  try {
    await run(bodies.length); // warm-up: tables and indexes exist, first pages allocated
    const before = await size();
    const cards = await run(calls);
    const after = await size();
    return { calls, cards, bytes: after - before };
  } finally {
    await app.close();
  }
}

async function sqlite(calls: number) {
  const dir = mkdtempSync(join(tmpdir(), 'cds-audit-bytes-'));
  const file = join(dir, 'audit.sqlite');
  const size = async () => {
    // Another connection, to checkpoint the WAL into the file (what the file settles at).
    const db = new Database(file);
    db.pragma('wal_checkpoint(TRUNCATE)');
    db.close();
    const bytes = (f: string) => {
      try {
        return statSync(f).size;
      } catch {
        return 0;
      }
    };
    return bytes(file) + bytes(`${file}-wal`);
  };
  try {
    return await answer(undefined, dir, calls, size);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

async function postgres(calls: number, url: string) {
  const schema = `audit_bytes_${randomBytes(6).toString('hex')}`;
  const admin = new pg.Client({ connectionString: url });
  await admin.connect();
  await admin.query(`CREATE SCHEMA ${schema}`);
  const size = async () => {
    await admin.query(`VACUUM`);
    const { rows } = await admin.query(
      `SELECT COALESCE(SUM(pg_total_relation_size(c.oid)), 0)::bigint AS bytes FROM pg_class c
       JOIN pg_namespace n ON n.oid = c.relnamespace WHERE n.nspname = $1 AND c.relkind = 'r'`,
      [schema],
    );
    return Number(rows[0].bytes);
  };
  try {
    const databaseUrl = `${url}?options=${encodeURIComponent(`-c search_path=${schema}`)}`;
    return await answer(databaseUrl, mkdtempSync(join(tmpdir(), 'cds-audit-bytes-')), calls, size);
  } finally {
    await admin.query(`DROP SCHEMA ${schema} CASCADE`);
    await admin.end();
  }
}

const { values } = parseArgs({ options: { calls: { type: 'string', default: '1000' } } });
const calls = Number(values.calls);
const report = (store: string, r: { calls: number; cards: number; bytes: number }) =>
  console.log(
    `${store}: ${r.calls} calls (${r.cards} cards): ${r.bytes} bytes, ${Math.round(r.bytes / r.calls)} bytes per call`,
  );
report('sqlite', await sqlite(calls));
const url = process.env.TEST_DATABASE_URL ?? 'postgres://postgres@127.0.0.1:5432/test';
try {
  report('postgres', await postgres(calls, url));
} catch (error) {
  console.log(`postgres: not measured (${(error as Error).message})`);
}
