/**
 * Runs every expression of the bundled services and models two ways on every input the pipeline hands
 * it (`differential`), on generated and edge-case records: the compiled closures against fhirpath.js
 * (test/rules/fhirpath-compiled.test.ts), an engine given stored parse trees against one that parses
 * (test/rules/parse-trees.test.ts).
 */
import type { Test } from 'tap';
import type { Bundle, Resource } from 'fhir/r4.js';
import type { HookRequest } from '../../src/cds-hooks.js';
import { CdsError } from '../../src/errors.js';
import { runHook } from '../../src/pipeline.js';
import { compileEgress } from '../../src/prefetch/egress.js';
import { type CompiledExpression, createFhirPath, type FhirPath } from '../../src/rules/fhirpath.js';
import { loadModels } from '../../src/scoring/load.js';
import { loadServices } from '../../src/services/load.js';
import { loadValueSets } from '../../src/services/value-sets.js';
import { prefetchFrom } from '../../tools/bench/helpers.js';
import { patientOf, resourcesOf, toServerForm } from '../../tools/synthetic/bundle.js';
import {
  brainMriProcedure,
  medicationRequest,
  orderPrefetch,
  orderSelectRequest,
  orderSignRequest,
  valproatePppObservation,
} from '../../tools/synthetic/orders.js';
import { generatePatient } from '../../tools/synthetic/patients.js';
import { createRng } from '../../tools/synthetic/random.js';
import { NOW } from './app.js';
import { memoryAudit, memoryLog } from './pipeline.js';

/**
 * A value as far as any reader can tell it apart: the class of fhirpath.js's typed values (with their
 * path and FHIR type for a node), and the hidden `__path__` fhirpath.js attaches to a plain result
 * (later evaluations read the type from it).
 */
export function normal(value: unknown): unknown {
  if (Array.isArray(value)) return value.map(normal);
  if (typeof value === 'bigint') return `${value}n`;
  if (value === null || typeof value !== 'object') return value;
  const name = (value as object).constructor?.name;
  if (name === 'ResourceNode') {
    const n = value as Record<string, unknown>;
    return {
      ResourceNode: {
        path: n.path,
        type: n.fhirNodeDataType,
        propName: n.propName,
        index: n.index,
        data: normal(n.data),
        _data: normal(n._data),
      },
    };
  }
  if (name && name.startsWith('FP_')) return { [name]: String(value) };
  const out: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(value)) out[k] = normal(v);
  const info = Object.getOwnPropertyDescriptor(value, '__path__')?.value as
    Record<string, unknown> | undefined;
  if (info) {
    out.__path__ = {
      path: info.path,
      type: info.fhirNodeDataType,
      propName: info.propName,
      index: info.index,
    };
  }
  return out;
}

export type Outcome = { value: unknown } | { error: string };
export function outcome(run: () => unknown): Outcome {
  try {
    return { value: normal(run()) };
  } catch (error) {
    return { error: error instanceof Error ? error.message : String(error) };
  }
}

export interface Differential {
  engine: FhirPath;
  /** Per source: evaluations compared, and mismatches. */
  evaluated: Map<string, number>;
  mismatches: string[];
}

/**
 * An engine whose every expression runs both ways on each evaluation and records any difference. It
 * answers with the oracle's result (or error), so the pipeline follows the oracle's path. By default,
 * the compiled closures against fhirpath.js.
 */
export function differential(
  compiledEngine: FhirPath = createFhirPath({ shortcuts: false }),
  oracleEngine: FhirPath = createFhirPath({ shortcuts: false, compiled: false }),
): Differential {
  const evaluated = new Map<string, number>();
  const mismatches: string[] = [];
  const engine: FhirPath = {
    get counts() {
      return compiledEngine.counts;
    },
    compile(source, variables, keepTypes) {
      const compiled = compiledEngine.compile(source, variables, keepTypes);
      const reference = oracleEngine.compile(source, variables, keepTypes);
      evaluated.set(source, evaluated.get(source) ?? 0);
      /** Runs `mine` and the oracle's `want`, records any difference, and answers as the oracle does. */
      const compare = <T>(kind: string, want: () => T, mine: () => T): T => {
        let wanted: T | undefined;
        let wantError: unknown;
        let failed = false;
        try {
          wanted = want();
        } catch (error) {
          wantError = error;
          failed = true;
        }
        const a = failed ? { error: (wantError as Error).message } : { value: normal(wanted) };
        const b = outcome(mine);
        evaluated.set(source, evaluated.get(source)! + 1);
        if (JSON.stringify(a) !== JSON.stringify(b) && mismatches.length < 20) {
          mismatches.push(
            `${source} (${kind})\n  fhirpath.js: ${JSON.stringify(a)}\n  compiled:    ${JSON.stringify(b)}`,
          );
        }
        if (failed) throw wantError;
        return wanted as T;
      };
      const expression: CompiledExpression = {
        source,
        evaluate: (input, env, now) =>
          compare(
            'evaluate',
            () => reference.evaluate(input, env, now),
            () => compiled.evaluate(input, env, now),
          ),
        // The compiled side's own `first` (a union of paths runs branch by branch) against the first
        // item of fhirpath.js's whole result.
        first: (input, env, now) =>
          compare(
            'first',
            () => reference.evaluate(input, env, now)[0],
            () => compiled.first(input, env, now),
          ),
      };
      return expression;
    },
  };
  return { engine, evaluated, mismatches };
}

