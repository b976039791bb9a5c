import { setTimeout as delay } from 'node:timers/promises';
import * as z from 'zod';
import { checkIds, clampDays, type MarketData, type TokenQuery } from '../api/client.js';
import {
    callDeadlinePassed,
    cancelled,
    invalidInput,
    isUpstreamError,
    rememberedFailure,
    type ErrorCode,
    type UpstreamError
} from '../api/errors.js';
import type { Clock } from '../clock.js';
import type { TtlEndpoint } from '../config.js';
import {
    DailyOhlcvSchema,
    FundamentalGradeSchema,
    MoonshotSchema,
    newestFirst,
    PriceSchema,
    TechnologyGradeSchema,
    TmGradeSchema,
    TokenSchema,
    TradingSignalSchema,
    type DailyOhlcv,
    type FundamentalGrade,
    type Moonshot,
    type MoonshotType,
    type Price,
    type TechnologyGrade,
    type TmGrade,
    type Token,
    type TradingSignal
} from '../domain/market.js';
import type { Logger } from '../logger.js';
import {
    CACHE_ENDPOINTS,
    type CacheEndpoint,
    type CacheStats,
    type EndpointStats,
    type MarketService,
    type MarketServiceOptions,
    type Sourced
} from './market-service.js';
import { DiskTier } from './persistence.js';
import { deferred, SharedCall, untilAborted, type Deferred } from './shared-call.js';
import type { Claim, SharedTier } from './shared-tier.js';
import { EntryStore, type CacheEntry } from './store.js';
import { resolveTtlMs } from './ttl.js';

/**
 * The upstream serves one page of up to 100 moonshots for one credit whatever the limit, and the tools offer 1..50:
 * fetching 50 every time lets every limit share one entry.
 */
export const MOONSHOT_FETCH_LIMIT = 50;

const DEFAULT_MAX_SIZE_CHARS = 64 * 1024 * 1024;
/** Polling for another replica's fetch starts fast (most fetches take tens of ms) and backs off to this. */
const SHARED_POLL_FIRST_MS = 5;
const SHARED_POLL_MAX_MS = 50;
/** Replicas' clocks differ a little; an entry stamped further in the future than this is not trusted. */
const MAX_CLOCK_SKEW_MS = 60_000;
/**
 * How long an answer the upstream sent in a format we cannot read is remembered. Asking again within this time would
 * get the same answer and spend another credit on it; after it, a fixed upstream (or a new release) is picked up.
 */
const DRIFT_MEMORY_MS = 60_000;
/**
 * How long "this endpoint is gone" (404) or "not in your plan" (403) is remembered, for the whole endpoint: neither
 * depends on the token asked about, and neither changes by asking again soon.
 */
const ENDPOINT_FAILURE_MEMORY_MS = 60_000;
/** Remembered failures are few in practice; the bound only keeps a hostile upstream from growing the map. */
const MAX_REMEMBERED_FAILURES = 1_000;

/**
 * Failures that say nothing about the question itself, only that the upstream cannot answer right now: an older answer
 * is then better than none. Auth, input and not-found errors would be hidden by a stale answer, so they propagate.
 */
const STALE_IF_ERROR_CODES: ReadonlySet<ErrorCode> = new Set<ErrorCode>([
    'UPSTREAM_UNAVAILABLE',
    'UPSTREAM_TIMEOUT',
    'RATE_LIMITED',
    'QUOTA_EXHAUSTED',
    'SCHEMA_DRIFT'
]);

/**
 * Every kind of entry, by key prefix: which counters it feeds, which TTL applies, and the schema a value read from
 * disk or from the shared tier must pass (the domain schemas the client's parsing produces). Keys are
 * `<prefix>:<canonical parts>`, e.g. `price:3375`, `signals:3375:29`, `tokens:symbol:BTC`, `tokens:name:bitcoin`,
 * `moonshots:active`.
 */
const KEY_KINDS: Record<string, { endpoint: CacheEndpoint; ttl: TtlEndpoint; schema: z.ZodType }> = {
    tokens: { endpoint: 'tokens', ttl: 'tokens', schema: z.array(TokenSchema) },
    price: { endpoint: 'prices', ttl: 'price', schema: PriceSchema.nullable() },
    tmgrade: { endpoint: 'tmGrades', ttl: 'grades', schema: TmGradeSchema.nullable() },
    fundamental: { endpoint: 'fundamentalGrades', ttl: 'grades', schema: FundamentalGradeSchema.nullable() },
    technology: { endpoint: 'technologyGrades', ttl: 'grades', schema: TechnologyGradeSchema.nullable() },
    signals: { endpoint: 'tradingSignals', ttl: 'signals', schema: z.array(TradingSignalSchema) },
    moonshots: { endpoint: 'moonshots', ttl: 'moonshots', schema: z.array(MoonshotSchema) },
    ohlcv: { endpoint: 'dailyOhlcv', ttl: 'ohlcv', schema: z.array(DailyOhlcvSchema) }
};

