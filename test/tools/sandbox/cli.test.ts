import { createServer } from 'node:net';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Bundle, Resource } from 'fhir/r4.js';
import t, { type Test } from 'tap';
import {
  DEFAULT_PATIENTS,
  DEFAULT_PORT,
  DEFAULT_SEED,
  parseSandboxArgs,
  run,
  type SandboxIo,
  USAGE,
} from '../../../tools/sandbox/cli.js';
import { generateCohort } from '../../../tools/synthetic/patients.js';
import { buildTestApp, NOW } from '../../helpers/app.js';

const TODAY = new Date('2026-03-04T15:30:00Z');

function io(): SandboxIo & { out: () => string; err: () => string } {
  const out: string[] = [];
  const err: string[] = [];
  return {
    stdout: (text) => out.push(text),
    stderr: (text) => err.push(text),
    today: TODAY,
    out: () => out.join(''),
    err: () => err.join(''),
  };
}

async function tmpFolder(t: Test, files: Record<string, string>): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), 'cds-sandbox-cli-'));
  t.teardown(() => rm(dir, { recursive: true, force: true }));
  for (const [name, text] of Object.entries(files)) await writeFile(join(dir, name), text);
  return dir;
}

t.test('defaults and options', async (t) => {
  t.same(parseSandboxArgs([], TODAY), {
    port: DEFAULT_PORT,
    source: {
      kind: 'generated',
      patients: DEFAULT_PATIENTS,
      seed: DEFAULT_SEED,
      now: new Date('2026-03-04T00:00:00Z'),
    },
    corsOrigins: ['*'],
  });
  t.same(
    parseSandboxArgs(
      [
        '--port',
        '0',
        '--patients',
        '3',
        '--seed',
        '-7',
        '--now',
        '2026-01-01',
        '--token',
        'abc',
        '--page-size',
        '50',
        '--cors-origins',
        'https://sandbox.cds-hooks.org,http://localhost:8080',
      ],
      TODAY,
    ),
    {
      port: 0,
      source: { kind: 'generated', patients: 3, seed: -7, now: new Date('2026-01-01T00:00:00Z') },
      token: 'abc',
      pageSize: 50,
      corsOrigins: ['https://sandbox.cds-hooks.org', 'http://localhost:8080'],
    },
  );
  t.same(parseSandboxArgs(['--bundles', 'test', '--port=9000', '--cors-origins', 'none'], TODAY), {
    port: 9000,
    source: { kind: 'bundles', folder: 'test' },
    corsOrigins: [],
  });
  t.equal(parseSandboxArgs(['-h'], TODAY), 'help');
  const help = io();
  t.same(await run(['--help'], help), { code: 0 });
  t.equal(help.out(), USAGE);
});

t.test('argument errors: a clear message, the usage, exit code 2', async (t) => {
  const cases: [string[], string][] = [
    [['--port', 'x'], '--port must be an integer from 0 to 65535 (got "x")'],
    [['--port', '70000'], '--port must be an integer from 0 to 65535 (got "70000")'],
    [['--patients', '0'], '--patients must be an integer from 1 to 10000 (got "0")'],
    [['--patients', '2.5'], '--patients must be an integer from 1 to 10000 (got "2.5")'],
    [['--seed', 'abc'], '--seed must be an integer'],
    [['--now', 'tomorrow'], '--now must be YYYY-MM-DD or an ISO 8601 date-time with a time zone'],
    [['--bundles', 'test', '--patients', '3'], '--bundles and --patients cannot be used together'],
    [['--bundles', 'test', '--seed', '3'], '--bundles and --seed cannot be used together'],
    [['--bundles', 'no/such/folder'], '--bundles: folder "no/such/folder" does not exist'],
    [['--bundles', 'package.json'], '--bundles: "package.json" is not a folder'],
    [['--bundles'], '--bundles needs a value'],
    [['--token', 'a b'], '--token must be printable ASCII without spaces'],
    [['--page-size', '0'], '--page-size must be an integer from 1 to 100000 (got "0")'],
    [
      ['--cors-origins', 'https://a.example.org/'],
      '--cors-origins: "https://a.example.org/" is not an origin (scheme://host[:port], no path or trailing slash)',
    ],
    [['--cors-origins', 'a.example.org'], '--cors-origins: "a.example.org" is not an origin'],
    [['--cors-origins', 'ftp://a.example.org'], '--cors-origins: "ftp://a.example.org" is not an origin'],
    [['--verbose'], 'unknown option --verbose'],
    [['--help=yes'], '--help takes no value'],
    [['serve'], 'unexpected argument "serve"'],
  ];
  for (const [argv, message] of cases) {
    const out = io();
    const result = await run(argv, out);
    t.same(result, { code: 2 }, argv.join(' '));
    t.ok(out.err().startsWith(`sandbox: ${message}`), `${argv.join(' ')}: ${out.err().split('\n')[0]}`);
    t.ok(out.err().includes(USAGE), 'usage follows');
    t.equal(out.out(), '');
  }
});

