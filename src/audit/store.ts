/**
 * The audit store: one interface, two implementations over the same SQL (`sql-store.ts`): SQLite in the
 * data folder (the default, nothing to install) and PostgreSQL when `DATABASE_URL` is set (several
 * instances behind a load balancer share it). Every audit event (service call, feedback, objection) is
 * one row of one hash chain (`hash-chain.ts`); lookups and analytics read small index tables written in
 * the same transaction as the event.
 *
 * Where it runs: the SQLite store runs in a worker thread (`worker-store.ts`), because better-sqlite3 is
 * synchronous and its statements, the disk sync of each commit and the chain's hashing would otherwise
 * hold up the main thread's requests; the main thread keeps a proxy with this same interface, and an
 * append still resolves only once committed. The PostgreSQL driver is asynchronous already: its store
 * runs on the main thread, as does the in-thread SQLite store (`createSqlStore` over `openSqliteDriver`)
 * the worker itself runs.
 *
 * What an event holds is what is needed to re-run and explain a recommendation, and nothing more: no
 * FHIR resource bodies, no patient id in clear (a keyed hash), no token.
 */
import { join } from 'node:path';
import type { Coding } from '../cds-hooks.js';
import type { Config } from '../config.js';
import type { LinkedPrediction } from '../governance/types.js';
import type { ChainRow } from './hash-chain.js';
import { openPostgresDriver } from './postgres.js';
import { createSqlStore } from './sql-store.js';
import { openWorkerStore, type SqliteWorker } from './worker-store.js';

export type AuditEventKind = 'service-call' | 'feedback' | 'objection' | 'retention';

/** Who called, from the client's JWT (`iss`, `tenant`); null when authentication is disabled. */
export interface Caller {
  issuer: string | null;
  tenant: string | null;
}

/** A model that took part in a recommendation. */
export interface ModelRef {
  id: string;
  version: string;
  sha256: string;
}

/** A card as the audit keeps it: enough to explain it and to link feedback to it. */
export interface AuditedCard {
  uuid: string;
  indicator: 'info' | 'warning' | 'critical';
  summary: string;
  /** uuids of the card's suggestions (for `acceptedSuggestions`). */
  suggestions: string[];
  /** The calibrated risk (0–1) when a model scored it. */
  risk?: number;
  /** The factors that weighed most, as the card's explanation states them. */
  topFactors?: unknown[];
  /** What the card is about (`<card template>@<focus reference>`): override suppression matches on it. */
  finding?: string;
}

/** A card the alert fatigue controls kept from a call (`cards/suppression.ts`). */
export interface AuditedSuppression {
  finding: string;
  /** `override:<reason code>`, `no-estimate-hidden`, `not-evaluable-hidden`, `card-cap` or `silent`. */
  reason: string;
  overriddenCard?: string;
  until?: string;
}

/**
 * One model estimate of a call (issue 19), live or silent: what `npm run evaluate` links to outcomes.
 * Feature values and subgroups, never the record itself (no birth date, no patient id).
 */
export interface AuditedPrediction {
  model: { id: string; version: string };
  /** live: cards may be about it; silent: evaluated and recorded, no card shown. */
  mode: LinkedPrediction['mode'];
  /** The focus the estimate is about (`Observation/123`); absent for the patient as a whole. */
  focus?: string;
  /**
   * Keyed pseudonym of the focus's identity within the patient (`focusKeyOf`: for a lesion, its body
   * site): the outcome linkage matches it per lesion. Absent without a focus label or a patient.
   */
  focusKey?: string;
  risk: number;
  band: string;
  /** Risk at or above the model card's threshold (the card's warning). */
  positive: boolean;
  topFactors: { id: string; value: number; contribution: number }[];
  /** The values given to the model, by feature id. */
  inputs: Record<string, number>;
  /** The model card's subgroups the patient belongs to (manifest `subgroups`). */
  subgroups: Record<string, string>;
}

/** A stored estimate, as `npm run evaluate` reads it (`audit_prediction`). */
export interface StoredPrediction extends AuditedPrediction {
  eventSeq: number;
  serviceId: string;
  serviceVersion: string;
  pseudonym: string | null;
  /** When it was made (ISO 8601): for the outcome's horizon only, never reported. */
  at: string;
  /** ISO week (YYYY-Www). */
  week: string;
}

