/**
 * Validate mode end to end: a terminology server that refuses to expand every value set as too costly
 * answers `$validate-code` for the codes of each call before the rules run. A drug code the bundled
 * file does not list, but the server validates as an oral NSAID, fires the NSAID card; the answers are
 * cached (a second call asks nothing); a server that hangs costs the call the validate deadline only,
 * the bundled expansion answering, warned (no patient data) and counted. No patient identifier reaches
 * the server.
 */
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import type { Resource } from 'fhir/r4.js';
import t, { type Test } from 'tap';
import type { Card } from '../../src/cds-hooks.js';
import { SYSTEM } from '../../src/codes.js';
import { loadValueSets } from '../../src/services/value-sets.js';
import { ATC, RXNORM } from '../../src/terminology/terminology.js';
import { orderPrefetch, orderSignRequest } from '../../tools/synthetic/orders.js';
import { buildTestApp } from '../helpers/app.js';

const BUNDLED = loadValueSets('fhir-profiles');
const ORAL_NSAID = 'https://explainable-cds.example.org/fhir/ValueSet/oral-nsaid';
/** A fictional RxNorm oral NSAID product, newer than the bundled file: only the server knows it. */
const NEW_PRODUCT = '99000001';
const PID = 'validate-app-patient';
const patient = {
  resourceType: 'Patient',
  id: PID,
  identifier: [{ system: 'urn:oid:1.2.36.146.595.217.0.1', value: 'MRN-5150' }],
  gender: 'male',
  birthDate: '1966-01-15',
} as Resource;
const egfr = {
  resourceType: 'Observation',
  id: 'egfr-1',
  status: 'final',
  code: { coding: [{ system: SYSTEM.loinc, code: '33914-3' }] },
  subject: { reference: `Patient/${PID}` },
  effectiveDateTime: '2026-11-01',
  valueQuantity: { value: 25, unit: 'mL/min/{1.73_m2}', system: SYSTEM.ucum, code: 'mL/min/{1.73_m2}' },
} as Resource;
const draft = (coding: { system: string; code: string }) =>
  ({
    resourceType: 'MedicationRequest',
    id: 'draft-1',
    status: 'draft',
    intent: 'order',
    subject: { reference: `Patient/${PID}` },
    medicationCodeableConcept: { coding: [coding], text: 'NSAID tablet' },
  }) as Resource;

interface Recorded {
  url: string;
  body: string;
}

