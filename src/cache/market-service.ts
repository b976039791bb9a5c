import type { MarketData, TokenQuery } from '../api/client.js';
import type {
    DailyOhlcv,
    FundamentalGrade,
    Moonshot,
    MoonshotType,
    Price,
    TechnologyGrade,
    TmGrade,
    Token,
    TradingSignal
} from '../domain/market.js';
import type { Clock } from '../clock.js';
import type { TtlEndpoint } from '../config.js';
import type { Logger } from '../logger.js';
import type { SharedTier } from './shared-tier.js';

/** An answer together with how old it is, so a tool can say "as of" and flag data served from cache after a failure. */
export interface Sourced<T> {
    data: T;
    /** ms epoch when the upstream produced this data (oldest entry when several entries are combined) */
    fetchedAt: number;
    /** null when fresh; seconds of age when served stale because the upstream failed */
    staleAgeS: number | null;
}

/**
 * The read path the tools use: the `MarketData` methods, answered from the cache where possible.
 * Returned arrays are new per call, but the rows inside are shared with the cache: treat them as read-only.
 */
export interface MarketService {
    tokens(query: TokenQuery, signal?: AbortSignal): Promise<Sourced<Token[]>>;
    prices(tokenIds: readonly number[], signal?: AbortSignal): Promise<Sourced<Price[]>>;
    tmGrades(tokenIds: readonly number[], signal?: AbortSignal): Promise<Sourced<TmGrade[]>>;
    fundamentalGrades(tokenIds: readonly number[], signal?: AbortSignal): Promise<Sourced<FundamentalGrade[]>>;
    technologyGrades(tokenIds: readonly number[], signal?: AbortSignal): Promise<Sourced<TechnologyGrade[]>>;
    tradingSignals(tokenIds: readonly number[], days: number, signal?: AbortSignal): Promise<Sourced<TradingSignal[]>>;
    /** Up to `limit` (1..50) rows; every limit shares one cached page of 50 per type. */
    moonshots(type: MoonshotType, limit: number, signal?: AbortSignal): Promise<Sourced<Moonshot[]>>;
    dailyOhlcv(tokenId: number, days: number, signal?: AbortSignal): Promise<Sourced<DailyOhlcv[]>>;
    stats(): CacheStats;
    /**
     * Appends pending changes to this process's journal now (no-op when persistence is off). Never rejects: a failed
     * write is logged.
     */
    flush(): Promise<void>;
    /**
     * Flushes, folds this process's journal into the shared snapshot (unless another process is compacting) and stops
     * the persistence timers; idempotent. Calls keep working from memory afterwards.
     */
    close(): Promise<void>;
}

/** The `MarketService` methods, used as the counters' names. */
export const CACHE_ENDPOINTS = [
    'tokens',
    'prices',
    'tmGrades',
    'fundamentalGrades',
    'technologyGrades',
    'tradingSignals',
    'moonshots',
    'dailyOhlcv'
] as const;
export type CacheEndpoint = (typeof CACHE_ENDPOINTS)[number];

/**
 * Counters are per cache entry, not per call: `prices([a, b])` with `a` cached counts one hit and one miss.
 * `upstreamCalls` counts calls to the inner `MarketData` (the credits, before the client's own paging).
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
    endpoints: Record<CacheEndpoint, EndpointStats>;
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
    /** Overrides of `DEFAULT_TTL_SECONDS`. */
    ttlSeconds?: Partial<Record<TtlEndpoint, number>>;
    /** How old (since it was fetched) a value may be and still be served when the upstream fails. */
    staleMaxAgeSeconds: number;
    /** How long price requests wait for others to share one upstream call; 0 still merges calls made in the same tick. */
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