export interface ServiceCallPayload {
  hook: string;
  hookInstance: string;
  caller: Caller;
  /** The rule set: the definition's id, version and the SHA-256 of its YAML source. */
  service: { id: string; version: string; sha256: string };
  models: ModelRef[];
  /**
   * SHA-256 of the inputs, how it was computed (`audit/inputs.ts`: the bytes as received, or the
   * canonical JSON of the prefetch data, which records without `method` used), the fetched keys whose
   * bytes it covers, and the `Type/id` of each resource in the data.
   */
  inputs: {
    sha256: string;
    method?: 'sha256-raw' | 'sha256-canonical';
    fetched?: string[];
    references: string[];
  };
  cards: AuditedCard[];
  latencyMs: number;
  /** Keyed hash of the call's encounter (`Encounter/<id>`), when it named one and cards were issued. */
  encounter?: string;
  /** Cards not shown, and why (present only when some were suppressed). */
  suppressed?: AuditedSuppression[];
  /** Every model estimate, live and silent (present only when a model scored). */
  predictions?: AuditedPrediction[];
}

export interface FeedbackPayload {
  card: string;
  outcome: 'accepted' | 'overridden';
  acceptedSuggestions: string[];
  overrideReason?: { reason?: Coding; userComment?: string };
  /** As the client sent it. */
  outcomeTimestamp: string;
  caller: Caller;
}

export interface ObjectionPayload {
  hook: string;
  hookInstance: string;
  /** `Consent/<id>` of the objection found in the record. */
  consent: string;
  caller: Caller;
}

/** Records that old rows were archived and removed (`npm run audit:archive`): the chain says so itself. */
export interface RetentionPayload {
  /** Rows older than this instant were archived. */
  before: string;
  /** The segment removed: the rows after `base` through `through`. */
  base: { seq: number; hash: string };
  through: { seq: number; hash: string };
  rows: number;
  /** SHA-256 of the archive file the rows were exported to. */
  archiveSha256: string;
}

interface EventBase {
  /** When it happened (ISO 8601 UTC). */
  at: string;
  serviceId: string;
  /** HMAC-SHA256 of the patient id (`pseudonym.ts`), or null when the call named no patient. */
  pseudonym: string | null;
}

/**
 * The explanation page of a card, kept with the call's record (same transaction) so that every instance
 * sharing the store can serve its link; outside the hash chain, and deleted once expired.
 */
export interface ExplanationPageRow {
  uuid: string;
  /** When the link expires (unix seconds). */
  exp: number;
  /** The page's data (`StoredExplanation` as JSON): the explanation, no patient id. */
  content: string;
}

export type NewAuditEvent =
  | (EventBase & { kind: 'service-call'; payload: ServiceCallPayload; pages?: ExplanationPageRow[] })
  | (EventBase & { kind: 'feedback'; payload: FeedbackPayload })
  | (EventBase & { kind: 'objection'; payload: ObjectionPayload })
  | (EventBase & { kind: 'retention'; payload: RetentionPayload });

export type StoredEvent = NewAuditEvent & { seq: number };

/** A card the service issued, as feedback checks it. */
export interface IssuedCard {
  uuid: string;
  serviceId: string;
  pseudonym: string | null;
  suggestions: string[];
  issuedAt: string;
  /** The client the card was issued to (null: authentication disabled). */
  issuer: string | null;
  tenant: string | null;
}

/** Analytics of one client only: an issuer, and within it a tenant (absent: every one). */
export interface AnalyticsScope {
  issuer?: string;
  tenant?: string;
}

export interface AppendResult {
  /** Sequence number of each event, in order; null for a feedback already stored (idempotent retry). */
  seqs: (number | null)[];
}

/** Groups analytics figures: one service version with one set of models. */
export interface AnalyticsKey {
  serviceId: string;
  serviceVersion: string;
  /** `id@version` of each model, comma-separated; empty for a rules-only service. */
  models: string;
}

export interface AnalyticsRows {
  issued: (AnalyticsKey & { n: number })[];
  /** Cards counted once, by their latest feedback. */
  outcomes: (AnalyticsKey & { outcome: 'accepted' | 'overridden'; reasonCode: string | null; n: number })[];
  /** Risk values of the cards, by ISO week (its Monday) and tenth of the 0–1 range. */
  risk: (AnalyticsKey & { week: string; bin: number; n: number; sum: number })[];
  /** Cards the alert fatigue controls did not show, by reason. */
  suppressed: (AnalyticsKey & { reason: string; n: number })[];
}

