/**
 * The local FHIR R4 sandbox's HTTP server, on loopback (127.0.0.1) only: `GET [base]/metadata`, reads
 * (`GET [base]/<Type>/<id>`) and searches (`GET [base]/<Type>?...` and `POST [base]/<Type>/_search` with
 * a form-encoded body, semantics in ./search.ts) over an in-memory set of resources, with an optional
 * bearer token. Built on `node:http` only; read-only.
 *
 * Browser clients (the public CDS Hooks sandbox client fetches prefetch data from the page itself) need
 * CORS: with `corsOrigins`, a preflight (`OPTIONS` with `Origin` and `Access-Control-Request-Method`)
 * from a listed origin is answered 204 with the allowed methods and headers (no bearer token needed:
 * browsers never send one on a preflight), and every answer to a listed origin carries
 * `Access-Control-Allow-Origin`. An origin not listed gets no CORS header (its browser then refuses to
 * hand the answer to the page) and a 403 to its preflight.
 *
 * Tests also use its fault injection (delay, padding, fixed error status) and the request log.
 */
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import type { Resource } from 'fhir/r4.js';
import { capabilityStatement, FHIR_CONTENT_TYPE, FhirError, outcome, search } from './search.js';

export interface FhirServerOptions {
  /** Served resources; each needs `resourceType` and `id`. References use the `Type/id` form. */
  resources: Resource[];
  /** TCP port on 127.0.0.1; 0 (default) picks a free one. */
  port?: number;
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
  /**
   * Browser origins allowed by CORS (`scheme://host[:port]`, compared exactly), or `['*']` for any.
   * Absent or empty: no CORS header at all (non-browser clients do not need any).
   */
  corsOrigins?: readonly string[];
}

export interface RecordedRequest {
  method: string;
  /** Path and query string as sent, e.g. `/fhir/Observation?patient=p1`. */
  path: string;
  authorization: string | undefined;
  accept: string | undefined;
  /** The `Origin` header, when a browser sent one. */
  origin?: string;
  /** The body of a `POST` (a form-encoded `_search`), once read. */
  body?: string;
}

export interface StartedFhirServer {
  /** Base URL without trailing slash, e.g. `http://127.0.0.1:PORT/fhir`. */
  url: string;
  /** Every request received, in arrival order (also the rejected ones). */
  requests: RecordedRequest[];
  close(): Promise<void>;
}

interface Reply {
  status: number;
  /** Absent for a 204. */
  body?: Resource;
  headers?: Record<string, string>;
}

const BASE_PATH = '/fhir';

/** Largest `POST _search` body read; beyond, 413 (a search form is a few hundred bytes). */
export const MAX_SEARCH_BODY_BYTES = 64 * 1024;
const FORM_TYPE = 'application/x-www-form-urlencoded';
/** How long a browser may cache a preflight answer, in seconds. */
export const PREFLIGHT_MAX_AGE_S = 600;
const ALLOWED_METHODS = 'GET, POST, OPTIONS';
/** Request headers a browser client may send beyond the CORS-safelisted ones. */
const ALLOWED_HEADERS = ['accept', 'authorization', 'content-type', 'prefer', 'cache-control'];

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

/**
 * The search parameters of a `POST [base]/<Type>/_search`: those of the URL followed by those of the
 * form-encoded body (FHIR R4 search §3.1.1.1.1: both count, as if all were in the query string).
 */
function postedParameters(url: URL, contentType: string | undefined, body: string): URLSearchParams {
  const mediaType = (contentType ?? '').split(';')[0]!.trim().toLowerCase();
  if (mediaType !== FORM_TYPE) {
    throw new FhirError(
      415,
      'not-supported',
      `POST _search needs a ${FORM_TYPE} body (got ${mediaType === '' ? 'no Content-Type' : mediaType})`,
    );
  }
  const params = new URLSearchParams(url.searchParams);
  for (const [name, value] of new URLSearchParams(body)) params.append(name, value);
  return params;
}

