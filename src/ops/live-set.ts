/**
 * The running set of services and models, swappable as a whole. Routes hold `live.registry` and
 * `live.models`, which always answer from the current set; a call that already looked up its service
 * keeps the objects it got and finishes on the set it started with.
 *
 * `reload()` loads the new set with the same code as start-up (models, value sets, service definitions,
 * every check included) and only then replaces the running one, in one assignment; any problem leaves
 * the running set untouched and is thrown. Reloads run one at a time. The onnxruntime sessions of a
 * replaced set are released after a grace period longer than the request timeout (no call can still be
 * using them); at close, those waiting are released at once.
 */
import type { Config } from '../config.js';
import type { FhirPath } from '../rules/fhirpath.js';
import { CdsError } from '../errors.js';
import {
  compareVersions,
  type LoadedModel,
  type ModelFiles,
  modelKey,
  type ModelRegistry,
  openModels,
  readApprovedModels,
  readModels,
  releaseModels,
} from '../scoring/load.js';
import { type CompiledService, loadServices } from '../services/load.js';
import { createRegistry, type Registry } from '../services/registry.js';
import { loadValueSets } from '../services/value-sets.js';
import type { RemoteTerminology } from '../terminology/remote.js';

/** Longer than Fastify's requestTimeout (30 s, app.ts): a replaced session is no longer in use. */
export const SESSION_GRACE_MS = 60_000;

export interface DefinitionSet {
  registry: Registry;
  /** By id: the version the services run (the highest on disk for a model no service runs). */
  models: ModelRegistry;
  /** Every version on disk, opened, by `modelKey(id, version)` (e.g. for a silent evaluation). */
  versions: ModelRegistry;
}

export type DefinitionDirs = Pick<Config, 'servicesDir' | 'modelsDir' | 'profilesDir'> &
  Partial<Pick<Config, 'approvedModelsFile'>> & {
    /** The terminology server, when one is configured: value sets answer from its expansions. */
    terminology?: RemoteTerminology;
  };

/** Everything under the configured folders, read and checked; nothing opened yet. */
export interface CheckedDefinitions {
  services: CompiledService<ModelFiles>[];
  /** Every version on disk, by `modelKey(id, version)`. */
  models: ReadonlyMap<string, ModelFiles>;
}

/**
 * The version of each model id that serves: the one the services name (all must name the same one:
 * which version issues cards is chosen in one place), else the highest on disk.
 * @throws CdsError CDS_ERR_DEFINITION_INVALID when two services run two versions of one model
 */
function servingKeys(checked: CheckedDefinitions): Map<string, string> {
  const serving = new Map<string, { key: string; file: string }>();
  for (const service of checked.services) {
    for (const model of service.models) {
      const { id, version } = model.manifest;
      const seen = serving.get(id);
      if (seen && seen.key !== modelKey(id, version)) {
        throw new CdsError('CDS_ERR_DEFINITION_INVALID', {
          file: service.file,
          pointer: '#/models',
          reason: `runs model "${id}" ${version} while ${seen.file} runs ${seen.key.split('@')[1]}: one version of a model issues cards`,
        });
      }
      serving.set(id, { key: modelKey(id, version), file: service.file });
    }
  }
  const keys = new Map([...serving].map(([id, { key }]) => [id, key]));
  for (const [key, files] of checked.models) {
    const id = files.manifest.id;
    const current = keys.get(id);
    if (serving.has(id)) continue;
    if (
      !current ||
      compareVersions(files.manifest.version, checked.models.get(current)!.manifest.version) > 0
    )
      keys.set(id, key);
  }
  return keys;
}

/**
 * Loads and checks everything under the configured folders (models, value sets, service definitions)
 * without opening anything.
 * @throws CdsError CDS_ERR_MODEL_INVALID / CDS_ERR_DEFINITION_INVALID naming the file and the reason
 */
export function checkDefinitions(dirs: DefinitionDirs, fhirpath: FhirPath): CheckedDefinitions {
  const approved = dirs.approvedModelsFile ? readApprovedModels(dirs.approvedModelsFile) : undefined;
  const models = readModels(dirs.modelsDir, fhirpath, approved ? { approved } : {});
  const bundled = loadValueSets(dirs.profilesDir);
  const valueSets = dirs.terminology ? dirs.terminology.wrap(bundled) : bundled;
  const services = loadServices(dirs.servicesDir, fhirpath, valueSets, models);
  const checked = { services, models };
  servingKeys(checked);
  return checked;
}

/**
 * Opens the models' sessions (checking them against their manifests) and binds the services to them.
 * @throws CdsError CDS_ERR_MODEL_INVALID, with no session left open
 */
