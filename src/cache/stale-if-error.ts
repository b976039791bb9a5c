import { isUpstreamError, type ErrorCode } from '../api/errors.js';
import type { Clock } from '../clock.js';
import type { Logger } from '../logger.js';
import type { EndpointStats } from './market-service.js';
import type { CacheEntry, EntryStore } from './store.js';

/**
 * Failures that say nothing about the question itself, only that the upstream cannot answer right now: an older answer
 * is then better than none. Auth, input and not-found errors would be hidden by a stale answer, so they propagate.
 */
const STALE_IF_ERROR_CODES: ReadonlySet<ErrorCode> = new Set<ErrorCode>([
    'UPSTREAM_UNAVAILABLE',
    'UPSTREAM_TIMEOUT',
    'RATE_LIMITED',
    'QUOTA_EXHAUSTED',
    'SCHEMA_DRIFT'
]);

/** One entry's value as answered, with its age. */
export interface Resolved<V> {
    value: V;
    fetchedAt: number;
    /** null when fresh. */
    staleAgeMs: number | null;
}

/** The caller gave up because its time ran out (an `AbortSignal.timeout` behind it), not because it was cancelled. */
export function deadlinePassed(signal: AbortSignal | undefined): boolean {
    return signal?.aborted === true && signal.reason instanceof Error && signal.reason.name === 'TimeoutError';
}

export interface StaleIfErrorOptions {
    store: EntryStore;
    clock: Clock;
    logger: Logger;
    /** How old (since it was fetched) a value may be and still be served. */
    staleMaxMs: number;
}

/** When the upstream fails, an expired entry younger than `staleMaxMs` answers instead, with its age. */
export class StaleIfError {
    constructor(private readonly options: StaleIfErrorOptions) {}

    /**
     * Turns per-entry outcomes into values, replacing failures by stale entries where stale-if-error allows; throws the
     * first failure that has none.
     */
    settle<V>(
        endpoint: string,
        counters: EndpointStats,
        keys: readonly string[],
        outcomes: Array<PromiseSettledResult<CacheEntry<V>>>
    ): Array<Resolved<V>> {
        const resolved: Array<Resolved<V>> = [];
        let stale = 0;
        let oldestMs = 0;
        let cause: ErrorCode | undefined;
        outcomes.forEach((outcome, i) => {
            if (outcome.status === 'fulfilled') {
                resolved.push({ value: outcome.value.value, fetchedAt: outcome.value.fetchedAt, staleAgeMs: null });
                return;
            }
            const fallback = this.fallback<V>(keys[i]!, outcome.reason);
            if (fallback === undefined) throw outcome.reason;
            if (fallback.staleAgeMs !== null) {
                stale++;
                oldestMs = Math.max(oldestMs, fallback.staleAgeMs);
                cause = (outcome.reason as { code: ErrorCode }).code;
            }
            resolved.push(fallback);
        });
        if (stale > 0) {
            counters.staleServed += stale;
            const ageS = Math.floor(oldestMs / 1000);
            this.options.logger.warn('upstream failed; serving stale cached data', { endpoint, code: cause, entries: stale, ageS });
        }
        return resolved;
    }

    private fallback<V>(key: string, error: unknown): Resolved<V> | undefined {
        if (!isUpstreamError(error) || !STALE_IF_ERROR_CODES.has(error.code)) return undefined;
        const entry = this.options.store.peek<V>(key);
        if (entry === undefined) return undefined;
        const now = this.options.clock.now();
        // Another request may have refreshed the entry while this one's call was failing: that is a fresh answer.
        if (now < entry.expiresAt) return { value: entry.value, fetchedAt: entry.fetchedAt, staleAgeMs: null };
        const age = now - entry.fetchedAt;
        return age <= this.options.staleMaxMs ? { value: entry.value, fetchedAt: entry.fetchedAt, staleAgeMs: age } : undefined;
    }
}
