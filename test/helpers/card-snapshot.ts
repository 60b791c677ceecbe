/**
 * The cards every bundled service gives on a fixed set of records, as text: the evidence that a
 * refactoring left behaviour unchanged. Each record is sent to each patient-view service (in English
 * and in French) and to each prescribing service (one draft per drug, then an NSAID with an
 * anticoagulant, on the service's own hook), with the prefetch an EHR would build from the record. The
 * uuids of cards and suggestions are masked; everything else is kept byte for byte.
 */
import type { Bundle, Resource } from 'fhir/r4.js';
import type { FastifyInstance } from 'fastify';
import type { HookRequest } from '../../src/cds-hooks.js';
import { loadModels } from '../../src/scoring/load.js';
import { loadServices } from '../../src/services/load.js';
import { loadValueSets } from '../../src/services/value-sets.js';
import { prefetchFrom } from '../../tools/bench/helpers.js';
import { patientOf, resourcesOf } from '../../tools/synthetic/bundle.js';
import {
  type DrugKey,
  medicationRequest,
  orderPrefetch,
  orderSelectRequest,
  orderSignRequest,
} from '../../tools/synthetic/orders.js';
import { createFhirPath } from '../../src/rules/fhirpath.js';

/** The FHIRPath engine of this file's loads. */
const engine = createFhirPath();

/** One draft of each drug alone (in English), then an NSAID with an anticoagulant (in French). */
const DRAFTS: readonly (readonly DrugKey[])[] = [
  ['ibuprofen'],
  ['diclofenac'],
  ['celecoxib'],
  ['valproate'],
  ['cyproterone'],
  ['naproxen', 'apixaban'],
];
const UUID = /[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}/g;

export interface SnapshotLine {
  /** `<service> <hook> <patient> <variant>` */
  call: string;
  status: number;
  body: string;
}

/**
 * Calls every bundled service for every record (server form) through `app`.
 * @returns one line per call, in a fixed order
 */
export async function snapshotCards(
  app: FastifyInstance,
  records: readonly Bundle[],
): Promise<SnapshotLine[]> {
  const services = loadServices(
    'cds-services',
    engine,
    loadValueSets('fhir-profiles'),
    await loadModels('models', engine),
  )
    .slice()
    .sort((a, b) => a.definition.id.localeCompare(b.definition.id));
  const lines: SnapshotLine[] = [];
  const call = async (label: string, path: string, body: HookRequest, language: string) => {
    const res = await app.inject({
      method: 'POST',
      url: `/cds-services/${path}`,
      headers: { 'accept-language': language },
      payload: body,
    });
    lines.push({ call: label, status: res.statusCode, body: res.body.replace(UUID, '<uuid>') });
  };
  for (const record of records) {
    const resources: Resource[] = resourcesOf(record);
    const patientId = patientOf(record).id!;
    for (const service of services) {
      const id = service.definition.id;
      if (service.definition.hook === 'patient-view') {
        const prefetch: Record<string, unknown> = {};
        for (const { key, spec } of service.prefetch) {
          const value = prefetchFrom(spec.query.replaceAll('{{context.patientId}}', patientId), resources);
          if (value !== null) prefetch[key] = value;
        }
        const body: HookRequest = {
          hook: 'patient-view',
          hookInstance: `snap-${patientId}`,
          context: { userId: 'Practitioner/snap', patientId },
          prefetch: prefetch as HookRequest['prefetch'],
        };
        for (const language of ['en', 'fr'])
          await call(`${id} patient-view ${patientId} ${language}`, id, body, language);
        continue;
      }
      const prefetch = orderPrefetch(resources, patientId) as HookRequest['prefetch'];
      const build = service.definition.hook === 'order-select' ? orderSelectRequest : orderSignRequest;
      for (const drugs of DRAFTS) {
        const drafts = drugs.map((drug) => medicationRequest({ id: `draft-${drug}`, drug, patientId }));
        const language = drugs.length > 1 ? 'fr' : 'en';
        await call(
          `${id} ${patientId} ${drugs.join('+')}`,
          id,
          build({ patientId, drafts, prefetch }),
          language,
        );
      }
    }
  }
  return lines;
}
