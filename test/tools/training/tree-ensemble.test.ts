import t from 'tap';
import {
  leafIndex,
  predictTreeEnsemble,
  treeEnsembleMargin,
  validateTreeEnsemble,
  type TreeEnsemble,
} from '../../../tools/training/tree-ensemble.js';

const ensemble: TreeEnsemble = {
  baseValue: 0.3,
  trees: [
    {
      nodes: [{ feature: 0, threshold: 0.5, left: 1, right: 2 }, { leaf: -1 }, { leaf: 2 }],
    },
    { nodes: [{ leaf: 0.25 }] },
    {
      nodes: [
        { feature: 1, threshold: -1, left: 1, right: 2 },
        { leaf: -0.7 },
        { feature: 0, threshold: 3, left: 3, right: 4 },
        { leaf: 0.1 },
        { leaf: -3 },
      ],
    },
  ],
};

t.test('the margin is the base value plus the leaf reached in each tree, by hand', async (t) => {
  // x = [0, 0]: tree 0 → 0 ≤ 0.5 → −1; tree 1 → 0.25; tree 2 → 0 > −1 → node 2 → 0 ≤ 3 → 0.1.
  t.equal(treeEnsembleMargin(ensemble, [0, 0]), 0.3 - 1 + 0.25 + 0.1);
  // x = [5, −2]: tree 0 → 2; tree 1 → 0.25; tree 2 → −2 ≤ −1 → −0.7.
  t.equal(treeEnsembleMargin(ensemble, [5, -2]), 0.3 + 2 + 0.25 - 0.7);
  // x = [10, 0]: tree 0 → 2; tree 2 → node 2 → 10 > 3 → −3.
  t.equal(treeEnsembleMargin(ensemble, [10, 0]), 0.3 + 2 + 0.25 - 3);
  t.equal(treeEnsembleMargin({ trees: ensemble.trees }, [0, 0]), -1 + 0.25 + 0.1, 'baseValue defaults to 0');
  t.equal(predictTreeEnsemble(ensemble, [5, -2]), 1 / (1 + Math.exp(-1.85)));
  t.ok(Math.abs(predictTreeEnsemble(ensemble, [10, 0]) - 1 / (1 + Math.exp(0.45))) < 1e-15);
});

t.test('splits go left on ≤ and compare in float32, as onnxruntime does', async (t) => {
  const tree = ensemble.trees[0]!;
  t.equal(leafIndex(tree, [0.5, 0]), 1, 'equal to the threshold goes left');
  t.equal(leafIndex(tree, [0.5000001, 0]), 2);
  // 0.1 + 1e-9 is above 0.1 in float64 but rounds to the same float32.
  const stump = { nodes: [{ feature: 0, threshold: 0.1, left: 1, right: 2 }, { leaf: 1 }, { leaf: 2 }] };
  t.equal(leafIndex(stump, [0.1 + 1e-9]), 1);
  t.equal(leafIndex(stump, [Number.NaN]), 2, 'a missing value goes right');
  t.equal(leafIndex(ensemble.trees[1]!, [0, 0]), 0, 'a single-leaf tree');
});

t.test('a well-formed ensemble passes validation', async (t) => {
  t.doesNotThrow(() => validateTreeEnsemble(ensemble, 2));
});

t.test('malformed ensembles are refused with the tree and node named', async (t) => {
  const split = (left: number, right: number, feature = 0) => ({ feature, threshold: 0, left, right });
  const cases: [TreeEnsemble, number, string][] = [
    [ensemble, 0, 'featureCount must be a positive integer (got 0)'],
    [{ trees: [] }, 2, 'the ensemble has no tree'],
    [{ trees: [{ nodes: [] }] }, 2, 'tree 0 has no node'],
    [{ baseValue: Number.NaN, trees: ensemble.trees }, 2, 'baseValue is not a finite float32'],
    [{ baseValue: 1e39, trees: ensemble.trees }, 2, 'baseValue is not a finite float32'],
    [{ trees: [{ nodes: [{ leaf: Infinity }] }] }, 2, 'tree 0 node 0: leaf value is not a finite float32'],
    [
      { trees: [{ nodes: [split(1, 2, 2), { leaf: 0 }, { leaf: 1 }] }] },
      2,
      'tree 0 node 0: feature 2 is not in 0..1',
    ],
    [
      { trees: [{ nodes: [split(1, 2, 0.5), { leaf: 0 }, { leaf: 1 }] }] },
      2,
      'tree 0 node 0: feature 0.5 is not in 0..1',
    ],
    [
      { trees: [{ nodes: [{ feature: 0, threshold: 1e39, left: 1, right: 2 }, { leaf: 0 }, { leaf: 1 }] }] },
      2,
      'tree 0 node 0: threshold is not a finite float32',
    ],
    [
      { trees: [{ nodes: [split(1, 3), { leaf: 0 }, { leaf: 1 }] }] },
      2,
      'tree 0 node 0: child 3 is not a node index in 1..2',
    ],
    [
      { trees: [{ nodes: [split(0, 1), { leaf: 0 }] }] },
      2,
      'tree 0 node 0: child 0 is not a node index in 1..1',
    ],
    [{ trees: [{ nodes: [split(1, 1), { leaf: 0 }] }] }, 2, 'tree 0 node 1 has 2 parents, expected 1'],
    [{ trees: [{ nodes: [{ leaf: 0 }, { leaf: 1 }] }] }, 2, 'tree 0 node 1 has 0 parents, expected 1'],
    [
      { trees: [{ nodes: [{ leaf: 0 }, split(2, 3), split(1, 4), { leaf: 1 }, { leaf: 2 }] }] },
      2,
      'tree 0 has nodes unreachable from its root',
    ],
  ];
  for (const [bad, featureCount, message] of cases) {
    t.throws(() => validateTreeEnsemble(bad, featureCount), new Error(message), message);
  }
});
