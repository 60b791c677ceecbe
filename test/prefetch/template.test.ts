import t from 'tap';
import { KNOWN_HOOKS } from '../../src/cds-hooks.js';
import { parseTemplate, renderTemplate } from '../../src/prefetch/template.js';

const CONTEXT = { userId: 'Practitioner/abc', patientId: 'pat-123' };

t.test('parseTemplate accepts every CDS Hooks 2.0 prefetch token', async (t) => {
  const tokens = [
    'context.patientId',
    'context.userId',
    'context.encounterId',
    'userPractitionerId',
    'userPractitionerRoleId',
    'userPatientId',
    'userRelatedPersonId',
  ];
  for (const hook of KNOWN_HOOKS) {
    for (const token of tokens) {
      const source = `Observation?patient={{${token}}}`;
      t.doesNotThrow(() => parseTemplate(source, hook), `${hook}: {{${token}}}`);
    }
  }
  const parsed = parseTemplate(
    'Observation?patient={{context.patientId}}&performer={{userPractitionerId}}',
    'patient-view',
  );
  t.same(parsed.parts, [
    { literal: 'Observation?patient=' },
    { contextField: 'patientId' },
    { literal: '&performer=' },
    { userToken: 'userPractitionerId' },
  ]);
  t.equal(parsed.source, 'Observation?patient={{context.patientId}}&performer={{userPractitionerId}}');
});

t.test('parseTemplate tolerates spaces inside the braces', async (t) => {
  const parsed = parseTemplate('Patient/{{ context.patientId }}', 'patient-view');
  t.same(parsed.parts, [{ literal: 'Patient/' }, { contextField: 'patientId' }]);
});

t.test('a template without tokens is one literal', async (t) => {
  const parsed = parseTemplate('Practitioner?_count=1', 'patient-view');
  t.same(parsed.parts, [{ literal: 'Practitioner?_count=1' }]);
  t.equal(parsed.resultType, 'Bundle');
});

t.test('parseTemplate rejects an unknown token', async (t) => {
  t.throws(() => parseTemplate('Patient/{{patientId}}', 'patient-view'), {
    message: 'unknown prefetch token {{patientId}}',
  });
  t.throws(() => parseTemplate('Patient/{{userOrganizationId}}', 'patient-view'), {
    message: 'unknown prefetch token {{userOrganizationId}}',
  });
  t.throws(() => parseTemplate('Patient/{{}}', 'patient-view'), /unknown prefetch token/);
});

t.test('parseTemplate rejects tokens that are names of Object.prototype members', async (t) => {
  // `token in USER_TOKENS` also finds inherited members: these must be unknown tokens, not user tokens.
  for (const token of ['constructor', 'toString', '__proto__', 'hasOwnProperty', 'valueOf']) {
    t.throws(
      () => parseTemplate(`Patient/{{${token}}}`, 'patient-view'),
      { message: `unknown prefetch token {{${token}}}` },
      `{{${token}}}`,
    );
  }
});

t.test('parseTemplate rejects context fields that are not prefetch tokens', async (t) => {
  t.throws(() => parseTemplate('MedicationRequest?_id={{context.medications}}', 'order-sign'), {
    message: 'token {{context.medications}} is not a prefetch token of the order-sign hook',
  });
  t.throws(() => parseTemplate('Patient/{{context.draftOrders}}', 'order-sign'), {
    message: 'token {{context.draftOrders}} is not a prefetch token of the order-sign hook',
  });
  // Not a root-level primitive: a path into the context is not a 2.0 token.
  t.throws(() => parseTemplate('Patient/{{context.patientId.id}}', 'patient-view'), {
    message: 'token {{context.patientId.id}} is not a prefetch token of the patient-view hook',
  });
  t.throws(() => parseTemplate('Patient/{{context.}}', 'patient-view'), /is not a prefetch token/);
});

t.test('parseTemplate rejects an unterminated token', async (t) => {
  t.throws(() => parseTemplate('Patient/{{context.patientId', 'patient-view'), {
    message: 'unterminated token in prefetch template "Patient/{{context.patientId"',
  });
  t.throws(() => parseTemplate('Patient/{{context.patientId}}/{{', 'patient-view'), /unterminated token/);
});

t.test('parseTemplate rejects absolute URLs', async (t) => {
  for (const source of [
    'https://evil.example/Patient/{{context.patientId}}',
    'http://evil.example/Patient/{{context.patientId}}',
    'HTTPS://evil.example/Patient/{{context.patientId}}',
    '//evil.example/Patient/{{context.patientId}}',
    '/Patient/{{context.patientId}}',
  ]) {
    t.throws(
      () => parseTemplate(source, 'patient-view'),
      { message: `prefetch template "${source}" must be relative to fhirServer` },
      source,
    );
  }
});

t.test('resultType: a read returns its type, a search returns a Bundle', async (t) => {
  const type = (source: string) => parseTemplate(source, 'patient-view').resultType;
  t.equal(type('Patient/{{context.patientId}}'), 'Patient');
  t.equal(type('Practitioner/{{userPractitionerId}}'), 'Practitioner');
  t.equal(type('Encounter/{{context.encounterId}}'), 'Encounter');
  t.equal(type('Observation?patient={{context.patientId}}&code=4548-4&_count=1&_sort=-date'), 'Bundle');
  t.equal(type('Patient?_id={{context.patientId}}'), 'Bundle');
  t.equal(type('Condition'), 'Bundle');
  t.equal(type('Patient/{{context.patientId}}/$everything'), 'Bundle');
});

