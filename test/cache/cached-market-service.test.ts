import { describe, expect, it } from 'vitest';
import { allKeysRevoked, quotaExhausted, rateLimited, schemaDrift, upstreamUnavailable, type UpstreamError } from '../../src/api/errors.js';
import { DEFAULT_TTL_SECONDS } from '../../src/cache/ttl.js';
import { harness, settle } from './helpers.js';
import {
    DAILY_OHLCV,
    FUNDAMENTAL_GRADES,
    MOONSHOTS,
    PRICES,
    TECHNOLOGY_GRADES,
    TM_GRADES,
    TOKENS,
    TRADING_SIGNALS
} from '../../src/endpoints/registry.js';

const SECOND = 1000;

describe('TTL', () => {
    it('answers a repeated question from the cache within its TTL and asks again after it', async () => {
        const { service, inner, clock } = harness();
        const first = await service.get(PRICES, { ids: [3375] });
        clock.advance(59 * SECOND);
        const second = await service.get(PRICES, { ids: [3375] });
        expect(inner.count('prices')).toBe(1);
        expect(second).toEqual(first);
        expect(second.staleAgeS).toBeNull();
        expect(second.fetchedAt).toBe(first.fetchedAt);

        clock.advance(2 * SECOND);
        const third = await service.get(PRICES, { ids: [3375] });
        expect(inner.count('prices')).toBe(2);
        expect(third.fetchedAt).toBe(clock.now());
        expect(service.stats().endpoints.prices).toMatchObject({ hits: 1, misses: 2, upstreamCalls: 2 });
    });

    it('keeps one TTL per endpoint and applies overrides', async () => {
        const { service, inner, clock } = harness({ ttlSeconds: { grades: 10 } });
        await service.get(TM_GRADES, { ids: [3375] });
        await service.get(MOONSHOTS, { type: 'active', limit: 5 });
        clock.advance(11 * SECOND);
        await service.get(TM_GRADES, { ids: [3375] });
        await service.get(MOONSHOTS, { type: 'active', limit: 5 });
        expect(inner.count('tmGrades')).toBe(2);
        expect(inner.count('moonshots')).toBe(1);
        clock.advance(DEFAULT_TTL_SECONDS.moonshots * SECOND);
        await service.get(MOONSHOTS, { type: 'active', limit: 5 });
        expect(inner.count('moonshots')).toBe(2);
    });
});

describe('coalescing', () => {
    it('sends 50 concurrent identical requests upstream once', async () => {
        const { service, inner } = harness();
        const release = inner.hold();
        const answers = Promise.all(Array.from({ length: 50 }, () => service.get(TM_GRADES, { ids: [3375, 3306] })));
        await settle();
        release();
        const results = await answers;
        expect(inner.count('tmGrades')).toBe(1);
        expect(new Set(results.map(result => JSON.stringify(result)))).toHaveProperty('size', 1);
        expect(results[0]!.data).toHaveLength(2);
        expect(service.stats().endpoints.tmGrades).toMatchObject({ misses: 2, coalesced: 98, upstreamCalls: 1 });
    });

    it('sends only the part of an overlapping request that is not already in flight', async () => {
        const { service, inner } = harness();
        const release = inner.hold();
        const first = service.get(TRADING_SIGNALS, { ids: [3375, 3306], days: 7 });
        const second = service.get(TRADING_SIGNALS, { ids: [3306, 3988], days: 7 });
        await settle();
        release();
        const [a, b] = await Promise.all([first, second]);
        expect(inner.calls.map(call => call.params)).toEqual([
            { ids: [3375, 3306], days: 7 },
            { ids: [3988], days: 7 }
        ]);
        expect(a.data.map(row => row.tokenId)).toEqual([3375, 3306, 3375, 3306]);
        expect(b.data.every(row => row.tokenId === 3306 || row.tokenId === 3988)).toBe(true);
        expect(b.data.map(row => row.date)).toEqual(['2026-01-15', '2026-01-15', '2026-01-14', '2026-01-14']);
    });
});