t.test('starts with generated patients and prints what it loaded', async (t) => {
  const out = io();
  const { code, server } = await run(
    ['--port', '0', '--patients', '4', '--seed', '5', '--now', '2026-11-22'],
    out,
  );
  t.equal(code, 0);
  t.teardown(() => server!.close());
  t.match(server!.url, /^http:\/\/127\.0\.0\.1:\d+\/fhir$/);
  const text = out.out();
  t.ok(text.startsWith(`FHIR R4 sandbox: ${server!.url}\n`));
  const total = Number(
    /loaded (\d+) resources from 4 generated patients \(seed 5, now 2026-11-22T00:00:00.000Z\)/.exec(
      text,
    )?.[1],
  );
  const perType = [...text.matchAll(/^ {2}([A-Za-z]+) +(\d+)$/gm)].map((m) => [m[1], Number(m[2])] as const);
  t.equal(
    perType.reduce((sum, [, n]) => sum + n, 0),
    total,
    'per-type counts add up',
  );
  t.same(
    perType.find(([type]) => type === 'Patient'),
    ['Patient', 4],
  );
  const id = /example patient id: (\S+)/.exec(text)![1]!;
  t.ok(text.includes(`curl ${server!.url}/Patient/${id}`));
  t.ok(text.includes('no authentication'));
  t.ok(text.includes('CORS: browser origins allowed: *; POST <Type>/_search accepted'));
  t.equal(out.err(), '');

  const patient = await fetch(`${server!.url}/Patient/${id}`);
  t.equal(patient.status, 200);
  t.equal(((await patient.json()) as Resource).id, id);
  const metadata = await fetch(`${server!.url}/metadata`);
  t.equal(((await metadata.json()) as Resource).resourceType, 'CapabilityStatement');
});

t.test('starts with a bundle folder, a token and a page size', async (t) => {
  const cohort = generateCohort({ seed: 9, count: 2, now: NOW });
  const dir = await tmpFolder(t, Object.fromEntries(cohort.map((b, i) => [`p${i}.json`, JSON.stringify(b)])));
  const again = cohort[0]!;
  await writeFile(join(dir, 'repeat.json'), JSON.stringify(again));
  const out = io();
  const { code, server } = await run(
    ['--port', '0', '--bundles', dir, '--token', 'tok-1', '--page-size', '2'],
    out,
  );
  t.equal(code, 0);
  t.teardown(() => server!.close());
  const repeated = (again.entry ?? []).length;
  t.match(out.out(), new RegExp(`from 3 bundle files in .* \\(${repeated} repeated resources kept once\\)`));
  t.match(out.out(), /curl -H 'Authorization: Bearer <token>' /);
  t.match(out.out(), /bearer token required/);
  t.notMatch(out.out(), /tok-1/, 'the token is not echoed');

  const id = /example patient id: (\S+)/.exec(out.out())![1]!;
  t.equal((await fetch(`${server!.url}/Patient/${id}`)).status, 401);
  const res = await fetch(`${server!.url}/Observation?patient=${id}`, {
    headers: { authorization: 'Bearer tok-1' },
  });
  const page = (await res.json()) as Bundle;
  t.equal(res.status, 200);
  t.ok((page.entry ?? []).length <= 2, 'page size applies');
});

