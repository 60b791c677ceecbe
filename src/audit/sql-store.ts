/**
 * The audit store written once over a minimal SQL driver, so that SQLite and PostgreSQL behave alike:
 * same tables, same statements (`?` placeholders; the PostgreSQL driver numbers them), same chain.
 * Only two things differ by dialect, both here: the head row is locked `FOR UPDATE` on PostgreSQL
 * (SQLite's `BEGIN IMMEDIATE` already serializes writers), and migrations take an advisory lock.
 */
import { canonicalJson, type ChainRow, chainHash, GENESIS } from './hash-chain.js';
import { appendOnlyTriggers, MIGRATIONS, RETAINED_INDEX_TABLES } from './migrations.js';
import type {
  AnalyticsRows,
  AppendResult,
  AuditStore,
  FindingFeedback,
  ExplanationPageRow,
  IssuedCard,
  NewAuditEvent,
  StoredEvent,
  StoredPrediction,
} from './store.js';

export type Row = Record<string, unknown>;
export type Query = (sql: string, params?: readonly unknown[]) => Promise<Row[]>;

export interface SqlDriver {
  readonly dialect: 'sqlite' | 'postgres';
  /** A statement outside any transaction. */
  query: Query;
  /** Runs `fn` in one write transaction: committed when it resolves, rolled back when it throws. */
  transaction<T>(fn: (query: Query) => Promise<T>): Promise<T>;
  close(): Promise<void>;
}

/** Monday (UTC) of the ISO week of an instant, as YYYY-MM-DD. */
export function weekOf(at: string): string {
  const date = new Date(at);
  const day = (date.getUTCDay() + 6) % 7;
  date.setUTCDate(date.getUTCDate() - day);
  return date.toISOString().slice(0, 10);
}

/** ISO 8601 week of an instant (UTC), as YYYY-Www: the week-numbering year may differ from the date's. */
export function isoWeekOf(at: string): string {
  const date = new Date(at);
  const day = (date.getUTCDay() + 6) % 7;
  // The Thursday of the same week decides the year.
  const thursday = Date.UTC(date.getUTCFullYear(), date.getUTCMonth(), date.getUTCDate() - day + 3);
  const year = new Date(thursday).getUTCFullYear();
  const week = Math.floor((thursday - Date.UTC(year, 0, 1)) / (7 * 86_400_000)) + 1;
  return `${year}-W${String(week).padStart(2, '0')}`;
}

/** The tenth of [0, 1] a risk falls in, 0–9 (1 itself in the last). */
export function riskBin(risk: number): number {
  return Math.min(9, Math.max(0, Math.floor(risk * 10)));
}

/**
 * The instant of an RFC 3339 timestamp in one spelling, so that a retry that writes the same instant
 * differently (`+00:00` or `Z`, with or without milliseconds) is recognised.
 * @throws RangeError when the text is not a date-time
 */
export function normalizeInstant(timestamp: string): string {
  return new Date(timestamp).toISOString();
}

const num = (value: unknown): number => Number(value);

async function migrate(driver: SqlDriver): Promise<void> {
  await driver.transaction(async (q) => {
    if (driver.dialect === 'postgres') {
      await q(`SELECT pg_advisory_xact_lock(hashtext('cds-audit-migrations:' || current_schema()))`);
    }
    await q(
      'CREATE TABLE IF NOT EXISTS schema_migrations (version INTEGER PRIMARY KEY, name TEXT NOT NULL, applied_at TEXT NOT NULL)',
    );
    const applied = new Set((await q('SELECT version FROM schema_migrations')).map((r) => num(r.version)));
    const known = new Set(MIGRATIONS.map((m) => m.version));
    const unknown = [...applied].filter((v) => !known.has(v));
    if (unknown.length > 0) {
      throw new Error(
        `the audit database holds migration ${Math.max(...unknown)}, which this version does not know: it was migrated by a newer version`,
      );
    }
    for (const migration of MIGRATIONS) {
      if (applied.has(migration.version)) continue;
      for (const statement of migration[driver.dialect]) await q(statement);
      await q('INSERT INTO schema_migrations (version, name, applied_at) VALUES (?, ?, ?)', [
        migration.version,
        migration.name,
        new Date().toISOString(),
      ]);
    }
  });
}

function toChainRow(r: Row): ChainRow {
  return {
    seq: num(r.seq),
    kind: String(r.kind),
    at: String(r.at),
    serviceId: String(r.service_id),
    pseudonym: r.pseudonym === null ? null : String(r.pseudonym),
    payload: String(r.payload),
    prevHash: String(r.prev_hash),
    hash: String(r.hash),
  };
}

