import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import type { Token } from '../../src/domain/market.js';
import { SymbolCompleter, completeListItem } from '../../src/prompts/symbols.js';
import { silentLogger } from '../../src/logger.js';
import { usd } from '../../tools/format.js';
import { FakeUpstream } from '../fake-upstream/index.js';
import { session, textOf, type Session } from '../usage/support.js';

let fake: FakeUpstream;
let server: Session;

beforeAll(async () => {
    fake = await FakeUpstream.start();
});
afterAll(async () => {
    await fake.close();
});
beforeEach(async () => {
    fake.reset();
    server = await session(fake);
});
afterEach(async () => {
    await server.close();
});

const promptText = (result: { messages: Array<{ content: { type: string; text?: string } }> }): string =>
    result.messages.map(message => (message.content.type === 'text' ? message.content.text : '')).join('\n');
const complete = async (prompt: string, argument: string, value: string, context?: Record<string, string>) =>
    (
        await server.client.complete({
            ref: { type: 'ref/prompt', name: prompt },
            argument: { name: argument, value },
            ...(context ? { context: { arguments: context } } : {})
        })
    ).completion.values;

describe('prompts/list', () => {
    it('offers token_briefing, moonshot_scan and compare_tokens with their arguments', async () => {
        const { prompts } = await server.client.listPrompts();
        expect(prompts.map(prompt => [prompt.name, prompt.arguments?.map(arg => [arg.name, arg.required ?? false])])).toEqual([
            ['token_briefing', [['symbol', true]]],
            [
                'moonshot_scan',
                [
                    ['max_market_cap', false],
                    ['min_trader_grade', false]
                ]
            ],
            ['compare_tokens', [['symbols', true]]]
        ]);
        for (const prompt of prompts) {
            expect(prompt.title).toEqual(expect.any(String));
            expect(prompt.description).toMatch(/credit/);
            for (const arg of prompt.arguments ?? []) expect(arg.description).toEqual(expect.any(String));
        }
        expect(fake.calls).toEqual([]);
    });
});

