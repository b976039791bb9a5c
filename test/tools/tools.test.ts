import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { systemClock } from '../../src/clock.js';
import { runClock } from '../fake-upstream/clocked.js';
import { FakeUpstream, fixture, fixtureNumber as num } from '../fake-upstream/index.js';
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
        expect(tools).toHaveLength(5);
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
            prices: [
                {
                    symbol: 'UNI',
                    name: 'Uniswap',
                    token_id: 3386,
                    alternatives: [{ symbol: 'UNI', name: 'Universe Token', token_id: 31007 }]
                }
            ]
        });
        expect(textOf(result)).toContain('Universe Token (id 31007)');
        const byId = await server.call('get_price', { symbols: [31007] });
        expect(byId.structuredContent).toMatchObject({ prices: [{ name: 'Universe Token', price_usd: 0.0021 }] });
    });

    it('returns unknown symbols in unresolved[] with close suggestions, and prices the rest', async () => {
        await server.call('get_price', { symbols: ['ETH'] });
        const result = await server.call('get_price', { symbols: ['ETHH', 'BTC', 'no such coin'] });
        expect(result.isError).toBeFalsy();
        const structured = result.structuredContent as {
            prices: Array<{ symbol: string }>;
            unresolved: Array<{ input: string; suggestions: string[] }>;
        };
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
    it("answers SOL's grades with today's taxonomy, values as the upstream sent them, and the data's own day", async () => {
        const result = await server.call('get_grades', { symbol: 'sol' });
        const tm = fixture('tm-grade').find(row => row.TOKEN_ID === 3988)!;
        const newest = fixture('trading-signals')
            .filter(row => row.TOKEN_ID === 3988)
            .sort((a, b) => String(b.DATE).localeCompare(String(a.DATE)))[0]!;
        expect(result.structuredContent).toEqual({
            symbol: 'SOL',
            name: 'Solana',
            token_id: 3988,
            tm_grade: num(tm.TM_GRADE),
            tm_grade_signal: tm.TM_GRADE_SIGNAL,
            momentum: tm.MOMENTUM ?? null,
            tm_grade_change_24h_pts: num(tm.TM_TRADER_GRADE_24H_CHANGE),
            tm_grade_change_24h_pct: num(tm.TM_GRADE_24h_PCT_CHANGE),
            trader_grade: newest.TM_TRADER_GRADE,
            trader_grade_band: expect.any(String),
            investor_grade: newest.TM_INVESTOR_GRADE,
            fundamental_grade: num(tm.FUNDAMENTAL_GRADE),
            fundamental_class: tm.FUNDAMENTAL_GRADE_CLASS ?? null,
            data_date: fake.world.shiftedDate(String(newest.DATE)).slice(0, 10),
            fetched_at: expect.any(String)
        });
        expect(textOf(result)).toMatch(/^SOL \(Solana, id 3988\)\nTM grade/);
        expect(textOf(result)).toContain(`data of ${fake.world.shiftedDate(String(newest.DATE)).slice(0, 10)}`);
        expect(textOf(result).length).toBeLessThan(TEXT_BUDGET);
        expect(fake.log().map(line => line.split(' ')[0])).toEqual(['/tokens', '/tm-grade', '/trading-signals']);
    });

    it('adds the fundamental and technology grades when asked, one credit each', async () => {
        const result = await server.call('get_grades', { symbol: 'BTC', include: ['fundamental', 'technology'] });
        const fundamental = fixture('fundamental-grade').find(row => row.TOKEN_ID === 3375)!;
        const technology = fixture('technology-grade').find(row => row.TOKEN_ID === 3375)!;
        expect(result.structuredContent).toMatchObject({
            fundamental_grade: num(fundamental.FUNDAMENTAL_GRADE),
            fundamental_class: fundamental.FUNDAMENTAL_GRADE_CLASS,
            technology_grade: num(technology.TECHNOLOGY_GRADE)
        });
        expect(fake.count('/fundamental-grade')).toBe(1);
        expect(fake.count('/technology-grade')).toBe(1);
        expect(fake.count('/trader-grades') + fake.count('/investor-grades')).toBe(0);
    });

    it('answers without the sources that are gone or outside the plan, and says which', async () => {
        fake.removeEndpoint('/tm-grade');
        fake.inject({ path: '/technology-grade', fault: { kind: 'forbidden', message: 'Not available on your plan' } });
        const result = await server.call('get_grades', { symbol: 'ETH', include: ['technology'] });
        expect(result.isError).toBeFalsy();
        expect(result.structuredContent).toMatchObject({
            tm_grade: null,
            technology_grade: null,
            trader_grade: 84.2,
            unavailable: ['tm-grade: not served upstream', 'technology-grade: not in your plan']
        });
        expect(textOf(result)).toContain('Unavailable: tm-grade: not served upstream; technology-grade: not in your plan.');
        // Remembered for the endpoint: another token does not pay for the same 404 again.
        await server.call('get_grades', { symbol: 'SOL' });
        expect(fake.count('/tm-grade')).toBe(1);
    });

    it('keeps answering when one field drifts: that field is null', async () => {
        fake.inject({ path: '/tm-grade', fault: { kind: 'drift-field', field: 'TM_GRADE', value: { score: 71 } } });
        const result = await server.call('get_grades', { symbol: 'ETH' });
        expect(result.isError).toBeFalsy();
        expect(result.structuredContent).toMatchObject({ tm_grade: null, tm_grade_signal: expect.any(String), trader_grade: 84.2 });
    });

    it('answers an unknown symbol with an isError result that says what to pass', async () => {
        const result = await server.call('get_grades', { symbol: 'QQQQQ' });
        expect(result.isError).toBe(true);
        expect(textOf(result)).toMatch(/No Token Metrics token has this symbol or name.*numeric Token Metrics id/s);
    });
});