const kindOf = (key: string) => KEY_KINDS[key.slice(0, key.indexOf(':'))];
/** The check every value read from disk or from the shared tier passes before a tool can see it. */
const isValidEntryValue = (key: string, value: unknown): boolean => kindOf(key)?.schema.safeParse(value).success === true;

const ENDPOINT_TTL: Record<CacheEndpoint, TtlEndpoint> = {
    tokens: 'tokens',
    prices: 'price',
    tmGrades: 'grades',
    fundamentalGrades: 'grades',
    technologyGrades: 'grades',
    tradingSignals: 'signals',
    moonshots: 'moonshots',
    dailyOhlcv: 'ohlcv'
};

interface Item<P> {
    key: string;
    param: P;
}

/**
 * Fetches the entries for `params` in one inner call. The map must hold a value for every requested key (an empty
 * list or `null` for "the upstream has nothing", which is cached too, so unknown tokens are not paid for twice);
 * extra keys it returns are stored as well.
 */
type Fetcher<P, V> = (params: P[], signal: AbortSignal) => Promise<Map<string, V>>;

interface Flight {
    call: SharedCall;
    result: Deferred<CacheEntry>;
}

interface Batch {
    call: SharedCall;
    items: Array<Item<unknown>>;
    results: Array<Deferred<CacheEntry>>;
    fetcher: Fetcher<unknown, unknown>;
    timer: NodeJS.Timeout;
}

type CounterTable = Record<CacheEndpoint, EndpointStats>;

interface Started {
    call: SharedCall;
    results: Array<Deferred<CacheEntry>>;
}

/** What one inner call (or the shared tier) produced for a batch: entries by key, and the failure of the keys it left out. */
interface Fetched {
    entries: Map<string, CacheEntry>;
    failure?: { error: unknown };
}

interface Resolved<V> {
    value: V;
    fetchedAt: number;
    /** null when fresh. */
    staleAgeMs: number | null;
}

type TokenParam = { kind: 'symbol' | 'name'; value: string } | { kind: 'id'; value: number };

/** Symbols are upper case already; names are matched case-insensitively, so they are keyed in lower case. */
const tokenKey = (param: TokenParam): string => `tokens:${param.kind}:${param.kind === 'name' ? param.value.toLowerCase() : param.value}`;

/** The caller gave up because its time ran out (an `AbortSignal.timeout` behind it), not because it was cancelled. */
function deadlinePassed(signal: AbortSignal | undefined): boolean {
    return signal?.aborted === true && signal.reason instanceof Error && signal.reason.name === 'TimeoutError';
}

const uniqueIds = (ids: readonly number[]): number[] => [...new Set(ids)];

function emptyStats(): EndpointStats {
    return { hits: 0, misses: 0, sharedHits: 0, coalesced: 0, staleServed: 0, failuresRemembered: 0, upstreamCalls: 0 };
}

/**
 * The cache in front of `MarketData`. Every upstream call costs the user a credit, so:
 * - entries are small and shared (one per price id, per grade id, per token symbol/name/id, ...), so overlapping
 *   questions pay once, and a multi-token question sends only its missing parts upstream, in one call;
 * - identical requests in flight share one call; price requests within `batchWindowMs` are merged into one call;
 * - when the upstream is down, an expired answer younger than `staleMaxAgeSeconds` is served with its age;
 * - with a `cacheDir`, entries survive restarts, shared safely by every process using that directory: each process
 *   appends its changes to its own journal, compacted now and then into a snapshot (see `persistence.ts`);
 * - negative answers (unknown symbols, ids without a price) are cached in their own small space (see `EntryStore`),
 *   so made-up lookups cannot evict the answers real questions paid for;
 * - with a `shared` tier (Redis in a team deployment), a local miss asks the tier before the upstream, and replicas
 *   take a per-key fetch lock there so that N replicas asking the same thing make one upstream call.
 * Nothing is read at construction: the restore starts at once in the background (`ready`), and a lookup waits for it,
 * so the MCP handshake never waits for the disk and no call pays the upstream for what the files hold.
 */
export class CachedMarketService implements MarketService {
    private readonly inner: MarketData;
    private readonly clock: Clock;
    private readonly logger: Logger;
    private readonly ttlMs: Record<TtlEndpoint, number>;
    private readonly staleMaxMs: number;
    private readonly batchWindowMs: number;
    private readonly store: EntryStore;
    private readonly shared: SharedTier | null;
    private readonly counters: CounterTable;
    private readonly flights = new Map<string, Flight>();
    private readonly batches = new Map<CacheEndpoint, Batch>();
    /** Keys whose last fetch the upstream answered in a format we cannot read, until when that is remembered. */
    private readonly failures = new Map<string, { error: UpstreamError; until: number }>();

    private readonly disk: DiskTier | null;
    private closing: Promise<void> | null = null;
    private restored: boolean;
    /** Settles when the entries on disk are in memory (at once without a `cacheDir`); never rejects. */
    readonly ready: Promise<void>;

