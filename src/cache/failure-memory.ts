import { isUpstreamError, rememberedFailure, type UpstreamError } from '../api/errors.js';
import type { Clock } from '../clock.js';

/**
 * How long an answer the upstream sent in a format we cannot read is remembered. Asking again within this time would
 * get the same answer and spend another credit on it; after it, a fixed upstream (or a new release) is picked up.
 */
const DRIFT_MEMORY_MS = 60_000;
/**
 * How long "this endpoint is gone" (404) or "not in your plan" (403) is remembered, for the whole endpoint: neither
 * depends on the token asked about, and neither changes by asking again soon.
 */
const ENDPOINT_FAILURE_MEMORY_MS = 60_000;
/** Remembered failures are few in practice; the bound only keeps a hostile upstream from growing the map. */
const MAX_REMEMBERED_FAILURES = 1_000;

/**
 * Failures that asking again soon would only pay for again: a format failure for `DRIFT_MEMORY_MS` per key (the same
 * question gets the same unreadable answer), a missing endpoint or one outside the plan for `ENDPOINT_FAILURE_MEMORY_MS`
 * for the whole endpoint. Outages and rate limits are worth retrying at once, so they are not remembered.
 */
export class FailureMemory {
    /** Per key, or per endpoint as `@<name>`: the failure, and until when it is remembered. */
    private readonly failures = new Map<string, { error: UpstreamError; until: number }>();

    constructor(private readonly clock: Clock) {}

    /** Remembers `error` if it is worth it; returns what the callers get (the error, saying how long it is remembered). */
    remember(endpoint: string, keys: readonly string[], error: unknown): unknown {
        if (!isUpstreamError(error)) return error;
        const now = this.clock.now();
        if (this.failures.size >= MAX_REMEMBERED_FAILURES) this.prune(now);
        if (error.code === 'SCHEMA_DRIFT') {
            for (const key of keys) this.failures.set(key, { error, until: now + DRIFT_MEMORY_MS });
            return rememberedFailure(error, Math.ceil(DRIFT_MEMORY_MS / 1000));
        }
        if (error.code === 'NOT_FOUND' || error.code === 'NOT_IN_PLAN') {
            this.failures.set(`@${endpoint}`, { error, until: now + ENDPOINT_FAILURE_MEMORY_MS });
            return rememberedFailure(error, Math.ceil(ENDPOINT_FAILURE_MEMORY_MS / 1000));
        }
        return error;
    }

    /** The remembered failure of this key, or else of its whole endpoint, saying how much longer it is remembered. */
    recall(key: string, endpoint: string, now: number): UpstreamError | undefined {
        return this.recallOne(key, now) ?? this.recallOne(`@${endpoint}`, now);
    }

    private recallOne(key: string, now: number): UpstreamError | undefined {
        const failure = this.failures.get(key);
        if (failure === undefined) return undefined;
        if (now >= failure.until) {
            this.failures.delete(key);
            return undefined;
        }
        return rememberedFailure(failure.error, Math.ceil((failure.until - now) / 1000));
    }

    private prune(now: number): void {
        for (const [key, failure] of this.failures) if (now >= failure.until) this.failures.delete(key);
        // Still full of live failures: the oldest go first, so the map stays bounded whatever the upstream does.
        for (const key of this.failures.keys()) {
            if (this.failures.size < MAX_REMEMBERED_FAILURES) break;
            this.failures.delete(key);
        }
    }
}
