/**
 * Egress control of the fallback FHIR fetch (issue 16 §6), end to end with authentication on: each
 * trusted issuer lists the FHIR servers it may name and the networks beyond the public internet they
 * may be in. A loopback listener counts the connections it receives, so "refused before any connection"
 * is measured, not assumed; host names are resolved by an injected resolver (no DNS, nothing leaves
 * loopback). The 412 diagnostics name the key and a category, never what the remote server said.
 */
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import type { LightMyRequestResponse } from 'fastify';
import t, { type Test } from 'tap';
import type { HookRequest } from '../../src/cds-hooks.js';
import type { ResolvedAddress } from '../../src/prefetch/egress.js';
import { assertConforms } from '../helpers/app.js';
import { PATIENT_ID, patientView, searchset } from '../helpers/hook-request.js';
import {
  type AuthTestApp,
  bearer,
  buildAuthApp,
  jwksOf,
  makeKey,
  mint,
  type TestKey,
} from '../helpers/jwt.js';

const SERVICE = '/cds-services/melanoma-lesion-triage';
const TOKEN = 'tok-egress-7c1f-secret';
const SECRET_BODY = 'internal-banner: payroll-db.corp listening on 5432';
/** The melanoma model inputs are sent as known-absent: `lesions` (onFailure: fail) is the one fetched. */
const MODEL_KEYS_ABSENT = { patient: null, conditions: null, skin: null, consent: null };

interface Listener {
  port: number;
  connections: () => number;
  hosts: string[];
  mode: (next: 'ok' | 'error') => void;
  close: () => Promise<void>;
}

/** A loopback FHIR endpoint that counts TCP connections and records the Host header of each request. */
async function listener(t: Test): Promise<Listener> {
  let connections = 0;
  let mode: 'ok' | 'error' = 'ok';
  const hosts: string[] = [];
  const server: Server = createServer((req, res) => {
    hosts.push(String(req.headers.host));
    if (mode === 'error') {
      res.writeHead(500, { 'content-type': 'text/plain' }).end(SECRET_BODY);
      return;
    }
    res.writeHead(200, { 'content-type': 'application/fhir+json' }).end(JSON.stringify(searchset([])));
  });
  server.on('connection', () => (connections += 1));
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const close = async () => {
    server.closeAllConnections();
    await new Promise<void>((resolve) => server.close(() => resolve()));
  };
  t.teardown(close);
  return {
    port: (server.address() as AddressInfo).port,
    connections: () => connections,
    hosts,
    mode: (next) => (mode = next),
    close,
  };
}

let key: TestKey;
t.before(async () => {
  key = await makeKey('ES384');
});

const ALLOWED = 'https://allowed.example.org';
const NO_NETWORKS = 'https://no-networks.example.org';
const ELSEWHERE = 'https://elsewhere.example.org';

/** The resolver the app uses, with its calls, answering from a table. */
function resolver(table: Record<string, string[]>) {
  const calls: string[] = [];
  const resolve = async (host: string): Promise<ResolvedAddress[]> => {
    calls.push(host);
    const addresses = table[host];
    if (!addresses) throw Object.assign(new Error(`getaddrinfo ENOTFOUND ${host}`), { code: 'ENOTFOUND' });
    return addresses.map((address) => ({ address, family: address.includes(':') ? 6 : 4 }));
  };
  return { resolve, calls };
}

async function app(t: Test, port: number, resolve: (host: string) => Promise<ResolvedAddress[]>) {
  const test = await buildAuthApp(
    [
      {
        iss: ALLOWED,
        jwks: jwksOf(key),
        // The loopback test server, allowed explicitly: its base URL and the loopback network.
        fhirServers: [`http://127.0.0.1:${port}/fhir`, `fhir.loopback.example:${port}`],
        fhirAllowedNetworks: ['127.0.0.0/8'],
      },
      {
        iss: NO_NETWORKS,
        jwks: jwksOf(key),
        // Listed, but in private or special ranges this entry does not allow.
        fhirServers: [
          `http://127.0.0.1:${port}/fhir`,
          'https://10.0.0.7/fhir',
          'http://169.254.169.254',
          'https://[fd00::1]/fhir',
          `fhir.internal.example:${port}`,
          'metadata.google.internal',
        ],
      },
      { iss: ELSEWHERE, jwks: jwksOf(key), fhirServers: ['https://fhir.elsewhere.example.org/r4'] },
    ],
    // http to a name other than loopback is only for this test's listener (behind a resolved name).
    { fhirServerAllowHttp: true, fhirFetchTimeoutMs: 1500 },
    { resolveHost: resolve },
  );
  t.teardown(() => test.app.close());
  return test;
}

