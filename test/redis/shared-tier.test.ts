import { Redis } from 'ioredis';
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it, vi } from 'vitest';
import { upstreamUnavailable } from '../../src/api/errors.js';
import { Semaphore } from '../../src/api/limiter.js';
import { Redactor } from '../../src/redact.js';
import { connectRedis, type SharedServices } from '../../src/redis/index.js';
import { KEY_PREFIX } from '../../src/redis/tier.js';
import { harness, type Harness } from '../cache/helpers.js';
import { FakeClock, RecordingLogger } from '../cache/fakes.js';
import { freePort } from '../helpers/ports.js';
import { RedisServer, redisTestsEnabled } from '../helpers/redis-server.js';
import { DAILY_OHLCV, MOONSHOTS, PRICES, TM_GRADES, TOKENS } from '../../src/endpoints/registry.js';

const SECOND = 1000;
const enabled = redisTestsEnabled();

let redis: RedisServer;
let admin: Redis;
const opened: SharedServices[] = [];

/** One replica: a cache with its own fake upstream and logger, joined to the test's Redis. */
function replica(options: { url?: string; lockTtlMs?: number; clock?: FakeClock } = {}): Harness & { shared: SharedServices } {
    const logger = new RecordingLogger();
    const shared = connectRedis({
        url: options.url ?? redis.url,
        logger,
        redactor: new Redactor(),
        staleMaxAgeSeconds: 24 * 3600,
        lockTtlMs: options.lockTtlMs ?? 5_000,
        concurrency: 2,
        attemptTimeoutMs: 5_000,
        // These tests are about sharing and outages, not about a slow Redis: a loaded machine may take over 150 ms.
        callTimeoutMs: 5_000
    });
    opened.push(shared);
    return { ...harness({ shared: shared.tier }, { logger, ...(options.clock ? { clock: options.clock } : {}) }), shared };
}

/** Resolves once the replica's Redis connection is ready, so a test starts from a known state. */
async function connected(shared: SharedServices): Promise<void> {
    for (let i = 0; i < 500 && !shared.health().up; i++) await new Promise(resolve => setTimeout(resolve, 10));
    expect(shared.health().up).toBe(true);
}

/** Lets pending promise callbacks run, plus a few Redis round trips: only before checking that something did NOT happen. */
const turn = (ms = 30): Promise<void> => new Promise(resolve => setTimeout(resolve, ms));

/**
 * Waits until Redis holds a key of `kind` (`e` an entry, `l` a fetch lock): a replica publishes in the background, and
 * on a loaded machine that can take longer than any fixed pause.
 */
const inRedis = (kind: 'e' | 'l'): Promise<void> =>
    vi.waitFor(async () => expect((await admin.keys(`${KEY_PREFIX}${kind}:*`)).length).toBeGreaterThan(0), {
        timeout: 10_000,
        interval: 10
    });