    constructor(options: MarketServiceOptions) {
        this.inner = options.inner;
        this.clock = options.clock;
        this.logger = options.logger;
        this.ttlMs = resolveTtlMs(options.ttlSeconds);
        this.staleMaxMs = Math.max(0, options.staleMaxAgeSeconds) * 1000;
        this.batchWindowMs = Math.max(0, options.batchWindowMs);
        this.store = new EntryStore({
            clock: options.clock,
            maxEntries: options.maxEntries,
            maxSizeChars: options.maxSizeChars ?? DEFAULT_MAX_SIZE_CHARS,
            staleMaxMs: this.staleMaxMs,
            ...(options.maxNegativeEntries !== undefined ? { maxNegativeEntries: options.maxNegativeEntries } : {}),
            // Values restored from disk are checked when first used, like values adopted from the shared tier.
            check: isValidEntryValue,
            onRejected: key =>
                this.logger.warn('cache file entry ignored: unexpected value shape', { kind: key.slice(0, key.indexOf(':')) })
        });
        this.shared = options.shared ?? null;
        this.counters = Object.fromEntries(CACHE_ENDPOINTS.map(endpoint => [endpoint, emptyStats()])) as CounterTable;
        this.disk =
            options.cacheDir === null
                ? null
                : new DiskTier({
                      dir: options.cacheDir,
                      clock: options.clock,
                      logger: options.logger,
                      knownKey: key => kindOf(key) !== undefined,
                      staleMaxMs: this.staleMaxMs,
                      maxEntries: options.maxEntries,
                      ...(options.maxNegativeEntries !== undefined ? { maxNegativeEntries: options.maxNegativeEntries } : {}),
                      ...(options.persistDebounceMs !== undefined ? { persistDelayMs: options.persistDebounceMs } : {}),
                      ...(options.maxCacheFileBytes !== undefined ? { maxFileBytes: options.maxCacheFileBytes } : {})
                  });
        this.restored = this.disk === null;
        this.ready = this.disk === null ? Promise.resolve() : this.restore(this.disk);
    }

    async tokens(query: TokenQuery, signal?: AbortSignal): Promise<Sourced<Token[]>> {
        checkIds(query.ids ?? []);
        const items = new Map<string, Item<TokenParam>>();
        const params: TokenParam[] = [
            ...(query.symbols ?? []).map(symbol => ({ kind: 'symbol' as const, value: symbol.trim().toUpperCase() })),
            // Sent upstream as typed (the name filter may be case-sensitive), keyed case-insensitively.
            ...(query.names ?? []).map(name => ({ kind: 'name' as const, value: name.trim() })),
            ...(query.ids ?? []).map(id => ({ kind: 'id' as const, value: id }))
        ];
        for (const param of params) if (!items.has(tokenKey(param))) items.set(tokenKey(param), { key: tokenKey(param), param });

        const fetcher: Fetcher<TokenParam, Token[]> = (params, inner) => this.fetchTokens(params, inner);
        const resolved = await this.lookup('tokens', [...items.values()], fetcher, signal);
        const seen = new Set<number>();
        const data = resolved.flatMap(entry => entry.value).filter(token => !seen.has(token.tokenId) && seen.add(token.tokenId));
        return this.sourced(data, resolved);
    }

    /** Price requests within `batchWindowMs` share one upstream call: several tools asking at once pay one credit. */
    prices(tokenIds: readonly number[], signal?: AbortSignal): Promise<Sourced<Price[]>> {
        return this.perToken('prices', 'price', tokenIds, (ids, inner) => this.inner.prices(ids, inner), signal, true);
    }

    tmGrades(tokenIds: readonly number[], signal?: AbortSignal): Promise<Sourced<TmGrade[]>> {
        return this.perToken('tmGrades', 'tmgrade', tokenIds, (ids, inner) => this.inner.tmGrades(ids, inner), signal);
    }

    fundamentalGrades(tokenIds: readonly number[], signal?: AbortSignal): Promise<Sourced<FundamentalGrade[]>> {
        return this.perToken(
            'fundamentalGrades',
            'fundamental',
            tokenIds,
            (ids, inner) => this.inner.fundamentalGrades(ids, inner),
            signal
        );
    }

    technologyGrades(tokenIds: readonly number[], signal?: AbortSignal): Promise<Sourced<TechnologyGrade[]>> {
        return this.perToken('technologyGrades', 'technology', tokenIds, (ids, inner) => this.inner.technologyGrades(ids, inner), signal);
    }

    async tradingSignals(tokenIds: readonly number[], days: number, signal?: AbortSignal): Promise<Sourced<TradingSignal[]>> {
        checkIds(tokenIds);
        const span = clampDays(days);
        const items = uniqueIds(tokenIds).map(id => ({ key: `signals:${id}:${span}`, param: id }));
        const fetcher: Fetcher<number, TradingSignal[]> = async (ids, inner) => {
            const rows = await this.inner.tradingSignals(ids, span, inner);
            return new Map(ids.map(id => [`signals:${id}:${span}`, rows.filter(row => row.tokenId === id)]));
        };
        const resolved = await this.lookup('tradingSignals', items, fetcher, signal);
        return this.sourced(resolved.flatMap(entry => entry.value).sort(newestFirst), resolved);
    }

