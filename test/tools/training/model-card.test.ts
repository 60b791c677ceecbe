import t from 'tap';
import * as prettier from 'prettier';
import { bySubgroup, evaluate } from '../../../tools/training/metrics.js';
import { fixed, percent } from '../../../tools/training/model-card-markdown.js';
import {
  DEMONSTRATION_STATUS,
  DEMONSTRATION_STATUS_FR,
  renderModelCard,
  type ModelCardData,
} from '../../../tools/training/model-card.js';

const SHA = 'a'.repeat(63) + 'b';
const scores = [0.1, 0.4, 0.35, 0.8, 0.2, 0.7];
const labels = [0, 0, 1, 1, 0, 1];
const rows = ['female', 'male', 'female', 'male', 'female', 'female'];

/** The markdown with table padding collapsed, so assertions read like the rows they check. */
function unpadded(markdown: string): string {
  return markdown
    .split('\n')
    .map((line) => (line.startsWith('|') ? line.replace(/ +/g, ' ') : line))
    .join('\n');
}

function card(): ModelCardData {
  return {
    id: 'knee-oa-progression',
    version: '1.0.0',
    title: { en: 'Knee osteoarthritis progression', fr: 'Progression de la gonarthrose' },
    status: DEMONSTRATION_STATUS,
    regulatoryStatus: 'Not a medical device; not CE-marked.',
    modelType: 'logistic regression (2 inputs)',
    intendedUse: 'Estimate the 2-year risk of radiographic progression in adults with knee OA.',
    intendedUsers: 'General practitioners.',
    dates: { trained: '2026-11-22', card: '2026-11-22' },
    outOfScope: ['Children', 'Knee replacement already done'],
    population: {
      description: 'Adults with knee osteoarthritis.',
      inclusion: ['Age ≥ 40 years', 'Knee OA (SNOMED CT 239873007 or ICD-10 M17)'],
      exclusion: ['Inflammatory arthritis'],
    },
    outcome: { description: 'Radiographic progression (KL grade +1)', horizon: '24 months' },
    features: [
      {
        id: 'bmi',
        label: 'Body mass index',
        unit: 'kg/m2',
        effectSize: 'OR 1.35 per 5 kg/m² | pooled',
        sources: ['bastick2015'],
        signal: true,
        coefficient: 0.0600004,
      },
      { id: 'noise', label: 'Random input', unit: '1', effectSize: 'none', sources: [], signal: false },
    ],
    trainingData: {
      kind: 'simulated',
      generator: 'tools/synthetic (seeded)',
      seed: 42,
      nTrain: 20000,
      nTest: 6,
      prevalence: { train: 0.123456, test: 0.5 },
      generatingModel: {
        description: 'Logistic model with published odds ratios.',
        sources: ['bastick2015'],
      },
    },
    metrics: {
      overall: evaluate(scores, labels, 0.4, 3),
      subgroups: bySubgroup(rows, (r) => r, scores, labels, 0.4, ['female', 'male', 'other']).map((g) => ({
        variable: 'sex',
        ...g,
      })),
    },
    threshold: { value: 0.4, rationale: 'Chosen for illustration.' },
    riskBands: [
      { id: 'low', label: { en: 'Low', fr: 'Faible' }, lower: 0, upper: 0.2 },
      { id: 'high', label: { en: 'High', fr: 'Élevé' }, lower: 0.2, upper: 1 },
    ],
    references: [
      {
        id: 'bastick2015',
        citation: 'Bastick AN et al. Ann Rheum Dis 2015;74:1306–14.',
        doi: '10.1136/annrheumdis-2014-205701',
      },
      { id: 'unused', citation: 'A source with a URL only.', url: 'https://example.org/paper' },
    ],
    limits: ['Trained on simulated data only.', 'Not externally validated.'],
    onnxSha256: SHA,
    trainingCommand: 'npm run train -- knee-oa-progression --seed 42',
    createdBy: 'explainable-cds-hooks 0.1.0 (tools/training)',
  };
}

t.test('the markdown has every required section, and the warning first, in English only', async (t) => {
  const markdown = unpadded(renderModelCard(card()).markdown);
  const lines = markdown.split('\n');
  t.equal(lines[0], '# Knee osteoarthritis progression — model card');
  t.equal(lines[2], `> **${DEMONSTRATION_STATUS}**`, 'the warning comes right after the title');
  t.notOk(
    markdown.includes(DEMONSTRATION_STATUS_FR),
    'one language per card: the French card is its own file',
  );
  for (const heading of [
    '## Intended use',
    '### Out of scope',
    '## Population',
    '## Outcome and horizon',
    '## Input features',
    '## Training data',
    '## Performance on the held-out test set',
    '### At the decision threshold (predicted risk ≥ 40.0 %)',
    '### Calibration by quantile of predicted risk',
    '### Subgroups',
    '## Threshold and risk bands',
    '## Limits',
    '## Sources',
    '## Reproducibility',
  ]) {
    t.ok(lines.includes(heading), heading);
  }
  t.ok(markdown.includes('| Version | 1.0.0 |'));
  t.ok(markdown.includes(`| Status | ${DEMONSTRATION_STATUS} |`));
  t.ok(markdown.includes(`| ONNX sha256 | \`${SHA}\` |`));
  t.ok(markdown.includes('| Kind | simulated (no real patient data) |'));
  t.ok(markdown.includes('- Not externally validated.'));
  t.ok(markdown.includes('- Age ≥ 40 years'));
  t.ok(
    markdown.includes(
      '- [bastick2015] Bastick AN et al. Ann Rheum Dis 2015;74:1306–14. https://doi.org/10.1136/annrheumdis-2014-205701',
    ),
  );
  t.ok(markdown.includes('- [unused] A source with a URL only. https://example.org/paper'));
  t.ok(markdown.includes('Training command: `npm run train -- knee-oa-progression --seed 42`'));
  t.ok(markdown.endsWith('\n') && !markdown.endsWith('\n\n'));
});