describe('list_moonshots', () => {
    it('lists active picks with live ROI and full symbols, without looking up token ids', async () => {
        const result = await server.call('list_moonshots', { limit: 50 });
        const sent = fixture('moonshot-tokens-active');
        const rows = (result.structuredContent as { moonshots: Array<Record<string, unknown>> }).moonshots;
        expect(rows.map(row => row.symbol)).toEqual(sent.map(row => row.TOKEN_SYMBOL));
        expect(rows[0]).toEqual({
            symbol: sent[0]!.TOKEN_SYMBOL,
            name: sent[0]!.TOKEN_NAME,
            trader_grade: num(sent[0]!.TM_TRADER_GRADE),
            // Whole dollars and times to the second: the cents and milliseconds are noise a model would pay for.
            market_cap_usd: Math.round(num(sent[0]!.MARKET_CAP)!),
            volume_24h_usd: Math.round(num(sent[0]!.VOLUME_24H)!),
            moonshot_at: fake.world.shiftedDate(String(sent[0]!.MOONSHOT_AT)).replace('.000Z', 'Z'),
            roi_pct: num(sent[0]!.MOONSHOT_ROI)
        });
        const longest = sent.map(row => String(row.TOKEN_SYMBOL)).sort((a, b) => b.length - a.length)[0]!;
        expect(longest.length).toBeGreaterThan(8);
        expect(textOf(result)).toContain(longest);
        expect(fake.log().map(line => line.split(' ')[0])).toEqual(['/moonshot-tokens']);
    });

    it('shows past picks with their end date and final ROI, and filters by market cap and grade', async () => {
        const past = await server.call('list_moonshots', { type: 'past', limit: 50 });
        const sent = fixture('moonshot-tokens-past');
        const rows = (past.structuredContent as { moonshots: Array<{ moonshot_end_at: string | null; roi_pct: number | null }> }).moonshots;
        expect(rows).toHaveLength(sent.length);
        expect(rows[0]).toMatchObject({
            moonshot_end_at: fake.world.shiftedDate(String(sent[0]!.MOONSHOT_END_AT)).replace('.000Z', 'Z'),
            roi_pct: num(sent[0]!.MOONSHOT_ROI)
        });
        expect(textOf(past)).toMatch(/ENDED\s+ROI/);
        expect(textOf(past).length).toBeLessThan(TEXT_BUDGET);
        const cap = Math.max(...sent.map(row => Number(row.MARKET_CAP))) - 1;
        const filtered = await server.call('list_moonshots', { type: 'past', max_market_cap_usd: cap, min_trader_grade: 1 });
        const kept = (filtered.structuredContent as { moonshots: Array<{ market_cap_usd: number }> }).moonshots;
        expect(kept.length).toBeGreaterThan(0);
        expect(kept.every(row => row.market_cap_usd <= cap)).toBe(true);
        expect(fake.count('/moonshot-tokens')).toBe(1);
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
        const structured = result.structuredContent as {
            signal: string;
            since: string;
            checks: Array<{ name: string; status: string; evidence: string }>;
            summary: string;
        };
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
        expect(structured.checks.find(check => check.name === 'volume_confirms_price')).toMatchObject({
            status: 'pass',
            evidence: expect.stringMatching(/\d{4}-\d{2}-\d{2}/)
        });
        expect(structured.checks.find(check => check.name === 'narrative_fit')?.status).toBe('unknown');
        expect(structured.summary).toMatch(/not investment advice/i);
        expect(fake.count('/trading-signals')).toBe(1);
        expect(fake.calls.find(call => call.path === '/trading-signals')?.query.token_id).toBe('3306,3375');
        // Every number the explanation needs, in at most 1,200 characters of text for the model.
        expect(textOf(result).length).toBeLessThanOrEqual(1_200);
        expect(textOf(result)).not.toMatch(/ETH is bullish since/);
    });

    it('shares the signal history with get_grades', async () => {
        await server.call('explain_signal', { symbol: 'BTC' });
        const before = fake.count('/trading-signals');
        await server.call('get_grades', { symbol: 'BTC' });
        expect(fake.count('/trading-signals')).toBe(before);
    });
});

