/**
 * Patient pseudonyms: HMAC-SHA256 of the patient id under a secret key, so the audit never holds a
 * patient id in clear, yet the events of one patient can be found again by whoever holds the key
 * (right of access). Without the key, a pseudonym cannot be reversed by trying every plausible id.
 *
 * Where the key comes from:
 * - `auditPseudonymKey` (CDS_AUDIT_PSEUDONYM_KEY) when set, always;
 * - with PostgreSQL (several instances share the trail) it must be set: each instance generating its
 *   own key would scatter one patient's events under several pseudonyms, so loadConfig refuses
 *   DATABASE_URL without it;
 * - with the embedded SQLite store, a random 256-bit key is generated once into
 *   `<dataDir>/pseudonym.key` (mode 0600) and read back on later starts. Losing that file loses the
 *   link between patients and their past events: back it up with the database.
 */
import { createHmac, randomBytes } from 'node:crypto';
import { chmodSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { Config } from '../config.js';

export type Pseudonymise = (patientId: string) => string;

/** The key file inside the data folder. */
export function keyFile(dataDir: string): string {
  return join(dataDir, 'pseudonym.key');
}

/**
 * Finds or creates the pseudonym key.
 * @throws Error when the key file cannot be read or written
 */
export function loadPseudonymKey(config: Pick<Config, 'auditPseudonymKey' | 'dataDir'>): Buffer {
  if (config.auditPseudonymKey) return Buffer.from(config.auditPseudonymKey, 'utf8');
  const file = keyFile(config.dataDir);
  mkdirSync(config.dataDir, { recursive: true });
  try {
    // 'wx': only if absent, so two processes starting together cannot overwrite each other's key.
    writeFileSync(file, `${randomBytes(32).toString('hex')}\n`, { flag: 'wx', mode: 0o600 });
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code !== 'EEXIST') throw error;
  }
  const text = readFileSync(file, 'utf8').trim();
  if (!/^[0-9a-f]{64}$/.test(text)) throw new Error(`${file} does not hold a 64-hex-digit key`);
  chmodSync(file, 0o600);
  return Buffer.from(text, 'hex');
}

/** The pseudonym function under a key. */
export function pseudonymiser(key: Buffer): Pseudonymise {
  return (patientId) => createHmac('sha256', key).update(patientId, 'utf8').digest('hex');
}