/** A recorded feedback on a card about one of the findings asked for (override suppression). */
export interface FindingFeedback {
  /** Chain sequence of the feedback event (later feedback on the same card wins). */
  seq: number;
  findingKey: string;
  cardUuid: string;
  outcome: 'accepted' | 'overridden';
  reasonCode: string | null;
  /** When the feedback was recorded (ISO 8601, the service's clock). */
  at: string;
  encounter: string | null;
}

export interface AuditStore {
  readonly kind: 'sqlite' | 'postgres';
  /**
   * Appends events to the chain in one transaction, in order; resolves once it is committed (durable).
   * A feedback event whose card, outcome and outcome instant are already stored is skipped.
   */
  append(events: readonly NewAuditEvent[]): Promise<AppendResult>;
  /** The cards among `uuids` that this service issued. */
  findCards(serviceId: string, uuids: readonly string[]): Promise<Map<string, IssuedCard>>;
  /** Every event recorded under one pseudonym, in chain order. */
  eventsFor(pseudonym: string): Promise<StoredEvent[]>;
  /** The grouped counts, of every card or of the cards issued to one issuer (and tenant). */
  analytics(scope?: AnalyticsScope): Promise<AnalyticsRows>;
  /** Every feedback on the cards of these findings issued to this patient (pseudonym) by this service. */
  findingFeedback(
    pseudonym: string,
    serviceId: string,
    findings: readonly string[],
  ): Promise<FindingFeedback[]>;
  /** Up to `limit` chain rows after `afterSeq`, in order. */
  readChain(afterSeq: number, limit: number): Promise<ChainRow[]>;
  /** Where the store says the chain ends; null when that record is missing. */
  chainHead(): Promise<{ seq: number; hash: string } | null>;
  /**
   * Where the rows kept start: the last row archived and removed (its seq and hash), or 0 and the
   * genesis hash when nothing was.
   */
  chainBase(): Promise<{ seq: number; hash: string }>;
  /** The last seq of the rows older than `before` that can be archived (no newer row before them). */
  retentionBoundary(before: string): Promise<number>;
  /**
   * Removes the rows after `retention.base` through `retention.through` (already archived), their index
   * rows, records the archive and appends the retention event, in one transaction.
   * @throws Error when the chain no longer starts at `base` or the row at `through` has another hash
   */
  removeArchived(event: NewAuditEvent & { kind: 'retention' }): Promise<number>;
  /**
   * Remembers a client JWT's `jti` until `expiresAt` (the token's `exp`), for replay protection shared by
   * every instance on the same database. Expired entries are purged as new ones arrive.
   * @returns true the first time an (issuer, jti) pair is seen, false for a replay
   */
  rememberJti(issuer: string, jti: string, expiresAt: Date, now: Date): Promise<boolean>;
  /**
   * The model estimates made in `[from, to)` (ISO 8601 instants), in chain order, at most `limit` after
   * the estimate `after` (event seq and ordinal; start with `{ seq: 0, ordinal: -1 }`).
   */
  predictions(
    range: { from: string; to: string },
    after: { seq: number; ordinal: number },
    limit: number,
  ): Promise<(StoredPrediction & { ordinal: number })[]>;
  /** The content of a card's explanation page, unless absent or expired at `nowS` (unix seconds). */
  findExplanation(uuid: string, nowS: number): Promise<string | null>;
  /** Resolves when the store answers. */
  ping(): Promise<void>;
  close(): Promise<void>;
}

export interface OpenStoreOptions {
  /** PostgreSQL schema to use (tests isolate themselves in a fresh one); default: the server's search_path. */
  schema?: string;
  /** Skip the migrations (the verification command reads the store as it is). */
  migrate?: boolean;
  /**
   * The worker the SQLite store runs in, owned (and closed) by the caller; without one the store gets
   * a worker of its own, stopped when the store is closed. Unused with PostgreSQL.
   */
  worker?: SqliteWorker | undefined;
}

/** The SQLite file inside the data folder. */
export function sqliteFile(dataDir: string): string {
  return join(dataDir, 'audit.sqlite');
}

/**
 * Opens the store the configuration names and applies pending migrations (SQLite: in its worker thread).
 * @throws Error when the database cannot be reached or was migrated by a newer version
 */
export async function openStore(
  config: Pick<Config, 'dataDir' | 'databaseUrl'>,
  options: OpenStoreOptions = {},
): Promise<AuditStore> {
  const migrate = options.migrate ?? true;
  if (!config.databaseUrl) {
    return openWorkerStore(sqliteFile(config.dataDir), { migrate, worker: options.worker });
  }
  return createSqlStore(await openPostgresDriver(config.databaseUrl, options.schema), { migrate });
}
