import t from 'tap';
import { datumLine, display, evaluateRules, type FocusResult } from '../../src/rules/evaluate.js';
import { loadModels } from '../../src/scoring/load.js';
import { loadServices } from '../../src/services/load.js';
import { loadValueSets } from '../../src/services/value-sets.js';
import { NOW } from '../helpers/app.js';
import { lesion, searchset } from '../helpers/hook-request.js';
import { createFhirPath } from '../../src/rules/fhirpath.js';

/** The FHIRPath engine of this file's loads. */
const engine = createFhirPath();

const melanoma = loadServices(
  'cds-services',
  engine,
  loadValueSets('fhir-profiles'),
  await loadModels('models', engine),
).find((s) => s.definition.id === 'melanoma-lesion-triage')!;

function evaluate(...exams: ReturnType<typeof lesion>[]): FocusResult[] {
  const errors: unknown[] = [];
  const result = evaluateRules(
    melanoma.rules,
    melanoma.focus,
    { lesions: searchset(exams), hookContext: {} },
    NOW,
    (e) => errors.push(e),
  );
  if (errors.length > 0) throw new Error(`rule errors: ${JSON.stringify(errors)}`);
  return result;
}

// NICE NG12 weighted 7-point checklist: major items 2 points, minor items 1 point; refer at 3 or more.
const WEIGHTED = {
  changeSize: 2,
  irregularShape: 2,
  irregularColour: 2,
  diameter7mm: 1,
  inflammation: 1,
  oozing: 1,
  sensation: 1,
} as const;
// Argenziano 1998 dermoscopic 7-point checklist: major 2, minor 1; melanoma suggested at 3 or more.
const DERMOSCOPIC = {
  atypicalNetwork: 2,
  blueWhitishVeil: 2,
  atypicalVascular: 2,
  irregularStreaks: 1,
  irregularPigmentation: 1,
  irregularDotsGlobules: 1,
  regression: 1,
} as const;

function combinations<K extends string>(names: readonly K[]): Record<K, boolean>[] {
  return Array.from({ length: 2 ** names.length }, (_, mask) =>
    Object.fromEntries(names.map((n, i) => [n, (mask & (1 << i)) !== 0])),
  ) as Record<K, boolean>[];
}

t.test('the weighted 7-point checklist scores exactly, for all 128 combinations of items', async (t) => {
  const names = Object.keys(WEIGHTED) as (keyof typeof WEIGHTED)[];
  let mismatches = 0;
  for (const items of combinations(names)) {
    const expected = names.reduce((sum, n) => sum + (items[n] ? WEIGHTED[n] : 0), 0);
    const rule = evaluate(lesion({ items }))[0]!.rules[0]!;
    if (rule.score !== expected || rule.status !== (expected >= 3 ? 'fired' : 'not-fired')) mismatches += 1;
  }
  t.equal(mismatches, 0);
});

t.test('the dermoscopic 7-point checklist scores exactly, for all 128 combinations of items', async (t) => {
  const names = Object.keys(DERMOSCOPIC) as (keyof typeof DERMOSCOPIC)[];
  let mismatches = 0;
  for (const items of combinations(names)) {
    const expected = names.reduce((sum, n) => sum + (items[n] ? DERMOSCOPIC[n] : 0), 0);
    const rule = evaluate(lesion({ items }))[0]!.rules[1]!;
    if (rule.score !== expected || rule.status !== (expected >= 3 ? 'fired' : 'not-fired')) mismatches += 1;
  }
  t.equal(mismatches, 0);
});

t.test(
  'the diameter item is read from the measured diameter when the item itself is not recorded',
  async (t) => {
    const at = (diameterMm: number) =>
      evaluate(lesion({ items: { changeSize: true }, diameterMm }))[0]!.rules[0]!.items!.find(
        (i) => i.id === 'diameter7mm',
      )!.status;
    t.equal(at(7), 'present');
    t.equal(at(6.9), 'absent');
    t.equal(at(12), 'present');
    // A recorded item wins over the measurement.
    const recorded = evaluate(lesion({ items: { diameter7mm: false }, diameterMm: 9 }))[0]!.rules[0]!;
    t.equal(recorded.items!.find((i) => i.id === 'diameter7mm')!.status, 'absent');
  },
);