    async moonshots(type: MoonshotType, limit: number, signal?: AbortSignal): Promise<Sourced<Moonshot[]>> {
        if (type !== 'active' && type !== 'past') throw invalidInput('Moonshot type must be "active" or "past".');
        if (!Number.isFinite(limit)) throw invalidInput('The moonshot limit must be a number.');
        const count = Math.max(1, Math.min(MOONSHOT_FETCH_LIMIT, Math.floor(limit)));
        const key = `moonshots:${type}`;
        const resolved = await this.lookup(
            'moonshots',
            [{ key, param: type }],
            async ([kind], inner) => new Map([[key, await this.inner.moonshots(kind!, MOONSHOT_FETCH_LIMIT, inner)]]),
            signal
        );
        return this.sourced(resolved[0]!.value.slice(0, count), resolved);
    }

    async dailyOhlcv(tokenId: number, days: number, signal?: AbortSignal): Promise<Sourced<DailyOhlcv[]>> {
        checkIds([tokenId]);
        const span = clampDays(days);
        const key = `ohlcv:${tokenId}:${span}`;
        const fetcher: Fetcher<number, DailyOhlcv[]> = async ([id], inner) =>
            new Map([[key, await this.inner.dailyOhlcv(id!, span, inner)]]);
        const resolved = await this.lookup('dailyOhlcv', [{ key, param: tokenId }], fetcher, signal);
        return this.sourced([...resolved[0]!.value], resolved);
    }

    /**
     * One entry per token (`<prefix>:<id>`), the missing ones fetched in one call. A token the upstream has no row for
     * is cached as `null` for the endpoint's TTL: asking again would cost a credit for the same "nothing", and it must
     * not fail the other callers of a merged batch.
     */
    private async perToken<T extends { tokenId: number }>(
        endpoint: CacheEndpoint,
        prefix: string,
        tokenIds: readonly number[],
        fetch: (ids: number[], signal: AbortSignal) => Promise<T[]>,
        signal: AbortSignal | undefined,
        batch = false
    ): Promise<Sourced<T[]>> {
        checkIds(tokenIds);
        const items = uniqueIds(tokenIds).map(id => ({ key: `${prefix}:${id}`, param: id }));
        const fetcher: Fetcher<number, T | null> = async (ids, inner) => {
            const byId = new Map<number, T>();
            for (const row of await fetch(ids, inner)) if (!byId.has(row.tokenId)) byId.set(row.tokenId, row);
            return new Map(ids.map(id => [`${prefix}:${id}`, byId.get(id) ?? null]));
        };
        const resolved = await this.lookup(endpoint, items, fetcher, signal, batch);
        return this.sourced(
            resolved.flatMap(entry => (entry.value === null ? [] : [entry.value])),
            resolved
        );
    }

    stats(): CacheStats {
        const endpoints = {} as CounterTable;
        const totals = emptyStats();
        for (const endpoint of CACHE_ENDPOINTS) {
            const counters = { ...this.counters[endpoint] };
            endpoints[endpoint] = counters;
            for (const field of Object.keys(totals) as Array<keyof EndpointStats>) totals[field] += counters[field];
        }
        return { endpoints, totals, entries: this.store.count, sizeChars: this.store.sizeChars };
    }

    async flush(): Promise<void> {
        if (this.disk === null) return;
        await this.ready;
        await this.disk.flush();
    }

    close(): Promise<void> {
        this.closing ??= (async () => {
            await this.ready;
            await this.disk?.close();
        })();
        return this.closing;
    }

