/**
 * Prefetch for the hook CLI: fills the discovery templates' tokens from the hook context, then answers
 * each query from an in-memory list of resources (a patient bundle) or from a FHIR server.
 *
 * The in-memory search understands the parameters the bundled services' templates use: `patient` /
 * `subject`, `code` (token `system|code`, `|code`, bare `code`, comma lists), `category`,
 * `clinical-status`, `status`, `_id`, `_sort=date|-date` and `_count`. A query using anything else
 * is reported as unsupported and left out of the prefetch, so the service fetches it itself (when given
 * a fhirServer) or answers with its own policy for a missing key.
 */
import type { Bundle, CodeableConcept, Reference, Resource } from 'fhir/r4.js';
import { USER_TOKENS } from '../../src/cds-hooks.js';
import { searchset } from '../synthetic/bundle.js';

/** Fills `{{context.x}}` and the user tokens; undefined when a token has no value in the context. */
export function fillTemplate(
  template: string,
  context: Readonly<Record<string, unknown>>,
): string | undefined {
  let missing = false;
  const filled = template.replace(/\{\{\s*([^}]+?)\s*\}\}/g, (_all, token: string) => {
    let value: unknown;
    if (token.startsWith('context.')) value = context[token.slice('context.'.length)];
    else if (Object.hasOwn(USER_TOKENS, token)) {
      const type = USER_TOKENS[token as keyof typeof USER_TOKENS];
      const userId = typeof context.userId === 'string' ? context.userId : '';
      value = userId.startsWith(`${type}/`) ? userId.slice(type.length + 1) : undefined;
    }
    if (typeof value !== 'string' || value === '') {
      missing = true;
      return '';
    }
    return encodeURIComponent(value);
  });
  return missing ? undefined : filled;
}

interface Searchable {
  id?: string;
  status?: string;
  subject?: Reference;
  patient?: Reference;
  code?: CodeableConcept;
  medicationCodeableConcept?: CodeableConcept;
  category?: CodeableConcept | CodeableConcept[];
  clinicalStatus?: CodeableConcept;
  effectiveDateTime?: string;
  authoredOn?: string;
  onsetDateTime?: string;
  recordedDate?: string;
  performedDateTime?: string;
  dateTime?: string;
}

type Predicate = (r: Searchable) => boolean;

function token(value: string, concepts: (r: Searchable) => (CodeableConcept | undefined)[]): Predicate {
  const bar = value.indexOf('|');
  const system = bar < 0 ? undefined : value.slice(0, bar);
  const code = bar < 0 ? value : value.slice(bar + 1);
  return (r) =>
    concepts(r).some((c) =>
      (c?.coding ?? []).some(
        (coding) =>
          (system === undefined || (coding.system ?? '') === system) && (code === '' || coding.code === code),
      ),
    );
}

function reference(value: string): Predicate {
  const ref = value.includes('/') ? value : `Patient/${value}`;
  return (r) => r.subject?.reference === ref || r.patient?.reference === ref;
}

const PARAMETERS: Record<string, (value: string) => Predicate> = {
  _id: (v) => (r) => r.id === v,
  patient: reference,
  subject: reference,
  code: (v) => token(v, (r) => [r.code, r.medicationCodeableConcept]),
  category: (v) => token(v, (r) => [r.category ?? []].flat()),
  'clinical-status': (v) => token(v, (r) => [r.clinicalStatus]),
  status: (v) => (r) => r.status === v,
};

const dateOf = (r: Searchable) =>
  r.effectiveDateTime ??
  r.authoredOn ??
  r.onsetDateTime ??
  r.recordedDate ??
  r.performedDateTime ??
  r.dateTime;

/** Result of answering one filled query from memory. */
export type LocalAnswer = { ok: true; value: Resource | null } | { ok: false; reason: string };

/**
 * Answers a read (`Type/id`: the resource, or null when absent) or a search (`Type?params`: a searchset)
 * against `resources` (server form: `Type/id` references).
 */
export function answerLocally(query: string, resources: readonly Resource[]): LocalAnswer {
  const [path = '', search] = query.split('?', 2);
  const segments = path.split('/').filter(Boolean);
  if (search === undefined && segments.length === 2) {
    const [type, id] = segments.map(decodeURIComponent);
    return { ok: true, value: resources.find((r) => r.resourceType === type && r.id === id) ?? null };
  }
  if (segments.length !== 1) return { ok: false, reason: `unsupported query path "${path}"` };
  const predicates: Predicate[] = [];
  let sort = 0;
  let count: number | undefined;
  for (const [name, value] of new URLSearchParams(search ?? '')) {
    if (name === '_sort' && (value === 'date' || value === '-date')) sort = value === 'date' ? 1 : -1;
    else if (name === '_count' && /^\d+$/.test(value)) count = Number(value);
    else if (Object.hasOwn(PARAMETERS, name) && value !== '') {
      const alternatives = value.split(',').map(PARAMETERS[name]!);
      predicates.push((r) => alternatives.some((matches) => matches(r)));
    } else return { ok: false, reason: `unsupported search parameter ${name}=${value}` };
  }
  const matches = resources.filter(
    (r) => r.resourceType === segments[0] && predicates.every((matches) => matches(r as Searchable)),
  );
  if (sort !== 0) {
    const key = (r: Resource) => Date.parse(dateOf(r as Searchable) ?? '');
    // Resources without a date go last in either direction.
    matches.sort((a, b) => {
      const ka = key(a);
      const kb = key(b);
      if (Number.isNaN(ka) || Number.isNaN(kb))
        return (Number.isNaN(ka) ? 1 : 0) - (Number.isNaN(kb) ? 1 : 0);
      return (ka - kb) * sort;
    });
  }
  const bundle: Bundle = searchset(matches.slice(0, count ?? matches.length));
  return { ok: true, value: bundle };
}
