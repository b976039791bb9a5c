import { randomBytes } from 'node:crypto';
import type { Claim, SharedTier } from '../cache/shared-tier.js';
import type { CacheEntry } from '../cache/store.js';
import { Script, type RedisLink } from './link.js';

/** Bumped with the cache key scheme or the entry encoding, so replicas of different versions never misread each other. */
export const KEY_PREFIX = 'crypto-intel:v1:';

/**
 * Per key, atomically: a fresh entry is returned as it is and no lock is taken; otherwise the stored value (a stale
 * candidate, or '') is returned together with whether `SET NX PX` won the key's fetch lock. Atomic, so a replica
 * either sees the value another one published or finds that one still holding the lock, never a gap in between.
 * KEYS: n entry keys, then their n lock keys. ARGV: now ms, max age ms, owner id, lock TTL ms.
 */
const CLAIM = new Script(
    'cryptoIntelClaim',
    `
local n = #KEYS / 2
local now = tonumber(ARGV[1])
local maxAge = tonumber(ARGV[2])
local out = {}
for i = 1, n do
    local value = redis.call('GET', KEYS[i])
    local fresh = 0
    if value then
        local expires, fetched = string.match(value, '^(%d+):(%d+):')
        if expires and tonumber(expires) > now and now - tonumber(fetched) < maxAge then fresh = 1 end
    end
    local owned = 0
    if fresh == 0 and redis.call('SET', KEYS[n + i], ARGV[3], 'NX', 'PX', ARGV[4]) then owned = 1 end
    out[i] = { value or '', fresh, owned }
end
return out
`
);

/** Deletes each lock only if this owner still holds it: a lock that expired and was taken by another replica stays. */
const RELEASE = new Script(
    'cryptoIntelRelease',
    `
for i = 1, #KEYS do
    if redis.call('GET', KEYS[i]) == ARGV[1] then redis.call('DEL', KEYS[i]) end
end
return 0
`
);

export interface RedisTierOptions {
    /** How long after `fetchedAt` an entry may still be served stale: the Redis TTL of every entry. */
    staleMaxMs: number;
    lockTtlMs: number;
}

/** `expiresAt:fetchedAt:json`, so the claim script can judge freshness without decoding the value. */
function encode(entry: CacheEntry): string {
    return `${Math.floor(entry.expiresAt)}:${Math.floor(entry.fetchedAt)}:${JSON.stringify(entry.value ?? null)}`;
}

function decode(text: string): CacheEntry | undefined {
    const match = /^(\d+):(\d+):/.exec(text);
    if (match === null) return undefined;
    try {
        return { expiresAt: Number(match[1]), fetchedAt: Number(match[2]), value: JSON.parse(text.slice(match[0].length)) as unknown };
    } catch {
        return undefined;
    }
}

/**
 * The shared tier on Redis. Entries carry `fetchedAt`/`expiresAt` and live in Redis until they are too old to be
 * served stale (Redis TTL = fetchedAt + stale max age - now), so every replica gets the same TTLs and the same
 * stale-if-error candidates. Fetch locks are `SET NX PX` keys owned by this replica's random id.
 */
export class RedisTier implements SharedTier {
    readonly lockTtlMs: number;
    private readonly owner = randomBytes(8).toString('hex');

    constructor(
        private readonly link: RedisLink,
        private readonly options: RedisTierOptions
    ) {
        this.lockTtlMs = options.lockTtlMs;
    }

    async claim(keys: readonly string[], nowMs: number, maxAgeMs: number): Promise<Map<string, Claim>> {
        const claims = new Map<string, Claim>();
        if (keys.length === 0) return claims;
        const redisKeys = [...keys.map(key => `${KEY_PREFIX}e:${key}`), ...keys.map(key => `${KEY_PREFIX}l:${key}`)];
        const reply = await this.link.run(
            client => CLAIM.run(client, redisKeys, [Math.floor(nowMs), Math.max(0, Math.floor(maxAgeMs)), this.owner, this.lockTtlMs]),
            null
        );
        // Unavailable: claim nothing and own everything, i.e. behave as a replica on its own.
        if (!Array.isArray(reply)) return new Map(keys.map(key => [key, { fresh: false, owned: true }]));
        keys.forEach((key, i) => {
            const [value, fresh, owned] = (reply[i] ?? []) as [unknown, unknown, unknown];
            const entry = typeof value === 'string' && value !== '' ? decode(value) : undefined;
            claims.set(key, { ...(entry === undefined ? {} : { entry }), fresh: entry !== undefined && fresh === 1, owned: owned === 1 });
        });
        return claims;
    }

    async publish(entries: ReadonlyArray<[string, CacheEntry]>, owned: readonly string[], nowMs: number): Promise<void> {
        const writes = entries.flatMap(([key, entry]) => {
            const keepMs = Math.floor(Math.max(entry.expiresAt, entry.fetchedAt + this.options.staleMaxMs) - nowMs);
            return keepMs > 0 ? [{ key: `${KEY_PREFIX}e:${key}`, text: encode(entry), keepMs }] : [];
        });
        if (writes.length > 0) {
            await this.link.run(async client => {
                const pipeline = client.pipeline();
                for (const write of writes) pipeline.set(write.key, write.text, 'PX', write.keepMs);
                const results = (await pipeline.exec()) ?? [];
                const failed = results.find(([error]) => error !== null)?.[0];
                if (failed) throw failed;
            }, undefined);
        }
        // After the writes: a replica that finds the lock gone then finds the value.
        await this.release(owned);
    }

    async release(owned: readonly string[]): Promise<void> {
        if (owned.length === 0) return;
        await this.link.run(
            client =>
                RELEASE.run(
                    client,
                    owned.map(key => `${KEY_PREFIX}l:${key}`),
                    [this.owner]
                ),
            undefined
        );
    }
}
