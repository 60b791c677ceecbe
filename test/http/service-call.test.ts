import t from 'tap';
import { EXPLANATION_EXTENSION } from '../../src/explain/explain.js';
import { medicationRequest, orderSelectRequest, orderSignRequest } from '../../tools/synthetic/orders.js';
import { assertConforms, buildTestApp } from '../helpers/app.js';
import { lesion, patientView, searchset, triageCards } from '../helpers/hook-request.js';

const URL = '/cds-services/melanoma-lesion-triage';

t.test(
  'a lesion scoring 5 on the weighted checklist gets one referral card with the items that scored',
  async (t) => {
    const { app } = await buildTestApp();
    t.teardown(() => app.close());
    const exam = lesion({
      items: { changeSize: true, irregularColour: true, inflammation: true, oozing: false },
    });
    const res = await app.inject({
      method: 'POST',
      url: URL,
      payload: patientView({ lesions: searchset([exam]) }),
    });
    t.equal(res.statusCode, 200);
    const body = res.json();
    assertConforms('HookResponse', body);
    t.equal(triageCards(body.cards).length, 1);
    const card = triageCards(body.cards)[0];
    t.equal(card.indicator, 'warning');
    t.equal(
      card.summary,
      'Lesion (left forearm): a 7-point checklist reaches the referral threshold; consider urgent dermatology referral',
    );
    t.match(
      card.detail,
      /\*\*Weighted 7-point checklist: 5 \(threshold 3\), referral threshold reached\*\* — Change in size 2, Irregular colour 2, Inflammation 1\./,
    );
    t.notMatch(card.detail, /Oozing/);
    t.match(card.detail, /Not recorded: Irregular shape, Largest diameter 7 mm or more, 1 more\./);
    t.match(
      card.detail,
      /Dermoscopic 7-point checklist: not evaluated\*\* \(no dermoscopy recorded for this lesion\)/,
    );
    t.equal(card.selectionBehavior, 'at-most-one');
    t.same(card.links, [
      {
        label: 'NICE NG12 recommendations by site of cancer (skin)',
        url: 'https://www.nice.org.uk/guidance/ng12/chapter/Recommendations-organised-by-site-of-cancer',
        type: 'absolute',
      },
    ]);
    const referral = card.suggestions[0].actions[0];
    t.same(referral.resource, {
      resourceType: 'ServiceRequest',
      status: 'draft',
      intent: 'proposal',
      priority: 'urgent',
      code: { text: 'Dermatology referral: suspected melanoma (suspected cancer pathway)' },
      subject: { reference: 'Patient/pat-123' },
      requester: { reference: 'Practitioner/prac-1' },
      reasonReference: [{ reference: 'Observation/lesion-1' }],
      bodySite: [{ text: 'left forearm' }],
      authoredOn: '2026-11-22',
    });
    t.same(
      card.overrideReasons.map((r: { code: string }) => r.code),
      [
        'patient-preference',
        'clinical-context',
        'input-data-wrong',
        'disagree-estimate',
        'already-handled',
        'not-relevant-now',
      ],
    );
    const explanation = card.extension[EXPLANATION_EXTENSION];
    t.equal(explanation.rules[0].score, 5);
    t.equal(explanation.rules[0].status, 'fired');
    t.equal(explanation.rules[1].status, 'not-evaluable');
    t.equal(explanation.ruleSet.id, 'melanoma-lesion-triage');
    t.match(explanation.ruleSet.sha256, /^[0-9a-f]{64}$/);
  },
);

t.test('order-select: a selection that names no draft order is a 400 naming it', async (t) => {
  const { app } = await buildTestApp();
  t.teardown(() => app.close());
  const drafts = [medicationRequest({ id: 'a', drug: 'ibuprofen', patientId: 'p' })];
  const res = await app.inject({
    method: 'POST',
    url: '/cds-services/nsaid-safety-order-select',
    payload: orderSelectRequest({
      patientId: 'p',
      drafts,
      selections: ['MedicationRequest/a', 'MedicationRequest/zz'],
    }),
  });
  t.equal(res.statusCode, 400);
  const issue = res.json().issue[0];
  t.equal(issue.details.coding[0].code, 'CDS_ERR_CONTEXT_INVALID');
  t.equal(
    issue.diagnostics,
    'The context does not match the "order-select" hook: context.selections[1] "MedicationRequest/zz" names no resource in context.draftOrders',
  );
  t.same(issue.expression, ['context.selections']);
});

t.test('order-sign: a draft order without an id, or an entry without a resource, is a 400', async (t) => {
  const { app } = await buildTestApp();
  t.teardown(() => app.close());
  const { id: _id, ...withoutId } = medicationRequest({ id: 'a', drug: 'ibuprofen', patientId: 'p' });
  for (const [draftOrders, where] of [
    [
      { resourceType: 'Bundle', entry: [{ resource: withoutId }] },
      `context.draftOrders.entry.0.resource must have required property 'id' "id"`,
    ],
    [
      { resourceType: 'Bundle', entry: [{ fullUrl: 'x' }] },
      `context.draftOrders.entry.0 must have required property 'resource' "resource"`,
    ],
    [{ resourceType: 'Parameters' }, 'context.draftOrders.resourceType must be equal to constant'],
  ] as const) {
    const request = orderSignRequest({ patientId: 'p', drafts: [] });
    const res = await app.inject({
      method: 'POST',
      url: '/cds-services/nsaid-safety-order-sign',
      payload: { ...request, context: { ...request.context, draftOrders } },
    });
    t.equal(res.statusCode, 400, where);
    t.equal(res.json().issue[0].diagnostics, `The context does not match the "order-sign" hook: ${where}`);
  }
});
