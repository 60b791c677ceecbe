/**
 * The loopback FHIR server of the tests is the product's local FHIR sandbox (tools/sandbox/server.ts), so
 * the service's fallback-fetch tests run against the same server integrators use.
 */
export {
  type FhirServerOptions,
  type RecordedRequest,
  type StartedFhirServer,
  startFhirServer,
} from '../../tools/sandbox/server.js';