export const valueSets = loadValueSets('fhir-profiles');

export type Services = Awaited<ReturnType<typeof loadAll>>;
export const loadAll = async (engine: FhirPath) =>
  loadServices('cds-services', engine, valueSets, await loadModels('models', engine));

/** Every hook request the bundled services would get for a record. */
export function requestsFor(
  services: Services,
  record: Bundle,
  index: number,
): { service: (typeof services)[number]; request: HookRequest }[] {
  const patientId = patientOf(record).id!;
  // Entries the prescribing rules read, on some records.
  const extra: Resource[] = [];
  if (index % 2 === 0)
    extra.push(valproatePppObservation(`ppp-${index}`, patientId, '2026-03-01', index % 4 === 0));
  if (index % 3 === 0)
    extra.push(brainMriProcedure(`mri-${index}`, patientId, index % 6 === 0 ? '2021-02' : '2025-06-30'));
  if (index % 5 === 0) {
    extra.push(
      medicationRequest({
        id: `cpa-${index}`,
        drug: 'cyproterone',
        patientId,
        status: 'completed',
        authoredOn: '2019-04-01',
      }),
    );
  }
  const resources = [...(resourcesOf(record) as Resource[]), ...extra];
  const drafts = [
    medicationRequest({ id: `d1-${index}`, drug: index % 2 === 0 ? 'ibuprofen' : 'naproxenAtc', patientId }),
    medicationRequest({ id: `d2-${index}`, drug: index % 3 === 0 ? 'valproate' : 'cyproterone', patientId }),
    ...(index % 4 === 1 ? [medicationRequest({ id: `d3-${index}`, drug: 'warfarin', patientId })] : []),
  ];
  const orders = orderPrefetch(resources, patientId);
  return services.map((service) => {
    const { hook } = service.definition;
    if (hook === 'order-select' || hook === 'order-sign') {
      const prefetch = Object.fromEntries(
        service.prefetch.filter(({ key }) => key in orders).map(({ key }) => [key, orders[key]!]),
      ) as HookRequest['prefetch'];
      const build = hook === 'order-select' ? orderSelectRequest : orderSignRequest;
      return { service, request: build({ patientId, drafts, prefetch }) };
    }
    const prefetch: Record<string, unknown> = {};
    for (const { key, spec } of service.prefetch) {
      const value = prefetchFrom(spec.query.replaceAll('{{context.patientId}}', patientId), resources);
      if (value !== null) prefetch[key] = value;
    }
    return {
      service,
      request: {
        hook: 'patient-view',
        hookInstance: 'b0e8f0a4-52a7-4a8c-9a3e-2f1c2f0a9d11',
        context: { userId: 'Practitioner/p', patientId },
        prefetch: prefetch as HookRequest['prefetch'],
      },
    };
  });
}

/** The generated cohort: knee OA, lesions, prescribing risks, seeded. */
export function cohort(count: number): Bundle[] {
  return Array.from({ length: count }, (_, i) =>
    toServerForm(
      generatePatient(
        createRng(18, i),
        i % 4 === 0
          ? { now: NOW, kneeOa: true, age: 50 + (i % 28), klGrade: i % 8 === 0 ? null : i % 5 }
          : i % 4 === 1
            ? { now: NOW, lesions: 1 + (i % 3), skinAssessment: true }
            : i % 4 === 2
              ? { now: NOW, age: 60 + (i % 30), giBleed: true, heartFailure: i % 3 === 0, ckdStage: i % 6 }
              : { now: NOW, gender: 'female', age: 20 + (i % 30) },
      ),
    ),
  );
}

/**
 * Edge cases made from generated records: partial dates, missing values, wrong types, quantities
 * without units or with comparators, codings as a single object, strings where numbers belong.
 */