    /**
     * The single read path: fresh entries answer at once, entries in flight are joined, the rest go upstream in one
     * call (or into the endpoint's open batch). `items` must have distinct keys.
     */
    private async lookup<P, V>(
        endpoint: CacheEndpoint,
        items: Array<Item<P>>,
        fetcher: Fetcher<P, V>,
        signal?: AbortSignal,
        batch = false
    ): Promise<Array<Resolved<V>>> {
        // Until the restore is done, the answer may be on disk: waiting for it is cheaper than a credit.
        if (!this.restored) await this.ready;
        if (signal?.aborted) {
            if (!deadlinePassed(signal)) throw cancelled();
            return this.afterDeadline(endpoint, items);
        }
        const counters = this.counters[endpoint];
        const now = this.clock.now();
        const slots: Array<CacheEntry<V> | Promise<CacheEntry<V>> | null> = [];
        const calls = new Set<SharedCall>();
        const missing: Array<Item<P>> = [];
        const missingSlots: number[] = [];
        let remembered = false;
        for (const item of items) {
            const entry = this.store.get<V>(item.key);
            if (entry !== undefined && now < entry.expiresAt) {
                counters.hits++;
                slots.push(entry);
                continue;
            }
            const flight = this.flights.get(item.key);
            if (flight !== undefined) {
                counters.coalesced++;
                calls.add(flight.call);
                slots.push(flight.result.promise as Promise<CacheEntry<V>>);
                continue;
            }
            const failure = this.rememberedFailure(item.key, now) ?? this.rememberedFailure(`@${endpoint}`, now);
            if (failure !== undefined) {
                counters.failuresRemembered++;
                remembered = true;
                slots.push(Promise.reject(failure));
                continue;
            }
            counters.misses++;
            missingSlots.push(slots.length);
            missing.push(item);
            slots.push(null);
        }
        if (missing.length > 0) {
            const started = batch ? this.enqueue(endpoint, missing, fetcher) : this.start(endpoint, missing, fetcher);
            calls.add(started.call);
            missingSlots.forEach((slot, i) => (slots[slot] = started.results[i]!.promise as Promise<CacheEntry<V>>));
        }
        if (calls.size === 0 && !remembered) {
            return (slots as Array<CacheEntry<V>>).map(entry => ({ value: entry.value, fetchedAt: entry.fetchedAt, staleAgeMs: null }));
        }

        for (const call of calls) call.join();
        let outcomes: Array<PromiseSettledResult<CacheEntry<V>>>;
        try {
            outcomes = await untilAborted(
                Promise.allSettled(slots.map(slot => Promise.resolve(slot as CacheEntry<V> | Promise<CacheEntry<V>>))),
                signal
            );
        } catch (error) {
            if (!deadlinePassed(signal)) throw error;
            // The caller's deadline passed while the upstream was still at work: as with an upstream timeout, an
            // older answer beats none, so the entries still pending go through stale-if-error.
            outcomes = slots.map(slot =>
                slot !== null && !(slot instanceof Promise)
                    ? { status: 'fulfilled', value: slot }
                    : { status: 'rejected', reason: callDeadlinePassed() }
            );
        } finally {
            for (const call of calls) call.leave();
        }
        return this.settle(endpoint, items, outcomes);
    }

    /** A call whose deadline has already passed starts nothing upstream: fresh entries answer, the rest may be stale. */
    private afterDeadline<P, V>(endpoint: CacheEndpoint, items: Array<Item<P>>): Array<Resolved<V>> {
        const now = this.clock.now();
        const outcomes = items.map((item): PromiseSettledResult<CacheEntry<V>> => {
            const entry = this.store.get<V>(item.key);
            return entry !== undefined && now < entry.expiresAt
                ? { status: 'fulfilled', value: entry }
                : { status: 'rejected', reason: callDeadlinePassed() };
        });
        return this.settle(endpoint, items, outcomes);
    }

    /** Turns per-entry outcomes into values, replacing failures by stale entries where stale-if-error allows. */
    private settle<P, V>(
        endpoint: CacheEndpoint,
        items: Array<Item<P>>,
        outcomes: Array<PromiseSettledResult<CacheEntry<V>>>
    ): Array<Resolved<V>> {
        const resolved: Array<Resolved<V>> = [];
        let stale = 0;
        let oldestMs = 0;
        let cause: ErrorCode | undefined;
        outcomes.forEach((outcome, i) => {
            if (outcome.status === 'fulfilled') {
                resolved.push({ value: outcome.value.value, fetchedAt: outcome.value.fetchedAt, staleAgeMs: null });
                return;
            }
            const fallback = this.fallback<V>(items[i]!.key, outcome.reason);
            if (fallback === undefined) throw outcome.reason;
            if (fallback.staleAgeMs !== null) {
                stale++;
                oldestMs = Math.max(oldestMs, fallback.staleAgeMs);
                cause = (outcome.reason as { code: ErrorCode }).code;
            }
            resolved.push(fallback);
        });
        if (stale > 0) {
            this.counters[endpoint].staleServed += stale;
            const ageS = Math.floor(oldestMs / 1000);
            this.logger.warn('upstream failed; serving stale cached data', { endpoint, code: cause, entries: stale, ageS });
        }
        return resolved;
    }

    private fallback<V>(key: string, error: unknown): Resolved<V> | undefined {
        if (!isUpstreamError(error) || !STALE_IF_ERROR_CODES.has(error.code)) return undefined;
        const entry = this.store.peek<V>(key);
        if (entry === undefined) return undefined;
        const now = this.clock.now();
        // Another request may have refreshed the entry while this one's call was failing: that is a fresh answer.
        if (now < entry.expiresAt) return { value: entry.value, fetchedAt: entry.fetchedAt, staleAgeMs: null };
        const age = now - entry.fetchedAt;
        return age <= this.staleMaxMs ? { value: entry.value, fetchedAt: entry.fetchedAt, staleAgeMs: age } : undefined;
    }

    private start<P, V>(endpoint: CacheEndpoint, items: Array<Item<P>>, fetcher: Fetcher<P, V>): Started {
        const call = new SharedCall(abandoned => this.abandon(abandoned));
        call.cover(items.map(item => item.key));
        const results = items.map(item => this.register(item.key, call));
        this.run(endpoint, call, items, results, fetcher);
        return { call, results };
    }

