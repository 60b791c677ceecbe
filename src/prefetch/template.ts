/**
 * Prefetch templates (CDS Hooks 2.0 §Prefetch Template): parsed once at load, rendered per request.
 *
 * Tokens are `{{context.<field>}}` for the root-level primitive fields the hook marks "Prefetch Token:
 * Yes", and the user tokens `{{userPractitionerId}}`, `{{userPractitionerRoleId}}`, `{{userPatientId}}`,
 * `{{userRelatedPersonId}}`, which the spec derives from `context.userId` (`<Type>/<id>`).
 */
import { type HookName, PREFETCH_TOKEN_FIELDS, USER_TOKENS, type UserToken } from '../cds-hooks.js';

type Part = { literal: string } | { contextField: string } | { userToken: UserToken };

export interface ParsedTemplate {
  readonly source: string;
  readonly parts: readonly Part[];
  /** `Patient` for a read such as `Patient/{{context.patientId}}`; `Bundle` for a search. */
  readonly resultType: string;
}

/**
 * Parses a template and checks each token against the hook.
 * @throws Error naming the first token the hook does not allow
 */
export function parseTemplate(source: string, hook: HookName): ParsedTemplate {
  const parts: Part[] = [];
  let rest = source;
  while (rest.length > 0) {
    const open = rest.indexOf('{{');
    if (open < 0) {
      parts.push({ literal: rest });
      break;
    }
    if (open > 0) parts.push({ literal: rest.slice(0, open) });
    const close = rest.indexOf('}}', open);
    if (close < 0) throw new Error(`unterminated token in prefetch template "${source}"`);
    const token = rest.slice(open + 2, close).trim();
    parts.push(parseToken(token, hook));
    rest = rest.slice(close + 2);
  }
  if (/^\/|^https?:/i.test(source))
    throw new Error(`prefetch template "${source}" must be relative to fhirServer`);
  return { source, parts, resultType: resultTypeOf(source) };
}

function parseToken(token: string, hook: HookName): Part {
  if (token.startsWith('context.')) {
    const field = token.slice('context.'.length);
    if (!PREFETCH_TOKEN_FIELDS[hook].includes(field)) {
      throw new Error(`token {{${token}}} is not a prefetch token of the ${hook} hook`);
    }
    return { contextField: field };
  }
  if (Object.hasOwn(USER_TOKENS, token)) return { userToken: token as UserToken };
  throw new Error(`unknown prefetch token {{${token}}}`);
}

function resultTypeOf(source: string): string {
  const path = source.split('?')[0]!;
  const segments = path.split('/').filter(Boolean);
  return !source.includes('?') && segments.length === 2 ? segments[0]! : 'Bundle';
}

export type Rendered = { ok: true; query: string } | { ok: false; reason: string };

/**
 * Fills a parsed template from the request context. Values are URL-encoded so a context value cannot
 * add query parameters of its own.
 */
export function renderTemplate(
  template: ParsedTemplate,
  context: Readonly<Record<string, unknown>>,
): Rendered {
  let query = '';
  for (const part of template.parts) {
    if ('literal' in part) {
      query += part.literal;
      continue;
    }
    const value =
      'contextField' in part ? context[part.contextField] : userTokenValue(part.userToken, context.userId);
    const name = 'contextField' in part ? `context.${part.contextField}` : part.userToken;
    if (typeof value !== 'string' || value === '') {
      return { ok: false, reason: `the request gives no value for {{${name}}}` };
    }
    // `.` and `..` are valid FHIR id characters but would walk the URL path out of the template.
    if (value === '.' || value === '..') {
      return { ok: false, reason: `the request gives an invalid value for {{${name}}}` };
    }
    query += encodeURIComponent(value);
  }
  return { ok: true, query };
}

function userTokenValue(token: UserToken, userId: unknown): string | undefined {
  if (typeof userId !== 'string') return undefined;
  const [type, id, extra] = userId.split('/');
  return type === USER_TOKENS[token] && id && extra === undefined ? id : undefined;
}
