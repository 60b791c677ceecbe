/**
 * The JWT replay cache: CDS Hooks 2.0 §"Trusting CDS Clients" makes `jti` a nonce, and the best-practice
 * checklist asks the service to remember it for the token's lifetime so a captured token cannot be
 * played again. One interface, several stores: this in-memory one (a single instance), and the SQL
 * stores (SQLite, PostgreSQL) that share the cache between instances behind a load balancer.
 */

/** A store of seen token ids. */
export interface ReplayCache {
  /**
   * Records `key` as seen until `expiresAt`.
   * @param key the issuer and the token id: {@link replayKey}
   * @param expiresAt when the token stops being acceptable (its `exp` plus the allowed clock skew);
   *   the key may be forgotten after that
   * @returns true the first time a key is claimed, false when it was already claimed and has not expired
   */
  claim(key: string, expiresAt: Date): Promise<boolean>;
}

/** The cache key of a token: `jti` is only unique per issuer. */
export function replayKey(iss: string, jti: string): string {
  return `${iss}\u0000${jti}`;
}

export interface MemoryReplayCacheOptions {
  /** Most keys held at once; when full of unexpired keys, new tokens are refused (fail closed). */
  maxEntries: number;
  now: () => Date;
}

/** Thrown by {@link createMemoryReplayCache} when it is full of unexpired keys. */
export class ReplayCacheFullError extends Error {
  constructor(maxEntries: number) {
    super(`The JWT replay cache holds ${maxEntries} unexpired token ids and cannot take more`);
    this.name = 'ReplayCacheFullError';
  }
}

/**
 * A bounded in-memory replay cache for one instance. Expired keys are dropped as they reach the front of
 * the insertion order, and by a full sweep when the cache is full. Refusing a token when the cache is
 * full of live keys is the safe choice: evicting a live key would let that token be replayed.
 */
export function createMemoryReplayCache(options: MemoryReplayCacheOptions): ReplayCache & {
  readonly size: number;
  /** Whether `key` was claimed and has not expired (without claiming it). */
  seen(key: string): boolean;
} {
  const expiries = new Map<string, number>();
  // No full sweep before this time: the last one found nothing expiring earlier.
  let nextSweepAt = -Infinity;

  const dropExpiredFront = (now: number) => {
    for (const [key, expiry] of expiries) {
      if (expiry > now) break;
      expiries.delete(key);
    }
  };
  const sweep = (now: number) => {
    let earliest = Infinity;
    for (const [key, expiry] of expiries) {
      if (expiry <= now) expiries.delete(key);
      else earliest = Math.min(earliest, expiry);
    }
    nextSweepAt = earliest;
  };

  return {
    get size() {
      return expiries.size;
    },
    seen(key) {
      const known = expiries.get(key);
      return known !== undefined && known > options.now().getTime();
    },
    async claim(key, expiresAt) {
      const now = options.now().getTime();
      dropExpiredFront(now);
      const known = expiries.get(key);
      if (known !== undefined && known > now) return false;
      if (known === undefined && expiries.size >= options.maxEntries) {
        if (now >= nextSweepAt) sweep(now);
        if (expiries.size >= options.maxEntries) throw new ReplayCacheFullError(options.maxEntries);
      }
      // Re-inserted at the end, so the insertion order stays close to the expiry order.
      const expiry = expiresAt.getTime();
      expiries.delete(key);
      expiries.set(key, expiry);
      nextSweepAt = Math.min(nextSweepAt, expiry);
      return true;
    },
  };
}

export interface DegradingReplayCacheOptions {
  /** Claims the key in the shared store (PostgreSQL); rejects when the store is unavailable. */
  shared: ReplayCache;
  /** This instance's memory, for the outage. */
  memory: ReturnType<typeof createMemoryReplayCache>;
  log: {
    warn(fields: Record<string, unknown>, message: string): void;
    error(fields: Record<string, unknown>, message: string): void;
  };
  now: () => Date;
  /** How long the shared store is left alone after it failed, before it is asked again. */
  retryAfterMs?: number;
}

/**
 * The replay cache of several instances: the shared store while it answers; during its outage this
 * instance's memory, so that hook calls are still answered (a 401 would tell the EHR its credentials are
 * wrong). Meanwhile a token replayed on *another* instance is not detected: the outage is logged at error
 * when it starts, at warn when it ends, and each claim made in memory is counted
 * ({@link degradedClaims}, in /metrics). A token claimed in memory stays refused on this instance after
 * the outage, until it expires.
 */
export function createDegradingReplayCache(options: DegradingReplayCacheOptions): ReplayCache & {
  readonly degradedClaims: number;
  readonly degraded: boolean;
} {
  const retryAfterMs = options.retryAfterMs ?? 1000;
  let degradedUntil = -Infinity;
  let degraded = false;
  let degradedClaims = 0;

  const inMemory = (key: string, expiresAt: Date) => {
    degradedClaims += 1;
    return options.memory.claim(key, expiresAt);
  };

  return {
    get degradedClaims() {
      return degradedClaims;
    },
    get degraded() {
      return degraded;
    },
    async claim(key, expiresAt) {
      if (options.memory.seen(key)) return false;
      if (degraded && options.now().getTime() < degradedUntil) return inMemory(key, expiresAt);
      try {
        const first = await options.shared.claim(key, expiresAt);
        if (degraded) {
          degraded = false;
          options.log.warn({ degradedClaims }, 'shared JWT replay cache available again');
        }
        return first;
      } catch (error) {
        if (!degraded) {
          options.log.error(
            { error: (error as { code?: string }).code ?? (error as Error).name },
            "shared JWT replay cache unavailable: token ids checked in this instance's memory only",
          );
        }
        degraded = true;
        degradedUntil = options.now().getTime() + retryAfterMs;
        return inMemory(key, expiresAt);
      }
    },
  };
}
