/**
 * The hook CLI against a real service listening on loopback with authentication on: a generated knee-OA
 * patient gets a card printed with its top factors, JSON mode, feedback stored, a folder run with its
 * summary table, and the usage errors (exit 2) and failed calls (exit 1).
 */
import { mkdirSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { join } from 'node:path';
import { exportJWK, exportPKCS8 } from 'jose';
import t from 'tap';
import { run, type CliIo } from '../../../tools/cli/main.js';
import { patientOf, resourcesOf, toServerForm } from '../../../tools/synthetic/bundle.js';
import { generatePatient } from '../../../tools/synthetic/patients.js';
import { createRng } from '../../../tools/synthetic/random.js';
import { NOW, tempDir } from '../../helpers/app.js';
import { HIGH_RISK as HIGH } from '../../helpers/knee-oa-call.js';
import { startFhirServer } from '../../helpers/fhir-server.js';
import { buildAuthApp, ISSUER, jwksOf, makeKey } from '../../helpers/jwt.js';

async function freePort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as { port: number };
  await new Promise<void>((resolve) => server.close(() => resolve()));
  return port;
}

const key = await makeKey('ES384');
const dir = tempDir('cds-cli-');
const pem = join(dir, 'key.pem');
writeFileSync(pem, await exportPKCS8(key.privateKey));
const jwkFile = join(dir, 'key.jwk.json');
writeFileSync(jwkFile, JSON.stringify({ ...(await exportJWK(key.privateKey)), kid: key.kid }));
const kneeFile = join(dir, 'knee.json');
// The file as a generator writes it: a transaction bundle with urn:uuid references.
writeFileSync(kneeFile, JSON.stringify(generatePatient(createRng(1, 0), { ...HIGH, now: NOW })));

const port = await freePort();
const BASE = `http://127.0.0.1:${port}`;
// The FHIR servers of the tests listen on loopback: this client may name them (issue 16 egress control).
const test = await buildAuthApp(
  [{ iss: ISSUER, jwks: jwksOf(key), fhirServers: ['127.0.0.1'], fhirAllowedNetworks: ['127.0.0.0/8'] }],
  { publicUrl: BASE },
);
await test.app.listen({ port, host: '127.0.0.1' });
t.teardown(() => test.app.close());

/** Ids are unique across the whole file: the service refuses a replayed jti. */
let n = 0;

function cli(tty = false) {
  const out: string[] = [];
  const err: string[] = [];
  let clock = 0;
  const io: CliIo = { stdout: (s) => out.push(s), stderr: (s) => err.push(s), stdoutIsTty: tty };
  const deps = {
    fetch: globalThis.fetch,
    now: () => NOW,
    uuid: () => `00000000-0000-4000-9000-${String(++n).padStart(12, '0')}`,
    // Each request "takes" 10 ms more than the previous one: deterministic latencies.
    clockMs: () => (clock += 5),
  };
  return {
    run: (...argv: string[]) => run(argv, io, deps),
    out: () => out.join(''),
    err: () => err.join(''),
  };
}

const AUTH = ['--key', pem, '--alg', 'ES384', '--iss', ISSUER, '--kid', key.kid];
const KNEE = ['--url', BASE, '--service', 'knee-oa-progression'];