describe('price batching', () => {
    it('merges 25 concurrent single-id requests into one upstream call and splits the answer back', async () => {
        const { service, inner } = harness();
        const ids = Array.from({ length: 25 }, (_, i) => 1000 + i);
        inner.missingPrices.add(1007);
        const results = await Promise.all(ids.map(id => service.get(PRICES, { ids: [id] })));

        expect(inner.count('prices')).toBe(1);
        expect(inner.calls[0]!.params).toEqual({ ids });
        results.forEach((result, i) => {
            const id = ids[i]!;
            if (id === 1007) expect(result.data).toEqual([]);
            else expect(result.data).toEqual([{ tokenId: id, name: `Token ${id}`, symbol: `T${id}`, priceUsd: id / 100 }]);
        });
        expect(service.stats().endpoints.prices).toMatchObject({ misses: 25, upstreamCalls: 1 });
    });

    it('caches an id the upstream omits as absent for the price TTL', async () => {
        const { service, inner, clock } = harness();
        inner.missingPrices.add(42);
        expect((await service.get(PRICES, { ids: [42, 3375] })).data.map(row => row.tokenId)).toEqual([3375]);
        expect((await service.get(PRICES, { ids: [42] })).data).toEqual([]);
        expect(inner.count('prices')).toBe(1);
        clock.advance(DEFAULT_TTL_SECONDS.price * SECOND + 1);
        await service.get(PRICES, { ids: [42] });
        expect(inner.count('prices')).toBe(2);
    });

    it('gives every caller of a failed batch the error', async () => {
        const { service, inner } = harness();
        inner.failure = upstreamUnavailable('HTTP 503');
        const outcomes = await Promise.allSettled([
            service.get(PRICES, { ids: [1] }),
            service.get(PRICES, { ids: [2] }),
            service.get(PRICES, { ids: [3] })
        ]);
        expect(inner.count('prices')).toBe(1);
        expect(outcomes.map(outcome => outcome.status === 'rejected' && (outcome.reason as UpstreamError).code)).toEqual([
            'UPSTREAM_UNAVAILABLE',
            'UPSTREAM_UNAVAILABLE',
            'UPSTREAM_UNAVAILABLE'
        ]);
    });

    it('rejects a bad id before it can join a batch and fail the other callers', async () => {
        const { service, inner } = harness();
        const bad = service.get(PRICES, { ids: [-1] });
        const good = service.get(PRICES, { ids: [3375] });
        await expect(bad).rejects.toMatchObject({ code: 'INVALID_INPUT' });
        expect((await good).data).toHaveLength(1);
        expect(inner.calls[0]!.params).toEqual({ ids: [3375] });
    });
});