describe('prompts/get', () => {
    it('token_briefing hands the model real price, grades and signal evidence from the same cache the tools use', async () => {
        const result = await server.client.getPrompt({ name: 'token_briefing', arguments: { symbol: 'sol' } });
        const text = promptText(result);
        const sol = fake.world.tokens.find(token => token.symbol === 'SOL')!;
        expect(result.messages).toHaveLength(1);
        expect(result.messages[0]!.role).toBe('user');
        expect(text).toMatch(/^Brief me on SOL \(Solana\) using only the Token Metrics data below/);
        expect(text).toContain(usd(sol.price));
        expect(text).toMatch(/## Grades\nSOL \(Solana, id 3988\)\nTM grade \d/);
        expect(text).toMatch(/## Signal and its evidence\nSOL \(Solana\) (bullish|bearish|neutral)/);
        expect(text).toMatch(/\[[+?-]\] volume: /);
        expect(text).toContain('not investment advice');
        const credits = fake.calls.length;
        // The tools now answer from what the prompt paid for.
        await server.call('get_grades', { symbol: 'SOL' });
        await server.call('explain_signal', { symbol: 'SOL' });
        await server.call('get_price', { symbols: ['SOL'] });
        expect(fake.calls.length).toBe(credits);
    });

    it('token_briefing for an unknown token is an invalid-params error that says so', async () => {
        await expect(server.client.getPrompt({ name: 'token_briefing', arguments: { symbol: 'NOPE404' } })).rejects.toThrow(
            /No Token Metrics token/
        );
    });

    it('moonshot_scan lists the filtered picks, as list_moonshots would', async () => {
        const result = await server.client.getPrompt({
            name: 'moonshot_scan',
            arguments: { max_market_cap: '50M', min_trader_grade: '60' }
        });
        const text = promptText(result);
        expect(text).toMatch(/^Here are today's active Token Metrics moonshots \(market cap at most \$50\.0M, trader grade at least 60\)/);
        const tool = await server.call('list_moonshots', {
            type: 'active',
            limit: 10,
            max_market_cap_usd: 50_000_000,
            min_trader_grade: 60
        });
        expect(text).toContain(textOf(tool));
        expect(fake.count('/moonshot-tokens')).toBe(1);
        await expect(server.client.getPrompt({ name: 'moonshot_scan', arguments: { max_market_cap: 'lots' } })).rejects.toThrow(
            /max_market_cap must be a number/
        );
        const unfiltered = promptText(await server.client.getPrompt({ name: 'moonshot_scan', arguments: {} }));
        expect(unfiltered).toMatch(/^Here are today's active Token Metrics moonshots, fetched just now/);
    });

    it('compare_tokens sets 2 to 5 tokens side by side for one request per kind of data', async () => {
        const result = await server.client.getPrompt({ name: 'compare_tokens', arguments: { symbols: 'BTC, eth,SOL' } });
        const text = promptText(result);
        expect(text).toMatch(/^Compare BTC, ETH, SOL using only the Token Metrics data below/);
        expect(text).toContain('$97,250.12');
        expect(text).toMatch(/^BTC \(Bitcoin\) +\$97,250\.12 +\d+\.\d/m);
        expect(text).toMatch(/^ETH \(Ethereum\) .*(bullish|bearish|neutral) since/m);
        expect(
            fake
                .log()
                .map(line => line.split(' ')[0])
                .sort()
        ).toEqual(['/price', '/tm-grade', '/tokens', '/trading-signals']);
        await expect(server.client.getPrompt({ name: 'compare_tokens', arguments: { symbols: 'BTC' } })).rejects.toThrow(
            /2 to 5 different tokens/
        );
        await expect(server.client.getPrompt({ name: 'compare_tokens', arguments: { symbols: 'A,B,C,D,E,F' } })).rejects.toThrow(
            /2 to 5 different tokens/
        );
    });
});

describe('completion/complete', () => {
    it('completes "SO" with SOL for one /tokens request, and a prefix asked before for none', async () => {
        expect(await complete('token_briefing', 'symbol', 'SO')).toContain('SOL');
        expect(fake.log()).toEqual(['/tokens tm-…9f2c -> 200']);
        expect(fake.calls[0]!.query).toMatchObject({ limit: '100', page: '1' });
        expect(await complete('token_briefing', 'symbol', 'so')).toContain('SOL');
        expect(await complete('token_briefing', 'symbol', 'SOL')).toEqual(['SOL']);
        expect(await complete('token_briefing', 'symbol', 'sola')).toEqual(['SOL']); // by name: Solana
        expect(fake.calls).toHaveLength(1);
    });

    it('answers from tokens the tools already paid for, with no request', async () => {
        await server.call('get_price', { symbols: ['BTC', 'ETH'] });
        const paid = fake.calls.length;
        expect(await complete('token_briefing', 'symbol', 'B')).toEqual(['BTC']);
        expect(await complete('token_briefing', 'symbol', 'et')).toEqual(['ETH']);
        expect(fake.calls).toHaveLength(paid);
    });

    it('completes the last of a comma-separated list, and the moonshot filters from fixed choices', async () => {
        await server.call('get_price', { symbols: ['BTC', 'ETH'] });
        expect(await complete('compare_tokens', 'symbols', 'BTC,E')).toEqual(['BTC,ETH']);
        expect(await complete('compare_tokens', 'symbols', 'BTC, ETH, B')).toEqual([]); // BTC is already in the list
        expect(await complete('moonshot_scan', 'min_trader_grade', '7')).toEqual(['70']);
        expect(await complete('moonshot_scan', 'max_market_cap', '5')).toEqual(['50000000', '500000000']);
    });
});

describe('SymbolCompleter', () => {
    const token = (tokenId: number, symbol: string, name: string): Token => ({
        tokenId,
        symbol,
        name,
        exchanges: [],
        categories: [],
        contracts: {}
    });

    it('reads at most one directory page per new prefix, none for a prefix asked before, and stops at the last page', async () => {
        const pages: number[] = [];
        const rows = (page: number) =>
            Array.from({ length: page < 3 ? 100 : 7 }, (_, i) => token(page * 1000 + i, `P${page}X${i}`, `Page ${page} token ${i}`));
        const completer = new SymbolCompleter({
            known: () => [token(1, 'SOL', 'Solana')],
            page: async page => (pages.push(page), rows(page)),
            logger: silentLogger
        });
        expect(await completer.complete('S')).toEqual(['SOL']);
        expect(pages).toEqual([]);
        expect(await completer.complete('P2X1')).toEqual([]);
        expect(pages).toEqual([1]);
        expect(await completer.complete('P2X1')).toEqual([]);
        expect(pages).toEqual([1]);
        expect((await completer.complete('P2X1')).length).toBe(0);
        expect(await completer.complete('P2X10')).toEqual(['P2X10']);
        expect(pages).toEqual([1, 2]);
        expect(await completer.complete('P2X1')).toEqual(expect.arrayContaining(['P2X1', 'P2X10', 'P2X19']));
        await completer.complete('QQ');
        expect(pages).toEqual([1, 2, 3]);
        await completer.complete('QR');
        expect(pages).toEqual([1, 2, 3]); // page 3 was short: the directory is read to its end
    });

    it('keeps completing from what it has when the directory fails, and tries the page again for a new prefix', async () => {
        let attempts = 0;
        const completer = new SymbolCompleter({
            known: () => [],
            page: async () => {
                attempts++;
                throw new Error('down');
            },
            logger: silentLogger
        });
        expect(await completer.complete('SO')).toEqual([]);
        expect(await completer.complete('SO')).toEqual([]);
        expect(attempts).toBe(1);
        expect(await completer.complete('BT')).toEqual([]);
        expect(attempts).toBe(2);
        expect(completer.pages).toBe(0);
        expect(await completeListItem('BTC,SO', prefix => completer.complete(prefix))).toEqual([]);
    });
});
