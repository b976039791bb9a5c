import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { FakeUpstream } from '../fake-upstream/index.js';
import { FakeClock } from '../helpers/clock.js';
import { inProcessServer, textOf, type InProcessServer } from '../helpers/in-process.js';

let fake: FakeUpstream;
let server: InProcessServer;

beforeAll(async () => {
    fake = await FakeUpstream.start();
});
afterAll(async () => {
    await fake.close();
});
beforeEach(async () => {
    fake.reset();
    server = await inProcessServer(fake);
});
afterEach(async () => {
    await server.close();
});

/** Text the model reads must stay small even for the largest allowed input. */
const TEXT_BUDGET = 1_500;

describe('tool definitions', () => {
    it('publishes each tool with schemas, annotations and a cost-aware description', async () => {
        const { tools } = await server.client.listTools();
        for (const tool of tools) {
            await expect(JSON.stringify(tool, null, 2)).toMatchFileSnapshot(`../__snapshots__/tools/${tool.name}.json`);
        }
        expect(tools).toHaveLength(4);
    });
});

describe('get_price', () => {
    it('prices 25 tokens with one /price call and a compact text', async () => {
        const symbols = fake.world.tokens.slice(0, 25).map(token => (token.symbol === 'UNI' ? String(token.id) : token.symbol));
        const result = await server.call('get_price', { symbols });
        expect(result.isError).toBeFalsy();
        const structured = result.structuredContent as { prices: unknown[]; unresolved: unknown[] };
        expect(structured.prices).toHaveLength(25);
        expect(structured.unresolved).toEqual([]);
        expect(fake.count('/price')).toBe(1);
        expect(fake.count('/tokens')).toBe(2);
        expect(textOf(result).length).toBeLessThan(TEXT_BUDGET);
    });

    it('collapses a token asked for by symbol, name and id into one row', async () => {
        const result = await server.call('get_price', { symbols: ['BTC', 'bitcoin', 3375] });
        expect((result.structuredContent as { prices: unknown[] }).prices).toHaveLength(1);
    });

    it('resolves an ambiguous symbol deterministically and names the alternatives', async () => {
        const result = await server.call('get_price', { symbols: ['uni'] });
        expect(result.structuredContent).toMatchObject({
            prices: [{ symbol: 'UNI', name: 'Uniswap', token_id: 3386, alternatives: [{ symbol: 'UNI', name: 'Universe Token', token_id: 31007 }] }]
        });
        expect(textOf(result)).toContain('Universe Token (id 31007)');
        const byId = await server.call('get_price', { symbols: [31007] });
        expect(byId.structuredContent).toMatchObject({ prices: [{ name: 'Universe Token', price_usd: 0.0021 }] });
    });

    it('returns unknown symbols in unresolved[] with close suggestions, and prices the rest', async () => {
        await server.call('get_price', { symbols: ['ETH'] });
        const result = await server.call('get_price', { symbols: ['ETHH', 'BTC', 'no such coin'] });
        expect(result.isError).toBeFalsy();
        const structured = result.structuredContent as { prices: Array<{ symbol: string }>; unresolved: Array<{ input: string; suggestions: string[] }> };
        expect(structured.prices.map(row => row.symbol)).toEqual(['BTC']);
        expect(structured.unresolved).toEqual([
            { input: 'ETHH', reason: expect.any(String), suggestions: ['ETH (Ethereum, id 3306)'] },
            { input: 'no such coin', reason: expect.any(String), suggestions: [] }
        ]);
        expect(textOf(result)).toContain('Did you mean ETH (Ethereum, id 3306)?');
    });

    it('pays for a repeated question once', async () => {
        await server.call('get_price', { symbols: ['BTC', 'ETH'] });
        const calls = fake.count();
        await server.call('get_price', { symbols: ['ETH', 'BTC'] });
        expect(fake.count()).toBe(calls);
    });
});