t.test('a generated knee-OA patient: one warning card, printed with its top factors', async (t) => {
  const c = cli();
  t.equal(await c.run(...KNEE, '--bundle', kneeFile, ...AUTH), 0, c.err());
  const lines = c.out().split('\n');
  t.equal(lines[0], `knee-oa-progression · ${kneeFile}: 1 card`);
  t.match(lines[1], /^\[WARNING\] Knee OA: estimated \d+% risk of rapid progression within 24 months/);
  t.match(lines[2], /^ {4}source: /);
  const factors = /^ {4}top factors: (.+)$/.exec(lines[3] ?? '');
  t.ok(factors, 'a top factors line');
  const parts = factors![1]!.split('; ');
  t.equal(parts.length, 3, 'three factors');
  const sizes = parts.map((p) => Number(/\(([+−])(\d+\.\d\d)\)$/.exec(p)![2]));
  t.same(
    sizes,
    [...sizes].sort((a, b) => b - a),
    'largest |contribution| first',
  );
  t.notMatch(c.out(), /\x1b\[/, 'no colour when stdout is not a terminal');
  t.equal(c.err(), '', 'every prefetch key answered from the bundle');
});

t.test('on a terminal the indicator gets a colour and a symbol', async (t) => {
  const c = cli(true);
  t.equal(await c.run(...KNEE, '--bundle', kneeFile, ...AUTH), 0);
  t.match(c.out().split('\n')[1], /^\x1b\[33m▲ WARNING\x1b\[0m Knee OA/);
});

t.test('a private JWK works as the key, its kid taken from the file', async (t) => {
  const c = cli();
  t.equal(await c.run(...KNEE, '--bundle', kneeFile, '--key', jwkFile, '--iss', ISSUER), 0, c.err());
});

t.test('JSON mode prints the cards with their explanation', async (t) => {
  const c = cli();
  t.equal(await c.run(...KNEE, '--bundle', kneeFile, ...AUTH, '--json'), 0);
  const body = JSON.parse(c.out());
  t.equal(body.service, 'knee-oa-progression');
  t.equal(body.status, 200);
  t.equal(body.latencyMs, 5);
  t.equal(body.cards.length, 1);
  t.equal(body.cards[0].indicator, 'warning');
  t.ok(body.cards[0].extension['org.example.explainable-cds.explanation'].model.contributions.length > 3);
});

t.test('without a key no Authorization header is sent: the service refuses with 401', async (t) => {
  const c = cli();
  t.equal(await c.run(...KNEE, '--bundle', kneeFile), 1);
  t.match(c.err(), /discovery .* answered 401/);
});

t.test('feedback accepted on each card is stored (200)', async (t) => {
  const c = cli();
  t.equal(await c.run(...KNEE, '--bundle', kneeFile, ...AUTH, '--feedback', 'accepted'), 0, c.err());
  t.match(c.out(), /\nfeedback: 200 \{"stored":1,"duplicates":0\}\n$/);
});

t.test('feedback overridden with a reason the card offers; an unknown reason is a usage error', async (t) => {
  // The unknown reason first: once overridden as "not relevant now", the card is held back for 24 h.
  const bad = cli();
  t.equal(await bad.run(...KNEE, '--bundle', kneeFile, ...AUTH, '--feedback', 'overridden:nope'), 2);
  t.match(bad.err(), /^cds-hook: the card does not offer the override reason nope \(offered: .+\)\n$/);
  const c = cli();
  t.equal(
    await c.run(...KNEE, '--bundle', kneeFile, ...AUTH, '--feedback', 'overridden:not-relevant-now'),
    0,
    c.err(),
  );
  t.match(c.out(), /feedback: 200 \{"stored":1,"duplicates":0\}/);
});

t.test('folder mode: 5 patients, a summary table with cards by indicator and latencies', async (t) => {
  const folder = join(dir, 'cohort');
  mkdirSync(folder);
  for (let i = 0; i < 5; i++) {
    const bundle = generatePatient(createRng(10, i), { ...HIGH, now: NOW });
    writeFileSync(join(folder, `p${i}.json`), JSON.stringify(i === 4 ? toServerForm(bundle) : bundle));
  }
  writeFileSync(join(folder, 'notes.txt'), 'not a bundle');
  const c = cli();
  t.equal(await c.run(...KNEE, '--bundles', folder, ...AUTH), 0, c.err());
  t.equal(c.err(), '5/5 patients\n', 'no terminal: a progress line at the end (and every 10)');
  t.equal(
    c.out(),
    [
      'patients                           5',
      'cards knee-oa-progression warning  5',
      'errors                             0',
      'latency p50/p95/max                5 / 5 / 5 ms',
      '',
    ].join('\n'),
  );
  const json = cli();
  t.equal(await json.run(...KNEE, '--bundles', folder, ...AUTH, '--json'), 0);
  t.same(JSON.parse(json.out()).summary, {
    patients: 5,
    cards: { 'knee-oa-progression': { warning: 5 } },
    errors: {},
    latencyMs: { p50: 5, p95: 5, max: 5 },
  });
});

t.test('folder mode counts a broken bundle and a refused call as errors (exit 1)', async (t) => {
  const folder = join(dir, 'broken');
  mkdirSync(folder);
  writeFileSync(join(folder, 'a.json'), '{');
  writeFileSync(
    join(folder, 'b.json'),
    JSON.stringify(generatePatient(createRng(3, 0), { ...HIGH, now: NOW })),
  );
  const c = cli();
  t.equal(await c.run('--url', BASE, '--service', 'knee-oa-progression', '--bundles', folder), 1);
  t.match(c.err(), /discovery .* answered 401/, 'no key: discovery is refused');
  const d = cli();
  t.equal(await d.run(...KNEE, '--bundles', folder, ...AUTH), 1);
  t.match(d.err(), /a\.json: bundle .*a\.json is not JSON/);
  t.match(d.out(), /^patients {2,}2$/m);
  t.match(d.out(), /^errors input {2,}1$/m);
});

t.test('usage errors exit with 2 and say what is wrong', async (t) => {
  const cases: [string[], RegExp][] = [
    [
      [...KNEE, '--bundle', kneeFile, '--key', join(dir, 'missing.pem'), '--iss', ISSUER],
      /cannot read key file .*missing\.pem: ENOENT/,
    ],
    [
      ['--url', 'not a url', '--service', 'x', '--bundle', kneeFile],
      /--url must be an http\(s\) URL \(got "not a url"\)/,
    ],
    [['--url', 'ftp://h', '--service', 'x', '--bundle', kneeFile], /--url must be an http\(s\) URL/],
    [
      ['--url', BASE, '--service', 'nope', '--bundle', kneeFile, ...AUTH],
      /unknown service "nope" at .*\/cds-services \(services: .*knee-oa-progression/,
    ],
    [['--service', 'x', '--bundle', kneeFile], /--url is required/],
    [['--url', BASE, '--bundle', kneeFile], /--service is required/],
    [['--url', BASE, '--service', 'x'], /exactly one of --bundle, --bundles, --fhir-server/],
    [['--url', BASE, '--service', 'x', '--bundle', 'a', '--bundles', 'b'], /exactly one of/],
    [['--url', BASE, '--service', 'x', '--fhir-server', BASE], /--fhir-server needs --patient/],
    [
      ['--url', BASE, '--service', 'x', '--bundle', 'a', '--patient', 'p'],
      /--patient and --fhir-token go with --fhir-server/,
    ],
    [
      ['--url', BASE, '--service', 'x', '--bundle', 'a', '--iss', ISSUER],
      /--iss, --alg and --kid go with --key/,
    ],
    [['--url', BASE, '--service', 'x', '--bundle', 'a', '--key', pem], /--key needs --iss/],
    [
      ['--url', BASE, '--service', 'x', '--bundle', 'a', '--key', pem, '--iss', ISSUER, '--alg', 'HS256'],
      /--alg must be an asymmetric/,
    ],
    [
      ['--url', BASE, '--service', 'x', '--bundle', 'a', '--feedback', 'maybe'],
      /--feedback must be accepted or overridden/,
    ],
    [
      ['--url', BASE, '--service', 'x', '--bundle', 'a', '--feedback', 'accepted:x'],
      /--feedback accepted takes no reason code/,
    ],
    [['--url', BASE, '--bogus'], /Unknown option '--bogus'/],
    [[...KNEE, '--bundle', join(dir, 'none.json'), ...AUTH], /cannot read bundle .*none\.json: ENOENT/],
    [
      [...KNEE, '--bundle', pem, '--key', pem, '--alg', 'RS384', '--iss', ISSUER],
      /cannot use key file .* with RS384/,
    ],
    [
      [...KNEE, '--bundle', kneeFile, '--key', kneeFile, '--iss', ISSUER],
      /cannot use key file .*the JWK has no private part|cannot use key file/,
    ],
  ];
  for (const [argv, message] of cases) {
    const c = cli();
    t.equal(await c.run(...argv), 2, argv.join(' '));
    t.match(c.err(), message, argv.join(' '));
    t.equal(c.out(), '');
  }
});

t.test('order hooks: draft orders required, and --select for order-select', async (t) => {
  const orders = join(dir, 'orders.json');
  writeFileSync(
    orders,
    JSON.stringify({
      resourceType: 'Bundle',
      type: 'collection',
      entry: [
        {
          resource: {
            resourceType: 'MedicationRequest',
            id: 'draft-1',
            status: 'draft',
            intent: 'order',
            subject: { reference: 'Patient/x' },
            medicationCodeableConcept: { text: 'something' },
          },
        },
      ],
    }),
  );
  const cases: [string, string[], number, RegExp][] = [
    [
      'nsaid-safety-order-sign',
      [],
      2,
      /^cds-hook: the order-sign hook needs --draft-orders <bundle\.json>\n$/,
    ],
    [
      'nsaid-safety-order-select',
      ['--draft-orders', orders],
      2,
      /the order-select hook needs --select <id,id>/,
    ],
    [
      'nsaid-safety-order-select',
      ['--draft-orders', orders, '--select', 'nope'],
      2,
      /--select: nope is not a draft order/,
    ],
    [
      'nsaid-safety-order-select',
      ['--draft-orders', orders, '--select', 'MedicationRequest/draft-1'],
      0,
      /: 0 cards\n$/,
    ],
    ['nsaid-safety-order-sign', ['--draft-orders', orders], 0, /: 0 cards\n$/],
  ];
  for (const [service, extra, code, pattern] of cases) {
    const c = cli();
    t.equal(
      await c.run('--url', BASE, '--service', service, '--bundle', kneeFile, ...AUTH, ...extra),
      code,
      c.err(),
    );
    t.match(code === 0 ? c.out() : c.err(), pattern);
  }
});

t.test('help prints the usage; an unreachable service exits 1', async (t) => {
  const c = cli();
  t.equal(await c.run('--help'), 0);
  t.match(c.out(), /^Usage: cds-hook --url/);
  const d = cli();
  t.equal(
    await d.run('--url', `http://127.0.0.1:${await freePort()}`, '--service', 'x', '--bundle', kneeFile),
    1,
  );
  t.match(d.err(), /^cds-hook: fetch failed \(ECONNREFUSED\)\n$/);
});

t.test(
  'a patient from a FHIR server: prefetch read from it, and fhirServer sent for --no-prefetch',
  async (t) => {
    // Another patient than kneeFile's, whose card an earlier test overrode (held back for 24 h).
    const bundle = toServerForm(generatePatient(createRng(2, 0), { ...HIGH, now: NOW }));
    const server = await startFhirServer({ resources: resourcesOf(bundle), token: 'fhir-token' });
    t.teardown(() => server.close());
    const patient = patientOf(bundle).id!;
    const from = ['--fhir-server', server.url, '--patient', patient, '--fhir-token', 'fhir-token'];
    const c = cli();
    t.equal(await c.run(...KNEE, ...from, ...AUTH), 0, c.err());
    t.match(c.out(), new RegExp(`^knee-oa-progression · Patient/${patient}: 1 card\\n\\[WARNING\\]`));
    const prefetched = server.requests.length;
    t.ok(prefetched >= 3, 'the CLI read the prefetch queries');
    t.ok(server.requests.every((r) => r.authorization === 'Bearer fhir-token'));
    const d = cli();
    t.equal(await d.run(...KNEE, ...from, ...AUTH, '--no-prefetch'), 0, d.err());
    t.match(d.out(), /: 1 card\n\[WARNING\]/, 'the service fetched the data itself');
    t.ok(server.requests.length > prefetched);
    const e = cli();
    t.equal(await e.run(...KNEE, '--fhir-server', server.url, '--patient', patient, ...AUTH), 1);
    t.match(e.err(), /prefetch patient: the FHIR server answered 401; left out/);
  },
);
