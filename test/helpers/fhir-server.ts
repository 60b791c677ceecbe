/**
 * A small FHIR R4 server on loopback for tests: reads, a handful of search parameters, paging, bearer-token
 * enforcement and fault injection (delay, padding, fixed error status). Built on `node:http` only.
 *
 * It is deliberately not a FHIR search engine: each supported parameter has one small matcher, and anything
 * else is answered with 400 so a test notices a prefetch template this server does not understand.
 */
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import type {
  Bundle,
  BundleEntry,
  BundleLink,
  CapabilityStatement,
  CapabilityStatementRestResource,
  CodeableConcept,
  OperationOutcome,
  OperationOutcomeIssue,
  Reference,
  Resource,
} from 'fhir/r4.js';

export interface FhirServerOptions {
  /** Served resources; each needs `resourceType` and `id`. References use the `Type/id` form. */
  resources: Resource[];
  /** When set, every request must carry `Authorization: Bearer <token>` or gets 401. */
  token?: string;
  /** Delay before each response, in milliseconds. */
  delayMs?: number;
  /** Bytes of whitespace appended to every response body (after the JSON, so it still parses). */
  padBytes?: number;
  /** Answer every request with this HTTP status and an OperationOutcome. */
  failWith?: number;
  /** Default page size of searches; without it (and without `_count`) a search returns every match. */
  pageSize?: number;
}

export interface RecordedRequest {
  method: string;
  /** Path and query string as sent, e.g. `/fhir/Observation?patient=p1`. */
  path: string;
  authorization: string | undefined;
  accept: string | undefined;
}

export interface StartedFhirServer {
  /** Base URL without trailing slash, e.g. `http://127.0.0.1:PORT/fhir`. */
  url: string;
  /** Every request received, in arrival order (also the rejected ones). */
  requests: RecordedRequest[];
  close(): Promise<void>;
}

const CONTENT_TYPE = 'application/fhir+json';
const BASE_PATH = '/fhir';

/** FHIR R4 resource types (hl7.org/fhir/R4/resourcelist.html); searching one with no data gives an empty Bundle. */
const KNOWN_TYPES = new Set(
  `Account ActivityDefinition AdverseEvent AllergyIntolerance Appointment AppointmentResponse AuditEvent Basic
  Binary BiologicallyDerivedProduct BodyStructure Bundle CapabilityStatement CarePlan CareTeam CatalogEntry
  ChargeItem ChargeItemDefinition Claim ClaimResponse ClinicalImpression CodeSystem Communication
  CommunicationRequest CompartmentDefinition Composition ConceptMap Condition Consent Contract Coverage
  CoverageEligibilityRequest CoverageEligibilityResponse DetectedIssue Device DeviceDefinition DeviceMetric
  DeviceRequest DeviceUseStatement DiagnosticReport DocumentManifest DocumentReference EffectEvidenceSynthesis
  Encounter Endpoint EnrollmentRequest EnrollmentResponse EpisodeOfCare EventDefinition Evidence EvidenceVariable
  ExampleScenario ExplanationOfBenefit FamilyMemberHistory Flag Goal GraphDefinition Group GuidanceResponse
  HealthcareService ImagingStudy Immunization ImmunizationEvaluation ImmunizationRecommendation
  ImplementationGuide InsurancePlan Invoice Library Linkage List Location Measure MeasureReport Media Medication
  MedicationAdministration MedicationDispense MedicationKnowledge MedicationRequest MedicationStatement
  MedicinalProduct MedicinalProductAuthorization MedicinalProductContraindication MedicinalProductIndication
  MedicinalProductIngredient MedicinalProductInteraction MedicinalProductManufactured MedicinalProductPackaged
  MedicinalProductPharmaceutical MedicinalProductUndesirableEffect MessageDefinition MessageHeader
  MolecularSequence NamingSystem NutritionOrder Observation ObservationDefinition OperationDefinition
  OperationOutcome Organization OrganizationAffiliation Parameters Patient PaymentNotice PaymentReconciliation
  Person PlanDefinition Practitioner PractitionerRole Procedure Provenance Questionnaire QuestionnaireResponse
  RelatedPerson RequestGroup ResearchDefinition ResearchElementDefinition ResearchStudy ResearchSubject
  RiskAssessment RiskEvidenceSynthesis Schedule SearchParameter ServiceRequest Slot Specimen SpecimenDefinition
  StructureDefinition StructureMap Subscription Substance SubstanceNucleicAcid SubstancePolymer SubstanceProtein
  SubstanceReferenceInformation SubstanceSourceMaterial SubstanceSpecification SupplyDelivery SupplyRequest Task
  TerminologyCapabilities TestReport TestScript ValueSet VerificationResult VisionPrescription`.split(/\s+/),
);