function toStoredEvent(r: Row): StoredEvent {
  const row = toChainRow(r);
  return {
    seq: row.seq,
    kind: row.kind,
    at: row.at,
    serviceId: row.serviceId,
    pseudonym: row.pseudonym,
    payload: JSON.parse(row.payload),
  } as StoredEvent;
}

function toPrediction(r: Row): StoredPrediction {
  return {
    eventSeq: num(r.event_seq),
    serviceId: String(r.service_id),
    serviceVersion: String(r.service_version),
    pseudonym: r.pseudonym === null ? null : String(r.pseudonym),
    at: String(r.predicted_at),
    week: String(r.predicted_week),
    model: { id: String(r.model_id), version: String(r.model_version) },
    mode: String(r.mode) === 'silent' ? 'silent' : 'live',
    ...(r.focus === null ? {} : { focus: String(r.focus) }),
    ...(r.focus_key === null || r.focus_key === undefined ? {} : { focusKey: String(r.focus_key) }),
    risk: num(r.risk),
    band: String(r.band),
    positive: num(r.positive) === 1,
    topFactors: JSON.parse(String(r.top_factors)) as StoredPrediction['topFactors'],
    inputs: JSON.parse(String(r.inputs)) as Record<string, number>,
    subgroups: JSON.parse(String(r.subgroups)) as Record<string, string>,
  };
}

const modelsKey = (models: readonly { id: string; version: string }[]) =>
  models.map((m) => `${m.id}@${m.version}`).join(',');

/** Writes the index rows of one event (the cards it issued, or the feedback it records). */
async function writeIndex(q: Query, event: NewAuditEvent, seq: number): Promise<void> {
  if (event.kind === 'service-call') {
    const p = event.payload;
    for (const card of p.cards) {
      // A card without uuid cannot receive feedback (CDS Hooks 2.0 §Card): nothing to index.
      if (!card.uuid) continue;
      await q(
        `INSERT INTO audit_card (card_uuid, event_seq, service_id, service_version, models, pseudonym,
           issued_at, issued_week, indicator, risk, risk_bin, suggestions, finding, encounter, issuer, tenant)
         VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
        [
          card.uuid,
          seq,
          event.serviceId,
          p.service.version,
          modelsKey(p.models),
          event.pseudonym,
          event.at,
          weekOf(event.at),
          card.indicator,
          card.risk ?? null,
          card.risk === undefined ? null : riskBin(card.risk),
          JSON.stringify(card.suggestions),
          card.finding ?? null,
          p.encounter ?? null,
          p.caller.issuer,
          p.caller.tenant,
        ],
      );
    }
    for (const [ordinal, pr] of (p.predictions ?? []).entries()) {
      await q(
        `INSERT INTO audit_prediction (event_seq, ordinal, service_id, service_version, model_id, model_version,
           mode, pseudonym, focus, focus_key, predicted_at, predicted_week, risk, band, positive, top_factors, inputs,
           subgroups)
         VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
        [
          seq,
          ordinal,
          event.serviceId,
          p.service.version,
          pr.model.id,
          pr.model.version,
          pr.mode,
          event.pseudonym,
          pr.focus ?? null,
          pr.focusKey ?? null,
          event.at,
          isoWeekOf(event.at),
          pr.risk,
          pr.band,
          pr.positive ? 1 : 0,
          JSON.stringify(pr.topFactors),
          JSON.stringify(pr.inputs),
          JSON.stringify(pr.subgroups),
        ],
      );
    }
    const byReason = new Map<string, number>();
    for (const s of p.suppressed ?? []) byReason.set(s.reason, (byReason.get(s.reason) ?? 0) + 1);
    for (const [reason, n] of byReason) {
      await q(
        `INSERT INTO audit_suppressed (event_seq, service_id, service_version, models, reason, n)
         VALUES (?, ?, ?, ?, ?, ?)`,
        [seq, event.serviceId, p.service.version, modelsKey(p.models), reason, n],
      );
    }
  } else if (event.kind === 'feedback') {
    const p = event.payload;
    await q(
      'INSERT INTO audit_feedback (event_seq, card_uuid, outcome, outcome_instant, reason_code) VALUES (?, ?, ?, ?, ?)',
      [seq, p.card, p.outcome, normalizeInstant(p.outcomeTimestamp), p.overrideReason?.reason?.code ?? null],
    );
  }
}

