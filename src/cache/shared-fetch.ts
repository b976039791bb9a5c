import { setTimeout as delay } from 'node:timers/promises';
import { cancelled } from '../api/errors.js';
import type { Clock } from '../clock.js';
import type { Part } from '../endpoints/endpoint.js';
import type { Logger } from '../logger.js';
import { kindOfKey, type AnyEndpoint, type EntryKinds } from './kinds.js';
import type { EndpointStats } from './market-service.js';
import type { Claim, SharedTier } from './shared-tier.js';
import type { CacheEntry, EntryStore } from './store.js';

/** Polling for another replica's fetch starts fast (most fetches take tens of ms) and backs off to this. */
const SHARED_POLL_FIRST_MS = 5;
const SHARED_POLL_MAX_MS = 50;
/** Replicas' clocks differ a little; an entry stamped further in the future than this is not trusted. */
const MAX_CLOCK_SKEW_MS = 60_000;

/** What one inner call (or the shared tier) produced for a batch: entries by key, and the failure of the keys it left out. */
export interface Fetched {
    entries: Map<string, CacheEntry>;
    failure?: { error: unknown };
}

/** Fetches the given entries from the upstream in one call. */
export type Upstream = (items: Array<Part<unknown>>) => Promise<Fetched>;

export interface SharedFetchOptions {
    tier: SharedTier;
    clock: Clock;
    logger: Logger;
    kinds: EntryKinds;
    store: EntryStore;
    /** Stores an entry locally (and queues it for the disk). */
    keep(key: string, entry: CacheEntry): boolean;
}

/**
 * The team-deployment path to the upstream: replicas share entries through the tier and take a per-key fetch lock
 * there, so N replicas asking the same thing make one upstream call.
 */
export class SharedFetch {
    constructor(private readonly options: SharedFetchOptions) {}

    /**
     * Entries another replica stored are used as they are; keys whose fetch lock this replica wins are fetched in one
     * inner call and published; keys another replica is fetching are polled for until its answer is stored, its lock
     * is released (then one of the waiters takes over) or the lock's lifetime has passed (then this replica fetches
     * them itself, so a dead replica costs a delay, never an answer). Redis expires a lock in real time, so this wait
     * is measured with real timers, not the injected clock.
     */
    async fetch(
        endpoint: AnyEndpoint,
        items: Array<Part<unknown>>,
        counters: EndpointStats,
        upstream: Upstream,
        signal: AbortSignal
    ): Promise<Fetched> {
        const { tier, clock, kinds } = this.options;
        const entries = new Map<string, CacheEntry>();
        const fetches: Array<Promise<Fetched>> = [];
        const giveUpAt = Date.now() + tier.lockTtlMs;
        let pause = SHARED_POLL_FIRST_MS;
        let waiting = items;
        try {
            while (waiting.length > 0) {
                const keys = waiting.map(item => item.key);
                const claims = await tier.claim(keys, clock.now(), kinds.ttlMs(endpoint));
                const mine: Array<Part<unknown>> = [];
                const theirs: Array<Part<unknown>> = [];
                for (const item of waiting) {
                    const claim: Claim = claims.get(item.key) ?? { fresh: false, owned: true };
                    const entry = claim.entry === undefined ? undefined : this.adopt(item.key, claim.entry);
                    if (entry !== undefined && clock.now() < entry.expiresAt) {
                        counters.sharedHits++;
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
                    fetches.push(this.fetchAndPublish(mine, owned, upstream));
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
    private async fetchAndPublish(items: Array<Part<unknown>>, owned: readonly string[], upstream: Upstream): Promise<Fetched> {
        const { tier, clock } = this.options;
        let fetched: Fetched;
        try {
            fetched = await upstream(items);
        } catch (error) {
            void tier.release(owned);
            throw error;
        }
        void tier.publish([...fetched.entries], owned, clock.now());
        return fetched;
    }

    /**
     * An entry another replica stored: checked like one read from disk (the tier is shared, so not trusted blindly),
     * capped by this replica's TTL, and kept locally so later requests (and stale-if-error) need no round trip.
     */
    private adopt(key: string, entry: CacheEntry): CacheEntry | undefined {
        const { clock, kinds, store } = this.options;
        if (!kinds.valid(key, entry.value)) {
            this.options.logger.warn('shared cache entry ignored: unexpected value shape', { kind: kindOfKey(key) });
            return undefined;
        }
        if (entry.fetchedAt > clock.now() + MAX_CLOCK_SKEW_MS) return undefined;
        const capped: CacheEntry = {
            value: entry.value,
            fetchedAt: entry.fetchedAt,
            expiresAt: Math.min(entry.expiresAt, entry.fetchedAt + kinds.ttlMs(key))
        };
        const local = store.peek(key);
        if (local === undefined || local.fetchedAt < capped.fetchedAt) this.options.keep(key, capped);
        return capped;
    }
}
