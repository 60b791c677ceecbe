/**
 * The hardened edge: security headers on every answer, per-client rate limiting with a 429
 * OperationOutcome, socket timeouts, and HTTPS served directly from a key and certificate.
 */
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { request as httpRequest } from 'node:http';
import { request as httpsRequest } from 'node:https';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import type { TLSSocket } from 'node:tls';
import { join } from 'node:path';
import helmet from '@fastify/helmet';
import Fastify from 'fastify';
import t from 'tap';
import { loadConfig } from '../../src/config.js';
import {
  HEADERS_TIMEOUT_MS,
  HELMET_OPTIONS,
  KEEP_ALIVE_TIMEOUT_MS,
  recordHelmetHeaders,
} from '../../src/http/edge.js';
import { buildTestApp } from '../helpers/app.js';
import { lesion, patientView, searchset } from '../helpers/hook-request.js';
import { bearer, buildAuthApp, DISCOVERY, ISSUER, jwksOf, makeKey, mint, SERVICE } from '../helpers/jwt.js';

const key = await makeKey('ES384');
const OTHER = 'https://other-ehr.example.org';

t.test('security headers for a JSON API on answers, errors and refusals', async (t) => {
  const test = await buildAuthApp([{ iss: ISSUER, jwks: jwksOf(key) }]);
  t.teardown(() => test.app.close());
  const answers = [
    await test.app.inject({ method: 'GET', url: DISCOVERY, headers: bearer(await mint(key)) }),
    await test.app.inject({ method: 'GET', url: DISCOVERY }),
    await test.app.inject({ method: 'GET', url: '/nowhere' }),
  ];
  t.same(
    answers.map((r) => r.statusCode),
    [200, 401, 404],
  );
  for (const res of answers) {
    t.equal(res.headers['content-security-policy'], "default-src 'none';frame-ancestors 'none'");
    t.equal(res.headers['x-content-type-options'], 'nosniff');
    t.equal(res.headers['x-frame-options'], 'DENY');
    t.equal(res.headers['referrer-policy'], 'no-referrer');
    t.match(res.headers['strict-transport-security'], /^max-age=\d+/);
    t.notOk('x-powered-by' in res.headers);
  }
});

/** The headers an answer carries, by name in insertion order (light-my-request keeps Node's response). */
const headerList = (res: { raw: { res: { getHeaderNames(): string[]; getHeader(n: string): unknown } } }) =>
  res.raw.res.getHeaderNames().map((name) => [name, res.raw.res.getHeader(name)] as const);

