/**
 * Validate mode of the optional terminology server (src/terminology/remote.ts), against a loopback fake
 * FHIR terminology server: a value set whose `$expand` the server refuses as too costly (or answers
 * incomplete) has each call's codings checked with `$validate-code` within one deadline; the answers are
 * cached (true and false) for the TTL; a code not answered in time is matched with the bundled expansion,
 * counted and reported; only the value-set URL, the system and the code reach the server.
 */
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import t from 'tap';
import { SYSTEM } from '../../src/codes.js';
import { createFhirPath } from '../../src/rules/fhirpath.js';
import { loadServiceFile } from '../../src/services/load.js';
import { loadValueSets } from '../../src/services/value-sets.js';
import { createRemoteTerminology, MAX_CODES_PER_CALL } from '../../src/terminology/remote.js';
import { terminologyCheck } from '../../src/terminology/stage.js';
import { ATC, RXNORM } from '../../src/terminology/terminology.js';

const BUNDLED = loadValueSets('fhir-profiles');
const ORAL_NSAID = 'https://explainable-cds.example.org/fhir/ValueSet/oral-nsaid';
/** A fictional RxNorm oral product of an NSAID, newer than the bundled file: the server knows it. */
const NEW_PRODUCT = '99000001';
/** Another fictional RxNorm code: not an NSAID for the server either. */
const NOT_NSAID = '99000002';
const PID = 'validate-patient-7';
const MRN = 'MRN-4711';

/** A call's data: a patient with identifiers, an eGFR and a draft order of the new product. */
const DATA = [
  {
    patient: {
      resourceType: 'Patient',
      id: PID,
      identifier: [{ system: 'urn:oid:1.2.36.146.595.217.0.1', value: MRN }],
      name: [{ family: 'Doe', given: ['Jane'] }],
    },
    egfr: {
      resourceType: 'Bundle',
      entry: [
        {
          resource: {
            resourceType: 'Observation',
            id: 'egfr-1',
            subject: { reference: `Patient/${PID}` },
            code: { coding: [{ system: SYSTEM.loinc, code: '33914-3' }] },
            valueQuantity: { value: 25, system: SYSTEM.ucum, code: 'mL/min/{1.73_m2}' },
          },
        },
      ],
    },
  },
  {
    patientId: PID,
    draftOrders: {
      resourceType: 'Bundle',
      entry: [
        {
          resource: {
            resourceType: 'MedicationRequest',
            id: 'draft-1',
            subject: { reference: `Patient/${PID}` },
            medicationCodeableConcept: {
              coding: [
                { system: RXNORM, code: NEW_PRODUCT },
                { system: ATC, code: 'M01AE03' },
              ],
            },
          },
        },
      ],
    },
  },
];

interface Recorded {
  method: string;
  url: string;
  body: string;
}