/** Stores explanation pages, after deleting those expired (the table stays as large as the links alive). */
async function writePages(q: Query, at: string, pages: readonly ExplanationPageRow[]): Promise<void> {
  await q('DELETE FROM explanation_page WHERE expires_at <= ?', [Math.floor(Date.parse(at) / 1000)]);
  for (const page of pages) {
    await q(
      'INSERT INTO explanation_page (card_uuid, expires_at, content) VALUES (?, ?, ?) ON CONFLICT (card_uuid) DO NOTHING',
      [page.uuid, page.exp, page.content],
    );
  }
}

async function isDuplicate(q: Query, event: NewAuditEvent): Promise<boolean> {
  if (event.kind !== 'feedback') return false;
  const p = event.payload;
  const rows = await q(
    'SELECT 1 AS found FROM audit_feedback WHERE card_uuid = ? AND outcome = ? AND outcome_instant = ?',
    [p.card, p.outcome, normalizeInstant(p.outcomeTimestamp)],
  );
  return rows.length > 0;
}

/**
 * The statement of the store's `findingFeedback` for `count` findings (parameters: the pseudonym twice,
 * the service, the findings). It starts from the patient's feedback events (a feedback event carries its
 * card's pseudonym, `events.ts`) by the partial index of migration 10; CROSS JOIN keeps SQLite's planner
 * to that order, where it would otherwise walk every card of the finding (PostgreSQL reads it as a join
 * and plans it from its statistics).
 */
export const findingFeedbackSql = (count: number): string =>
  `SELECT f.event_seq, c.finding, c.card_uuid, f.outcome, f.reason_code, e.at, c.encounter
   FROM audit_event e
   CROSS JOIN audit_feedback f
   CROSS JOIN audit_card c
   WHERE e.pseudonym = ? AND e.kind = 'feedback' AND f.event_seq = e.seq AND c.card_uuid = f.card_uuid
     AND c.pseudonym = ? AND c.service_id = ? AND c.finding IN (${Array.from({ length: count }, () => '?').join(', ')})
   ORDER BY f.event_seq`;

/**
 * Builds the store over a driver.
 * @param options.migrate apply pending migrations first (the verification command does not)
 */