describe('get_grades', () => {
    it("answers SOL's grades with every field present or null", async () => {
        const result = await server.call('get_grades', { symbol: 'sol' });
        expect(result.structuredContent).toMatchObject({
            symbol: 'SOL',
            name: 'Solana',
            token_id: 3988,
            trader_grade: expect.any(Number),
            investor_grade: expect.any(Number),
            tm_grade: expect.any(Number),
            signal_label: expect.stringMatching(/bullish|bearish|neutral/),
            not_available: [],
            stale_age_s: null
        });
        expect(textOf(result)).toMatch(/^SOL \(Solana, id 3988\)\nTrader grade/);
        expect(textOf(result).length).toBeLessThan(TEXT_BUDGET);
    });

    it('says "not available" instead of failing when /tm-grade is gone', async () => {
        fake.removeEndpoint('/tm-grade');
        const result = await server.call('get_grades', { symbol: 'ETH' });
        expect(result.isError).toBeFalsy();
        expect(result.structuredContent).toMatchObject({ tm_grade: null, trader_grade: 84.2, not_available: ['tm-grade'] });
        expect(textOf(result)).toContain('Not available upstream: tm-grade');
    });

    it('answers an unknown symbol with an isError result that says what to pass', async () => {
        const result = await server.call('get_grades', { symbol: 'QQQQQ' });
        expect(result.isError).toBe(true);
        expect(textOf(result)).toMatch(/No Token Metrics token has this symbol or name.*numeric Token Metrics id/s);
    });
});

describe('list_moonshots', () => {
    it('filters by market cap and trader grade and keeps 50 past picks under the text budget', async () => {
        const filtered = await server.call('list_moonshots', { max_market_cap_usd: 50_000_000, min_trader_grade: 80 });
        const rows = (filtered.structuredContent as { moonshots: Array<{ market_cap_usd: number; trader_grade: number }> }).moonshots;
        expect(rows.length).toBeGreaterThan(0);
        expect(rows.every(row => row.market_cap_usd <= 50_000_000 && row.trader_grade >= 80)).toBe(true);
        const past = await server.call('list_moonshots', { type: 'past', limit: 50 });
        expect((past.structuredContent as { moonshots: unknown[] }).moonshots.length).toBe(26);
        expect(textOf(past).length).toBeLessThan(TEXT_BUDGET);
        expect(fake.count('/moonshot-tokens')).toBe(2);
    });

    it('rejects a limit above 50 with a clear message', async () => {
        const result = await server.call('list_moonshots', { limit: 500 });
        expect(result.isError).toBe(true);
        expect(textOf(result)).toMatch(/limit/);
        expect(fake.count()).toBe(0);
    });
});

describe('explain_signal', () => {
    it('explains a bullish ETH with dated evidence in two upstream calls', async () => {
        const result = await server.call('explain_signal', { symbol: 'ETH' });
        const structured = result.structuredContent as { signal: string; since: string; checks: Array<{ name: string; status: string; evidence: string }>; summary: string };
        expect(structured.signal).toBe('bullish');
        expect(structured.since).toMatch(/^\d{4}-\d{2}-\d{2}$/);
        expect(structured.checks.map(check => check.name)).toEqual([
            'volume_confirms_price',
            'btc_eth_alignment',
            'flip_timing',
            'signal_stability',
            'grade_momentum',
            'narrative_fit'
        ]);
        expect(structured.checks.find(check => check.name === 'volume_confirms_price')).toMatchObject({ status: 'pass', evidence: expect.stringMatching(/\d{4}-\d{2}-\d{2}/) });
        expect(structured.checks.find(check => check.name === 'narrative_fit')?.status).toBe('unknown');
        expect(structured.summary).toMatch(/not investment advice/);
        expect(fake.count('/trading-signals')).toBe(1);
        expect(fake.calls.find(call => call.path === '/trading-signals')?.query.token_id).toBe('3306,3375');
        expect(textOf(result).length).toBeLessThan(TEXT_BUDGET);
    });

    it('shares the signal history with get_grades', async () => {
        await server.call('explain_signal', { symbol: 'BTC' });
        const before = fake.count('/trading-signals');
        await server.call('get_grades', { symbol: 'BTC' });
        expect(fake.count('/trading-signals')).toBe(before);
    });
});

