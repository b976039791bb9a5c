import type { Clock } from '../clock.js';
import type { CachedEndpoint } from '../endpoints/endpoint.js';
import { CACHED_ENDPOINTS } from '../endpoints/registry.js';
import type { CacheStats, MarketService, MarketServiceOptions, Sourced } from './market-service.js';
import { EntryKinds, kindOfKey } from './kinds.js';
import { DiskTier } from './persistence.js';
import { ReadPath } from './read-path.js';
import { adopter, restore } from './restore.js';
import type { Resolved } from './stale-if-error.js';
import { Counters } from './stats.js';
import { EntryStore, type CacheEntry } from './store.js';
import { resolveTtlMs } from './ttl.js';

const DEFAULT_MAX_SIZE_CHARS = 64 * 1024 * 1024;

/**
 * The cache in front of `MarketData`, generic over the endpoint records. Every upstream call costs the user a credit, so:
 * - entries are small and shared (one per price id, per grade id, per token symbol/name/id, ...: each record's
 *   `parts`), so overlapping questions pay once, and a multi-token question sends only its missing parts upstream,
 *   in one call;
 * - identical requests in flight share one call; the missing prices and symbol or name lookups of concurrent calls are
 *   merged into shared calls (`Batches`): a burst of calls costs about two upstream calls per batch, a lone call waits
 *   for nothing;
 * - when the upstream is down, an expired answer younger than `staleMaxAgeSeconds` is served with its age;
 * - with a `cacheDir`, entries survive restarts, shared safely by every process using that directory: each process
 *   appends its changes to its own journal, compacted now and then into a snapshot (see `persistence.ts`);
 * - negative answers (unknown symbols, ids without a price) are cached in their own small space (see `EntryStore`),
 *   so made-up lookups cannot evict the answers real questions paid for;
 * - with a `shared` tier (Redis in a team deployment), a local miss asks the tier before the upstream, and replicas
 *   take a per-key fetch lock there so that N replicas asking the same thing make one upstream call.
 * Nothing is read at construction: the restore starts when the server is told the client has initialized (`restore`;
 * an HTTP server, as it starts listening) or with the first lookup, whichever comes first, and a lookup waits for it.
 * So `initialize` never shares the event loop with the restore's reads and collections (the tool list, which follows
 * `initialized` at once, mostly comes while the files are still being opened), and no call pays the upstream for what
 * the files hold.
 */
export class CachedMarketService implements MarketService {
    private readonly clock: Clock;
    private readonly store: EntryStore;
    private readonly kinds: EntryKinds;
    private readonly counters: Counters;
    private readonly reads: ReadPath;
    private readonly disk: DiskTier | null;
    private closing: Promise<void> | null = null;
    private restored: boolean;
    private restoring: Promise<void> | null = null;
    private readonly load: () => Promise<void>;

    constructor(options: MarketServiceOptions) {
        const { clock, logger } = options;
        this.clock = clock;
        const staleMaxMs = Math.max(0, options.staleMaxAgeSeconds) * 1000;
        const kinds = new EntryKinds(options.endpoints ?? CACHED_ENDPOINTS, resolveTtlMs(options.ttlSeconds));
        this.kinds = kinds;
        this.store = new EntryStore({
            clock,
            maxEntries: options.maxEntries,
            maxSizeChars: options.maxSizeChars ?? DEFAULT_MAX_SIZE_CHARS,
            staleMaxMs,
            ...(options.maxNegativeEntries !== undefined ? { maxNegativeEntries: options.maxNegativeEntries } : {}),
            // Values restored from disk are checked when first used, like values adopted from the shared tier.
            check: (key, value) => kinds.valid(key, value),
            onRejected: key => logger.warn('cache file entry ignored: unexpected value shape', { kind: kindOfKey(key) })
        });
        this.counters = new Counters(kinds.endpoints.map(endpoint => endpoint.name));
        this.disk =
            options.cacheDir === null
                ? null
                : new DiskTier({
                      dir: options.cacheDir,
                      clock,
                      logger,
                      knownKey: key => kinds.of(key) !== undefined,
                      staleMaxMs,
                      maxEntries: options.maxEntries,
                      ...(options.maxNegativeEntries !== undefined ? { maxNegativeEntries: options.maxNegativeEntries } : {}),
                      ...(options.persistDebounceMs !== undefined ? { persistDelayMs: options.persistDebounceMs } : {}),
                      ...(options.maxCacheFileBytes !== undefined ? { maxFileBytes: options.maxCacheFileBytes } : {})
                  });
        this.restored = this.disk === null;
        const disk = this.disk;
        this.load = () =>
            disk === null
                ? Promise.resolve()
                : restore(disk, { store: this.store, kinds, clock, logger }).finally(() => (this.restored = true));
        const adopt = adopter({ store: this.store, kinds, clock });
        this.reads = new ReadPath({
            inner: options.inner,
            clock,
            logger,
            store: this.store,
            kinds,
            counters: this.counters,
            staleMaxMs,
            batchWindowMs: options.batchWindowMs,
            shared: options.shared ?? null,
            keep: (key, entry) => this.keep(key, entry),
            ready: () => this.restore(),
            restored: () => this.restored,
            ...(disk !== null ? { catchUp: () => disk.catchUp(entry => void adopt(entry)) } : {})
        });
    }

    async get<P, Row>(endpoint: CachedEndpoint<P, Row>, params: NoInfer<P>, signal?: AbortSignal): Promise<Sourced<Row[]>> {
        if (!this.kinds.includes(endpoint)) throw new Error(`This cache was not built with the endpoint "${endpoint.name}".`);
        const resolved = await this.reads.read(endpoint, endpoint.parts(params), signal);
        const values = resolved.map(entry => entry.value);
        return this.sourced(endpoint.answer(values, params), resolved);
    }

    /** Settles when the entries on disk are in memory (at once without a `cacheDir`), starting the restore if need be; never rejects. */
    restore(): Promise<void> {
        return (this.restoring ??= this.load());
    }

    stats(): CacheStats {
        return this.counters.snapshot(this.store.count, this.store.sizeChars);
    }

    async flush(): Promise<void> {
        if (this.disk === null) return;
        await this.restore();
        await this.disk.flush();
    }

    close(): Promise<void> {
        this.closing ??= (async () => {
            // A restore under way finishes first; one never started is not needed: nothing was kept to fold in.
            await this.restoring;
            await this.disk?.close();
        })();
        return this.closing;
    }

    private sourced<T>(data: T, resolved: ReadonlyArray<Resolved<unknown>>): Sourced<T> {
        if (resolved.length === 0) return { data, fetchedAt: this.clock.now(), staleAgeS: null };
        const fetchedAt = Math.min(...resolved.map(entry => entry.fetchedAt));
        const staleMs = resolved.flatMap(entry => (entry.staleAgeMs === null ? [] : [entry.staleAgeMs]));
        return { data, fetchedAt, staleAgeS: staleMs.length === 0 ? null : Math.floor(Math.max(...staleMs) / 1000) };
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
