import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import type { UpstreamError } from '../../src/api/errors.js';
import { systemClock } from '../../src/clock.js';
import { RecordingLogger } from '../cache/fakes.js';
import { runClock } from '../fake-upstream/clocked.js';
import { FakeUpstream, fixture, fixtureNumber as num } from '../fake-upstream/index.js';
import { FakeClock } from '../helpers/clock.js';
import { clientFor } from '../helpers/client.js';
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
        const tokens = await client.get(TOKENS, { symbols: ['uni', 'BTC'] });
        expect(tokens.map(token => token.tokenId).sort()).toEqual([31007, 3375, 3386]);
        const btc = fixture('tokens').find(row => row.TOKEN_ID === 3375)!;
        expect(tokens.find(token => token.tokenId === 3375)).toEqual({
            tokenId: 3375,
            name: 'Bitcoin',
            symbol: 'BTC',
            // The upstream sends objects in these lists (tmai-langchain-tools tools/tokens.py reads exchange_name, category_name).
            exchanges: (btc.EXCHANGE_LIST as Array<{ exchange_name: string }>).map(item => item.exchange_name),
            categories: (btc.CATEGORY_LIST as Array<{ category_name: string }>).map(item => item.category_name),
            contracts: btc.CONTRACT_ADDRESS ?? {}
        });
        expect(fake.calls[0]?.query).toMatchObject({ symbol: 'uni,BTC', limit: '100', page: '1' });
    });

    it('turns string prices into numbers', async () => {
        const { client } = clientFor(fake);
        const prices = await client.get(PRICES, { ids: [3306, 3375] });
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
        const prices = await client.get(PRICES, { ids });
        expect(prices).toHaveLength(25);
        expect(fake.count('/price')).toBe(1);
        expect(fake.calls[0]?.query.token_id?.split(',')).toHaveLength(25);
    });

    it('parses /tm-grade rows as sent: string numbers, no DATE, either docs revision', async () => {
        const { client } = clientFor(fake);
        const grades = await client.get(TM_GRADES, { ids: [3375, 20211] });
        const sent = fixture('tm-grade');
        for (const row of grades) {
            const source = sent.find(candidate => candidate.TOKEN_ID === row.tokenId)!;
            expect(row).toEqual({
                tokenId: row.tokenId,
                tmGrade: num(source.TM_GRADE),
                signalLabel: source.TM_GRADE_SIGNAL ?? null,
                momentum: source.MOMENTUM ?? null,
                change24hPts: num(source.TM_TRADER_GRADE_24H_CHANGE),
                change24hPct: num(source.TM_GRADE_24h_PCT_CHANGE),
                fundamentalGrade: num(source.FUNDAMENTAL_GRADE),
                fundamentalClass: source.FUNDAMENTAL_GRADE_CLASS ?? null,
                quantGrade: num(source.QUANT_GRADE)
            });
        }
        expect(client.drift.stats()).toEqual({ wrongKinds: {}, droppedRows: {} });
    });

    it('does not call the retired grade endpoints, and reports a missing /tm-grade as NOT_FOUND', async () => {
        fake.removeEndpoint('/tm-grade');
        const { client } = clientFor(fake);
        expect((await failure(client.get(TM_GRADES, { ids: [3306] }))).code).toBe('NOT_FOUND');
        expect(fake.log()).toEqual(['/tm-grade tm-…0001 -> 404']);
    });

    it('reads the trend from TOKEN_TREND and the flip from TRADING_SIGNAL, newest first', async () => {
        const { client } = clientFor(fake);
        const rows = await client.get(TRADING_SIGNALS, { ids: [3306], days: 10 });
        expect(rows.length).toBeGreaterThanOrEqual(10);
        const newest = fixture('trading-signals').find(row => row.TOKEN_ID === 3306 && String(row.DATE).startsWith('2025-04-10'))!;
        expect(rows[0]).toMatchObject({
            tokenId: 3306,
            date: fake.world.shiftedDate(String(newest.DATE)),
            event: newest.TRADING_SIGNAL,
            trend: newest.TOKEN_TREND,
            traderGrade: newest.TM_TRADER_GRADE,
            investorGrade: newest.TM_INVESTOR_GRADE
        });
        expect(rows.map(row => row.date)).toEqual([...rows.map(row => row.date)].sort().reverse());
        expect(fake.calls[0]?.query).toMatchObject({ token_id: '3306', startDate: expect.stringMatching(/^\d{4}-\d{2}-\d{2}$/) });
    });

    it('parses moonshots without TOKEN_ID, and daily candles dated by DATE or TIMESTAMP', async () => {
        const { client } = clientFor(fake);
        const moonshots = await client.get(MOONSHOTS, { type: 'active', limit: 10 });
        const sent = fixture('moonshot-tokens-active');
        expect(moonshots).toHaveLength(sent.length);
        expect(moonshots[0]).toMatchObject({
            tokenId: null,
            symbol: sent[0]!.TOKEN_SYMBOL,
            marketCapUsd: num(sent[0]!.MARKET_CAP),
            roiPct: num(sent[0]!.MOONSHOT_ROI)
        });
        expect(moonshots.every(row => typeof row.marketCapUsd === 'number')).toBe(true);
        for (const id of [3375, 3306]) {
            const candles = await client.get(DAILY_OHLCV, { id, days: 7 });
            expect(candles.length).toBeGreaterThanOrEqual(7);
            expect(candles.every(candle => candle.date !== null && candle.close !== null)).toBe(true);
        }
    });

    it('parses the fundamental and technology grades', async () => {
        const { client } = clientFor(fake);
        const [fundamental] = await client.get(FUNDAMENTAL_GRADES, { ids: [3375] });
        const [technology] = await client.get(TECHNOLOGY_GRADES, { ids: [3375] });
        const sentF = fixture('fundamental-grade').find(row => row.TOKEN_ID === 3375)!;
        const sentT = fixture('technology-grade').find(row => row.TOKEN_ID === 3375)!;
        expect(fundamental).toMatchObject({
            tokenId: 3375,
            fundamentalGrade: num(sentF.FUNDAMENTAL_GRADE),
            fundamentalClass: sentF.FUNDAMENTAL_GRADE_CLASS
        });
        expect(technology).toMatchObject({ tokenId: 3375, technologyGrade: num(sentT.TECHNOLOGY_GRADE) });
    });

    it('keeps a row whose field drifted, reads that field as null and warns once per field', async () => {
        const logger = new RecordingLogger();
        const { client } = clientFor(fake, { logger });
        fake.inject({ path: '/price', fault: { kind: 'drift-field', field: 'CURRENT_PRICE', value: { usd: 1 } } });
        const prices = await client.get(PRICES, { ids: [3375, 3306] });
        await client.get(PRICES, { ids: [3988] });
        expect(prices.map(row => [row.tokenId, row.priceUsd])).toEqual(
            expect.arrayContaining([
                [3375, null],
                [3306, null]
            ])
        );
        expect(client.drift.stats().wrongKinds).toEqual({ '/price CURRENT_PRICE': 2 });
        expect(logger.warnings.map(line => [line.msg, line.fields.field])).toEqual([
            ['upstream field drifted: read as null', 'CURRENT_PRICE']
        ]);
    });

    it('fails as drift only when no row has its identity, and says how to report it', async () => {
        const { client } = clientFor(fake);
        fake.inject({ path: '/price', fault: { kind: 'drift-field', field: 'TOKEN_ID', value: 'n/a' } });
        const error = await failure(client.get(PRICES, { ids: [3375] }));
        expect(error).toMatchObject({ code: 'SCHEMA_DRIFT', message: expect.stringContaining('TOKEN_ID') });
        expect(error.hint).toMatch(/crypto-intel-mcp doctor/);
        expect(error.hint).not.toMatch(/try again later/i);
    });

    it('sends names as typed and title-cased in one request, since the name filter may be case-sensitive', async () => {
        const { client } = clientFor(fake);
        const tokens = await client.get(TOKENS, { names: ['shiba inu', 'SOLANA', 'bitcoin'] });
        expect(tokens.map(token => token.symbol).sort()).toEqual(['BTC', 'SOL']);
        expect(fake.calls.map(call => call.query.token_name)).toEqual(['shiba inu,Shiba Inu,SOLANA,Solana,bitcoin,Bitcoin']);
    });

    it('pages listings past the 100-row cap', async () => {
        const { client } = clientFor(fake);
        const ids = fake.world.tokens
            .filter(token => !fake.world.isFixtureToken(token))
            .slice(0, 10)
            .map(token => token.id);
        const rows = await client.get(TRADING_SIGNALS, { ids, days: 29 });
        // 29 daily rows per token: the fake, like the upstream, has no row for today yet.
        expect(rows).toHaveLength(290);
        expect(fake.calls.map(call => call.query.page)).toEqual(['1', '2', '3']);
    });

    it('refuses filter values that would change the upstream query, before any call', async () => {
        const { client } = clientFor(fake);
        for (const symbol of ['BTC,ETH', '../admin', 'a&token_id=1', 'x\u0000']) {
            expect((await failure(client.get(TOKENS, { symbols: [symbol] }))).code).toBe('INVALID_INPUT');
        }
        expect((await failure(client.get(PRICES, { ids: [-1] }))).code).toBe('INVALID_INPUT');
        expect(fake.count()).toBe(0);
    });
});