async function call(test: AuthTestApp, iss: string, fhirServer: string): Promise<LightMyRequestResponse> {
  const payload: HookRequest = patientView(MODEL_KEYS_ABSENT, {
    fhirServer,
    fhirAuthorization: {
      access_token: TOKEN,
      token_type: 'Bearer',
      expires_in: 300,
      scope: 'patient/Observation.read',
      subject: 'explainable-cds',
    },
  });
  return test.app.inject({
    method: 'POST',
    url: SERVICE,
    headers: bearer(await mint(key, { iss, aud: SERVICE })),
    payload,
  });
}

/** A 412 naming `lesions` and the reason, as an OperationOutcome. */
function refused(t: Test, res: LightMyRequestResponse, reason: string): void {
  t.equal(res.statusCode, 412, 'status 412');
  const body = res.json();
  assertConforms('OperationOutcome', body);
  t.equal(body.issue[0].details.coding[0].code, 'CDS_ERR_PREFETCH_UNAVAILABLE');
  t.same(body.issue[0].expression, ['prefetch.lesions']);
  t.equal(
    body.issue[0].diagnostics,
    `Required data could not be obtained for prefetch key(s): lesions (${reason})`,
  );
  t.notOk(res.body.includes(TOKEN), 'no token in the answer');
}

const NOT_ALLOWED = "fhirServer is not one of this client's allowed FHIR servers";
const FORBIDDEN = 'fhirServer resolves to an address this client may not reach';

t.test('the allowed loopback server, explicitly allowed, still works', async (t) => {
  const fhir = await listener(t);
  const dns = resolver({});
  const test = await app(t, fhir.port, dns.resolve);
  const res = await call(test, ALLOWED, `http://127.0.0.1:${fhir.port}/fhir`);
  t.equal(res.statusCode, 200, res.body);
  t.equal(fhir.connections(), 1, 'one connection, to the listener');
  t.same(dns.calls, [], 'an address literal is not resolved');
  t.notOk(test.logText().includes(TOKEN), 'the token is not logged');
});

t.test('a private-range fhirServer is refused without a connection', async (t) => {
  const fhir = await listener(t);
  const test = await app(t, fhir.port, resolver({}).resolve);
  // Listed for this issuer, but loopback is not one of its allowed networks.
  refused(t, await call(test, NO_NETWORKS, `http://127.0.0.1:${fhir.port}/fhir`), FORBIDDEN);
  for (const server of ['https://10.0.0.7/fhir', 'http://169.254.169.254', 'https://[fd00::1]/fhir']) {
    refused(t, await call(test, NO_NETWORKS, server), FORBIDDEN);
  }
  t.equal(fhir.connections(), 0, 'the listener saw no connection');
});

t.test('a fhirServer the issuer does not list is refused without a lookup or connection', async (t) => {
  const fhir = await listener(t);
  const dns = resolver({ 'fhir.loopback.example': ['127.0.0.1'] });
  const test = await app(t, fhir.port, dns.resolve);
  // Reachable, and in a network another issuer may use, but not listed for this one.
  refused(t, await call(test, ELSEWHERE, `http://127.0.0.1:${fhir.port}/fhir`), NOT_ALLOWED);
  refused(t, await call(test, ELSEWHERE, `http://fhir.loopback.example:${fhir.port}/fhir`), NOT_ALLOWED);
  // Listed for ALLOWED, but under another path, port or host.
  refused(t, await call(test, ALLOWED, `http://127.0.0.1:${fhir.port}/other`), NOT_ALLOWED);
  refused(t, await call(test, ALLOWED, `http://127.0.0.1:${fhir.port + 1}/fhir`), NOT_ALLOWED);
  refused(t, await call(test, ALLOWED, `http://localhost:${fhir.port}/fhir`), NOT_ALLOWED);
  refused(t, await call(test, ALLOWED, `http://127.0.0.1:${fhir.port}/fhir-admin`), NOT_ALLOWED);
  t.equal(fhir.connections(), 0, 'the listener saw no connection');
  t.same(dns.calls, [], 'nothing was resolved');
});

