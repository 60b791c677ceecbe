/**
 * `CDS_WORKERS=2` run as a process, the way a site runs it: both workers answer on one port, the
 * metrics are those of the whole set, the hash chain the workers write together (calls made at once)
 * verifies, a token used on one worker is refused as a replay on the other and on a worker started later, a worker that dies is replaced, and SIGTERM stops
 * everything cleanly. Tokens are minted at the machine's clock here (the process has no injected one).
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { request } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import t from 'tap';
import { runVerify } from '../../tools/audit-verify.js';
import { NOW } from '../helpers/app.js';
import { patientView, searchset } from '../helpers/hook-request.js';
import { ISSUER, jwksOf, makeKey, mint, PUBLIC_URL, writeIssuers } from '../helpers/jwt.js';
import { childEnv, killOnExit, LOADER } from '../helpers/child.js';

const SERVICE = '/cds-services/melanoma-lesion-triage';

// Three processes compile the TypeScript graph and load the models: minutes on a loaded machine.
t.setTimeout(900_000);

type Line = Record<string, unknown>;

function watch(child: ChildProcess) {
  const lines: Line[] = [];
  const waiters: { test: (l: Line) => boolean; resolve: (l: Line) => void }[] = [];
  let buffer = '';
  child.stdout!.on('data', (chunk: Buffer) => {
    buffer += chunk;
    const complete = buffer.split('\n');
    buffer = complete.pop()!;
    for (const text of complete) {
      const line = JSON.parse(text) as Line;
      lines.push(line);
      for (const w of waiters.filter((w) => w.test(line))) w.resolve(line);
    }
  });
  /** The `count`-th line (counting from the start) whose message starts with `message`. */
  const nth = (message: string, count: number) =>
    new Promise<Line>((resolve, reject) => {
      const matching = () => lines.filter((l) => String(l.msg).startsWith(message));
      if (matching().length >= count) return resolve(matching()[count - 1]!);
      const timer = setTimeout(() => reject(new Error(`no ${count}× "${message}" after 600 s`)), 600_000);
      waiters.push({
        test: () => matching().length >= count,
        resolve: () => {
          clearTimeout(timer);
          resolve(matching()[count - 1]!);
        },
      });
    });
  return { lines, nth };
}

