/**
 * The validators `npm run schemas` generates into src/generated/ (tools/schemas/standalone.ts), typed
 * for their call sites. The generated modules are ajv's standalone code, plain JavaScript under
 * `@ts-nocheck`; only ajv's types are imported here, so the service never loads ajv to validate.
 */
import type { ValidateFunction } from 'ajv';

/**
 * ajv's `ValidateFunction` as standalone code has it: the type guard and the `errors` of the last call
 * (no `schema` nor `schemaEnv`: those belong to an ajv instance).
 */
export type Validator<T = unknown> = ((data: unknown) => data is T) & Pick<ValidateFunction<T>, 'errors'>;

/**
 * Types a generated validator for `T`, the type its schema describes.
 * @param validate an export of a src/generated/ module
 * @throws Error when it is not there: the generated module predates the schema's site
 */
export function generatedValidator<T = unknown>(validate: unknown): Validator<T> {
  if (typeof validate !== 'function') {
    throw new Error('a generated validator is missing from src/generated/: run `npm run schemas`');
  }
  return validate as Validator<T>;
}
