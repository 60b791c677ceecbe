/**
 * Issue 19, silent mode: a candidate model version (and a card rule) run on every call beside the live
 * one; the EHR sees only the live one's cards, the audit trail holds both estimates.
 */
import t from 'tap';
import { openStore } from '../../src/audit/store.js';
import { checkDefinitions } from '../../src/ops/live-set.js';
import { createFhirPath } from '../../src/rules/fhirpath.js';
import { EXPLANATION_EXTENSION } from '../../src/explain/explain.js';
import { buildTestApp, tempDir, testSqliteWorker } from '../helpers/app.js';
import { HIGH_RISK, KNEE_OA_URL, kneeOaCall } from '../helpers/knee-oa-call.js';
import { silentKneeSetup } from '../helpers/silent-service.js';

t.test('the EHR sees the live model only; the audit holds the live and the silent estimates', async (t) => {
  const dataDir = tempDir('cds-silent-data-');
  const { servicesDir, modelsDir } = silentKneeSetup();
  const { app } = await buildTestApp({ servicesDir, modelsDir, dataDir });
  const payload = kneeOaCall(HIGH_RISK);
  const res = await app.inject({ method: 'POST', url: KNEE_OA_URL, payload });
  await app.close();
  t.equal(res.statusCode, 200);
  const body = res.json();
  // One card, the live model's (the silent card rule and the candidate model show nothing).
  t.equal(body.cards.length, 1);
  const shown = body.cards[0].extension[EXPLANATION_EXTENSION].model;
  t.equal(shown.model.version, '1.0.0');
  t.notMatch(JSON.stringify(body), /1\.1\.0|trial rule/);

  const store = await openStore({ dataDir, databaseUrl: undefined }, { worker: testSqliteWorker });
  t.teardown(() => store.close());
  const rows = await store.predictions(
    { from: '2026-01-01T00:00:00.000Z', to: '2027-01-01T00:00:00.000Z' },
    { seq: 0, ordinal: -1 },
    100,
  );
  t.same(
    rows.map((r) => [r.model.id, r.model.version, r.mode]),
    [
      ['knee-oa-progression', '1.0.0', 'live'],
      ['knee-oa-progression', '1.1.0', 'silent'],
    ],
  );
  const [live, silent] = rows;
  t.equal(live!.risk, shown.probability, 'the live estimate is the one on the card');
  t.not(silent!.risk, live!.risk, 'the candidate is another model');
  t.equal(live!.band, 'higher');
  t.equal(live!.positive, true);
  t.equal(live!.week, '2026-W47');
  t.equal(live!.eventSeq, silent!.eventSeq, 'both written with the one call event');
  t.match(live!.pseudonym, /^[0-9a-f]{64}$/);
  t.equal(silent!.pseudonym, live!.pseudonym);
  t.same(live!.subgroups, { sex: 'female', ageBand: '65+', klGrade: 'KL 3' });
  t.equal(live!.inputs.bmi, 36);
  t.equal(live!.inputs.kneeInjury, 1);
  t.equal(live!.topFactors.length, 5);
  t.match(live!.focus, /^Condition\//);
  t.notMatch(JSON.stringify(rows), payload.context.patientId, 'no patient id in clear');
  t.notMatch(JSON.stringify(rows), /birthDate|\d{4}-\d{2}-\d{2}(?!T)/);

  // The chain covers them: the event's payload holds the same estimates, and the silent card as suppressed.
  const [event] = await store.eventsFor(live!.pseudonym!);
  t.equal(event!.kind, 'service-call');
  if (event!.kind !== 'service-call') return;
  t.same(
    event!.payload.predictions!.map((p) => [p.model.version, p.mode, p.risk]),
    rows.map((r) => [r.model.version, r.mode, r.risk]),
  );
  t.same(event!.payload.suppressed, [{ finding: `intermediateSilent@${live!.focus}`, reason: 'silent' }]);
  t.equal(event!.payload.cards.length, 1);
});

t.test('a card cannot be about a silent model, and only one version of a model is live', async (t) => {
  const fhirpath = createFhirPath();
  const check = (edit: (yaml: string) => string) =>
    checkDefinitions({ ...silentKneeSetup(edit), profilesDir: 'fhir-profiles' }, fhirpath);
  const refused = (pointer: string, reason: string) => ({
    code: 'CDS_ERR_DEFINITION_INVALID',
    message: `knee-oa-progression.yaml#${pointer}: ${reason}`,
  });
  // Both silent: the cards about the model have no live model to be about.
  t.throws(
    () => check((y) => y.replace('    version: 1.0.0\n', '    version: 1.0.0\n    mode: silent\n')),
    refused('/cards/0/when/model', 'model "knee-oa-progression" runs silent: no card can be about it'),
  );
  t.throws(
    () => check((y) => y.replace('    version: 1.1.0\n    mode: silent\n', '    version: 1.1.0\n')),
    refused(
      '/models/1',
      'model "knee-oa-progression" is already live in this service: run the other version silent',
    ),
  );
  t.throws(() => check((y) => y.replace('    mode: silent\n', '    mode: quiet\n')), {
    code: 'CDS_ERR_DEFINITION_INVALID',
    message: /^knee-oa-progression\.yaml#\/models\/1\/mode: /,
  });
});