describe.runIf(enabled)('the Redis tier shared by replicas', () => {
    beforeAll(async () => {
        redis = await RedisServer.start();
        admin = new Redis(redis.url, { lazyConnect: true });
        await admin.connect();
    });

    afterEach(async () => {
        await Promise.all(opened.splice(0).map(shared => shared.close()));
    });

    afterAll(async () => {
        admin?.disconnect();
        await redis?.stop();
    });

    beforeEach(async () => {
        await admin.flushall();
    });

    it('answers a question on one replica from the upstream call another one made', async () => {
        const clock = new FakeClock();
        const a = replica({ clock });
        const b = replica({ clock });
        await Promise.all([connected(a.shared), connected(b.shared)]);
        const first = await a.service.get(TM_GRADES, { ids: [3375] });
        await inRedis('e');
        const second = await b.service.get(TM_GRADES, { ids: [3375] });
        expect(a.inner.count() + b.inner.count()).toBe(1);
        expect(second).toEqual(first);
        expect(b.service.stats().endpoints.tmGrades).toMatchObject({ misses: 1, sharedHits: 1, upstreamCalls: 0 });
        // Now local on B: no Redis round trip the second time.
        await b.service.get(TM_GRADES, { ids: [3375] });
        expect(b.service.stats().endpoints.tmGrades).toMatchObject({ hits: 1, sharedHits: 1 });
    });

    it('makes a replica wait for the fetch another one has in flight instead of calling the upstream', async () => {
        const a = replica();
        const b = replica();
        await Promise.all([connected(a.shared), connected(b.shared)]);
        const release = a.inner.hold();
        const fromA = a.service.get(MOONSHOTS, { type: 'active', limit: 5 });
        await inRedis('l');
        const fromB = b.service.get(MOONSHOTS, { type: 'active', limit: 5 });
        await turn(60);
        expect(b.inner.count()).toBe(0);
        release();
        const [answerA, answerB] = await Promise.all([fromA, fromB]);
        expect(answerB.data).toEqual(answerA.data);
        expect(a.inner.count() + b.inner.count()).toBe(1);
    });

    it('lets a waiting replica take over when the fetching one fails, and fetches only once per failure', async () => {
        const a = replica();
        const b = replica();
        await Promise.all([connected(a.shared), connected(b.shared)]);
        a.inner.failure = upstreamUnavailable('HTTP 503');
        const release = a.inner.hold();
        const fromA = a.service.get(DAILY_OHLCV, { id: 3375, days: 7 });
        await inRedis('l');
        const fromB = b.service.get(DAILY_OHLCV, { id: 3375, days: 7 });
        await turn();
        release();
        await expect(fromA).rejects.toMatchObject({ code: 'UPSTREAM_UNAVAILABLE' });
        expect((await fromB).data).toHaveLength(1);
        expect([a.inner.count(), b.inner.count()]).toEqual([1, 1]);
    });

    it('fetches itself once the lock of a replica that died has expired', async () => {
        const b = replica({ lockTtlMs: 200 });
        await connected(b.shared);
        // A replica that took the lock and died: nobody will ever publish the value or release the lock.
        await admin.set(`${KEY_PREFIX}l:moonshots:past`, 'dead-replica', 'PX', 200);
        const answer = await b.service.get(MOONSHOTS, { type: 'past', limit: 3 });
        expect(answer.data).toHaveLength(3);
        expect(b.inner.count()).toBe(1);
    });

    it('keeps stale candidates in Redis, so another replica serves them when the upstream fails', async () => {
        const clock = new FakeClock();
        const a = replica({ clock });
        const b = replica({ clock });
        await Promise.all([connected(a.shared), connected(b.shared)]);
        const fresh = await a.service.get(PRICES, { ids: [3375] });
        await inRedis('e');
        clock.advance(90 * SECOND);
        b.inner.failure = upstreamUnavailable('HTTP 503');
        const stale = await b.service.get(PRICES, { ids: [3375] });
        expect(stale.data).toEqual(fresh.data);
        expect(stale.staleAgeS).toBe(90);
        expect(b.inner.count()).toBe(1);
        expect(await admin.pttl(`${KEY_PREFIX}e:price:3375`)).toBeGreaterThan(23 * 3600 * SECOND);
    });

    it('applies its own, shorter TTL to an entry another replica stored', async () => {
        const clock = new FakeClock();
        const a = replica({ clock });
        const b = { ...harness({ shared: a.shared.tier, ttlSeconds: { price: 10 } }, { clock }) };
        await connected(a.shared);
        await a.service.get(PRICES, { ids: [3375] });
        await inRedis('e');
        clock.advance(30 * SECOND);
        await b.service.get(PRICES, { ids: [3375] });
        expect(b.inner.count()).toBe(1);
    });

    it('ignores an entry of the wrong shape and fetches the value itself', async () => {
        const clock = new FakeClock();
        const b = replica({ clock });
        await connected(b.shared);
        const now = clock.now();
        await admin.set(`${KEY_PREFIX}e:moonshots:active`, `${now + 60_000}:${now}:{"not":"a list"}`, 'PX', 60_000);
        const answer = await b.service.get(MOONSHOTS, { type: 'active', limit: 2 });
        expect(answer.data).toHaveLength(2);
        expect(b.inner.count()).toBe(1);
    });

    it('discards a shared entry whose rows fail the domain schema, with a warning, and serves the call', async () => {
        const clock = new FakeClock();
        const b = replica({ clock });
        await connected(b.shared);
        const now = clock.now();
        await admin.set(`${KEY_PREFIX}e:tokens:symbol:BTC`, `${now + 60_000}:${now}:[42]`, 'PX', 60_000);
        const answer = await b.service.get(TOKENS, { symbols: ['BTC'] });
        expect(answer.data.map(token => token.tokenId)).toEqual([3375]);
        expect(b.inner.count('tokens')).toBe(1);
        expect(b.logger.warnings.map(line => line.msg)).toContain('shared cache entry ignored: unexpected value shape');
    });

    it('keeps its scripts working after Redis forgets them (a restart, SCRIPT FLUSH)', async () => {
        const clock = new FakeClock();
        const a = replica({ clock });
        const b = replica({ clock });
        await Promise.all([connected(a.shared), connected(b.shared)]);
        await a.service.get(PRICES, { ids: [3375] });
        await inRedis('e');
        await admin.script('FLUSH');
        // B's claim runs the script Redis no longer has: sent again in full, it finds A's entry.
        await b.service.get(PRICES, { ids: [3375] });
        expect(a.inner.count() + b.inner.count()).toBe(1);
        await admin.script('FLUSH');
        const budget = b.shared.limiter(new Semaphore(1));
        (await budget.acquire(new AbortController().signal))();
        expect(await admin.zcard(`${KEY_PREFIX}budget`)).toBe(0);
    });

    it('shares one upstream budget: a replica waits while the others hold every lease', async () => {
        const a = replica();
        const b = replica();
        await Promise.all([connected(a.shared), connected(b.shared)]);
        const budgetA = a.shared.limiter(new Semaphore(2));
        const budgetB = b.shared.limiter(new Semaphore(2));
        const signal = new AbortController().signal;
        const held = [await budgetA.acquire(signal), await budgetA.acquire(signal)];
        let granted = false;
        const waiting = budgetB.acquire(signal).then(release => {
            granted = true;
            return release;
        });
        await turn(100);
        expect(granted).toBe(false);
        held[0]!();
        const release = await waiting;
        expect(granted).toBe(true);
        release();
        held[1]!();
        expect(await admin.zcard(`${KEY_PREFIX}budget`)).toBe(0);
    });

    it('gives up waiting for a lease when the caller aborts', async () => {
        const a = replica();
        await connected(a.shared);
        const budget = a.shared.limiter(new Semaphore(4));
        const signal = new AbortController().signal;
        const held = [await budget.acquire(signal), await budget.acquire(signal)];
        const controller = new AbortController();
        const waiting = budget.acquire(controller.signal);
        controller.abort(new Error('caller gave up'));
        await expect(waiting).rejects.toThrow('caller gave up');
        for (const release of held) release();
    });

    it('works from its local tier and the upstream while Redis is unreachable, and warns once', async () => {
        const dead = `redis://127.0.0.1:${await freePort()}`;
        const a = replica({ url: dead });
        await a.service.get(PRICES, { ids: [1] });
        await a.service.get(PRICES, { ids: [2] });
        await a.service.get(PRICES, { ids: [1] });
        expect(a.inner.count()).toBe(2);
        const budget = a.shared.limiter(new Semaphore(1));
        const release = await budget.acquire(new AbortController().signal);
        release();
        await turn(300);
        expect(a.shared.health().up).toBe(false);
        expect(a.logger.warnings.filter(line => line.msg.startsWith('Redis unavailable'))).toHaveLength(1);
    });
});
