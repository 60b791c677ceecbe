/**
 * FHIR R4 search semantics of the local sandbox: a small, strict subset of hl7.org/fhir/R4/search.html.
 *
 * Each resource type has a table of the search parameters it understands (the ones the bundled services'
 * prefetch templates use, plus a few obvious neighbours); anything else, modifiers included, is answered
 * with 400 so an integrator notices a query this sandbox does not understand instead of getting every
 * resource back. Supported: `_id`, reference (`patient`, `subject`), token (`system|code`, `|code`,
 * `system|`, `code`), exact code (`status`), dates with the prefixes eq, ne, lt, gt, le, ge, sa and eb,
 * comma lists (OR) and repeated parameters (AND), `_sort` on date parameters and `_id` (`-` for
 * descending, comma list of keys), `_count` and paging with `next` links (`_offset`).
 */
import type {
  Bundle,
  BundleEntry,
  BundleLink,
  CapabilityStatement,
  CapabilityStatementRestResource,
  CodeableConcept,
  OperationOutcome,
  OperationOutcomeIssue,
  Period,
  Reference,
  Resource,
} from 'fhir/r4.js';

export const FHIR_CONTENT_TYPE = 'application/fhir+json';

/** An answer of the FHIR API that is not 200: status, OperationOutcome issue code and diagnostics. */
export class FhirError extends Error {
  override name = 'FhirError';
  readonly status: number;
  readonly issue: OperationOutcomeIssue['code'];
  constructor(status: number, issue: OperationOutcomeIssue['code'], message: string) {
    super(message);
    this.status = status;
    this.issue = issue;
  }
}

export function outcome(issue: OperationOutcomeIssue['code'], diagnostics: string): OperationOutcome {
  return { resourceType: 'OperationOutcome', issue: [{ severity: 'error', code: issue, diagnostics }] };
}

/** A loose view of a resource: the matchers read fields by name whatever the type. */
type Loose = Record<string, unknown>;
type Predicate = (resource: Loose) => boolean;

type ParamType = 'token' | 'reference' | 'date';

interface SearchParam {
  type: ParamType;
  /** Top-level fields the parameter reads (CodeableConcept, Reference, dateTime or Period, or code). */
  fields: string[];
  documentation: string;
  /** A plain `code` field compared exactly (status, intent, id) rather than a coded token. */
  exact?: true;
}

// ---------------------------------------------------------------------------------------------------------
// Parameter tables

const PATIENT_REF: SearchParam = {
  type: 'reference',
  fields: ['subject', 'patient'],
  documentation: 'Patient/<id> or <id>',
};
const SUBJECT_REF: SearchParam = { ...PATIENT_REF, fields: ['subject'] };

function token(fields: string[], documentation = 'system|code, |code, system| or code'): SearchParam {
  return { type: 'token', fields, documentation };
}
function date(fields: string[]): SearchParam {
  return { type: 'date', fields, documentation: `${fields.join(' | ')}; prefixes eq ne lt gt le ge sa eb` };
}
const STATUS: SearchParam = { ...token(['status'], 'exact code'), exact: true };

/** Search parameters per resource type (R4 names). Types not listed support `_id` and `patient`. */
const PARAMETERS: Record<string, Record<string, SearchParam>> = {
  Patient: {},
  Observation: {
    patient: PATIENT_REF,
    subject: SUBJECT_REF,
    code: token(['code']),
    category: token(['category']),
    status: STATUS,
    date: date(['effectiveDateTime', 'effectivePeriod', 'effectiveInstant']),
  },
  Condition: {
    patient: PATIENT_REF,
    subject: SUBJECT_REF,
    code: token(['code']),
    category: token(['category']),
    'clinical-status': token(['clinicalStatus']),
    'verification-status': token(['verificationStatus']),
    'onset-date': date(['onsetDateTime', 'onsetPeriod']),
    'recorded-date': date(['recordedDate']),
  },
  MedicationRequest: {
    patient: PATIENT_REF,
    subject: SUBJECT_REF,
    code: token(['medicationCodeableConcept']),
    category: token(['category']),
    status: STATUS,
    intent: { ...token(['intent'], 'exact code'), exact: true },
    authoredon: date(['authoredOn']),
  },
  Procedure: {
    patient: PATIENT_REF,
    subject: SUBJECT_REF,
    code: token(['code']),
    category: token(['category']),
    status: STATUS,
    date: date(['performedDateTime', 'performedPeriod']),
  },
  Consent: {
    patient: PATIENT_REF,
    category: token(['category']),
    status: STATUS,
    date: date(['dateTime']),
  },
  Encounter: {
    patient: PATIENT_REF,
    subject: SUBJECT_REF,
    class: token(['class']),
    type: token(['type']),
    status: STATUS,
    date: date(['period']),
  },
  AllergyIntolerance: {
    patient: PATIENT_REF,
    code: token(['code']),
    'clinical-status': token(['clinicalStatus']),
    date: date(['recordedDate']),
  },
  Immunization: {
    patient: PATIENT_REF,
    'vaccine-code': token(['vaccineCode']),
    status: STATUS,
    date: date(['occurrenceDateTime']),
  },
  DiagnosticReport: {
    patient: PATIENT_REF,
    subject: SUBJECT_REF,
    code: token(['code']),
    category: token(['category']),
    status: STATUS,
    date: date(['effectiveDateTime', 'effectivePeriod']),
  },
};
const DEFAULT_PARAMETERS: Record<string, SearchParam> = { patient: PATIENT_REF };