describe('stale-if-error', () => {
    it('serves an expired value with its age when the upstream is down', async () => {
        const { service, inner, clock, logger } = harness();
        const fresh = await service.get(PRICES, { ids: [3375] });
        clock.advance(90 * SECOND);
        inner.failure = upstreamUnavailable('HTTP 503');
        const stale = await service.get(PRICES, { ids: [3375] });
        expect(inner.count('prices')).toBe(2);
        expect(stale.data).toEqual(fresh.data);
        expect(stale.staleAgeS).toBe(90);
        expect(stale.fetchedAt).toBe(fresh.fetchedAt);
        expect(service.stats().endpoints.prices.staleServed).toBe(1);
        expect(logger.warnings).toHaveLength(1);
        expect(logger.warnings[0]!.fields).toMatchObject({ endpoint: 'prices', code: 'UPSTREAM_UNAVAILABLE', ageS: 90 });
    });

    it('reports the oldest age when fresh and stale entries are combined', async () => {
        const { service, inner, clock } = harness();
        await service.get(PRICES, { ids: [1] });
        clock.advance(30 * SECOND);
        await service.get(PRICES, { ids: [2] });
        clock.advance(45 * SECOND);
        const start = clock.now();
        inner.failure = rateLimited(start + 60_000, start);
        const result = await service.get(PRICES, { ids: [1, 2] });
        expect(result.data.map(row => row.tokenId)).toEqual([1, 2]);
        expect(result.staleAgeS).toBe(75);
        expect(result.fetchedAt).toBe(start - 75 * SECOND);
    });

    it("serves the stale value when the caller's deadline passes while the upstream is still at work", async () => {
        const { service, inner, clock } = harness();
        const fresh = await service.get(TM_GRADES, { ids: [3306] });
        clock.advance(2 * 3600 * SECOND);
        const release = inner.hold();
        const deadline = new AbortController();
        const pending = service.get(TM_GRADES, { ids: [3306] }, deadline.signal);
        await settle();
        deadline.abort(new DOMException('The operation timed out.', 'TimeoutError'));
        const stale = await pending;
        expect(stale.data).toEqual(fresh.data);
        expect(stale.staleAgeS).toBe(7200);
        // After the deadline nothing new goes upstream: fresh entries answer, missing ones fail as a timeout.
        await expect(service.get(PRICES, { ids: [1] }, deadline.signal)).rejects.toMatchObject({ code: 'UPSTREAM_TIMEOUT' });
        expect(inner.count('prices')).toBe(0);
        release();
    });

    it('still answers a cancellation (not a deadline) with CANCELLED', async () => {
        const { service, inner, clock } = harness();
        await service.get(TM_GRADES, { ids: [3306] });
        clock.advance(2 * 3600 * SECOND);
        const release = inner.hold();
        const controller = new AbortController();
        const pending = service.get(TM_GRADES, { ids: [3306] }, controller.signal);
        await settle();
        controller.abort();
        await expect(pending).rejects.toMatchObject({ code: 'CANCELLED' });
        release();
    });

    it('propagates the typed error when there is no stale value', async () => {
        const { service, inner } = harness();
        inner.failure = upstreamUnavailable('HTTP 503');
        await expect(service.get(PRICES, { ids: [3375] })).rejects.toMatchObject({ code: 'UPSTREAM_UNAVAILABLE' });
        await expect(service.get(MOONSHOTS, { type: 'active', limit: 5 })).rejects.toBe(inner.failure);
    });

    it('does not serve a value older than the stale limit', async () => {
        const { service, inner, clock } = harness({ staleMaxAgeSeconds: 600 });
        await service.get(PRICES, { ids: [3375] });
        clock.advance(601 * SECOND);
        inner.failure = quotaExhausted('monthly limit');
        await expect(service.get(PRICES, { ids: [3375] })).rejects.toMatchObject({ code: 'QUOTA_EXHAUSTED' });
    });

    it('lets errors that a stale answer would hide propagate', async () => {
        const { service, inner, clock } = harness();
        await service.get(PRICES, { ids: [3375] });
        clock.advance(90 * SECOND);
        inner.failure = allKeysRevoked(['tm-…1111']);
        await expect(service.get(PRICES, { ids: [3375] })).rejects.toMatchObject({ code: 'AUTH_REVOKED' });
        expect(service.stats().endpoints.prices.staleServed).toBe(0);
    });
});

