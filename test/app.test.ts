import { readdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import * as ort from 'onnxruntime-node';
import t, { type Test } from 'tap';
import { buildTestApp, tempDir } from './helpers/app.js';

type Create = (
  bytes: Uint8Array,
  options?: ort.InferenceSession.SessionOptions,
) => Promise<ort.InferenceSession>;

/** Counts the ONNX sessions start-up opens and releases, through onnxruntime's own factory. */
function watchSessions(t: Test) {
  const counts = { opened: 0, released: 0 };
  const create: Create = ort.InferenceSession.create.bind(ort.InferenceSession);
  t.capture(
    ort.InferenceSession,
    'create',
    async (bytes: Uint8Array, options?: ort.InferenceSession.SessionOptions) => {
      const session = await create(bytes, options);
      counts.opened += 1;
      const release = session.release.bind(session);
      session.release = async () => {
        counts.released += 1;
        await release();
      };
      return session;
    },
  );
  return counts;
}

t.test(
  'a bad service definition stops start-up before any session or the audit store is opened',
  async (t) => {
    const sessions = watchSessions(t);
    const servicesDir = tempDir();
    writeFileSync(join(servicesDir, 'bad.yaml'), 'id: bad\n');
    const dataDir = tempDir();
    await t.rejects(buildTestApp({ servicesDir, dataDir }), { code: 'CDS_ERR_DEFINITION_INVALID' });
    t.same(sessions, { opened: 0, released: 0 }, 'no ONNX session was opened');
    t.same(readdirSync(dataDir), [], 'no audit store (nor pseudonym key) was created');
  },
);

t.test('a bad trusted issuers file stops start-up before anything is opened', async (t) => {
  const sessions = watchSessions(t);
  const dataDir = tempDir();
  await t.rejects(
    buildTestApp({
      authDisabled: false,
      publicUrl: 'https://cds.example.org',
      trustedIssuersFile: join(tempDir(), 'missing.json'),
      dataDir,
    }),
    { message: /^Cannot read trusted issuers file / },
  );
  t.same(sessions, { opened: 0, released: 0 });
  t.same(readdirSync(dataDir), []);
});

t.test('when the audit store cannot be opened, the sessions already open are released', async (t) => {
  const sessions = watchSessions(t);
  await t.rejects(
    buildTestApp({ databaseUrl: 'postgres://postgres@127.0.0.1:1/none', auditPseudonymKey: 'k'.repeat(32) }),
    { message: /^cannot reach PostgreSQL: / },
  );
  t.ok(sessions.opened > 0, 'the bundled models were opened');
  t.equal(sessions.released, sessions.opened, 'and all released');
});
