import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import t, { type Test } from 'tap';
import { SYSTEM } from '../../src/codes.js';
import { CdsError } from '../../src/errors.js';
import { loadValueSets, valueSetName } from '../../src/services/value-sets.js';

function folder(t: Test, files: Record<string, unknown>): string {
  const dir = mkdtempSync(join(tmpdir(), 'value-sets-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  for (const [name, content] of Object.entries(files)) {
    writeFileSync(join(dir, name), typeof content === 'string' ? content : JSON.stringify(content));
  }
  return dir;
}

function valueSet(id: string, include: unknown[]): Record<string, unknown> {
  return {
    resourceType: 'ValueSet',
    id,
    url: `https://example.org/ValueSet/${id}`,
    status: 'active',
    compose: { include },
  };
}

function loadError(t: Test, files: Record<string, unknown>): string {
  try {
    loadValueSets(folder(t, files));
  } catch (error) {
    t.ok(error instanceof CdsError);
    t.equal((error as CdsError).code, 'CDS_ERR_DEFINITION_INVALID');
    return (error as Error).message;
  }
  return 'no error';
}

t.test('the bundled value sets load by id and canonical URL', async (t) => {
  const sets = loadValueSets('fhir-profiles');
  t.same(sets.ids, [
    'ace-inhibitor-arb',
    'anticoagulant',
    'antiplatelet',
    'brain-mri',
    'diclofenac-coxib',
    'diuretic',
    'egfr',
    'gi-bleed-history',
    'heart-failure',
    'meningioma-progestogen',
    'mi-stroke',
    'oral-nsaid',
    'ssri-snri',
    'systemic-corticosteroid',
    'topical-nsaid',
    'topiramate-ppp',
    'topiramate',
    'valproate-ppp',
    'valproate',
    'vitamin-k-antagonist',
  ]);
  t.equal(sets.get('https://explainable-cds.example.org/fhir/ValueSet/oral-nsaid'), sets.get('oral-nsaid'));
  // The Synthea NSAID products and the ingredients of reference/clinical-codes.md §3.
  for (const code of ['310965', '198405', '849574', '198014', '5640', '7258', '3355', '140587', '41493']) {
    t.ok(sets.contains('oral-nsaid', SYSTEM.rxnorm, code), code);
  }
  t.ok(sets.contains('anticoagulant', SYSTEM.rxnorm, '855332'), 'Synthea warfarin');
  t.ok(sets.contains('antiplatelet', SYSTEM.rxnorm, '309362'), 'Synthea clopidogrel');
  t.ok(sets.contains('egfr', SYSTEM.loinc, '33914-3'), 'Synthea eGFR');
  t.notOk(sets.contains('nope', SYSTEM.loinc, '33914-3'), 'an unknown value set contains nothing');
  t.same(
    sets.provenance.map((p) => p.file),
    ['terminology/snomed-ct.json', 'terminology/rxnorm.json'],
  );
  t.ok(Object.isFrozen(sets));
});

t.test('oral and topical NSAIDs never overlap, and no acetaminophen is an NSAID', async (t) => {
  const sets = loadValueSets('fhir-profiles');
  const rxnorm = JSON.parse(readFileSync('fhir-profiles/terminology/rxnorm.json', 'utf8')) as {
    ingredients: { code: string; products: { code: string }[] }[];
  };
  for (const code of rxnorm.ingredients.flatMap((i) => i.products.map((p) => p.code))) {
    t.notOk(
      sets.contains('oral-nsaid', SYSTEM.rxnorm, code) && sets.contains('topical-nsaid', SYSTEM.rxnorm, code),
      code,
    );
  }
  for (const paracetamol of ['313782', '198440', '282464']) {
    t.notOk(sets.contains('oral-nsaid', SYSTEM.rxnorm, paracetamol), paracetamol);
  }
  t.notOk(sets.contains('topical-nsaid', SYSTEM.atc, 'D11AX18'), 'the actinic-keratosis diclofenac');
  t.ok(sets.contains('topical-nsaid', SYSTEM.atc, 'M02AA15'), 'the joint-pain topical diclofenac');
});

t.test('value-set names are the ids in lower camel case', async (t) => {
  t.equal(valueSetName('oral-nsaid'), 'oralNsaid');
  t.equal(valueSetName('gi-bleed-history'), 'giBleedHistory');
  t.equal(valueSetName('egfr'), 'egfr');
});

t.test('a bad value-set file stops start-up with the file, the place and the reason', async (t) => {
  const ok = valueSet('ok', [{ system: 'http://loinc.org', concept: [{ code: '1-8' }] }]);
  t.equal(loadError(t, { 'ValueSet-ok.json': ok, 'notes.json': '{' }), 'no error', 'other files are ignored');
  t.match(loadError(t, { 'ValueSet-x.json': '{' }), /^ValueSet-x\.json: not JSON: /);
  t.equal(
    loadError(t, {
      'ValueSet-x.json': valueSet('x', [
        { system: 'http://loinc.org', filter: [{ property: 'a', op: '=', value: 'b' }] },
      ]),
    }),
    'ValueSet-x.json#/compose/include/0/filter/0: no filter support for the code system http://loinc.org',
  );
  t.equal(
    loadError(t, {
      'ValueSet-x.json': valueSet('x', [
        {
          system: 'http://loinc.org',
          concept: [{ code: '1-8' }],
          filter: [{ property: 'a', op: '=', value: 'b' }],
        },
      ]),
    }),
    'ValueSet-x.json#/compose/include/0/filter/0: no filter support for the code system http://loinc.org',
  );
  t.equal(
    loadError(t, { 'ValueSet-other.json': ok }),
    'ValueSet-other.json#/id: the file of ValueSet "ok" must be named ValueSet-ok.json',
  );
  t.equal(
    loadError(t, {
      'ValueSet-x.json': valueSet('x', [
        { system: 'http://loinc.org', concept: [{ code: '1-8' }] },
        { system: 'http://loinc.org', concept: [{ code: '2-6' }, { code: '2-6' }] },
      ]),
    }),
    'ValueSet-x.json#/compose/include/1/concept/1/code: http://loinc.org|2-6 is listed twice',
  );
  t.equal(
    loadError(t, { 'ValueSet-x.json': { ...valueSet('x', []), resourceType: 'CodeSystem' } }),
    'ValueSet-x.json#/resourceType: must be equal to constant',
  );
});

t.test('a missing folder stops start-up with its name', async (t) => {
  t.throws(() => loadValueSets('no-such-folder'), {
    code: 'CDS_ERR_DEFINITION_INVALID',
    message: /^no-such-folder: cannot read the value-set folder/,
  });
});

t.test(
  'filters: ATC and ICD-10 by hierarchy, SNOMED CT and RxNorm from the bundled expansions',
  async (t) => {
    const sets = loadValueSets('fhir-profiles');
    // Members the value-set files do not list by hand.
    t.ok(sets.contains('oral-nsaid', SYSTEM.atc, 'M01AB15'), 'ketorolac by ATC');
    t.ok(sets.contains('oral-nsaid', SYSTEM.rxnorm, '834022'), 'ketorolac 10 mg oral tablet');
    t.notOk(sets.contains('oral-nsaid', SYSTEM.rxnorm, '860103'), 'ketorolac eye drops are not oral');
    t.ok(sets.contains('anticoagulant', SYSTEM.atc, 'B01AA12'), 'fluindione');
    t.notOk(sets.contains('anticoagulant', SYSTEM.atc, 'B01AC06'), 'aspirin is an antiplatelet');
    t.ok(sets.contains('antiplatelet', SYSTEM.atc, 'B01AC06'));
    t.ok(sets.contains('ssri-snri', SYSTEM.atc, 'N06AB06'), 'sertraline by ATC');
    t.ok(sets.contains('ssri-snri', SYSTEM.rxnorm, '36437'), 'sertraline by RxNorm ingredient');
    t.ok(sets.contains('ssri-snri', SYSTEM.atc, 'N06AX21'), 'duloxetine');
    t.notOk(sets.contains('ssri-snri', SYSTEM.atc, 'N06AX05'), 'trazodone is not an SSRI/SNRI');
    t.ok(sets.contains('systemic-corticosteroid', SYSTEM.atc, 'H02AB06'), 'prednisolone by ATC');
    t.ok(sets.contains('systemic-corticosteroid', SYSTEM.rxnorm, '312617'), 'prednisone 5 mg tablet');
    t.ok(sets.contains('heart-failure', SYSTEM.snomed, '703272007'), 'HFrEF');
    t.ok(
      sets.contains('heart-failure', SYSTEM.snomed, '703275009'),
      'HFrEF due to cardiomyopathy (VSAC expansion)',
    );
    t.ok(sets.contains('heart-failure', SYSTEM.snomed, '441481004'), 'chronic systolic heart failure');
    t.ok(sets.contains('mi-stroke', SYSTEM.snomed, '401303003'), 'acute STEMI (VSAC expansion)');
    t.notOk(sets.contains('heart-failure', SYSTEM.snomed, '22298006'));
    t.ok(sets.contains('heart-failure', SYSTEM.icd10cm, 'I50.22'));
    t.ok(sets.contains('gi-bleed-history', SYSTEM.icd10, 'K92.2'));
    t.ok(sets.contains('gi-bleed-history', SYSTEM.icd10, 'K922'), 'with or without its dot');
    t.notOk(sets.contains('gi-bleed-history', SYSTEM.icd10, 'K92.3'));
    t.ok(sets.contains('valproate', SYSTEM.atc, 'N03AG02'), 'valpromide');
    t.ok(sets.contains('valproate', SYSTEM.rxnorm, '1099870'), 'divalproex 500 mg');
    t.ok(sets.contains('meningioma-progestogen', SYSTEM.atc, 'G03DB06'), 'chlormadinone');
    t.ok(sets.contains('meningioma-progestogen', SYSTEM.atc, 'G03DB04'), 'nomegestrol');
  },
);

t.test(
  'RxNorm clinical drugs of every class member the bundled expansion names, from its ATC class alone',
  async (t) => {
    const sets = loadValueSets('fhir-profiles');
    // No value-set file lists these ingredients or drugs: they are members because terminology/rxnorm.json
    // classes their ingredient under M01A, B01A, N06AB/N06AX SNRIs or H02.
    const members: [string, string, string][] = [
      ['oral-nsaid', '197686', 'etodolac 400 mg tablet (PDDI-CDS)'],
      ['oral-nsaid', '198108', 'piroxicam 20 mg capsule'],
      ['oral-nsaid', '311892', 'nabumetone 500 mg tablet'],
      ['oral-nsaid', '829613', 'mefenamic acid 500 mg tablet'],
      ['oral-nsaid', '24605', 'etodolac by RxNorm ingredient'],
      ['anticoagulant', '1037045', 'dabigatran 150 mg capsule (VSAC)'],
      ['anticoagulant', '1599555', 'edoxaban 60 mg tablet'],
      ['anticoagulant', '854238', 'enoxaparin 60 mg syringe'],
      ['anticoagulant', '1364445', 'apixaban 5 mg tablet'],
      ['ssri-snri', '1738495', 'paroxetine 20 mg tablet'],
      ['ssri-snri', '596934', 'duloxetine 60 mg capsule'],
      ['ssri-snri', '312941', 'sertraline 50 mg tablet'],
      ['ssri-snri', '790288', 'desvenlafaxine 50 mg tablet'],
      ['systemic-corticosteroid', '197582', 'dexamethasone 4 mg tablet'],
      ['systemic-corticosteroid', '259966', 'methylprednisolone 4 mg tablet'],
      ['systemic-corticosteroid', '1743704', 'methylprednisolone 125 mg injection'],
      ['systemic-corticosteroid', '198142', 'prednisolone 5 mg tablet'],
      ['systemic-corticosteroid', '1870954', 'deflazacort 18 mg tablet'],
    ];
    for (const [set, code, what] of members) t.ok(sets.contains(set, SYSTEM.rxnorm, code), `${set}: ${what}`);
    const others: [string, string, string][] = [
      ['oral-nsaid', '106002', 'piroxicam gel is topical'],
      ['oral-nsaid', '1243585', 'flurbiprofen eye drops'],
      ['oral-nsaid', '197603', 'diflunisal is classed N02BA11, not M01A'],
      ['systemic-corticosteroid', '1100387', 'methylprednisolone gel is topical'],
      ['systemic-corticosteroid', '309692', 'dexamethasone eye drops'],
      ['ssri-snri', '856377', 'trazodone 50 mg is not an SSRI/SNRI'],
      ['anticoagulant', '1738495', 'paroxetine is no anticoagulant'],
      // An ingredient listed without its own RxNorm code is matched through its products only.
      ['ssri-snri', 'name:paroxetine', 'the internal key of an uncoded ingredient is no code'],
    ];
    for (const [set, code, what] of others)
      t.notOk(sets.contains(set, SYSTEM.rxnorm, code), `${set}: ${what}`);
  },
);

t.test('a filter the component cannot evaluate stops start-up', async (t) => {
  t.equal(
    loadError(t, {
      'ValueSet-x.json': valueSet('x', [
        { system: SYSTEM.snomed, filter: [{ property: 'concept', op: 'is-a', value: '404684003' }] },
      ]),
    }),
    'ValueSet-x.json#/compose/include/0/filter/0: SNOMED CT 404684003 has no bundled expansion (terminology/snomed-ct.json): add it with tools/terminology/snomed-expansion.ts',
  );
  t.equal(
    loadError(t, {
      'ValueSet-x.json': valueSet('x', [
        { system: SYSTEM.atc, filter: [{ property: 'concept', op: 'regex', value: 'M.*' }] },
      ]),
    }),
    'ValueSet-x.json#/compose/include/0/filter/0: ATC filters support is-a, descendent-of and =, not "regex"',
  );
  t.equal(
    loadError(t, {
      'ValueSet-x.json': valueSet('x', [
        { system: SYSTEM.rxnorm, filter: [{ property: 'ingredient', op: '=', value: '1' }] },
      ]),
    }),
    'ValueSet-x.json#/compose/include/0/filter/0: RxNorm ingredient 1 is not in terminology/rxnorm.json',
  );
});
