import type { Clock } from '../clock.js';

/** Beyond this many callers, buckets that have filled up again (idle callers) are forgotten. */
const MAX_TRACKED = 10_000;

interface Bucket {
    tokens: number;
    at: number;
}

export type RateDecision = { ok: true } | { ok: false; retryAfterS: number };

/**
 * Requests per minute per caller, as a token bucket: a caller may burst up to a minute's allowance, then gets one
 * request per 60/rate seconds. Per replica: behind a load balancer the deployment allows N times the rate.
 */
export class RateLimiter {
    private readonly buckets = new Map<string, Bucket>();
    private readonly perMs: number;

    /** `perMinute` 0 turns the limit off. */
    constructor(
        private readonly perMinute: number,
        private readonly clock: Clock
    ) {
        this.perMs = perMinute / 60_000;
    }

    take(caller: string): RateDecision {
        if (this.perMinute <= 0) return { ok: true };
        const now = this.clock.now();
        const bucket = this.buckets.get(caller) ?? { tokens: this.perMinute, at: now };
        bucket.tokens = Math.min(this.perMinute, bucket.tokens + Math.max(0, now - bucket.at) * this.perMs);
        bucket.at = now;
        if (!this.buckets.has(caller)) this.remember(caller, bucket, now);
        if (bucket.tokens >= 1) {
            bucket.tokens -= 1;
            return { ok: true };
        }
        return { ok: false, retryAfterS: Math.max(1, Math.ceil((1 - bucket.tokens) / this.perMs / 1000)) };
    }

    private remember(caller: string, bucket: Bucket, now: number): void {
        if (this.buckets.size >= MAX_TRACKED) {
            for (const [key, old] of this.buckets) {
                if (old.tokens + (now - old.at) * this.perMs >= this.perMinute) this.buckets.delete(key);
            }
        }
        this.buckets.set(caller, bucket);
    }
}
