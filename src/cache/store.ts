import { LRUCache } from 'lru-cache';
import type { Clock } from '../clock.js';

/** One cached answer. Times are ms epoch from the injected clock, so they survive a restart and fake clocks drive them in tests. */
export interface CacheEntry<V = unknown> {
    value: V;
    /** When the upstream produced the value. */
    fetchedAt: number;
    /** Fresh until then; afterwards only a stale candidate for stale-if-error. */
    expiresAt: number;
}

export interface EntryStoreOptions {
    clock: Clock;
    maxEntries: number;
    maxSizeChars: number;
    staleMaxMs: number;
}

/**
 * Bounded map of entries. Expired entries are kept (not deleted, as an lru-cache TTL would) until they are
 * too old to be served stale, because stale-if-error needs them; they are dropped lazily on access and when
 * the store is dumped. `max` and `maxSize` bound memory whatever the upstream returns.
 */
export class EntryStore {
    private readonly lru: LRUCache<string, CacheEntry>;

    constructor(private readonly options: EntryStoreOptions) {
        this.lru = new LRUCache<string, CacheEntry>({
            max: Math.max(1, Math.floor(options.maxEntries)),
            maxSize: Math.max(1, Math.floor(options.maxSizeChars)),
            // A single entry may take a tenth of the budget: one huge answer must not flush everything else.
            maxEntrySize: Math.max(1, Math.floor(options.maxSizeChars / 10)),
            sizeCalculation: (entry, key) => key.length + sizeOf(entry.value)
        });
    }

    /** The entry, fresh or stale candidate, counting as a use for LRU order. */
    get<V>(key: string): CacheEntry<V> | undefined {
        return this.live(key, this.lru.get(key)) as CacheEntry<V> | undefined;
    }

    /** Like `get` without touching LRU order. */
    peek<V>(key: string): CacheEntry<V> | undefined {
        return this.live(key, this.lru.peek(key)) as CacheEntry<V> | undefined;
    }

    /** Stores the entry unless it is already past its retention (e.g. a TTL of 0 and no stale window). Returns whether it was kept. */
    set(key: string, entry: CacheEntry): boolean {
        if (!this.retained(entry, this.options.clock.now())) return false;
        this.lru.set(key, entry);
        return this.lru.has(key);
    }

    /** Retained entries, least recently used first, so loading them in order restores the recency order. */
    dump(): Array<[string, CacheEntry]> {
        const now = this.options.clock.now();
        const out: Array<[string, CacheEntry]> = [];
        // Keys first: deleting while iterating the cache itself would disturb the iteration.
        for (const key of [...this.lru.rkeys()]) {
            const entry = this.lru.peek(key);
            if (entry !== undefined && this.retained(entry, now)) out.push([key, entry]);
            else this.lru.delete(key);
        }
        return out;
    }

    get count(): number {
        return this.lru.size;
    }

    get sizeChars(): number {
        return this.lru.calculatedSize;
    }

    private live(key: string, entry: CacheEntry | undefined): CacheEntry | undefined {
        if (entry === undefined) return undefined;
        if (this.retained(entry, this.options.clock.now())) return entry;
        this.lru.delete(key);
        return undefined;
    }

    private retained(entry: CacheEntry, now: number): boolean {
        return now < entry.expiresAt || now - entry.fetchedAt <= this.options.staleMaxMs;
    }
}

function sizeOf(value: unknown): number {
    return Math.max(1, JSON.stringify(value ?? null).length);
}
