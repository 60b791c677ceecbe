/**
 * `npm run bench:models`: batch-1 inference latency of each bundled model (onnxruntime session with
 * one intra-op thread, as the service runs it), and the cost of a whole scored explanation (feature
 * extraction over a generated record + inference + contributions). Medians of 2,000 calls after 200
 * warm-up calls; run it on an idle machine and compare ratios, not absolute figures.
 */
import type { Resource } from 'fhir/r4.js';
import { resourcesOf, searchset, toServerForm } from '../synthetic/bundle.js';
import { generatePatient } from '../synthetic/patients.js';
import { createRng } from '../synthetic/random.js';
import { loadModels, predict } from '../../src/scoring/load.js';
import { scoreSubjects } from '../../src/scoring/score.js';
import { createFhirPath } from '../../src/rules/fhirpath.js';

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