describe('format failures', () => {
    it('remembers an unreadable answer for 60 s, so repeating the question spends no credit, and says so', async () => {
        const { service, inner, clock } = harness();
        inner.failure = schemaDrift('/tm-grade: none of its 1 rows has TOKEN_ID', { endpoint: '/tm-grade' });
        const first = (await service.get(TM_GRADES, { ids: [3375] }).catch((error: UpstreamError) => error)) as UpstreamError;
        expect(first).toMatchObject({ code: 'SCHEMA_DRIFT', hint: expect.stringContaining('remembered for another 60 s') });
        expect(first.hint).not.toMatch(/try again later/i);
        clock.advance(30 * SECOND);
        const repeat = await service.get(TM_GRADES, { ids: [3375] }).catch((error: UpstreamError) => error);
        expect(repeat).toMatchObject({ code: 'SCHEMA_DRIFT', hint: expect.stringContaining('remembered for another 30 s') });
        expect(inner.count('tmGrades')).toBe(1);
        expect(service.stats().endpoints.tmGrades).toMatchObject({ misses: 1, failuresRemembered: 1, upstreamCalls: 1 });
        // Other tokens and other endpoints are other questions: they still go upstream.
        await expect(service.get(TM_GRADES, { ids: [3306] })).rejects.toMatchObject({ code: 'SCHEMA_DRIFT' });
        expect(inner.count('tmGrades')).toBe(2);
        inner.failure = null;
        clock.advance(31 * SECOND);
        await expect(service.get(TM_GRADES, { ids: [3375] })).resolves.toMatchObject({ data: [{ tokenId: 3375 }] });
        expect(inner.count('tmGrades')).toBe(3);
    });

    it('serves a stale answer rather than a remembered format failure', async () => {
        const { service, inner, clock } = harness();
        await service.get(PRICES, { ids: [3375] });
        clock.advance(2 * DEFAULT_TTL_SECONDS.price * SECOND);
        inner.failure = schemaDrift('/price: "data" is not a list', { endpoint: '/price' });
        const stale = await service.get(PRICES, { ids: [3375] });
        expect(stale.staleAgeS).toBe(2 * DEFAULT_TTL_SECONDS.price);
        const again = await service.get(PRICES, { ids: [3375] });
        expect(again.staleAgeS).toBe(2 * DEFAULT_TTL_SECONDS.price);
        expect(inner.count('prices')).toBe(2);
    });

    it('does not remember outages: the next question tries the upstream again', async () => {
        const { service, inner } = harness();
        inner.failure = upstreamUnavailable('HTTP 503');
        await expect(service.get(MOONSHOTS, { type: 'active', limit: 5 })).rejects.toMatchObject({ code: 'UPSTREAM_UNAVAILABLE' });
        await expect(service.get(MOONSHOTS, { type: 'active', limit: 5 })).rejects.toMatchObject({ code: 'UPSTREAM_UNAVAILABLE' });
        expect(inner.count('moonshots')).toBe(2);
    });
});

describe('cancellation', () => {
    it('rejects an aborting caller at once without failing another caller of the same fetch', async () => {
        const { service, inner } = harness();
        const release = inner.hold();
        const controller = new AbortController();
        const leaving = service.get(DAILY_OHLCV, { id: 3375, days: 7 }, controller.signal);
        const staying = service.get(DAILY_OHLCV, { id: 3375, days: 7 });
        await settle();
        controller.abort();
        await expect(leaving).rejects.toMatchObject({ code: 'CANCELLED' });
        expect(inner.calls[0]!.signal?.aborted).toBe(false);
        release();
        expect((await staying).data).toHaveLength(1);
        expect(inner.count('dailyOhlcv')).toBe(1);
    });

    it('aborts the upstream call when every waiter has gone, and starts afresh for the next caller', async () => {
        const { service, inner } = harness();
        const release = inner.hold();
        const controllers = [new AbortController(), new AbortController()];
        const calls = controllers.map(controller => service.get(DAILY_OHLCV, { id: 3375, days: 7 }, controller.signal));
        await settle();
        controllers.forEach(controller => controller.abort());
        for (const call of calls) await expect(call).rejects.toMatchObject({ code: 'CANCELLED' });
        expect(inner.calls[0]!.signal?.aborted).toBe(true);
        release();
        expect((await service.get(DAILY_OHLCV, { id: 3375, days: 7 })).data).toHaveLength(1);
        expect(inner.count('dailyOhlcv')).toBe(2);
    });

    it('drops a pending batch when its only caller aborts before it fires', async () => {
        const { service, inner } = harness();
        const controller = new AbortController();
        const call = service.get(PRICES, { ids: [1] }, controller.signal);
        controller.abort();
        await expect(call).rejects.toMatchObject({ code: 'CANCELLED' });
        // The batch would have fired on this turn of the event loop.
        await new Promise(resolve => setImmediate(resolve));
        expect(inner.count('prices')).toBe(0);
    });

    it('rejects at once when the signal is already aborted', async () => {
        const { service, inner } = harness();
        await expect(service.get(PRICES, { ids: [1] }, AbortSignal.abort())).rejects.toMatchObject({ code: 'CANCELLED' });
        expect(inner.count()).toBe(0);
    });
});

