import { mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Client } from '@modelcontextprotocol/sdk/client/index.js';
import type { CallToolResult } from '@modelcontextprotocol/sdk/types.js';
import { afterAll, beforeAll, beforeEach, describe, expect, it, vi } from 'vitest';
import { FakeUpstream } from '../fake-upstream/index.js';
import { startServer, type ServerProcess } from '../helpers/server-process.js';

const KEY = 'tm-e2e-0000-1111-2222-abcd';

let fake: FakeUpstream;
let cacheDir: string;
let client: Client;
let server: ServerProcess;

const text = (result: CallToolResult): string => result.content.map(part => (part.type === 'text' ? part.text : '')).join('\n');
const call = async (name: string, args: Record<string, unknown>) => (await client.callTool({ name, arguments: args })) as CallToolResult;

beforeAll(async () => {
    fake = await FakeUpstream.start();
    cacheDir = mkdtempSync(join(tmpdir(), 'crypto-intel-e2e-'));
    ({ client, server } = await startServer({
        TOKEN_METRICS_API_KEY: KEY,
        TOKEN_METRICS_BASE_URL: fake.baseUrl,
        CRYPTO_INTEL_CACHE_DIR: cacheDir
    }));
});

afterAll(async () => {
    await server?.close();
    await fake?.close();
    rmSync(cacheDir, { recursive: true, force: true });
});

beforeEach(() => fake.reset());

describe('the built server over stdio', () => {
    it('lists the five tools with schemas and read-only annotations, then opens a connection to the upstream and sends nothing on it', async () => {
        const { tools } = await client.listTools();
        await fake.until(() => fake.connections() === 1);
        expect(fake.count()).toBe(0);
        expect(tools.map(tool => tool.name)).toEqual(['get_price', 'get_grades', 'list_moonshots', 'explain_signal', 'get_usage']);
        for (const tool of tools) {
            expect(tool.outputSchema?.type).toBe('object');
            expect(tool.inputSchema.type).toBe('object');
            // get_usage reads local counters only: the one tool that does not reach the upstream.
            expect(tool.annotations).toMatchObject({ readOnlyHint: true, openWorldHint: tool.name !== 'get_usage' });
            expect(tool.description).toMatch(/credit/);
        }
    });

    it('get_price answers BTC, ETH and PEPE with one /price call', async () => {
        const result = await call('get_price', { symbols: ['BTC', 'eth', 'PEPE'] });
        expect(result.isError).toBeFalsy();
        const structured = result.structuredContent as { prices: Array<{ symbol: string; price_usd: number }>; unresolved: unknown[] };
        expect(structured.prices.map(row => row.symbol)).toEqual(['BTC', 'ETH', 'PEPE']);
        expect(structured.prices[0]?.price_usd).toBe(97250.12);
        expect(structured.unresolved).toEqual([]);
        expect(fake.count('/price')).toBe(1);
        expect(text(result)).toContain('$97,250.12');
    });

    it('get_grades answers SOL', async () => {
        const result = await call('get_grades', { symbol: 'SOL' });
        expect(result.isError).toBeFalsy();
        expect(result.structuredContent).toMatchObject({ symbol: 'SOL', token_id: 3988, trader_grade: expect.any(Number) });
    });

    it('list_moonshots filters by market cap', async () => {
        const result = await call('list_moonshots', { type: 'active', limit: 50, max_market_cap_usd: 50_000_000 });
        expect(result.isError).toBeFalsy();
        const structured = result.structuredContent as { moonshots: Array<{ market_cap_usd: number }> };
        expect(structured.moonshots.every(row => row.market_cap_usd <= 50_000_000)).toBe(true);
    });

    it('explain_signal explains ETH', async () => {
        const result = await call('explain_signal', { symbol: 'ETH' });
        expect(result.isError).toBeFalsy();
        expect(result.structuredContent).toMatchObject({ symbol: 'ETH', signal: 'bullish', grade_band: 'high conviction' });
        expect(text(result)).toMatch(/not investment advice/i);
    });

    it('writes nothing but JSON-RPC to stdout', () => {
        expect(server.stdoutLines.length).toBeGreaterThan(0);
        expect(server.nonProtocolLines()).toEqual([]);
    });
});