t.test('a host name resolving to a private address is refused without a connection', async (t) => {
  const fhir = await listener(t);
  const dns = resolver({
    'fhir.internal.example': ['127.0.0.1'],
    'metadata.google.internal': ['169.254.169.254'],
  });
  const test = await app(t, fhir.port, dns.resolve);
  refused(t, await call(test, NO_NETWORKS, `http://fhir.internal.example:${fhir.port}/fhir`), FORBIDDEN);
  refused(t, await call(test, NO_NETWORKS, 'https://metadata.google.internal/fhir'), FORBIDDEN);
  t.equal(fhir.connections(), 0, 'the listener saw no connection');
  t.same(dns.calls, ['fhir.internal.example'], 'a metadata host name is refused by name, unresolved');
});

t.test('the connection goes to the address that was checked (no DNS rebinding)', async (t) => {
  const fhir = await listener(t);
  // First answer: the allowed loopback address; any later one would be a private address elsewhere.
  let answers = 0;
  const calls: string[] = [];
  const test = await app(t, fhir.port, async (host) => {
    calls.push(host);
    answers += 1;
    return [{ address: answers === 1 ? '127.0.0.1' : '10.9.9.9', family: 4 }];
  });
  const res = await call(test, ALLOWED, `http://fhir.loopback.example:${fhir.port}/fhir`);
  t.equal(res.statusCode, 200, res.body);
  t.same(calls, ['fhir.loopback.example'], 'resolved once, by the egress check');
  t.equal(fhir.connections(), 1, 'connected to the checked address');
  t.same(fhir.hosts, [`fhir.loopback.example:${fhir.port}`], 'the request still names the host');
});

t.test('a name with one forbidden address among its answers is refused', async (t) => {
  const fhir = await listener(t);
  const dns = resolver({ 'fhir.loopback.example': ['127.0.0.1', '169.254.169.254'] });
  const test = await app(t, fhir.port, dns.resolve);
  refused(t, await call(test, ALLOWED, `http://fhir.loopback.example:${fhir.port}/fhir`), FORBIDDEN);
  t.equal(fhir.connections(), 0);
});

t.test('an unresolvable host is a category, not the resolver error', async (t) => {
  const fhir = await listener(t);
  const test = await app(t, fhir.port, resolver({}).resolve);
  const res = await call(test, ALLOWED, `http://fhir.loopback.example:${fhir.port}/fhir`);
  refused(t, res, 'the host name of fhirServer could not be resolved');
  t.notMatch(res.body, /ENOTFOUND/);
});

t.test('the 412 diagnostics hold no part of the remote answer', async (t) => {
  const fhir = await listener(t);
  fhir.mode('error');
  const test = await app(t, fhir.port, resolver({}).resolve);
  const res = await call(test, ALLOWED, `http://127.0.0.1:${fhir.port}/fhir`);
  refused(t, res, 'the FHIR server answered with an error status');
  t.equal(fhir.connections(), 1);
  t.notOk(res.body.includes('payroll'), 'no remote body');
  t.notMatch(res.body, /\b500\b/, 'no remote status');
  t.notOk(test.logText().includes('payroll'), 'nor in the logs');
});

t.test('an issuer entry with an invalid FHIR server or network stops start-up', async (t) => {
  for (const [entry, problem] of [
    [{ fhirServers: ['ftp://fhir.example.org'] }, /a FHIR base URL is http or https/],
    [{ fhirServers: ['https://fhir.example.org/r4?x=1'] }, /no query, fragment or credentials/],
    [{ fhirServers: ['fhir.example.org/r4'] }, /a host is given without path/],
    [{ fhirAllowedNetworks: ['10.0.0.0/33'] }, /not an address or CIDR network/],
    [{ fhirAllowedNetworks: ['intranet'] }, /not an address or CIDR network/],
  ] as const) {
    await t.rejects(
      buildAuthApp([{ iss: ALLOWED, jwks: jwksOf(key), ...entry }]),
      { message: problem },
      JSON.stringify(entry),
    );
  }
});

t.test(`no patient id in what the refusals log`, async (t) => {
  const fhir = await listener(t);
  const test = await app(t, fhir.port, resolver({}).resolve);
  await call(test, NO_NETWORKS, `http://127.0.0.1:${fhir.port}/fhir`);
  t.notOk(test.logText().includes(PATIENT_ID));
});
