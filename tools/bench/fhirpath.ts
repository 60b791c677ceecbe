/**
 * `npm run bench:fhirpath`: the rules and models stages (the two that evaluate FHIRPath) per call, with
 * the compiled FHIRPath (rules/compile.ts) on and off, on the benchmark's bodies: the generated records
 * of `npm run bench` and, when ../shared/synthea holds Synthea bundles, those too. In process, no HTTP:
 * each body is run through the pipeline, alternately by an engine with compilation and one without, and
 * the median per-call time of each stage is reported with the median of the per-call ratios
 * (interpreted / compiled, the two run back to back on the same body).
 *
 *     npm run bench:fhirpath [-- --passes 20]
 */
import { join } from 'node:path';
import type { Bundle, Resource } from 'fhir/r4.js';
import type { HookRequest } from '../../src/cds-hooks.js';
import { runHook } from '../../src/pipeline.js';
import { compileEgress } from '../../src/prefetch/egress.js';
import { createFhirPath } from '../../src/rules/fhirpath.js';
import { loadModels } from '../../src/scoring/load.js';
import { loadServices } from '../../src/services/load.js';
import { loadValueSets } from '../../src/services/value-sets.js';
import { patientOf, resourcesOf } from '../synthetic/bundle.js';
import { benchRecords, median, prefetchFrom, round } from './helpers.js';

const SERVICE_IDS = ['knee-oa-progression', 'melanoma-lesion-triage'];
const SYNTHEA = join('..', 'shared', 'synthea');
const passesArg = process.argv.indexOf('--passes');
const PASSES = passesArg > 0 ? Number(process.argv[passesArg + 1]) : 20;

const today = new Date();
const { generated, synthea } = benchRecords(today, SYNTHEA);

const valueSets = loadValueSets('fhir-profiles');
const engines = {
  compiled: createFhirPath({ compiled: true }),
  interpreted: createFhirPath({ compiled: false }),
};
const servicesOf = async (engine: (typeof engines)['compiled']) =>
  loadServices('cds-services', engine, valueSets, await loadModels('models', engine)).filter((s) =>
    SERVICE_IDS.includes(s.definition.id),
  );
const services = {
  compiled: await servicesOf(engines.compiled),
  interpreted: await servicesOf(engines.interpreted),
};

function requests(records: readonly Bundle[]): { index: number; body: string }[] {
  return records.flatMap((bundle) => {
    const resources = resourcesOf(bundle) as Resource[];
    const patientId = patientOf(bundle).id!;
    return services.compiled.map((service, index) => {
      const prefetch: Record<string, unknown> = {};
      for (const { key, spec } of service.prefetch) {
        const value = prefetchFrom(spec.query.replaceAll('{{context.patientId}}', patientId), resources);
        if (value !== null) prefetch[key] = value;
      }
      const request: HookRequest = {
        hook: 'patient-view',
        hookInstance: '00000000-0000-4000-8000-000000000000',
        context: { userId: 'Practitioner/bench', patientId },
        prefetch: prefetch as HookRequest['prefetch'],
      };
      return { index, body: JSON.stringify(request) };
    });
  });
}

const deps = {
  fhirFetch: async () => {
    throw new Error('everything is prefetched');
  },
  now: () => today,
  uuid: () => '00000000-0000-4000-8000-000000000001',
  egress: () => compileEgress('test'),
  publicUrl: 'https://cds.example.org',
  audit: { recordServiceCall: async () => {}, recordObjection: async () => {} },
  log: { info: () => {}, warn: () => {}, child: () => deps.log },
};

type Mode = 'compiled' | 'interpreted';
type StageMs = { rules: number; models: number };

async function run(mode: Mode, index: number, body: string): Promise<StageMs> {
  const outcome = await runHook(
    { service: services[mode][index]!, body: JSON.parse(body) as HookRequest, client: null, language: 'en' },
    deps,
  );
  const ms: StageMs = { rules: 0, models: 0 };
  for (const { stage, ms: value } of outcome.timings) {
    if (stage === 'rules' || stage === 'models') ms[stage] = value;
  }
  return ms;
}

async function measure(label: string, bodies: { index: number; body: string }[]) {
  const samples: Record<Mode, StageMs[]> = { compiled: [], interpreted: [] };
  /** Per call: interpreted time over compiled time, the two run back to back on the same body. */
  const ratios: StageMs[] = [];
  for (let pass = 0; pass < PASSES; pass += 1) {
    for (const { index, body } of bodies) {
      // Alternate which runs first, so neither always meets a warm cache.
      const first: Mode = pass % 2 === 0 ? 'compiled' : 'interpreted';
      const second: Mode = first === 'compiled' ? 'interpreted' : 'compiled';
      const a = await run(first, index, body);
      const b = await run(second, index, body);
      if (pass === 0) continue; // warm-up
      const by = { [first]: a, [second]: b } as Record<Mode, StageMs>;
      samples.compiled.push(by.compiled);
      samples.interpreted.push(by.interpreted);
      ratios.push({
        rules: by.interpreted.rules / by.compiled.rules,
        models: by.interpreted.models / by.compiled.models,
      });
    }
  }
  const medians = (rows: StageMs[]) => ({
    rulesMs: round(median(rows.map((r) => r.rules)), 4),
    modelsMs: round(median(rows.map((r) => r.models)), 4),
  });
  const meanBytes = Math.round(bodies.reduce((s, b) => s + b.body.length, 0) / bodies.length);
  console.log(
    JSON.stringify({
      bodies: label,
      calls: bodies.length,
      passes: PASSES - 1,
      meanBodyBytes: meanBytes,
      compiled: medians(samples.compiled),
      interpreted: medians(samples.interpreted),
      medianRatio: {
        rules: round(median(ratios.map((r) => r.rules).filter(Number.isFinite)), 2),
        models: round(median(ratios.map((r) => r.models).filter(Number.isFinite)), 2),
      },
    }),
  );
}

await measure('generated', requests(generated));
if (synthea.length > 0) await measure('synthea', requests(synthea));
else console.log(`no ${SYNTHEA}: the Synthea half is skipped`);
