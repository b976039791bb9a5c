import { admitSharedWork, asSharedWork, callTimeLeftMs } from '../api/call-scope.js';
import type { MarketData } from '../api/client.js';
import { callDeadlinePassed, cancelled } from '../api/errors.js';
import { serverBusy } from '../api/refusals.js';
import type { Clock } from '../clock.js';
import type { CachedEndpoint, Part } from '../endpoints/endpoint.js';
import type { Logger } from '../logger.js';
import { Batches, type Started } from './batch.js';
import { FailureMemory } from './failure-memory.js';
import { InFlight } from './in-flight.js';
import type { AnyEndpoint, EntryKinds } from './kinds.js';
import { SharedCall, untilAborted } from './shared-call.js';
import { SharedFetch, type Fetched } from './shared-fetch.js';
import type { SharedTier } from './shared-tier.js';
import { deadlinePassed, StaleIfError, type Resolved } from './stale-if-error.js';
import type { Counters } from './stats.js';
import type { CacheEntry, EntryStore } from './store.js';

export interface ReadPathOptions {
    inner: MarketData;
    clock: Clock;
    logger: Logger;
    store: EntryStore;
    kinds: EntryKinds;
    counters: Counters;
    staleMaxMs: number;
    /** How long the parts joining a batch gathered behind another must have stopped coming before it goes out (`BatchesOptions.quietMs`). */
    batchWindowMs: number;
    shared: SharedTier | null;
    /** Stores an entry (and queues it for the disk). */
    keep(key: string, entry: CacheEntry): boolean;
    /** Settles when the entries on disk are in memory, starting the restore if need be; `restored()` says whether it has. */
    ready(): Promise<void>;
    restored(): boolean;
    /** Takes in what other processes on the cache directory have appended since the restore (`DiskTier.catchUp`). */
    catchUp?: () => Promise<void>;
}

/**
 * The single read path, for every endpoint: fresh entries answer at once, entries in flight are joined (`InFlight`),
 * entries with a remembered failure answer with it (`FailureMemory`), the rest go upstream in one call, or into the
 * endpoint's batches (`Batches`), through the shared tier when there is one (`SharedFetch`). Failed entries fall
 * back to stale ones where allowed (`StaleIfError`).
 *
 * A batch serves several callers, so it runs as nobody's (`asSharedWork`), until the latest of its members'
 * deadlines: one member's cap, deadline or cancellation fails or aborts that member's wait, never the batch the
 * others wait on. Each member takes its own caller slot when it joins, as its own upstream request would.
 */
export class ReadPath {
    private readonly flights = new InFlight();
    private readonly batches: Batches;
    private readonly failures: FailureMemory;
    private readonly stale: StaleIfError;
    private readonly shared: SharedFetch | null;

    constructor(private readonly options: ReadPathOptions) {
        const { clock, logger, store, kinds } = options;
        this.failures = new FailureMemory(clock);
        this.stale = new StaleIfError({ store, clock, logger, staleMaxMs: options.staleMaxMs });
        this.batches = new Batches({
            clock,
            quietMs: Math.max(0, options.batchWindowMs),
            newCall: () => this.newCall(),
            register: (key, call) => this.flights.register(key, call),
            run: (endpoint, started, items, deadlineAt) =>
                asSharedWork(clock, deadlineAt - clock.monotonic(), () => this.run(endpoint, started, items))
        });
        const keep = (key: string, entry: CacheEntry): boolean => options.keep(key, entry);
        this.shared = options.shared === null ? null : new SharedFetch({ tier: options.shared, clock, logger, kinds, store, keep });
    }

    private fresh(key: string): boolean {
        const entry = this.options.store.peek(key);
        return entry !== undefined && this.options.clock.now() < entry.expiresAt;
    }

