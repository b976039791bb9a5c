import { cancelled } from '../api/errors.js';
import { deferred, type Deferred, type SharedCall } from './shared-call.js';
import type { CacheEntry } from './store.js';

interface Flight {
    call: SharedCall;
    result: Deferred<CacheEntry>;
}

/**
 * Entries being fetched, by key: a request for one of them joins the call already under way (one credit for any number
 * of identical questions) instead of starting another.
 */
export class InFlight {
    private readonly flights = new Map<string, Flight>();

    get(key: string): Flight | undefined {
        return this.flights.get(key);
    }

    has(key: string): boolean {
        return this.flights.has(key);
    }

    /** `call` will answer `key`: its result, for the caller that started it and for every request that joins. */
    register(key: string, call: SharedCall): Deferred<CacheEntry> {
        const result = deferred<CacheEntry>();
        this.flights.set(key, { call, result });
        return result;
    }

    /** `call` settled: the next request for these keys reads the cache, or starts afresh. */
    forget(call: SharedCall, keys: readonly string[]): void {
        for (const key of keys) if (this.flights.get(key)?.call === call) this.flights.delete(key);
    }

    /** Every waiter of `call` left before it settled: its keys are free again, and anyone still holding a result gets `CANCELLED`. */
    abandon(call: SharedCall): void {
        for (const key of call.keys) {
            const flight = this.flights.get(key);
            if (flight?.call === call) {
                this.flights.delete(key);
                flight.result.reject(cancelled());
            }
        }
    }
}
