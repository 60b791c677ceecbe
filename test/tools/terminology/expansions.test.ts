/**
 * The scripts that build the bundled terminology expansions: RxNorm from RxNav (here a loopback fake of its
 * allrelated answer) and SNOMED CT from an RF2 snapshot (here a four-concept extract), or both from published
 * value sets kept in tools/terminology/sources (here small made-up ones).
 */
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import t from 'tap';
import {
  mergePublished,
  productsOf,
  rebuild as rebuildRxNorm,
  routeOf,
  type PublishedValueSet,
} from '../../../tools/terminology/rxnorm-expansion.js';
import {
  descendants,
  childrenOf,
  mergePublished as mergeSnomed,
  rebuild as rebuildSnomed,
} from '../../../tools/terminology/snomed-expansion.js';

t.test('the route of an RxNorm drug is read from its dose form', async (t) => {
  t.equal(routeOf('Ketoprofen 50 MG Oral Capsule'), 'oral');
  t.equal(routeOf('24 HR Ketoprofen 200 MG Extended Release Oral Capsule'), 'oral');
  t.equal(routeOf('Diclofenac Sodium 0.01 MG/MG Topical Gel'), 'topical');
  t.equal(routeOf('Ketorolac Tromethamine 5 MG/ML Ophthalmic Solution'), 'ophthalmic');
  t.equal(routeOf('1 ML Ketorolac Tromethamine 30 MG/ML Injection'), 'parenteral');
  t.equal(routeOf('Indomethacin 50 MG Rectal Suppository'), 'rectal');
  t.equal(routeOf('Ketorolac Tromethamine 15.8 MG/ACTUAT Metered Dose Nasal Spray'), 'nasal');
  t.equal(routeOf('Ketoprofen 100 MG'), 'unspecified');
});

