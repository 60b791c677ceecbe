/**
 * `npm run bench:models`: batch-1 inference latency of each bundled model (onnxruntime session with
 * one intra-op thread, as the service runs it), and the cost of a whole scored explanation (feature
 * extraction over a generated record + inference + contributions). Medians of 2,000 calls after 200
 * warm-up calls; run it on an idle machine and compare ratios, not absolute figures.
 *
 * Then the model stage of a hospital-sized tree model: a 100-tree, depth-6 ensemble (every node mode)
 * over 50 features, explained by TreeSHAP against a 100-row background, loaded through a manifest from
 * a temporary folder. Budget (issue 17): median ≤ 2 ms per call for features + inference + explanation.
 */
import { rmSync } from 'node:fs';
import type { Resource } from 'fhir/r4.js';
import { resourcesOf, searchset, toServerForm } from '../synthetic/bundle.js';
import { generatePatient } from '../synthetic/patients.js';
import { createRng } from '../synthetic/random.js';
import { loadModels, predict } from '../../src/scoring/load.js';
import { scoreSubjects } from '../../src/scoring/score.js';
import { createFhirPath } from '../../src/rules/fhirpath.js';
import { treeModelFolder } from './tree-model.js';

/** The FHIRPath engine of this file's loads. */
const engine = createFhirPath();

const NOW = new Date('2026-11-22T09:30:00.000Z');

function median(values: number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.floor(sorted.length / 2)]!;
}

async function time(fn: () => Promise<unknown>, n = 2000, warm = 200): Promise<number> {
  for (let i = 0; i < warm; i += 1) await fn();
  const samples: number[] = [];
  for (let i = 0; i < n; i += 1) {
    const start = process.hrtime.bigint();
    await fn();
    samples.push(Number(process.hrtime.bigint() - start) / 1000);
  }
  return median(samples);
}

/**
 * CPU time per call (user + system of this process, µs), the mean over `n` calls: on a shared machine
 * the wall-clock median includes the time other processes hold the cores, this does not.
 */
async function cpuPerCall(fn: () => Promise<unknown>, n = 2000): Promise<number> {
  const start = process.cpuUsage();
  for (let i = 0; i < n; i += 1) await fn();
  const used = process.cpuUsage(start);
  return (used.user + used.system) / n;
}

const models = await loadModels('models', engine);
const of = (resources: Resource[], type: string) => resources.filter((r) => r.resourceType === type);
const knee = resourcesOf(toServerForm(generatePatient(createRng(1, 0), { now: NOW, kneeOa: true, age: 66 })));
const skin = resourcesOf(
  toServerForm(
    generatePatient(createRng(2, 0), { now: NOW, kneeOa: false, lesions: 1, age: 50, fitzpatrick: 'II' }),
  ),
);
const cases = {
  'knee-oa-progression': {
    env: {
      patient: of(knee, 'Patient')[0],
      conditions: searchset(of(knee, 'Condition')),
      observations: searchset(of(knee, 'Observation')),
    },
    subject: {},
  },
  'melanoma-risk': {
    env: {
      patient: of(skin, 'Patient')[0],
      conditions: searchset(of(skin, 'Condition')),
      skin: searchset(of(skin, 'Observation')),
    },
    subject: of(skin, 'Observation').find((o) => JSON.stringify(o).includes('lesion-examination')),
  },
};
for (const [id, model] of models) {
  const row = model.manifest.features.map((f) => f.reference);
  const inference = await time(() => predict(model, [row]));
  const c = cases[id as keyof typeof cases];
  const scored = await time(() => scoreSubjects(model, [c.subject], c.env, NOW));
  process.stdout.write(
    `${id} ${model.manifest.version}: batch-1 inference median ${inference.toFixed(1)} µs; ` +
      `extraction + inference + explanation median ${scored.toFixed(1)} µs\n`,
  );
}

const treeRoot = treeModelFolder();
try {
  const loadStart = process.hrtime.bigint();
  const trees = (await loadModels(treeRoot, engine)).get('bench-trees')!;
  const loadMs = Number(process.hrtime.bigint() - loadStart) / 1e6;
  const subjectRng = createRng(18, 0);
  const subjects = Array.from({ length: 64 }, () =>
    Object.fromEntries(
      trees.manifest.features.map((f) => [f.id, Math.round(subjectRng.normal(0, 1.5) * 100) / 100]),
    ),
  );
  let k = 0;
  const call = () => scoreSubjects(trees, [subjects[k++ % subjects.length]], {}, NOW);
  const rows = subjects.map((s) => trees.manifest.features.map((f) => s[f.id]!));
  const explain = () =>
    trees.explainer.explain(rows[k++ % rows.length]!, () =>
      Promise.reject(new Error('not used by TreeSHAP')),
    );
  const stage = await time(call);
  const stageCpu = await cpuPerCall(call);
  const explainOnly = await time(explain);
  const explainCpu = await cpuPerCall(explain);
  process.stdout.write(
    `tree ensemble (100 trees, depth 6, 50 features, 100-row background; load ${loadMs.toFixed(0)} ms): ` +
      `features + inference + TreeSHAP median ${stage.toFixed(1)} µs, CPU ${stageCpu.toFixed(1)} µs per call ` +
      `(budget 2000 µs); TreeSHAP alone median ${explainOnly.toFixed(1)} µs, CPU ${explainCpu.toFixed(1)} µs\n`,
  );
  await trees.session.release();
} finally {
  rmSync(treeRoot, { recursive: true, force: true });
}
