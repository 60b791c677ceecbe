/**
 * Versioned schema migrations, applied in order at start-up inside one transaction (PostgreSQL: under
 * an advisory lock, so that instances starting together migrate once). Each one is numbered and never
 * edited once released: a change is a new migration. `schema_migrations` records what was applied; a
 * database that holds a version this code does not know stops start-up (it was migrated by newer code).
 *
 * Dates are ISO 8601 text in both dialects, so that the hashed content of a row reads back exactly as
 * it was written.
 */

export interface Migration {
  version: number;
  name: string;
  /** One SQL statement per element. */
  sqlite: readonly string[];
  postgres: readonly string[];
}

const GENESIS_HEAD = `INSERT INTO audit_chain_head (id, seq, hash) VALUES (1, 0, '${'0'.repeat(64)}')`;

/** Tables every dialect writes the same way (types both accept). */
const INIT = [
  `CREATE TABLE audit_event (
    seq BIGINT PRIMARY KEY,
    kind TEXT NOT NULL,
    at TEXT NOT NULL,
    service_id TEXT NOT NULL,
    pseudonym TEXT,
    payload TEXT NOT NULL,
    prev_hash TEXT NOT NULL,
    hash TEXT NOT NULL
  )`,
  'CREATE INDEX audit_event_pseudonym ON audit_event (pseudonym)',
  // One row: where the chain ends. Appends lock it, which keeps the chain linear across instances, and
  // it reveals rows deleted from the end.
  `CREATE TABLE audit_chain_head (
    id INTEGER PRIMARY KEY CHECK (id = 1),
    seq BIGINT NOT NULL,
    hash TEXT NOT NULL
  )`,
  GENESIS_HEAD,
  // Index of the cards issued (feedback lookups, analytics); written with the event that holds them.
  `CREATE TABLE audit_card (
    card_uuid TEXT PRIMARY KEY,
    event_seq BIGINT NOT NULL,
    service_id TEXT NOT NULL,
    service_version TEXT NOT NULL,
    models TEXT NOT NULL,
    pseudonym TEXT,
    issued_at TEXT NOT NULL,
    issued_week TEXT NOT NULL,
    indicator TEXT NOT NULL,
    risk DOUBLE PRECISION,
    risk_bin INTEGER,
    suggestions TEXT NOT NULL
  )`,
  'CREATE INDEX audit_card_event ON audit_card (event_seq)',
  // Index of feedback; the unique key makes retries idempotent.
  `CREATE TABLE audit_feedback (
    event_seq BIGINT PRIMARY KEY,
    card_uuid TEXT NOT NULL,
    outcome TEXT NOT NULL,
    outcome_instant TEXT NOT NULL,
    reason_code TEXT,
    UNIQUE (card_uuid, outcome, outcome_instant)
  )`,
];

const JTI = [
  `CREATE TABLE jwt_replay (
    issuer TEXT NOT NULL,
    jti TEXT NOT NULL,
    expires_at TEXT NOT NULL,
    PRIMARY KEY (issuer, jti)
  )`,
  'CREATE INDEX jwt_replay_expiry ON jwt_replay (expires_at)',
];

export const APPEND_ONLY_TABLES = ['audit_event', 'audit_card', 'audit_feedback'] as const;

/** The append-only triggers of one table (migration 2), by dialect: retention drops and recreates them. */
export const appendOnlyTriggers = {
  sqlite: (table: string) =>
    ['UPDATE', 'DELETE'].map(
      (op) =>
        `CREATE TRIGGER ${table}_no_${op.toLowerCase()} BEFORE ${op} ON ${table}
           BEGIN SELECT RAISE(ABORT, '${table} is append-only'); END`,
    ),
  postgres: (table: string) => [
    `CREATE TRIGGER ${table}_append_only BEFORE UPDATE OR DELETE OR TRUNCATE ON ${table}
           FOR EACH STATEMENT EXECUTE FUNCTION audit_append_only()`,
  ],
  dropSqlite: (table: string) => ['update', 'delete'].map((op) => `DROP TRIGGER ${table}_no_${op}`),
  dropPostgres: (table: string) => [`DROP TRIGGER ${table}_append_only ON ${table}`],
};