/** The search parameters of `type`, `_id` excluded. */
export function parametersOf(type: string): Record<string, SearchParam> {
  return Object.hasOwn(PARAMETERS, type) ? PARAMETERS[type]! : DEFAULT_PARAMETERS;
}

/** Types with a dedicated parameter table (listed in the CapabilityStatement even without data). */
export const DESCRIBED_TYPES: readonly string[] = Object.keys(PARAMETERS);

// ---------------------------------------------------------------------------------------------------------
// Matchers: each compiles one alternative of a (comma-separated) value to a predicate and throws
// FhirError(400) when the value cannot be understood.

function matchReference(value: string, fields: string[]): Predicate {
  const ref = value.includes('/') ? value : `Patient/${value}`;
  return (r) => fields.some((f) => (r[f] as Reference | undefined)?.reference === ref);
}

function concepts(r: Loose, fields: string[]): CodeableConcept[] {
  return fields.flatMap((f) => {
    const v = r[f];
    if (v === undefined) return [];
    // Encounter.class is a Coding, the others CodeableConcept (or a list of them).
    return [v].flat().map((c) => ('coding' in (c as object) ? (c as CodeableConcept) : { coding: [c] }));
  }) as CodeableConcept[];
}

/** Token `system|code`, `|code` (no system), `system|` (any code of the system) or bare `code` (any system). */
function matchToken(value: string, fields: string[]): Predicate {
  const bar = value.indexOf('|');
  const system = bar < 0 ? undefined : value.slice(0, bar);
  const code = bar < 0 ? value : value.slice(bar + 1);
  if (bar >= 0 && system === '' && code === '') throw new FhirError(400, 'invalid', `Invalid token '|'`);
  return (r) =>
    concepts(r, fields).some((concept) =>
      (concept.coding ?? []).some(
        (coding) =>
          (system === undefined || (coding.system ?? '') === system) && (code === '' || coding.code === code),
      ),
    );
}

function matchCode(value: string, fields: string[]): Predicate {
  return (r) => fields.some((f) => r[f] === value);
}

const DATE_RE =
  /^(\d{4})(?:-(\d{2})(?:-(\d{2})(?:T(\d{2}):(\d{2})(?::(\d{2})(\.\d+)?)?(Z|[+-]\d{2}:\d{2})?)?)?)?$/;

/**
 * The instants a FHIR date/dateTime covers, as [start, end) in epoch ms, per its precision: a year, a
 * month or a day (UTC), a minute, a second, or a millisecond (with a fraction). Undefined when invalid.
 */
export function dateRange(value: string): [number, number] | undefined {
  const m = DATE_RE.exec(value);
  if (!m) return undefined;
  const [, year, month = '01', day = '01', hour, minute, second, fraction, zone] = m;
  const dayStart = Date.UTC(+year!, +month - 1, +day);
  // Date.UTC rolls 2020-13-01 or 2021-02-30 over; refuse them instead.
  if (new Date(dayStart).toISOString().slice(0, 10) !== `${year}-${month}-${day}`) return undefined;
  if (hour !== undefined) {
    if (+hour! > 23 || +minute! > 59 || (second !== undefined && +second > 59)) return undefined;
    const t = Date.parse(zone === undefined ? `${value}Z` : value);
    if (Number.isNaN(t)) return undefined;
    const width = fraction !== undefined ? 1 : second !== undefined ? 1000 : 60_000;
    return [t, t + width];
  }
  if (value.length === 10) return [dayStart, dayStart + 86_400_000];
  if (value.length === 7) return [dayStart, Date.UTC(+year!, +month, 1)];
  return [dayStart, Date.UTC(+year! + 1, 0, 1)];
}

