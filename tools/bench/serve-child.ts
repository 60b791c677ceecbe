/**
 * The service in a child process (`src/main.ts` under the TypeScript loader, authentication off, a fresh
 * data folder), with the Node flags and settings given, and a plain HTTP client for it: what the memory
 * measurement (`npm run bench:memory`) and the test that a capped heap survives concurrent large bodies
 * (test/http/memory-survival.test.ts) both need.
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { request } from 'node:http';
import { type AddressInfo, createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

const LOADER = './node_modules/@tapjs/typescript/dist/esm/import.mjs';

export interface ServedChild {
  port: number;
  child: ChildProcess;
  /** The child's stderr and its non-JSON stdout so far (GC traces, fatal errors). */
  output: () => string;
  /** Largest heap V8 reported before a garbage collection (`--trace-gc`), in MB, since the last reset. */
  maxHeapMb: () => number;
  /** Starts a new maximum; returns the heap after the last collection (MB). */
  resetMaxHeap: () => number;
  exited: () => { code: number | null; signal: NodeJS.Signals | null } | null;
  stop: () => Promise<void>;
}

function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const { port } = server.address() as AddressInfo;
      server.close(() => resolve(port));
    });
  });
}

function getStatus(port: number, path: string): Promise<number> {
  return new Promise((resolve) => {
    const req = request({ host: '127.0.0.1', port, path, timeout: 2000 }, (res) => {
      res.resume();
      resolve(res.statusCode ?? 0);
    });
    req.on('timeout', () => req.destroy());
    req.on('error', () => resolve(0));
    req.end();
  });
}

/**
 * Kills `child` when this process exits, also when tap ends a test file at its timeout (teardowns do not
 * run then): a server left running would load the machine for the files after it.
 */
export function killOnExit(child: ChildProcess): void {
  const kill = () => {
    if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
  };
  // tap ends a file at its timeout with SIGALRM, then SIGKILL: 'exit' is not always emitted.
  process.once('exit', kill);
  process.once('SIGALRM', kill);
  child.once('exit', () => {
    process.off('exit', kill);
    process.off('SIGALRM', kill);
  });
}

export async function serveChild(
  nodeFlags: string[],
  env: Record<string, string> = {},
): Promise<ServedChild> {
  const port = await freePort();
  const dataDir = mkdtempSync(join(tmpdir(), 'cds-child-data-'));
  const child = spawn(process.execPath, [...nodeFlags, `--import=${LOADER}`, 'src/main.ts'], {
    env: {
      PATH: process.env.PATH ?? '',
      // tsc type-checks the project before tests and benchmarks; ts-node would check the whole graph
      // again in this child (about twice the start-up) without it.
      TS_NODE_TRANSPILE_ONLY: '1',
      CDS_AUTH_DISABLED: 'true',
      CDS_PORT: String(port),
      CDS_LOG_LEVEL: 'info',
      CDS_DATA_DIR: dataDir,
      ...env,
    },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  killOnExit(child);
  let text = '';
  let maxHeap = 0;
  let lastAfter = 0;
  let exit: { code: number | null; signal: NodeJS.Signals | null } | null = null;
  child.once('exit', (code, signal) => (exit = { code, signal }));
  const gcLine = /(?:Mark-Compact|Scavenge|Mark-sweep)[^\d]*([\d.]+) \(([\d.]+)\) -> ([\d.]+)/;
  let pending = '';
  const onText = (chunk: Buffer) => {
    pending += chunk.toString();
    const lines = pending.split('\n');
    pending = lines.pop()!;
    for (const line of lines) {
      const gc = gcLine.exec(line);
      if (gc) {
        maxHeap = Math.max(maxHeap, Number(gc[1]));
        lastAfter = Number(gc[3]);
      } else if (!line.startsWith('{')) text += `${line}\n`;
      else if (line.includes('Server listening')) text += `${line}\n`;
    }
  };
  child.stdout.on('data', onText);
  child.stderr.on('data', onText);
  // The port is chosen here and the child polled until it answers: its log lines may be interleaved
  // with V8's GC traces on the same pipe.
  const deadline = Date.now() + 600_000;
  for (;;) {
    if (exit) throw new Error(`the service exited: ${text}`);
    if (Date.now() > deadline) {
      child.kill('SIGKILL');
      throw new Error(`not answering after 600 s: ${text}`);
    }
    if ((await getStatus(port, '/health/live')) === 200) break;
    await new Promise((resolve) => setTimeout(resolve, 250));
  }
  return {
    port,
    child,
    output: () => text,
    maxHeapMb: () => maxHeap,
    resetMaxHeap: () => {
      maxHeap = 0;
      return lastAfter;
    },
    exited: () => exit,
    stop: async () => {
      if (!exit) {
        const gone = new Promise((resolve) => child.once('exit', resolve));
        child.kill('SIGKILL');
        await gone;
      }
      rmSync(dataDir, { recursive: true, force: true });
    },
  };
}

export interface Answer {
  status: number;
  retryAfter: string | undefined;
  body: string;
}

/** POSTs a body to the child over loopback; a connection that breaks gives status 0. */
export function postTo(port: number, path: string, body: string | Buffer): Promise<Answer> {
  return new Promise((resolve) => {
    const req = request(
      {
        host: '127.0.0.1',
        port,
        path,
        method: path.startsWith('/health') ? 'GET' : 'POST',
        headers: path.startsWith('/health')
          ? {}
          : { 'content-type': 'application/json', 'content-length': Buffer.byteLength(body) },
      },
      (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (c: Buffer) => chunks.push(c));
        res.on('end', () =>
          resolve({
            status: res.statusCode ?? 0,
            retryAfter: res.headers['retry-after'],
            body: Buffer.concat(chunks).toString('utf8'),
          }),
        );
        res.on('error', () => resolve({ status: 0, retryAfter: undefined, body: '' }));
      },
    );
    req.on('error', () => resolve({ status: 0, retryAfter: undefined, body: '' }));
    // A server that refuses early may close while the body is still being written (EPIPE).
    req.once('socket', (socket) => socket.on('error', () => undefined));
    if (!path.startsWith('/health')) req.write(body);
    req.end();
  });
}