export function edgeCases(records: readonly Bundle[]): Bundle[] {
  const mutate = (resource: Record<string, unknown>, k: number): void => {
    const r = resource;
    switch (k % 8) {
      case 0:
        if (typeof r.birthDate === 'string') r.birthDate = r.birthDate.slice(0, 4);
        if (typeof r.effectiveDateTime === 'string') r.effectiveDateTime = r.effectiveDateTime.slice(0, 7);
        break;
      case 1:
        delete r.valueQuantity;
        delete r.status;
        delete r.birthDate;
        break;
      case 2:
        if (r.valueQuantity) r.valueQuantity = { value: (r.valueQuantity as { value?: number }).value };
        break;
      case 3:
        if (r.valueQuantity) r.valueQuantity = { ...(r.valueQuantity as object), comparator: '>' };
        break;
      case 4:
        if (r.valueInteger !== undefined) r.valueString = String(r.valueInteger);
        delete r.valueInteger;
        if (r.valueQuantity) r.valueString = 'high';
        delete r.valueQuantity;
        break;
      case 5: {
        // A lone coding where a list belongs (FHIRPath reads it as a list of one); not on the codes the
        // test's own prefetch builder filters Observations and Procedures by.
        const single = (concept: unknown) => {
          const c = concept as { coding?: unknown } | undefined;
          if (Array.isArray(c?.coding) && c.coding.length > 0) c.coding = c.coding[0] as unknown;
        };
        if (r.resourceType === 'Condition' || r.resourceType === 'MedicationRequest') {
          single(r.code);
          single(r.verificationStatus);
          single(r.medicationCodeableConcept);
        }
        if (Array.isArray(r.component) && r.component.length > 0) {
          single((r.component[0] as { code?: unknown }).code);
        }
        break;
      }
      case 6:
        if (typeof r.effectiveDateTime === 'string')
          r.effectiveDateTime = `${r.effectiveDateTime.slice(0, 10)}T23:30:00-05:00`;
        if (typeof r.onsetDateTime === 'string') r.onsetDateTime = r.onsetDateTime.slice(0, 4);
        break;
      default:
        if (Array.isArray(r.component)) r.component = (r.component as unknown[]).slice(1);
        if (r.valueCodeableConcept) r.valueCodeableConcept = { text: 'unknown' };
    }
  };
  return records.map((record, i) => {
    const copy = structuredClone(record);
    for (const [j, entry] of (copy.entry ?? []).entries()) {
      if (entry.resource && entry.resource.resourceType !== 'Patient') {
        mutate(entry.resource as unknown as Record<string, unknown>, i + j);
      } else if (entry.resource && i % 2 === 0) {
        mutate(entry.resource as unknown as Record<string, unknown>, 0);
      }
    }
    return copy;
  });
}

export const deps = () => {
  let counter = 0;
  return {
    fhirFetch: async () => {
      throw new Error('everything is prefetched');
    },
    now: () => NOW,
    uuid: () => `00000000-0000-4000-8000-${String((counter += 1)).padStart(12, '0')}`,
    egress: () => compileEgress('test'),
    publicUrl: 'https://cds.example.org',
    audit: memoryAudit(),
    log: memoryLog(),
  };
};

/** The call's outcome, or the refusal of malformed data (both modes must refuse the same records). */
export async function callOrRefusal(
  service: Parameters<typeof runHook>[0]['service'],
  request: unknown,
): Promise<Awaited<ReturnType<typeof runHook>> | { refused: string }> {
  try {
    return await runHook(
      { service, body: structuredClone(request) as HookRequest, client: null, language: 'en' },
      deps(),
    );
  } catch (error) {
    if (error instanceof CdsError && error.code === 'CDS_ERR_PREFETCH_MALFORMED')
      return { refused: error.message };
    throw error;
  }
}

export async function runDifferential(
  t: Test,
  records: readonly Bundle[],
  label: string,
  d: Differential = differential(),
) {
  const services = await loadAll(d.engine);
  let cards = 0;
  for (const [i, record] of records.entries()) {
    for (const { service, request } of requestsFor(services, record, i)) {
      const result = await callOrRefusal(service, request);
      // Malformed records are refused before any expression runs (src/prefetch/structure.ts).
      if ('refused' in result) continue;
      cards += result.response.cards.length;
    }
  }
  t.same(d.mismatches, [], `${label}: compiled and fhirpath.js agree on every evaluation`);
  const total = [...d.evaluated.values()].reduce((a, b) => a + b, 0);
  // Outcome definitions (a card's `outcome`, a model's `outcomeDefinition`) are compiled at load but only
  // `npm run evaluate` runs them, on later data (test/tools/evaluate/): no hook call reaches them.
  const outcomeSources = new Set(
    [
      ...services.flatMap((s) => s.definition.cards.map((c) => c.outcome)),
      ...[...(await loadModels('models', d.engine)).values()].map((m) => m.manifest.outcomeDefinition),
    ].flatMap((o) => (o ? [o.expression, o.date, ...('focus' in o && o.focus ? [o.focus] : [])] : [])),
  );
  const never = [...d.evaluated]
    .filter(([source, n]) => n === 0 && !outcomeSources.has(source))
    .map(([source]) => source);
  t.comment(
    `${label}: ${records.length} records, ${d.evaluated.size} expressions (${d.engine.counts.compiled} compiled, ` +
      `${d.engine.counts.interpreted} left to fhirpath.js), ${total} evaluations compared, ${cards} cards`,
  );
  return { total, never, cards, counts: d.engine.counts, sources: d.evaluated.size };
}