describe('the built server when things go wrong', () => {
    it('starts without a key, lists its tools and explains how to set one', async () => {
        const keyless = await startServer({ TOKEN_METRICS_BASE_URL: fake.baseUrl, CRYPTO_INTEL_CACHE_DIR: 'off' });
        try {
            expect((await keyless.client.listTools()).tools).toHaveLength(5);
            const result = (await keyless.client.callTool({ name: 'get_grades', arguments: { symbol: 'SOL' } })) as CallToolResult;
            expect(result.isError).toBe(true);
            expect(text(result)).toMatch(/No Token Metrics API key is configured.*TOKEN_METRICS_API_KEY/s);
            expect(fake.count()).toBe(0);
        } finally {
            await keyless.server.close();
        }
    });

    it('answers revoked keys, unknown symbols and an unreachable upstream with isError, and keeps serving', async () => {
        const unreachable = await FakeUpstream.start();
        const deadUrl = unreachable.baseUrl;
        await unreachable.close();
        const [session, down] = await Promise.all([
            startServer({
                TOKEN_METRICS_API_KEYS: 'tm-e2e-revoked-aaaa,tm-e2e-revoked-bbbb',
                TOKEN_METRICS_BASE_URL: fake.baseUrl,
                CRYPTO_INTEL_CACHE_DIR: 'off'
            }),
            startServer({
                TOKEN_METRICS_API_KEY: KEY,
                TOKEN_METRICS_BASE_URL: deadUrl,
                CRYPTO_INTEL_CACHE_DIR: 'off',
                CRYPTO_INTEL_MAX_RETRIES: '1'
            })
        ]);
        try {
            fake.revoke('tm-e2e-revoked-aaaa');
            fake.revoke('tm-e2e-revoked-bbbb');
            const revoked = (await session.client.callTool({ name: 'get_price', arguments: { symbols: ['BTC'] } })) as CallToolResult;
            expect(revoked.isError).toBe(true);
            expect(text(revoked)).toMatch(/rejected every configured key \(tm-…aaaa, tm-…bbbb\)/);

            const unreachableResult = (await down.client.callTool({ name: 'list_moonshots', arguments: {} })) as CallToolResult;
            expect(unreachableResult.isError).toBe(true);
            expect(text(unreachableResult)).toMatch(/unavailable/);

            const unknown = (await client.callTool({ name: 'get_price', arguments: { symbols: ['NOPE404', 'uni'] } })) as CallToolResult;
            expect(unknown.isError).toBeFalsy();
            expect(unknown.structuredContent).toMatchObject({ unresolved: [{ input: 'NOPE404' }], prices: [{ token_id: 3386 }] });

            const bad = (await client.callTool({ name: 'get_price', arguments: { symbols: 'BTC' } })) as CallToolResult;
            expect(bad.isError).toBe(true);
            const missing = await client.callTool({ name: 'no_such_tool', arguments: {} }).catch((error: Error) => error);
            expect(JSON.stringify(missing)).toMatch(/not found/i);

            for (const alive of [session.client, down.client, client]) await expect(alive.listTools()).resolves.toBeTruthy();
            expect(session.server.stderr).not.toContain('tm-e2e-revoked-aaaa');
            for (const proc of [session.server, down.server, server]) expect(proc.nonProtocolLines()).toEqual([]);
        } finally {
            await session.server.close();
            await down.server.close();
        }
    });
});

describe('the persistent cache across restarts', () => {
    it('answers a repeated question in a new process with zero upstream calls, and survives a corrupt file', async () => {
        const dir = mkdtempSync(join(tmpdir(), 'crypto-intel-restart-'));
        const env = { TOKEN_METRICS_API_KEY: KEY, TOKEN_METRICS_BASE_URL: fake.baseUrl, CRYPTO_INTEL_CACHE_DIR: dir };
        try {
            const first = await startServer(env);
            await first.client.callTool({ name: 'get_grades', arguments: { symbol: 'ETH' } });
            first.server.signal('SIGTERM');
            expect(await first.server.waitForExit()).toBe(0);
            const paid = fake.count();
            expect(paid).toBeGreaterThan(0);

            const second = await startServer(env);
            const again = (await second.client.callTool({ name: 'get_grades', arguments: { symbol: 'ETH' } })) as CallToolResult;
            expect(again.isError).toBeFalsy();
            expect(fake.count()).toBe(paid);
            await second.server.close();

            // The first process compacted its journal into the snapshot at exit: corrupt that.
            writeFileSync(
                join(
                    dir,
                    readdirSync(dir).find(name => name.endsWith('.snapshot.jsonl'))!
                ),
                '{"version":1,"entries":[{"key":'
            );
            const third = await startServer(env);
            const afterCorruption = (await third.client.callTool({ name: 'get_price', arguments: { symbols: ['BTC'] } })) as CallToolResult;
            expect(afterCorruption.isError).toBeFalsy();
            expect(third.server.stderr).toMatch(/"level":"warn"/);
            await third.server.close();
        } finally {
            rmSync(dir, { recursive: true, force: true });
        }
    });

    it('keeps the entries of two processes sharing the directory, one of them killed, for a third to answer from', async () => {
        const dir = mkdtempSync(join(tmpdir(), 'crypto-intel-shared-'));
        const env = { TOKEN_METRICS_API_KEY: KEY, TOKEN_METRICS_BASE_URL: fake.baseUrl, CRYPTO_INTEL_CACHE_DIR: dir };
        const grades = { name: 'get_grades', arguments: { symbol: 'ETH' } };
        const prices = { name: 'get_price', arguments: { symbols: ['SOL', 'PEPE'] } };
        try {
            const [a, b] = await Promise.all([startServer(env), startServer(env)]);
            await Promise.all([a.client.callTool(grades), b.client.callTool(prices)]);
            // b dies without closing, once its journal holds the answer (appended within a second of the call).
            const journalHolds = (key: string) =>
                readdirSync(dir).some(name => name.includes('.journal-') && readFileSync(join(dir, name), 'utf8').includes(key));
            await vi.waitFor(() => expect(journalHolds('"price:3988"')).toBe(true), { timeout: 5_000 });
            b.server.signal('SIGKILL');
            a.server.signal('SIGTERM');
            await Promise.all([a.server.waitForExit(), b.server.waitForExit()]);
            const paid = fake.count();

            const c = await startServer(env);
            for (const question of [grades, prices]) expect(((await c.client.callTool(question)) as CallToolResult).isError).toBeFalsy();
            expect(fake.count()).toBe(paid);
            await c.server.close();
        } finally {
            rmSync(dir, { recursive: true, force: true });
        }
    });
});
