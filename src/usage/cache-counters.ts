import { CACHE_ENDPOINTS, type CacheEndpoint, type CacheStats } from '../cache/market-service.js';
import { emptyCacheCounts, type CacheCounts } from './file.js';
import type { UsageReport } from './report.js';

/** The cache's cumulative counters as last seen, to count what happened since. */
export class CacheCountsSeen {
    private readonly seen = Object.fromEntries(CACHE_ENDPOINTS.map(endpoint => [endpoint, emptyCacheCounts()])) as Record<
        CacheEndpoint,
        CacheCounts
    >;

    /** What each endpoint counted since the last call; endpoints where nothing happened are left out. */
    since(stats: CacheStats): Array<[CacheEndpoint, CacheCounts]> {
        const deltas: Array<[CacheEndpoint, CacheCounts]> = [];
        for (const endpoint of CACHE_ENDPOINTS) {
            const current = stats.endpoints[endpoint];
            if (current === undefined) continue;
            const seen = this.seen[endpoint];
            const delta = emptyCacheCounts();
            for (const field of Object.keys(delta) as Array<keyof CacheCounts>) {
                // A counter that went down was reset (a new cache): count it from zero.
                delta[field] = current[field] >= seen[field] ? current[field] - seen[field] : current[field];
                seen[field] = current[field];
            }
            if (Object.values(delta).every(value => value === 0)) continue;
            deltas.push([endpoint, delta]);
        }
        return deltas;
    }
}

/** A month's cache counters as the report's figures: answers from the cache and the credits they saved. */
export function cacheFigures(cache: Record<string, CacheCounts>): UsageReport['cache'] {
    let answersFromCache = 0;
    let sharedInFlight = 0;
    let saved = 0;
    let staleServed = 0;
    for (const counts of Object.values(cache)) {
        const answered = counts.hits + counts.sharedHits;
        answersFromCache += answered;
        sharedInFlight += counts.coalesced;
        staleServed += counts.staleServed;
        // One upstream call answers `misses / upstreamCalls` entries on average for this endpoint (a price call covers
        // many tokens): an entry answered without one saved that fraction of a credit. Without a miss yet, one each.
        const creditsPerEntry = counts.misses > 0 ? Math.min(1, counts.upstreamCalls / counts.misses) : 1;
        saved += (answered + counts.coalesced) * creditsPerEntry;
    }
    return { answersFromCache, sharedInFlight, creditsSaved: Math.round(saved), staleServed };
}
