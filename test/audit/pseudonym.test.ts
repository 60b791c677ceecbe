import { createHmac } from 'node:crypto';
import { readFileSync, statSync, writeFileSync } from 'node:fs';
import t from 'tap';
import { keyFile, loadPseudonymKey, pseudonymiser } from '../../src/audit/pseudonym.js';
import { tempDir } from '../helpers/app.js';

const KEY = 'k'.repeat(32);

t.test('the pseudonym is HMAC-SHA256 of the patient id under the key, in hex', async (t) => {
  const pseudonymise = pseudonymiser(Buffer.from(KEY));
  t.equal(pseudonymise('pat-123'), createHmac('sha256', KEY).update('pat-123').digest('hex'));
  t.match(pseudonymise('pat-123'), /^[0-9a-f]{64}$/);
  t.not(pseudonymise('pat-123'), pseudonymise('pat-124'));
  t.not(
    pseudonymiser(Buffer.from('j'.repeat(32)))('pat-123'),
    pseudonymise('pat-123'),
    'another key, another pseudonym',
  );
});

t.test('a configured key is used as is', async (t) => {
  const dataDir = tempDir();
  t.same(loadPseudonymKey({ auditPseudonymKey: KEY, dataDir }), Buffer.from(KEY));
});

t.test(
  'with SQLite and no key, one is generated once into the data folder, readable by the owner only',
  async (t) => {
    const dataDir = `${tempDir()}/nested/data`;
    const first = loadPseudonymKey({ dataDir });
    t.equal(first.length, 32);
    t.equal(statSync(keyFile(dataDir)).mode & 0o777, 0o600);
    t.match(readFileSync(keyFile(dataDir), 'utf8'), /^[0-9a-f]{64}\n$/);
    t.same(loadPseudonymKey({ dataDir }), first, 'read back on the next start');
    t.not(
      loadPseudonymKey({ dataDir: tempDir() }).toString('hex'),
      first.toString('hex'),
      'each folder its own',
    );
  },
);

t.test('a damaged key file stops start-up rather than silently changing every pseudonym', async (t) => {
  const dataDir = tempDir();
  writeFileSync(keyFile(dataDir), 'not a key\n');
  t.throws(() => loadPseudonymKey({ dataDir }), {
    message: /pseudonym\.key does not hold a 64-hex-digit key/,
  });
});

t.test('a data folder that cannot be written stops start-up with the system error', async (t) => {
  const file = `${tempDir()}/file`;
  writeFileSync(file, '');
  t.throws(() => loadPseudonymKey({ dataDir: `${file}/data` }), { code: 'ENOTDIR' });
});