/** The fake server's behaviour, changed by each test; every request is recorded. */
let behaviour: (req: IncomingMessage, res: ServerResponse, body: string) => void;
const requests: Recorded[] = [];
const server = createServer((req, res) => {
  let body = '';
  req.on('data', (chunk: Buffer) => (body += chunk.toString()));
  req.on('end', () => {
    requests.push({ method: req.method ?? '', url: decodeURIComponent(req.url ?? ''), body });
    behaviour(req, res, body);
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
const BASE = `http://127.0.0.1:${(server.address() as AddressInfo).port}/fhir`;

const validateCalls = () => requests.filter((r) => r.url.endsWith('/ValueSet/$validate-code'));

function send(res: ServerResponse, status: number, body: unknown): void {
  res.statusCode = status;
  res.setHeader('content-type', 'application/fhir+json');
  res.end(JSON.stringify(body));
}

const TOO_COSTLY = {
  resourceType: 'OperationOutcome',
  issue: [{ severity: 'error', code: 'too-costly', diagnostics: 'expansion exceeds the 10000 code limit' }],
};

/** The parameters of a `$validate-code` POST body, by name. */
function parametersOf(body: string): Record<string, string> {
  const parsed = JSON.parse(body) as { parameter: { name: string; [value: string]: string }[] };
  return Object.fromEntries(
    parsed.parameter.map((p) => [p.name, p.valueUri ?? p.valueCode ?? p.valueString ?? '']),
  );
}

/**
 * A terminology server that will not expand any value set, and validates as the bundled definitions
 * do, plus NEW_PRODUCT as an oral NSAID.
 */
function tooCostlyServer(req: IncomingMessage, res: ServerResponse, body: string): void {
  if (req.url?.includes('/ValueSet/$expand')) return send(res, 422, TOO_COSTLY);
  const { url, system, code } = parametersOf(body);
  const result =
    (url === ORAL_NSAID && system === RXNORM && code === NEW_PRODUCT) ||
    BUNDLED.contains(url!, system!, code!);
  send(res, 200, {
    resourceType: 'Parameters',
    parameter: [
      { name: 'result', valueBoolean: result },
      ...(result ? [] : [{ name: 'message', valueString: 'not in the value set' }]),
    ],
  });
}

function setup(validateTimeoutMs = 2000) {
  const clock = { now: 1_000_000 };
  const warnings: { valueSet: string; reason: string }[] = [];
  const infos: { valueSet: string; reason: string }[] = [];
  const remote = createRemoteTerminology({
    baseUrl: BASE,
    timeoutMs: 5000,
    validateTimeoutMs,
    ttlMs: 60 * 60_000,
    warn: (entry) => warnings.push(entry),
    info: (entry) => infos.push(entry),
    now: () => clock.now,
  });
  return { remote, valueSets: remote.wrap(BUNDLED), warnings, infos, clock };
}

t.test('too costly to expand: validate mode, and $validate-code decides membership', async (t) => {
  behaviour = tooCostlyServer;
  requests.length = 0;
  const { remote, valueSets, warnings, infos } = setup();
  await remote.refresh();
  t.equal(remote.stats().validating, BUNDLED.ids.length, 'every value set is in validate mode');
  t.equal(remote.stats().expansions, 0);
  t.equal(remote.stats().failures, 0, 'a refusal as too costly is not a failure');
  t.same(warnings, []);
  t.same(
    infos.find((i) => i.valueSet === ORAL_NSAID),
    { valueSet: ORAL_NSAID, reason: '$expand refused as too costly (HTTP 422)' },
  );
  t.ok(remote.validating(['oral-nsaid']));

  t.notOk(BUNDLED.contains('oral-nsaid', RXNORM, NEW_PRODUCT), 'the bundled file does not list it');
  t.notOk(valueSets.contains('oral-nsaid', RXNORM, NEW_PRODUCT), 'not checked yet: bundled answer');
  t.equal(remote.stats().fallbacks, 1, 'and counted');

  requests.length = 0;
  t.same(await remote.check(['oral-nsaid'], DATA), [], 'every code answered');
  t.same(
    validateCalls()
      .map((r) => parametersOf(r.body))
      .sort((a, b) => a.system!.localeCompare(b.system!)),
    [
      { url: ORAL_NSAID, system: RXNORM, code: NEW_PRODUCT },
      { url: ORAL_NSAID, system: ATC, code: 'M01AE03' },
    ].sort((a, b) => a.system.localeCompare(b.system)),
    'one POST per code of the systems oral-nsaid includes (ATC, RxNorm): not the LOINC or UCUM codes',
  );
  t.ok(
    validateCalls().every((r) => r.method === 'POST'),
    'POST: the codes are not in the URL',
  );
  t.ok(valueSets.contains('oral-nsaid', RXNORM, NEW_PRODUCT), 'the server says it is an oral NSAID');
  t.ok(valueSets.contains(ORAL_NSAID, ATC, 'M01AE03'), 'by canonical URL too');
  t.notOk(valueSets.contains('oral-nsaid', SYSTEM.loinc, '33914-3'), 'another system: not a member');
  t.equal(remote.stats().fallbacks, 1, 'no fallback once answered');
  t.equal(remote.stats().validations, 2);

  const sent = requests.map((r) => r.url + r.body).join('\n');
  for (const secret of [PID, MRN, 'Doe', 'Jane', 'egfr-1', 'draft-1']) {
    t.notOk(sent.includes(secret), `${secret} never reaches the terminology server`);
  }
  t.ok(
    validateCalls().every(
      (r) => JSON.stringify(Object.keys(parametersOf(r.body))) === '["url","system","code"]',
    ),
    'the parameters are url, system and code: nothing else',
  );
});

t.test('answers are cached for the TTL, negative ones too: no second request', async (t) => {
  behaviour = tooCostlyServer;
  const { remote, valueSets, clock } = setup();
  await remote.refresh();
  const data = [DATA, { coding: [{ system: RXNORM, code: NOT_NSAID }] }];
  requests.length = 0;
  await remote.check(['oral-nsaid'], data);
  t.equal(validateCalls().length, 3);
  t.notOk(valueSets.contains('oral-nsaid', RXNORM, NOT_NSAID), 'the server said no');
  requests.length = 0;
  t.same(await remote.check(['oral-nsaid', ORAL_NSAID], data), []);
  t.same(requests, [], 'every code cached: no request');
  t.notOk(valueSets.contains('oral-nsaid', RXNORM, NOT_NSAID), 'the negative answer is cached');
  t.ok(valueSets.contains('oral-nsaid', RXNORM, NEW_PRODUCT));
  t.equal(remote.stats().fallbacks, 0);

  clock.now += 60 * 60_000 + 1;
  requests.length = 0;
  await remote.check(['oral-nsaid'], data);
  t.equal(validateCalls().length, 3, 'asked again once the TTL has passed');
  t.equal(
    requests.filter((r) => r.url.includes('$expand')).length,
    1,
    'and $expand is tried again once per TTL (on the first lookup after it)',
  );
});

t.test('a server that hangs costs the deadline; the bundled expansion answers, counted', async (t) => {
  const held: (() => void)[] = [];
  behaviour = (req, res, body) => {
    if (req.url?.includes('/ValueSet/$expand')) return send(res, 422, TOO_COSTLY);
    held.push(() => tooCostlyServer(req, res, body));
  };
  const { remote, valueSets } = setup(150);
  await remote.refresh();
  const started = performance.now();
  const unchecked = await remote.check(['oral-nsaid'], DATA);
  const ms = performance.now() - started;
  t.ok(ms >= 140 && ms < 1000, `check() returned after the 150 ms deadline (${ms.toFixed(0)} ms)`);
  t.same(unchecked, [{ valueSet: ORAL_NSAID, reason: '2 codes: no answer within 150 ms' }]);
  t.ok(valueSets.contains('oral-nsaid', ATC, 'M01AE03'), 'bundled: ketoprofen is an oral NSAID');
  t.notOk(valueSets.contains('oral-nsaid', RXNORM, NEW_PRODUCT), 'bundled: the new product is unknown');
  t.equal(remote.stats().fallbacks, 2, 'each bundled answer counted');

  // The late answers still fill the cache, for the next calls.
  for (const release of held) release();
  await new Promise((resolve) => setTimeout(resolve, 100));
  t.ok(valueSets.contains('oral-nsaid', RXNORM, NEW_PRODUCT), 'the late answer is used afterwards');
  t.equal(remote.stats().fallbacks, 2);
});

t.test('a failing $validate-code: reported, then not asked again for a minute', async (t) => {
  behaviour = (req, res) => {
    if (req.url?.includes('/ValueSet/$expand')) return send(res, 422, TOO_COSTLY);
    send(res, 500, { resourceType: 'OperationOutcome', issue: [{ severity: 'error', code: 'exception' }] });
  };
  const { remote, valueSets, clock } = setup();
  await remote.refresh();
  const onlyNew = [{ coding: [{ system: RXNORM, code: NEW_PRODUCT }] }];
  t.same(await remote.check(['oral-nsaid'], onlyNew), [
    { valueSet: ORAL_NSAID, reason: '1 code: $validate-code failed: HTTP 500' },
  ]);
  t.equal(remote.stats().failures, 1);
  requests.length = 0;
  t.same(await remote.check(['oral-nsaid'], onlyNew), [
    {
      valueSet: ORAL_NSAID,
      reason: '1 code: the server failed to validate a code of this value set less than a minute ago',
    },
  ]);
  t.same(requests, [], 'no request during the pause');
  t.notOk(valueSets.contains('oral-nsaid', RXNORM, NEW_PRODUCT), 'bundled answer');
  clock.now += 61_000;
  await remote.check(['oral-nsaid'], onlyNew);
  t.equal(validateCalls().length, 1, 'asked again after the pause');
});

t.test('at most MAX_CODES_PER_CALL codes asked about in one call; the rest reported', async (t) => {
  behaviour = tooCostlyServer;
  const { remote } = setup();
  await remote.refresh();
  const many = Array.from({ length: MAX_CODES_PER_CALL + 3 }, (_, i) => ({
    system: RXNORM,
    code: String(98000000 + i),
  }));
  requests.length = 0;
  t.same(await remote.check(['oral-nsaid'], many), [
    { valueSet: ORAL_NSAID, reason: `3 codes: more than ${MAX_CODES_PER_CALL} codes to check in one call` },
  ]);
  t.equal(validateCalls().length, MAX_CODES_PER_CALL);
});

t.test('other ways servers say an expansion is too large', async (t) => {
  const cases: [string, (res: ServerResponse, url: string) => void, boolean][] = [
    [
      'business-rule issue whose text says too costly (HTTP 400)',
      (res, url) =>
        send(res, 400, {
          resourceType: 'OperationOutcome',
          issue: [
            {
              severity: 'error',
              code: 'business-rule',
              diagnostics: `The expansion of value set ${url} was too costly.`,
            },
          ],
        }),
      true,
    ],
    [
      'an expansion marked with the valueset-toocostly extension',
      (res, url) =>
        send(res, 200, {
          resourceType: 'ValueSet',
          url,
          expansion: {
            extension: [
              { url: 'http://hl7.org/fhir/StructureDefinition/valueset-toocostly', valueBoolean: true },
            ],
            contains: [{ system: ATC, code: 'M01AE01' }],
          },
        }),
      true,
    ],
    [
      'an expansion with fewer codes than its total (a first page)',
      (res, url) =>
        send(res, 200, {
          resourceType: 'ValueSet',
          url,
          expansion: { total: 5000, contains: [{ system: ATC, code: 'M01AE01' }] },
        }),
      true,
    ],
    [
      'an OperationOutcome of another kind is a failure, not validate mode',
      (res) =>
        send(res, 404, {
          resourceType: 'OperationOutcome',
          issue: [{ severity: 'error', code: 'not-found', diagnostics: 'unknown value set' }],
        }),
      false,
    ],
  ];
  for (const [name, answer, validating] of cases) {
    behaviour = (req, res) => answer(res, new URL(req.url ?? '', 'http://x').searchParams.get('url') ?? '');
    const { remote, valueSets, warnings } = setup();
    await remote.refresh();
    t.equal(remote.validating(['oral-nsaid']), validating, name);
    t.equal(remote.stats().expansions, 0, `${name}: no expansion used`);
    t.equal(warnings.length, validating ? 0 : BUNDLED.ids.length, `${name}: warnings`);
    t.ok(valueSets.contains('oral-nsaid', ATC, 'M01AE03'), `${name}: the bundled answer until checked`);
  }
});

t.test('nothing to check: no value set in validate mode, no request', async (t) => {
  behaviour = (req, res) => {
    const url = new URL(req.url ?? '', 'http://x').searchParams.get('url');
    send(res, 200, {
      resourceType: 'ValueSet',
      url,
      expansion: { contains: [{ system: ATC, code: 'M01AE01' }] },
    });
  };
  const { remote } = setup();
  await remote.refresh();
  requests.length = 0;
  t.notOk(remote.validating(['oral-nsaid', 'egfr']));
  t.same(await remote.check(['oral-nsaid'], DATA), []);
  t.same(requests, []);
});

t.test('the pipeline stage: only for a service naming a value set in validate mode', async (t) => {
  const fhirpath = createFhirPath();
  const load = (file: string, valueSets: typeof BUNDLED) =>
    loadServiceFile(`cds-services/${file}`, fhirpath, valueSets)[0]!;
  t.equal(terminologyCheck(load('nsaid-safety.yaml', BUNDLED)), undefined, 'no server: no stage');

  // oral-nsaid too costly; every other value set expanded.
  behaviour = (req, res) => {
    const url = new URL(req.url ?? '', 'http://x').searchParams.get('url');
    if (req.url?.includes('/ValueSet/$expand')) {
      if (url === ORAL_NSAID) return send(res, 422, TOO_COSTLY);
      return send(res, 200, { resourceType: 'ValueSet', url, expansion: { contains: [] } });
    }
    send(res, 503, { resourceType: 'OperationOutcome', issue: [{ severity: 'error', code: 'transient' }] });
  };
  const { remote, valueSets } = setup();
  await remote.refresh();
  t.equal(
    terminologyCheck(load('cyproterone-meningioma.yaml', valueSets)),
    undefined,
    'a service that does not name oral-nsaid: no stage',
  );
  const stage = terminologyCheck(load('nsaid-safety.yaml', valueSets));
  t.type(stage, 'function', 'nsaid-safety names oral-nsaid: a stage');

  const warned: { fields: Record<string, unknown>; message: string }[] = [];
  await stage!(DATA, { warn: (fields, message) => warned.push({ fields, message }) });
  t.same(warned, [
    {
      fields: { valueSet: ORAL_NSAID, reason: '2 codes: $validate-code failed: HTTP 503' },
      message: 'terminology server did not validate these codes in time: the bundled expansion answers them',
    },
  ]);
});
