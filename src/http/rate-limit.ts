import type { Clock } from '../clock.js';

/** Beyond this many callers, buckets that have filled up again (idle callers) are forgotten. */
const MAX_TRACKED = 10_000;

interface Bucket {
    tokens: number;
    at: number;
}

export type RateDecision = { ok: true } | { ok: false; retryAfterS: number };

/**
 * Units per minute per caller (tool calls per token on /mcp, failed bearer attempts per address), as a token bucket:
 * a caller may burst up to a minute's allowance, then gets one unit per 60/rate seconds. Per replica: behind a load
 * balancer the deployment allows N times the rate.
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

    /** Whether the limit is on. */
    get enabled(): boolean {
        return this.perMinute > 0;
    }

    /** The most units one take may ask for: a minute's allowance (a bigger take could never pass). */
    get burst(): number {
        return this.perMinute;
    }

    /** Spends `cost` units of the caller's allowance, all or none. */
    take(caller: string, cost = 1): RateDecision {
        if (this.perMinute <= 0) return { ok: true };
        const bucket = this.refill(caller);
        if (bucket.tokens >= cost) {
            bucket.tokens -= cost;
            return { ok: true };
        }
        return { ok: false, retryAfterS: Math.max(1, Math.ceil((Math.min(cost, this.perMinute) - bucket.tokens) / this.perMs / 1000)) };
    }

    /**
     * Whether the caller has a unit left, spending nothing. A caller it does not track has its whole allowance, and one
     * whose allowance has filled up again is forgotten: a check, made on every request, remembers nobody.
     */
    check(caller: string): RateDecision {
        if (this.perMinute <= 0 || !this.buckets.has(caller)) return { ok: true };
        const bucket = this.refill(caller);
        if (bucket.tokens >= this.perMinute) this.buckets.delete(caller);
        return bucket.tokens >= 1
            ? { ok: true }
            : { ok: false, retryAfterS: Math.max(1, Math.ceil((1 - bucket.tokens) / this.perMs / 1000)) };
    }

    /** Callers short of their full allowance, or not checked since it filled up again: 0 when nobody has spent any. */
    get tracked(): number {
        return this.buckets.size;
    }

    private refill(caller: string): Bucket {
        const now = this.clock.now();
        const bucket = this.buckets.get(caller) ?? { tokens: this.perMinute, at: now };
        bucket.tokens = Math.min(this.perMinute, bucket.tokens + Math.max(0, now - bucket.at) * this.perMs);
        bucket.at = now;
        if (!this.buckets.has(caller)) this.remember(caller, bucket, now);
        return bucket;
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
