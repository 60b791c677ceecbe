import t from 'tap';
import { buildTestApp } from './helpers/app.js';
import { lesion, patientView, searchset, triageCards } from './helpers/hook-request.js';

// Values that would be patient data or secrets if they reached a log line.
const PATIENT = 'patient-secret-4711';
const SITE = 'tattoo-on-left-shoulder';
const JWT = 'eyJhbGciOiJSUzM4NCJ9.secret-client-jwt.signature';
const FHIR_TOKEN = 'fhir-access-token-0815';

t.test(
  'no patient data, context, prefetch or token reaches the logs, on success and on errors',
  async (t) => {
    const { app, logText, logs } = await buildTestApp();
    t.teardown(() => app.close());
    const request = patientView(
      { lesions: searchset([{ ...lesion({ site: SITE, items: { changeSize: true, oozing: true } }) }]) },
      {
        fhirServer: 'https://fhir.example.org/r4',
        fhirAuthorization: {
          access_token: FHIR_TOKEN,
          token_type: 'Bearer',
          expires_in: 300,
          scope: 'patient/*.read',
          subject: 'cds-service',
          patient: PATIENT,
        },
      },
    );
    request.context.patientId = PATIENT;
    const headers = { authorization: `Bearer ${JWT}`, cookie: `session=${JWT}` };
    const ok = await app.inject({
      method: 'POST',
      url: '/cds-services/melanoma-lesion-triage',
      payload: request,
      headers,
    });
    t.equal(ok.statusCode, 200);
    t.equal(triageCards(ok.json().cards).length, 1, 'the card itself does carry the site');
    // A refused request (wrong hook) and a 412 (no prefetch, no server) log too.
    await app.inject({
      method: 'POST',
      url: '/cds-services/melanoma-lesion-triage',
      payload: { ...request, hook: 'order-sign' },
      headers,
    });
    const { fhirServer: _s, fhirAuthorization: _a, prefetch: _p, ...bare } = request;
    const refused = await app.inject({
      method: 'POST',
      url: '/cds-services/melanoma-lesion-triage',
      payload: bare,
      headers,
    });
    t.equal(refused.statusCode, 412);

    const text = logText();
    for (const secret of [PATIENT, SITE, JWT, FHIR_TOKEN, 'secret-client-jwt']) {
      t.notOk(text.includes(secret), `${secret} is not in the logs`);
    }
    const answered = logs().find((l) => l.msg === 'hook answered')!;
    t.equal(answered.serviceId, 'melanoma-lesion-triage');
    t.equal(answered.hookInstance, request.hookInstance);
    t.equal(answered.cards, 1, 'the referral card alone (one voice per lesion)');
    t.match(answered.timings, { prefetchMs: Number, rulesMs: Number, modelsMs: Number, cardsMs: Number });
    const completed = logs().filter((l) => l.msg === 'request completed');
    t.equal(completed.length, 3);
    t.ok(completed.every((l) => typeof l.reqId === 'string' && typeof l.responseTime === 'number'));
    t.same(
      logs()
        .filter((l) => l.msg === 'request refused')
        .map((l) => [l.code, l.status]),
      [
        ['CDS_ERR_HOOK_MISMATCH', 400],
        ['CDS_ERR_PREFETCH_UNAVAILABLE', 412],
      ],
    );
  },
);

t.test('a log call that passes a body, context or token by mistake is redacted', async (t) => {
  const { app, logText } = await buildTestApp();
  t.teardown(() => app.close());
  app.log.warn(
    {
      body: { x: PATIENT },
      context: { patientId: PATIENT },
      fhirAuthorization: { access_token: FHIR_TOKEN },
    },
    'careless',
  );
  t.notOk(logText().includes(PATIENT));
  t.notOk(logText().includes(FHIR_TOKEN));
  t.match(logText(), /"body":"\[redacted\]"/);
});
