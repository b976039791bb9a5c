import type { AuditSink } from '../audit/audit-log.js';
import { RedisStreamAudit } from '../audit/redis-stream.js';
import type { ConcurrencyLimiter } from '../api/limiter.js';
import type { SharedTier } from '../cache/shared-tier.js';
import type { Logger } from '../logger.js';
import type { Redactor } from '../redact.js';
import { RedisUsageLedger, type UsageLedger } from '../usage/redis-ledger.js';
import { SharedBudget } from './budget.js';
import { RedisLink, type HealthPolicy, type RedisHealth, type RedisStats } from './link.js';
import { RedisTier } from './tier.js';

export type { HealthPolicy, RedisHealth, RedisStats } from './link.js';

/** What a replica shares with the others through Redis. */
export interface SharedServices {
    tier: SharedTier;
    /** Puts the deployment-wide upstream budget behind a replica's own limiter. */
    limiter(local: ConcurrencyLimiter): ConcurrencyLimiter;
    health(): RedisHealth;
    /** Credits spent and cache savings, added up over every replica (`get_usage`). */
    usage: UsageLedger;
    /** Key events of every replica in one capped stream, beside each replica's own audit file. */
    audit: AuditSink;
    /** Commands sent, timed out, and skipped while Redis was suspect. */
    stats(): RedisStats;
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
    /** The health probe's timing and hysteresis; the defaults suit production, tests shorten them. */
    health?: Partial<HealthPolicy>;
    /** How long a command on a tool call's path waits (`CRYPTO_INTEL_REDIS_TIMEOUT_MS`). */
    callTimeoutMs?: number;
}

/**
 * Connects to Redis in the background and returns at once: a replica starts (and answers) whether or not Redis
 * is up, and starts sharing when it is.
 */
export function connectRedis(options: RedisOptions): SharedServices {
    const url = new URL(options.url);
    // A password in the URL is a secret like an API key: any text that echoes it is scrubbed.
    if (url.password !== '') options.redactor.register(decodeURIComponent(url.password));
    const link = new RedisLink(options.url, options.logger, options.health, options.callTimeoutMs);
    const tier = new RedisTier(link, { staleMaxMs: options.staleMaxAgeSeconds * 1000, lockTtlMs: options.lockTtlMs });
    return {
        tier,
        limiter: local => new SharedBudget(link, local, { limit: options.concurrency, leaseMs: options.attemptTimeoutMs + 1_000 }),
        health: () => link.health(),
        usage: new RedisUsageLedger(link),
        audit: new RedisStreamAudit(link),
        stats: () => link.stats(),
        close: () => link.close()
    };
}
