/**
 * The integrator walkthrough driven the way the public CDS Hooks sandbox client drives it, from a page
 * in a real headless Chromium: the page (an "EHR" on its own loopback origin) reads discovery from the
 * service, fetches each prefetch template from the local FHIR sandbox with `POST <Type>/_search` and a
 * form body (a bearer token makes every such request need a CORS preflight), then calls the service with
 * the prefetch it gathered. The cards match those the service produces when it fetches from the same
 * sandbox itself. A page from an origin the sandbox does not list cannot read it. Everything stays on
 * 127.0.0.1. Needs /usr/bin/chromium: skipped with a message without it, except under CI=true.
 */
import { existsSync } from 'node:fs';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import type { Bundle } from 'fhir/r4.js';
import { chromium } from 'playwright-core';
import t from 'tap';
import { loadGenerated } from '../../../tools/sandbox/load.js';
import { startFhirServer } from '../../../tools/sandbox/server.js';
import { buildTestApp, NOW } from '../../helpers/app.js';

const CHROMIUM = '/usr/bin/chromium';
const TOKEN = 'sandbox-token';

/** A loopback page server: the "EHR" whose origin the browser client runs in. */
async function pageServer(): Promise<{ origin: string; server: Server }> {
  const server = createServer((_req, res) => {
    res.writeHead(200, { 'Content-Type': 'text/html; charset=utf-8' });
    res.end('<!doctype html><title>EHR</title><h1>EHR</h1>');
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return { origin: `http://127.0.0.1:${(server.address() as AddressInfo).port}`, server };
}

interface WalkResult {
  discovery: number;
  patient: number;
  searches: { key: string; status: number; total: number | undefined }[];
  call: number;
  cards: { summary: string; indicator: string; detail?: string }[];
}

if (!existsSync(CHROMIUM)) {
  if (process.env.CI === 'true') t.fail(`${CHROMIUM} is missing: the browser test cannot run under CI`);
  else {
    const reason = `${CHROMIUM} is not installed (apt-get install chromium)`;
    console.error(`browser test skipped: ${reason}`);
    t.test('a browser client drives the FHIR sandbox', { skip: reason }, async () => {});
  }
} else {
  t.test('a browser client: CORS preflight, POST _search, hook call with the prefetch', async (t) => {
    const ehr = await pageServer();
    const stranger = await pageServer();
    t.teardown(() => {
      ehr.server.close();
      stranger.server.close();
    });
    const sandbox = await startFhirServer({
      resources: loadGenerated(20, 42, NOW).resources,
      token: TOKEN,
      corsOrigins: [ehr.origin],
    });
    t.teardown(() => sandbox.close());
    const { app } = await buildTestApp();
    t.teardown(() => app.close());
    await app.listen({ host: '127.0.0.1', port: 0 });
    const cds = `http://127.0.0.1:${(app.server.address() as AddressInfo).port}`;

    // A patient with knee OA, found the way an integrator would: the service fetching from the sandbox.
    const patients = (await (
      await fetch(`${sandbox.url}/Patient?_sort=_id`, { headers: { authorization: `Bearer ${TOKEN}` } })
    ).json()) as Bundle;
    let patientId: string | undefined;
    let expected: WalkResult['cards'] = [];
    for (const entry of patients.entry ?? []) {
      const res = await app.inject({
        method: 'POST',
        url: '/cds-services/knee-oa-progression',
        payload: {
          hook: 'patient-view',
          hookInstance: `server-${entry.resource!.id}`,
          context: { userId: 'Practitioner/prac-1', patientId: entry.resource!.id },
          fhirServer: sandbox.url,
          fhirAuthorization: {
            access_token: TOKEN,
            token_type: 'Bearer',
            expires_in: 300,
            scope: 'patient/*.read',
            subject: 'cds-service',
          },
        },
      });
      t.equal(res.statusCode, 200);
      const cards = res.json().cards as WalkResult['cards'];
      if (cards.length > 0) {
        patientId = entry.resource!.id;
        expected = cards.map(({ summary, indicator, detail }) => ({ summary, indicator, detail }));
        break;
      }
    }
    t.ok(patientId, 'a generated patient gets a knee OA card');
    const before = sandbox.requests.length;

    const browser = await chromium.launch({
      executablePath: CHROMIUM,
      args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-background-networking'],
    });
    t.teardown(() => browser.close());
    const page = await browser.newPage();
    const errors: string[] = [];
    page.on('pageerror', (e) => errors.push(e.message));
    await page.goto(`${ehr.origin}/`);

    const result = await page.evaluate(
      async ({ cds, fhir, token, patientId }): Promise<WalkResult> => {
        const discoveryRes = await fetch(`${cds}/cds-services`);
        const discovery = (await discoveryRes.json()) as {
          services: { id: string; prefetch?: Record<string, string> }[];
        };
        const service = discovery.services.find((s) => s.id === 'knee-oa-progression')!;
        const headers = { Accept: 'application/json+fhir', Authorization: `Bearer ${token}` };
        const patientRes = await fetch(`${fhir}/Patient/${patientId}`, { headers });
        const prefetch: Record<string, unknown> = {};
        const searches: WalkResult['searches'] = [];
        for (const [key, template] of Object.entries(service.prefetch ?? {})) {
          const query = template.replaceAll('{{context.patientId}}', patientId);
          if (!query.includes('?')) {
            prefetch[key] = await (await fetch(`${fhir}/${query}`, { headers })).json();
            continue;
          }
          const [type, params] = query.split('?') as [string, string];
          const res = await fetch(`${fhir}/${type}/_search`, {
            method: 'POST',
            headers: { ...headers, 'Content-Type': 'application/x-www-form-urlencoded' },
            body: new URLSearchParams(params).toString(),
          });
          const bundle = (await res.json()) as { total?: number };
          searches.push({ key, status: res.status, total: bundle.total });
          prefetch[key] = bundle;
        }
        const callRes = await fetch(`${cds}/cds-services/${service.id}`, {
          method: 'POST',
          headers: { 'Content-Type': 'application/json', Accept: 'application/json' },
          body: JSON.stringify({
            hook: 'patient-view',
            hookInstance: `browser-${patientId}`,
            context: { userId: 'Practitioner/prac-1', patientId },
            prefetch,
          }),
        });
        const body = (await callRes.json()) as { cards: WalkResult['cards'] };
        return {
          discovery: discoveryRes.status,
          patient: patientRes.status,
          searches,
          call: callRes.status,
          cards: body.cards.map(({ summary, indicator, detail }) => ({ summary, indicator, detail })),
        };
      },
      { cds, fhir: sandbox.url, token: TOKEN, patientId: patientId! },
    );

    t.equal(result.discovery, 200);
    t.equal(result.patient, 200);
    t.ok(result.searches.length >= 3, `${result.searches.length} prefetch searches`);
    for (const search of result.searches) t.equal(search.status, 200, `POST _search for ${search.key}`);
    t.equal(result.call, 200);
    t.same(result.cards, expected, 'the same cards as when the service fetches from the sandbox');

    const seen = sandbox.requests.slice(before);
    const preflights = seen.filter((r) => r.method === 'OPTIONS');
    const posts = seen.filter((r) => r.method === 'POST');
    t.ok(preflights.length >= 1, `the browser asked first (${preflights.length} preflights)`);
    t.ok(
      preflights.every((r) => r.origin === ehr.origin && r.authorization === undefined),
      'preflights carry the origin and no token',
    );
    t.equal(posts.length, result.searches.length, 'every search was a POST _search');
    t.ok(
      posts.every(
        (r) =>
          r.path.endsWith('/_search') && r.body?.includes(`patient=${patientId}`) && r.origin === ehr.origin,
      ),
      'with the parameters in a form body',
    );
    t.same(errors, []);

    // A page from an origin the sandbox does not list cannot read it (the browser enforces CORS).
    const other = await browser.newPage();
    await other.goto(`${stranger.origin}/`);
    const blocked = await other.evaluate(
      async ({ fhir, token, patientId }) => {
        try {
          await fetch(`${fhir}/Condition/_search`, {
            method: 'POST',
            headers: {
              Authorization: `Bearer ${token}`,
              'Content-Type': 'application/x-www-form-urlencoded',
            },
            body: `patient=${patientId}`,
          });
          return 'read';
        } catch (error) {
          return (error as Error).name;
        }
      },
      { fhir: sandbox.url, token: TOKEN, patientId: patientId! },
    );
    t.equal(blocked, 'TypeError', 'the fetch fails in the page');
    const last = sandbox.requests.at(-1)!;
    t.same([last.method, last.origin], ['OPTIONS', stranger.origin], 'only the refused preflight came');
  });
}
