/**
 * killOnExit: a server spawned by a test file does not outlive it, whether the file exits or tap ends it
 * at its timeout (SIGALRM, then SIGKILL, with no teardown run).
 */
import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import t from 'tap';
import { childEnv, LOADER } from '../../helpers/child.js';

// A stand-in for a test file: spawns a process that never ends on its own, says its pid, then waits
// (or exits, with --exit).
const SCRIPT = `
  import { spawn } from 'node:child_process';
  const { killOnExit } = await import(${JSON.stringify(new URL('../../../tools/bench/serve-child.ts', import.meta.url).href)});
  const child = spawn(process.execPath, ['-e', 'setInterval(() => {}, 1000)'], { stdio: 'ignore' });
  killOnExit(child);
  process.stdout.write(String(child.pid) + '\\n');
  if (process.argv.includes('--exit')) setTimeout(() => process.exit(0), 200);
  else setInterval(() => {}, 1000);
`;
const dir = mkdtempSync(join(tmpdir(), 'cds-kill-on-exit-'));
t.teardown(() => rmSync(dir, { recursive: true, force: true }));
const script = join(dir, 'parent.mjs');
writeFileSync(script, SCRIPT);

/** Whether the process runs (a zombie, ended but not yet reaped by whoever adopted it, does not). */
const alive = (pid: number) => {
  try {
    return !/^\d+ \(.*\) Z/.test(readFileSync(`/proc/${pid}/stat`, 'utf8'));
  } catch {
    return false;
  }
};

async function run(args: string[], signal?: NodeJS.Signals) {
  const parent = spawn(process.execPath, [`--import=${LOADER}`, script, ...args], {
    env: childEnv(),
    stdio: ['ignore', 'pipe', 'inherit'],
  });
  const [chunk] = (await once(parent.stdout!, 'data')) as [Buffer];
  const pid = Number(String(chunk).trim());
  if (signal) {
    parent.kill(signal);
    await new Promise((resolve) => setTimeout(resolve, 300));
    parent.kill('SIGKILL');
  }
  await once(parent, 'exit');
  // The kill is sent before the parent ends; the child's own exit may take a moment.
  for (let i = 0; i < 50 && alive(pid); i += 1) await new Promise((resolve) => setTimeout(resolve, 20));
  return pid;
}

t.test('the child is killed when its parent exits', async (t) => {
  const pid = await run(['--exit']);
  t.equal(alive(pid), false);
});

t.test('the child is killed when its parent gets SIGALRM then SIGKILL, as at a tap timeout', async (t) => {
  const pid = await run([], 'SIGALRM');
  t.equal(alive(pid), false);
});
