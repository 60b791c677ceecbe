/**
 * Request validation, framework-free: compiled validators for the wire schemas, and the check of a
 * service call's body against its service (the pipeline's validation stage). The schemas reference
 * each other as `#/components/schemas/<Name>`, exactly as in openapi.yaml, so they are registered in
 * ajv under one document shaped like the OpenAPI components section.
 */
import type { ErrorObject, ValidateFunction } from 'ajv';
import { createAjv } from '../ajv.js';
import { type HookName, type HookRequest, KNOWN_HOOKS } from '../cds-hooks.js';
import { CdsError } from '../errors.js';
import { selectionProblem } from '../orders/draft-orders.js';
import type { CompiledService } from '../services/load.js';
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

/**
 * Checks that the hook is known, is the service's hook, and that the context fits that hook.
 * @throws CdsError CDS_ERR_HOOK_UNKNOWN, CDS_ERR_HOOK_MISMATCH or CDS_ERR_CONTEXT_INVALID (400)
 */
export function checkHook(service: CompiledService, body: HookRequest): void {
  if (!(KNOWN_HOOKS as readonly string[]).includes(body.hook)) {
    throw new CdsError('CDS_ERR_HOOK_UNKNOWN', { hook: body.hook.slice(0, 128) }, { expression: ['hook'] });
  }
  if (body.hook !== service.definition.hook) {
    throw new CdsError(
      'CDS_ERR_HOOK_MISMATCH',
      { serviceId: service.definition.id, expected: service.definition.hook, hook: body.hook },
      { expression: ['hook'] },
    );
  }
  const validate = contextValidatorFor(body.hook as HookName);
  if (!validate(body.context)) {
    throw new CdsError('CDS_ERR_CONTEXT_INVALID', {
      hook: body.hook,
      reason: describeError(validate.errors, 'context'),
    });
  }
  const problem = body.hook === 'order-select' ? selectionProblem(body.context) : undefined;
  if (problem) {
    throw new CdsError(
      'CDS_ERR_CONTEXT_INVALID',
      { hook: body.hook, reason: problem },
      {
        expression: ['context.selections'],
      },
    );
  }
}

/**
 * Validates a service call's body: its shape against the HookRequest schema (CDS Hooks 2.0 §"HTTP
 * Request"), then its hook and context against the service.
 * @returns the body, typed
 * @throws CdsError CDS_ERR_REQUEST_INVALID for a body of the wrong shape, or one of `checkHook`'s
 */
export function validateHookRequest(service: CompiledService, body: unknown): HookRequest {
  const validate = validatorFor('HookRequest');
  if (!validate(body)) {
    throw new CdsError('CDS_ERR_REQUEST_INVALID', { reason: describeError(validate.errors, 'request') });
  }
  const request = body as HookRequest;
  checkHook(service, request);
  return request;
}
