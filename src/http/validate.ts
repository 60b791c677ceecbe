/**
 * Compiled validators for the HTTP schemas. The schemas reference each other as
 * `#/components/schemas/<Name>`, exactly as in openapi.yaml, so they are registered in ajv under one
 * document shaped like the OpenAPI components section.
 */
import type { ErrorObject, ValidateFunction } from 'ajv';
import { createAjv } from '../ajv.js';
import type { HookName } from '../cds-hooks.js';
import { CONTEXT_SCHEMAS, SCHEMAS, type SchemaName } from './schemas.js';

const DOCUMENT_ID = 'cds-hooks.json';

// strictRequired off: `if/then` branches legitimately require properties declared beside them.
const ajv = createAjv({ allErrors: false, strictRequired: false });
ajv.addKeyword('components');
ajv.addSchema({ $id: DOCUMENT_ID, components: { schemas: SCHEMAS } });

// Compiled eagerly, at start-up: a schema mistake stops the server rather than the first request.
const compiled = new Map(
  Object.keys(SCHEMAS).map((name) => [
    name,
    ajv.compile({ $ref: `${DOCUMENT_ID}#/components/schemas/${name}` }),
  ]),
);

/** The validator of a named schema. */
export function validatorFor(name: SchemaName): ValidateFunction {
  return compiled.get(name)!;
}

const contextValidators = new Map(
  Object.entries(CONTEXT_SCHEMAS).map(([hook, schema]) => [hook, ajv.compile(schema)] as const),
);

/** Validates a hook's context; `undefined` when the hook is not one the service knows. */
export function contextValidatorFor(hook: HookName): ValidateFunction {
  return contextValidators.get(hook)!;
}

/** One readable line for the first validation error: where, and what is wrong. */
export function describeError(errors: ErrorObject[] | null | undefined, root: string): string {
  const error = errors?.[0];
  if (!error) return 'invalid';
  const where = `${root}${error.instancePath.replace(/\//g, '.')}`;
  const extra =
    error.keyword === 'required'
      ? ` "${(error.params as { missingProperty: string }).missingProperty}"`
      : error.keyword === 'enum'
        ? ` (${(error.params as { allowedValues: unknown[] }).allowedValues.join(', ')})`
        : '';
  return `${where} ${error.message}${extra}`;
}