describe('entry granularity', () => {
    it('shares one moonshot page of 50 between different limits', async () => {
        const { service, inner } = harness();
        const five = await service.get(MOONSHOTS, { type: 'active', limit: 5 });
        const twenty = await service.get(MOONSHOTS, { type: 'active', limit: 20 });
        expect(inner.calls.map(call => call.params)).toEqual([{ type: 'active', limit: 50 }]);
        expect(five.data).toHaveLength(5);
        expect(twenty.data).toHaveLength(20);
        expect(twenty.data.slice(0, 5)).toEqual(five.data);
        await service.get(MOONSHOTS, { type: 'past', limit: 5 });
        expect(inner.count('moonshots')).toBe(2);
    });

    it('asks the upstream only for the token elements it has not seen', async () => {
        const { service, inner } = harness();
        const first = await service.get(TOKENS, { symbols: ['BTC', 'ETH'] });
        const second = await service.get(TOKENS, { symbols: ['eth', 'SOL'] });
        expect(inner.calls.map(call => call.params)).toEqual([{ symbols: ['BTC', 'ETH'] }, { symbols: ['SOL'] }]);
        expect(first.data.map(row => row.symbol)).toEqual(['BTC', 'ETH']);
        expect(second.data.map(row => row.symbol)).toEqual(['ETH', 'SOL']);
    });

    it('remembers that a symbol is unknown', async () => {
        const { service, inner } = harness();
        expect((await service.get(TOKENS, { symbols: ['UNII'] })).data).toEqual([]);
        expect((await service.get(TOKENS, { symbols: ['unii'] })).data).toEqual([]);
        expect(inner.count('tokens')).toBe(1);
    });

    it('splits a mixed token query by element and reuses the rows for id lookups', async () => {
        const { service, inner } = harness();
        // Names go upstream as typed (the filter may be case-sensitive), and are keyed case-insensitively. One call
        // per kind, as the client sends one request per kind: ids alone, symbols and names each in their batch.
        const mixed = await service.get(TOKENS, { symbols: ['btc'], names: ['Ethereum'], ids: [3988] });
        expect(inner.calls.map(call => call.params)).toEqual([{ ids: [3988] }, { symbols: ['BTC'] }, { names: ['Ethereum'] }]);
        expect(mixed.data.map(row => row.tokenId)).toEqual([3375, 3306, 3988]);
        const byName = await service.get(TOKENS, { names: ['ETHEREUM'] });
        const byId = await service.get(TOKENS, { ids: [3375, 3306] });
        expect(byName.data.map(row => row.symbol)).toEqual(['ETH']);
        expect(byId.data.map(row => row.symbol)).toEqual(['BTC', 'ETH']);
        expect(inner.count('tokens')).toBe(3);
    });

    it('caches each grade source per id, separately, and sends only the missing ids upstream', async () => {
        const { service, inner } = harness();
        await service.get(TM_GRADES, { ids: [3375] });
        const both = await service.get(TM_GRADES, { ids: [3375, 3306] });
        await service.get(FUNDAMENTAL_GRADES, { ids: [3375] });
        await service.get(TECHNOLOGY_GRADES, { ids: [3375] });
        await service.get(FUNDAMENTAL_GRADES, { ids: [3375] });
        expect(inner.calls.map(call => [call.endpoint, call.params])).toEqual([
            ['tmGrades', { ids: [3375] }],
            ['tmGrades', { ids: [3306] }],
            ['fundamentalGrades', { ids: [3375] }],
            ['technologyGrades', { ids: [3375] }]
        ]);
        expect(both.data.map(row => row.tokenId)).toEqual([3375, 3306]);
    });

    it('keys signals and candles by id and clamped days', async () => {
        const { service, inner } = harness();
        await service.get(TRADING_SIGNALS, { ids: [3375], days: 29 });
        await service.get(TRADING_SIGNALS, { ids: [3375], days: 30 });
        await service.get(TRADING_SIGNALS, { ids: [3375], days: 7 });
        await service.get(DAILY_OHLCV, { id: 3375, days: 29 });
        await service.get(DAILY_OHLCV, { id: 3375, days: 45 });
        expect(inner.count('tradingSignals')).toBe(2);
        expect(inner.count('dailyOhlcv')).toBe(1);
    });

    it('answers an empty question without spending a credit', async () => {
        const { service, inner } = harness();
        expect((await service.get(PRICES, { ids: [] })).data).toEqual([]);
        expect((await service.get(TOKENS, {})).data).toEqual([]);
        expect(inner.count()).toBe(0);
    });

    it('counts hits, misses, coalesced and upstream calls with totals', async () => {
        const { service } = harness();
        await service.get(PRICES, { ids: [1, 2] });
        await service.get(PRICES, { ids: [1, 3] });
        await service.get(DAILY_OHLCV, { id: 1, days: 7 });
        const stats = service.stats();
        expect(stats.endpoints.prices).toEqual({
            hits: 1,
            misses: 3,
            sharedHits: 0,
            coalesced: 0,
            staleServed: 0,
            failuresRemembered: 0,
            upstreamCalls: 2
        });
        expect(stats.totals).toEqual({
            hits: 1,
            misses: 4,
            sharedHits: 0,
            coalesced: 0,
            staleServed: 0,
            failuresRemembered: 0,
            upstreamCalls: 3
        });
        expect(stats.entries).toBe(4);
    });
});