/** The fields the matchers look at, whatever the resource type. */
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
  dateTime?: string;
}

type Predicate = (resource: Searchable) => boolean;

interface Reply {
  status: number;
  body: Resource;
  headers?: Record<string, string>;
}

class FhirError extends Error {
  readonly status: number;
  readonly issue: OperationOutcomeIssue['code'];
  constructor(status: number, issue: OperationOutcomeIssue['code'], message: string) {
    super(message);
    this.status = status;
    this.issue = issue;
  }
}

function outcome(issue: OperationOutcomeIssue['code'], diagnostics: string): OperationOutcome {
  return { resourceType: 'OperationOutcome', issue: [{ severity: 'error', code: issue, diagnostics }] };
}

// ---------------------------------------------------------------------------------------------------------
// Matchers: one per parameter kind. Each compiles one alternative of a (comma-separated) value to a predicate
// and throws FhirError(400) when the value cannot be understood.

function matchReference(value: string): Predicate {
  const ref = value.startsWith('Patient/') ? value : `Patient/${value}`;
  return (r) => r.subject?.reference === ref || r.patient?.reference === ref;
}

/** Token `system|code`, `|code` (no system), `system|` (any code of the system) or bare `code` (any system). */
function matchToken(value: string, concepts: (r: Searchable) => (CodeableConcept | undefined)[]): Predicate {
  const bar = value.indexOf('|');
  const system = bar < 0 ? undefined : value.slice(0, bar);
  const code = bar < 0 ? value : value.slice(bar + 1);
  return (r) =>
    concepts(r).some((concept) =>
      (concept?.coding ?? []).some(
        (coding) =>
          (system === undefined || (coding.system ?? '') === system) && (code === '' || coding.code === code),
      ),
    );
}

function matchString(value: string, field: (r: Searchable) => string | undefined): Predicate {
  return (r) => field(r) === value;
}

const DATE_RE = /^(\d{4})(?:-(\d{2})(?:-(\d{2})(T\d{2}:\d{2}(?::\d{2}(?:\.\d+)?)?(Z|[+-]\d{2}:\d{2})?)?)?)?$/;

/** The instants a FHIR date/dateTime covers, as [start, end) in epoch ms; a date without time covers its day (UTC). */
function dateRange(value: string): [number, number] | undefined {
  const m = DATE_RE.exec(value);
  if (!m) return undefined;
  const [, year, month = '01', day = '01', , zone] = m;
  const dayStart = Date.UTC(+year!, +month - 1, +day);
  // Date.UTC rolls 2020-13-01 or 2021-02-30 over; refuse them instead.
  if (new Date(dayStart).toISOString().slice(0, 10) !== `${year}-${month}-${day}`) return undefined;
  if (value.length > 10) {
    const t = Date.parse(zone === undefined ? `${value}Z` : value);
    return Number.isNaN(t) ? undefined : [t, t + 1];
  }
  if (value.length === 10) return [dayStart, dayStart + 86_400_000];
  if (value.length === 7) return [dayStart, Date.UTC(+year!, +month, 1)];
  return [dayStart, Date.UTC(+year! + 1, 0, 1)];
}

function resourceDate(r: Searchable): string | undefined {
  return r.effectiveDateTime ?? r.authoredOn ?? r.onsetDateTime ?? r.dateTime;
}

