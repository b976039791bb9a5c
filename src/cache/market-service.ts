import type { MarketData } from '../api/client.js';
import type { Clock } from '../clock.js';
import type { TtlEndpoint } from '../config.js';
import type { CachedEndpoint } from '../endpoints/endpoint.js';
import type { CacheEndpoint } from '../endpoints/registry.js';
import type { Logger } from '../logger.js';
import type { SharedTier } from './shared-tier.js';

export { CACHE_ENDPOINTS, type CacheEndpoint } from '../endpoints/registry.js';

/** An answer together with how old it is, so a tool can say "as of" and flag data served from cache after a failure. */
export interface Sourced<T> {
    data: T;
    /** ms epoch when the upstream produced this data (oldest entry when several entries are combined) */
    fetchedAt: number;
    /** null when fresh; seconds of age when served stale because the upstream failed */
    staleAgeS: number | null;
}

/**
 * The read path the tools use: any cached endpoint's answer (see `src/endpoints/registry.ts`), from the cache where
 * possible. Returned arrays are new per call, but the rows inside are shared with the cache: treat them as read-only.
 */
export interface MarketService {
    get<P, Row>(endpoint: CachedEndpoint<P, Row>, params: NoInfer<P>, signal?: AbortSignal): Promise<Sourced<Row[]>>;
    stats(): CacheStats;
    /**
     * Appends pending changes to this process's journal now (no-op when persistence is off). Never rejects: a failed
     * write is logged.
     */
    flush(): Promise<void>;
    /**
     * Starts reading the persistent files into memory, if not started yet (the first lookup starts it too); settles when
     * they are read. Never rejects.
     */
    restore(): Promise<void>;
    /**
     * Flushes, folds this process's journal into the shared snapshot (unless another process is compacting) and stops
     * the persistence timers; idempotent. Calls keep working from memory afterwards.
     */
    close(): Promise<void>;
}

/**
 * Counters are per cache entry, not per call: a price question for `[a, b]` with `a` cached counts one hit and one
 * miss. `upstreamCalls` counts calls to the inner `MarketData` (the credits, before the client's own paging).
 */
export interface EndpointStats {
    /** Entries answered fresh from the cache. */
    hits: number;
    /** Entries that started (or joined the pending batch of) an upstream call. */
    misses: number;
    /** Misses answered by the shared tier (another replica's fetch) instead of the upstream. */
    sharedHits: number;
    /** Entries that joined an upstream call another request had already started. */
    coalesced: number;
    /** Entries answered from an expired value because the upstream failed. */
    staleServed: number;
    /** Entries answered with a remembered format failure instead of another upstream call. */
    failuresRemembered: number;
    upstreamCalls: number;
}

export interface CacheStats {
    /** Per endpoint name: the registry's, and those of any further endpoint the cache was built with. */
    endpoints: Record<CacheEndpoint, EndpointStats> & { readonly [name: string]: EndpointStats | undefined };
    totals: EndpointStats;
    /** Entries held in memory, fresh and stale candidates. */
    entries: number;
    /** Sum of the entries' sizes (JSON characters), bounded by `maxSizeChars`. */
    sizeChars: number;
}

export interface MarketServiceOptions {
    inner: MarketData;
    clock: Clock;
    logger: Logger;
    /** The endpoints the cache answers and reads back from disk or the shared tier; defaults to `CACHED_ENDPOINTS`. */
    endpoints?: ReadonlyArray<CachedEndpoint<unknown, unknown>>;
    /** Overrides of `DEFAULT_TTL_SECONDS`. */
    ttlSeconds?: Partial<Record<TtlEndpoint, number>>;
    /** How old (since it was fetched) a value may be and still be served when the upstream fails. */
    staleMaxAgeSeconds: number;
    /**
     * Batched endpoints (prices, symbol and name lookups) share one upstream call among concurrent calls: a batch goes
     * out on the next turn of the event loop when none of its kind is in flight (a lone call never waits), else once
     * the one in flight settled and no request has joined it for this long (at most 250 ms after the settle).
     */
    batchWindowMs: number;
    maxEntries: number;
    /** Directory of the persistent cache file; `null` keeps the cache in memory only. */
    cacheDir: string | null;
    /** Bound on the summed JSON size of all entries; defaults to 64 Mi characters. */
    maxSizeChars?: number;
    /** Longest delay between a change and its append to this process's journal (what a crash can lose); defaults to 250 ms. */
    persistDebounceMs?: number;
    /** Bound of the separate space for negative answers (unknown symbols, ids without data); defaults to 2,000. */
    maxNegativeEntries?: number;
    /** Cache files larger than this are ignored with a warning; defaults to 64 MiB. */
    maxCacheFileBytes?: number;
    /** The tier replicas share (Redis); absent on stdio, where everything stays in process. */
    shared?: SharedTier;
}
