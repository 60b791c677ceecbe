/**
 * The trusted issuers file (`CDS_TRUSTED_ISSUERS_FILE`): the CDS clients this service answers. A JSON or
 * YAML list; each entry names an issuer (`iss`), where its keys are (`jwks` inline, `jwksFile`, or
 * `jwksUrl`), the `jku` URLs it may point to, and optionally the tenant(s) it may speak for. The file is
 * checked at start-up: a bad entry stops the service with the entry and the problem named.
 */
import { readFileSync } from 'node:fs';
import { dirname, resolve } from 'node:path';
import type { JSONWebKeySet } from 'jose';
import { parse as parseYaml } from 'yaml';
import * as generated from '../generated/issuers.js';
import { compileEgress, type EgressPolicy } from '../prefetch/egress.js';
import { generatedValidator } from '../validators.js';
import { checkPublicJwks } from './jwks.js';

/** One trusted CDS client, as the verifier uses it. URLs are normalised (`new URL(x).href`). */
export interface TrustedIssuer {
  iss: string;
  /** Keys held in memory: the inline `jwks`, or the content of `jwksFile`. */
  jwks: JSONWebKeySet | null;
  jwksUrl: string | null;
  /** `jku` values the issuer's tokens may carry; its `jwksUrl`, if any, is always among them. */
  jkuAllowlist: string[];
  /** When set, the token's `tenant` claim must be one of these. */
  tenants: string[] | null;
  /**
   * Where this client's calls may send the service to fetch missing prefetch data (`fhirServers`,
   * `fhirAllowedNetworks`); none listed: no fallback fetch at all. Absent only in hand-built test values.
   */
  egress?: EgressPolicy;
}

const URL_SCHEMA = { type: 'string', format: 'uri', minLength: 1 } as const;

export const TRUSTED_ISSUERS_SCHEMA = {
  type: 'array',
  items: {
    type: 'object',
    additionalProperties: false,
    required: ['iss'],
    properties: {
      iss: { type: 'string', minLength: 1, description: 'The `iss` claim of the client tokens' },
      jwks: { type: 'object', description: 'The JWK Set, inline' },
      jwksFile: { type: 'string', minLength: 1, description: 'A JWK Set file, relative to this file' },
      jwksUrl: { ...URL_SCHEMA, description: 'Where the issuer publishes its JWK Set' },
      jkuAllowlist: { type: 'array', items: URL_SCHEMA, description: 'Accepted `jku` header values' },
      fhirServers: {
        type: 'array',
        items: { type: 'string', minLength: 1 },
        description:
          'FHIR base URLs (https://fhir.example.org/r4) or hosts (fhir.example.org[:port]) this client may name as fhirServer',
      },
      fhirAllowedNetworks: {
        type: 'array',
        items: { type: 'string', minLength: 1 },
        description:
          'CIDR networks (10.1.0.0/16, 127.0.0.0/8) its FHIR servers may be in beyond the public internet',
      },
      tenant: {
        anyOf: [
          { type: 'string', minLength: 1 },
          { type: 'array', minItems: 1, items: { type: 'string', minLength: 1 } },
        ],
        description: 'Required value(s) of the `tenant` claim',
      },
    },
  },
} as const;

interface RawIssuer {
  iss: string;
  jwks?: object;
  jwksFile?: string;
  jwksUrl?: string;
  jkuAllowlist?: string[];
  fhirServers?: string[];
  fhirAllowedNetworks?: string[];
  tenant?: string | string[];
}

// TRUSTED_ISSUERS_SCHEMA, compiled by `npm run schemas`.
const validate = generatedValidator<RawIssuer[]>(generated.trustedIssuers);

const LOOPBACK = new Set(['localhost', '127.0.0.1', '[::1]']);

/** https, or plain http on loopback only (local tests and sandboxes): keys must not travel in clear. */
function checkKeyUrl(value: string, field: string): string {
  const url = new URL(value);
  if (url.protocol === 'https:' || (url.protocol === 'http:' && LOOPBACK.has(url.hostname))) return url.href;
  throw new Error(`${field} must be an https URL (plain http only on loopback): ${value}`);
}