t.test('two workers on one port share the chain, the replay cache and the metrics', async (t) => {
  const root = mkdtempSync(join(tmpdir(), 'cds-cluster-'));
  t.teardown(() => rmSync(root, { recursive: true, force: true }));
  const key = await makeKey('ES384');
  const issuers = writeIssuers([{ iss: ISSUER, jwks: jwksOf(key) }]);
  t.teardown(issuers.cleanup);
  const child = spawn(process.execPath, [`--import=${LOADER}`, 'src/main.ts'], {
    env: childEnv({
      CDS_WORKERS: '2',
      CDS_PORT: '0',
      CDS_DATA_DIR: join(root, 'data'),
      CDS_PUBLIC_URL: PUBLIC_URL,
      CDS_TRUSTED_ISSUERS_FILE: issuers.file,
    }),
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  killOnExit(child);
  t.teardown(() => child.kill('SIGKILL'));
  const out = watch(child);

  const first = await out.nth('worker listening', 1);
  const second = await out.nth('worker listening', 2);
  t.not(first.workerPid, second.workerPid, 'two worker processes');
  const listening = await out.nth('Server listening', 2);
  const port = /:(\d+)$/.exec(/(http:\/\/\S+)/.exec(String(listening.msg))![1]!)![1]!;
  const base = `http://127.0.0.1:${port}`;

  // The process has the machine's clock: tokens are minted relative to it rather than to NOW.
  const skew = Math.floor((Date.now() - NOW.getTime()) / 1000);
  const token = (jti?: string) =>
    mint(key, { aud: SERVICE, iat: skew, exp: skew + 300, ...(jti ? { jti } : {}) });
  const body = JSON.stringify(
    patientView({ patient: { resourceType: 'Patient', id: 'pat-123' }, lesions: searchset([]) }),
  );
  // A new connection per call (no keep-alive agent): the cluster hands out connections, not requests.
  const call = (bearer: string) =>
    new Promise<{ status: number }>((resolve, reject) => {
      const req = request(
        `${base}${SERVICE}`,
        {
          method: 'POST',
          agent: false,
          headers: { 'content-type': 'application/json', authorization: `Bearer ${bearer}` },
        },
        (res) => {
          res.resume();
          res.on('end', () => resolve({ status: res.statusCode ?? 0 }));
        },
      );
      req.on('error', reject);
      req.end(body);
    });

  const calls = 20;
  // All at once: both workers append to the one chain at the same time.
  const tokens = await Promise.all(Array.from({ length: calls }, () => token()));
  const statuses = await Promise.all(tokens.map(async (bearer) => (await call(bearer)).status));
  t.same(
    statuses,
    Array.from({ length: calls }, () => 200),
    'every concurrent call answered',
  );

  // The primary hands each new connection to the next free worker: at once, a worker still busy with its
  // first call (or whose log line has not arrived yet) can leave all 20 to the other (seen once in a
  // full run). Calls one at a time then alternate between the workers; each is counted below.
  const answeredBy = () => new Set(out.lines.filter((l) => l.msg === 'request completed').map((l) => l.pid));
  let made = calls;
  const more: number[] = [];
  while (answeredBy().size < 2 && more.length < 40) {
    more.push((await call(await token())).status);
    made += 1;
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
  t.same(
    more,
    more.map(() => 200),
    'every call one at a time answered',
  );
  t.comment(`${more.length} calls one at a time before both workers had answered`);
  t.equal(answeredBy().size, 2, 'both workers answered calls');

  // Connections are handed out in turn: the same token sent twice reaches both workers.
  const reused = await token('reused-jti');
  const once = await call(reused);
  const twice = await call(reused);
  t.equal(once.status, 200);
  t.equal(twice.status, 401, 'the replay is refused whichever worker sees it');

  const metrics = await (await fetch(`${base}/metrics`)).text();
  const answered = [...metrics.matchAll(/^cds_http_requests_total\{([^}]*)\} (\d+)$/gm)]
    .filter((m) => m[1]!.includes('route="/cds-services/:id"'))
    .reduce((sum, m) => sum + Number(m[2]), 0);
  t.equal(answered, made + 2, 'the metrics count the answers of both workers');

  // SIGHUP to the primary reloads the definitions in every worker.
  child.kill('SIGHUP');
  const reloads = [
    await out.nth('services and models reloaded', 1),
    await out.nth('services and models reloaded', 2),
  ];
  t.not(reloads[0]!.pid, reloads[1]!.pid, 'both workers reloaded');

  // A worker killed outright is replaced; the set keeps answering.
  const victim = Number(first.workerPid);
  process.kill(victim, 'SIGKILL');
  const died = await out.nth('a worker died', 1);
  t.equal(died.signal, 'SIGKILL');
  const third = await out.nth('worker listening', 3);
  t.not(third.workerPid, victim);
  t.equal((await call(await token())).status, 200);
  // The replay cache is the primary's: the replacement worker refuses the token used before too.
  t.equal((await call(reused)).status, 401, 'the replay is refused after a worker was replaced');
  t.equal((await call(reused)).status, 401);

  const exit = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
  child.kill('SIGTERM');
  t.equal(await exit, 0, 'SIGTERM stops the workers and the primary cleanly');

  const report: string[] = [];
  const code = await runVerify(
    { CDS_DATA_DIR: join(root, 'data') },
    { write: (text: string) => report.push(text) },
  );
  t.equal(code, 0, 'the chain written by both workers verifies');
  // One record per answered call: the 20 (and any made one at a time), the first use of the reused
  // token, the call after the restart.
  const rows = made + 2;
  t.match(report.join(''), new RegExp(`^audit chain intact: ${rows} rows, head ${rows} [0-9a-f]{64}\\n$`));
});

t.test('a worker that cannot start stops the whole set with exit code 1', async (t) => {
  const child = spawn(process.execPath, [`--import=${LOADER}`, 'src/main.ts'], {
    env: childEnv({
      CDS_WORKERS: '2',
      CDS_PORT: '0',
      CDS_AUTH_DISABLED: 'true',
      CDS_MODELS_DIR: '/nonexistent-models',
    }),
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  killOnExit(child);
  t.teardown(() => child.kill('SIGKILL'));
  const out = watch(child);
  const exit = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
  t.equal(await exit, 1);
  t.ok(out.lines.some((l) => l.msg === 'a worker failed before listening: stopping'));
});
