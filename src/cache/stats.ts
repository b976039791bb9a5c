import type { CacheStats, EndpointStats } from './market-service.js';

function emptyStats(): EndpointStats {
    return { hits: 0, misses: 0, sharedHits: 0, coalesced: 0, staleServed: 0, failuresRemembered: 0, upstreamCalls: 0 };
}

/** The cache's counters, one set per endpoint name, in the order the endpoints were given. */
export class Counters {
    private readonly table = new Map<string, EndpointStats>();

    constructor(names: readonly string[]) {
        for (const name of names) this.table.set(name, emptyStats());
    }

    of(name: string): EndpointStats {
        let counters = this.table.get(name);
        if (counters === undefined) this.table.set(name, (counters = emptyStats()));
        return counters;
    }

    /** A copy of every endpoint's counters, with their totals. */
    snapshot(entries: number, sizeChars: number): CacheStats {
        const endpoints: Record<string, EndpointStats> = {};
        const totals = emptyStats();
        for (const [name, counters] of this.table) {
            endpoints[name] = { ...counters };
            for (const field of Object.keys(totals) as Array<keyof EndpointStats>) totals[field] += counters[field];
        }
        return { endpoints: endpoints as CacheStats['endpoints'], totals, entries, sizeChars };
    }
}