describe('failures become isError results and the server keeps serving', () => {
    it('explains how to set a key when none is configured', async () => {
        const keyless = await inProcessServer(fake, { TOKEN_METRICS_API_KEY: '' });
        try {
            const result = await keyless.call('get_price', { symbols: ['BTC'] });
            expect(result.isError).toBe(true);
            expect(textOf(result)).toMatch(/TOKEN_METRICS_API_KEY.*TOKEN_METRICS_API_KEYS.*TOKEN_METRICS_API_KEY_FILE/);
            expect(fake.count()).toBe(0);
            expect((await keyless.client.listTools()).tools).toHaveLength(4);
        } finally {
            await keyless.close();
        }
    });

    it('reports a revoked key, then serves once the upstream accepts it again', async () => {
        fake.revoke('tm-inproc-0000-9f2c');
        const revoked = await server.call('get_grades', { symbol: 'ETH' });
        expect(revoked.isError).toBe(true);
        expect(textOf(revoked)).toMatch(/rejected every configured key \(tm-…9f2c\)/);
        expect(textOf(revoked)).not.toContain('tm-inproc-0000-9f2c');
    });

    it('reports an upstream outage, then answers normally when it recovers', async () => {
        fake.inject({ fault: { kind: 'status', status: 503 }, times: 4 });
        const down = await server.call('get_price', { symbols: ['BTC'] });
        expect(down.isError).toBe(true);
        expect(textOf(down)).toMatch(/unavailable.*try again/i);
        const up = await server.call('get_price', { symbols: ['BTC'] });
        expect(up.isError).toBeFalsy();
    });

    it('serves a stale price with its age when the upstream is down', async () => {
        const clock = new FakeClock();
        const timed = await inProcessServer(fake, {}, clock);
        try {
            await timed.call('get_price', { symbols: ['ETH'] });
            clock.advance(10 * 60_000);
            fake.inject({ fault: { kind: 'status', status: 500 } });
            const result = await timed.call('get_price', { symbols: ['ETH'] });
            expect(result.isError).toBeFalsy();
            // Ten minutes old, plus the retry backoff the fake clock spent before giving up on the upstream.
            expect(result.structuredContent).toMatchObject({ prices: [{ symbol: 'ETH', price_usd: 3412.55 }], stale_age_s: expect.any(Number) });
            expect((result.structuredContent as { stale_age_s: number }).stale_age_s).toBeGreaterThanOrEqual(600);
            expect((result.structuredContent as { stale_age_s: number }).stale_age_s).toBeLessThan(660);
            expect(textOf(result)).toMatch(/STALE/);
        } finally {
            await timed.close();
        }
    });

    it('bounds a whole tool call by the deadline, not just each upstream request', async () => {
        const strict = await inProcessServer(fake, { CRYPTO_INTEL_TIMEOUT_MS: '300', CRYPTO_INTEL_DEADLINE_MS: '400' });
        fake.latencyMs = 200;
        try {
            // "solana" needs a symbol lookup, a name lookup and a price: each answers in time, the three together do not.
            const result = await strict.call('get_price', { symbols: ['solana'] });
            expect(result.isError).toBe(true);
            expect(textOf(result)).toMatch(/did not answer within 0\.4 s/);
            expect(fake.count()).toBeLessThanOrEqual(3);
        } finally {
            fake.latencyMs = 0;
            await strict.close();
        }
    });

    it('reports drifted upstream JSON as a format problem', async () => {
        fake.inject({ fault: { kind: 'drift' }, path: '/moonshot-tokens' });
        const result = await server.call('list_moonshots', {});
        expect(result.isError).toBe(true);
        expect(textOf(result)).toMatch(/unexpected format/);
    });
});
