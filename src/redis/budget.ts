import { randomBytes } from 'node:crypto';
import { setTimeout as delay } from 'node:timers/promises';
import type { AcquireOptions, ConcurrencyLimiter } from '../api/limiter.js';
import { Script, type RedisLink } from './link.js';
import { KEY_PREFIX } from './tier.js';

const BUDGET_KEY = `${KEY_PREFIX}budget`;
const POLL_FIRST_MS = 2;
const POLL_MAX_MS = 50;

/**
 * A counting semaphore in a sorted set: members are leases, scores their expiry. Expired leases (a replica that
 * died holding one) are swept before counting, so the budget heals by itself. Redis's own clock stamps the leases:
 * replicas' clocks may disagree, Redis's is one.
 * KEYS: the set. ARGV: limit, lease ms, lease id.
 */
const ACQUIRE = new Script(
    'cryptoIntelAcquire',
    `
local time = redis.call('TIME')
local now = tonumber(time[1]) * 1000 + math.floor(tonumber(time[2]) / 1000)
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now)
if redis.call('ZCARD', KEYS[1]) < tonumber(ARGV[1]) then
    redis.call('ZADD', KEYS[1], now + tonumber(ARGV[2]), ARGV[3])
    redis.call('PEXPIRE', KEYS[1], ARGV[2])
    return 1
end
return 0
`
);

export interface SharedBudgetOptions {
    /** Upstream requests in flight at once across every replica. */
    limit: number;
    /** A lease outlives the longest request it can cover (one attempt's timeout) plus a margin. */
    leaseMs: number;
}

/**
 * The upstream concurrency budget shared by the replicas: a request first takes a permit from its replica's
 * local semaphore, then a lease in Redis. While Redis is unavailable the lease is skipped, and each replica is
 * bounded by its local semaphore alone (the budget is then per replica, not per deployment, until Redis is back).
 */
export class SharedBudget implements ConcurrencyLimiter {
    private readonly owner = randomBytes(8).toString('hex');
    private sequence = 0;

    constructor(
        private readonly link: RedisLink,
        private readonly local: ConcurrencyLimiter,
        private readonly options: SharedBudgetOptions
    ) {}

    async acquire(signal: AbortSignal, options?: AcquireOptions): Promise<() => void> {
        const releaseLocal = await this.local.acquire(signal, options);
        let lease: string | null;
        try {
            lease = await this.lease(signal);
        } catch (error) {
            releaseLocal();
            throw error;
        }
        let released = false;
        return () => {
            if (released) return;
            released = true;
            releaseLocal();
            if (lease !== null) void this.link.run(client => client.zrem(BUDGET_KEY, lease), 0);
        };
    }

    /** A lease id, or `null` when Redis cannot be asked (then the local permit alone applies). */
    private async lease(signal: AbortSignal): Promise<string | null> {
        const id = `${this.owner}:${++this.sequence}`;
        let pause = POLL_FIRST_MS;
        for (;;) {
            const granted = await this.link.run(
                client => ACQUIRE.run(client, [BUDGET_KEY], [this.options.limit, this.options.leaseMs, id]),
                null
            );
            if (granted === null) return null;
            if (granted === 1) return id;
            // Jittered, so replicas polling for the same freed slot do not all ask at the same instant.
            try {
                await delay(pause + Math.floor(Math.random() * pause), undefined, { signal });
            } catch {
                // The caller's reason (its timeout or cancellation), as the local semaphore reports it.
                throw signal.reason;
            }
            pause = Math.min(POLL_MAX_MS, pause * 2);
        }
    }
}
