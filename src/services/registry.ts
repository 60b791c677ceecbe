/**
 * The immutable set of loaded services: lookup by id, and the discovery document, built once and
 * sorted by id so that `GET /cds-services` is identical on every call and every instance.
 */
import type { DiscoveryResponse, DiscoveryService } from '../cds-hooks.js';
import type { CompiledService } from './load.js';

export interface Registry {
  readonly discovery: DiscoveryResponse;
  get(id: string): CompiledService | undefined;
  readonly services: readonly CompiledService[];
}

function discoveryEntry(service: CompiledService): DiscoveryService {
  const d = service.definition;
  // Every model's status (e.g. "demonstration model trained on simulated data") is part of what the
  // service is: discovery says it, with where to read the model card.
  const models = service.models.map(
    ({ manifest: m }) =>
      ` Model ${m.id} ${m.version}: ${m.statusText.en} Model card: /models/${m.id}/model-card.`,
  );
  const entry: DiscoveryService = {
    hook: d.hook,
    title: d.title,
    description: d.description + models.join(''),
    id: d.id,
  };
  if (service.prefetch.length > 0) {
    entry.prefetch = Object.fromEntries(service.prefetch.map((p) => [p.key, p.spec.query]));
  }
  if (d.usageRequirements) entry.usageRequirements = d.usageRequirements;
  return entry;
}

/** Builds the registry; `services` must have unique ids (the loader guarantees it). */
export function createRegistry(services: readonly CompiledService[]): Registry {
  const sorted = [...services].sort((a, b) => (a.definition.id < b.definition.id ? -1 : 1));
  const byId = new Map(sorted.map((s) => [s.definition.id, s]));
  const discovery: DiscoveryResponse = Object.freeze({ services: sorted.map(discoveryEntry) });
  return { discovery, get: (id) => byId.get(id), services: sorted };
}
