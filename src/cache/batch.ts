import { asSharedWork } from '../api/call-scope.js';
import type { Clock } from '../clock.js';
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
    /** By the clock's `monotonic()`: when its last member stops waiting (Infinity: one of them has no deadline). */
    deadlineAt: number;
    /** By the clock's `monotonic()`: when its last part joined. */
    joinedAt: number;
}

/** One batch of one endpoint (`endpoint.batch(part)`): the batch gathering, and whether one is in flight. */
interface Lane {
    next: Batch | undefined;
    flying: boolean;
}

/**
 * The longest a batch gathered behind another keeps gathering once that one settled, however busy the stream of
 * parts joining it: a joiner waits at most one round trip and this.
 */
const MAX_GATHER_MS = 250;

export interface BatchesOptions {
    clock: Clock;
    /**
     * A batch that gathered while one of its lane was in flight goes out once that one settled and no part has joined
     * it for this long (at most `MAX_GATHER_MS` after the settle), so that the tail of a burst still joins it. A batch
     * with nothing in flight before it never waits.
     */
    quietMs: number;
    newCall(): SharedCall;
    /** Makes `call` the one in flight for `key`. */
    register(key: string, call: SharedCall): Deferred<CacheEntry>;
    /** Runs the batch's upstream call, outside its members' scopes, until `deadlineAt`; settles when the call has. */
    run(endpoint: AnyEndpoint, started: Started, items: Array<Part<unknown>>, deadlineAt: number): Promise<void>;
}

/** Parts joining a batch, and the call and result of each (in `items` order). */
export interface Joined {
    calls: Set<SharedCall>;
    results: Array<Deferred<CacheEntry>>;
}

/**
 * The batches of batched endpoints (prices, token lookups): entries missed by concurrent calls are fetched in one
 * upstream call per batch, so several callers asking at once pay one credit.
 *
 * A batch goes out on the next turn of the event loop when nothing of its lane is in flight: requests made in the
 * same turn share it, and a lone call waits for no window. While one is in flight, new parts gather in the next
 * batch, which goes out when the one in flight settled and the parts stopped coming (`quietMs`): a burst of calls
 * costs about two upstream calls per lane, even when the server takes longer to read it than one round trip.
 */
export class Batches {
    private readonly lanes = new Map<string, Lane>();

    constructor(private readonly options: BatchesOptions) {}

    /** Adds the items to their batches (`endpoint.batch`), opening the ones that are not gathering yet. */
    enqueue(endpoint: AnyEndpoint, items: Array<Part<unknown>>, deadlineAt: number): Joined {
        const joined: Joined = { calls: new Set(), results: [] };
        const now = this.options.clock.monotonic();
        for (const item of items) {
            const name = `${endpoint.name}:${endpoint.batch(item.part)}`;
            let lane = this.lanes.get(name);
            if (lane === undefined) {
                lane = { next: undefined, flying: false };
                this.lanes.set(name, lane);
            }
            let batch = lane.next;
            if (batch === undefined) {
                const opened: Batch = { endpoint, call: this.options.newCall(), items: [], results: [], deadlineAt, joinedAt: now };
                lane.next = batch = opened;
                if (!lane.flying) this.fireNextTurn(name, lane, opened);
            }
            batch.deadlineAt = Math.max(batch.deadlineAt, deadlineAt);
            batch.joinedAt = now;
            const result = this.options.register(item.key, batch.call);
            batch.call.cover([item.key]);
            batch.items.push(item);
            batch.results.push(result);
            joined.calls.add(batch.call);
            joined.results.push(result);
        }
        return joined;
    }

    /** Drops the batch of `call` before it goes out: every request in it has gone. */
    cancel(call: SharedCall): void {
        for (const [name, lane] of this.lanes) {
            if (lane.next?.call !== call) continue;
            lane.next = undefined;
            if (!lane.flying) this.lanes.delete(name);
        }
    }

    /**
     * setImmediate, not a microtask: the requests made in this turn of the event loop, including the microtasks
     * resuming the callers of a batch that just settled, join first. Scheduled outside the caller that opened the
     * batch, so that the lane's chain of batches never carries (and keeps alive) that caller's scope.
     */
    private fireNextTurn(name: string, lane: Lane, batch: Batch): void {
        asSharedWork(this.options.clock, Infinity, () => setImmediate(() => this.fire(name, lane, batch)));
    }

    /** Sends `batch` unless it was cancelled; once it settled, the batch gathered meanwhile follows when its parts stop coming. */
    private fire(name: string, lane: Lane, batch: Batch): void {
        if (lane.next !== batch) return;
        lane.next = undefined;
        lane.flying = true;
        const settled = (): void => {
            lane.flying = false;
            const next = lane.next;
            if (next === undefined) {
                if (this.lanes.get(name) === lane) this.lanes.delete(name);
                return;
            }
            void this.quiet(lane, next).then(() => this.fireNextTurn(name, lane, next));
        };
        void this.options.run(batch.endpoint, batch, batch.items, batch.deadlineAt).then(settled, settled);
    }

    /** Settles once no part has joined `batch` for `quietMs`, `MAX_GATHER_MS` from now at the latest, or once it is cancelled. */
    private async quiet(lane: Lane, batch: Batch): Promise<void> {
        const { clock, quietMs } = this.options;
        const latest = clock.monotonic() + MAX_GATHER_MS;
        for (;;) {
            const waitMs = Math.min(batch.joinedAt + quietMs, latest) - clock.monotonic();
            if (waitMs <= 0 || lane.next !== batch) return;
            await clock.sleep(waitMs);
        }
    }
}
