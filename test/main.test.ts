import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import t from 'tap';

const LOADER = './node_modules/@tapjs/typescript/dist/esm/import.mjs';

function start(env: Record<string, string>) {
  return spawnSync(process.execPath, [`--import=${LOADER}`, 'src/main.ts'], {
    env: { PATH: process.env.PATH ?? '', ...env },
    encoding: 'utf8',
    timeout: 30_000,
  });
}

t.test('a broken service definition stops start-up with exit code 1, the file and the reason', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'cds-main-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  writeFileSync(join(dir, 'broken.yaml'), 'id: x\n');
  const run = start({ CDS_SERVICES_DIR: dir });
  t.equal(run.status, 1);
  t.equal(
    run.stderr.trim().split('\n').at(-1),
    // `hook` or `hooks` is checked first (JSON Schema oneOf), then the other required properties.
    "Start-up failed: CDS_ERR_DEFINITION_INVALID: broken.yaml: must have required property 'hook'",
  );
});

t.test('an invalid setting stops start-up with exit code 1 and names the variable', async (t) => {
  const run = start({ CDS_PORT: 'http' });
  t.equal(run.status, 1);
  t.match(run.stderr, /Start-up failed: Invalid configuration: port \(CDS_PORT\) must be integer/);
});