t.test('metrics tables use fixed decimals and a dash where undefined', async (t) => {
  const c = card();
  const markdown = unpadded(renderModelCard(c).markdown);
  const o = c.metrics.overall;
  // AUC: positives 0.35, 0.8, 0.7 against negatives 0.1, 0.4, 0.2 → 2 + 3 + 3 = 8 of 9 pairs.
  t.equal(o.auc, 8 / 9);
  t.ok(
    markdown.includes(
      `| 6 | 50.0 % | 0.889 | ${fixed(o.brier, 3)} | ${fixed(o.calibrationSlope, 2)} | ${fixed(o.calibrationIntercept, 2)} |`,
    ),
  );
  t.match(fixed(o.brier, 3), /^0\.\d{3}$/);
  t.match(fixed(o.calibrationSlope, 2), /^-?\d+\.\d{2}$/);
  // At 0.4: TP 0.8, 0.7; FN 0.35; FP 0.4; TN 0.1, 0.2.
  t.ok(markdown.includes('| 66.7 % | 66.7 % | 66.7 % | 66.7 % | 2 | 1 | 2 | 1 |'));
  t.ok(markdown.includes('| 1 | 2 | 15.0 % | 0.0 % |'), 'calibration table: bin 1 = 0.1 and 0.2');
  t.ok(markdown.includes('| sex | other | 0 | — | — | — | — | — | — | — | — | — |'), 'an empty subgroup');
  t.match(markdown, /\| sex \| male \| 2 \| 50\.0 % \| 1\.000 \| /);
  t.ok(
    markdown.includes(
      '| Body mass index (`bmi`) | kg/m2 | OR 1.35 per 5 kg/m² \\| pooled | [bastick2015] | yes | 0.060 |',
    ),
    'pipes in a cell are escaped',
  );
  t.ok(markdown.includes('| Random input (`noise`) | 1 | none | — | no (noise input) | — |'));
  t.ok(markdown.includes('| Training set | 20000 simulated patients, outcome prevalence 12.3 % |'));
  t.ok(markdown.includes('| Low | 0.0 % to < 20.0 % |'));
  t.ok(markdown.includes('| High | 20.0 % to ≤ 100.0 % |'));
});

t.test(
  'the markdown is already formatted as prettier would (a committed card passes prettier --check)',
  async (t) => {
    const { markdown } = renderModelCard(card());
    const options = { ...(await prettier.resolveConfig('model-card.md')), parser: 'markdown' };
    t.equal(await prettier.format(markdown, options), markdown);
    t.ok(markdown.includes('| Model id          | `knee-oa-progression` '), 'tables are padded');
  },
);

t.test('the JSON is already formatted as prettier would, and parses back to the card', async (t) => {
  const options = { ...(await prettier.resolveConfig('model-card.json')), parser: 'json' };
  const long = card();
  long.outOfScope = [
    'A statement long enough that the array cannot fit on one line of one hundred and ten columns',
    'x',
  ];
  long.population.exclusion = [];
  // 110 columns exactly with the indent, key and comma: stays on one line.
  long.population.inclusion = ['a'.repeat(89)];
  long.limits = ['b'.repeat(94)];
  for (const c of [card(), long]) {
    const { json } = renderModelCard(c);
    t.equal(await prettier.format(json, options), json);
    t.same(JSON.parse(json), JSON.parse(JSON.stringify(c)));
  }
  const { json } = renderModelCard(long);
  t.ok(json.includes('    "exclusion": [],\n'));
  t.ok(json.includes(`    "inclusion": ["${'a'.repeat(89)}"]\n`), 'fits exactly');
  t.ok(json.includes(`  "limits": [\n    "${'b'.repeat(94)}"\n  ],\n`), 'one column too wide: expanded');
  t.ok(json.includes('  "outOfScope": [\n    "A statement'));
});