export async function openDefinitions(checked: CheckedDefinitions): Promise<DefinitionSet> {
  const versions = await openModels(checked.models);
  const loaded = (key: string): LoadedModel => {
    const found = versions.get(key);
    // openModels opened every model checkDefinitions read, or threw.
    if (!found) throw new Error(`model "${key}" was not opened`);
    return found;
  };
  const services = checked.services.map((service) => ({
    ...service,
    models: service.models.map((m) => loaded(modelKey(m.manifest.id, m.manifest.version))),
    silentModels: service.silentModels.map((m) => loaded(modelKey(m.manifest.id, m.manifest.version))),
  }));
  const models = new Map([...servingKeys(checked)].map(([id, key]) => [id, loaded(key)]));
  return { registry: createRegistry(services), models, versions };
}

/**
 * Loads, checks and opens everything under the configured folders.
 * @throws CdsError CDS_ERR_MODEL_INVALID / CDS_ERR_DEFINITION_INVALID naming the file and the reason
 */
export async function loadDefinitions(dirs: DefinitionDirs, fhirpath: FhirPath): Promise<DefinitionSet> {
  const checked = checkDefinitions(dirs, fhirpath);
  // A reload fetches the expansions again (bounded by the timeout; the bundled ones answer meanwhile).
  await dirs.terminology?.refresh();
  return openDefinitions(checked);
}

/** A read-only map that answers from whatever `source()` returns now. */
function liveMap<K, V>(source: () => ReadonlyMap<K, V>): ReadonlyMap<K, V> {
  return {
    get: (key) => source().get(key),
    has: (key) => source().has(key),
    get size() {
      return source().size;
    },
    forEach: (callback, thisArg?: unknown) => source().forEach(callback, thisArg),
    entries: () => source().entries(),
    keys: () => source().keys(),
    values: () => source().values(),
    [Symbol.iterator]: () => source()[Symbol.iterator](),
  };
}

export interface ReloadResult {
  services: string[];
  models: { id: string; version: string; sha256: string }[];
}

export interface LiveSet {
  /** Always the current set's registry (discovery, lookup). */
  readonly registry: Registry;
  /** Always the current set's models. */
  readonly models: ModelRegistry;
  /** Always the current set's versions on disk, by `modelKey(id, version)`. */
  readonly versions: ModelRegistry;
  /**
   * Loads the configured folders again and, if everything is valid, makes it the running set.
   * @throws CdsError (the loader's) when anything is invalid; the running set is unchanged
   */
  reload(): Promise<ReloadResult>;
  /** Releases the sessions of the running set and of replaced sets still in their grace period. */
  close(): Promise<void>;
}

export function createLiveSet(
  initial: DefinitionSet,
  dirs: DefinitionDirs,
  fhirpath: FhirPath,
  options: { graceMs?: number } = {},
): LiveSet {
  const graceMs = options.graceMs ?? SESSION_GRACE_MS;
  let current = initial;
  const retiring = new Map<NodeJS.Timeout, ModelRegistry>();
  let queue: Promise<unknown> = Promise.resolve();

  const registry: Registry = {
    get discovery() {
      return current.registry.discovery;
    },
    get: (id) => current.registry.get(id),
    get services() {
      return current.registry.services;
    },
  };

  const retire = (models: ModelRegistry) => {
    // A model object kept by the new set (none today: every reload creates new sessions) stays open.
    const kept = new Set<LoadedModel>(current.versions.values());
    const old = new Map([...models].filter(([, m]) => !kept.has(m)));
    const timer = setTimeout(() => {
      retiring.delete(timer);
      void releaseModels(old);
    }, graceMs);
    timer.unref();
    retiring.set(timer, old);
  };

  const doReload = async (): Promise<ReloadResult> => {
    const next = await loadDefinitions(dirs, fhirpath);
    const previous = current;
    current = next;
    retire(previous.versions);
    return {
      services: next.registry.services.map((s) => s.definition.id),
      models: [...next.models.values()].map((m) => ({
        id: m.manifest.id,
        version: m.manifest.version,
        sha256: m.sha256,
      })),
    };
  };

  return {
    registry,
    models: liveMap(() => current.models),
    versions: liveMap(() => current.versions),
    reload() {
      const run = queue.then(doReload, doReload);
      queue = run.catch(() => undefined);
      return run;
    },
    async close() {
      const waiting = [...retiring];
      retiring.clear();
      for (const [timer] of waiting) clearTimeout(timer);
      // The app is closing (after its last request): the running set's sessions go too.
      await Promise.all([current.versions, ...waiting.map(([, models]) => models)].map(releaseModels));
    },
  };
}