    /**
     * Failures that asking again soon would only pay for again are remembered: a format failure for `DRIFT_MEMORY_MS`
     * per key (the same question gets the same unreadable answer), a missing endpoint or one outside the plan for
     * `ENDPOINT_FAILURE_MEMORY_MS` for the whole endpoint. Outages and rate limits are worth retrying at once.
     */
    private remember<P>(endpoint: CacheEndpoint, items: ReadonlyArray<Item<P>>, error: unknown): unknown {
        if (!isUpstreamError(error)) return error;
        const now = this.clock.now();
        if (this.failures.size >= MAX_REMEMBERED_FAILURES) this.pruneFailures();
        if (error.code === 'SCHEMA_DRIFT') {
            for (const item of items) this.failures.set(item.key, { error, until: now + DRIFT_MEMORY_MS });
            return rememberedFailure(error, Math.ceil(DRIFT_MEMORY_MS / 1000));
        }
        if (error.code === 'NOT_FOUND' || error.code === 'NOT_IN_PLAN') {
            this.failures.set(`@${endpoint}`, { error, until: now + ENDPOINT_FAILURE_MEMORY_MS });
            return rememberedFailure(error, Math.ceil(ENDPOINT_FAILURE_MEMORY_MS / 1000));
        }
        return error;
    }

    private rememberedFailure(key: string, now: number): UpstreamError | undefined {
        const failure = this.failures.get(key);
        if (failure === undefined) return undefined;
        if (now >= failure.until) {
            this.failures.delete(key);
            return undefined;
        }
        return rememberedFailure(failure.error, Math.ceil((failure.until - now) / 1000));
    }

    private pruneFailures(): void {
        const now = this.clock.now();
        for (const [key, failure] of this.failures) if (now >= failure.until) this.failures.delete(key);
        // Still full of live failures: the oldest go first, so the map stays bounded whatever the upstream does.
        for (const key of this.failures.keys()) {
            if (this.failures.size < MAX_REMEMBERED_FAILURES) break;
            this.failures.delete(key);
        }
    }

    /** Adds the items to the endpoint's open batch, opening one (and its window timer) if there is none. */
    private enqueue<P, V>(endpoint: CacheEndpoint, items: Array<Item<P>>, fetcher: Fetcher<P, V>): Started {
        let batch = this.batches.get(endpoint);
        if (batch === undefined) {
            const call = new SharedCall(abandoned => this.abandon(abandoned));
            const opened: Batch = {
                call,
                items: [],
                results: [],
                fetcher: fetcher as Fetcher<unknown, unknown>,
                // A real timer, not the injected clock: this is a scheduling window of a few ms, not a time anyone reads.
                timer: setTimeout(() => this.fire(endpoint, opened), this.batchWindowMs)
            };
            batch = opened;
            this.batches.set(endpoint, batch);
        }
        const results = items.map(item => this.register(item.key, batch.call));
        batch.call.cover(items.map(item => item.key));
        batch.items.push(...items);
        batch.results.push(...results);
        return { call: batch.call, results };
    }

    private fire(endpoint: CacheEndpoint, batch: Batch): void {
        if (this.batches.get(endpoint) === batch) this.batches.delete(endpoint);
        if (batch.call.abandoned) return;
        this.run(endpoint, batch.call, batch.items, batch.results, batch.fetcher);
    }

    private register(key: string, call: SharedCall): Deferred<CacheEntry> {
        const result = deferred<CacheEntry>();
        this.flights.set(key, { call, result });
        return result;
    }

    /** Every waiter left: forget the call so the next request starts afresh, and cancel a batch that has not fired yet. */
    private abandon(call: SharedCall): void {
        for (const [endpoint, batch] of this.batches) {
            if (batch.call === call) {
                clearTimeout(batch.timer);
                this.batches.delete(endpoint);
            }
        }
        for (const key of call.keys) {
            const flight = this.flights.get(key);
            if (flight?.call === call) {
                this.flights.delete(key);
                flight.result.reject(cancelled());
            }
        }
    }

    private run<P, V>(
        endpoint: CacheEndpoint,
        call: SharedCall,
        items: Array<Item<P>>,
        results: Array<Deferred<CacheEntry>>,
        fetcher: Fetcher<P, V>
    ): void {
        const forget = (): void => {
            call.settle();
            for (const item of items) if (this.flights.get(item.key)?.call === call) this.flights.delete(item.key);
        };
        const pending =
            this.shared === null
                ? this.fetchUpstream(endpoint, items, fetcher, call.signal)
                : this.fetchShared(endpoint, items, fetcher, call.signal);
        pending.then(
            ({ entries, failure }) => {
                forget();
                // Stored even when every waiter has gone: the credit is spent, the answer should not be.
                for (const [key, entry] of entries) this.keep(key, entry);
                items.forEach((item, i) => {
                    const entry = entries.get(item.key);
                    if (entry !== undefined) results[i]!.resolve(entry);
                    else results[i]!.reject(failure?.error);
                });
            },
            (error: unknown) => {
                forget();
                const answer = this.remember(endpoint, items, error);
                for (const result of results) result.reject(answer);
            }
        );
    }