/** A terminology server that expands nothing (too costly) and validates through `validate`. */
async function fakeServer(
  t: Test,
  validate: (res: ServerResponse, params: Record<string, string>) => void,
): Promise<{ base: string; requests: Recorded[] }> {
  const requests: Recorded[] = [];
  const server = createServer((req: IncomingMessage, res: ServerResponse) => {
    let body = '';
    req.on('data', (chunk: Buffer) => (body += chunk.toString()));
    req.on('end', () => {
      requests.push({ url: decodeURIComponent(req.url ?? ''), body });
      res.setHeader('content-type', 'application/fhir+json');
      if (req.url?.includes('/ValueSet/$expand')) {
        res.statusCode = 422;
        res.end(
          JSON.stringify({
            resourceType: 'OperationOutcome',
            issue: [{ severity: 'error', code: 'too-costly', diagnostics: 'too many codes' }],
          }),
        );
        return;
      }
      const parameters = (JSON.parse(body) as { parameter: Record<string, string>[] }).parameter;
      validate(res, Object.fromEntries(parameters.map((p) => [p.name, p.valueUri ?? p.valueCode ?? ''])));
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  t.teardown(
    () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  );
  return { base: `http://127.0.0.1:${(server.address() as AddressInfo).port}/fhir`, requests };
}

/** As the bundled definitions say, plus NEW_PRODUCT as an oral NSAID. */
function validateLikeBundled(res: ServerResponse, { url, system, code }: Record<string, string>): void {
  const result =
    (url === ORAL_NSAID && system === RXNORM && code === NEW_PRODUCT) ||
    BUNDLED.contains(url!, system!, code!);
  res.end(
    JSON.stringify({ resourceType: 'Parameters', parameter: [{ name: 'result', valueBoolean: result }] }),
  );
}

async function sign(
  app: Awaited<ReturnType<typeof buildTestApp>>['app'],
  coding: { system: string; code: string },
): Promise<{ cards: Card[]; ms: number }> {
  const started = performance.now();
  const res = await app.inject({
    method: 'POST',
    url: '/cds-services/nsaid-safety-order-sign',
    payload: orderSignRequest({
      patientId: PID,
      drafts: [draft(coding)],
      prefetch: orderPrefetch([patient, egfr], PID),
    }),
  });
  const ms = performance.now() - started;
  if (res.statusCode !== 200) throw new Error(`${res.statusCode}: ${res.body}`);
  return { cards: res.json().cards as Card[], ms };
}

const metric = (text: string, name: string) => Number(new RegExp(`^${name} (\\S+)$`, 'm').exec(text)?.[1]);

t.test('a code only the server knows fires the rule; a second call asks nothing', async (t) => {
  const { base, requests } = await fakeServer(t, validateLikeBundled);
  const { app, logText } = await buildTestApp({ terminologyUrl: base, terminologyTimeoutMs: 10_000 });
  t.teardown(() => app.close());
  t.notOk(BUNDLED.contains('oral-nsaid', RXNORM, NEW_PRODUCT), 'the bundled file does not list it');

  const first = await sign(app, { system: RXNORM, code: NEW_PRODUCT });
  t.equal(first.cards.length, 1, 'the server validates it as an oral NSAID');
  t.equal(first.cards[0]!.indicator, 'critical', 'eGFR 25 with an oral NSAID');
  const asked = requests.filter((r) => r.url.endsWith('/ValueSet/$validate-code'));
  t.ok(
    asked.some((r) => r.body.includes(`"valueCode":"${NEW_PRODUCT}"`) && r.body.includes(ORAL_NSAID)),
    'the new product was asked about for oral-nsaid',
  );
  t.ok(
    asked.some((r) => r.body.includes('"valueCode":"33914-3"') && r.body.includes('/ValueSet/egfr')),
    'the eGFR code for the egfr value set',
  );
  const sent = requests.map((r) => r.url + r.body).join('\n');
  for (const secret of [PID, 'MRN-5150', 'egfr-1', 'draft-1', '1966-01-15']) {
    t.notOk(sent.includes(secret), `${secret} never reaches the terminology server`);
  }
  t.notOk(
    asked.some((r) => r.body.includes(SYSTEM.ucum)),
    'no value set includes UCUM: not asked',
  );

  let metrics = (await app.inject({ method: 'GET', url: '/metrics' })).body;
  t.equal(metric(metrics, 'cds_terminology_validating'), BUNDLED.ids.length);
  t.equal(metric(metrics, 'cds_terminology_validations'), asked.length);
  t.equal(metric(metrics, 'cds_terminology_fallbacks'), 0, 'every lookup answered by the server');
  t.notMatch(logText(), /did not validate these codes/);

  requests.length = 0;
  const second = await sign(app, { system: RXNORM, code: NEW_PRODUCT });
  t.equal(second.cards.length, 1);
  t.same(requests, [], 'every answer cached: the second call asks the server nothing');
  metrics = (await app.inject({ method: 'GET', url: '/metrics' })).body;
  t.equal(metric(metrics, 'cds_terminology_fallbacks'), 0);
});

t.test('a server that hangs costs the deadline; the bundled expansion answers, warned', async (t) => {
  // $validate-code never answers (until the server closes).
  const { base } = await fakeServer(t, () => undefined);
  const { app, logs, logText } = await buildTestApp({
    terminologyUrl: base,
    // Without the call's deadline, the call would wait this long.
    terminologyTimeoutMs: 20_000,
    terminologyValidateMs: 200,
  });
  t.teardown(() => app.close());
  const { cards, ms } = await sign(app, { system: ATC, code: 'M01AE03' });
  t.ok(
    ms >= 200 && ms < 5000,
    `answered after the 200 ms deadline, not the 20 s timeout (${ms.toFixed(0)} ms)`,
  );
  t.equal(cards.length, 1, 'the bundled oral-NSAID set has ketoprofen');
  t.equal(cards[0]!.indicator, 'critical');
  const warned = logs().filter(
    (l) =>
      l.msg === 'terminology server did not validate these codes in time: the bundled expansion answers them',
  );
  t.match(
    warned.find((w) => w.valueSet === ORAL_NSAID),
    { reason: /^\d+ codes?: no answer within 200 ms$/ },
  );
  t.ok(warned.length >= 2, 'one warning per value set of the call (oral-nsaid, egfr, …)');
  t.notMatch(logText(), new RegExp(`${PID}|MRN-5150`), 'no patient data in the log');
  const metrics = (await app.inject({ method: 'GET', url: '/metrics' })).body;
  t.ok(metric(metrics, 'cds_terminology_fallbacks') >= 2, 'the bundled answers are counted');
});
