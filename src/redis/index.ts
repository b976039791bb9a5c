import type { ConcurrencyLimiter } from '../api/http.js';
import type { SharedTier } from '../cache/shared-tier.js';
import type { Logger } from '../logger.js';
import type { Redactor } from '../redact.js';
import { SharedBudget } from './budget.js';
import { RedisLink, type RedisHealth } from './link.js';
import { RedisTier } from './tier.js';

export type { RedisHealth } from './link.js';

/** What a replica shares with the others through Redis. */
export interface SharedServices {
    tier: SharedTier;
    /** Puts the deployment-wide upstream budget behind a replica's own limiter. */
    limiter(local: ConcurrencyLimiter): ConcurrencyLimiter;
    health(): RedisHealth;
    close(): Promise<void>;
}

export interface RedisOptions {
    url: string;
    logger: Logger;
    redactor: Redactor;
    staleMaxAgeSeconds: number;
    /** How long a fetch lock lives, i.e. how long a replica waits for another one's upstream call. */
    lockTtlMs: number;
    /** Upstream requests in flight at once across the deployment. */
    concurrency: number;
    /** How long one upstream attempt may take: a budget lease outlives it. */
    attemptTimeoutMs: number;
}

/**
 * Connects to Redis in the background and returns at once: a replica starts (and answers) whether or not Redis
 * is up, and starts sharing when it is.
 */
export function connectRedis(options: RedisOptions): SharedServices {
    const url = new URL(options.url);
    // A password in the URL is a secret like an API key: any text that echoes it is scrubbed.
    if (url.password !== '') options.redactor.register(decodeURIComponent(url.password));
    const link = new RedisLink(options.url, options.logger);
    const tier = new RedisTier(link, { staleMaxMs: options.staleMaxAgeSeconds * 1000, lockTtlMs: options.lockTtlMs });
    return {
        tier,
        limiter: local => new SharedBudget(link, local, { limit: options.concurrency, leaseMs: options.attemptTimeoutMs + 1_000 }),
        health: () => link.health(),
        close: () => link.close()
    };
}