t.test(
  'a checklist below its threshold is incomplete exactly when its items not recorded could reach it (all 2,187 cases)',
  async (t) => {
    const names = Object.keys(WEIGHTED) as (keyof typeof WEIGHTED)[];
    let mismatches = 0;
    let incomplete = 0;
    for (let code = 0; code < 3 ** names.length; code += 1) {
      // Each item present, absent or not recorded (left out of the examination).
      const items: Partial<Record<keyof typeof WEIGHTED, boolean>> = {};
      names.forEach((n, i) => {
        const state = Math.floor(code / 3 ** i) % 3;
        if (state < 2) items[n] = state === 0;
      });
      const recorded = names.filter((n) => items[n] !== undefined);
      const score = recorded.reduce((sum, n) => sum + (items[n] ? WEIGHTED[n] : 0), 0);
      const open = names.reduce((sum, n) => sum + (items[n] === undefined ? WEIGHTED[n] : 0), 0);
      const rule = evaluate(lesion({ items }))[0]!.rules[0]!;
      const expected =
        recorded.length === 0
          ? { status: 'not-evaluable', incomplete: undefined }
          : score >= 3
            ? { status: 'fired', incomplete: undefined }
            : { status: 'not-fired', incomplete: score + open >= 3 ? true : undefined };
      if (rule.status !== expected.status || rule.incomplete !== expected.incomplete) mismatches += 1;
      if (rule.incomplete) incomplete += 1;
    }
    t.equal(mismatches, 0);
    t.ok(incomplete > 100, `${incomplete} incomplete cases`);
    // Issue 14: one item of seven recorded is incomplete, not "below the threshold".
    const one = evaluate(lesion({ items: { irregularShape: true } }))[0]!.rules[0]!;
    t.same([one.status, one.score, one.incomplete], ['not-fired', 2, true]);
    // Oozing alone missing, nothing present: 0 + 1 < 3, below the threshold whatever it is.
    const six = evaluate(
      lesion({
        items: {
          changeSize: false,
          irregularShape: false,
          irregularColour: false,
          diameter7mm: false,
          inflammation: false,
          sensation: false,
        },
      }),
    )[0]!.rules[0]!;
    t.same([six.status, six.score, six.incomplete], ['not-fired', 0, undefined]);
  },
);

t.test('a checklist with no item recorded is not evaluable, never a score of 0', async (t) => {
  const [focus] = evaluate(lesion({ items: {} }));
  t.equal(focus!.rules[0]!.status, 'not-evaluable');
  t.equal(focus!.rules[0]!.score, undefined);
  t.equal(focus!.rules[0]!.reason!.en, 'no item of the checklist is recorded');
  t.equal(focus!.rules[1]!.status, 'not-evaluable');
  t.equal(focus!.rules[1]!.reason!.en, 'no dermoscopy recorded for this lesion');
});

t.test(
  'only examinations of the last 90 days with a usable status are assessed, each on its own',
  async (t) => {
    const focuses = evaluate(
      lesion({ id: 'recent', site: 'back', date: '2026-11-01T08:00:00Z', items: { oozing: true } }),
      // NOW is 2026-11-22T09:30Z: 90 days earlier is 2026-08-24T09:30Z.
      lesion({ id: 'old', date: '2026-08-24T09:00:00Z', items: { changeSize: true } }),
      lesion({ id: 'error', status: 'entered-in-error', items: { changeSize: true } }),
      lesion({ id: 'edge', site: 'scalp', date: '2026-08-24T10:00:00Z', items: { changeSize: true } }),
    );
    t.same(
      focuses.map((f) => [f.reference, f.label, f.date]),
      [
        ['Observation/recent', 'back', '2026-11-01T08:00:00Z'],
        ['Observation/edge', 'scalp', '2026-08-24T10:00:00Z'],
      ],
    );
  },
);

