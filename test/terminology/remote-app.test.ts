/**
 * CDS_TERMINOLOGY_URL end to end: the app expands its value sets on a loopback fake terminology server
 * at start-up and the rules read those expansions; with the server unreachable, start-up still
 * succeeds, the bundled expansions answer, a warning is logged (no patient data) and /metrics counts it.
 */
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import type { Resource } from 'fhir/r4.js';
import t from 'tap';
import type { Card } from '../../src/cds-hooks.js';
import { SYSTEM } from '../../src/codes.js';
import { ATC } from '../../src/terminology/terminology.js';
import { orderPrefetch, orderSignRequest } from '../../tools/synthetic/orders.js';
import { buildTestApp } from '../helpers/app.js';

const PID = 'term-patient';
const patient = { resourceType: 'Patient', id: PID, gender: 'male', birthDate: '1966-01-15' } as Resource;
const egfr = {
  resourceType: 'Observation',
  id: 'egfr-1',
  status: 'final',
  code: { coding: [{ system: SYSTEM.loinc, code: '33914-3' }] },
  subject: { reference: `Patient/${PID}` },
  effectiveDateTime: '2026-11-01',
  valueQuantity: { value: 25, unit: 'mL/min/{1.73_m2}', system: SYSTEM.ucum, code: 'mL/min/{1.73_m2}' },
} as Resource;
const ketoprofen = {
  resourceType: 'MedicationRequest',
  id: 'draft-1',
  status: 'draft',
  intent: 'order',
  subject: { reference: `Patient/${PID}` },
  medicationCodeableConcept: {
    coding: [{ system: ATC, code: 'M01AE03', display: 'ketoprofen' }],
    text: 'ketoprofen',
  },
} as Resource;

async function sign(app: Awaited<ReturnType<typeof buildTestApp>>['app']): Promise<Card[]> {
  const res = await app.inject({
    method: 'POST',
    url: '/cds-services/nsaid-safety-order-sign',
    payload: orderSignRequest({
      patientId: PID,
      drafts: [ketoprofen],
      prefetch: orderPrefetch([patient, egfr], PID),
    }),
  });
  if (res.statusCode !== 200) throw new Error(`${res.statusCode}: ${res.body}`);
  return res.json().cards as Card[];
}

t.test('the server expansions answer: its oral-NSAID set without ketoprofen, no card for it', async (t) => {
  const asked: string[] = [];
  const server = createServer((req, res) => {
    asked.push(decodeURIComponent(req.url ?? ''));
    const url = new URL(req.url ?? '', 'http://x').searchParams.get('url') ?? '';
    // The site's oral NSAIDs: ibuprofen only; every other value set expanded empty.
    const contains = url.endsWith('/oral-nsaid') ? [{ system: ATC, code: 'M01AE01' }] : [];
    res.setHeader('content-type', 'application/fhir+json');
    res.end(JSON.stringify({ resourceType: 'ValueSet', url, expansion: { contains } }));
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  t.teardown(() => new Promise<void>((resolve) => server.close(() => resolve())));
  const base = `http://127.0.0.1:${(server.address() as AddressInfo).port}/fhir`;
  const { app } = await buildTestApp({ terminologyUrl: base, terminologyTimeoutMs: 10_000 });
  t.teardown(() => app.close());
  t.ok(
    asked.some((a) =>
      a.endsWith('/ValueSet/$expand?url=https://explainable-cds.example.org/fhir/ValueSet/oral-nsaid'),
    ),
  );
  t.notOk(
    asked.some((a) => a.includes(PID)),
    'no patient data goes to the terminology server',
  );
  t.same(await sign(app), [], 'ketoprofen is not in the server’s oral-NSAID expansion');
  const metrics = (await app.inject({ method: 'GET', url: '/metrics' })).body;
  t.match(metrics, /^cds_terminology_fallbacks 0$/m);
  t.match(metrics, /^cds_terminology_expansions [1-9]\d*$/m);
});

t.test(
  'the server unreachable: start-up succeeds, the bundled expansions answer, warned and counted',
  async (t) => {
    // A port nothing listens on (a server opened and closed).
    const closed = createServer();
    await new Promise<void>((resolve) => closed.listen(0, '127.0.0.1', resolve));
    const port = (closed.address() as AddressInfo).port;
    await new Promise<void>((resolve) => closed.close(() => resolve()));
    const { app, logText } = await buildTestApp({ terminologyUrl: `http://127.0.0.1:${port}/fhir` });
    t.teardown(() => app.close());
    const cards = await sign(app);
    t.equal(cards.length, 1);
    t.equal(cards[0]!.indicator, 'critical', 'the bundled oral-NSAID set has ketoprofen: eGFR 25 fires');
    t.match(logText(), /terminology server unavailable for this value set: the bundled expansion is used/);
    t.notMatch(logText(), new RegExp(PID));
    const metrics = (await app.inject({ method: 'GET', url: '/metrics' })).body;
    t.match(metrics, /^cds_terminology_fallbacks [1-9]\d*$/m);
    t.match(metrics, /^cds_terminology_failures [1-9]\d*$/m);
  },
);
