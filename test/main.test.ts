import { spawn, spawnSync } from 'node:child_process';
import { cpSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import t from 'tap';
import { childEnv, killOnExit, LOADER } from './helpers/child.js';

// Each test starts the TypeScript entry point in a new process: a few seconds each on an idle machine,
// but transpiling the whole import graph took over 30 s under heavy load (CI on a shared machine).
t.setTimeout(600_000);

function start(env: Record<string, string>) {
  return spawnSync(process.execPath, [`--import=${LOADER}`, 'src/main.ts'], {
    env: childEnv(env),
    encoding: 'utf8',
    timeout: 120_000,
  });
}

t.test('a broken service definition stops start-up with exit code 1, the file and the reason', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'cds-main-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  writeFileSync(join(dir, 'broken.yaml'), 'id: x\n');
  const run = start({ CDS_SERVICES_DIR: dir, CDS_AUTH_DISABLED: 'true' });
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

t.test('with authentication on but not configured, start-up stops and names both settings', async (t) => {
  const run = start({});
  t.equal(run.status, 1);
  t.match(
    run.stderr.trim().split('\n').at(-1),
    /^Start-up failed: Client authentication is on but CDS_PUBLIC_URL .* and CDS_TRUSTED_ISSUERS_FILE .* are not set\. Set CDS_AUTH_DISABLED=true to run without authentication, for local development only\.$/,
  );
});

t.test('CDS_AUTH_DISABLED=true starts the server, which says loudly that anyone can call it', async (t) => {
  const child = spawn(process.execPath, [`--import=${LOADER}`, 'src/main.ts'], {
    env: childEnv({ CDS_AUTH_DISABLED: 'true', CDS_PORT: '0' }),
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  killOnExit(child);
  t.teardown(() => child.kill('SIGKILL'));
  const lines: Record<string, unknown>[] = [];
  await new Promise<void>((resolve, reject) => {
    let buffer = '';
    const timer = setTimeout(() => reject(new Error(`not listening after 120 s: ${buffer}`)), 120_000);
    child.stdout.on('data', (chunk: Buffer) => {
      buffer += chunk;
      const complete = buffer.split('\n');
      buffer = complete.pop()!;
      for (const line of complete) lines.push(JSON.parse(line) as Record<string, unknown>);
      if (lines.some((l) => String(l.msg).startsWith('Server listening'))) {
        clearTimeout(timer);
        resolve();
      }
    });
  });
  const warning = lines.find((l) => l.setting === 'CDS_AUTH_DISABLED');
  t.equal(warning?.level, 50);
  t.match(
    warning?.msg,
    /^CLIENT AUTHENTICATION IS DISABLED \(CDS_AUTH_DISABLED=true\): anyone who can reach/,
  );
  const exit = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
  child.kill('SIGTERM');
  t.equal(await exit, 0, 'SIGTERM closes the server cleanly');
});

t.test('SIGHUP reloads the services: a new file is served, a broken one is refused and logged', async (t) => {
  const root = mkdtempSync(join(tmpdir(), 'cds-main-hup-'));
  t.teardown(() => rmSync(root, { recursive: true, force: true }));
  const servicesDir = join(root, 'cds-services');
  cpSync('cds-services', servicesDir, { recursive: true });
  const child = spawn(process.execPath, [`--import=${LOADER}`, 'src/main.ts'], {
    env: childEnv({
      CDS_AUTH_DISABLED: 'true',
      CDS_PORT: '0',
      CDS_SERVICES_DIR: servicesDir,
      CDS_DATA_DIR: join(root, 'data'),
    }),
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  killOnExit(child);
  t.teardown(() => child.kill('SIGKILL'));
  const lines: Record<string, unknown>[] = [];
  const waiters: {
    test: (l: Record<string, unknown>) => boolean;
    resolve: (l: Record<string, unknown>) => void;
  }[] = [];
  let buffer = '';
  child.stdout.on('data', (chunk: Buffer) => {
    buffer += chunk;
    const complete = buffer.split('\n');
    buffer = complete.pop()!;
    for (const text of complete) {
      const line = JSON.parse(text) as Record<string, unknown>;
      lines.push(line);
      for (const w of waiters.filter((w) => w.test(line))) w.resolve(line);
    }
  });
  // Start-up takes over 30 s when the machine is busy (loading the ONNX models, compiling TypeScript).
  const next = (message: string) =>
    new Promise<Record<string, unknown>>((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`no "${message}" after 90 s`)), 90_000);
      waiters.push({
        test: (l) => String(l.msg).startsWith(message),
        resolve: (l) => {
          clearTimeout(timer);
          resolve(l);
        },
      });
    });
  const listening = await next('Server listening');
  const base = /(http:\/\/\S+)/.exec(String(listening.msg))![1]!;
  const discovery = async () =>
    ((await (await fetch(`${base}/cds-services`)).json()) as { services: { id: string }[] }).services.map(
      (s) => s.id,
    );
  t.notOk((await discovery()).includes('added-service'));

  const fixture = readFileSync('test/fixtures/services/omit-demo.yaml', 'utf8');
  writeFileSync(join(servicesDir, 'added.yaml'), fixture.replace('id: omit-demo', 'id: added-service'));
  const reloaded = next('services and models reloaded');
  child.kill('SIGHUP');
  t.ok((await reloaded).services);
  t.ok((await discovery()).includes('added-service'), 'the added service is in discovery');

  writeFileSync(join(servicesDir, 'broken.yaml'), 'id: x\n');
  const refused = next('reload refused');
  child.kill('SIGHUP');
  const line = await refused;
  t.equal(line.level, 50);
  t.equal(line.code, 'CDS_ERR_DEFINITION_INVALID');
  t.match(line.reason, /^broken\.yaml: /);
  t.ok((await discovery()).includes('added-service'), 'the running set still serves');
  const exit = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
  child.kill('SIGTERM');
  t.equal(await exit, 0);
});
