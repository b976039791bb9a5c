import type { RedisLink } from '../redis/link.js';
import { emptyCacheCounts, emptyMonth, emptyUsage, type CacheCounts, type UsageData } from './file.js';

/** Every usage key starts with this, next to the cache tier's `crypto-intel:v1:` keys. */
export const USAGE_KEY_PREFIX = 'crypto-intel:v1:usage:';
/** Month figures outlive their month by a month (the report reads this month and, near midnight, the last). */
const MONTH_TTL_MS = 62 * 86_400_000;
const DAY_TTL_MS = 3 * 86_400_000;
/** Off the call path: a flush or a get_usage call may wait this long for Redis (or a call's own wait, if longer). */
const USAGE_TIMEOUT_MS = 1_000;
const MAX_FIELD = 128;
const CACHE_FIELDS = Object.keys(emptyCacheCounts()) as Array<keyof CacheCounts>;

/** Where a team deployment's replicas add up their usage figures; see `RedisUsageLedger`. */
export interface UsageLedger {
    /** Adds `delta` to the shared figures; false when Redis could not take it (the caller keeps it for the next try). */
    add(delta: UsageData): Promise<boolean>;
    /** The shared figures of `month` and `day`, and every key's last success; null when Redis is unavailable. */
    read(month: string, day: string): Promise<UsageData | null>;
    /** Marks a quota threshold as warned about for `month`: true only for the first replica to do so; null when Redis is unavailable. */
    claimWarning(month: string, threshold: number): Promise<boolean | null>;
}

const monthKey = (month: string): string => `${USAGE_KEY_PREFIX}month:${month}`;
const dayKey = (day: string): string => `${USAGE_KEY_PREFIX}day:${day}`;
const warnedKey = (month: string): string => `${USAGE_KEY_PREFIX}month:${month}:warned`;
const LAST_SUCCESS_KEY = `${USAGE_KEY_PREFIX}last-success`;

/** A counter read back from Redis, trusted only as a whole non-negative number. */
const counter = (raw: string | undefined): number | null => {
    const value = Number(raw);
    return Number.isSafeInteger(value) && value >= 0 ? value : null;
};

/**
 * Usage figures in Redis, shared by every replica: one hash per month (`credits:<fingerprint>`,
 * `cache:<endpoint>:<counter>`), one per day (`<fingerprint>`), one of last successes, and a set of the quota
 * thresholds already warned about. Replicas add with HINCRBY, so nothing is overwritten; every key expires.
 * Fingerprints only: no key reaches Redis. Through `RedisLink.run`, so a Redis outage never fails a call.
 */
export class RedisUsageLedger implements UsageLedger {
    private readonly timeoutMs: number;

    constructor(private readonly link: RedisLink) {
        this.timeoutMs = Math.max(USAGE_TIMEOUT_MS, link.callTimeoutMs);
    }

    add(delta: UsageData): Promise<boolean> {
        return this.link.run(
            async client => {
                const batch = client.multi();
                for (const [month, record] of Object.entries(delta.months)) {
                    for (const [fingerprint, credits] of Object.entries(record.credits))
                        batch.hincrby(monthKey(month), `credits:${fingerprint}`, credits);
                    for (const [endpoint, counts] of Object.entries(record.cache)) {
                        for (const field of CACHE_FIELDS)
                            if (counts[field] > 0) batch.hincrby(monthKey(month), `cache:${endpoint}:${field}`, counts[field]);
                    }
                    batch.pexpire(monthKey(month), MONTH_TTL_MS);
                }
                for (const [day, credits] of Object.entries(delta.days)) {
                    for (const [fingerprint, count] of Object.entries(credits)) batch.hincrby(dayKey(day), fingerprint, count);
                    batch.pexpire(dayKey(day), DAY_TTL_MS);
                }
                for (const [fingerprint, at] of Object.entries(delta.lastSuccess)) batch.hset(LAST_SUCCESS_KEY, fingerprint, String(at));
                if (Object.keys(delta.lastSuccess).length > 0) batch.pexpire(LAST_SUCCESS_KEY, MONTH_TTL_MS);
                const results = await batch.exec();
                return results !== null && results.every(([error]) => error === null);
            },
            false,
            this.timeoutMs
        );
    }

    read(month: string, day: string): Promise<UsageData | null> {
        return this.link.run(
            async client => {
                const [monthHash, dayHash, lastHash, warned] = await Promise.all([
                    client.hgetall(monthKey(month)),
                    client.hgetall(dayKey(day)),
                    client.hgetall(LAST_SUCCESS_KEY),
                    client.smembers(warnedKey(month))
                ]);
                const data = emptyUsage();
                const record = emptyMonth();
                for (const [field, raw] of Object.entries(monthHash)) {
                    const value = counter(raw);
                    if (value === null || field.length > MAX_FIELD) continue;
                    if (field.startsWith('credits:')) record.credits[field.slice('credits:'.length)] = value;
                    else if (field.startsWith('cache:')) {
                        const [, endpoint, name] = field.split(':');
                        if (endpoint && name && (CACHE_FIELDS as string[]).includes(name))
                            (record.cache[endpoint] ??= emptyCacheCounts())[name as keyof CacheCounts] = value;
                    }
                }
                record.warned = warned.map(Number).filter(threshold => Number.isInteger(threshold) && threshold >= 0 && threshold <= 100);
                data.months[month] = record;
                data.days[day] = {};
                for (const [fingerprint, raw] of Object.entries(dayHash)) {
                    const value = counter(raw);
                    if (value !== null && fingerprint.length <= MAX_FIELD) data.days[day][fingerprint] = value;
                }
                for (const [fingerprint, raw] of Object.entries(lastHash)) {
                    const value = counter(raw);
                    if (value !== null && fingerprint.length <= MAX_FIELD) data.lastSuccess[fingerprint] = value;
                }
                return data;
            },
            null,
            this.timeoutMs
        );
    }

    claimWarning(month: string, threshold: number): Promise<boolean | null> {
        return this.link.run(
            async client => {
                const results = await client
                    .multi()
                    .sadd(warnedKey(month), String(threshold))
                    .pexpire(warnedKey(month), MONTH_TTL_MS)
                    .exec();
                // SADD answers 1 when the member is new: this replica is the first to reach the threshold.
                return results?.[0]?.[1] === 1;
            },
            null,
            this.timeoutMs
        );
    }
}