    /** One inner call for `items`; every value it returns (extra keys included) becomes an entry stamped now. */
    private async fetchUpstream<P, V>(
        endpoint: CacheEndpoint,
        items: Array<Item<P>>,
        fetcher: Fetcher<P, V>,
        signal: AbortSignal
    ): Promise<Fetched> {
        this.counters[endpoint].upstreamCalls++;
        this.logger.debug('cache miss: calling upstream', { endpoint, entries: items.length });
        const values = await fetcher(
            items.map(item => item.param),
            signal
        );
        const fetchedAt = this.clock.now();
        const expiresAt = fetchedAt + this.ttlMs[ENDPOINT_TTL[endpoint]];
        const entries = new Map<string, CacheEntry>();
        for (const [key, value] of values) entries.set(key, { value, fetchedAt, expiresAt });
        // The fetcher contract says every requested key is answered; one that is not still settles its caller.
        for (const item of items) if (!entries.has(item.key)) entries.set(item.key, { value: undefined, fetchedAt, expiresAt });
        return { entries };
    }

    /**
     * The team-deployment path: entries another replica stored are used as they are; keys whose fetch lock this
     * replica wins are fetched in one inner call and published; keys another replica is fetching are polled for
     * until its answer is stored, its lock is released (then one of the waiters takes over) or the lock's lifetime
     * has passed (then this replica fetches them itself, so a dead replica costs a delay, never an answer).
     * Redis expires a lock in real time, so this wait is measured with real timers, not the injected clock.
     */
    private async fetchShared<P, V>(
        endpoint: CacheEndpoint,
        items: Array<Item<P>>,
        fetcher: Fetcher<P, V>,
        signal: AbortSignal
    ): Promise<Fetched> {
        const shared = this.shared!;
        const entries = new Map<string, CacheEntry>();
        const fetches: Array<Promise<Fetched>> = [];
        const giveUpAt = Date.now() + shared.lockTtlMs;
        let pause = SHARED_POLL_FIRST_MS;
        let waiting = items;
        try {
            while (waiting.length > 0) {
                const keys = waiting.map(item => item.key);
                const claims = await shared.claim(keys, this.clock.now(), this.ttlMs[ENDPOINT_TTL[endpoint]]);
                const mine: Array<Item<P>> = [];
                const theirs: Array<Item<P>> = [];
                for (const item of waiting) {
                    const claim: Claim = claims.get(item.key) ?? { fresh: false, owned: true };
                    const entry = claim.entry === undefined ? undefined : this.adopt(item.key, claim.entry);
                    if (entry !== undefined && this.clock.now() < entry.expiresAt) {
                        this.counters[endpoint].sharedHits++;
                        entries.set(item.key, entry);
                    } else if (claim.owned || claim.fresh || Date.now() >= giveUpAt) {
                        // Fresh but not adoptable (a value of the wrong shape): nobody is fetching it, so fetch it here.
                        mine.push(item);
                    } else {
                        theirs.push(item);
                    }
                }
                if (mine.length > 0) {
                    const owned = mine.filter(item => claims.get(item.key)?.owned !== false).map(item => item.key);
                    fetches.push(this.fetchAndPublish(endpoint, mine, owned, fetcher, signal));
                }
                waiting = theirs;
                if (waiting.length > 0) {
                    await delay(pause, undefined, { signal });
                    pause = Math.min(SHARED_POLL_MAX_MS, pause * 2);
                }
            }
        } catch (error) {
            if (signal.aborted) throw cancelled({ cause: signal.reason });
            throw error;
        } finally {
            // Settled below or, after an abort, left to finish on their own: their outcome must not go unhandled.
            for (const fetch of fetches) fetch.catch(() => undefined);
        }
        let failure: Fetched['failure'];
        for (const outcome of await Promise.allSettled(fetches)) {
            if (outcome.status === 'fulfilled') for (const [key, entry] of outcome.value.entries) entries.set(key, entry);
            else failure ??= { error: outcome.reason };
        }
        return failure === undefined ? { entries } : { entries, failure };
    }

    /** Fetches keys this replica claimed, then stores them for the others and releases its locks (both in the background). */
    private async fetchAndPublish<P, V>(
        endpoint: CacheEndpoint,
        items: Array<Item<P>>,
        owned: readonly string[],
        fetcher: Fetcher<P, V>,
        signal: AbortSignal
    ): Promise<Fetched> {
        const shared = this.shared!;
        let fetched: Fetched;
        try {
            fetched = await this.fetchUpstream(endpoint, items, fetcher, signal);
        } catch (error) {
            void shared.release(owned);
            throw error;
        }
        void shared.publish([...fetched.entries], owned, this.clock.now());
        return fetched;
    }

