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

/** Room for "the upstream has nothing" answers, apart from the real ones (see `EntryStore`). */
export const DEFAULT_MAX_NEGATIVE_ENTRIES = 2_000;
/** A negative entry is a key and an empty value; this bounds the negative space's size whatever the keys. */
const NEGATIVE_ENTRY_SIZE_BOUND = 1_024;

export interface EntryStoreOptions {
    clock: Clock;
    maxEntries: number;
    maxSizeChars: number;
    staleMaxMs: number;
    /** Bound of the separate space for negative answers; defaults to `DEFAULT_MAX_NEGATIVE_ENTRIES`. */
    maxNegativeEntries?: number;
    /**
     * The check a value stored as text (`setText`, read from disk) must pass when it is first used; one that fails
     * (or is not JSON) is dropped and reported to `onRejected`. Without it every JSON value passes.
     */
    check?: (key: string, value: unknown) => boolean;
    onRejected?: (key: string) => void;
}

/** An entry as held: a value read from disk stays JSON text (one string, cheap to hold) until it is first used. */
interface Held extends CacheEntry {
    text?: string;
}

/**
 * A negative answer: the upstream knows nothing of what was asked (an unknown symbol's empty token list, an id
 * without a price). Cached so the same "nothing" is not paid for twice, but kept apart from real answers.
 */
export function isNegativeValue(value: unknown): boolean {
    return value === null || value === undefined || (Array.isArray(value) && value.length === 0);
}

/** `isNegativeValue` of a value still in JSON text, as `JSON.stringify` writes it. */
export function isNegativeText(text: string): boolean {
    return text === 'null' || text === '[]';
}

/**
 * Bounded map of entries. Expired entries are kept (not deleted, as an lru-cache TTL would) until they are
 * too old to be served stale, because stale-if-error needs them; they are dropped lazily on access (and by
 * the LRU bounds). `max` and `maxSize` bound memory whatever the upstream returns.
 *
 * Negative answers live in their own small LRU: anyone can ask for 10,000 made-up symbols, and those answers
 * must evict each other, never the prices and grades that real questions paid for.
 */
export class EntryStore {
    private readonly lru: LRUCache<string, Held>;
    private readonly negative: LRUCache<string, Held>;

    constructor(private readonly options: EntryStoreOptions) {
        this.lru = new LRUCache<string, Held>({
            max: Math.max(1, Math.floor(options.maxEntries)),
            maxSize: Math.max(1, Math.floor(options.maxSizeChars)),
            // A single entry may take a tenth of the budget: one huge answer must not flush everything else.
            maxEntrySize: Math.max(1, Math.floor(options.maxSizeChars / 10)),
            sizeCalculation: (entry, key) => key.length + sizeOf(entry)
        });
        const maxNegative = Math.max(1, Math.floor(options.maxNegativeEntries ?? DEFAULT_MAX_NEGATIVE_ENTRIES));
        this.negative = new LRUCache<string, Held>({
            max: maxNegative,
            maxSize: maxNegative * NEGATIVE_ENTRY_SIZE_BOUND,
            maxEntrySize: NEGATIVE_ENTRY_SIZE_BOUND,
            sizeCalculation: (entry, key) => key.length + sizeOf(entry)
        });
    }

    /** The entry, fresh or stale candidate, counting as a use for LRU order. */
    get<V>(key: string): CacheEntry<V> | undefined {
        const entry = this.lru.get(key);
        if (entry !== undefined) return this.live(this.lru, key, entry) as CacheEntry<V> | undefined;
        return this.live(this.negative, key, this.negative.get(key)) as CacheEntry<V> | undefined;
    }

    /** Like `get` without touching LRU order. */
    peek<V>(key: string): CacheEntry<V> | undefined {
        const entry = this.lru.peek(key);
        if (entry !== undefined) return this.live(this.lru, key, entry) as CacheEntry<V> | undefined;
        return this.live(this.negative, key, this.negative.peek(key)) as CacheEntry<V> | undefined;
    }

    /** When the held entry for `key` was fetched, whatever its state, without using or checking it. */
    fetchedAtOf(key: string): number | undefined {
        return (this.lru.peek(key) ?? this.negative.peek(key))?.fetchedAt;
    }

    /**
     * Stores the entry (in the negative space when it is a negative answer) unless it is already past its retention
     * (e.g. a TTL of 0 and no stale window). Returns whether it was kept.
     */
    set(key: string, entry: CacheEntry): boolean {
        if (!this.retained(entry, this.options.clock.now())) return false;
        return this.put(key, entry, isNegativeValue(entry.value));
    }

    /**
     * Stores an entry whose value is JSON text (read from disk): it is parsed and checked when first used, so loading
     * many entries allocates one string each, not their object graphs. Returns whether it was kept.
     */
    setText(key: string, text: string, fetchedAt: number, expiresAt: number): boolean {
        const entry: Held = { value: undefined, fetchedAt, expiresAt, text };
        if (!this.retained(entry, this.options.clock.now())) return false;
        return this.put(key, entry, isNegativeText(text));
    }

    private put(key: string, entry: Held, negative: boolean): boolean {
        const [space, other] = negative ? [this.negative, this.lru] : [this.lru, this.negative];
        other.delete(key);
        space.set(key, entry);
        return space.has(key);
    }

    get count(): number {
        return this.lru.size + this.negative.size;
    }

    /** Entries in the negative space (included in `count`). */
    get negativeCount(): number {
        return this.negative.size;
    }

    get sizeChars(): number {
        return this.lru.calculatedSize + this.negative.calculatedSize;
    }

    private live(space: LRUCache<string, Held>, key: string, entry: Held | undefined): CacheEntry | undefined {
        if (entry === undefined) return undefined;
        if (!this.retained(entry, this.options.clock.now())) {
            space.delete(key);
            return undefined;
        }
        if (entry.text === undefined) return entry;
        let value: unknown;
        try {
            value = JSON.parse(entry.text);
        } catch {
            value = undefined;
        }
        if (value === undefined || (this.options.check !== undefined && !this.options.check(key, value))) {
            space.delete(key);
            this.options.onRejected?.(key);
            return undefined;
        }
        // In place: the entry keeps its LRU position (a `peek` must not move it) and its size, which was the text's.
        entry.value = value;
        entry.text = undefined;
        return entry;
    }

    private retained(entry: CacheEntry, now: number): boolean {
        return now < entry.expiresAt || now - entry.fetchedAt <= this.options.staleMaxMs;
    }
}

function sizeOf(entry: Held): number {
    return Math.max(1, entry.text !== undefined ? entry.text.length : JSON.stringify(entry.value ?? null).length);
}
