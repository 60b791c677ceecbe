/**
 * The audit trail as the rest of the service uses it: the store, the writer that queues while the store
 * cannot take records (and its spill file, when configured), and the pseudonym function. Recording a
 * service call or an objection fails the call (503) only when its record can be neither written nor held,
 * as the fail-safe policy says (`audit-writer.ts`); reading or storing something a client waits for
 * (feedback, analytics) fails with a 503 when the store does not take it.
 */
import type { Config } from '../config.js';
import { CdsError } from '../errors.js';
import { type AuditBacklog, type AuditWriterLog, createAuditWriter, isStoreFault } from './audit-writer.js';
import { type ObjectionRecord, objectionEvent, type ServiceCallRecord, serviceCallEvent } from './events.js';
import { loadPseudonymKey, type Pseudonymise, pseudonymiser } from './pseudonym.js';
import { openSpill, readSpill } from './spill.js';
import { type AuditStore, type FindingFeedback, type NewAuditEvent, openStore } from './store.js';
import type { SqliteWorker } from './worker-store.js';

export interface AuditTrail {
  readonly store: AuditStore;
  readonly pseudonymise: Pseudonymise;
  /**
   * Records a call before it is answered; resolves once durable, or held if the store cannot take it.
   * @throws CdsError CDS_ERR_STORE_UNAVAILABLE (503) when the record can be neither (fail-safe policy)
   */
  recordServiceCall(record: ServiceCallRecord): Promise<void>;
  /** Records that a patient's objection stopped risk cards (no clinical data). Same guarantees. */
  recordObjection(record: ObjectionRecord): Promise<void>;
  /**
   * Feedback recorded on the cards this service issued to this patient about these findings (override
   * suppression); the patient id is pseudonymised here. Rejects when the store does not answer.
   */
  findingFeedback(
    serviceId: string,
    patientId: string,
    findings: readonly string[],
  ): Promise<FindingFeedback[]>;
  /**
   * Runs an operation a client waits for, after writing what is queued (so a card issued just before the
   * store came back is found).
   * @throws CdsError CDS_ERR_STORE_UNAVAILABLE (503) when the store does not answer
   */
  use<T>(operation: (store: AuditStore) => Promise<T>): Promise<T>;
  /** Audit records waiting, refused or rejected: the figures /metrics reports. */
  backlog(): AuditBacklog;
  /** True while records cannot be written (/health/ready then answers 503). */
  failing(): boolean;
  close(): Promise<void>;
}

export interface AuditTrailOptions {
  /** A store built by the caller (tests); else the one the configuration names. */
  store?: AuditStore;
  log: AuditWriterLog;
  retryInitialMs?: number;
  /** The worker a SQLite store runs in, owned by the caller; else the store's own (`openStore`). */
  worker?: SqliteWorker;
}

/**
 * Opens the store, finds the pseudonym key and starts the writer.
 * @throws Error when the pseudonym key file or the store cannot be opened
 */
export async function openAuditTrail(
  config: Pick<Config, 'dataDir' | 'databaseUrl' | 'auditPseudonymKey' | 'auditQueueMax' | 'auditSpillDir'> &
    Partial<Pick<Config, 'auditFailPolicy'>>,
  options: AuditTrailOptions,
): Promise<AuditTrail> {
  const pseudonymise = pseudonymiser(loadPseudonymKey(config));
  const recovered = config.auditSpillDir === undefined ? [] : readSpill(config.auditSpillDir);
  const store = options.store ?? (await openStore(config, { worker: options.worker }));
  const spill = config.auditSpillDir === undefined ? undefined : openSpill(config.auditSpillDir);
  if (recovered.length > 0) {
    options.log.warn({ records: recovered.length }, 'audit records from the spill file queued for writing');
  }
  const writer = createAuditWriter(store, {
    maxQueue: config.auditQueueMax,
    policy: config.auditFailPolicy ?? 'queue',
    spill,
    recovered,
    log: options.log,
    ...(options.retryInitialMs === undefined ? {} : { retryInitialMs: options.retryInitialMs }),
  });

  const unavailable = (error: unknown) => new CdsError('CDS_ERR_STORE_UNAVAILABLE', {}, { cause: error });
  const record = async (event: NewAuditEvent) => {
    try {
      await writer.record(event);
    } catch (error) {
      throw unavailable(error);
    }
  };

  return {
    store,
    pseudonymise,
    recordServiceCall: (call) => record(serviceCallEvent(call, pseudonymise)),
    recordObjection: (objection) => record(objectionEvent(objection, pseudonymise)),
    findingFeedback: (serviceId, patientId, findings) =>
      store.findingFeedback(pseudonymise(patientId), serviceId, findings),
    async use(operation) {
      try {
        await writer.flush();
      } catch (error) {
        throw unavailable(error);
      }
      try {
        return await operation(store);
      } catch (error) {
        if (error instanceof CdsError) throw error;
        if (isStoreFault(error)) throw unavailable(error);
        // A store that answers a ping refused the operation itself: a bug, a 500, not an outage.
        const answers = await store.ping().then(
          () => true,
          () => false,
        );
        throw answers ? error : unavailable(error);
      }
    },
    backlog: () => writer.backlog(),
    failing: () => writer.failing(),
    async close() {
      await writer.close();
      await spill?.close();
      await store.close();
    },
  };
}