function readJwksFile(path: string): unknown {
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (error) {
    throw new Error(`cannot read jwksFile ${path}: ${(error as Error).message}`);
  }
  try {
    return JSON.parse(text);
  } catch {
    throw new Error(`jwksFile ${path} is not JSON`);
  }
}

function toIssuer(raw: RawIssuer, baseDir: string): TrustedIssuer {
  const sources = (['jwks', 'jwksFile', 'jwksUrl'] as const).filter((key) => raw[key] !== undefined);
  if (sources.length > 1)
    throw new Error(`give one of jwks, jwksFile, jwksUrl, not ${sources.join(' and ')}`);
  if (sources.length === 0 && !raw.jkuAllowlist?.length) {
    throw new Error('no keys: give jwks, jwksFile or jwksUrl, or a jkuAllowlist');
  }
  const jwks = raw.jwksFile ? readJwksFile(resolve(baseDir, raw.jwksFile)) : (raw.jwks ?? null);
  if (jwks !== null) {
    const problem = checkPublicJwks(jwks);
    if (problem) throw new Error(`${raw.jwksFile ? 'jwksFile' : 'jwks'}: ${problem}`);
  }
  const jwksUrl = raw.jwksUrl ? checkKeyUrl(raw.jwksUrl, 'jwksUrl') : null;
  const jku = (raw.jkuAllowlist ?? []).map((url, i) => checkKeyUrl(url, `jkuAllowlist[${i}]`));
  return {
    iss: raw.iss,
    jwks: jwks as JSONWebKeySet | null,
    jwksUrl,
    jkuAllowlist: [...new Set(jwksUrl ? [jwksUrl, ...jku] : jku)],
    tenants: raw.tenant === undefined ? null : [raw.tenant].flat(),
    egress: compileEgress(raw.iss, raw.fhirServers, raw.fhirAllowedNetworks),
  };
}

/**
 * Checks and normalises a parsed trusted issuers list.
 * @param value the parsed file
 * @param source the file name, for messages
 * @param baseDir the folder `jwksFile` paths are relative to
 * @throws Error naming the entry (index and iss) and the problem
 */
export function parseTrustedIssuers(value: unknown, source: string, baseDir: string): TrustedIssuer[] {
  const fail = (where: string, problem: string): never => {
    throw new Error(`Invalid trusted issuers file ${source}: ${where}${problem}`);
  };
  if (!validate(value)) {
    const error = validate.errors![0]!;
    const [, index, ...rest] = error.instancePath.split('/');
    if (index === undefined) fail('', `the file must hold a list of issuers (${error.message})`);
    const iss = (value as { iss?: unknown }[])[Number(index)]?.iss;
    const name = typeof iss === 'string' ? ` (iss "${iss}")` : '';
    const field = rest.length ? `${rest.join('/')} ` : '';
    const extra = (error.params as { additionalProperty?: string }).additionalProperty;
    fail(`entry ${index}${name}: `, `${field}${error.message}${extra ? ` ("${extra}")` : ''}`);
  }
  const issuers = value as RawIssuer[];
  if (issuers.length === 0) fail('', 'the list of issuers is empty');
  const seen = new Set<string>();
  return issuers.map((raw, index) => {
    const where = `entry ${index} (iss "${raw.iss}"): `;
    if (seen.has(raw.iss)) fail(where, 'this iss is listed twice');
    seen.add(raw.iss);
    try {
      return toIssuer(raw, baseDir);
    } catch (error) {
      return fail(where, (error as Error).message);
    }
  });
}

/**
 * Reads the trusted issuers file (JSON or YAML).
 * @throws Error naming the file, and the entry and problem when an entry is invalid
 */
export function loadTrustedIssuers(path: string): TrustedIssuer[] {
  let parsed: unknown;
  try {
    parsed = parseYaml(readFileSync(path, 'utf8'));
  } catch (error) {
    throw new Error(`Cannot read trusted issuers file ${path}: ${(error as Error).message}`);
  }
  return parseTrustedIssuers(parsed, path, dirname(resolve(path)));
}