    /**
     * An entry another replica stored: checked like one read from disk (the tier is shared, so not trusted blindly),
     * capped by this replica's TTL, and kept locally so later requests (and stale-if-error) need no round trip.
     */
    private adopt(key: string, entry: CacheEntry): CacheEntry | undefined {
        const kind = kindOf(key);
        if (kind === undefined || !isValidEntryValue(key, entry.value)) {
            this.logger.warn('shared cache entry ignored: unexpected value shape', { kind: key.slice(0, key.indexOf(':')) });
            return undefined;
        }
        if (entry.fetchedAt > this.clock.now() + MAX_CLOCK_SKEW_MS) return undefined;
        const capped: CacheEntry = {
            value: entry.value,
            fetchedAt: entry.fetchedAt,
            expiresAt: Math.min(entry.expiresAt, entry.fetchedAt + this.ttlMs[kind.ttl])
        };
        const local = this.store.peek(key);
        if (local === undefined || local.fetchedAt < capped.fetchedAt) this.keep(key, capped);
        return capped;
    }

    /**
     * One inner call for every missing symbol, name and id, split back per element. Each element gets its own entry,
     * an empty list when the upstream knows nothing of it. Rows also fill `tokens:id:<id>` entries for free: an id
     * names exactly one token, so asking for it later would return the same row.
     */
    private async fetchTokens(params: TokenParam[], signal: AbortSignal): Promise<Map<string, Token[]>> {
        const symbols = params.flatMap(param => (param.kind === 'symbol' ? [param.value] : []));
        const names = params.flatMap(param => (param.kind === 'name' ? [param.value] : []));
        const ids = params.flatMap(param => (param.kind === 'id' ? [param.value] : []));
        const query: TokenQuery = {
            ...(symbols.length > 0 ? { symbols } : {}),
            ...(names.length > 0 ? { names } : {}),
            ...(ids.length > 0 ? { ids } : {})
        };
        const rows = await this.inner.tokens(query, signal);
        const values = new Map<string, Token[]>();
        for (const row of rows) {
            const key = `tokens:id:${row.tokenId}`;
            const known = this.store.peek(key);
            const fresh = known !== undefined && this.clock.now() < known.expiresAt;
            if (!values.has(key) && !this.flights.has(key) && !fresh) values.set(key, [row]);
        }
        for (const param of params) {
            const match =
                param.kind === 'symbol'
                    ? (row: Token) => row.symbol === param.value
                    : param.kind === 'name'
                      ? (row: Token) => row.name.toLowerCase() === param.value.toLowerCase()
                      : (row: Token) => row.tokenId === param.value;
            const matching = rows.filter(match);
            const distinct = matching.filter((row, i) => matching.findIndex(other => other.tokenId === row.tokenId) === i);
            values.set(tokenKey(param), distinct);
        }
        return values;
    }

    private sourced<T>(data: T, resolved: ReadonlyArray<Resolved<unknown>>): Sourced<T> {
        if (resolved.length === 0) return { data, fetchedAt: this.clock.now(), staleAgeS: null };
        const fetchedAt = Math.min(...resolved.map(entry => entry.fetchedAt));
        const staleMs = resolved.flatMap(entry => (entry.staleAgeMs === null ? [] : [entry.staleAgeMs]));
        return { data, fetchedAt, staleAgeS: staleMs.length === 0 ? null : Math.floor(Math.max(...staleMs) / 1000) };
    }

    /**
     * Loads the files in the background; the TTL in force now caps each entry, so shortening a TTL takes effect on old
     * entries too. Values stay JSON text until first used, when they are parsed and pass `isValidEntryValue` or are
     * dropped (see `EntryStore.setText`). Inserting yields to the event loop in slices, like reading.
     */
    private async restore(disk: DiskTier): Promise<void> {
        let read = 0;
        let loaded = 0;
        try {
            const now = this.clock.now();
            await disk.load(({ key, fetchedAt, expiresAt, text }) => {
                read++;
                // A fetchedAt in the future means the clock moved back or the file is not ours: its age cannot be trusted.
                if (fetchedAt > now) return;
                // Files are read oldest first, but a key's lines may come in any order: the newest fetch wins.
                const known = this.store.fetchedAtOf(key);
                if (known !== undefined && known > fetchedAt) return;
                const ttl = this.ttlMs[kindOf(key)!.ttl];
                if (this.store.setText(key, text, fetchedAt, Math.min(expiresAt, fetchedAt + ttl))) loaded++;
            });
            if (read > 0) this.logger.debug('cache restored from disk', { read, loaded, entries: this.store.count });
        } catch (error) {
            this.logger.warn('cache restore failed; starting with an empty cache', {
                error: error instanceof Error ? error.name : 'unknown'
            });
        } finally {
            this.restored = true;
        }
    }

    /** Stores an entry and queues it for this process's journal. Returns whether the store kept it. */
    private keep(key: string, entry: CacheEntry): boolean {
        if (!this.store.set(key, entry)) return false;
        if (this.closing === null) this.disk?.record(key, entry);
        return true;
    }
}

/** Builds the cache in front of `options.inner`; the persistent files (if any) are read in the background, see `ready`. */
export function createMarketService(options: MarketServiceOptions): MarketService {
    return new CachedMarketService(options);
}