t.test('every route carries exactly the headers @fastify/helmet sets, in its order', async (t) => {
  // The reference: the plugin itself, with the same settings, on a bare Fastify.
  const bare = Fastify();
  await bare.register(helmet, HELMET_OPTIONS);
  bare.get('/', async () => ({}));
  t.teardown(() => bare.close());
  const reference = headerList(await bare.inject({ method: 'GET', url: '/' }));
  const helmetNames = new Set(recordHelmetHeaders(HELMET_OPTIONS).map(([name]) => name.toLowerCase()));
  const expected = reference.filter(([name]) => helmetNames.has(name));
  t.same(
    expected.map(([name]) => name),
    [
      'content-security-policy',
      'cross-origin-opener-policy',
      'cross-origin-resource-policy',
      'origin-agent-cluster',
      'referrer-policy',
      'strict-transport-security',
      'x-content-type-options',
      'x-dns-prefetch-control',
      'x-download-options',
      'x-frame-options',
      'x-permitted-cross-domain-policies',
      'x-xss-protection',
    ],
  );

  const test = await buildAuthApp([{ iss: ISSUER, jwks: jwksOf(key) }], { rateLimitMax: 12 });
  t.teardown(() => test.app.close());
  const call = async (method: 'GET' | 'POST' | 'OPTIONS', url: string, auth: boolean, body?: unknown) =>
    test.app.inject({
      method,
      url,
      headers: {
        ...(auth ? bearer(await mint(key, { aud: url })) : {}),
        ...(method === 'OPTIONS'
          ? { origin: 'https://sandbox.cds-hooks.org', 'access-control-request-method': 'POST' }
          : {}),
      },
      ...(body === undefined ? {} : { payload: body as Record<string, unknown> }),
    });
  const exam = lesion({});
  const hook = patientView({ lesions: searchset([exam]) });
  const answers = {
    discovery: await call('GET', DISCOVERY, true),
    unauthenticated: await call('GET', DISCOVERY, false),
    serviceCall: await call('POST', SERVICE, true, hook),
    invalidCall: await call('POST', SERVICE, true, { hook: 'patient-view' }),
    unknownService: await call('POST', `${DISCOVERY}/nope`, true, hook),
    feedback: await call('POST', `${SERVICE}/feedback`, true, { feedback: [] }),
    preflight: await call('OPTIONS', SERVICE, false),
    live: await call('GET', '/health/live', false),
    ready: await call('GET', '/health/ready', false),
    metrics: await call('GET', '/metrics', false),
    reload: await call('POST', '/admin/reload', false),
    notFound: await call('GET', '/nowhere', false),
    unknownUnderCds: await call('GET', `${DISCOVERY}/a/b/c`, true),
  };
  let limited = await call('GET', DISCOVERY, true);
  for (let i = 0; i < 20 && limited.statusCode !== 429; i += 1) limited = await call('GET', DISCOVERY, true);
  const all = { ...answers, rateLimited: limited };
  t.same(
    Object.values(all).map((r) => r.statusCode),
    [200, 401, 200, 400, 404, 400, 204, 200, 200, 200, 404, 404, 404, 429],
  );
  for (const [route, res] of Object.entries(all)) {
    t.same(
      headerList(res).filter(([name]) => helmetNames.has(name)),
      // The CORS plugin, registered before, answers a preflight itself: no security headers, as before.
      route === 'preflight' ? [] : expected,
      route,
    );
  }
});

t.test('over the limit a client gets 429 with an OperationOutcome and Retry-After', async (t) => {
  const { app } = await buildTestApp({ rateLimitMax: 2, rateLimitWindowMs: 60_000 });
  t.teardown(() => app.close());
  const call = (remoteAddress: string) => app.inject({ method: 'GET', url: DISCOVERY, remoteAddress });
  const [a, b, c] = [await call('10.0.0.1'), await call('10.0.0.1'), await call('10.0.0.1')];
  t.same([a.statusCode, b.statusCode, c.statusCode], [200, 200, 429]);
  t.equal(b.headers['x-ratelimit-remaining'], '0');
  t.equal(c.headers['retry-after'], '60');
  t.equal(c.headers['content-type'], 'application/fhir+json; charset=utf-8');
  const issue = c.json().issue[0];
  t.equal(issue.code, 'throttled');
  t.equal(issue.details.coding[0].code, 'CDS_ERR_RATE_LIMITED');
  t.equal(issue.diagnostics, 'Too many requests from this client; retry in 60 s');
  t.equal((await call('10.0.0.2')).statusCode, 200, 'another address has its own budget');
  const preflight = await app.inject({
    method: 'OPTIONS',
    url: DISCOVERY,
    remoteAddress: '10.0.0.1',
    headers: { origin: 'https://sandbox.cds-hooks.org', 'access-control-request-method': 'GET' },
  });
  t.equal(preflight.statusCode, 204, 'preflights are not limited');
});

t.test('with authentication, the limit is per issuer, and refused tokens do not count', async (t) => {
  const test = await buildAuthApp(
    [
      { iss: ISSUER, jwks: jwksOf(key) },
      { iss: OTHER, jwks: jwksOf(key) },
    ],
    { rateLimitMax: 2 },
  );
  t.teardown(() => test.app.close());
  const call = async (iss: string, remoteAddress = '10.0.0.1', aud?: string) =>
    (
      await test.app.inject({
        method: 'GET',
        url: DISCOVERY,
        remoteAddress,
        headers: bearer(await mint(key, { iss, ...(aud ? { aud } : {}) })),
      })
    ).statusCode;
  t.same([await call(ISSUER, '10.0.0.1', '/wrong'), await call(ISSUER, '10.0.0.1', '/wrong')], [401, 401]);
  t.same([await call(ISSUER), await call(ISSUER, '10.0.0.9'), await call(ISSUER)], [200, 200, 429]);
  t.same([await call(OTHER), await call(OTHER)], [200, 200], 'same address, other issuer: own budget');
});