/** The range of a dateTime or a Period (an open end runs to infinity, an open start from it). */
function valueRange(value: unknown): [number, number] | undefined {
  if (typeof value === 'string') return dateRange(value);
  if (value === null || typeof value !== 'object') return undefined;
  const period = value as Period;
  const start = period.start === undefined ? -Infinity : dateRange(period.start)?.[0];
  const end = period.end === undefined ? Infinity : dateRange(period.end)?.[1];
  if (start === undefined || end === undefined || (period.start === undefined && period.end === undefined))
    return undefined;
  return [start, end];
}

function resourceRange(r: Loose, fields: string[]): [number, number] | undefined {
  for (const f of fields) {
    const range = valueRange(r[f]);
    if (range) return range;
  }
  return undefined;
}

const PREFIXES = ['eq', 'ne', 'lt', 'gt', 'le', 'ge', 'sa', 'eb'] as const;
type Prefix = (typeof PREFIXES)[number];

/** Does a resource covering [rs, re) match the search range [vs, ve) under `prefix` (search.html#prefix)? */
export function compareRanges(
  prefix: Prefix,
  [rs, re]: [number, number],
  [vs, ve]: [number, number],
): boolean {
  const eq = rs >= vs && re <= ve;
  switch (prefix) {
    case 'eq':
      return eq;
    case 'ne':
      return !eq;
    case 'lt':
      return rs < vs;
    case 'gt':
      return re > ve;
    case 'le':
      return rs < vs || eq;
    case 'ge':
      return re > ve || eq;
    case 'sa':
      return rs >= ve;
    case 'eb':
      return re <= vs;
  }
}

function matchDate(value: string, fields: string[]): Predicate {
  // An unencoded `+` of a time zone offset arrives as a space (form decoding); put it back.
  const text = value.replace(' ', '+');
  const m = /^(eq|ne|lt|gt|le|ge|sa|eb|ap)?(.*)$/.exec(text)!;
  if (m[1] === 'ap') throw new FhirError(400, 'not-supported', `Unsupported date prefix 'ap'`);
  const prefix = (m[1] ?? 'eq') as Prefix;
  const search = dateRange(m[2]!);
  if (!search) throw new FhirError(400, 'invalid', `Invalid date parameter value '${value}'`);
  return (r) => {
    const target = resourceRange(r, fields);
    return target !== undefined && compareRanges(prefix, target, search);
  };
}

function compile(param: SearchParam, value: string): Predicate {
  if (param.type === 'reference') return matchReference(value, param.fields);
  if (param.type === 'date') return matchDate(value, param.fields);
  return param.exact ? matchCode(value, param.fields) : matchToken(value, param.fields);
}

const ID: SearchParam = { type: 'token', fields: ['id'], documentation: 'exact id', exact: true };

function nonNegativeInteger(name: string, value: string): number {
  if (!/^\d+$/.test(value) || !Number.isSafeInteger(Number(value))) {
    throw new FhirError(400, 'invalid', `Parameter '${name}' must be a non-negative integer`);
  }
  return Number(value);
}

// ---------------------------------------------------------------------------------------------------------
// Search

type SortKey = { key: (r: Loose) => number | string | undefined; direction: 1 | -1 };

function sortKeys(type: string, value: string): SortKey[] {
  const params = parametersOf(type);
  return value.split(',').map((item) => {
    const direction = item.startsWith('-') ? -1 : 1;
    const name = direction === -1 ? item.slice(1) : item;
    if (name === '_id') return { key: (r) => r.id as string | undefined, direction };
    const param = Object.hasOwn(params, name) ? params[name] : undefined;
    if (param?.type !== 'date') {
      throw new FhirError(
        400,
        'not-supported',
        `Unsupported _sort '${item}' for ${type} (date parameters and _id)`,
      );
    }
    return { key: (r) => resourceRange(r, param.fields)?.[0], direction };
  });
}