describe('negative answers', () => {
    it('10,000 lookups of unknown symbols and ids do not evict a good entry from a store of 1,000', async () => {
        const { service, inner } = harness({ maxEntries: 1000 });
        await service.get(PRICES, { ids: [3375] });
        await service.get(TOKENS, { symbols: ['BTC'] });
        for (let i = 0; i < 100; i++) {
            await service.get(TOKENS, { symbols: Array.from({ length: 100 }, (_, j) => `JUNK${i * 100 + j}`) });
        }
        inner.missingPrices = new Set(Array.from({ length: 2000 }, (_, i) => 500_000 + i));
        for (let i = 0; i < 20; i++) await service.get(PRICES, { ids: Array.from({ length: 100 }, (_, j) => 500_000 + i * 100 + j) });
        const paid = inner.count();

        expect((await service.get(PRICES, { ids: [3375] })).data).toHaveLength(1);
        expect((await service.get(TOKENS, { symbols: ['BTC'] })).data.map(row => row.tokenId)).toEqual([3375]);
        expect(inner.count()).toBe(paid);
        // The negative space is bounded too: the newest unknowns are remembered, the oldest forgotten.
        expect(service.stats().entries).toBeLessThanOrEqual(1000 + 2000);
        expect(service.stats().entries).toBeGreaterThanOrEqual(2000);
        await service.get(PRICES, { ids: [501_999] });
        expect(inner.count()).toBe(paid);
    });

    it('moves an entry between the spaces when a token appears or disappears upstream', async () => {
        const { service, inner, clock } = harness({ maxEntries: 10 });
        inner.missingPrices.add(42);
        expect((await service.get(PRICES, { ids: [42] })).data).toEqual([]);
        clock.advance(DEFAULT_TTL_SECONDS.price * SECOND + 1);
        inner.missingPrices.clear();
        expect((await service.get(PRICES, { ids: [42] })).data).toHaveLength(1);
        expect(service.stats().entries).toBe(1);
        expect((await service.get(PRICES, { ids: [42] })).data).toHaveLength(1);
        expect(inner.count('prices')).toBe(2);
    });
});