    /** The entries of `items` (distinct keys), in order. */
    async read<P, Row, E, V>(
        endpoint: CachedEndpoint<P, Row, E, V>,
        items: Array<Part<E>>,
        signal?: AbortSignal
    ): Promise<Array<Resolved<V>>> {
        // Until the restore is done, the answer may be on disk: waiting for it is cheaper than a credit.
        if (!this.options.restored()) await this.options.ready();
        // Another server on the same cache directory may have paid for a missing entry since: read its journal first.
        if (this.options.catchUp !== undefined && items.some(item => !this.fresh(item.key))) await this.options.catchUp();
        if (signal?.aborted) {
            if (!deadlinePassed(signal)) throw cancelled();
            return this.afterDeadline(endpoint, items);
        }
        const { store, clock } = this.options;
        const counters = this.options.counters.of(endpoint.name);
        const now = clock.now();
        const slots: Array<CacheEntry<V> | Promise<CacheEntry<V>> | null> = [];
        const calls = new Set<SharedCall>();
        const missing: Array<Part<E>> = [];
        const missingSlots: number[] = [];
        let failed = false;
        for (const item of items) {
            const entry = store.get<V>(item.key);
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
            const failure = this.failures.recall(item.key, endpoint.name, now);
            if (failure !== undefined) {
                counters.failuresRemembered++;
                failed = true;
                slots.push(Promise.reject(failure));
                continue;
            }
            counters.misses++;
            missingSlots.push(slots.length);
            missing.push(item);
            slots.push(null);
        }
        // Keys are distinct: each missing part's result, whether it goes upstream in this call's own question or in a batch.
        const results = new Map<string, Promise<CacheEntry>>();
        const own = missing.filter(item => endpoint.batch(item.part) === null);
        const shared = missing.filter(item => endpoint.batch(item.part) !== null);
        if (own.length > 0) {
            const started = this.start(endpoint, own);
            calls.add(started.call);
            own.forEach((item, i) => results.set(item.key, started.results[i]!.promise));
        }
        if (shared.length > 0 && admitSharedWork()) {
            const joined = this.batches.enqueue(endpoint, shared, clock.monotonic() + callTimeLeftMs());
            for (const call of joined.calls) calls.add(call);
            shared.forEach((item, i) => results.set(item.key, joined.results[i]!.promise));
        } else if (shared.length > 0) {
            // Over its cap, this caller waits for nothing: its parts fail alone (stale-if-error may still answer them).
            failed = true;
            const busy = Promise.reject(serverBusy('this caller already has as many uncached tool calls under way as it may', 1));
            for (const item of shared) results.set(item.key, busy);
        }
        missingSlots.forEach((slot, i) => (slots[slot] = results.get(missing[i]!.key) as Promise<CacheEntry<V>>));
        if (calls.size === 0 && !failed) {
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
        return this.stale.settle(endpoint.name, counters, keysOf(items), outcomes);
    }

    /** A call whose deadline has already passed starts nothing upstream: fresh entries answer, the rest may be stale. */
    private afterDeadline<V>(endpoint: AnyEndpoint, items: ReadonlyArray<Part<unknown>>): Array<Resolved<V>> {
        const now = this.options.clock.now();
        const outcomes = items.map((item): PromiseSettledResult<CacheEntry<V>> => {
            const entry = this.options.store.get<V>(item.key);
            return entry !== undefined && now < entry.expiresAt
                ? { status: 'fulfilled', value: entry }
                : { status: 'rejected', reason: callDeadlinePassed() };
        });
        return this.stale.settle(endpoint.name, this.options.counters.of(endpoint.name), keysOf(items), outcomes);
    }

    private newCall(): SharedCall {
        // Every waiter left: forget the call so the next request starts afresh, and cancel a batch that has not fired yet.
        return new SharedCall(abandoned => {
            this.batches.cancel(abandoned);
            this.flights.abandon(abandoned);
        });
    }

    private start(endpoint: AnyEndpoint, items: Array<Part<unknown>>): Started {
        const call = this.newCall();
        call.cover(keysOf(items));
        const started = { call, results: items.map(item => this.flights.register(item.key, call)) };
        void this.run(endpoint, started, items);
        return started;
    }

    /** Runs the upstream call for `items`; settles (never rejects) once its callers have their results. */
    private run(endpoint: AnyEndpoint, { call, results }: Started, items: Array<Part<unknown>>): Promise<void> {
        const upstream = (asked: Array<Part<unknown>>): Promise<Fetched> => this.fetchUpstream(endpoint, asked, call.signal);
        const pending =
            this.shared === null
                ? upstream(items)
                : this.shared.fetch(endpoint, items, this.options.counters.of(endpoint.name), upstream, call.signal);
        return pending.then(
            ({ entries, failure }) => {
                call.settle();
                this.flights.forget(call, keysOf(items));
                // Stored even when every waiter has gone: the credit is spent, the answer should not be.
                for (const [key, entry] of entries) this.options.keep(key, entry);
                items.forEach((item, i) => {
                    const entry = entries.get(item.key);
                    if (entry !== undefined) results[i]!.resolve(entry);
                    else results[i]!.reject(failure?.error);
                });
            },
            (error: unknown) => {
                call.settle();
                this.flights.forget(call, keysOf(items));
                const answer = this.failures.remember(endpoint.name, keysOf(items), error);
                for (const result of results) result.reject(answer);
            }
        );
    }

    /**
     * One inner call for `items`; every value it splits into becomes an entry stamped now: the asked ones, and the
     * entries the rows answer for free unless they are fresh here already or being fetched by another call.
     */
    private async fetchUpstream(endpoint: AnyEndpoint, items: Array<Part<unknown>>, signal: AbortSignal): Promise<Fetched> {
        const { inner, clock, store, kinds, logger } = this.options;
        this.options.counters.of(endpoint.name).upstreamCalls++;
        logger.debug('cache miss: calling upstream', { endpoint: endpoint.name, entries: items.length });
        const rows = await inner.get(endpoint, endpoint.ask(items.map(item => item.part)), signal);
        const values = endpoint.split(rows, items);
        const fetchedAt = clock.now();
        const expiresAt = fetchedAt + kinds.ttlMs(endpoint);
        const asked = new Set(keysOf(items));
        const entries = new Map<string, CacheEntry>();
        for (const [key, value] of values) {
            if (!asked.has(key)) {
                const known = store.peek(key);
                if (this.flights.has(key) || (known !== undefined && fetchedAt < known.expiresAt)) continue;
            }
            entries.set(key, { value, fetchedAt, expiresAt });
        }
        // The split contract says every asked key is answered; one that is not still settles its caller.
        for (const item of items) if (!entries.has(item.key)) entries.set(item.key, { value: undefined, fetchedAt, expiresAt });
        return { entries };
    }
}

const keysOf = (items: ReadonlyArray<Part<unknown>>): string[] => items.map(item => item.key);
