import type { Client } from '@modelcontextprotocol/sdk/client/index.js';
import type { CallToolResult } from '@modelcontextprotocol/sdk/types.js';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { FakeUpstream, fixture, fixtureNumber as num } from '../fake-upstream/index.js';
import { startServer, type ServerProcess } from '../helpers/server-process.js';

/**
 * The built server over stdio, against the fake serving the fixture rows (shaped as the vendor's own code shows them,
 * see test/fixtures/upstream/README.md): every value a tool returns is the value the upstream sent, and every
 * answer names the day its data describes.
 */

const KEY = 'tm-fidelity-0000-1111-2222-f1de';

let fake: FakeUpstream;
let client: Client;
let server: ServerProcess;

const text = (result: CallToolResult): string => result.content.map(part => (part.type === 'text' ? part.text : '')).join('\n');
const call = async (name: string, args: Record<string, unknown>) => (await client.callTool({ name, arguments: args })) as CallToolResult;
/** The day the fake serves for a fixture date. */
const servedDay = (date: unknown): string => fake.world.shiftedDate(String(date)).slice(0, 10);

/** A token's signal rows in the fixture, newest first. */
function signalRows(tokenId: number): Array<Record<string, unknown>> {
    return fixture('trading-signals')
        .filter(row => row.TOKEN_ID === tokenId)
        .sort((a, b) => String(b.DATE).localeCompare(String(a.DATE)));
}

/** The latest day the strategy fired (a non-zero TRADING_SIGNAL) in the fixture: the day the current trend began. */
const lastFlip = (tokenId: number) => signalRows(tokenId).find(row => row.TRADING_SIGNAL !== 0)!;

beforeAll(async () => {
    fake = await FakeUpstream.start();
    ({ client, server } = await startServer({
        TOKEN_METRICS_API_KEY: KEY,
        TOKEN_METRICS_BASE_URL: fake.baseUrl,
        CRYPTO_INTEL_CACHE_DIR: 'off'
    }));
});

afterAll(async () => {
    await server?.close();
    await fake?.close();
});

beforeEach(() => fake.reset());

