import t from 'tap';
import type { FeatureValue } from '../../src/scoring/features.js';
import { minimumRecordedRefusals } from '../../src/scoring/minimum-recorded.js';

const label = (en: string) => ({ en, fr: `${en} (fr)` });
const FEATURES = ['a', 'b', 'c', 'd'].map((id) => ({ id, label: label(id.toUpperCase()) }));
const value = (id: string, status: FeatureValue['status']): FeatureValue => ({
  id,
  label: label(id.toUpperCase()),
  unit: '1',
  value: 1,
  status,
  state: status === 'observed' ? 'met' : status === 'assumed-absent' ? 'not-met' : 'not-evaluable',
  ...(status === 'imputed' ? { imputedBecause: 'missing' as const } : {}),
});
const minimum = (count: number) => ({
  id: 'items',
  label: label('Checklist items'),
  features: ['a', 'b', 'c'],
  count,
});

t.test('only observed values count as recorded; the refusal names the others', async (t) => {
  // b imputed, c taken as absent, d (not in the group) observed; a refused by its own policy (no value).
  const values = [value('b', 'imputed'), value('c', 'assumed-absent'), value('d', 'observed')];
  t.same(minimumRecordedRefusals([minimum(1)], FEATURES, values), [
    {
      code: 'incomplete',
      text: {
        en: 'Checklist items not recorded: A, B, C (1 of 3 needed)',
        fr: 'Checklist items (fr) non renseignés : A (fr), B (fr), C (fr) (1 sur 3 requis)',
      },
    },
  ]);
});

t.test('a minimum met gives no refusal; all of them needed says so', async (t) => {
  const two = [value('a', 'observed'), value('b', 'observed'), value('c', 'imputed')];
  t.same(minimumRecordedRefusals([minimum(2)], FEATURES, two), [], '2 of 3 recorded, 2 needed');
  t.same(
    minimumRecordedRefusals([minimum(3)], FEATURES, two).map((r) => r.text.en),
    ['Checklist items not recorded: C (all 3 needed)'],
  );
  t.same(minimumRecordedRefusals([], FEATURES, []), [], 'no minimum, no refusal');
});