t.test('a rule that throws on unexpected data is reported and marked not evaluable', async (t) => {
  const reports: unknown[] = [];
  const broken = {
    ...melanoma.rules[0]!,
    items: [
      {
        spec: { id: 'boom', label: { en: 'x', fr: 'x' }, points: 1, value: 'x' },
        value: {
          source: 'x',
          evaluate: () => {
            throw new TypeError('bad data');
          },
          first: () => {
            throw new TypeError('bad data');
          },
        },
      },
    ],
  };
  const [focus] = evaluateRules(
    [broken],
    melanoma.focus,
    { lesions: searchset([lesion()]), hookContext: {} },
    NOW,
    (r) => reports.push(r.ruleId),
  );
  t.same(reports, ['weighted7pcl']);
  t.equal(focus!.rules[0]!.status, 'not-evaluable');
  t.equal(focus!.rules[0]!.reason!.en, 'the record holds data this rule cannot read');
});

t.test(
  'a condition rule fires on its FHIRPath test and reports its evidence with units and dates',
  async (t) => {
    const compile = (source: string) => engine.compile(source, ['labs', 'hookContext']);
    const rule = {
      kind: 'condition' as const,
      spec: {
        id: 'lowEgfr',
        kind: 'condition' as const,
        title: { en: 'eGFR below 30', fr: 'DFG inférieur à 30' },
        when: "%labs.entry.resource.where(code.coding.code = '33914-3').value < 30 'mL/min/{1.73_m2}'",
        source: { label: 'test' },
      },
      when: compile("%labs.entry.resource.where(code.coding.code = '33914-3').value < 30 'mL/min/{1.73_m2}'"),
      evidence: [
        {
          label: { en: 'eGFR', fr: 'DFG' },
          value: compile("%labs.entry.resource.where(code.coding.code = '33914-3').value"),
        },
        { label: { en: 'on', fr: 'le' }, value: compile('%labs.entry.resource.effective') },
        { label: { en: 'coded as', fr: 'codé' }, value: compile('%labs.entry.resource.code') },
      ],
    };
    const egfr = (value: number) =>
      searchset([
        {
          resourceType: 'Observation',
          id: 'egfr',
          status: 'final',
          code: { coding: [{ system: 'http://loinc.org', code: '33914-3', display: 'eGFR' }] },
          effectiveDateTime: '2026-10-01',
          valueQuantity: {
            value,
            unit: 'mL/min/{1.73_m2}',
            system: 'http://unitsofmeasure.org',
            code: 'mL/min/{1.73_m2}',
          },
        },
      ]);
    const run = (value: number) =>
      evaluateRules([rule], undefined, { labs: egfr(value), hookContext: {} }, NOW, () => {})[0]!;
    const low = run(24);
    t.equal(low.reference, undefined);
    t.same(low.rules[0]!.evidence, [
      { label: { en: 'eGFR', fr: 'DFG' }, values: ['24 mL/min/{1.73_m2}'] },
      { label: { en: 'on', fr: 'le' }, values: ['2026-10-01'] },
      { label: { en: 'coded as', fr: 'codé' }, values: ['eGFR'] },
    ]);
    t.equal(low.rules[0]!.status, 'fired');
    const normal = run(75).rules[0]!;
    t.equal(normal.status, 'not-fired');
    t.equal(normal.evidence, undefined);
  },
);

t.test('display() renders FHIRPath results readably', async (t) => {
  t.equal(display(3), '3');
  t.equal(display({ value: 7, code: 'mm' }), '7 mm');
  t.equal(display({ text: 'left knee', coding: [{ code: 'x' }] }), 'left knee');
  t.equal(display({ coding: [{ system: 's', code: 'I' }] }), 'I');
  t.equal(display({ foo: 1 }), '{"foo":1}');
});

