/**
 * The audit trail as the rest of the service uses it: the store, the writer that queues while the store
 * is down, and the pseudonym function. Recording a service call or an objection never fails the call;
 * reading or storing something a client waits for (feedback, analytics) fails with a 503 when the store
 * does not answer.
 */
import type { Config } from '../config.js';
import { CdsError } from '../errors.js';
import { type AuditBacklog, type AuditWriterLog, createAuditWriter } from './audit-writer.js';
import { type ObjectionRecord, objectionEvent, type ServiceCallRecord, serviceCallEvent } from './events.js';
import { loadPseudonymKey, type Pseudonymise, pseudonymiser } from './pseudonym.js';
import { type AuditStore, type FindingFeedback, openStore } from './store.js';
import type { SqliteWorker } from './worker-store.js';

export interface AuditTrail {
  readonly store: AuditStore;
  readonly pseudonymise: Pseudonymise;
  /** Records a call that was answered; resolves once durable, or queued if the store is down. */
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
  /** Audit records waiting, lost or refused: the figures /metrics reports. */
  backlog(): AuditBacklog;
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
  config: Pick<Config, 'dataDir' | 'databaseUrl' | 'auditPseudonymKey' | 'auditQueueMax'>,
  options: AuditTrailOptions,
): Promise<AuditTrail> {
  const pseudonymise = pseudonymiser(loadPseudonymKey(config));
  const store = options.store ?? (await openStore(config, { worker: options.worker }));
  const writer = createAuditWriter(store, {
    maxQueue: config.auditQueueMax,
    log: options.log,
    ...(options.retryInitialMs === undefined ? {} : { retryInitialMs: options.retryInitialMs }),
  });

  const unavailable = (error: unknown) => new CdsError('CDS_ERR_STORE_UNAVAILABLE', {}, { cause: error });

  return {
    store,
    pseudonymise,
    recordServiceCall: (record) => writer.record(serviceCallEvent(record, pseudonymise)),
    recordObjection: (record) => writer.record(objectionEvent(record, pseudonymise)),
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
        // A store that answers a ping refused the operation itself: a bug, a 500, not an outage.
        const answers = await store.ping().then(
          () => true,
          () => false,
        );
        throw answers ? error : unavailable(error);
      }
    },
    backlog: () => writer.backlog(),
    async close() {
      await writer.close();
      await store.close();
    },
  };
}
