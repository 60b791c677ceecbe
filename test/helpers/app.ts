/**
 * Test harness: the real app built with a frozen clock, predictable uuids, captured logs and an
 * optional fetch, driven through app.inject(). Each app gets its own temporary data folder (its SQLite
 * audit store and pseudonym key) unless the test names one; they are removed when the test process
 * exits (not at app.close(): Fastify runs onClose hooks last-registered first, so a hook added here
 * would run before the store is closed). Every
 * response body can be checked against the CDS Hooks schemas with `assertConforms`.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Writable } from 'node:stream';
import type { FastifyInstance } from 'fastify';
import { type AppOverrides, buildApp } from '../../src/app.js';
import { createSqliteWorker } from '../../src/audit/worker-store.js';
import { type Config, loadConfig } from '../../src/config.js';
import type { SchemaName } from '../../src/request/schemas.js';
import { validatorFor } from '../../src/request/validate.js';

/** The frozen "now" of every test. */
export const NOW = new Date('2026-11-22T09:30:00.000Z');

const tempDirs = new Set<string>();
process.once('exit', () => {
  for (const dir of tempDirs) rmSync(dir, { recursive: true, force: true });
});

/** A fresh temporary folder, removed when the test process exits. */
export function tempDir(prefix = 'cds-test-'): string {
  const dir = mkdtempSync(join(tmpdir(), prefix));
  tempDirs.add(dir);
  return dir;
}

/**
 * The SQLite worker the apps and stores of one test process share unless a test gives its own: each
 * would otherwise start a thread, seconds long under the TypeScript loader. Its thread stops by itself
 * once no store has been open in it for a second, and never keeps the process alive.
 */
export const testSqliteWorker = createSqliteWorker();

export interface TestApp {
  app: FastifyInstance;
  /** Every log line written so far, parsed. */
  logs: () => Record<string, unknown>[];
  /** The raw log text, to search for leaked values. */
  logText: () => string;
}

export async function buildTestApp(
  config: Partial<Config> = {},
  overrides: AppOverrides = {},
): Promise<TestApp> {
  const lines: string[] = [];
  const stream = new Writable({
    write(chunk, _encoding, done) {
      lines.push(...String(chunk).split('\n').filter(Boolean));
      done();
    },
  });
  let counter = 0;
  // Authentication is off unless a test configures it (test/auth/ does): the other tests are about
  // what happens after it. Each app has its own data folder (audit store). The fallback fetch may reach
  // the loopback FHIR servers the tests start, explicitly, as a local sandbox setup would allow them
  // (test/http/egress.test.ts checks what is refused).
  const app = await buildApp(
    loadConfig(
      {},
      {
        logLevel: 'info',
        authDisabled: true,
        dataDir: tempDir('cds-test-data-'),
        fhirServerAllowlist: ['127.0.0.1'],
        fhirAllowedNetworks: ['127.0.0.0/8'],
        ...config,
      },
    ),
    {
      now: () => NOW,
      uuid: () => `00000000-0000-4000-8000-${String(++counter).padStart(12, '0')}`,
      logStream: stream,
      sqliteWorker: testSqliteWorker,
      ...overrides,
    },
  );
  return {
    app,
    logs: () => lines.map((l) => JSON.parse(l) as Record<string, unknown>),
    logText: () => lines.join('\n'),
  };
}

/** Throws with the first schema error when `body` does not conform to the named schema. */
export function assertConforms(name: SchemaName, body: unknown): void {
  const validate = validatorFor(name);
  if (!validate(body)) {
    throw new Error(`response does not conform to ${name}: ${JSON.stringify(validate.errors?.slice(0, 3))}`);
  }
}