t.test('defines are evaluated per focus, in order, typed, and reach labels and rules', async (t) => {
  const vars = ['hookContext', 'draftOrders'];
  const defines = [
    { name: 'started', expression: engine.compile('authoredOn', vars, true) },
    {
      name: 'longAgo',
      expression: engine.compile('%started <= now() - 1 year', [...vars, 'started'], true),
    },
  ];
  const all = [...vars, 'started', 'longAgo'];
  const focus = {
    expression: engine.compile('%draftOrders', vars),
    label: engine.compile("id & ' since ' & %started.toString()", all),
    date: undefined,
  };
  const rule = {
    kind: 'condition' as const,
    spec: {
      id: 'old',
      kind: 'condition' as const,
      title: { en: 'Old', fr: 'Ancien' },
      when: '%longAgo',
      source: { label: 's' },
    },
    when: engine.compile('%longAgo', all),
    evidence: [],
  };
  const drafts = [
    { resourceType: 'MedicationRequest', id: 'a', authoredOn: '2020-01-01T00:00:00Z' },
    { resourceType: 'MedicationRequest', id: 'b', authoredOn: '2026-11-01' },
  ];
  const reports: string[] = [];
  const focuses = evaluateRules(
    [rule],
    focus,
    { hookContext: {}, draftOrders: drafts },
    NOW,
    (r) => reports.push(r.ruleId),
    defines,
  );
  t.same(
    focuses.map((f) => [f.reference, f.label, f.rules[0]!.status]),
    [
      ['MedicationRequest/a', 'a since 2020-01-01T00:00:00Z', 'fired'],
      ['MedicationRequest/b', 'b since 2026-11-01', 'not-fired'],
    ],
  );
  t.equal(focuses[0]!.resource, drafts[0], 'the focus resource itself, for actions on it');
  t.same(reports, []);
});

t.test('a define that throws is reported and reads as empty', async (t) => {
  const vars = ['hookContext', 'bad'];
  const reports: string[] = [];
  const [result] = evaluateRules(
    [
      {
        kind: 'condition',
        spec: {
          id: 'r',
          kind: 'condition',
          title: { en: 'R', fr: 'R' },
          when: '%bad.empty()',
          source: { label: 's' },
        },
        when: engine.compile('%bad.empty()', vars),
        evidence: [],
      },
    ],
    undefined,
    { hookContext: {} },
    NOW,
    (r) => reports.push(r.ruleId),
    // `1 + 'a'` is a type error at evaluation time, not at compile time.
    [{ name: 'bad', expression: engine.compile("1 + 'a'", ['hookContext'], true) }],
  );
  t.same(reports, ['%bad']);
  t.equal(result!.rules[0]!.status, 'fired');
  t.equal(result!.resource, undefined);
});

t.test('data states: current, stale, unreadable (no date, wrong type) and not recorded', async (t) => {
  const nsaid = loadServices(
    'cds-services',
    engine,
    loadValueSets('fhir-profiles'),
    await loadModels('models', engine),
  ).find((s) => s.definition.id === 'nsaid-safety-order-sign')!;
  const egfr = (extra: Record<string, unknown>) => ({
    resourceType: 'Observation',
    id: 'e1',
    status: 'final',
    code: { coding: [{ system: 'http://loinc.org', code: '33914-3' }] },
    ...extra,
  });
  const quantity = { valueQuantity: { value: 45, unit: 'mL/min/{1.73_m2}', code: 'mL/min/{1.73_m2}' } };
  const stateOf = (observations: object[]) => {
    const [focus] = evaluateRules(
      [],
      undefined,
      {
        egfr: searchset(observations as never[]),
        patient: { resourceType: 'Patient', id: 'p' },
        weight: searchset([]),
        medications: searchset([]),
        conditions: searchset([]),
        pregnancy: searchset([]),
        hookContext: {},
        draftOrders: [],
        valueSets: loadValueSets('fhir-profiles'),
      },
      NOW,
      (e) => {
        throw e.error;
      },
      nsaid.defines,
      nsaid.data,
    );
    return focus!.data!.find((d) => d.id === 'latestEgfr')!;
  };
  t.match(stateOf([egfr({ effectiveDateTime: '2026-10-01', ...quantity })]), {
    state: 'current',
    value: '45 mL/min/1.73 m²',
    date: '2026-10-01',
  });
  const stale = stateOf([egfr({ effectiveDateTime: '2025-11-01', ...quantity })]);
  t.equal(stale.state, 'stale', 'older than 12 months on 2026-11-22');
  t.same(datumLine(stale), {
    en: 'eGFR 45 mL/min/1.73 m² (2025-11-01), older than 12 months',
    fr: 'DFGe 45 mL/min/1,73 m² (2025-11-01), datant de plus de 12 mois',
  });
  const undated = stateOf([egfr(quantity)]);
  t.match(undated, { state: 'unreadable', reason: { en: 'the record has no date' } });
  const text = stateOf([egfr({ effectiveDateTime: '2026-10-01', valueString: '45' })]);
  t.match(text, { state: 'unreadable', value: 'valueString: "45"' });
  t.equal(
    datumLine(text).fr,
    'DFGe illisible (2026-10-01) : valeur qui n’est pas un nombre avec une unité (valueString: "45")',
  );
  t.same(stateOf([]), {
    id: 'latestEgfr',
    label: { en: 'eGFR', fr: 'DFGe' },
    state: 'not-recorded',
    window: nsaid.data[0]!.spec.window,
  });
  // The latest record decides: an unreadable latest is not replaced by an older readable one.
  t.equal(
    stateOf([
      egfr({ effectiveDateTime: '2026-09-01', ...quantity }),
      egfr({ id: 'e2', effectiveDateTime: '2026-10-01', valueString: '45' }),
    ]).state,
    'unreadable',
  );
});

