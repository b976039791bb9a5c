import { Redis } from 'ioredis';
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it, vi } from 'vitest';
import { USAGE_KEY_PREFIX } from '../../src/usage/redis-ledger.js';
import { FakeUpstream } from '../fake-upstream/index.js';
import { RedisServer, redisTestsEnabled } from '../helpers/redis-server.js';
import { fakeCredits, session, textOf, type Session } from './support.js';

const KEY_A = 'tm-team-aaaa-1111-7aaa';
const KEY_B = 'tm-team-bbbb-2222-9f2c';
const enabled = redisTestsEnabled();
/** A loaded CI machine can take longer than 150 ms to answer: these tests are about sharing, not about a slow Redis. */
const GENEROUS_REDIS_TIMEOUT = { CRYPTO_INTEL_REDIS_TIMEOUT_MS: '5000' };

interface Usage {
    credits_month: number;
    quota_warnings: number[];
    storage: string;
    shared: boolean;
    keys: Array<{ fingerprint: string; state: string; credits_month: number; credits_today: number }>;
    cache: { answers_from_cache: number };
}

let fake: FakeUpstream;
let redis: RedisServer;
let admin: Redis;
let open: Session[] = [];

/** One replica of a team deployment, joined to the test's Redis, once its connection is up. */
async function replica(env: Record<string, string> = {}): Promise<Session> {
    const opened = await session(fake, {
        env: {
            TOKEN_METRICS_API_KEY: '',
            TOKEN_METRICS_API_KEYS: `${KEY_A},${KEY_B}`,
            CRYPTO_INTEL_REDIS_URL: redis.url,
            ...GENEROUS_REDIS_TIMEOUT,
            ...env
        }
    });
    open.push(opened);
    await vi.waitFor(() => expect(opened.runtime.redis()?.up).toBe(true), { timeout: 5_000 });
    return opened;
}
const usageOf = async (server: Session): Promise<Usage> => (await server.call('get_usage', {})).structuredContent as unknown as Usage;
const keyRow = (usage: Usage, key: string) => usage.keys.find(row => row.fingerprint === `tm-…${key.slice(-4)}`)!;
const answered = (): number => fake.calls.filter(call => call.status > 0).length;

describe.runIf(enabled)('get_usage in a team deployment (Redis)', () => {
    beforeAll(async () => {
        fake = await FakeUpstream.start();
        redis = await RedisServer.start();
        admin = new Redis(redis.url, { lazyConnect: true });
        admin.on('error', () => undefined); // the outage test stops Redis under it
        await admin.connect();
    });
    afterAll(async () => {
        admin?.disconnect();
        await redis?.stop();
        await fake?.close();
    });
    beforeEach(async () => {
        fake.reset();
        await admin.flushall();
    });
    afterEach(async () => {
        for (const server of open) await server.close();
        open = [];
    });

    it('adds up what every replica spent, per key, and keeps it when a replica restarts', async () => {
        const one = await replica();
        const two = await replica();
        fake.revoke(KEY_A);
        await one.call('get_price', { symbols: ['BTC', 'ETH'] });
        await two.call('get_grades', { symbol: 'SOL' });
        await two.call('explain_signal', { symbol: 'ETH' });
        // Each replica adds its figures to Redis a moment after a change (or now, when asked).
        await two.runtime.usage.flush();
        for (const server of [one, two]) {
            const usage = await usageOf(server);
            expect(usage).toMatchObject({ storage: 'redis', shared: true, credits_month: answered() });
            expect(keyRow(usage, KEY_A)).toMatchObject({
                credits_month: fakeCredits(fake.calls, KEY_A),
                credits_today: fakeCredits(fake.calls, KEY_A)
            });
            expect(keyRow(usage, KEY_B)).toMatchObject({
                credits_month: fakeCredits(fake.calls, KEY_B),
                credits_today: fakeCredits(fake.calls, KEY_B)
            });
        }
        expect(keyRow(await usageOf(one), KEY_A).state).toBe('rejected');
        expect(textOf(await two.call('get_usage', {}))).toContain('(All replicas together, kept in Redis.)');

        await one.close();
        open = open.filter(server => server !== one);
        const three = await replica();
        const restarted = await usageOf(three);
        expect(restarted.credits_month).toBe(answered());
        expect(keyRow(restarted, KEY_B).credits_month).toBe(fakeCredits(fake.calls, KEY_B));

        // Fingerprints only: no key reaches Redis.
        const stored = JSON.stringify(
            await Promise.all(
                (await admin.keys(`${USAGE_KEY_PREFIX}*`)).map(async key => [
                    key,
                    (await admin.type(key)) === 'hash' ? await admin.hgetall(key) : await admin.smembers(key)
                ])
            )
        );
        expect(stored).toContain('tm-…9f2c');
        for (const key of [KEY_A, KEY_B]) expect(stored).not.toContain(key.slice(0, 12));
        for (const key of await admin.keys(`${USAGE_KEY_PREFIX}*`)) expect(await admin.pttl(key)).toBeGreaterThan(0);
    });

    it('warns about the quota once for the whole deployment, from the first replica to reach it', async () => {
        const env = { CRYPTO_INTEL_MONTHLY_CREDITS: '4', CRYPTO_INTEL_CACHE_TTLS: 'price=0' };
        const one = await replica(env);
        const two = await replica(env);
        await one.call('get_price', { symbols: ['BTC'] }); // lookup + price: 2 of 4
        await two.call('get_price', { symbols: ['ETH'] }); // 4 of 4 together, 2 each
        expect(answered()).toBe(4);
        await one.runtime.usage.flush();
        await two.runtime.usage.flush();
        const warned = [one, two].flatMap(server =>
            server.logs.filter(line => line.includes("% of this month's Token Metrics credits used"))
        );
        expect(warned.filter(line => line.includes('"msg":"80%'))).toHaveLength(1);
        expect(warned.filter(line => line.includes('"msg":"95%'))).toHaveLength(1);
        expect((await usageOf(two)).quota_warnings).toEqual([80, 95]);
    });

    it("falls back to this replica's own figures, and says so, while Redis is down", async () => {
        const one = await replica();
        await one.call('get_price', { symbols: ['BTC'] });
        expect((await usageOf(one)).credits_month).toBe(answered());
        await redis.stop();
        try {
            await vi.waitFor(() => expect(one.runtime.redis()?.up).toBe(false), { timeout: 10_000 });
            await one.call('get_price', { symbols: ['SOL'] });
            const usage = await usageOf(one);
            expect(usage).toMatchObject({ storage: 'redis', shared: false, credits_month: answered() });
            expect(textOf(await one.call('get_usage', {}))).toContain("(Redis unreachable: this replica's figures only.)");
        } finally {
            await redis.start();
            await admin.connect().catch(() => undefined);
        }
    });
});
