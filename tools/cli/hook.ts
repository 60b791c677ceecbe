/**
 * One hook call of the CLI: the patient's data, the hook context the service's hook needs, the prefetch
 * built from the discovery templates, the signed call, and feedback on the returned cards.
 */
import type { Bundle, Resource } from 'fhir/r4.js';
import type {
  Card,
  DiscoveryService,
  Feedback,
  HookRequest,
  HookResponse,
  PrefetchValue,
} from '../../src/cds-hooks.js';
import { patientOf, resourcesOf, toServerForm } from '../synthetic/bundle.js';
import { callJson, type ClientDeps, type Signer } from './client.js';
import { answerLocally, fillTemplate } from './prefetch.js';

/** A call that cannot be made with the options given; the message says what is missing. */
export class InputError extends Error {
  override name = 'InputError';
}

/** Where the patient comes from: resources of a bundle, or a FHIR server. */
export type PatientSource =
  | { kind: 'bundle'; patientId: string; resources: Resource[] }
  | { kind: 'server'; patientId: string; url: string; token: string | undefined };

export interface HookOptions {
  userId: string;
  encounterId: string | undefined;
  draftOrders: Bundle | undefined;
  /** For order-select: ids or `Type/id` references of the selected draft orders. */
  select: string[] | undefined;
  prefetch: boolean;
}

/** The patient of a bundle (transaction, collection…), with its references in `Type/id` form. */
export function bundleSource(bundle: Bundle): PatientSource {
  if (bundle.resourceType !== 'Bundle') throw new InputError('the file is not a FHIR Bundle');
  const server = bundle.type === 'searchset' ? bundle : toServerForm(bundle);
  let patientId: string | undefined;
  try {
    patientId = patientOf(server).id;
  } catch (error) {
    throw new InputError((error as Error).message);
  }
  if (!patientId) throw new InputError('the Patient of the bundle has no id');
  return { kind: 'bundle', patientId, resources: resourcesOf(server) };
}

/** The hook context, or an InputError naming what the hook needs and was not given. */
export function buildContext(hook: string, patientId: string, options: HookOptions): Record<string, unknown> {
  const context: Record<string, unknown> = { userId: options.userId, patientId };
  if (options.encounterId) context.encounterId = options.encounterId;
  if (hook === 'patient-view') return context;
  if (hook !== 'order-select' && hook !== 'order-sign') {
    throw new InputError(
      `the ${hook} hook is not supported by this CLI (patient-view, order-select, order-sign)`,
    );
  }
  if (!options.draftOrders) throw new InputError(`the ${hook} hook needs --draft-orders <bundle.json>`);
  context.draftOrders = options.draftOrders;
  if (hook === 'order-sign') return context;
  if (!options.select || options.select.length === 0) {
    throw new InputError('the order-select hook needs --select <id,id> (the selected draft orders)');
  }
  const orders = resourcesOf(options.draftOrders);
  context.selections = options.select.map((ref) => {
    const found = orders.find((r) => (ref.includes('/') ? `${r.resourceType}/${r.id}` : r.id) === ref);
    if (!found) throw new InputError(`--select: ${ref} is not a draft order of --draft-orders`);
    return `${found.resourceType}/${found.id}`;
  });
  return context;
}

/** Prefetch from the templates; keys that cannot be answered are left out, with a warning each. */
export async function buildPrefetch(
  service: DiscoveryService,
  context: Record<string, unknown>,
  source: PatientSource,
  deps: ClientDeps,
  warn: (text: string) => void,
): Promise<Record<string, PrefetchValue>> {
  const prefetch: Record<string, PrefetchValue> = {};
  for (const [key, template] of Object.entries(service.prefetch ?? {})) {
    const query = fillTemplate(template, context);
    if (query === undefined) {
      warn(`prefetch ${key}: a token of "${template}" has no value in the context; left out`);
      continue;
    }
    if (source.kind === 'bundle') {
      const answer = answerLocally(query, source.resources);
      if (answer.ok) prefetch[key] = answer.value as PrefetchValue;
      else warn(`prefetch ${key}: ${answer.reason}; left out`);
      continue;
    }
    const headers: Record<string, string> = source.token ? { authorization: `Bearer ${source.token}` } : {};
    const reply = await callJson(`${source.url}/${query}`, undefined, undefined, deps, headers);
    if (reply.status === 200) prefetch[key] = reply.body as PrefetchValue;
    else if (reply.status === 404 && !query.includes('?')) prefetch[key] = null;
    else warn(`prefetch ${key}: the FHIR server answered ${reply.status}; left out`);
  }
  return prefetch;
}

export interface CallResult {
  status: number;
  ms: number;
  cards: Card[];
  /** The body when the status is not 200. */
  error?: unknown;
}

/** Builds the request and calls the service. */
export async function callService(
  serviceUrl: string,
  service: DiscoveryService,
  source: PatientSource,
  options: HookOptions,
  signer: Signer | undefined,
  deps: ClientDeps,
  warn: (text: string) => void,
): Promise<CallResult> {
  const context = buildContext(service.hook, source.patientId, options);
  const request: HookRequest = { hook: service.hook, hookInstance: deps.uuid(), context };
  if (source.kind === 'server') {
    request.fhirServer = source.url;
    if (source.token) {
      request.fhirAuthorization = {
        access_token: source.token,
        token_type: 'Bearer',
        expires_in: 300,
        scope: 'patient/*.read',
        subject: 'cds-hook-cli',
        patient: source.patientId,
      };
    }
  }
  if (options.prefetch) request.prefetch = await buildPrefetch(service, context, source, deps, warn);
  const reply = await callJson(serviceUrl, request, signer, deps);
  if (reply.status !== 200) return { status: reply.status, ms: reply.ms, cards: [], error: reply.body };
  return { status: 200, ms: reply.ms, cards: (reply.body as HookResponse).cards ?? [] };
}

/** `accepted`, or `overridden` with an optional reason code the card must offer. */
export interface FeedbackChoice {
  outcome: 'accepted' | 'overridden';
  reasonCode: string | undefined;
}

/** One feedback item per card with a uuid; an InputError when a card does not offer the reason. */
export function feedbackItems(cards: readonly Card[], choice: FeedbackChoice, now: Date): Feedback[] {
  return cards.flatMap((card): Feedback[] => {
    if (!card.uuid) return [];
    const item: Feedback = { card: card.uuid, outcome: choice.outcome, outcomeTimestamp: now.toISOString() };
    if (choice.outcome === 'accepted') {
      // CDS Hooks 2.0: an accepted card names the suggestion taken; the recommended one, else the first.
      const suggestion =
        card.suggestions?.find((s) => s.isRecommended && s.uuid) ?? card.suggestions?.find((s) => s.uuid);
      if (!suggestion) throw new InputError(`the card "${card.summary}" has no suggestion to accept`);
      item.acceptedSuggestions = [{ id: suggestion.uuid! }];
    }
    if (choice.reasonCode !== undefined) {
      const reason = card.overrideReasons?.find((r) => r.code === choice.reasonCode);
      if (!reason) {
        const offered = (card.overrideReasons ?? []).map((r) => r.code).join(', ') || 'none';
        throw new InputError(
          `the card does not offer the override reason ${choice.reasonCode} (offered: ${offered})`,
        );
      }
      item.overrideReason = { reason: { system: reason.system, code: reason.code } };
    }
    return [item];
  });
}
