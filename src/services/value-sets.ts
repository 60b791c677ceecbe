/**
 * Local value sets: the FHIR R4 `ValueSet-*.json` resources of the profiles folder, loaded and checked
 * at start-up and handed to every FHIRPath expression as `%valueSets.<name>`.
 *
 * `<name>` is the ValueSet id in lower camel case (`oral-nsaid` → `oralNsaid`). Each value set is the
 * collection of its codes written `system|code` (e.g. `http://www.nlm.nih.gov/research/umls/rxnorm|310965`),
 * so a rule tests membership without a terminology server:
 *
 *     medicationCodeableConcept.coding.where((system & '|' & code) in %valueSets.oralNsaid).exists()
 *
 * Only enumerated value sets are supported (`compose.include` with `system` and `concept`): a filter, an
 * imported value set or an `exclude` stops start-up rather than silently matching nothing.
 */
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { createAjv } from '../ajv.js';
import { CdsError } from '../errors.js';

/** Value-set name → its codes as `system|code`. */
export type ValueSets = Readonly<Record<string, readonly string[]>>;

const VALUE_SET_SCHEMA = {
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
        include: {
          type: 'array',
          minItems: 1,
          items: {
            type: 'object',
            additionalProperties: false,
            required: ['system', 'concept'],
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
            },
          },
        },
      },
    },
  },
} as const;

const validate = createAjv().compile(VALUE_SET_SCHEMA);

interface ValueSetResource {
  id: string;
  compose: { include: { system: string; concept: { code: string }[] }[] };
}

function fail(file: string, pointer: string, reason: string): never {
  throw new CdsError('CDS_ERR_DEFINITION_INVALID', { file, pointer: pointer ? `#${pointer}` : '', reason });
}

/** `oral-nsaid` → `oralNsaid`. */
export function valueSetName(id: string): string {
  return id.replace(/-([a-z0-9])/g, (_, c: string) => c.toUpperCase());
}

/**
 * Loads every `ValueSet-*.json` of a folder.
 * @throws CdsError CDS_ERR_DEFINITION_INVALID naming the file and the JSON pointer of the first problem
 */
export function loadValueSets(dir: string): ValueSets {
  let names: string[];
  try {
    names = readdirSync(dir).filter((n) => /^ValueSet-.*\.json$/.test(n));
  } catch (error) {
    fail(dir, '', `cannot read the value-set folder: ${(error as Error).message}`);
  }
  const sets: Record<string, readonly string[]> = {};
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
    const codes = new Set<string>();
    valueSet.compose.include.forEach((include, i) =>
      include.concept.forEach((concept, j) => {
        const token = `${include.system}|${concept.code}`;
        if (codes.has(token)) {
          fail(file, `/compose/include/${i}/concept/${j}/code`, `${token} is listed twice`);
        }
        codes.add(token);
      }),
    );
    sets[valueSetName(valueSet.id)] = Object.freeze([...codes]);
  }
  return Object.freeze(sets);
}
