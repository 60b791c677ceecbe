import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import t, { type Test } from 'tap';
import { SYSTEM } from '../../src/codes.js';
import { CdsError } from '../../src/errors.js';
import { loadValueSets, valueSetName } from '../../src/services/value-sets.js';

const ORAL = JSON.parse(readFileSync('fhir-profiles/ValueSet-oral-nsaid.json', 'utf8')) as {
  compose: { include: { system: string; concept: { code: string }[] }[] };
};

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

t.test('the bundled value sets load under their lower-camel-case names, as system|code', async (t) => {
  const sets = loadValueSets('fhir-profiles');
  t.same(Object.keys(sets).sort(), [
    'anticoagulant',
    'antiplatelet',
    'brainMri',
    'cyproterone',
    'egfr',
    'giBleedHistory',
    'heartFailure',
    'oralNsaid',
    'topicalNsaid',
    'valproate',
    'valproatePpp',
  ]);
  const expected = ORAL.compose.include.flatMap((i) => i.concept.map((c) => `${i.system}|${c.code}`));
  t.same(sets.oralNsaid, expected);
  // The Synthea NSAID products and the ingredients of reference/clinical-codes.md §3.
  for (const code of ['310965', '198405', '849574', '198014', '5640', '7258', '3355', '140587', '41493']) {
    t.ok(sets.oralNsaid!.includes(`${SYSTEM.rxnorm}|${code}`), code);
  }
  t.ok(sets.anticoagulant!.includes(`${SYSTEM.rxnorm}|855332`), 'Synthea warfarin');
  t.ok(sets.antiplatelet!.includes(`${SYSTEM.rxnorm}|309362`), 'Synthea clopidogrel');
  t.ok(sets.egfr!.includes(`${SYSTEM.loinc}|33914-3`), 'Synthea eGFR');
  t.ok(Object.isFrozen(sets) && Object.isFrozen(sets.oralNsaid));
});

t.test('oral and topical NSAIDs never overlap, and no acetaminophen is an NSAID', async (t) => {
  const sets = loadValueSets('fhir-profiles');
  t.same(
    sets.oralNsaid!.filter((c) => sets.topicalNsaid!.includes(c)),
    [],
  );
  for (const paracetamol of ['313782', '198440', '282464']) {
    t.notOk(sets.oralNsaid!.includes(`${SYSTEM.rxnorm}|${paracetamol}`), paracetamol);
  }
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
    "ValueSet-x.json#/compose/include/0: must have required property 'concept'",
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
    'ValueSet-x.json#/compose/include/0: must NOT have additional properties (filter)',
  );
  t.equal(
    loadError(t, { 'ValueSet-other.json': ok }),
    'ValueSet-other.json#/id: the file of ValueSet "ok" must be named ValueSet-ok.json',
  );
  t.equal(
    loadError(t, {
      'ValueSet-x.json': valueSet('x', [
        { system: 'http://loinc.org', concept: [{ code: '1-8' }] },
        { system: 'http://loinc.org', concept: [{ code: '1-8' }] },
      ]),
    }),
    'ValueSet-x.json#/compose/include/1/concept/0/code: http://loinc.org|1-8 is listed twice',
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