t.test('timeouts: headers within 10 s, idle keep-alive beyond a load balancer’s 60 s', async (t) => {
  const { app } = await buildTestApp();
  t.teardown(() => app.close());
  t.equal(app.server.headersTimeout, HEADERS_TIMEOUT_MS);
  t.equal(HEADERS_TIMEOUT_MS, 10_000);
  t.equal(app.server.keepAliveTimeout, KEEP_ALIVE_TIMEOUT_MS);
  t.equal(app.server.requestTimeout, 30_000);
  t.ok(app.server.headersTimeout < app.server.requestTimeout);
});

t.test('TLS key and certificate go together', async (t) => {
  t.throws(() => loadConfig({ CDS_TLS_KEY_FILE: 'key.pem' }), {
    message:
      'Invalid configuration: tlsKeyFile (CDS_TLS_KEY_FILE) and tlsCertFile (CDS_TLS_CERT_FILE) go together',
  });
  t.throws(() => loadConfig({ CDS_TLS_CERT_FILE: 'cert.pem' }), { message: /go together/ });
  await t.rejects(
    buildTestApp({ tlsKeyFile: '/nonexistent/key.pem', tlsCertFile: '/nonexistent/cert.pem' }),
    {
      message: /^Cannot read the TLS key file \/nonexistent\/key\.pem: ENOENT/,
    },
  );
});

t.test('with a key and certificate the server speaks HTTPS, and only HTTPS', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'cds-tls-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  const keyFile = join(dir, 'key.pem');
  const certFile = join(dir, 'cert.pem');
  execFileSync(
    'openssl',
    [
      ...['req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes'],
      ...['-keyout', keyFile, '-out', certFile, '-days', '1', '-subj', '/CN=localhost'],
      ...['-addext', 'subjectAltName=IP:127.0.0.1,DNS:localhost'],
    ],
    { stdio: 'ignore' },
  );
  const { app } = await buildTestApp({ tlsKeyFile: keyFile, tlsCertFile: certFile });
  t.teardown(() => app.close());
  await app.listen({ host: '127.0.0.1', port: 0 });
  const { port } = app.server.address() as AddressInfo;
  const ca = readFileSync(certFile);

  const secure = await new Promise<{ status: number; body: string; protocol: string }>((resolve, reject) => {
    const req = httpsRequest({ host: '127.0.0.1', port, path: DISCOVERY, ca }, (res) => {
      const protocol = (res.socket as TLSSocket).getProtocol() ?? '';
      let body = '';
      res.on('data', (chunk: Buffer) => (body += chunk));
      res.on('end', () => resolve({ status: res.statusCode!, body, protocol }));
    });
    req.on('error', reject);
    req.end();
  });
  t.equal(secure.status, 200);
  t.ok(Array.isArray(JSON.parse(secure.body).services));
  t.match(secure.protocol, /^TLSv1\.[23]$/);

  const untrusted = await new Promise<string>((resolve) => {
    const req = httpsRequest({ host: '127.0.0.1', port, path: DISCOVERY }, () => resolve('answered'));
    req.on('error', (error: NodeJS.ErrnoException) => resolve(String(error.code)));
    req.end();
  });
  t.equal(untrusted, 'DEPTH_ZERO_SELF_SIGNED_CERT', 'a client that does not trust the certificate stops');

  const plain = await new Promise<string>((resolve) => {
    const req = httpRequest({ host: '127.0.0.1', port, path: DISCOVERY }, (res) =>
      resolve(`status ${res.statusCode}`),
    );
    req.on('error', (error: NodeJS.ErrnoException) => resolve(String(error.code)));
    req.end();
  });
  t.notMatch(plain, /^status 200/, `plain HTTP gets no answer (${plain})`);
});
