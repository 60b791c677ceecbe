import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import t, { type Test } from 'tap';
import { CdsError } from '../../src/errors.js';
import { loadModels } from '../../src/models/load.js';
import { loadServices } from '../../src/services/load.js';

const MODELS = await loadModels('models');

const MELANOMA = readFileSync('cds-services/melanoma-lesion-triage.yaml', 'utf8');

/** Writes the given files into a fresh folder and returns the error loading it throws (or none). */
function loadError(t: Test, files: Record<string, string>): CdsError | undefined {
  const dir = mkdtempSync(join(tmpdir(), 'cds-services-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  for (const [name, text] of Object.entries(files)) writeFileSync(join(dir, name), text);
  try {
    loadServices(dir, MODELS);
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
    'broken.yaml#/focus/expression: unknown variable %lesionz (available: %lesions, %patient, %conditions, %skin, %consent, %hookContext)',
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

for (const [what, text, message] of cases) {
  t.test(`start-up stops on ${what}, naming the file, the place and the reason`, async (t) => {
    const error = loadError(t, { 'broken.yaml': text });
    t.equal(error?.code, 'CDS_ERR_DEFINITION_INVALID');
    t.ok(error?.message.startsWith(message), `${error?.message}\n  should start with\n${message}`);
  });
}

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
      'when: { model: melanoma-risk, scored: true }',
      'when: { model: knee-oa-progression, scored: true }',
    ),
    'broken.yaml#/cards/3/when/model: the service does not run model "knee-oa-progression"',
  ],
  [
    'a card naming a band the model does not have',
    MELANOMA.replace(
      'when: { model: melanoma-risk, scored: true }',
      'when: { model: melanoma-risk, scored: true, bands: [severe] }',
    ),
    'broken.yaml#/cards/3/when/bands: model "melanoma-risk" has no band "severe"',
  ],
  [
    'a model placeholder on a card that is not about a model',
    MELANOMA.replace('Lesion ({{focus.label}}): a 7-point', 'Lesion ({{model.risk}}): a 7-point'),
    'broken.yaml#/cards/0/summary/en: unknown placeholder {{model.risk}}',
  ],
];

for (const [what, text, message] of modelCases) {
  t.test(`start-up stops on ${what}`, async (t) => {
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
  t.throws(() => loadServices('no-such-folder'), {
    code: 'CDS_ERR_DEFINITION_INVALID',
    message: /^no-such-folder: cannot read/,
  });
});

t.test('the bundled definitions load, with a file hash, compiled rules and their models', async (t) => {
  const services = loadServices('cds-services', MODELS);
  t.same(
    services.map((s) => [s.file, s.models.map((m) => `${m.manifest.id} ${m.manifest.version}`)]),
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
