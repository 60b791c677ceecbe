import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import t, { type Test } from 'tap';
import { CdsError } from '../../src/errors.js';
import { loadModels } from '../../src/scoring/load.js';
import { loadServices } from '../../src/services/load.js';
import { loadValueSets } from '../../src/services/value-sets.js';
import { createFhirPath } from '../../src/rules/fhirpath.js';

/** The FHIRPath engine of this file's loads. */
const engine = createFhirPath();

const MODELS = await loadModels('models', engine);
const VALUE_SETS = loadValueSets('fhir-profiles');

const MELANOMA = readFileSync('cds-services/melanoma-lesion-triage.yaml', 'utf8');
const NSAID = readFileSync('cds-services/nsaid-safety.yaml', 'utf8');
const CYPROTERONE = readFileSync('cds-services/cyproterone-meningioma.yaml', 'utf8');

/** Writes the given files into a fresh folder and returns the error loading it throws (or none). */
function loadError(t: Test, files: Record<string, string>): CdsError | undefined {
  const dir = mkdtempSync(join(tmpdir(), 'cds-services-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  for (const [name, text] of Object.entries(files)) writeFileSync(join(dir, name), text);
  try {
    loadServices(dir, engine, VALUE_SETS, MODELS);
    return undefined;
  } catch (error) {
    if (!(error instanceof CdsError)) throw error;
    return error;
  }
}

const cases: [string, string, string][] = [
  ['YAML that does not parse', 'id: [unclosed', 'broken.yaml: YAML: '],
  [
    'a missing required field',
    MELANOMA.replace(/^hook: patient-view\n/m, ''),
    "broken.yaml: must have required property 'hook'",
  ],
  [
    'an unknown hook',
    MELANOMA.replace('hook: patient-view', 'hook: chart-open'),
    'broken.yaml#/hook: must be equal to one of the allowed values ([',
  ],
  [
    'a summary of 140 characters or more',
    MELANOMA.replace(/en: 'Lesion \(\{\{focus.label\}\}\): a 7-point[^']*'/, `en: '${'x'.repeat(140)}'`),
    'broken.yaml#/cards/0/summary/en: must NOT have more than 139 characters',
  ],
  [
    'a FHIRPath expression that does not compile',
    MELANOMA.replace(
      "code = '7pcl-change-size').exists()).value",
      "code = '7pcl-change-size').exists()).value.(",
    ),
    'broken.yaml#/rules/0/items/0/value: invalid FHIRPath',
  ],
  [
    'a FHIRPath variable that is not a prefetch key',
    MELANOMA.replace('%lesions.entry', '%lesionz.entry'),
    'broken.yaml#/focus/expression: unknown variable %lesionz (available: %lesions, %patient, %conditions, %skin, %consent, %hookContext, %draftOrders, %valueSets)',
  ],
  [
    'a prefetch token the hook does not define',
    MELANOMA.replace('patient={{context.patientId}}', 'patient={{context.medications}}'),
    'broken.yaml#/prefetch/lesions/query: token {{context.medications}} is not a prefetch token of the patient-view hook',
  ],
  [
    'a card that names an unknown rule',
    MELANOMA.replace('anyFired: [weighted7pcl, dermoscopic7pt]', 'anyFired: [weighted7pcl, abcdRule]'),
    'broken.yaml#/cards/0/when/anyFired: no rule with id "abcdRule"',
  ],
  [
    'a card placeholder the renderer does not know',
    MELANOMA.replace('Lesion ({{focus.label}}): a 7-point', 'Lesion ({{focus.site}}): a 7-point'),
    'broken.yaml#/cards/0/summary/en: unknown placeholder {{focus.site}}',
  ],
  [
    'suggestions without selectionBehavior (CDS Hooks 2.0 §Card)',
    MELANOMA.replace('    selectionBehavior: at-most-one\n', ''),
    'broken.yaml#/cards/0: must have property selectionBehavior when property suggestions is present',
  ],
  [
    'an override reason outside the catalogue',
    `${MELANOMA}overrideReasons: [patient-preference, too-busy]\n`,
    'broken.yaml#/overrideReasons/1: must be equal to one of the allowed values (["patient-preference"',
  ],
  [
    'a rule id used twice',
    MELANOMA.replace('id: dermoscopic7pt', 'id: weighted7pcl'),
    'broken.yaml#/rules: rule id "weighted7pcl" is used twice',
  ],
];

const modelCases: [string, string, string][] = [
  [
    'a model the models folder does not hold',
    MELANOMA.replace(
      '  - id: melanoma-risk\n    version: 1.0.0',
      '  - id: melanoma-riks\n    version: 1.0.0',
    ),
    'broken.yaml#/models/0/id: no model "melanoma-riks" in the models folder',
  ],
  [
    'a model at another version',
    MELANOMA.replace(
      '  - id: melanoma-risk\n    version: 1.0.0',
      '  - id: melanoma-risk\n    version: 1.1.0',
    ),
    'broken.yaml#/models/0/version: model "melanoma-risk" is version 1.0.0, not 1.1.0',
  ],
  [
    'a model whose inputs are not prefetched',
    MELANOMA.replace(/^  skin:\n(    .*\n)+?(?=  consent:)/m, ''),
    'broken.yaml#/models/0: model "melanoma-risk" reads %skin: add the prefetch key',
  ],
  [
    'models without the prefetch key of the Consent resources',
    MELANOMA.replace('patientObjection: consent\n', ''),
    'broken.yaml#/patientObjection: a service that runs models must name the prefetch key of the Consent resources',
  ],
  [
    'an objection key that is not a prefetch key',
    MELANOMA.replace('patientObjection: consent', 'patientObjection: consents'),
    'broken.yaml#/patientObjection: no prefetch key "consents"',
  ],
  [
    'a card about a model the service does not run',
    MELANOMA.replace(
      'model: melanoma-risk,\n        scored: true,',
      'model: knee-oa-progression,\n        scored: true,',
    ),
    'broken.yaml#/cards/4/when/model: the service does not run model "knee-oa-progression"',
  ],
  [
    'a card naming a band the model does not have',
    MELANOMA.replace(
      'model: melanoma-risk,\n        scored: true,',
      'model: melanoma-risk,\n        scored: true,\n        bands: [severe],',
    ),
    'broken.yaml#/cards/4/when/bands: model "melanoma-risk" has no band "severe"',
  ],
  [
    'a model placeholder on a card that is not about a model',
    MELANOMA.replace('Lesion ({{focus.label}}): a 7-point', 'Lesion ({{model.risk}}): a 7-point'),
    'broken.yaml#/cards/0/summary/en: unknown placeholder {{model.risk}}',
  ],
];

/** The `data` entries: every id named exists, and a window needs a date to be compared with. */
const dataCases: [string, string, string][] = [
  [
    'a rule reading an unknown data entry',
    NSAID.replace(
      "data: [latestEgfr]\n    when: '%egfrValue < 30'",
      "data: [lastEgfr]\n    when: '%egfrValue < 30'",
    ),
    'broken.yaml#/rules/1/data: no data entry with id "lastEgfr"',
  ],
  [
    'a card condition on an unknown data entry',
    NSAID.replace('anyDataUnusable: [latestEgfr]', 'anyDataUnusable: [egfr]'),
    'broken.yaml#/cards/2/when/anyDataUnusable: no data entry with id "egfr"',
  ],
  [
    'a placeholder of an unknown data entry',
    NSAID.replace('{{data.latestEgfr}}', '{{data.egfr}}'),
    'broken.yaml#/cards/2/summary/en: unknown placeholder {{data.egfr}}',
  ],
  [
    'a window without a date',
    NSAID.replace(
      "    date: 'effective.ofType(dateTime)'\n    readable:\n      - test: 'value.ofType(Quantity).value.exists()'",
      "    readable:\n      - test: 'value.ofType(Quantity).value.exists()'",
    ),
    'broken.yaml#/data/latestEgfr: must have property date when property window is present',
  ],
  [
    'a rule whose absent data names an unknown data entry',
    CYPROTERONE.replace('dataMayBeAbsent: [treatmentStart]', 'dataMayBeAbsent: [startDate]'),
    'broken.yaml#/rules/0/dataMayBeAbsent: no data entry with id "startDate"',
  ],
  [
    'a datum both needed current and allowed absent by one rule',
    CYPROTERONE.replace(
      'dataMayBeAbsent: [treatmentStart]',
      'data: [treatmentStart]\n    dataMayBeAbsent: [treatmentStart]',
    ),
    'broken.yaml#/rules/0/dataMayBeAbsent: "treatmentStart" is also in data',
  ],
  [
    'a window on a datum picking the earliest record (a date a schedule counts from does not age)',
    CYPROTERONE.replace(
      "    pick: earliest\n    checkEvery: true\n    readable:\n      - test: 'authoredOn.exists()'",
      "    pick: earliest\n    checkEvery: true\n    window: { months: 6, source: { label: x } }\n    readable:\n      - test: 'authoredOn.exists()'",
    ),
    'broken.yaml#/data/treatmentStart/window: a datum picking the earliest record has no window',
  ],
];

/** A card's `outcome` (npm run evaluate) is checked at start-up like the rest of the definition. */
const outcomeCases: [string, string, string][] = [
  [
    'a card outcome without its source',
    MELANOMA.replace(
      /^      source:\n        label:\n          en: 'NICE NG12 \(2015\), section 1\.7[^\n]*\n[^\n]*\n[^\n]*\n[^\n]*\n/m,
      '',
    ),
    "broken.yaml#/cards/0/outcome: must have required property 'source'",
  ],
  [
    'a card outcome whose expression does not compile',
    MELANOMA.replace(
      "code.startsWith('C43')).exists()\n      date:",
      "code.startsWith('C43')).exists(\n      date:",
    ),
    'broken.yaml#/cards/0/outcome/expression: ',
  ],
  [
    'a card outcome reading a call variable',
    MELANOMA.replace(
      'date: effective.ofType(dateTime) | issued',
      'date: effective.ofType(dateTime) | %patient.birthDate',
    ),
    'broken.yaml#/cards/0/outcome/date: unknown variable %patient',
  ],
  [
    'a card outcome reading a value set',
    NSAID.replace(
      "verificationStatus.coding.where(code in ('refuted' | 'entered-in-error')).empty()\n        and code.coding",
      "code.inValueSet('heart-failure')\n        and code.coding",
    ),
    'broken.yaml#/cards/0/outcome/expression: the evaluation reads outcomes without value sets: name the codes',
  ],
  [
    'an outcome on a card about a model',
    MELANOMA.replace(
      '    topic:\n      { code: melanoma-risk-model',
      `    outcome: { label: { en: a, fr: a }, resourceType: Condition, expression: 'true', date: recordedDate, horizonMonths: 3, source: { label: x } }\n    topic:\n      { code: melanoma-risk-model`,
    ),
    "broken.yaml#/cards/4/outcome: a card about a model has the model's outcomeDefinition (its manifest)",
  ],
];

for (const [what, text, message] of [...cases, ...modelCases, ...dataCases, ...outcomeCases]) {
  t.test(`start-up stops on ${what}, naming the file, the place and the reason`, async (t) => {
    const error = loadError(t, { 'broken.yaml': text });
    t.equal(error?.code, 'CDS_ERR_DEFINITION_INVALID');
    t.ok(error?.message.startsWith(message), `${error?.message}\n  should start with\n${message}`);
  });
}

t.test('two files with the same service id stop start-up', async (t) => {
  const error = loadError(t, { 'a.yaml': MELANOMA, 'b.yaml': MELANOMA });
  t.equal(error?.message, 'b.yaml#/id: service id "melanoma-lesion-triage" is already used by a.yaml');
});

t.test('a missing services folder stops start-up with its name', async (t) => {
  t.throws(() => loadServices('no-such-folder', engine), {
    code: 'CDS_ERR_DEFINITION_INVALID',
    message: /^no-such-folder: cannot read/,
  });
});

t.test('the bundled definitions load, with a file hash, compiled rules and their models', async (t) => {
  const services = loadServices('cds-services', engine, VALUE_SETS, MODELS);
  t.same(
    services
      .filter((s) => s.models.length > 0)
      .map((s) => [s.file, s.models.map((m) => `${m.manifest.id} ${m.manifest.version}`)]),
    [
      ['knee-oa-progression.yaml', ['knee-oa-progression 1.0.0']],
      ['melanoma-lesion-triage.yaml', ['melanoma-risk 1.0.0']],
    ],
  );
  const service = services.find((s) => s.definition.id === 'melanoma-lesion-triage');
  t.equal(service!.file, 'melanoma-lesion-triage.yaml');
  t.match(service!.sha256, /^[0-9a-f]{64}$/);
  t.same(
    service!.rules.map((r) => r.spec.id),
    ['weighted7pcl', 'dermoscopic7pt'],
  );
});

/** A small ordering-hook definition: a focus on the draft orders, a define, one rule, one suggestion. */
const ORDERS = `id: order-demo
version: 1.0.0
hooks: [order-select, order-sign]
title: Order demo
description: Flags draft orders of a value set.
guideline:
  - label: A guideline
prefetch:
  patient:
    query: 'Patient/{{context.patientId}}'
    onFailure: fail
    description: { en: the patient, fr: le patient }
focus:
  expression: "%draftOrders.ofType(MedicationRequest)"
  label: medicationCodeableConcept.text
define:
  coded: "medicationCodeableConcept.inValueSet('oral-nsaid')"
rules:
  - id: listed
    kind: condition
    title: { en: Listed, fr: Listé }
    when: '%coded.exists()'
    source: { label: A source }
cards:
  - id: flag
    when: { anyFired: [listed] }
    indicator: warning
    summary: { en: '{{focus.label}} is listed', fr: '{{focus.label}} est listé' }
    selectionBehavior: at-most-one
    suggestions:
      - id: change
        label: { en: Change, fr: Changer }
        when: { anyFired: [listed] }
        actions:
          - type: update
            description: { en: Change it, fr: Le changer }
            focusChanges: { note: [{ text: changed }] }
`;

function withValueSets(t: Test, files: Record<string, string>): CdsError | undefined {
  const dir = mkdtempSync(join(tmpdir(), 'cds-services-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  for (const [name, text] of Object.entries(files)) writeFileSync(join(dir, name), text);
  try {
    loadServices(dir, engine, loadValueSets('fhir-profiles'));
    return undefined;
  } catch (error) {
    if (!(error instanceof CdsError)) throw error;
    return error;
  }
}

t.test('a definition listing several hooks yields one service per hook', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'cds-services-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  writeFileSync(join(dir, 'orders.yaml'), ORDERS);
  const services = loadServices(dir, engine, loadValueSets('fhir-profiles'));
  t.same(
    services.map((s) => [s.definition.id, s.definition.hook, s.definition.title, s.file]),
    [
      ['order-demo-order-select', 'order-select', 'Order demo (order-select)', 'orders.yaml'],
      ['order-demo-order-sign', 'order-sign', 'Order demo (order-sign)', 'orders.yaml'],
    ],
  );
  t.notOk('hooks' in services[0]!.definition);
  t.equal(services[0]!.sha256, services[1]!.sha256, 'one file, one rule-set hash');
  t.same(
    services[0]!.defines.map((d) => d.name),
    ['coded'],
  );
  t.ok(services[0]!.valueSets.get('oral-nsaid'));
});

const orderCases: [string, string, string][] = [
  [
    'both hook and hooks',
    ORDERS.replace('hooks: [order-select, order-sign]', 'hook: order-sign\nhooks: [order-select]'),
    'broken.yaml: must match exactly one schema in oneOf',
  ],
  [
    'neither hook nor hooks',
    ORDERS.replace('hooks: [order-select, order-sign]\n', ''),
    "broken.yaml: must have required property 'hook'",
  ],
  [
    'a generated id longer than 64 characters',
    ORDERS.replace('id: order-demo', `id: ${'o'.repeat(60)}`),
    `broken.yaml#/id: the service id "${'o'.repeat(60)}-order-select" is longer than 64 characters`,
  ],
  [
    'a prefetch key named like a platform variable',
    ORDERS.replace('  patient:\n', '  draftOrders:\n'),
    'broken.yaml#/prefetch/draftOrders: "draftOrders" is a platform variable; name the prefetch key otherwise',
  ],
  [
    'a define named like a prefetch key',
    ORDERS.replace('  coded: "', '  patient: "').replace(
      "when: '%coded.exists()'",
      "when: '%patient.exists()'",
    ),
    'broken.yaml#/define/patient: "patient" is already a prefetch key, a platform variable or defined',
  ],
  [
    'an unknown value set',
    ORDERS.replace("inValueSet('oral-nsaid')", "inValueSet('oral-nsaids')"),
    "broken.yaml#/define/coded: unknown value set inValueSet('oral-nsaids') (available: ace-inhibitor-arb, ",
  ],
  [
    'a focus expression reading a define (defines are evaluated on each focus)',
    ORDERS.replace('expression: "%draftOrders.ofType(MedicationRequest)"', 'expression: "%coded"'),
    'broken.yaml#/focus/expression: unknown variable %coded',
  ],
  [
    'a suggestion condition naming an unknown rule',
    ORDERS.replace('        when: { anyFired: [listed] }', '        when: { anyFired: [unlisted] }'),
    'broken.yaml#/cards/0/suggestions/0/when/anyFired: no rule with id "unlisted"',
  ],
  [
    'an update with both a resource and focus changes',
    ORDERS.replace(
      '            focusChanges: {',
      '            resource: { resourceType: MedicationRequest }\n            focusChanges: {',
    ),
    'broken.yaml#/cards/0/suggestions/0/actions/0: a update action needs exactly one of resource and focusChanges',
  ],
  [
    'a delete without resourceId',
    ORDERS.replace('          - type: update', '          - type: delete'),
    'broken.yaml#/cards/0/suggestions/0/actions/0: a delete action names its target with resourceId only',
  ],
  [
    'focus changes that change the id',
    ORDERS.replace('focusChanges: { note', 'focusChanges: { id: x, note'),
    'broken.yaml#/cards/0/suggestions/0/actions/0/focusChanges/id: focusChanges cannot change id',
  ],
  [
    'focus changes in a service without a focus',
    ORDERS.replace(/focus:\n {2}expression: .*\n {2}label: .*\n/, '')
      .replace('{{focus.label}} is', 'It is')
      .replace('{{focus.label}} est', 'Il est'),
    'broken.yaml#/cards/0/suggestions/0/actions/0/focusChanges: focusChanges needs a focus',
  ],
  [
    'a resourceId placeholder other than the focus reference',
    ORDERS.replace(
      '          - type: update\n            description: { en: Change it, fr: Le changer }\n            focusChanges: { note: [{ text: changed }] }',
      "          - type: delete\n            description: { en: Drop it, fr: L'enlever }\n            resourceId: '{{context.patientId}}'",
    ),
    'broken.yaml#/cards/0/suggestions/0/actions/0/resourceId: must match pattern',
  ],
];

for (const [what, text, message] of orderCases) {
  t.test(`start-up stops on ${what}`, async (t) => {
    const error = withValueSets(t, { 'broken.yaml': text });
    t.equal(error?.code, 'CDS_ERR_DEFINITION_INVALID');
    t.ok(error?.message.startsWith(message), `${error?.message}\n  should start with\n${message}`);
  });
}

t.test('the bundled prescribing services load, two hooks each', async (t) => {
  const ids = loadServices('cds-services', engine, VALUE_SETS, MODELS).map((s) => s.definition.id);
  t.same(ids, [
    'cyproterone-meningioma-order-select',
    'cyproterone-meningioma-order-sign',
    'knee-oa-progression',
    'melanoma-lesion-triage',
    'nsaid-safety-order-select',
    'nsaid-safety-order-sign',
    'topiramate-pregnancy-prevention-order-select',
    'topiramate-pregnancy-prevention-order-sign',
    'valproate-pregnancy-prevention-order-select',
    'valproate-pregnancy-prevention-order-sign',
  ]);
});