function compareBy(keys: SortKey[]): (a: Resource, b: Resource) => number {
  return (a, b) => {
    for (const { key, direction } of keys) {
      const ka = key(a as unknown as Loose);
      const kb = key(b as unknown as Loose);
      if (ka === kb) continue;
      // Resources without a value go last in either direction.
      if (ka === undefined) return 1;
      if (kb === undefined) return -1;
      return (ka < kb ? -1 : 1) * direction;
    }
    return 0;
  };
}

function queryString(query: URLSearchParams): string {
  const s = query.toString();
  return s === '' ? '' : `?${s}`;
}

/**
 * Runs a search of `type` over `candidates` (the resources of that type) and returns the searchset
 * page. `base` is the absolute base URL used in `fullUrl` and links; `pageSize` is the page size when
 * the query has no `_count` (undefined: every match on one page).
 *
 * @throws FhirError(400) on an unknown parameter, modifier or invalid value.
 */
export function search(
  base: string,
  type: string,
  candidates: readonly Resource[],
  query: URLSearchParams,
  pageSize?: number,
): Bundle {
  const params = parametersOf(type);
  const predicates: Predicate[] = [];
  let sort: SortKey[] = [];
  let count = pageSize;
  let offset = 0;
  for (const [name, value] of query) {
    if (value === '') throw new FhirError(400, 'invalid', `Parameter '${name}' has an empty value`);
    if (name === '_sort') {
      sort = sortKeys(type, value);
      continue;
    }
    if (name === '_count') {
      count = nonNegativeInteger(name, value);
      continue;
    }
    if (name === '_offset') {
      offset = nonNegativeInteger(name, value);
      continue;
    }
    const param: SearchParam | undefined =
      name === '_id' ? ID : Object.hasOwn(params, name) ? params[name] : undefined;
    if (!param) {
      throw new FhirError(400, 'not-supported', `Unsupported search parameter '${name}' for ${type}`);
    }
    const values = value.split(',');
    if (values.includes(''))
      throw new FhirError(400, 'invalid', `Parameter '${name}' has an empty alternative`);
    const alternatives = values.map((v) => compile(param, v));
    predicates.push((r) => alternatives.some((matches) => matches(r)));
  }

  const matches = candidates.filter((r) => predicates.every((matches) => matches(r as unknown as Loose)));
  if (sort.length > 0) matches.sort(compareBy(sort));

  const size = count ?? matches.length;
  const page = matches.slice(offset, offset + size);
  const link: BundleLink[] = [{ relation: 'self', url: `${base}/${type}${queryString(query)}` }];
  if (size > 0 && offset + size < matches.length) {
    const next = new URLSearchParams(query);
    next.set('_offset', String(offset + size));
    link.push({ relation: 'next', url: `${base}/${type}${queryString(next)}` });
  }
  return {
    resourceType: 'Bundle',
    type: 'searchset',
    total: matches.length,
    link,
    entry: page.map((resource): BundleEntry => ({
      fullUrl: `${base}/${resource.resourceType}/${resource.id}`,
      resource,
      search: { mode: 'match' },
    })),
  };
}

/** The sandbox's CapabilityStatement: read and search of `types`, each with its search parameters. */
export function capabilityStatement(types: readonly string[], date: string): CapabilityStatement {
  const all = [...new Set([...DESCRIBED_TYPES, ...types])].sort();
  return {
    resourceType: 'CapabilityStatement',
    status: 'active',
    date,
    kind: 'instance',
    software: { name: 'explainable-cds-hooks local FHIR sandbox' },
    implementation: { description: 'Read-only FHIR R4 sandbox on loopback, for trying CDS services locally' },
    fhirVersion: '4.0.1',
    format: [FHIR_CONTENT_TYPE],
    rest: [
      {
        mode: 'server',
        resource: all.map((type): CapabilityStatementRestResource => ({
          type: type as CapabilityStatementRestResource['type'],
          interaction: [{ code: 'read' }, { code: 'search-type' }],
          searchParam: [
            { name: '_id', type: 'token', documentation: 'exact id' },
            ...Object.entries(parametersOf(type)).map(([name, p]) => ({
              name,
              type: p.type,
              documentation: p.documentation,
            })),
          ],
        })),
        searchParam: [
          {
            name: '_sort',
            type: 'special',
            documentation: 'date parameters of the type and _id; - descends',
          },
          { name: '_count', type: 'number', documentation: 'page size; next links page on' },
        ],
      },
    ],
  };
}