describe('TokenMetricsClient faults', () => {
    it('retries a 5xx burst and succeeds', async () => {
        const clock = new FakeClock();
        const { client } = clientFor(fake, { clock });
        fake.inject({ fault: { kind: 'status', status: 503 }, times: 2 });
        await expect(client.get(PRICES, { ids: [3375] })).resolves.toHaveLength(1);
        expect(fake.log()).toEqual(['/price tm-…0001 -> 503', '/price tm-…0001 -> 503', '/price tm-…0001 -> 200']);
        expect(clock.sleeps).toHaveLength(2);
    });

    it('turns persistent 5xx into UPSTREAM_UNAVAILABLE after the retry budget', async () => {
        const { client } = clientFor(fake);
        fake.inject({ fault: { kind: 'status', status: 500 } });
        const error = await failure(client.get(PRICES, { ids: [3375] }));
        expect(error.code).toBe('UPSTREAM_UNAVAILABLE');
        expect(error.hint).toMatch(/try again/i);
        expect(fake.count()).toBe(4);
    });

    it('does not retry 400, 401, 403 or 404', async () => {
        const { client } = clientFor(fake);
        fake.inject({ fault: { kind: 'status', status: 400, message: 'bad filter' }, times: 1 });
        expect(await failure(client.get(PRICES, { ids: [3375] }))).toMatchObject({ code: 'UPSTREAM_REJECTED', status: 400 });
        fake.removeEndpoint('/tm-grade');
        expect((await failure(client.get(TM_GRADES, { ids: [3375] }))).code).toBe('NOT_FOUND');
        fake.inject({
            path: '/technology-grade',
            fault: { kind: 'forbidden', message: 'This endpoint is not available in your plan' },
            times: 1
        });
        expect((await failure(client.get(TECHNOLOGY_GRADES, { ids: [3375] }))).code).toBe('NOT_IN_PLAN');
        fake.revoke('tm-test-key-0001');
        expect((await failure(client.get(PRICES, { ids: [3375] }))).code).toBe('AUTH_REVOKED');
        expect(fake.log()).toEqual([
            '/price tm-…0001 -> 400',
            '/tm-grade tm-…0001 -> 404',
            '/technology-grade tm-…0001 -> 403',
            '/price tm-…0001 -> 401'
        ]);
    });

    it('keeps a key in service after a 403 for one endpoint outside its plan, and sets it aside when a 403 calls it invalid', async () => {
        const { client } = clientFor(fake, { keys: ['tm-test-key-0001', 'tm-test-key-0002'] });
        fake.inject({
            path: '/fundamental-grade',
            fault: { kind: 'forbidden', message: 'Upgrade your plan to access this endpoint' },
            times: 1
        });
        const error = await failure(client.get(FUNDAMENTAL_GRADES, { ids: [3375] }));
        expect(error).toMatchObject({ code: 'NOT_IN_PLAN', status: 403 });
        expect(error.userMessage).toMatch(/plan does not include \/fundamental-grade.*keeps serving the other tools/s);
        await client.get(PRICES, { ids: [3375] });
        fake.inject({ fault: { kind: 'forbidden', message: 'Invalid API key' }, key: 'tm-test-key-0001' });
        await client.get(PRICES, { ids: [3306] });
        await client.get(PRICES, { ids: [3988] });
        expect(fake.log()).toEqual([
            '/fundamental-grade tm-…0001 -> 403',
            '/price tm-…0001 -> 200',
            '/price tm-…0001 -> 403',
            '/price tm-…0002 -> 200',
            '/price tm-…0002 -> 200'
        ]);
    });

    it('waits at least Retry-After (1 s) before retrying a 429', async () => {
        const clock = new FakeClock();
        const { client } = clientFor(fake, { clock });
        fake.inject({ fault: { kind: 'rate-limit', retryAfter: '1' }, times: 1 });
        await expect(client.get(PRICES, { ids: [3375] })).resolves.toHaveLength(1);
        expect(fake.log()).toEqual(['/price tm-…0001 -> 429', '/price tm-…0001 -> 200']);
        expect(clock.sleeps).toHaveLength(1);
        expect(clock.sleeps[0]).toBeGreaterThanOrEqual(1000);
    });

    it('treats "Rate limit exceeded" on a 429 as a rate limit, not a used-up quota', async () => {
        const clock = new FakeClock();
        const { client } = clientFor(fake, { clock });
        fake.inject({ fault: { kind: 'status', status: 429, message: 'Rate limit exceeded', retryAfter: '2' }, times: 1 });
        await expect(client.get(PRICES, { ids: [3375] })).resolves.toHaveLength(1);
        expect(fake.log()).toEqual(['/price tm-…0001 -> 429', '/price tm-…0001 -> 200']);
        expect(clock.sleeps[0]).toBeGreaterThanOrEqual(2000);
        expect(clock.sleeps[0]).toBeLessThan(60_000);
    });

    it('honours Retry-After given as an HTTP date', async () => {
        const clock = new FakeClock();
        const { client } = clientFor(fake, { clock });
        fake.inject({ fault: { kind: 'rate-limit', retryAfter: new Date(clock.now() + 3000).toUTCString() }, times: 1 });
        await expect(client.get(PRICES, { ids: [3375] })).resolves.toHaveLength(1);
        expect(clock.sleeps[0]).toBeGreaterThanOrEqual(2000);
    });

    it('answers RATE_LIMITED at once when Retry-After is past the deadline', async () => {
        const clock = new FakeClock();
        const { client } = clientFor(fake, { clock, http: { deadlineMs: 5000 } });
        fake.inject({ fault: { kind: 'rate-limit', retryAfter: '60' } });
        const error = await failure(client.get(PRICES, { ids: [3375] }));
        expect(error.code).toBe('RATE_LIMITED');
        expect(error.hint).toMatch(/Retry in about 60 s/);
        expect(clock.sleeps).toEqual([]);
        expect(fake.count()).toBe(1);
    });

    it('stops retrying at the deadline', async () => {
        const clock = new FakeClock();
        const { client } = clientFor(fake, {
            clock,
            http: { deadlineMs: 1500, retry: { maxRetries: 10, backoffBaseMs: 400, backoffMaxMs: 10_000 } }
        });
        const started = clock.now();
        fake.inject({ fault: { kind: 'status', status: 502 } });
        expect((await failure(client.get(PRICES, { ids: [3375] }))).code).toBe('UPSTREAM_UNAVAILABLE');
        expect(clock.now() - started).toBeLessThanOrEqual(1500);
        expect(fake.count()).toBeLessThan(11);
        expect(fake.count()).toBeGreaterThanOrEqual(2);
    });

    it('times out a slow attempt and reports UPSTREAM_TIMEOUT', async () => {
        const clock = new FakeClock();
        const { client } = clientFor(fake, { clock, http: { attemptTimeoutMs: 150, deadlineMs: 400, retry: { maxRetries: 1 } } });
        fake.clock = clock;
        try {
            fake.inject({ fault: { kind: 'latency', ms: 1000 } });
            const answer = failure(client.get(PRICES, { ids: [3375] }));
            await runClock(fake, clock, answer, 150);
            expect((await answer).code).toBe('UPSTREAM_TIMEOUT');
            expect(fake.calls.map(call => call.aborted)).toEqual([true]);
        } finally {
            fake.clock = systemClock;
        }
    });

    it('maps a dropped connection to UPSTREAM_UNAVAILABLE after retries', async () => {
        const { client } = clientFor(fake, { http: { retry: { maxRetries: 1 } } });
        fake.inject({ fault: { kind: 'reset' } });
        expect((await failure(client.get(PRICES, { ids: [3375] }))).code).toBe('UPSTREAM_UNAVAILABLE');
        expect(fake.count()).toBe(2);
    });

    it('maps truncated JSON and drifted field types to SCHEMA_DRIFT', async () => {
        const { client } = clientFor(fake);
        fake.inject({ fault: { kind: 'truncated' }, times: 1 });
        expect(await failure(client.get(PRICES, { ids: [3375] }))).toMatchObject({ code: 'SCHEMA_DRIFT' });
        fake.inject({ fault: { kind: 'drift' }, times: 1 });
        const drift = await failure(client.get(PRICES, { ids: [3375] }));
        expect(drift.code).toBe('SCHEMA_DRIFT');
        expect(drift.message).toMatch(/\/price/);
    });

    it('surfaces success:false with HTTP 200 with the upstream message', async () => {
        const { client } = clientFor(fake);
        fake.inject({ fault: { kind: 'success-false', message: 'token_id not supported' }, times: 1 });
        expect(await failure(client.get(PRICES, { ids: [3375] }))).toMatchObject({
            code: 'UPSTREAM_REJECTED',
            message: expect.stringContaining('token_id not supported')
        });
        fake.inject({ fault: { kind: 'success-false', message: 'Monthly quota exceeded for your plan' }, times: 1 });
        expect((await failure(client.get(PRICES, { ids: [3375] }))).code).toBe('QUOTA_EXHAUSTED');
    });

    it('cancels the upstream request when the caller aborts', async () => {
        const { client } = clientFor(fake);
        fake.inject({ fault: { kind: 'latency', ms: 5000 } });
        const controller = new AbortController();
        const pending = failure(client.get(PRICES, { ids: [3375] }, controller.signal));
        while (fake.count() === 0) await new Promise(resolve => setTimeout(resolve, 5));
        controller.abort();
        expect((await pending).code).toBe('CANCELLED');
        for (let i = 0; i < 100 && !fake.calls[0]?.aborted; i++) await new Promise(resolve => setTimeout(resolve, 10));
        expect(fake.calls[0]?.aborted).toBe(true);
        expect(fake.count()).toBe(1);
    });

    it('never sends the key in the URL', async () => {
        const { client } = clientFor(fake);
        await client.get(PRICES, { ids: [3375] });
        await client.get(TOKENS, { symbols: ['BTC'] });
        expect(fake.calls.every(call => !call.rawQuery.includes('tm-test-key'))).toBe(true);
        expect(fake.calls.every(call => call.key === 'tm-test-key-0001')).toBe(true);
    });
});