/** `date` with prefix eq (default), lt, gt, le or ge, per the R4 range semantics (search.html#prefix). */
function matchDate(value: string): Predicate {
  // An unencoded `+` of a time zone offset arrives as a space (form decoding); put it back.
  const m = /^(eq|lt|gt|le|ge)?(.*)$/.exec(value.replace(' ', '+'))!;
  const prefix = m[1] ?? 'eq';
  const search = dateRange(m[2]!);
  if (!search) throw new FhirError(400, 'invalid', `Invalid date parameter value '${value}'`);
  const [vs, ve] = search;
  return (r) => {
    const target = dateRange(resourceDate(r) ?? '');
    if (!target) return false;
    const [rs, re] = target;
    switch (prefix) {
      case 'lt':
        return rs < vs;
      case 'gt':
        return re > ve;
      case 'le':
        return rs < vs || re <= ve;
      case 'ge':
        return re > ve || rs >= vs;
      default:
        return rs >= vs && re <= ve;
    }
  };
}

const SEARCH_PARAMETERS: Record<string, (value: string) => Predicate> = {
  _id: (v) => matchString(v, (r) => r.id),
  patient: matchReference,
  subject: matchReference,
  code: (v) => matchToken(v, (r) => [r.code, r.medicationCodeableConcept]),
  category: (v) => matchToken(v, (r) => [r.category ?? []].flat()),
  'clinical-status': (v) => matchToken(v, (r) => [r.clinicalStatus]),
  status: (v) => matchString(v, (r) => r.status),
  date: matchDate,
};

function nonNegativeInteger(name: string, value: string): number {
  if (!/^\d+$/.test(value)) {
    throw new FhirError(400, 'invalid', `Parameter '${name}' must be a non-negative integer`);
  }
  return Number(value);
}

// ---------------------------------------------------------------------------------------------------------
// Interactions