t.test(
  'data options: the earliest record, every record checked, data whose absence a rule handles',
  async (t) => {
    const cyproterone = loadServices(
      'cds-services',
      engine,
      loadValueSets('fhir-profiles'),
      await loadModels('models', engine),
    ).find((s) => s.definition.id === 'cyproterone-meningioma-order-sign')!;
    const mri = (id: string, performed: Record<string, unknown>) => ({
      resourceType: 'Procedure',
      id,
      status: 'completed',
      code: {
        coding: [
          {
            system: 'https://explainable-cds.example.org/fhir/CodeSystem/cds-local-prescribing',
            code: 'brain-mri',
          },
        ],
      },
      ...performed,
    });
    const run = (mris: object[]) => {
      const [focus] = evaluateRules(
        cyproterone.rules,
        undefined,
        {
          medicationHistory: searchset([]),
          brainMri: searchset(mris as never[]),
          hookContext: {},
          draftOrders: [],
          valueSets: loadValueSets('fhir-profiles'),
        },
        NOW,
        (e) => {
          throw e.error;
        },
        cyproterone.defines,
        cyproterone.data,
      );
      const datum = (id: string) => focus!.data!.find((d) => d.id === id)!;
      const rule = (id: string) => focus!.rules.find((r) => r.id === id)!;
      return { datum, rule };
    };
    // pick: earliest: the first MRI is the earliest, whatever the record order; the latest is the last.
    const dated = run([
      mri('b', { performedDateTime: '2024-10-01' }),
      mri('a', { performedDateTime: '2020-05-20' }),
      mri('c', { performedPeriod: { start: '2022-01-01' } }),
    ]);
    t.match(dated.datum('firstMri'), { state: 'current', date: '2020-05-20' });
    t.match(dated.datum('lastMri'), { state: 'stale', date: '2024-10-01' });
    t.same(datumLine(dated.datum('lastMri')), {
      en: 'last brain MRI (2024-10-01), older than 24 months',
      fr: 'dernière IRM cérébrale (2024-10-01), datant de plus de 24 mois',
    });
    // dataMayBeAbsent: a stale datum does not stop the rule, which fires on it and reports its state.
    t.match(dated.rule('mriOlderThan2Years'), {
      status: 'fired',
      data: [
        { id: 'firstMri', state: 'current' },
        { id: 'lastMri', state: 'stale' },
      ],
    });
    // Not recorded: the rule is evaluated with the variable empty.
    const none = run([]);
    t.equal(none.datum('firstMri').state, 'not-recorded');
    t.equal(none.rule('noBrainMri').status, 'fired');
    t.equal(none.rule('fiveYearsFromFirstMri').status, 'not-fired');
    // checkEvery: one undated record among dated ones makes the datum unreadable (it may be the first),
    // and only then is a dataMayBeAbsent rule not evaluable.
    const undated = run([mri('a', { performedDateTime: '2020-05-20' }), mri('u', {})]);
    t.match(undated.datum('firstMri'), { state: 'unreadable', reason: { en: 'no date' } });
    t.notOk('date' in undated.datum('firstMri'), 'the undated record is the one reported');
    t.match(undated.rule('noBrainMri'), {
      status: 'not-evaluable',
      reason: { en: 'first brain MRI unreadable: no date' },
    });
  },
);
