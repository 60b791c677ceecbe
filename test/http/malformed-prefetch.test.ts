/**
 * Issue 16 §4: prefetch data that is not well-formed FHIR R4 is never read as absent. Each case of the
 * issue (which all answered 200 with cards computed as if the data were absent) is now a 400
 * CDS_ERR_PREFETCH_MALFORMED naming the key and the path, sent or fetched from fhirServer; a service whose
 * policy is `not-evaluable` answers instead with one card saying it could not evaluate, and why.
 */
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { LightMyRequestResponse } from 'fastify';
import type { Bundle, Observation, Patient } from 'fhir/r4.js';
import t, { type Test } from 'tap';
import type { FhirAuthorization, HookRequest } from '../../src/cds-hooks.js';
import { EXPLANATION_EXTENSION } from '../../src/explain/explain.js';
import { assertConforms, buildTestApp, tempDir } from '../helpers/app.js';
import { startFhirServer } from '../helpers/fhir-server.js';
import { lesion, PATIENT_ID, patientView, searchset } from '../helpers/hook-request.js';

const URL = '/cds-services/melanoma-lesion-triage';
const harness = await buildTestApp();
t.teardown(() => harness.app.close());

const post = (payload: unknown) =>
  harness.app.inject({ method: 'POST', url: URL, payload: payload as object });
const postRaw = (payload: string) =>
  harness.app.inject({ method: 'POST', url: URL, headers: { 'content-type': 'application/json' }, payload });

/** A valid call: one lesion scoring 4 (a referral card), the model keys known absent. */
const REST = { patient: null, conditions: null, skin: null, consent: null };
const call = (prefetch: Record<string, unknown>): HookRequest =>
  patientView({
    lesions: searchset([lesion({ items: { changeSize: true, irregularColour: true } })]),
    ...REST,
    ...prefetch,
  } as HookRequest['prefetch']);

