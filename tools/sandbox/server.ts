/**
 * The local FHIR R4 sandbox's HTTP server, on loopback (127.0.0.1) only: `GET [base]/metadata`, reads
 * (`GET [base]/<Type>/<id>`) and searches (`GET [base]/<Type>?...`, semantics in ./search.ts) over an
 * in-memory set of resources, with an optional bearer token. Built on `node:http` only; read-only.
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

interface Reply {
  status: number;
  body: Resource;
  headers?: Record<string, string>;
}

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

function route(
  base: string,
  byType: Map<string, Resource[]>,
  method: string,
  url: URL,
  pageSize: number | undefined,
  startedAt: string,
): Reply {
  const segments = url.pathname.split('/').map(decodeURIComponent);
  // segments: ['', 'fhir', Type, id?]
  if (method !== 'GET' || `/${segments[1]}` !== BASE_PATH || segments.length < 3 || segments.length > 4) {
    throw new FhirError(404, 'not-found', `No route for ${method} ${url.pathname}`);
  }
  const type = segments[2]!;
  if (type === 'metadata' && segments.length === 3) {
    return { status: 200, body: capabilityStatement([...byType.keys()], startedAt) };
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
      return route(
        base,
        byType,
        req.method ?? 'GET',
        new URL(req.url ?? '/', base),
        options.pageSize,
        startedAt,
      );
    } catch (error) {
      if (error instanceof FhirError)
        return { status: error.status, body: outcome(error.issue, error.message) };
      return { status: 500, body: outcome('exception', `sandbox: ${String(error)}`) };
    }
  };

  const send = (res: ServerResponse, { status, body, headers }: Reply): void => {
    if (res.destroyed) return;
    const text = JSON.stringify(body) + ' '.repeat(options.padBytes ?? 0);
    res.writeHead(status, {
      ...headers,
      'Content-Type': FHIR_CONTENT_TYPE,
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