const ARCHIVE = [
  // One row per archive: the segment removed ends at through_seq, whose hash the next row links to.
  `CREATE TABLE audit_archive (
    through_seq BIGINT PRIMARY KEY,
    through_hash TEXT NOT NULL,
    base_seq BIGINT NOT NULL,
    rows_removed BIGINT NOT NULL,
    before_at TEXT NOT NULL,
    archive_sha256 TEXT NOT NULL,
    retention_seq BIGINT NOT NULL
  )`,
];

/** Alert fatigue: the finding and encounter of each card (override suppression), suppressed cards. */
const SUPPRESSION = [
  'ALTER TABLE audit_card ADD COLUMN finding TEXT',
  'ALTER TABLE audit_card ADD COLUMN encounter TEXT',
  'CREATE INDEX audit_card_finding ON audit_card (pseudonym, service_id, finding)',
  `CREATE TABLE audit_suppressed (
    event_seq BIGINT NOT NULL,
    service_id TEXT NOT NULL,
    service_version TEXT NOT NULL,
    models TEXT NOT NULL,
    reason TEXT NOT NULL,
    n INTEGER NOT NULL,
    PRIMARY KEY (event_seq, reason)
  )`,
];

/**
 * Tenancy (issue 16 §8): the client a card was issued to, so that feedback is taken from that client only
 * and analytics can be read per issuer and tenant. Cards issued before are filled in from their service
 * call's payload (its `caller`), the append-only trigger lifted for that one statement.
 */
const CARD_CALLER_COLUMNS = [
  'ALTER TABLE audit_card ADD COLUMN issuer TEXT',
  'ALTER TABLE audit_card ADD COLUMN tenant TEXT',
];
const CARD_CALLER_INDEX = 'CREATE INDEX audit_card_caller ON audit_card (issuer, tenant)';
const CARD_CALLER_SQLITE = [
  ...CARD_CALLER_COLUMNS,
  'DROP TRIGGER audit_card_no_update',
  `UPDATE audit_card SET
     issuer = (SELECT json_extract(e.payload, '$.caller.issuer') FROM audit_event e WHERE e.seq = audit_card.event_seq),
     tenant = (SELECT json_extract(e.payload, '$.caller.tenant') FROM audit_event e WHERE e.seq = audit_card.event_seq)`,
  `CREATE TRIGGER audit_card_no_update BEFORE UPDATE ON audit_card
           BEGIN SELECT RAISE(ABORT, 'audit_card is append-only'); END`,
  CARD_CALLER_INDEX,
];
const CARD_CALLER_POSTGRES = [
  ...CARD_CALLER_COLUMNS,
  'ALTER TABLE audit_card DISABLE TRIGGER audit_card_append_only',
  `UPDATE audit_card c SET issuer = e.payload::jsonb #>> '{caller,issuer}', tenant = e.payload::jsonb #>> '{caller,tenant}'
     FROM audit_event e WHERE e.seq = c.event_seq`,
  'ALTER TABLE audit_card ENABLE TRIGGER audit_card_append_only',
  CARD_CALLER_INDEX,
];

/** Issue 16 §10: any instance sharing the store serves any explanation link. */
const EXPLANATION_PAGES = [
  `CREATE TABLE explanation_page (
    card_uuid TEXT PRIMARY KEY,
    expires_at BIGINT NOT NULL,
    content TEXT NOT NULL
  )`,
  'CREATE INDEX explanation_page_expiry ON explanation_page (expires_at)',
];

/**
 * Issue 19: every model estimate of a call, live and silent, for local validation (`npm run evaluate`
 * links them to outcomes recorded later). Written with the call's event, whose payload holds the same
 * estimates (`predictions`): the hash chain covers them. The patient is the event's pseudonym; the week
 * (YYYY-Www) is what leaves the linkage, the instant stays here to measure the outcome's horizon.
 */
const PREDICTIONS = [
  `CREATE TABLE audit_prediction (
    event_seq BIGINT NOT NULL,
    ordinal INTEGER NOT NULL,
    service_id TEXT NOT NULL,
    service_version TEXT NOT NULL,
    model_id TEXT NOT NULL,
    model_version TEXT NOT NULL,
    mode TEXT NOT NULL,
    pseudonym TEXT,
    focus TEXT,
    predicted_at TEXT NOT NULL,
    predicted_week TEXT NOT NULL,
    risk DOUBLE PRECISION NOT NULL,
    band TEXT,
    positive INTEGER NOT NULL,
    top_factors TEXT NOT NULL,
    inputs TEXT NOT NULL,
    subgroups TEXT NOT NULL,
    PRIMARY KEY (event_seq, ordinal)
  )`,
  'CREATE INDEX audit_prediction_at ON audit_prediction (predicted_at)',
];