function search(
  base: string,
  type: string,
  candidates: Resource[],
  query: URLSearchParams,
  pageSize: number | undefined,
): Bundle {
  const predicates: Predicate[] = [];
  let sort: 'date' | '-date' | undefined;
  let count = pageSize;
  let offset = 0;
  for (const [name, value] of query) {
    if (value === '') throw new FhirError(400, 'invalid', `Parameter '${name}' has an empty value`);
    if (name === '_sort') {
      if (value !== 'date' && value !== '-date') {
        throw new FhirError(400, 'not-supported', `Unsupported _sort '${value}' (only date and -date)`);
      }
      sort = value;
    } else if (name === '_count') {
      count = nonNegativeInteger(name, value);
    } else if (name === '_offset') {
      offset = nonNegativeInteger(name, value);
    } else {
      const compile = Object.hasOwn(SEARCH_PARAMETERS, name) ? SEARCH_PARAMETERS[name] : undefined;
      if (!compile) throw new FhirError(400, 'not-supported', `Unsupported search parameter '${name}'`);
      const values = value.split(',');
      if (values.includes('')) {
        throw new FhirError(400, 'invalid', `Parameter '${name}' has an empty alternative`);
      }
      const alternatives = values.map(compile);
      predicates.push((r) => alternatives.some((matches) => matches(r)));
    }
  }

  const matches = candidates.filter((r) => predicates.every((matches) => matches(r as Searchable)));
  if (sort) {
    const direction = sort === 'date' ? 1 : -1;
    const key = (r: Resource) => dateRange(resourceDate(r as Searchable) ?? '')?.[0];
    matches.sort((a, b) => {
      const ka = key(a);
      const kb = key(b);
      // Resources without a date go last in either direction.
      if (ka === undefined || kb === undefined) {
        return (ka === undefined ? 1 : 0) - (kb === undefined ? 1 : 0);
      }
      return (ka - kb) * direction;
    });
  }

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

function queryString(query: URLSearchParams): string {
  const s = query.toString();
  return s === '' ? '' : `?${s}`;
}

function capabilityStatement(types: string[]): CapabilityStatement {
  return {
    resourceType: 'CapabilityStatement',
    status: 'active',
    date: new Date().toISOString(),
    kind: 'instance',
    fhirVersion: '4.0.1',
    format: [CONTENT_TYPE],
    rest: [
      {
        mode: 'server',
        resource: types.map((type) => ({
          type: type as CapabilityStatementRestResource['type'],
          interaction: [{ code: 'read' }, { code: 'search-type' }],
        })),
      },
    ],
  };
}

function route(
  base: string,
  byType: Map<string, Resource[]>,
  method: string,
  url: URL,
  pageSize: number | undefined,
): Reply {
  const segments = url.pathname.split('/').map(decodeURIComponent);
  // segments: ['', 'fhir', Type, id?]
  if (method !== 'GET' || `/${segments[1]}` !== BASE_PATH || segments.length < 3 || segments.length > 4) {
    throw new FhirError(404, 'not-found', `No route for ${method} ${url.pathname}`);
  }
  const type = segments[2]!;
  if (type === 'metadata' && segments.length === 3) {
    return { status: 200, body: capabilityStatement([...byType.keys()]) };
  }
  if (!byType.has(type) && !KNOWN_TYPES.has(type)) {
    throw new FhirError(404, 'not-supported', `Unknown resource type '${type}'`);
  }
  const resources = byType.get(type) ?? [];
  if (segments.length === 4) {
    const id = segments[3]!;
    const found = resources.find((r) => r.id === id);
    if (!found) throw new FhirError(404, 'not-found', `Resource ${type}/${id} is not known`);
    return { status: 200, body: found };
  }
  return { status: 200, body: search(base, type, resources, url.searchParams, pageSize) };
}

// ---------------------------------------------------------------------------------------------------------
// HTTP

export async function startFhirServer(options: FhirServerOptions): Promise<StartedFhirServer> {
  const byType = new Map<string, Resource[]>();
  for (const resource of options.resources) {
    if (!resource.id) throw new Error(`fhir-server: a ${resource.resourceType} has no id`);
    const list = byType.get(resource.resourceType) ?? [];
    if (list.some((r) => r.id === resource.id)) {
      throw new Error(`fhir-server: duplicate resource ${resource.resourceType}/${resource.id}`);
    }
    list.push(resource);
    byType.set(resource.resourceType, list);
  }

  const requests: RecordedRequest[] = [];
  const timers = new Set<NodeJS.Timeout>();
  let base = '';

  const reply = (req: IncomingMessage): Reply => {
    if (options.failWith !== undefined) {
      return { status: options.failWith, body: outcome('exception', `Injected failure ${options.failWith}`) };
    }
    if (options.token !== undefined) {
      const match = /^Bearer\s+(.+)$/i.exec(req.headers.authorization ?? '');
      if (match?.[1] !== options.token) {
        return {
          status: 401,
          body: outcome('login', 'A valid bearer token is required'),
          headers: { 'WWW-Authenticate': 'Bearer' },
        };
      }
    }
    try {
      return route(base, byType, req.method ?? 'GET', new URL(req.url ?? '/', base), options.pageSize);
    } catch (error) {
      if (error instanceof FhirError)
        return { status: error.status, body: outcome(error.issue, error.message) };
      return { status: 500, body: outcome('exception', `fhir-server: ${String(error)}`) };
    }
  };

  const send = (res: ServerResponse, { status, body, headers }: Reply): void => {
    if (res.destroyed) return;
    const text = JSON.stringify(body) + ' '.repeat(options.padBytes ?? 0);
    res.writeHead(status, {
      ...headers,
      'Content-Type': CONTENT_TYPE,
      'Content-Length': Buffer.byteLength(text),
    });
    res.end(text);
  };

  const server = createServer((req, res) => {
    requests.push({
      method: req.method ?? '',
      path: req.url ?? '',
      authorization: req.headers.authorization,
      accept: req.headers.accept,
    });
    const answer = reply(req);
    if (!options.delayMs) {
      send(res, answer);
      return;
    }
    const timer = setTimeout(() => {
      timers.delete(timer);
      send(res, answer);
    }, options.delayMs);
    timers.add(timer);
  });

  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => resolve());
  });
  const { port } = server.address() as AddressInfo;
  base = `http://127.0.0.1:${port}${BASE_PATH}`;

  return {
    url: base,
    requests,
    close: () =>
      new Promise<void>((resolve, reject) => {
        for (const timer of timers) clearTimeout(timer);
        timers.clear();
        server.close((error) => (error ? reject(error) : resolve()));
        server.closeAllConnections();
      }),
  };
}
