import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import type { UpstreamError } from '../../src/api/errors.js';
import { FakeUpstream } from '../fake-upstream/index.js';
import { FakeClock } from '../helpers/clock.js';
import { clientFor } from '../helpers/client.js';

let fake: FakeUpstream;

beforeAll(async () => {
    fake = await FakeUpstream.start();
});
afterAll(async () => {
    await fake.close();
});
beforeEach(() => {
    fake.reset();
});

async function failure(promise: Promise<unknown>): Promise<UpstreamError> {
    try {
        await promise;
    } catch (error) {
        return error as UpstreamError;
    }
    throw new Error('expected the call to fail');
}

describe('TokenMetricsClient parsing', () => {
    it('parses tokens, including the ambiguous UNI symbol', async () => {
        const { client } = clientFor(fake);
        const tokens = await client.tokens({ symbols: ['uni', 'BTC'] });
        expect(tokens.map(token => token.tokenId).sort()).toEqual([31007, 3375, 3386]);
        expect(tokens.find(token => token.tokenId === 3375)).toMatchObject({ name: 'Bitcoin', symbol: 'BTC', exchanges: expect.arrayContaining(['binance']) });
        expect(fake.calls[0]?.query).toMatchObject({ symbol: 'uni,BTC', limit: '100', page: '1' });
    });

    it('turns string prices into numbers', async () => {
        const { client } = clientFor(fake);
        const prices = await client.prices([3306, 3375]);
        expect(prices).toEqual(
            expect.arrayContaining([
                { tokenId: 3306, name: 'Ethereum', symbol: 'ETH', priceUsd: 3412.55 },
                { tokenId: 3375, name: 'Bitcoin', symbol: 'BTC', priceUsd: 97250.12 }
            ])
        );
    });

    it('serves 25 tokens from one comma-separated /price request', async () => {
        const { client } = clientFor(fake);
        const ids = fake.world.tokens.slice(0, 25).map(token => token.id);
        const prices = await client.prices(ids);
        expect(prices).toHaveLength(25);
        expect(fake.count('/price')).toBe(1);
        expect(fake.calls[0]?.query.token_id?.split(',')).toHaveLength(25);
    });

    it('parses /tm-grade with its quirky field names, string numbers and nulls', async () => {
        const { client } = clientFor(fake);
        const grades = await client.grades([20211]);
        const row = grades.tm?.[0];
        expect(grades.trader).toBeNull();
        expect(row?.tokenId).toBe(20211);
        expect(typeof row?.tmGrade).toBe('number');
        expect(typeof row?.tmGradeChange24hPct).toBe('number');
        expect(row?.fundamentalGrade).toBeNull();
        expect(['bullish', 'bearish', 'neutral']).toContain(row?.signal);
    });

    it('falls back to /trader-grades and /investor-grades when /tm-grade is gone, and remembers it', async () => {
        fake.removeEndpoint('/tm-grade');
        const { client } = clientFor(fake);
        const grades = await client.grades([3306]);
        expect(grades.tm).toBeNull();
        expect(grades.trader?.[0]).toMatchObject({ tokenId: 3306, traderGrade: 84.2 });
        expect(typeof grades.investor?.[0]?.valuationGrade).toBe('number');
        expect(grades.investor?.[0]?.technologyGrade).toBeNull();
        await client.grades([3375]);
        expect(fake.count('/tm-grade')).toBe(1);
    });

    it('reports a missing legacy endpoint as null instead of failing', async () => {
        for (const path of ['/tm-grade', '/investor-grades']) fake.removeEndpoint(path);
        const { client } = clientFor(fake);
        const grades = await client.grades([3306]);
        expect(grades).toMatchObject({ tm: null, investor: null });
        expect(grades.trader).toHaveLength(1);
    });

    it('parses trading signals with both link fields, newest first', async () => {
        const { client } = clientFor(fake);
        const rows = await client.tradingSignals([3306], 10);
        expect(rows.length).toBeGreaterThanOrEqual(10);
        expect(rows[0]).toMatchObject({ tokenId: 3306, signal: 'bullish', traderGrade: 84.2 });
        expect(rows[0]?.link).toMatch(/^https:\/\//);
        expect(rows.every(row => typeof row.investorGrade === 'number')).toBe(true);
        expect(rows.map(row => row.date)).toEqual([...rows.map(row => row.date)].sort().reverse());
        expect(fake.calls[0]?.query).toMatchObject({ token_id: '3306', startDate: expect.stringMatching(/^\d{4}-\d{2}-\d{2}$/) });
    });

    it('parses hourly signals, moonshots and daily candles', async () => {
        const { client } = clientFor(fake);
        const hourly = await client.hourlySignals(3375);
        expect(hourly[0]).toMatchObject({ tokenId: 3375, signal: 'bullish' });
        const moonshots = await client.moonshots('active', 10);
        expect(moonshots).toHaveLength(10);
        expect(moonshots.every(row => typeof row.marketCapUsd === 'number')).toBe(true);
        expect(moonshots[0]?.roiPct).toBeNull();
        const candles = await client.dailyOhlcv(3306, 7);
        expect(candles.length).toBeGreaterThanOrEqual(7);
        expect(candles.some(candle => candle.volume === null)).toBe(true);
    });

    it('pages listings past the 100-row cap', async () => {
        const { client } = clientFor(fake);
        const ids = fake.world.tokens.slice(0, 10).map(token => token.id);
        const rows = await client.tradingSignals(ids, 29);
        expect(rows).toHaveLength(300);
        expect(fake.calls.map(call => call.query.page)).toEqual(['1', '2', '3', '4']);
    });

    it('refuses filter values that would change the upstream query, before any call', async () => {
        const { client } = clientFor(fake);
        for (const symbol of ['BTC,ETH', '../admin', 'a&token_id=1', 'x\u0000']) {
            expect((await failure(client.tokens({ symbols: [symbol] }))).code).toBe('INVALID_INPUT');
        }
        expect((await failure(client.prices([-1]))).code).toBe('INVALID_INPUT');
        expect(fake.count()).toBe(0);
    });
});

describe('TokenMetricsClient faults', () => {
    it('retries a 5xx burst and succeeds', async () => {
        const clock = new FakeClock();
        const { client } = clientFor(fake, { clock });
        fake.inject({ fault: { kind: 'status', status: 503 }, times: 2 });
        await expect(client.prices([3375])).resolves.toHaveLength(1);
        expect(fake.log()).toEqual(['/price tm-…0001 -> 503', '/price tm-…0001 -> 503', '/price tm-…0001 -> 200']);
        expect(clock.sleeps).toHaveLength(2);
    });

    it('turns persistent 5xx into UPSTREAM_UNAVAILABLE after the retry budget', async () => {
        const { client } = clientFor(fake);
        fake.inject({ fault: { kind: 'status', status: 500 } });
        const error = await failure(client.prices([3375]));
        expect(error.code).toBe('UPSTREAM_UNAVAILABLE');
        expect(error.hint).toMatch(/try again/i);
        expect(fake.count()).toBe(4);
    });

    it('does not retry 400, 401 or 404', async () => {
        const { client } = clientFor(fake);
        fake.inject({ fault: { kind: 'status', status: 400, message: 'bad filter' }, times: 1 });
        expect(await failure(client.prices([3375]))).toMatchObject({ code: 'UPSTREAM_REJECTED', status: 400 });
        fake.removeEndpoint('/investor-grades');
        fake.removeEndpoint('/tm-grade');
        fake.removeEndpoint('/trader-grades');
        await expect(client.grades([3375])).resolves.toEqual({ tm: null, trader: null, investor: null });
        fake.revoke('tm-test-key-0001');
        expect((await failure(client.prices([3375]))).code).toBe('AUTH_REVOKED');
        expect(fake.log()).toEqual([
            '/price tm-…0001 -> 400',
            '/tm-grade tm-…0001 -> 404',
            '/trader-grades tm-…0001 -> 404',
            '/investor-grades tm-…0001 -> 404',
            '/price tm-…0001 -> 401'
        ]);
    });

    it('waits at least Retry-After (1 s) before retrying a 429', async () => {
        const clock = new FakeClock();
        const { client } = clientFor(fake, { clock });
        fake.inject({ fault: { kind: 'rate-limit', retryAfter: '1' }, times: 1 });
        await expect(client.prices([3375])).resolves.toHaveLength(1);
        expect(fake.log()).toEqual(['/price tm-…0001 -> 429', '/price tm-…0001 -> 200']);
        expect(clock.sleeps).toHaveLength(1);
        expect(clock.sleeps[0]).toBeGreaterThanOrEqual(1000);
    });

    it('treats "Rate limit exceeded" on a 429 as a rate limit, not a used-up quota', async () => {
        const clock = new FakeClock();
        const { client } = clientFor(fake, { clock });
        fake.inject({ fault: { kind: 'status', status: 429, message: 'Rate limit exceeded', retryAfter: '2' }, times: 1 });
        await expect(client.prices([3375])).resolves.toHaveLength(1);
        expect(fake.log()).toEqual(['/price tm-…0001 -> 429', '/price tm-…0001 -> 200']);
        expect(clock.sleeps[0]).toBeGreaterThanOrEqual(2000);
        expect(clock.sleeps[0]).toBeLessThan(60_000);
    });

    it('honours Retry-After given as an HTTP date', async () => {
        const clock = new FakeClock();
        const { client } = clientFor(fake, { clock });
        fake.inject({ fault: { kind: 'rate-limit', retryAfter: new Date(clock.now() + 3000).toUTCString() }, times: 1 });
        await expect(client.prices([3375])).resolves.toHaveLength(1);
        expect(clock.sleeps[0]).toBeGreaterThanOrEqual(2000);
    });

    it('answers RATE_LIMITED at once when Retry-After is past the deadline', async () => {
        const clock = new FakeClock();
        const { client } = clientFor(fake, { clock, http: { deadlineMs: 5000 } });
        fake.inject({ fault: { kind: 'rate-limit', retryAfter: '60' } });
        const error = await failure(client.prices([3375]));
        expect(error.code).toBe('RATE_LIMITED');
        expect(error.hint).toMatch(/Retry in about 60 s/);
        expect(clock.sleeps).toEqual([]);
        expect(fake.count()).toBe(1);
    });

    it('stops retrying at the deadline', async () => {
        const clock = new FakeClock();
        const { client } = clientFor(fake, { clock, http: { deadlineMs: 1500, retry: { maxRetries: 10, backoffBaseMs: 400, backoffMaxMs: 10_000 } } });
        const started = clock.now();
        fake.inject({ fault: { kind: 'status', status: 502 } });
        expect((await failure(client.prices([3375]))).code).toBe('UPSTREAM_UNAVAILABLE');
        expect(clock.now() - started).toBeLessThanOrEqual(1500);
        expect(fake.count()).toBeLessThan(11);
        expect(fake.count()).toBeGreaterThanOrEqual(2);
    });

    it('times out a slow attempt and reports UPSTREAM_TIMEOUT', async () => {
        const { client } = clientFor(fake, { http: { attemptTimeoutMs: 150, deadlineMs: 400, retry: { maxRetries: 1 } } });
        fake.inject({ fault: { kind: 'latency', ms: 1000 } });
        expect((await failure(client.prices([3375]))).code).toBe('UPSTREAM_TIMEOUT');
    });

    it('maps a dropped connection to UPSTREAM_UNAVAILABLE after retries', async () => {
        const { client } = clientFor(fake, { http: { retry: { maxRetries: 1 } } });
        fake.inject({ fault: { kind: 'reset' } });
        expect((await failure(client.prices([3375]))).code).toBe('UPSTREAM_UNAVAILABLE');
        expect(fake.count()).toBe(2);
    });

    it('maps truncated JSON and drifted field types to SCHEMA_DRIFT', async () => {
        const { client } = clientFor(fake);
        fake.inject({ fault: { kind: 'truncated' }, times: 1 });
        expect(await failure(client.prices([3375]))).toMatchObject({ code: 'SCHEMA_DRIFT' });
        fake.inject({ fault: { kind: 'drift' }, times: 1 });
        const drift = await failure(client.prices([3375]));
        expect(drift.code).toBe('SCHEMA_DRIFT');
        expect(drift.message).toMatch(/\/price/);
    });

    it('surfaces success:false with HTTP 200 with the upstream message', async () => {
        const { client } = clientFor(fake);
        fake.inject({ fault: { kind: 'success-false', message: 'token_id not supported' }, times: 1 });
        expect(await failure(client.prices([3375]))).toMatchObject({ code: 'UPSTREAM_REJECTED', message: expect.stringContaining('token_id not supported') });
        fake.inject({ fault: { kind: 'success-false', message: 'Monthly quota exceeded for your plan' }, times: 1 });
        expect((await failure(client.prices([3375]))).code).toBe('QUOTA_EXHAUSTED');
    });

    it('cancels the upstream request when the caller aborts', async () => {
        const { client } = clientFor(fake);
        fake.inject({ fault: { kind: 'latency', ms: 5000 } });
        const controller = new AbortController();
        const pending = failure(client.prices([3375], controller.signal));
        while (fake.count() === 0) await new Promise(resolve => setTimeout(resolve, 5));
        controller.abort();
        expect((await pending).code).toBe('CANCELLED');
        for (let i = 0; i < 100 && !fake.calls[0]?.aborted; i++) await new Promise(resolve => setTimeout(resolve, 10));
        expect(fake.calls[0]?.aborted).toBe(true);
        expect(fake.count()).toBe(1);
    });

    it('never sends the key in the URL', async () => {
        const { client } = clientFor(fake);
        await client.prices([3375]);
        await client.tokens({ symbols: ['BTC'] });
        expect(fake.calls.every(call => !call.rawQuery.includes('tm-test-key'))).toBe(true);
        expect(fake.calls.every(call => call.key === 'tm-test-key-0001')).toBe(true);
    });
});
