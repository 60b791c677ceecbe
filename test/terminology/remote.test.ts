/**
 * The optional terminology server (src/terminology/remote.ts) against a loopback fake FHIR terminology
 * server: its expansions answer while fresh; a timeout, an HTTP error or an expired expansion falls back
 * to the bundled expansions with a warning and a count; the server only ever receives value-set URLs.
 */
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import t from 'tap';
import { loadValueSets } from '../../src/services/value-sets.js';
import { ATC } from '../../src/terminology/terminology.js';
import { createRemoteTerminology } from '../../src/terminology/remote.js';

const BUNDLED = loadValueSets('fhir-profiles');
const ORAL_NSAID = 'https://explainable-cds.example.org/fhir/ValueSet/oral-nsaid';

/** The fake server's behaviour, changed by each test. */
let behaviour: (req: IncomingMessage, res: ServerResponse) => void;
const requests: string[] = [];
const server = createServer((req, res) => {
  requests.push(req.url ?? '');
  behaviour(req, res);
});
await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
t.teardown(() => new Promise<void>((resolve) => server.close(() => resolve())));
const BASE = `http://127.0.0.1:${(server.address() as AddressInfo).port}/fhir/`;

/** Expands every value set to ibuprofen (ATC M01AE01) only: unlike the bundled oral-nsaid set. */
function expandToIbuprofen(req: IncomingMessage, res: ServerResponse): void {
  const url = new URL(req.url ?? '', 'http://x').searchParams.get('url');
  res.setHeader('content-type', 'application/fhir+json');
  res.end(
    JSON.stringify({
      resourceType: 'ValueSet',
      url,
      expansion: {
        timestamp: '2026-11-22T09:00:00Z',
        contains: [{ system: ATC, code: 'M01A', contains: [{ system: ATC, code: 'M01AE01' }] }],
      },
    }),
  );
}

function setup(timeoutMs = 5000) {
  const clock = { now: 1_000_000 };
  const warnings: { valueSet: string; reason: string }[] = [];
  const remote = createRemoteTerminology({
    baseUrl: BASE,
    timeoutMs,
    ttlMs: 60 * 60_000,
    warn: (entry) => warnings.push(entry),
    now: () => clock.now,
  });
  return { remote, valueSets: remote.wrap(BUNDLED), warnings, clock };
}

t.test('a fresh expansion from the server answers instead of the bundled one', async (t) => {
  behaviour = expandToIbuprofen;
  requests.length = 0;
  const { remote, valueSets, warnings } = setup();
  t.ok(BUNDLED.contains('oral-nsaid', ATC, 'M01AE03'), 'bundled: ketoprofen is an oral NSAID');
  await remote.refresh();
  t.ok(valueSets.contains('oral-nsaid', ATC, 'M01AE01'), 'nested contains are read');
  t.notOk(valueSets.contains('oral-nsaid', ATC, 'M01AE03'), 'the server expansion answers');
  t.notOk(valueSets.contains(ORAL_NSAID, ATC, 'M01AE03'), 'by canonical URL too');
  t.same(warnings, []);
  t.equal(remote.stats().expansions, BUNDLED.ids.length, 'one expansion per value set');
  t.equal(remote.stats().fallbacks, 0);
  t.ok(
    requests.includes(`/fhir/ValueSet/$expand?url=${encodeURIComponent(ORAL_NSAID)}`),
    'GET <base>/ValueSet/$expand?url=<canonical URL>: nothing but the value set is sent',
  );
});

t.test('no answer within the timeout: the bundled expansion, a warning and a count', async (t) => {
  behaviour = (_req, res) => setTimeout(() => expandToIbuprofen(_req, res), 3000);
  const { remote, valueSets, warnings } = setup(100);
  const started = Date.now();
  await remote.refresh();
  t.ok(Date.now() - started < 2500, 'refresh is bounded by the timeout');
  t.ok(valueSets.contains('oral-nsaid', ATC, 'M01AE03'), 'bundled: ketoprofen');
  t.equal(remote.stats().fallbacks, 1);
  t.equal(remote.stats().failures, BUNDLED.ids.length);
  t.match(
    warnings.find((w) => w.valueSet === ORAL_NSAID),
    { reason: 'no answer within 100 ms' },
  );
});

t.test('an HTTP error or an answer that is not an expansion: the bundled expansion', async (t) => {
  behaviour = (_req, res) => {
    res.statusCode = 500;
    res.end('{}');
  };
  const first = setup();
  await first.remote.refresh();
  t.ok(first.valueSets.contains('oral-nsaid', ATC, 'M01AE03'));
  t.match(
    first.warnings.find((w) => w.valueSet === ORAL_NSAID),
    { reason: 'HTTP 500' },
  );

  behaviour = (_req, res) => res.end(JSON.stringify({ resourceType: 'OperationOutcome' }));
  const second = setup();
  await second.remote.refresh();
  t.ok(second.valueSets.contains('oral-nsaid', ATC, 'M01AE03'));
  t.match(
    second.warnings.find((w) => w.valueSet === ORAL_NSAID),
    {
      reason: 'the answer is not a ValueSet expansion',
    },
  );
  // A failing value set is not asked again on every lookup (a minute apart at most).
  requests.length = 0;
  second.valueSets.contains('oral-nsaid', ATC, 'M01AE03');
  second.valueSets.contains('oral-nsaid', ATC, 'M01AE03');
  await new Promise((resolve) => setTimeout(resolve, 50));
  t.same(requests, [], 'no new request before the retry pause');
  second.clock.now += 61_000;
  second.valueSets.contains('oral-nsaid', ATC, 'M01AE03');
  await new Promise((resolve) => setTimeout(resolve, 50));
  t.equal(requests.length, 1, 'asked again after the pause');
});

t.test(
  'an expansion older than its TTL is not used: bundled, then refreshed off the call path',
  async (t) => {
    behaviour = expandToIbuprofen;
    const { remote, valueSets, clock } = setup();
    await remote.refresh();
    t.notOk(valueSets.contains('oral-nsaid', ATC, 'M01AE03'), 'fresh: the server expansion');
    clock.now += 60 * 60_000 + 1;
    t.ok(valueSets.contains('oral-nsaid', ATC, 'M01AE03'), 'expired: the bundled expansion answers');
    t.equal(remote.stats().fallbacks, 1);
    await new Promise((resolve) => setTimeout(resolve, 100));
    t.notOk(valueSets.contains('oral-nsaid', ATC, 'M01AE03'), 'fetched again in the background');
  },
);