t.test('renderTemplate fills context values', async (t) => {
  const template = parseTemplate(
    'Observation?patient={{context.patientId}}&code=http://loinc.org|4548-4&_sort=-date',
    'patient-view',
  );
  t.same(renderTemplate(template, CONTEXT), {
    ok: true,
    query: 'Observation?patient=pat-123&code=http://loinc.org|4548-4&_sort=-date',
  });
});

t.test('renderTemplate URL-encodes values so a value cannot add a parameter or a path', async (t) => {
  const template = parseTemplate('Observation?patient={{context.patientId}}&_count=1', 'patient-view');
  const rendered = renderTemplate(template, { ...CONTEXT, patientId: 'pat-1&_count=1000&subject=x' });
  t.same(rendered, { ok: true, query: 'Observation?patient=pat-1%26_count%3D1000%26subject%3Dx&_count=1' });
  if (!rendered.ok) return;
  const params = new URLSearchParams(rendered.query.split('?')[1]);
  t.same([...params.keys()], ['patient', '_count']);
  t.equal(params.get('patient'), 'pat-1&_count=1000&subject=x');

  const read = parseTemplate('Patient/{{context.patientId}}', 'patient-view');
  t.same(renderTemplate(read, { patientId: 'a/../../Other?x#y' }), {
    ok: true,
    query: 'Patient/a%2F..%2F..%2FOther%3Fx%23y',
  });
  t.same(renderTemplate(read, { patientId: 'é ü' }), { ok: true, query: 'Patient/%C3%A9%20%C3%BC' });
});

t.test('renderTemplate refuses a context value that is a dot segment', async (t) => {
  // `Patient/..` is resolved by the URL parser to the server's base: the value would leave the
  // template's path (FHIR ids allow dots, so `..` passes the context schema).
  const read = parseTemplate('Patient/{{context.patientId}}', 'patient-view');
  for (const patientId of ['..', '.']) {
    const rendered = renderTemplate(read, { ...CONTEXT, patientId });
    t.equal(rendered.ok, false, `patientId ${JSON.stringify(patientId)}`);
  }
});

t.test('renderTemplate derives user tokens from userId only when the type matches', async (t) => {
  const ctx = { userId: 'Practitioner/abc', patientId: 'pat-123' };
  const render = (token: string, context: Record<string, unknown>) =>
    renderTemplate(parseTemplate(`X?u={{${token}}}`, 'patient-view'), context);
  t.same(render('userPractitionerId', ctx), { ok: true, query: 'X?u=abc' });
  t.same(render('userPatientId', ctx), {
    ok: false,
    reason: 'the request gives no value for {{userPatientId}}',
  });
  t.same(render('userPractitionerRoleId', ctx), {
    ok: false,
    reason: 'the request gives no value for {{userPractitionerRoleId}}',
  });
  t.same(render('userRelatedPersonId', ctx), {
    ok: false,
    reason: 'the request gives no value for {{userRelatedPersonId}}',
  });
  t.same(render('userPractitionerRoleId', { userId: 'PractitionerRole/r-9' }), {
    ok: true,
    query: 'X?u=r-9',
  });
  t.same(render('userPatientId', { userId: 'Patient/p-7' }), { ok: true, query: 'X?u=p-7' });
  t.same(render('userRelatedPersonId', { userId: 'RelatedPerson/rp-2' }), { ok: true, query: 'X?u=rp-2' });
  t.same(render('userPractitionerId', { userId: 'Patient/p-7' }), {
    ok: false,
    reason: 'the request gives no value for {{userPractitionerId}}',
  });
  // Malformed userId values give no user token.
  for (const userId of ['abc', 'Practitioner/', 'Practitioner/abc/_history/1', 'practitioner/abc']) {
    t.equal(render('userPractitionerId', { userId }).ok, false, `userId ${userId}`);
  }
  t.equal(render('userPractitionerId', { userId: 42 }).ok, false, 'non-string userId');
  t.equal(render('userPractitionerId', {}).ok, false, 'no userId');
  // context.userId itself is the full reference, encoded.
  t.same(render('context.userId', ctx), { ok: true, query: 'X?u=Practitioner%2Fabc' });
});

t.test('renderTemplate reports a missing value with the exact reason', async (t) => {
  const template = parseTemplate('Encounter/{{context.encounterId}}', 'patient-view');
  t.same(renderTemplate(template, CONTEXT), {
    ok: false,
    reason: 'the request gives no value for {{context.encounterId}}',
  });
  t.same(renderTemplate(template, { ...CONTEXT, encounterId: '' }), {
    ok: false,
    reason: 'the request gives no value for {{context.encounterId}}',
  });
  t.same(renderTemplate(template, { ...CONTEXT, encounterId: 12 }), {
    ok: false,
    reason: 'the request gives no value for {{context.encounterId}}',
  });
  t.same(renderTemplate(template, { ...CONTEXT, encounterId: 'enc-1' }), {
    ok: true,
    query: 'Encounter/enc-1',
  });
});

t.test('renderTemplate with several tokens stops at the first missing one', async (t) => {
  const template = parseTemplate(
    'Observation?patient={{context.patientId}}&encounter={{context.encounterId}}',
    'patient-view',
  );
  t.same(renderTemplate(template, { userId: 'Practitioner/abc' }), {
    ok: false,
    reason: 'the request gives no value for {{context.patientId}}',
  });
});