t.test('fixed and percent have one spelling per number', async (t) => {
  t.equal(fixed(-0.0001, 2), '0.00', 'no negative zero');
  t.equal(fixed(-0.5, 0), '-1', 'toFixed rounds half away from zero');
  t.equal(fixed(-0.012, 2), '-0.01');
  t.equal(fixed(null, 2), '—');
  t.equal(fixed(0, 0), '0');
  t.equal(percent(0.1234), '12.3 %');
  t.equal(percent(1), '100.0 %');
  t.equal(percent(null), '—');
});

t.test('the JSON is canonical: sorted keys at every level, 2-space indent, trailing newline', async (t) => {
  const { json } = renderModelCard(card());
  t.ok(json.endsWith('}\n'));
  t.ok(json.startsWith('{\n  "createdBy": '), 'keys sorted at the top level');
  const parsed = JSON.parse(json) as Record<string, unknown>;
  const sortedEverywhere = (value: unknown): boolean => {
    if (Array.isArray(value)) return value.every(sortedEverywhere);
    if (value === null || typeof value !== 'object') return true;
    const keys = Object.keys(value);
    return keys.join() === [...keys].sort().join() && Object.values(value).every(sortedEverywhere);
  };
  t.ok(sortedEverywhere(parsed));
  t.equal(parsed['status'], DEMONSTRATION_STATUS, 'the warning is in the JSON');
  for (const key of [
    'intendedUse',
    'population',
    'trainingData',
    'metrics',
    'limits',
    'version',
    'onnxSha256',
  ]) {
    t.ok(key in parsed, key);
  }
  const metrics = parsed['metrics'] as { subgroups: { variable: string; group: string; auc: unknown }[] };
  t.same(
    metrics.subgroups.map((g) => [g.variable, g.group]),
    [
      ['sex', 'female'],
      ['sex', 'male'],
      ['sex', 'other'],
    ],
  );
  t.equal(metrics.subgroups[2]!.auc, null, 'undefined metrics are null in the JSON');
  t.notOk('doi' in (parsed['references'] as object[])[1]!, 'absent optional fields are left out');
  t.notOk(json.includes('NaN'));
});

t.test('rendering is deterministic and independent of key insertion order', async (t) => {
  const a = renderModelCard(card());
  const b = renderModelCard(card());
  t.equal(a.markdown, b.markdown);
  t.equal(a.json, b.json);
  const reordered = Object.fromEntries(Object.entries(card()).reverse()) as unknown as ModelCardData;
  t.equal(renderModelCard(reordered).json, a.json);
  t.equal(renderModelCard(reordered).markdown, a.markdown);
  const changed = card();
  changed.version = '1.0.1';
  t.not(renderModelCard(changed).json, a.json);
});

t.test('inconsistent cards are refused with the field named', async (t) => {
  const cases: [string, (c: ModelCardData) => void, string][] = [
    [
      'status',
      (c) => ((c as { status: string }).status = 'Validated.'),
      `model card status: must be "${DEMONSTRATION_STATUS}"`,
    ],
    [
      'kind',
      (c) => ((c.trainingData as { kind: string }).kind = 'real'),
      "model card trainingData.kind: must be 'simulated'",
    ],
    ['id', (c) => (c.id = ' '), 'model card id: is empty'],
    ['version', (c) => (c.version = ''), 'model card version: is empty'],
    [
      'sha',
      (c) => (c.onnxSha256 = SHA.toUpperCase()),
      'model card onnxSha256: must be 64 lower-case hex digits',
    ],
    [
      'feature ids',
      (c) => c.features.push({ ...c.features[0]! }),
      "model card features: id 'bmi' is used twice",
    ],
    [
      'reference ids',
      (c) => c.references.push({ ...c.references[0]! }),
      "model card references: id 'bastick2015' is used twice",
    ],
    [
      'feature source',
      (c) => c.features[1]!.sources.push('nowhere'),
      "model card features.noise.sources: cites unknown reference 'nowhere'",
    ],
    [
      'generating model source',
      (c) => c.trainingData.generatingModel.sources.push('x'),
      "model card trainingData.generatingModel.sources: cites unknown reference 'x'",
    ],
    [
      'bands overlap',
      (c) => (c.riskBands[1]!.lower = 0.1),
      'model card riskBands[1]: [0.1, 1) must lie in [0, 1], ascending and not overlapping',
    ],
    [
      'band beyond 1',
      (c) => (c.riskBands[1]!.upper = 1.5),
      'model card riskBands[1]: [0.2, 1.5) must lie in [0, 1], ascending and not overlapping',
    ],
    [
      'threshold',
      (c) => (c.threshold.value = 1),
      'model card threshold.value: must be a probability in (0, 1) (got 1)',
    ],
    [
      'metrics at another threshold',
      (c) => (c.threshold.value = 0.5),
      'model card metrics: were computed at a threshold other than 0.5',
    ],
    [
      'non-finite number',
      (c) => (c.features[0]!.coefficient = Number.NaN),
      'model card features[0].coefficient: is not a finite number (NaN)',
    ],
  ];
  for (const [name, mutate, message] of cases) {
    const c = card();
    mutate(c);
    t.throws(() => renderModelCard(c), new Error(message), name);
  }
});