function route(
  base: string,
  byType: Map<string, Resource[]>,
  req: IncomingMessage,
  body: string,
  url: URL,
  pageSize: number | undefined,
  startedAt: string,
): Reply {
  const method = req.method ?? 'GET';
  const segments = url.pathname.split('/').map(decodeURIComponent);
  // segments: ['', 'fhir', Type, id? | '_search']
  if (`/${segments[1]}` !== BASE_PATH || segments.length < 3 || segments.length > 4) {
    throw new FhirError(404, 'not-found', `No route for ${method} ${url.pathname}`);
  }
  const isSearchPost = segments.length === 4 && segments[3] === '_search';
  if (method !== 'GET' && !(method === 'POST' && isSearchPost)) {
    throw new FhirError(
      405,
      'not-supported',
      `${method} ${url.pathname} is not supported: the sandbox is read-only (GET, and POST <Type>/_search)`,
    );
  }
  const type = segments[2]!;
  if (type === 'metadata' && segments.length === 3) {
    return { status: 200, body: capabilityStatement([...byType.keys()], startedAt) };
  }
  if (!byType.has(type) && !KNOWN_TYPES.has(type)) {
    throw new FhirError(404, 'not-supported', `Unknown resource type '${type}'`);
  }
  const resources = byType.get(type) ?? [];
  if (method === 'POST') {
    const params = postedParameters(url, req.headers['content-type'], body);
    return { status: 200, body: search(base, type, resources, params, pageSize) };
  }
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
    if (!resource.id) throw new Error(`sandbox: a ${resource.resourceType} has no id`);
    const list = byType.get(resource.resourceType) ?? [];
    if (list.some((r) => r.id === resource.id)) {
      throw new Error(`sandbox: duplicate resource ${resource.resourceType}/${resource.id}`);
    }
    list.push(resource);
    byType.set(resource.resourceType, list);
  }

  const requests: RecordedRequest[] = [];
  const timers = new Set<NodeJS.Timeout>();
  let base = '';
  const startedAt = new Date().toISOString();

  const origins = new Set(options.corsOrigins ?? []);
  /** The `Access-Control-Allow-Origin` value for this request's origin, if it is allowed. */
  const allowOrigin = (origin: string | undefined): string | undefined => {
    if (origin === undefined) return undefined;
    if (origins.has('*')) return '*';
    return origins.has(origin) ? origin : undefined;
  };
  const corsHeaders = (req: IncomingMessage): Record<string, string> => {
    const allowed = allowOrigin(req.headers.origin);
    if (allowed === undefined) return origins.size > 0 && !origins.has('*') ? { Vary: 'Origin' } : {};
    return {
      'Access-Control-Allow-Origin': allowed,
      'Access-Control-Expose-Headers': 'WWW-Authenticate',
      ...(allowed === '*' ? {} : { Vary: 'Origin' }),
    };
  };

  /** `OPTIONS`: a CORS preflight (no token needed), or a plain question about the methods. */
  const preflight = (req: IncomingMessage): Reply => {
    const method = req.headers['access-control-request-method'];
    if (req.headers.origin === undefined || method === undefined) {
      return { status: 204, headers: { Allow: ALLOWED_METHODS } };
    }
    const allowed = allowOrigin(req.headers.origin);
    if (allowed === undefined) {
      return {
        status: 403,
        body: outcome('forbidden', `Origin ${req.headers.origin} is not allowed (sandbox --cors-origins)`),
      };
    }
    return {
      status: 204,
      headers: {
        'Access-Control-Allow-Origin': allowed,
        'Access-Control-Allow-Methods': ALLOWED_METHODS,
        'Access-Control-Allow-Headers': ALLOWED_HEADERS.join(', '),
        'Access-Control-Max-Age': String(PREFLIGHT_MAX_AGE_S),
        ...(allowed === '*' ? {} : { Vary: 'Origin' }),
        // Chromium's Private Network Access: a public page (https://sandbox.cds-hooks.org) reaching a
        // loopback server asks first; the sandbox exists to be reached that way.
        ...(req.headers['access-control-request-private-network'] === 'true'
          ? { 'Access-Control-Allow-Private-Network': 'true' }
          : {}),
      },
    };
  };

  const reply = (req: IncomingMessage, body: string): Reply => {
    if (options.failWith !== undefined) {
      return { status: options.failWith, body: outcome('exception', `Injected failure ${options.failWith}`) };
    }
    if (req.method === 'OPTIONS') return preflight(req);
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
      return route(base, byType, req, body, new URL(req.url ?? '/', base), options.pageSize, startedAt);
    } catch (error) {
      if (error instanceof FhirError)
        return { status: error.status, body: outcome(error.issue, error.message) };
      return { status: 500, body: outcome('exception', `sandbox: ${String(error)}`) };
    }
  };

  const send = (req: IncomingMessage, res: ServerResponse, { status, body, headers }: Reply): void => {
    if (res.destroyed) return;
    if (body === undefined) {
      res.writeHead(status, { ...corsHeaders(req), ...headers });
      res.end();
      return;
    }
    const text = JSON.stringify(body) + ' '.repeat(options.padBytes ?? 0);
    res.writeHead(status, {
      ...headers,
      ...corsHeaders(req),
      ...(status === 405 ? { Allow: ALLOWED_METHODS } : {}),
      'Content-Type': FHIR_CONTENT_TYPE,
      'Content-Length': Buffer.byteLength(text),
    });
    res.end(text);
  };

  const answer = (req: IncomingMessage, res: ServerResponse, result: Reply): void => {
    if (!options.delayMs) {
      send(req, res, result);
      return;
    }
    const timer = setTimeout(() => {
      timers.delete(timer);
      send(req, res, result);
    }, options.delayMs);
    timers.add(timer);
  };

  const server = createServer((req, res) => {
    const record: RecordedRequest = {
      method: req.method ?? '',
      path: req.url ?? '',
      authorization: req.headers.authorization,
      accept: req.headers.accept,
      ...(req.headers.origin === undefined ? {} : { origin: req.headers.origin }),
    };
    requests.push(record);
    if (req.method !== 'POST') {
      req.resume();
      answer(req, res, reply(req, ''));
      return;
    }
    const chunks: Buffer[] = [];
    let size = 0;
    let tooLarge = false;
    req.on('data', (chunk: Buffer) => {
      size += chunk.length;
      if (size > MAX_SEARCH_BODY_BYTES) tooLarge = true;
      else chunks.push(chunk);
    });
    req.on('end', () => {
      if (tooLarge) {
        answer(req, res, {
          status: 413,
          body: outcome('too-costly', `A _search body is limited to ${MAX_SEARCH_BODY_BYTES} bytes`),
        });
        return;
      }
      record.body = Buffer.concat(chunks).toString('utf8');
      answer(req, res, reply(req, record.body));
    });
    req.on('error', () => res.destroy());
  });

  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(options.port ?? 0, '127.0.0.1', () => resolve());
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
