/**
 * Command line of the hook CLI: parsed and checked before anything is read or sent. Pure.
 */
import { parseArgs } from 'node:util';
import { UsageError } from '../usage.js';
import type { FeedbackChoice } from './hook.js';

export const USAGE = `Usage: cds-hook --url <CDS base URL> --service <id> <patient> [options]

Fires the service's hook at a CDS Hooks service for one patient (or each patient of a folder) and prints
the cards. The context and the prefetch are built from the service's discovery entry.

Patient (one of):
  --bundle <file.json>       a FHIR Bundle (transaction, collection…) holding one Patient
  --bundles <folder>         every *.json bundle of a folder; prints a summary table at the end
  --fhir-server <URL> --patient <id> [--fhir-token <token>]
                             a FHIR server (also sent as fhirServer, so the service can fetch itself)
Service:
  --url <URL>                the service base (https://host) or its discovery URL (…/cds-services)
  --service <id>             the service id in the discovery document
Context:
  --user <Type/id>           context.userId (default Practitioner/cds-hook-cli)
  --encounter <id>           context.encounterId
  --draft-orders <file.json> a Bundle of draft orders (order-select, order-sign)
  --select <id,id>           the selected draft orders (order-select)
  --no-prefetch              send no prefetch (the service fetches from --fhir-server)
Authentication (without --key no Authorization header is sent):
  --key <key.pem|key.jwk.json>  private key (PKCS#8 PEM or private JWK)
  --alg <ES384|RS384|…>      signing algorithm (default ES384)
  --iss <URL>                the client's issuer
  --kid <kid>                key id (default: the JWK's kid)
Output:
  --json                     JSON instead of text
  --feedback accepted|overridden[:reasonCode]
                             sends feedback on every returned card
  -h, --help                 this help

Exit codes: 0 every call succeeded, 1 some call failed, 2 usage error.
`;

const OPTIONS = {
  url: { type: 'string' },
  service: { type: 'string' },
  bundle: { type: 'string' },
  bundles: { type: 'string' },
  'fhir-server': { type: 'string' },
  patient: { type: 'string' },
  'fhir-token': { type: 'string' },
  user: { type: 'string' },
  encounter: { type: 'string' },
  'draft-orders': { type: 'string' },
  select: { type: 'string' },
  'no-prefetch': { type: 'boolean' },
  key: { type: 'string' },
  alg: { type: 'string' },
  iss: { type: 'string' },
  kid: { type: 'string' },
  json: { type: 'boolean' },
  feedback: { type: 'string' },
  help: { type: 'boolean', short: 'h' },
} as const;

export interface CliArgs {
  discoveryUrl: string;
  serviceId: string;
  input:
    | { kind: 'bundle' | 'bundles'; path: string }
    | { kind: 'server'; url: string; patient: string; token?: string };
  userId: string;
  encounterId: string | undefined;
  draftOrders: string | undefined;
  select: string[] | undefined;
  prefetch: boolean;
  key: { path: string; alg: string; iss: string; kid: string | undefined } | undefined;
  json: boolean;
  feedback: FeedbackChoice | undefined;
}

export type ParsedCli = { kind: 'run'; args: CliArgs } | { kind: 'help' };

function httpUrl(name: string, text: string): URL {
  let url: URL;
  try {
    url = new URL(text);
  } catch {
    throw new UsageError(`${name} must be an http(s) URL (got "${text}")`);
  }
  if (url.protocol !== 'http:' && url.protocol !== 'https:') {
    throw new UsageError(`${name} must be an http(s) URL (got "${text}")`);
  }
  return url;
}

/** The discovery URL of `--url`: itself when it ends with /cds-services, else <url>/cds-services. */
export function discoveryUrlOf(text: string): string {
  const url = httpUrl('--url', text);
  const base = `${url.origin}${url.pathname.replace(/\/+$/, '')}`;
  return base.endsWith('/cds-services') ? base : `${base}/cds-services`;
}

function parseFeedback(text: string): FeedbackChoice {
  const [outcome, reasonCode, extra] = text.split(':');
  if ((outcome !== 'accepted' && outcome !== 'overridden') || extra !== undefined || reasonCode === '') {
    throw new UsageError(`--feedback must be accepted or overridden[:reasonCode] (got "${text}")`);
  }
  if (outcome === 'accepted' && reasonCode !== undefined)
    throw new UsageError('--feedback accepted takes no reason code');
  return { outcome, reasonCode };
}

/** @throws UsageError with a one-line message naming the bad option. */
export function parseCliArgs(argv: readonly string[]): ParsedCli {
  let parsed;
  try {
    parsed = parseArgs({ args: [...argv], options: OPTIONS, strict: true, allowPositionals: false });
  } catch (error) {
    throw new UsageError((error as Error).message.split('\n')[0]!);
  }
  const v = parsed.values;
  if (v.help) return { kind: 'help' };
  if (v.url === undefined) throw new UsageError('--url is required');
  const discoveryUrl = discoveryUrlOf(v.url);
  if (!v.service) throw new UsageError('--service is required');
  const sources = [v.bundle, v.bundles, v['fhir-server']].filter((s) => s !== undefined);
  if (sources.length !== 1) throw new UsageError('give exactly one of --bundle, --bundles, --fhir-server');
  let input: CliArgs['input'];
  if (v['fhir-server'] !== undefined) {
    const url = httpUrl('--fhir-server', v['fhir-server']);
    if (!v.patient) throw new UsageError('--fhir-server needs --patient <id>');
    input = {
      kind: 'server',
      url: `${url.origin}${url.pathname.replace(/\/+$/, '')}`,
      patient: v.patient,
      ...(v['fhir-token'] ? { token: v['fhir-token'] } : {}),
    };
  } else {
    if (v.patient !== undefined || v['fhir-token'] !== undefined) {
      throw new UsageError('--patient and --fhir-token go with --fhir-server');
    }
    input =
      v.bundle !== undefined ? { kind: 'bundle', path: v.bundle } : { kind: 'bundles', path: v.bundles! };
  }
  if (v.key === undefined && (v.iss !== undefined || v.alg !== undefined || v.kid !== undefined)) {
    throw new UsageError('--iss, --alg and --kid go with --key');
  }
  if (v.key !== undefined && !v.iss) throw new UsageError('--key needs --iss <issuer URL>');
  const alg = v.alg ?? 'ES384';
  if (!/^(ES(256|384|512)|RS(256|384|512)|PS(256|384|512)|EdDSA)$/.test(alg)) {
    throw new UsageError(`--alg must be an asymmetric JWS algorithm such as ES384 or RS384 (got "${alg}")`);
  }
  return {
    kind: 'run',
    args: {
      discoveryUrl,
      serviceId: v.service,
      input,
      userId: v.user ?? 'Practitioner/cds-hook-cli',
      encounterId: v.encounter,
      draftOrders: v['draft-orders'],
      select: v.select?.split(',').filter(Boolean),
      prefetch: v['no-prefetch'] !== true,
      key: v.key === undefined ? undefined : { path: v.key, alg, iss: v.iss!, kid: v.kid },
      json: v.json === true,
      feedback: v.feedback === undefined ? undefined : parseFeedback(v.feedback),
    },
  };
}

export { UsageError };