t.test('load and listen failures exit with 1', async (t) => {
  const dir = await tmpFolder(t, { 'bad.json': '[]' });
  const bad = io();
  t.same(await run(['--port', '0', '--bundles', dir], bad), { code: 1 });
  t.equal(bad.err(), `sandbox: cannot load ${dir}: bad.json: not a FHIR Bundle\n`);

  const blocker = createServer();
  await new Promise<void>((resolve) => blocker.listen(0, '127.0.0.1', resolve));
  t.teardown(() => new Promise<void>((resolve) => blocker.close(() => resolve())));
  const port = (blocker.address() as { port: number }).port;
  const busy = io();
  t.same(await run(['--port', String(port), '--patients', '1'], busy), { code: 1 });
  t.match(busy.err(), new RegExp(`^sandbox: cannot listen on 127\\.0\\.0\\.1:${port}: .*EADDRINUSE`));
});

t.test(
  'end to end: without prefetch the service fetches from the sandbox and gives the same cards',
  async (t) => {
    const out = io();
    const { server } = await run(
      ['--port', '0', '--patients', '20', '--seed', '42', '--now', '2026-11-22'],
      out,
    );
    t.teardown(() => server!.close());
    const sandbox = server!;
    // One explanation key for both, so the signed explanation links of equal cards are equal too.
    const explanationKey = 'e'.repeat(32);
    const withPrefetch = await buildTestApp({ explanationKey });
    const fetching = await buildTestApp({ explanationKey });
    t.teardown(() => withPrefetch.app.close());
    t.teardown(() => fetching.app.close());

    const discovery = (await withPrefetch.app.inject({ method: 'GET', url: '/cds-services' })).json() as {
      services: { id: string; hook: string; prefetch?: Record<string, string> }[];
    };
    const services = discovery.services.filter((s) => s.hook === 'patient-view');
    t.same(services.map((s) => s.id).sort(), ['knee-oa-progression', 'melanoma-lesion-triage']);

    const patientIds = (
      (await (await fetch(`${sandbox.url}/Patient?_sort=_id`)).json()) as Bundle
    ).entry!.map((e) => e.resource!.id!);
    t.equal(patientIds.length, 20);

    const cards: Record<string, number> = {};
    for (const service of services) {
      for (const patientId of patientIds) {
        // What a CDS client does: render the templates and run them against its FHIR server.
        const prefetch: Record<string, Resource> = {};
        for (const [key, template] of Object.entries(service.prefetch ?? {})) {
          const res = await fetch(
            `${sandbox.url}/${template.replaceAll('{{context.patientId}}', patientId)}`,
          );
          t.equal(res.status, 200, `${service.id} ${key}`);
          prefetch[key] = (await res.json()) as Resource;
        }
        const request = {
          hook: 'patient-view',
          hookInstance: `sandbox-${patientId}`,
          context: { userId: 'Practitioner/prac-1', patientId },
        };
        const url = `/cds-services/${service.id}`;
        const sent = await withPrefetch.app.inject({
          method: 'POST',
          url,
          payload: { ...request, prefetch },
        });
        const before = sandbox.requests.length;
        const fetched = await fetching.app.inject({
          method: 'POST',
          url,
          payload: { ...request, fhirServer: sandbox.url },
        });
        t.equal(
          sandbox.requests.length - before,
          Object.keys(service.prefetch ?? {}).length,
          'every key fetched',
        );
        t.equal(sent.statusCode, 200);
        t.equal(fetched.statusCode, 200);
        t.same(fetched.json(), sent.json(), `${service.id} ${patientId}`);
        cards[service.id] = (cards[service.id] ?? 0) + sent.json().cards.length;
      }
    }
    t.comment(`cards over 20 generated patients: ${JSON.stringify(cards)}`);
    t.ok(Object.values(cards).reduce((a, b) => a + b, 0) > 0, 'some cards to compare');
  },
);
