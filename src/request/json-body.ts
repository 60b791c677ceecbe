/**
 * The JSON body parser of every route (application/json and application/fhir+json). JSON.parse, then
 * a refusal of any `__proto__` or `constructor` key, at any depth, whatever its value: no FHIR or CDS
 * Hooks element has those names, and code that copies objects could be tricked by them (prototype
 * pollution). The text is scanned first, so that the walk over the parsed value runs only when one of
 * those names, or a `\u` escape that could spell one, appears in it.
 */
import { CdsError } from '../errors.js';

const FORBIDDEN_KEYS = new Set(['__proto__', 'constructor']);
const SUSPECT = /__proto__|constructor|\\u/;

/**
 * Parses a request body.
 * @throws CdsError CDS_ERR_REQUEST_EMPTY_BODY (nothing but white space), CDS_ERR_REQUEST_MALFORMED_JSON
 *   (not JSON, or a forbidden key)
 */
export function parseJsonBody(text: string): unknown {
  if (text.trim() === '') throw new CdsError('CDS_ERR_REQUEST_EMPTY_BODY');
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch {
    throw new CdsError('CDS_ERR_REQUEST_MALFORMED_JSON');
  }
  if (SUSPECT.test(text) && hasForbiddenKey(value)) throw new CdsError('CDS_ERR_REQUEST_MALFORMED_JSON');
  return value;
}

/** Walks the parsed value (iteratively: bodies may nest thousands of levels deep). */
function hasForbiddenKey(root: unknown): boolean {
  const stack: unknown[] = [root];
  while (stack.length > 0) {
    const value = stack.pop();
    if (typeof value !== 'object' || value === null) continue;
    if (Array.isArray(value)) {
      for (const item of value) stack.push(item);
      continue;
    }
    for (const key of Object.keys(value)) {
      if (FORBIDDEN_KEYS.has(key)) return true;
      stack.push((value as Record<string, unknown>)[key]);
    }
  }
  return false;
}
