/**
 * Local value sets: the FHIR R4 `ValueSet-*.json` resources of the profiles folder, loaded and checked
 * at start-up, compiled by the terminology component (`src/terminology/terminology.ts`) and handed to every
 * FHIRPath expression through the `inValueSet('<id>')` function (`src/rules/fhirpath.ts`):
 *
 *     medicationCodeableConcept.inValueSet('oral-nsaid')
 *
 * is true when any coding of the concept is a member. A value set is written the FHIR way:
 * `compose.include` (and `exclude`) items with a `system` and `concept` lists and/or `filter`s (ATC and
 * ICD-10 by hierarchy, SNOMED CT and RxNorm from the bundled expansions of `terminology/`). A filter the
 * component cannot evaluate, or an imported value set, stops start-up rather than silently matching nothing.
 */
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { CdsError } from '../errors.js';
import * as generated from '../generated/value-set.js';
import { generatedValidator } from '../validators.js';
import {
  type BundledTerminology,
  type ComposeInclude,
  compileCompose,
  loadBundledTerminology,
  TerminologyError,
  type ValueSetMatcher,
} from '../terminology/terminology.js';

/** The loaded value sets, by id (`oral-nsaid`) or canonical URL. */
export interface ValueSets {
  /** The ids, sorted. */
  readonly ids: readonly string[];
  get(idOrUrl: string): ValueSetMatcher | undefined;
  /** Whether a coding `system|code` is a member of the value set (false for an unknown value set). */
  contains(idOrUrl: string, system: string, code: string): boolean;
  /** The bundled expansion files read, with their source and date. */
  readonly provenance: BundledTerminology['provenance'];
  /**
   * The terminology server answering for these value sets (`CDS_TERMINOLOGY_URL`), set on the value sets
   * it wraps (src/terminology/remote.ts); absent for the bundled ones alone.
   */
  readonly remote?: import('../terminology/remote.js').RemoteTerminology;
}

/** No value set: for services that read none. */
export const NO_VALUE_SETS: ValueSets = Object.freeze({
  ids: Object.freeze([]),
  get: () => undefined,
  contains: () => false,
  provenance: Object.freeze([]),
});

const INCLUDE = {
  type: 'object',
  additionalProperties: false,
  required: ['system'],
  anyOf: [
    { properties: { concept: true }, required: ['concept'] },
    { properties: { filter: true }, required: ['filter'] },
  ],
  properties: {
    system: { type: 'string', format: 'uri' },
    version: { type: 'string' },
    concept: {
      type: 'array',
      minItems: 1,
      items: {
        type: 'object',
        additionalProperties: false,
        required: ['code'],
        properties: {
          code: { type: 'string', pattern: '^[^\\s|]+$' },
          display: { type: 'string', minLength: 1 },
        },
      },
    },
    filter: {
      type: 'array',
      minItems: 1,
      items: {
        type: 'object',
        additionalProperties: false,
        required: ['property', 'op', 'value'],
        properties: {
          property: { type: 'string', minLength: 1 },
          op: { type: 'string', minLength: 1 },
          value: { type: 'string', minLength: 1 },
        },
      },
    },
  },
} as const;

/** A `ValueSet-*.json` file, as far as the service reads it (compiled by `npm run schemas`). */
export const VALUE_SET_SCHEMA = {
  type: 'object',
  required: ['resourceType', 'id', 'url', 'status', 'compose'],
  properties: {
    resourceType: { const: 'ValueSet' },
    id: { type: 'string', pattern: '^[a-z][a-z0-9]*(-[a-z0-9]+)*$' },
    url: { type: 'string', format: 'uri' },
    status: { enum: ['draft', 'active', 'retired', 'unknown'] },
    compose: {
      type: 'object',
      additionalProperties: false,
      required: ['include'],
      properties: {
        lockedDate: { type: 'string' },
        inactive: { type: 'boolean' },
        include: { type: 'array', minItems: 1, items: INCLUDE },
        exclude: { type: 'array', minItems: 1, items: INCLUDE },
      },
    },
  },
} as const;

// VALUE_SET_SCHEMA, compiled by `npm run schemas`.
const validate = generatedValidator(generated.valueSet);

interface ValueSetResource {
  id: string;
  url: string;
  compose: { include: ComposeInclude[]; exclude?: ComposeInclude[] };
}

function fail(file: string, pointer: string, reason: string): never {
  throw new CdsError('CDS_ERR_DEFINITION_INVALID', { file, pointer: pointer ? `#${pointer}` : '', reason });
}

/** `oral-nsaid` → `oralNsaid`. */
export function valueSetName(id: string): string {
  return id.replace(/-([a-z0-9])/g, (_, c: string) => c.toUpperCase());
}

/**
 * Loads every `ValueSet-*.json` of a folder, with the bundled expansions of its `terminology/` folder.
 * @throws CdsError CDS_ERR_DEFINITION_INVALID naming the file and the JSON pointer of the first problem
 */
export function loadValueSets(dir: string): ValueSets {
  let names: string[];
  try {
    names = readdirSync(dir).filter((n) => /^ValueSet-.*\.json$/.test(n));
  } catch (error) {
    fail(dir, '', `cannot read the value-set folder: ${(error as Error).message}`);
  }
  let bundled: BundledTerminology;
  try {
    bundled = loadBundledTerminology(dir);
  } catch (error) {
    fail(join(dir, 'terminology'), '', (error as Error).message);
  }
  const byKey = new Map<string, ValueSetMatcher>();
  const ids: string[] = [];
  for (const file of names.sort()) {
    let resource: unknown;
    try {
      resource = JSON.parse(readFileSync(join(dir, file), 'utf8'));
    } catch (error) {
      fail(file, '', `not JSON: ${(error as Error).message}`);
    }
    if (!validate(resource)) {
      const error = validate.errors![0]!;
      const extra = error.params.additionalProperty;
      fail(file, error.instancePath, `${error.message}${extra === undefined ? '' : ` (${String(extra)})`}`);
    }
    const valueSet = resource as ValueSetResource;
    if (file !== `ValueSet-${valueSet.id}.json`) {
      fail(file, '/id', `the file of ValueSet "${valueSet.id}" must be named ValueSet-${valueSet.id}.json`);
    }
    valueSet.compose.include.forEach((include, i) => {
      const seen = new Set<string>();
      (include.concept ?? []).forEach((concept, j) => {
        if (seen.has(concept.code)) {
          fail(
            file,
            `/compose/include/${i}/concept/${j}/code`,
            `${include.system}|${concept.code} is listed twice`,
          );
        }
        seen.add(concept.code);
      });
    });
    let matcher: ValueSetMatcher;
    try {
      matcher = compileCompose(valueSet.id, valueSet.url, valueSet.compose, bundled);
    } catch (error) {
      if (error instanceof TerminologyError) fail(file, error.pointer, error.message);
      throw error;
    }
    ids.push(valueSet.id);
    byKey.set(valueSet.id, matcher);
    byKey.set(valueSet.url, matcher);
  }
  return Object.freeze({
    ids: Object.freeze(ids),
    get: (key: string) => byKey.get(key),
    contains: (key: string, system: string, code: string) => byKey.get(key)?.contains(system, code) ?? false,
    provenance: bundled.provenance,
  });
}