t.test('RxNorm: the SCD and SBD of each ingredient from RxNav allrelated', async (t) => {
  const server = createServer((req, res) => {
    if (req.url !== '/REST/rxcui/35827/allrelated.json') {
      res.writeHead(404).end();
      return;
    }
    res.setHeader('content-type', 'application/json');
    res.end(
      JSON.stringify({
        allRelatedGroup: {
          conceptGroup: [
            { tty: 'IN', conceptProperties: [{ rxcui: '35827', name: 'ketorolac' }] },
            {
              tty: 'SCD',
              conceptProperties: [
                { rxcui: '860096', name: 'ketorolac tromethamine 30 MG/ML Injectable Solution' },
                { rxcui: '834022', name: 'ketorolac tromethamine 10 MG Oral Tablet' },
              ],
            },
            {
              tty: 'SBD',
              conceptProperties: [
                { rxcui: '860105', name: 'ketorolac 4 MG/ML Ophthalmic Solution [Acular]' },
              ],
            },
            { tty: 'SCDC' },
          ],
        },
      }),
    );
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  t.teardown(() => server.close());
  const base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  t.same(await productsOf(base, '35827'), [
    { code: '834022', display: 'ketorolac tromethamine 10 MG Oral Tablet', route: 'oral' },
    { code: '860096', display: 'ketorolac tromethamine 30 MG/ML Injectable Solution', route: 'parenteral' },
    { code: '860105', display: 'ketorolac 4 MG/ML Ophthalmic Solution [Acular]', route: 'ophthalmic' },
  ]);
  const file = {
    system: 'http://www.nlm.nih.gov/research/umls/rxnorm',
    title: 't',
    source: 'old',
    date: '2020-01-01',
    builtBy: 'x',
    ingredients: [{ code: '35827', display: 'ketorolac', atc: ['M01AB15'], source: 'old', products: [] }],
  };
  const rebuilt = await rebuildRxNorm(file, base, '2026-12-06');
  t.equal(rebuilt.date, '2026-12-06');
  t.match(rebuilt.source, /^NLM RxNav /);
  t.equal(rebuilt.ingredients[0]!.products.length, 3);
  t.same(rebuilt.ingredients[0]!.atc, ['M01AB15'], 'the ATC classes are kept');
  await t.rejects(productsOf(base, '1'), /HTTP 404/);
});

t.test('SNOMED CT: active is-a descendants from an RF2 snapshot', async (t) => {
  const header =
    'id\teffectiveTime\tactive\tmoduleId\tsourceId\tdestinationId\trelationshipGroup\ttypeId\tcharacteristicTypeId\tmodifierId';
  const rel = (id: string, active: string, source: string, destination: string, type = '116680003') =>
    `${id}\t20250101\t${active}\t900000000000207008\t${source}\t${destination}\t0\t${type}\t900000000000011006\t900000000000451002`;
  const relationships = [
    header,
    rel('1', '1', '42343007', '84114007'),
    rel('2', '1', '703272007', '42343007'),
    rel('3', '0', '999999001', '84114007'),
    rel('4', '1', '123456001', '84114007', '363698007'),
  ].join('\n');
  const descriptions = [
    'id\teffectiveTime\tactive\tmoduleId\tconceptId\tlanguageCode\ttypeId\tterm\tcaseSignificanceId',
    '10\t20250101\t1\tm\t84114007\ten\t900000000000003001\tHeart failure (disorder)\tc',
    '11\t20250101\t1\tm\t703272007\ten\t900000000000003001\tHeart failure with reduced ejection fraction (disorder)\tc',
    '12\t20250101\t1\tm\t703272007\ten\t900000000000013009\tHFrEF\tc',
  ].join('\n');
  t.same(
    descendants('84114007', childrenOf(relationships)),
    ['42343007', '703272007'],
    'inactive and non-is-a rows left out',
  );
  const rebuilt = rebuildSnomed(
    {
      system: 'http://snomed.info/sct',
      title: 't',
      source: 's',
      date: 'd',
      builtBy: 'b',
      concepts: [{ code: '84114007', display: 'HF', descendants: [] }],
    },
    relationships,
    descriptions,
    'International Edition 2025-01-01',
    '2026-12-06',
  );
  t.same(rebuilt.concepts[0], {
    code: '84114007',
    display: 'Heart failure (disorder)',
    descendants: [
      { code: '42343007', display: '42343007' },
      { code: '703272007', display: 'Heart failure with reduced ejection fraction (disorder)' },
    ],
  });
  t.match(rebuilt.source, /International Edition 2025-01-01/);
});

const published = (codeSystem: string, codes: [string, string][]): PublishedValueSet => ({
  valueSet: 'VSAC Test Set',
  identifier: '1.2.3',
  version: '20240101',
  expansion: '2025-01-01',
  codeSystem,
  codeSystemVersion: 'v1',
  repository: 'owner/repo',
  path: 'vs.json',
  commit: '0123456789abcdef0123456789abcdef01234567',
  taken: 'all codes',
  codes: codes.map(([code, display]) => ({ code, display })),
});

t.test(
  'RxNorm: clinical drugs of a published value set merged under each ingredient they contain',
  async (t) => {
    const source = published('http://www.nlm.nih.gov/research/umls/rxnorm', [
      ['197885', 'hydrochlorothiazide 12.5 MG / lisinopril 10 MG Oral Tablet'],
      ['314076', 'lisinopril 10 MG Oral Tablet'],
      ['858813', 'enalapril maleate 5 MG Oral Tablet'],
      ['1', 'enalaprilat 1.25 MG/ML Injectable Solution'],
    ]);
    const file = {
      system: 'http://www.nlm.nih.gov/research/umls/rxnorm',
      title: 't',
      source: 'old',
      date: '2020-01-01',
      builtBy: 'x',
      ingredients: [
        {
          code: '29046',
          display: 'lisinopril',
          atc: ['C09AA03'],
          source: 'code list; products not bundled yet: regenerate',
          products: [{ code: '314076', display: 'lisinopril 10 MG Oral Tablet', route: 'oral' }],
        },
      ],
    };
    const map = {
      ingredients: [
        { display: 'lisinopril', code: '29046', atc: ['C09AA03'], match: 'lisinopril', sources: ['s.json'] },
        { display: 'enalapril', atc: ['C09AA02'], match: 'enalapril', sources: ['s.json'] },
        {
          display: 'hydrochlorothiazide',
          atc: ['C03AA03'],
          match: 'hydrochlorothiazide',
          sources: ['s.json'],
        },
      ],
    };
    const merged = mergePublished(file, { map, sources: { 's.json': source } }, '2026-12-06');
    const [lisinopril, enalapril, hctz] = merged.ingredients;
    t.same(
      lisinopril!.products.map((p) => p.code),
      ['314076', '197885'],
      'the product already listed is kept once, the combination added',
    );
    t.equal(
      lisinopril!.source,
      'code list; products also from VSAC Test Set 1.2.3 (version 20240101, expansion 2025-01-01, v1; owner/repo vs.json at 0123456789ab)',
    );
    t.same(
      enalapril,
      {
        display: 'enalapril',
        atc: ['C09AA02'],
        source:
          'VSAC Test Set 1.2.3 (version 20240101, expansion 2025-01-01, v1; owner/repo vs.json at 0123456789ab): all codes; WHO ATC from the WHO ATC/DDD Index; RxNorm ingredient code not given by that source, so the ingredient is matched through these products only',
        products: [{ code: '858813', display: 'enalapril maleate 5 MG Oral Tablet', route: 'oral' }],
      },
      'enalaprilat is another ingredient: a whole word is matched',
    );
    t.same(
      hctz!.products.map((p) => p.code),
      ['197885'],
    );
    t.match(merged.source, /^old Also merged from published value sets kept in tools\/terminology\/sources/);
    t.same(
      mergePublished(merged, { map, sources: { 's.json': source } }, '2026-12-06'),
      merged,
      'running it again changes nothing',
    );
    const restated = mergePublished(
      merged,
      { map, sources: { 's.json': { ...source, taken: 'all codes, the whole file read' } } },
      '2026-12-06',
    );
    t.equal(
      restated.ingredients[1]!.source,
      'VSAC Test Set 1.2.3 (version 20240101, expansion 2025-01-01, v1; owner/repo vs.json at 0123456789ab): all codes, the whole file read; WHO ATC from the WHO ATC/DDD Index; RxNorm ingredient code not given by that source, so the ingredient is matched through these products only',
      'what was taken, restated in the source file, is restated in the expansion',
    );
    t.equal(
      restated.ingredients[0]!.source,
      lisinopril!.source,
      'a source named as "products also from" is kept',
    );
    t.throws(
      () =>
        mergePublished(
          file,
          {
            map: { ingredients: [{ ...map.ingredients[1]!, match: 'prasugrel' }] },
            sources: { 's.json': source },
          },
          'd',
        ),
      /enalapril: VSAC Test Set lists no drug named "prasugrel"/,
    );
  },
);

t.test('SNOMED CT: the codes of published value sets added under a concept, itself left out', async (t) => {
  const ischemic = published('http://snomed.info/sct', [
    ['230690007', 'Cerebrovascular accident (disorder)'],
    ['422504002', 'Ischemic stroke (disorder)'],
    ['230698000', 'Lacunar infarction (disorder)'],
  ]);
  const file = {
    system: 'http://snomed.info/sct',
    title: 't',
    source: 's',
    date: 'd',
    builtBy: 'b',
    concepts: [
      {
        code: '230690007',
        display: 'Cerebrovascular accident (disorder)',
        descendants: [{ code: '422504002', display: 'Ischemic stroke (disorder)' }],
      },
    ],
  };
  const map = {
    concepts: [{ code: '230690007', display: 'Cerebrovascular accident (disorder)', sources: ['i.json'] }],
    sources: { 'i.json': ischemic },
  };
  const merged = mergeSnomed(file, map, '2026-12-06');
  t.same(
    merged.concepts[0]!.descendants.map((d) => d.code),
    ['422504002', '230698000'],
  );
  t.match(
    merged.concepts[0]!.source,
    /^Descendants: the codes listed before, plus the SNOMED CT codes of VSAC Test Set 1\.2\.3/,
  );
  t.same(mergeSnomed(merged, map, '2026-12-06'), merged, 'running it again changes nothing');
  t.throws(
    () =>
      mergeSnomed(
        file,
        {
          ...map,
          sources: { 'i.json': { ...ischemic, codeSystem: 'http://www.nlm.nih.gov/research/umls/rxnorm' } },
        },
        'd',
      ),
    /i\.json: not a SNOMED CT value set/,
  );
});
