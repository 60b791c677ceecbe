/**
 * The bundled expansions and the published value sets they were merged from (tools/terminology/sources):
 * every code taken from a source is in the expansion under its ingredient or concept, and the clinical drugs
 * of hydrocortisone, triamcinolone, milnacipran, ticagrelor, prasugrel and the ACE inhibitors and ARBs, and the SNOMED
 * CT strokes, are members of the services' value sets although no value-set file lists them by hand.
 */
import { readdirSync, readFileSync } from 'node:fs';
import t from 'tap';
import { SYSTEM } from '../../src/codes.js';
import { loadValueSets } from '../../src/services/value-sets.js';
import type { IngredientMap, PublishedValueSet } from '../../tools/terminology/rxnorm-expansion.js';

const SOURCES = 'tools/terminology/sources';
const json = <T>(path: string) => JSON.parse(readFileSync(path, 'utf8')) as T;
const source = (name: string) => json<PublishedValueSet>(`${SOURCES}/${name}`);
const rxnorm = json<{
  ingredients: { code?: string; display: string; source: string; products: { code: string }[] }[];
}>('fhir-profiles/terminology/rxnorm.json');
const snomed = json<{
  concepts: { code: string; source?: string; descendants: { code: string }[] }[];
}>('fhir-profiles/terminology/snomed-ct.json');
/** Every code a ValueSet file lists by hand. */
const byHand = new Set(
  readdirSync('fhir-profiles')
    .filter((f) => f.startsWith('ValueSet-'))
    .flatMap((f) =>
      json<{ compose: { include: { concept?: { code: string }[] }[] } }>(
        `fhir-profiles/${f}`,
      ).compose.include.flatMap((i) => (i.concept ?? []).map((c) => c.code)),
    ),
);

t.test(
  'every code taken from a published value set is in the bundled expansion, with its source named',
  async (t) => {
    const map = json<IngredientMap>(`${SOURCES}/rxnorm-ingredients.json`);
    for (const wanted of map.ingredients) {
      const ingredient = rxnorm.ingredients.find((i) =>
        wanted.code !== undefined ? i.code === wanted.code : i.display === wanted.display,
      );
      if (!ingredient) {
        t.fail(`${wanted.display} is not in rxnorm.json`);
        continue;
      }
      const products = new Set(ingredient.products.map((p) => p.code));
      for (const name of wanted.sources) {
        const vs = source(name);
        t.ok(ingredient.source.includes(vs.identifier), `${wanted.display} names ${vs.valueSet}`);
        const word = new RegExp(`(^|[^a-z])${wanted.match}($|[^a-z])`, 'i');
        const missing = vs.codes.filter((c) => word.test(c.display) && !products.has(c.code));
        t.same(missing, [], `${wanted.display}: every ${vs.valueSet} drug is bundled`);
      }
    }
    const concepts = json<{ concepts: { code: string; sources: string[] }[] }>(
      `${SOURCES}/snomed-concepts.json`,
    );
    for (const wanted of concepts.concepts) {
      const concept = snomed.concepts.find((c) => c.code === wanted.code)!;
      const members = new Set(concept.descendants.map((d) => d.code));
      for (const name of wanted.sources) {
        const vs = source(name);
        t.ok(concept.source?.includes(vs.identifier), `${wanted.code} names ${vs.valueSet}`);
        t.same(
          vs.codes.filter((c) => c.code !== wanted.code && !members.has(c.code)),
          [],
          `${wanted.code}: every SNOMED CT code of ${vs.valueSet} is a descendant`,
        );
      }
    }
  },
);

t.test('clinical drugs and strokes no value-set file lists by hand are members of their class', async (t) => {
  const sets = loadValueSets('fhir-profiles');
  const members: [string, string, string, string][] = [
    ['systemic-corticosteroid', SYSTEM.rxnorm, '197782', 'hydrocortisone 10 mg tablet'],
    ['systemic-corticosteroid', SYSTEM.rxnorm, '1738594', 'hydrocortisone 500 mg injection'],
    ['systemic-corticosteroid', SYSTEM.rxnorm, '5492', 'hydrocortisone by RxNorm ingredient'],
    ['systemic-corticosteroid', SYSTEM.rxnorm, '1085754', 'triamcinolone 40 mg/mL injectable suspension'],
    ['systemic-corticosteroid', SYSTEM.rxnorm, '198303', 'triamcinolone 4 mg tablet'],
    ['ssri-snri', SYSTEM.rxnorm, '833144', 'milnacipran 50 mg tablet'],
    ['antiplatelet', SYSTEM.rxnorm, '1666332', 'ticagrelor 60 mg tablet'],
    ['antiplatelet', SYSTEM.rxnorm, '855818', 'prasugrel 5 mg tablet'],
    ['ace-inhibitor-arb', SYSTEM.rxnorm, '198189', 'ramipril 5 mg capsule'],
    ['ace-inhibitor-arb', SYSTEM.rxnorm, '858817', 'enalapril 10 mg tablet'],
    ['ace-inhibitor-arb', SYSTEM.rxnorm, '314077', 'lisinopril 20 mg tablet'],
    ['ace-inhibitor-arb', SYSTEM.rxnorm, '979492', 'losartan 50 mg tablet'],
    ['ace-inhibitor-arb', SYSTEM.rxnorm, '349201', 'valsartan 160 mg tablet'],
    ['ace-inhibitor-arb', SYSTEM.rxnorm, '1656349', 'sacubitril/valsartan 49/51 mg tablet'],
    ['ace-inhibitor-arb', SYSTEM.rxnorm, '730869', 'amlodipine/olmesartan 5/20 mg tablet'],
    ['diuretic', SYSTEM.rxnorm, '349353', 'hydrochlorothiazide/valsartan 25/160 mg tablet'],
    ['ace-inhibitor-arb', SYSTEM.rxnorm, '349353', 'hydrochlorothiazide/valsartan 25/160 mg tablet'],
    ['mi-stroke', SYSTEM.snomed, '230698000', 'lacunar infarction (VSAC Ischemic Stroke)'],
    ['mi-stroke', SYSTEM.snomed, '195190007', 'cerebral infarction due to embolism of cerebral arteries'],
    ['mi-stroke', SYSTEM.snomed, '230710000', 'lobar cerebral hemorrhage (VSAC Hemorrhagic Stroke)'],
  ];
  for (const [set, system, code, what] of members) {
    t.notOk(byHand.has(code), `${code} is listed by no value-set file`);
    t.ok(sets.contains(set, system, code), `${set}: ${what}`);
  }
  const others: [string, string, string, string][] = [
    ['systemic-corticosteroid', SYSTEM.rxnorm, '1792144', 'intravitreal triamcinolone is ATC S01BA05'],
    ['systemic-corticosteroid', SYSTEM.rxnorm, '106258', 'hydrocortisone cream is topical'],
    ['ace-inhibitor-arb', SYSTEM.rxnorm, '833144', 'milnacipran is no ACE inhibitor'],
    ['diuretic', SYSTEM.rxnorm, '314077', 'lisinopril alone is no diuretic'],
    ['ssri-snri', SYSTEM.rxnorm, '1666332', 'ticagrelor is no SNRI'],
    ['anticoagulant', SYSTEM.rxnorm, '855818', 'prasugrel is no anticoagulant'],
    ['mi-stroke', SYSTEM.snomed, '84114007', 'heart failure is no stroke'],
  ];
  for (const [set, system, code, what] of others)
    t.notOk(sets.contains(set, system, code), `${set}: ${what}`);
});