describe('the built server reads the upstream as it really is', () => {
    it('get_price: the prices the upstream sent, string or number, for symbols, names and ids', async () => {
        const result = await call('get_price', { symbols: ['BTC', 'pepe', 'avalanche', 31007] });
        expect(result.isError).toBeFalsy();
        const sent = new Map(fixture('price').map(row => [row.TOKEN_ID, num(row.CURRENT_PRICE)]));
        const prices = (result.structuredContent as { prices: Array<{ token_id: number; price_usd: number }> }).prices;
        expect(prices.map(row => [row.token_id, row.price_usd])).toEqual([3375, 20211, 3600, 31007].map(id => [id, sent.get(id)]));
        expect(text(result)).toContain('$97,250.12');
    });

    it('get_grades: the TM grade row, the newest signal row and the day it describes', async () => {
        const result = await call('get_grades', { symbol: 'ETH', include: ['fundamental', 'technology'] });
        expect(result.isError).toBeFalsy();
        const tm = fixture('tm-grade').find(row => row.TOKEN_ID === 3306)!;
        const newest = signalRows(3306)[0]!;
        const fundamental = fixture('fundamental-grade').find(row => row.TOKEN_ID === 3306)!;
        const technology = fixture('technology-grade').find(row => row.TOKEN_ID === 3306)!;
        expect(result.structuredContent).toMatchObject({
            symbol: 'ETH',
            token_id: 3306,
            tm_grade: num(tm.TM_GRADE),
            tm_grade_signal: tm.TM_GRADE_SIGNAL,
            momentum: tm.MOMENTUM ?? null,
            tm_grade_change_24h_pts: num(tm.TM_TRADER_GRADE_24H_CHANGE),
            tm_grade_change_24h_pct: num(tm.TM_GRADE_24h_PCT_CHANGE),
            trader_grade: num(newest.TM_TRADER_GRADE),
            investor_grade: num(newest.TM_INVESTOR_GRADE),
            fundamental_grade: num(fundamental.FUNDAMENTAL_GRADE),
            fundamental_class: fundamental.FUNDAMENTAL_GRADE_CLASS,
            technology_grade: num(technology.TECHNOLOGY_GRADE),
            data_date: servedDay(newest.DATE)
        });
        // Every source answered: nothing to name as unavailable, so the field is left out.
        expect(result.structuredContent).not.toHaveProperty('unavailable');
        expect(text(result)).toContain(`data of ${servedDay(newest.DATE)}`);
    });

    it('list_moonshots: the picks as sent, without a token id, with live and final ROI', async () => {
        const active = await call('list_moonshots', { type: 'active', limit: 50 });
        const past = await call('list_moonshots', { type: 'past', limit: 50 });
        for (const [result, name] of [
            [active, 'moonshot-tokens-active'],
            [past, 'moonshot-tokens-past']
        ] as const) {
            expect(result.isError).toBeFalsy();
            const rows = (result.structuredContent as { moonshots: Array<Record<string, unknown>> }).moonshots;
            // As sent, in whole dollars and to the second; no token id (the rows carry none), and an end time for past picks.
            const dollars = (value: unknown) => Math.round(num(value)!);
            const second = (time: string) => fake.world.shiftedDate(time).replace('.000Z', 'Z');
            expect(rows).toEqual(
                fixture(name).map(row => ({
                    symbol: row.TOKEN_SYMBOL,
                    name: row.TOKEN_NAME,
                    trader_grade: num(row.TM_TRADER_GRADE),
                    market_cap_usd: dollars(row.MARKET_CAP),
                    volume_24h_usd: dollars(row.VOLUME_24H),
                    moonshot_at: second(String(row.MOONSHOT_AT)),
                    ...(name === 'moonshot-tokens-past'
                        ? { moonshot_end_at: typeof row.MOONSHOT_END_AT === 'string' ? second(row.MOONSHOT_END_AT) : null }
                        : {}),
                    roi_pct: num(row.MOONSHOT_ROI)
                }))
            );
            for (const row of rows) expect(text(result)).toContain(String(row.symbol));
        }
        expect(fake.count('/tokens')).toBe(0);
    });

    it('explain_signal: the direction from TOKEN_TREND and the flip day, when the latest TRADING_SIGNAL is 0', async () => {
        // The one published real row: BTC on 2025-04-10, TRADING_SIGNAL 0, TOKEN_TREND -1.
        const newest = signalRows(3375)[0]!;
        expect(newest).toMatchObject({ DATE: '2025-04-10T00:00:00.000Z', TRADING_SIGNAL: 0, TOKEN_TREND: -1 });
        const btc = await call('explain_signal', { symbol: 'BTC' });
        expect(btc.isError).toBeFalsy();
        expect(btc.structuredContent).toMatchObject({
            symbol: 'BTC',
            signal: 'bearish',
            since: servedDay(lastFlip(3375).DATE),
            trader_grade: num(newest.TM_TRADER_GRADE),
            signal_rows: expect.any(Number),
            data_date: servedDay(newest.DATE)
        });
        expect(btc.structuredContent).not.toHaveProperty('since_is_lower_bound');
        expect(text(btc)).toMatch(new RegExp(`^BTC \\(Bitcoin\\) bearish since ${servedDay(lastFlip(3375).DATE)}`));
        expect(text(btc)).toContain(`data of ${servedDay(newest.DATE)}`);

        const eth = await call('explain_signal', { symbol: 'ETH' });
        expect(signalRows(3306)[0]!.TRADING_SIGNAL).toBe(0);
        expect(eth.structuredContent).toMatchObject({
            signal: 'bullish',
            since: servedDay(lastFlip(3306).DATE),
            data_date: servedDay(signalRows(3306)[0]!.DATE)
        });
        const checks = (eth.structuredContent as { checks: Array<{ name: string; evidence: string }>; signal_rows: number }).checks;
        const rows = (eth.structuredContent as { signal_rows: number }).signal_rows;
        expect(checks.find(check => check.name === 'signal_stability')?.evidence).toMatch(new RegExp(`in ${rows} daily rows`));
        expect(checks.find(check => check.name === 'btc_eth_alignment')?.evidence).toContain(
            `BTC bearish since ${servedDay(lastFlip(3375).DATE)}`
        );
    });

    it('keeps answering when one field drifts, with that field null', async () => {
        fake.inject({ path: '/price', fault: { kind: 'drift-field', field: 'CURRENT_PRICE', value: { usd: 1 } } });
        const result = await call('get_price', { symbols: ['SOL'] });
        expect(result.isError).toBeFalsy();
        expect(result.structuredContent).toMatchObject({ prices: [{ symbol: 'SOL', price_usd: null }] });
        expect(server.stderr).toMatch(/upstream field drifted: read as null.*CURRENT_PRICE/);
    });

    it('writes nothing but JSON-RPC to stdout', () => {
        expect(server.nonProtocolLines()).toEqual([]);
    });
});
