import type { CacheEntry } from './store.js';

/** What the shared tier knows about one key when a replica is about to fetch it. */
export interface Claim {
    /** The entry stored by any replica, fresh or a stale candidate; absent when there is none. */
    entry?: CacheEntry;
    /** `entry` is fresh for the caller (then no lock was taken). */
    fresh: boolean;
    /**
     * This caller now holds the key's fetch lock and should fetch it (and `publish` it, which releases the lock).
     * Also true when the tier is unavailable: every replica then fetches for itself.
     */
    owned: boolean;
}

/**
 * A cache tier shared by every replica of a team deployment (Redis), under each replica's in-process LRU.
 * It only ever degrades, it never fails: when it is unreachable, `claim` answers "nothing stored, fetch it
 * yourself" and `publish` does nothing, so a request is answered from the local tier and the upstream as if
 * there were no shared tier. `CachedMarketService` runs without one on stdio.
 */
export interface SharedTier {
    /**
     * For each key: a fresh stored entry if there is one (no lock is taken then); otherwise the stale candidate, if
     * any, and whether this caller won the key's fetch lock. Fresh means `nowMs` is before the entry's `expiresAt`
     * and it is younger than `maxAgeMs` (the caller's own TTL, which may be shorter than the writer's). A lock
     * expires by itself after `lockTtlMs`, so a replica that dies while fetching delays the others by at most that long.
     */
    claim(keys: readonly string[], nowMs: number, maxAgeMs: number): Promise<Map<string, Claim>>;
    /**
     * Stores fetched entries for every replica (each kept until it is too old to be served stale), then releases
     * the locks of `owned` this caller still holds. Resolves when both are done or have failed.
     */
    publish(entries: ReadonlyArray<[string, CacheEntry]>, owned: readonly string[], nowMs: number): Promise<void>;
    /** Releases locks without storing anything, after a failed or cancelled fetch, so waiters take over at once. */
    release(owned: readonly string[]): Promise<void>;
    /** How long a fetch lock lives; how long another replica waits for a fetch before it fetches itself. */
    readonly lockTtlMs: number;
}