function expectMalformed(t: Test, res: LightMyRequestResponse, expression: string, problem: string): void {
  t.equal(res.statusCode, 400, 'status');
  t.match(res.headers['content-type'], /^application\/fhir\+json/);
  const body = res.json();
  assertConforms('OperationOutcome', body);
  const issue = body.issue[0];
  t.equal(issue.details.coding[0].code, 'CDS_ERR_PREFETCH_MALFORMED');
  t.equal(issue.code, 'structure');
  t.same(issue.expression, [expression]);
  const key = expression.split('.')[1]!.replace(/\[.*$/, '');
  t.equal(issue.diagnostics, `Prefetch key "${key}" is not well-formed FHIR R4: ${expression} ${problem}`);
}

const observation = (extra: Partial<Observation>): Observation => ({
  resourceType: 'Observation',
  id: 'obs-1',
  status: 'final',
  code: { coding: [{ system: 'http://loinc.org', code: '39156-5' }] },
  ...extra,
});

t.test('the cases of the issue each answer 400, naming the key and the path', async (t) => {
  const cases: [string, Record<string, unknown>, string, string][] = [
    [
      'Bundle.entry: "nope"',
      { lesions: { resourceType: 'Bundle', type: 'searchset', entry: 'nope' } },
      'prefetch.lesions.entry',
      'must be an array, not a string',
    ],
    [
      'an entry that is 7',
      { lesions: { resourceType: 'Bundle', type: 'searchset', entry: [7] } },
      'prefetch.lesions.entry[0]',
      'must be an object, not a number',
    ],
    [
      'an entry that is null',
      { skin: { resourceType: 'Bundle', type: 'searchset', entry: [{ resource: observation({}) }, null] } },
      'prefetch.skin.entry[1]',
      'must be an object, not null',
    ],
    [
      'resourceType: 7 in an entry',
      { conditions: { resourceType: 'Bundle', entry: [{ resource: { resourceType: 7, id: 'c1' } }] } },
      'prefetch.conditions.entry[0].resource.resourceType',
      'must be a string naming a FHIR R4 resource type, not a number',
    ],
    [
      'valueQuantity.value: "7.5"',
      {
        skin: searchset([
          observation({ valueQuantity: { value: '7.5' as unknown as number, unit: 'kg/m2' } }),
        ]),
      },
      'prefetch.skin.entry[0].resource.valueQuantity.value',
      'must be a decimal (a JSON number), not a string',
    ],
    [
      'birthDate: 19480101',
      { patient: { resourceType: 'Patient', id: PATIENT_ID, birthDate: 19480101 } },
      'prefetch.patient.birthDate',
      'must be a date (YYYY, YYYY-MM or YYYY-MM-DD), not a number',
    ],
    [
      'birthDate: "01/01/1948"',
      { patient: { resourceType: 'Patient', id: PATIENT_ID, birthDate: '01/01/1948' } },
      'prefetch.patient.birthDate',
      'must be a date (YYYY, YYYY-MM or YYYY-MM-DD), not a string of another form',
    ],
    [
      'a lesion item recorded as valueBoolean "yes"',
      {
        lesions: searchset([
          {
            ...lesion({ items: { changeSize: true } }),
            component: [{ code: { text: 'change in size' }, valueBoolean: 'yes' as unknown as boolean }],
          },
        ]),
      },
      'prefetch.lesions.entry[0].resource.component[0].valueBoolean',
      'must be a boolean (true or false), not a string',
    ],
    [
      'a coding that is an object, not an array',
      {
        conditions: searchset([
          {
            resourceType: 'Condition',
            id: 'c1',
            subject: { reference: 'Patient/p' },
            code: { coding: { code: 'x' } },
          } as never,
        ]),
      },
      'prefetch.conditions.entry[0].resource.code.coding',
      'must be an array, not an object',
    ],
    [
      'a nested Consent provision period with a number',
      {
        consent: searchset([
          {
            resourceType: 'Consent',
            id: 'k1',
            status: 'active',
            scope: { text: 's' },
            category: [{ text: 'c' }],
            provision: { provision: [{ type: 'deny', period: { start: 2020 } }] },
          } as never,
        ]),
      },
      'prefetch.consent.entry[0].resource.provision.provision[0].period.start',
      'must be a dateTime (YYYY, YYYY-MM, YYYY-MM-DD or with a time and zone), not a number',
    ],
  ];
  for (const [name, prefetch, expression, problem] of cases) {
    t.test(name, async (t) => expectMalformed(t, await post(call(prefetch)), expression, problem));
  }
});

t.test('a plain constructor key anywhere in the body is refused, as the README says', async (t) => {
  for (const [name, payload] of [
    [
      'in a prefetched resource',
      JSON.stringify(call({ patient: { resourceType: 'Patient', id: 'p', constructor: 'x' } })),
    ],
    ['at the top level', JSON.stringify(call({})).replace('{', '{"constructor":1,')],
    ['escaped', JSON.stringify(call({})).replace('{', '{"constr\\u0075ctor":{},')],
    ['in the context', JSON.stringify(call({})).replace('"context":{', '"context":{"constructor":[],')],
  ] as const) {
    const res = await postRaw(payload);
    t.equal(res.statusCode, 400, name);
    t.equal(res.json().issue[0].details.coding[0].code, 'CDS_ERR_REQUEST_MALFORMED_JSON', name);
  }
  const text = JSON.stringify(call({})).replace('"context":{', '"context":{"note":"constructor \\u00e9",');
  t.equal((await postRaw(text)).statusCode, 200, 'the word as a value, and escapes, are fine');
});

t.test('well-formed data with FHIR JSON details still passes', async (t) => {
  const patient: Patient = {
    resourceType: 'Patient',
    id: PATIENT_ID,
    birthDate: '1948-01-01',
    _birthDate: { extension: [{ url: 'http://example.org/x', valueString: 'y' }] },
    name: [{ given: ['Ann', null as unknown as string], _given: [null as never, { id: 'g2' }], family: 'B' }],
    extension: [{ url: 'http://example.org/unknown-elements-are-not-read', valueDecimal: 1.5 }],
    // An element R4 does not define: nothing reads it, so nothing checks it.
    ...({ vendorField: { anything: [1, 'two'] } } as object),
  };
  const res = await post(call({ patient }));
  t.equal(res.statusCode, 200);
  t.ok(res.json().cards.length >= 1);
});

t.test('data fetched from fhirServer gets the same check', async (t) => {
  const token = 'tok-malformed-fetch';
  const malformed = { resourceType: 'Patient', id: PATIENT_ID, birthDate: 19480101 } as unknown as Patient;
  const server = await startFhirServer({ resources: [malformed], token });
  t.teardown(() => server.close());
  const auth: FhirAuthorization = {
    access_token: token,
    token_type: 'Bearer',
    expires_in: 300,
    scope: 'patient/Patient.read',
    subject: 'cds',
  };
  const { patient: _, ...sent } = REST;
  const body = patientView(
    { lesions: searchset([lesion({ items: { changeSize: true } })]), ...sent },
    { fhirServer: server.url, fhirAuthorization: auth },
  );
  const res = await post(body);
  t.equal(res.statusCode, 400);
  const issue = res.json().issue[0];
  t.equal(issue.details.coding[0].code, 'CDS_ERR_PREFETCH_MALFORMED');
  t.same(issue.expression, ['prefetch.patient.birthDate']);
  t.match(issue.diagnostics, /\(as fetched from fhirServer\)$/);
  t.equal(server.requests.length, 1, 'the key was fetched');
});

t.test('policy not-evaluable: one card says the service could not evaluate, and why', async (t) => {
  const dir = tempDir('cds-malformed-services-');
  const yaml = readFileSync('cds-services/melanoma-lesion-triage.yaml', 'utf8');
  writeFileSync(join(dir, 'melanoma-lesion-triage.yaml'), `${yaml}\nmalformedPrefetch: not-evaluable\n`);
  const built = await buildTestApp({ servicesDir: dir });
  t.teardown(() => built.app.close());
  const lesions: Bundle = { resourceType: 'Bundle', type: 'searchset', entry: [7 as never] };
  for (const lang of ['en', 'fr'] as const) {
    const res = await built.app.inject({
      method: 'POST',
      url: URL,
      payload: call({ lesions }),
      headers: { 'accept-language': lang },
    });
    t.equal(res.statusCode, 200);
    const body = res.json();
    assertConforms('HookResponse', body);
    t.equal(body.cards.length, 1, 'one card, and no rule ran');
    const card = body.cards[0];
    t.equal(card.indicator, 'warning');
    if (lang === 'en') {
      t.equal(
        card.summary,
        'Not evaluated, malformed data: Melanoma lesion triage (7-point checklists and demonstration risk model)',
      );
      t.match(card.detail, 'malformed data at prefetch.lesions.entry[0]: must be an object, not a number');
      t.match(card.detail, 'This card does not mean that nothing was found.');
    } else {
      t.match(card.summary, /^Non évalué, données mal formées\u00a0: /);
      t.match(card.detail, 'données mal formées en prefetch.lesions.entry[0]');
    }
    const explanation = card.extension[EXPLANATION_EXTENSION];
    t.same(
      explanation.rules.map((r: { status: string }) => r.status),
      ['not-evaluable', 'not-evaluable'],
    );
    t.equal(explanation.unavailable[0].key, 'lesions');
    t.ok(card.overrideReasons.length > 0, 'it can be overridden with a reason');
  }
  const answered = built.logs().find((l) => l.msg === 'hook answered');
  t.same(answered?.malformedKeys, ['lesions']);
  t.notMatch(built.logText(), PATIENT_ID);
});
