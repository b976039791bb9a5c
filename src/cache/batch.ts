import type { Part } from '../endpoints/endpoint.js';
import type { AnyEndpoint } from './kinds.js';
import type { Deferred, SharedCall } from './shared-call.js';
import type { CacheEntry } from './store.js';

/** An upstream call, started or pending, and the results of the entries it will answer (in `items` order). */
export interface Started {
    call: SharedCall;
    results: Array<Deferred<CacheEntry>>;
}

interface Batch extends Started {
    endpoint: AnyEndpoint;
    items: Array<Part<unknown>>;
    timer: NodeJS.Timeout;
}

export interface BatchWindowOptions {
    /** How long a batch stays open for more requests; 0 still merges requests made in the same tick. */
    windowMs: number;
    newCall(): SharedCall;
    /** Makes `call` the one in flight for `key`. */
    register(key: string, call: SharedCall): Deferred<CacheEntry>;
    /** Starts the batch's upstream call. */
    run(endpoint: AnyEndpoint, started: Started, items: Array<Part<unknown>>): void;
}

/**
 * The batch window of batched endpoints (prices): entries missed by requests within `windowMs` of each other are
 * fetched in one upstream call, so several tools asking at once pay one credit.
 */
export class BatchWindow {
    private readonly open = new Map<string, Batch>();

    constructor(private readonly options: BatchWindowOptions) {}

    /** Adds the items to the endpoint's open batch, opening one (and its window timer) if there is none. */
    enqueue(endpoint: AnyEndpoint, items: Array<Part<unknown>>): Started {
        let batch = this.open.get(endpoint.name);
        if (batch === undefined) {
            const opened: Batch = {
                endpoint,
                call: this.options.newCall(),
                items: [],
                results: [],
                // A real timer, not the injected clock: this is a scheduling window of a few ms, not a time anyone reads.
                timer: setTimeout(() => this.fire(opened), this.options.windowMs)
            };
            batch = opened;
            this.open.set(endpoint.name, batch);
        }
        const results = items.map(item => this.options.register(item.key, batch.call));
        batch.call.cover(items.map(item => item.key));
        batch.items.push(...items);
        batch.results.push(...results);
        return { call: batch.call, results };
    }

    /** Drops the batch of `call` before it fires: every request in it has gone. */
    cancel(call: SharedCall): void {
        for (const [name, batch] of this.open) {
            if (batch.call === call) {
                clearTimeout(batch.timer);
                this.open.delete(name);
            }
        }
    }

    private fire(batch: Batch): void {
        if (this.open.get(batch.endpoint.name) === batch) this.open.delete(batch.endpoint.name);
        if (batch.call.abandoned) return;
        this.options.run(batch.endpoint, batch, batch.items);
    }
}