/**
 * Issue 19, per-lesion outcomes: the keyed pseudonym of the focus an estimate is about (a lesion's body
 * site within the patient, `predictions.ts` focusKeyOf), so that linkage can match a histology to its
 * lesion rather than to every lesion of the patient. Null for rows written before, and without a focus.
 */
const PREDICTION_FOCUS_KEY = ['ALTER TABLE audit_prediction ADD COLUMN focus_key TEXT'];

/**
 * The feedback events of a patient: the earlier overrides of a call's findings (alert fatigue, every call
 * with cards) are found from them, rather than by walking every card the patient was issued on a finding
 * (hundreds for a patient seen often) to find the few with feedback. Partial: feedback events only.
 */
const FEEDBACK_BY_PATIENT = [
  "CREATE INDEX audit_event_feedback ON audit_event (pseudonym) WHERE kind = 'feedback'",
];

/** Index tables removed with their events by retention (each has `event_seq` and append-only triggers). */
export const RETAINED_INDEX_TABLES = [...APPEND_ONLY_TABLES, 'audit_suppressed', 'audit_prediction'] as const;

export const MIGRATIONS: readonly Migration[] = [
  { version: 1, name: 'audit chain, card and feedback index', sqlite: INIT, postgres: INIT },
  {
    version: 2,
    name: 'refuse updates and deletes of audit rows',
    // Defence in depth: the application never updates or deletes; these make a careless manual edit
    // fail too. Someone who drops them can still edit, and the chain verification then reports it.
    sqlite: APPEND_ONLY_TABLES.flatMap(appendOnlyTriggers.sqlite),
    postgres: [
      `CREATE FUNCTION audit_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
       BEGIN RAISE EXCEPTION '% is append-only', TG_TABLE_NAME; END $$`,
      ...APPEND_ONLY_TABLES.flatMap(appendOnlyTriggers.postgres),
    ],
  },
  {
    version: 3,
    name: 'JWT replay cache shared by instances',
    // Not audit data: rows expire and are purged. Keyed by issuer, since jti is unique per issuer only.
    sqlite: JTI,
    postgres: JTI,
  },
  {
    version: 4,
    name: 'alert fatigue: finding and encounter of each card, suppressed cards',
    sqlite: [
      ...SUPPRESSION,
      ...['UPDATE', 'DELETE'].map(
        (op) =>
          `CREATE TRIGGER audit_suppressed_no_${op.toLowerCase()} BEFORE ${op} ON audit_suppressed
           BEGIN SELECT RAISE(ABORT, 'audit_suppressed is append-only'); END`,
      ),
    ],
    postgres: [
      ...SUPPRESSION,
      `CREATE TRIGGER audit_suppressed_append_only BEFORE UPDATE OR DELETE OR TRUNCATE ON audit_suppressed
       FOR EACH STATEMENT EXECUTE FUNCTION audit_append_only()`,
    ],
  },
  {
    version: 5,
    name: 'audit retention: archived segments of the chain',
    sqlite: ARCHIVE,
    postgres: ARCHIVE,
  },
  {
    version: 6,
    name: 'the client each card was issued to (tenancy)',
    sqlite: CARD_CALLER_SQLITE,
    postgres: CARD_CALLER_POSTGRES,
  },
  {
    version: 7,
    name: 'explanation pages shared by instances',
    // Not audit data: each row lives as long as its link (expires_at, unix seconds), then is purged.
    sqlite: EXPLANATION_PAGES,
    postgres: EXPLANATION_PAGES,
  },
  {
    version: 8,
    name: 'model estimates, live and silent (local validation)',
    sqlite: [...PREDICTIONS, ...appendOnlyTriggers.sqlite('audit_prediction')],
    postgres: [...PREDICTIONS, ...appendOnlyTriggers.postgres('audit_prediction')],
  },
  {
    version: 9,
    name: 'keyed focus of each model estimate (per-lesion outcomes)',
    sqlite: PREDICTION_FOCUS_KEY,
    postgres: PREDICTION_FOCUS_KEY,
  },
  {
    version: 10,
    name: 'feedback events found by patient (earlier overrides)',
    sqlite: FEEDBACK_BY_PATIENT,
    postgres: FEEDBACK_BY_PATIENT,
  },
];