export async function createSqlStore(driver: SqlDriver, options: { migrate: boolean }): Promise<AuditStore> {
  if (options.migrate) {
    try {
      await migrate(driver);
    } catch (error) {
      await driver.close();
      throw error;
    }
  }
  const lockHead = driver.dialect === 'postgres' ? ' FOR UPDATE' : '';
  const q = driver.query;

  /** Appends events to the chain inside the transaction `tq`. */
  async function appendIn(tq: Query, events: readonly NewAuditEvent[]): Promise<AppendResult> {
    const [head] = await tq(`SELECT seq, hash FROM audit_chain_head WHERE id = 1${lockHead}`);
    if (!head) throw new Error('the audit chain head record is missing');
    let seq = num(head.seq);
    let hash = String(head.hash);
    const seqs: (number | null)[] = [];
    for (const event of events) {
      if (await isDuplicate(tq, event)) {
        seqs.push(null);
        continue;
      }
      seq += 1;
      const content = {
        seq,
        kind: event.kind,
        at: event.at,
        serviceId: event.serviceId,
        pseudonym: event.pseudonym,
        payload: canonicalJson(event.payload),
      };
      const prevHash = hash;
      hash = chainHash(prevHash, content);
      await tq(
        `INSERT INTO audit_event (seq, kind, at, service_id, pseudonym, payload, prev_hash, hash)
         VALUES (?, ?, ?, ?, ?, ?, ?, ?)`,
        [
          seq,
          content.kind,
          content.at,
          content.serviceId,
          content.pseudonym,
          content.payload,
          prevHash,
          hash,
        ],
      );
      await writeIndex(tq, event, seq);
      if (event.kind === 'service-call' && event.pages?.length) await writePages(tq, event.at, event.pages);
      seqs.push(seq);
    }
    await tq('UPDATE audit_chain_head SET seq = ?, hash = ? WHERE id = 1', [seq, hash]);
    return { seqs };
  }

  return {
    kind: driver.dialect,

    append: (events) => driver.transaction((tq) => appendIn(tq, events)),

    async findCards(serviceId, uuids) {
      const found = new Map<string, IssuedCard>();
      if (uuids.length === 0) return found;
      const rows = await q(
        `SELECT card_uuid, service_id, pseudonym, suggestions, issued_at, issuer, tenant FROM audit_card
         WHERE service_id = ? AND card_uuid IN (${uuids.map(() => '?').join(', ')})`,
        [serviceId, ...uuids],
      );
      for (const r of rows) {
        found.set(String(r.card_uuid), {
          uuid: String(r.card_uuid),
          serviceId: String(r.service_id),
          pseudonym: r.pseudonym === null ? null : String(r.pseudonym),
          suggestions: JSON.parse(String(r.suggestions)) as string[],
          issuedAt: String(r.issued_at),
          issuer: r.issuer === null ? null : String(r.issuer),
          tenant: r.tenant === null ? null : String(r.tenant),
        });
      }
      return found;
    },

    async eventsFor(pseudonym) {
      const rows = await q(
        `SELECT seq, kind, at, service_id, pseudonym, payload, prev_hash, hash FROM audit_event
         WHERE pseudonym = ? ORDER BY seq`,
        [pseudonym],
      );
      return rows.map(toStoredEvent);
    },

    async analytics(scope = {}) {
      const key = 'c.service_id, c.service_version, c.models';
      // The scope filters the cards; feedback and risk follow their card.
      const filters: string[] = [];
      const params: string[] = [];
      for (const column of ['issuer', 'tenant'] as const) {
        const value = scope[column];
        if (value === undefined) continue;
        filters.push(`c.${column} = ?`);
        params.push(value);
      }
      const and = filters.map((f) => ` AND ${f}`).join('');
      const issued = await q(
        `SELECT ${key}, COUNT(*) AS n FROM audit_card c WHERE 1 = 1${and} GROUP BY ${key} ORDER BY ${key}`,
        params,
      );
      const outcomes = await q(
        `SELECT ${key}, f.outcome, f.reason_code, COUNT(*) AS n
         FROM audit_card c JOIN (
           SELECT card_uuid, outcome, reason_code,
             ROW_NUMBER() OVER (PARTITION BY card_uuid ORDER BY outcome_instant DESC, event_seq DESC) AS rn
           FROM audit_feedback
         ) f ON f.card_uuid = c.card_uuid AND f.rn = 1
         WHERE 1 = 1${and}
         GROUP BY ${key}, f.outcome, f.reason_code
         ORDER BY ${key}, f.outcome, f.reason_code`,
        params,
      );
      const risk = await q(
        `SELECT ${key}, c.issued_week, c.risk_bin, COUNT(*) AS n, SUM(c.risk) AS total
         FROM audit_card c WHERE c.risk IS NOT NULL${and}
         GROUP BY ${key}, c.issued_week, c.risk_bin
         ORDER BY ${key}, c.issued_week, c.risk_bin`,
        params,
      );
      const suppressed = await q(
        `SELECT ${key}, c.reason, SUM(c.n) AS n FROM audit_suppressed c
         GROUP BY ${key}, c.reason ORDER BY ${key}, c.reason`,
      );
      const groupOf = (r: Row) => ({
        serviceId: String(r.service_id),
        serviceVersion: String(r.service_version),
        models: String(r.models),
      });
      return {
        issued: issued.map((r) => ({ ...groupOf(r), n: num(r.n) })),
        outcomes: outcomes.map((r) => ({
          ...groupOf(r),
          outcome: r.outcome as 'accepted' | 'overridden',
          reasonCode: r.reason_code === null ? null : String(r.reason_code),
          n: num(r.n),
        })),
        risk: risk.map((r) => ({
          ...groupOf(r),
          week: String(r.issued_week),
          bin: num(r.risk_bin),
          n: num(r.n),
          sum: num(r.total),
        })),
        suppressed: suppressed.map((r) => ({ ...groupOf(r), reason: String(r.reason), n: num(r.n) })),
      } satisfies AnalyticsRows;
    },

    async findingFeedback(pseudonym, serviceId, findings) {
      if (findings.length === 0) return [];
      const rows = await q(findingFeedbackSql(findings.length), [
        pseudonym,
        pseudonym,
        serviceId,
        ...findings,
      ]);
      return rows.map((r): FindingFeedback => ({
        seq: num(r.event_seq),
        findingKey: String(r.finding),
        cardUuid: String(r.card_uuid),
        outcome: r.outcome as FindingFeedback['outcome'],
        reasonCode: r.reason_code === null ? null : String(r.reason_code),
        at: String(r.at),
        encounter: r.encounter === null ? null : String(r.encounter),
      }));
    },

    async readChain(afterSeq, limit) {
      const rows = await q(
        `SELECT seq, kind, at, service_id, pseudonym, payload, prev_hash, hash FROM audit_event
         WHERE seq > ? ORDER BY seq LIMIT ?`,
        [afterSeq, limit],
      );
      return rows.map(toChainRow);
    },

    async chainHead() {
      const [head] = await q('SELECT seq, hash FROM audit_chain_head WHERE id = 1');
      return head ? { seq: num(head.seq), hash: String(head.hash) } : null;
    },

    async chainBase() {
      const [base] = await q(
        'SELECT through_seq, through_hash FROM audit_archive ORDER BY through_seq DESC LIMIT 1',
      );
      return base
        ? { seq: num(base.through_seq), hash: String(base.through_hash) }
        : { seq: 0, hash: GENESIS };
    },

    async retentionBoundary(before) {
      // Rows are in chain order, and a record written late (after an outage) may be older than the one
      // before it: the segment stops before the first row that is not older than `before`.
      const [first] = await q('SELECT MIN(seq) AS seq FROM audit_event WHERE at >= ?', [before]);
      if (first?.seq !== null && first?.seq !== undefined) return num(first.seq) - 1;
      const [last] = await q('SELECT MAX(seq) AS seq FROM audit_event');
      return last?.seq === null || last?.seq === undefined ? 0 : num(last.seq);
    },

    removeArchived: (event) =>
      driver.transaction(async (tq) => {
        const { base, through, rows, before, archiveSha256 } = event.payload;
        // Serialize with appends (the head row lock), then check nothing moved since the export.
        await tq(`SELECT seq FROM audit_chain_head WHERE id = 1${lockHead}`);
        const [current] = await tq('SELECT through_seq FROM audit_archive ORDER BY through_seq DESC LIMIT 1');
        if ((current ? num(current.through_seq) : 0) !== base.seq) {
          throw new Error(`the chain no longer starts after row ${base.seq}: archive again`);
        }
        const [last] = await tq('SELECT hash FROM audit_event WHERE seq = ?', [through.seq]);
        if (!last || String(last.hash) !== through.hash) {
          throw new Error(`row ${through.seq} is not the row archived: archive again`);
        }
        const dialect = driver.dialect;
        for (const table of RETAINED_INDEX_TABLES) {
          const drop = dialect === 'sqlite' ? appendOnlyTriggers.dropSqlite : appendOnlyTriggers.dropPostgres;
          for (const statement of drop(table)) await tq(statement);
        }
        // The index rows go with their events: suppressed cards and model estimates too.
        for (const table of RETAINED_INDEX_TABLES) {
          if (table === 'audit_event') continue;
          await tq(`DELETE FROM ${table} WHERE event_seq <= ?`, [through.seq]);
        }
        await tq('DELETE FROM audit_event WHERE seq <= ?', [through.seq]);
        for (const table of RETAINED_INDEX_TABLES) {
          for (const statement of appendOnlyTriggers[dialect](table)) await tq(statement);
        }
        const { seqs } = await appendIn(tq, [event]);
        const seq = seqs[0]!;
        await tq(
          `INSERT INTO audit_archive (through_seq, through_hash, base_seq, rows_removed, before_at,
             archive_sha256, retention_seq) VALUES (?, ?, ?, ?, ?, ?, ?)`,
          [through.seq, through.hash, base.seq, rows, before, archiveSha256, seq],
        );
        return seq;
      }),

    rememberJti: (issuer, jti, expiresAt, now) =>
      // One transaction (one commit): purge what has expired, then claim the pair.
      driver.transaction(async (tq) => {
        await tq('DELETE FROM jwt_replay WHERE expires_at < ?', [now.toISOString()]);
        const inserted = await tq(
          'INSERT INTO jwt_replay (issuer, jti, expires_at) VALUES (?, ?, ?) ON CONFLICT DO NOTHING RETURNING jti',
          [issuer, jti, expiresAt.toISOString()],
        );
        return inserted.length === 1;
      }),

    async predictions(range, after, limit) {
      const rows = await q(
        `SELECT * FROM audit_prediction
         WHERE predicted_at >= ? AND predicted_at < ? AND (event_seq > ? OR (event_seq = ? AND ordinal > ?))
         ORDER BY event_seq, ordinal LIMIT ?`,
        [range.from, range.to, after.seq, after.seq, after.ordinal, limit],
      );
      return rows.map((r) => ({
        ...toPrediction(r),
        ordinal: num(r.ordinal),
      }));
    },

    async findExplanation(uuid, nowS) {
      const [row] = await q('SELECT content FROM explanation_page WHERE card_uuid = ? AND expires_at > ?', [
        uuid,
        nowS,
      ]);
      return row ? String(row.content) : null;
    },

    async ping() {
      await q('SELECT 1 AS ok');
    },

    close: () => driver.close(),
  };
}