describe('one drifted field never fails a tool', () => {
    /** Which tool call reads each endpoint; tokens are named by id so that /tokens' own fields are not the lookup key. */
    const READERS: Array<{ endpoint: string; fixture: Parameters<typeof fixture>[0]; tool: string; args: Record<string, unknown> }> = [
        { endpoint: '/tokens', fixture: 'tokens', tool: 'get_price', args: { symbols: [3375] } },
        { endpoint: '/price', fixture: 'price', tool: 'get_price', args: { symbols: [3375] } },
        { endpoint: '/tm-grade', fixture: 'tm-grade', tool: 'get_grades', args: { symbol: 3375 } },
        {
            endpoint: '/fundamental-grade',
            fixture: 'fundamental-grade',
            tool: 'get_grades',
            args: { symbol: 3375, include: ['fundamental'] }
        },
        { endpoint: '/technology-grade', fixture: 'technology-grade', tool: 'get_grades', args: { symbol: 3375, include: ['technology'] } },
        { endpoint: '/trading-signals', fixture: 'trading-signals', tool: 'explain_signal', args: { symbol: 3375 } },
        { endpoint: '/daily-ohlcv', fixture: 'daily-ohlcv', tool: 'explain_signal', args: { symbol: 3375 } },
        { endpoint: '/moonshot-tokens', fixture: 'moonshot-tokens-active', tool: 'list_moonshots', args: {} }
    ];
    const IDENTITY = new Set(['TOKEN_ID']);

    it.each(READERS)(
        '$endpoint: every field replaced by an object, a list or "n/a" still answers ($tool)',
        async ({ endpoint, fixture: name, tool, args }) => {
            const fields = [...new Set(fixture(name).flatMap(row => Object.keys(row)))].filter(field => !IDENTITY.has(field));
            for (const field of fields) {
                for (const value of [{ unexpected: true }, [1, 2], 'n/a']) {
                    fake.reset();
                    fake.inject({ path: endpoint, fault: { kind: 'drift-field', field, value } });
                    const fresh = await inProcessServer(fake);
                    try {
                        const result = await fresh.call(tool, args);
                        expect({ field, value, isError: result.isError ?? false, text: result.isError ? textOf(result) : '' }).toEqual({
                            field,
                            value,
                            isError: false,
                            text: ''
                        });
                    } finally {
                        await fresh.close();
                    }
                }
            }
        }
    );
});

