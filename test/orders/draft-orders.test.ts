import t from 'tap';
import { consideredDraftOrders, selectionProblem } from '../../src/orders/draft-orders.js';
import { draftOrdersBundle, medicationRequest } from '../../tools/synthetic/orders.js';

const a = medicationRequest({ id: 'a', drug: 'ibuprofen', patientId: 'p' });
const b = medicationRequest({ id: 'b', drug: 'paracetamol', patientId: 'p' });
const c = medicationRequest({ id: 'c', drug: 'warfarin', patientId: 'p' });
const draftOrders = draftOrdersBundle([a, b, c]);

t.test('order-select considers only the selected drafts, in draftOrders order', async (t) => {
  const context = { selections: ['MedicationRequest/c', 'MedicationRequest/a'], draftOrders };
  t.same(
    consideredDraftOrders('order-select', context).map((r) => r.id),
    ['a', 'c'],
  );
});

t.test('order-sign considers every draft; other hooks none', async (t) => {
  t.same(
    consideredDraftOrders('order-sign', { draftOrders }).map((r) => r.id),
    ['a', 'b', 'c'],
  );
  t.same(consideredDraftOrders('order-sign', { draftOrders: { resourceType: 'Bundle' } }), []);
  t.same(consideredDraftOrders('patient-view', { draftOrders }), []);
});

t.test('a selection must name a draft order, by type and id', async (t) => {
  t.equal(selectionProblem({ selections: ['MedicationRequest/b'], draftOrders }), undefined);
  t.equal(
    selectionProblem({ selections: ['MedicationRequest/a', 'ServiceRequest/b'], draftOrders }),
    'context.selections[1] "ServiceRequest/b" names no resource in context.draftOrders',
  );
  t.equal(
    selectionProblem({ selections: ['MedicationRequest/a'], draftOrders: { resourceType: 'Bundle' } }),
    'context.selections[0] "MedicationRequest/a" names no resource in context.draftOrders',
  );
});
