import type { Clock } from '../clock.js';
import { cancelled, isUpstreamError, type UpstreamError } from './errors.js';

export interface RetryPolicy {
    maxRetries: number;
    /** Full-jitter exponential backoff: a retry waits random() * min(maxMs, baseMs * 2^attempt). */
    backoffBaseMs: number;
    backoffMaxMs: number;
    /** Cool-down for a 429 that names no Retry-After. */
    defaultRetryAfterMs: number;
    /** How long a key whose quota is used up sits out before it is tried again. */
    exhaustedCooldownMs: number;
    /**
     * Most time one call spends waiting for rate-limited keys to rest, all its waits together. Past it the call fails
     * at once with "retry in N s" (the cache then serves a stale answer if it has one) instead of holding the caller.
     */
    maxRateLimitWaitMs: number;
}

export const DEFAULT_RETRY: RetryPolicy = {
    maxRetries: 3,
    backoffBaseMs: 250,
    backoffMaxMs: 4_000,
    defaultRetryAfterMs: 10_000,
    exhaustedCooldownMs: 3_600_000,
    maxRateLimitWaitMs: 3_000
};

/** A Retry-After further out than this is taken as this: a hostile or broken `Retry-After: 1e30` must not park a key forever. */
export const MAX_RETRY_AFTER_MS = 3_600_000;

/** Parse `Retry-After` (delta seconds or an HTTP date) into an absolute time, at most an hour away. */
export function parseRetryAfter(value: string | string[] | undefined, nowMs: number): number | undefined {
    const raw = Array.isArray(value) ? value[0] : value;
    if (raw === undefined || raw.trim() === '') return undefined;
    const seconds = raw.trim();
    if (/^\d+(\.\d+)?(e\+?\d+)?$/i.test(seconds)) return nowMs + Math.min(MAX_RETRY_AFTER_MS, Math.round(Number(seconds) * 1000));
    const date = Date.parse(raw);
    return Number.isNaN(date) ? undefined : Math.min(nowMs + MAX_RETRY_AFTER_MS, Math.max(nowMs, date));
}

/**
 * The retries of one upstream call: how many it has left, how long it may still wait for resting keys, and the
 * waits themselves (on the injected clock), all within the call's deadline (a `clock.now()` time).
 */
export class CallRetries {
    private retries = 0;
    /** Time this call has spent waiting for rate-limited keys, bounded by `maxRateLimitWaitMs`. */
    private waitedForKeysMs = 0;

    constructor(
        private readonly policy: RetryPolicy,
        private readonly clock: Clock,
        private readonly random: () => number,
        private readonly deadline: number,
        private readonly signal: AbortSignal | undefined,
        private readonly endpoint: string
    ) {}

    /** Spends one retry waiting (until `retryAt`, or a backoff), or throws `failure` when none is left in budget or time. */
    async retryOrThrow(failure: UpstreamError, retryAt?: number): Promise<void> {
        if (this.retries >= this.policy.maxRetries) throw failure;
        this.retries += 1;
        if (retryAt === undefined) return this.backoff(failure);
        if (retryAt > this.deadline) throw failure;
        await this.pauseUntil(retryAt);
    }

    /**
     * Waits (one retry) for a key resting until `untilMs`. A caller is never held long for a rate-limited key
     * (`capped`): past a few seconds it hears "retry in N s" at once (and the cache serves what it has), rather than
     * after several Retry-After waits in a row.
     */
    async waitForKey(failure: UpstreamError, untilMs: number, capped: boolean): Promise<void> {
        const waitMs = Math.max(0, untilMs - this.clock.now());
        if (capped && this.waitedForKeysMs + waitMs > this.policy.maxRateLimitWaitMs) throw failure;
        this.waitedForKeysMs += waitMs;
        await this.retryOrThrow(failure, untilMs);
    }

    private async backoff(failure: UpstreamError): Promise<void> {
        const ceiling = Math.min(this.policy.backoffMaxMs, this.policy.backoffBaseMs * 2 ** this.retries);
        const wait = Math.floor(this.random() * ceiling);
        if (this.clock.now() + wait >= this.deadline) throw failure;
        await this.pause(wait);
    }

    /**
     * Sleep until `untilMs` by the clock. Node's timers count from the event loop's cached time, so a sleep can end a
     * millisecond or more before the wall clock gets there; the key would still be resting, and the next turn of the
     * loop would spend a retry (or fail the call) on nothing. Bounded, in case an injected clock's sleep does not move it.
     */
    private async pauseUntil(untilMs: number): Promise<void> {
        for (let turn = 0; turn < 3 && this.clock.now() < untilMs; turn++) await this.pause(untilMs - this.clock.now());
    }

    private async pause(ms: number): Promise<void> {
        try {
            await this.clock.sleep(ms, this.signal);
        } catch (error) {
            if (isUpstreamError(error)) throw error;
            throw cancelled({ endpoint: this.endpoint, cause: error });
        }
    }
}