describe('failures become isError results and the server keeps serving', () => {
    it('explains how to set a key when none is configured', async () => {
        const keyless = await inProcessServer(fake, { TOKEN_METRICS_API_KEY: '' });
        try {
            const result = await keyless.call('get_price', { symbols: ['BTC'] });
            expect(result.isError).toBe(true);
            expect(textOf(result)).toMatch(/TOKEN_METRICS_API_KEY.*TOKEN_METRICS_API_KEYS.*TOKEN_METRICS_API_KEY_FILE/);
            expect(fake.count()).toBe(0);
            expect((await keyless.client.listTools()).tools).toHaveLength(5);
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
            expect(result.structuredContent).toMatchObject({
                prices: [{ symbol: 'ETH', price_usd: 3412.55 }],
                stale_age_s: expect.any(Number)
            });
            expect((result.structuredContent as { stale_age_s: number }).stale_age_s).toBeGreaterThanOrEqual(600);
            expect((result.structuredContent as { stale_age_s: number }).stale_age_s).toBeLessThan(660);
            expect(textOf(result)).toMatch(/STALE/);
        } finally {
            await timed.close();
        }
    });

    it('bounds a whole tool call by the deadline, not just each upstream request', async () => {
        const clock = new FakeClock();
        const strict = await inProcessServer(fake, { CRYPTO_INTEL_TIMEOUT_MS: '3000', CRYPTO_INTEL_DEADLINE_MS: '4000' }, clock);
        fake.clock = clock;
        fake.latencyMs = 2_000;
        try {
            // "solana" needs a symbol lookup, a name lookup and a price: each answers in time (2 s of fake time, of 3),
            // the three together do not (6 s, of 4).
            const call = strict.call('get_price', { symbols: ['solana'] });
            await runClock(fake, clock, call, 3_000);
            const result = await call;
            expect(result.isError).toBe(true);
            expect(textOf(result)).toMatch(/did not answer within 4\.0 s/);
            expect(fake.count()).toBeLessThanOrEqual(3);
        } finally {
            fake.latencyMs = 0;
            fake.clock = systemClock;
            await strict.close();
        }
    });

    it('answers rows whose every number drifted, with those numbers null', async () => {
        fake.inject({ fault: { kind: 'drift' }, path: '/moonshot-tokens' });
        const result = await server.call('list_moonshots', {});
        expect(result.isError).toBeFalsy();
        const rows = (result.structuredContent as { moonshots: Array<{ symbol: string; roi_pct: number | null }> }).moonshots;
        expect(rows.length).toBeGreaterThan(0);
        expect(rows.every(row => row.symbol.length > 0 && row.roi_pct === null)).toBe(true);
    });

    it('reports an answer with no usable row as a format problem, remembered for a minute', async () => {
        fake.inject({ fault: { kind: 'drift-field', field: 'TOKEN_SYMBOL', value: ['?'] }, path: '/moonshot-tokens' });
        fake.inject({ fault: { kind: 'drift-field', field: 'TOKEN_NAME', value: { name: '?' } }, path: '/moonshot-tokens' });
        const result = await server.call('list_moonshots', {});
        expect(result.isError).toBe(true);
        expect(textOf(result)).toMatch(/unexpected format.*crypto-intel-mcp doctor.*remembered for another 60 s/s);
        await server.call('list_moonshots', {});
        expect(fake.count('/moonshot-tokens')).toBe(1);
    });
});
