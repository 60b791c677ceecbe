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
import type { ChainRow } from './hash-chain.js';
import { openPostgresDriver } from './postgres.js';
import { createSqlStore } from './sql-store.js';
import { openWorkerStore, type SqliteWorker } from './worker-store.js';

export type AuditEventKind = 'service-call' | 'feedback' | 'objection';

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
}

export interface ServiceCallPayload {
  hook: string;
  hookInstance: string;
  caller: Caller;
  /** The rule set: the definition's id, version and the SHA-256 of its YAML source. */
  service: { id: string; version: string; sha256: string };
  models: ModelRef[];
  /** SHA-256 of the canonical JSON of the prefetch data used, and the `Type/id` of each resource in it. */
  inputs: { sha256: string; references: string[] };
  cards: AuditedCard[];
  latencyMs: number;
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
  | (EventBase & { kind: 'objection'; payload: ObjectionPayload });

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
  /** Up to `limit` chain rows after `afterSeq`, in order. */
  readChain(afterSeq: number, limit: number): Promise<ChainRow[]>;
  /** Where the store says the chain ends; null when that record is missing. */
  chainHead(): Promise<{ seq: number; hash: string } | null>;
  /**
   * Remembers a client JWT's `jti` until `expiresAt` (the token's `exp`), for replay protection shared by
   * every instance on the same database. Expired entries are purged as new ones arrive.
   * @returns true the first time an (issuer, jti) pair is seen, false for a replay
   */
  rememberJti(issuer: string, jti: string, expiresAt: Date, now: Date): Promise<boolean>;
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
