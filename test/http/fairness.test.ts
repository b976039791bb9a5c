import { chmodSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { CallToolResult } from '@modelcontextprotocol/sdk/types.js';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { FakeUpstream, type FakeCall } from '../fake-upstream/index.js';
import { HttpServerProcess, mcpHeaders, toolCallBody } from '../helpers/http-process.js';

/**
 * Issue 16, finding 3 ("no fairness over HTTP") and the bearer part of finding 8, against the built server over
 * loopback: the rate counts tool calls, one token's flood cannot starve another token nor spend credits on calls it
 * never answers, and failed bearer attempts are limited per client address and logged at warn.
 */

const KEY = 'tm-fair-0000-1111-2222-f00d';
const TOKEN = 'flood-token-0123456789abcdef';
const OTHER_TOKEN = 'quiet-token-0123456789abcdef';
const WRONG_TOKEN = 'guess-token-0123456789abcdef';

let fake: FakeUpstream;
const spawned: HttpServerProcess[] = [];
const dir = mkdtempSync(join(tmpdir(), 'crypto-intel-fairness-'));

async function start(env: Record<string, string> = {}): Promise<HttpServerProcess> {
    const server = await HttpServerProcess.start({
        TOKEN_METRICS_API_KEY: KEY,
        TOKEN_METRICS_BASE_URL: fake.baseUrl,
        CRYPTO_INTEL_HTTP_TOKENS: `${TOKEN},${OTHER_TOKEN}`,
        ...env
    });
    spawned.push(server);
    return server;
}

interface RpcReply {
    id: number;
    result?: CallToolResult;
    error?: { code: number; message: string };
}

async function call(
    server: HttpServerProcess,
    token: string,
    name: string,
    args: Record<string, unknown>,
    id = 1
): Promise<CallToolResult> {
    const response = await fetch(server.mcpUrl, { method: 'POST', headers: mcpHeaders(token), body: toolCallBody(name, args, id) });
    expect(response.status).toBe(200);
    return ((await response.json()) as RpcReply).result!;
}

const textOf = (result: CallToolResult): string => result.content.map(part => (part.type === 'text' ? part.text : '')).join('\n');
const isBusy = (result: CallToolResult): boolean => result.isError === true && /busy/i.test(textOf(result));

/** A JSON-RPC batch of `count` tools/call. */
const batch = (count: number, name = 'list_moonshots', args: Record<string, unknown> = {}): string =>
    JSON.stringify(
        Array.from({ length: count }, (_, i) => ({ jsonrpc: '2.0', id: i + 1, method: 'tools/call', params: { name, arguments: args } }))
    );

beforeAll(async () => {
    fake = await FakeUpstream.start();
});

afterAll(async () => {
    await Promise.all(spawned.map(server => server.stop()));
    await fake?.close();
    rmSync(dir, { recursive: true, force: true });
});

beforeEach(() => {
    fake.reset();
});

describe('the per-token rate counts tool calls, not HTTP requests', () => {
    it('counts a batch of 100 tools/call as 100', async () => {
        const server = await start({ CRYPTO_INTEL_HTTP_RATE_PER_MIN: '150' });
        const first = await fetch(server.mcpUrl, { method: 'POST', headers: mcpHeaders(TOKEN), body: batch(100) });
        expect(first.status).toBe(200);
        const replies = (await first.json()) as RpcReply[];
        expect(replies).toHaveLength(100);
        expect(replies.every(reply => reply.result !== undefined && !reply.result.isError)).toBe(true);

        // 50 of 150 left: a second batch of 100 is refused whole, before any of it runs...
        const calls = fake.count();
        const second = await fetch(server.mcpUrl, { method: 'POST', headers: mcpHeaders(TOKEN), body: batch(100) });
        expect(second.status).toBe(429);
        expect(Number(second.headers.get('retry-after'))).toBeGreaterThanOrEqual(1);
        expect(await second.text()).toMatch(/batch of 100/);
        expect(fake.count()).toBe(calls);
        // ...while a single call still fits, and the other token has its own allowance.
        expect((await call(server, TOKEN, 'list_moonshots', {})).isError).toBeFalsy();
        const other = await fetch(server.mcpUrl, { method: 'POST', headers: mcpHeaders(OTHER_TOKEN), body: batch(100) });
        expect(other.status).toBe(200);
    });

    it('refuses a batch larger than a whole minute of allowance with 413, which no wait would cure', async () => {
        const server = await start({ CRYPTO_INTEL_HTTP_RATE_PER_MIN: '20' });
        const response = await fetch(server.mcpUrl, { method: 'POST', headers: mcpHeaders(TOKEN), body: batch(21) });
        expect(response.status).toBe(413);
        expect(await response.text()).toMatch(/send at most 20 per request/);
        expect(fake.count()).toBe(0);
        // The refusal cost one unit, not 21: 19 calls still fit in one batch.
        expect((await fetch(server.mcpUrl, { method: 'POST', headers: mcpHeaders(TOKEN), body: batch(19) })).status).toBe(200);
    });
});

describe('one token cannot take the upstream from another', () => {
    it("answers another token's uncached call during a flood, and spends no credit on calls it does not answer", async () => {
        // 200 uncached calls on 4 upstream slots: with one first-in-first-out queue most of them, and the other token's
        // call behind them, would wait out their deadline after their credits were spent.
        const server = await start({ CRYPTO_INTEL_HTTP_RATE_PER_MIN: '0' });
        // Every upstream request is held until the test lets it go: the flood is under way for as long as it needs to be.
        fake.inject({ fault: { kind: 'hold' } });
        const FLOOD = 200;
        // Each flood call asks for an unknown numeric id: one /tokens request each, which names its call.
        const flood = Array.from({ length: FLOOD }, (_, i) => call(server, TOKEN, 'get_price', { symbols: [String(900_000 + i)] }, i + 1));
        // The flood holds all the slots one token may take (all but the one kept for others).
        await fake.until(() => fake.pending().length === 3);
        // ETH by id: /tokens then /price, neither cached yet; its requests are let through as they come, the flood's are not.
        const isQuiet = (request: FakeCall): boolean => request.query.token_id === '3306';
        const quietCall = call(server, OTHER_TOKEN, 'get_price', { symbols: ['3306'] });
        for (const path of ['/tokens', '/price']) {
            await fake.until(() => fake.pending().some(({ call: request }) => request.path === path && isQuiet(request)));
            fake.release(isQuiet);
        }
        const quiet = await quietCall;
        expect(quiet.isError).toBeFalsy();
        expect((quiet.structuredContent as { prices: Array<{ symbol: string }> }).prices.map(row => row.symbol)).toEqual(['ETH']);
        expect(fake.pending().filter(({ call: request }) => !isQuiet(request))).toHaveLength(3);

        fake.clearFaults();
        fake.release();
        const results = await Promise.all(flood);
        const answered = new Set<number>();
        results.forEach((result, i) => {
            if (!result.isError) answered.add(900_000 + i);
        });
        const busy = results.filter(isBusy);
        // Every flood call is either answered or told at once to come back: none waited out its deadline.
        expect(results.filter(result => result.isError && !isBusy(result)).map(textOf)).toEqual([]);
        expect(answered.size + busy.length).toBe(FLOOD);
        expect(busy.length).toBeGreaterThan(0);
        expect(answered.size).toBeGreaterThanOrEqual(8);
        expect(textOf(busy[0]!)).toMatch(/retry in \d+ s/i);
        // Credits went to answered calls only: every upstream request of the flood names an answered call.
        const floodIds = fake.calls
            .filter(c => c.path === '/tokens' && Number(c.query.token_id) >= 900_000)
            .map(c => Number(c.query.token_id));
        expect(floodIds.filter(id => !answered.has(id))).toEqual([]);
        expect(new Set(floodIds).size).toBe(answered.size);
    });

    it('caps one token at CRYPTO_INTEL_HTTP_MAX_CONCURRENT_CALLS uncached calls, and frees the slots as calls finish', async () => {
        const server = await start({ CRYPTO_INTEL_HTTP_RATE_PER_MIN: '0', CRYPTO_INTEL_HTTP_MAX_CONCURRENT_CALLS: '2' });
        // Held at the fake until the test lets them go, so all six are under way together.
        fake.inject({ fault: { kind: 'hold' } });
        const answered: CallToolResult[] = [];
        let fourAnswered!: () => void;
        const four = new Promise<void>(resolve => (fourAnswered = resolve));
        const calls = Array.from({ length: 6 }, (_, i) =>
            call(server, TOKEN, 'get_price', { symbols: [String(910_000 + i)] }, i + 1).then(result => {
                if (answered.push(result) === 4) fourAnswered();
                return result;
            })
        );
        // Four are answered "busy" while the two admitted wait at the fake (a third request there would be a bug, and
        // ends the wait as well).
        await Promise.race([
            Promise.all([four, fake.until(() => fake.pending().length === 2)]),
            fake.until(() => fake.pending().length > 2)
        ]);
        expect(fake.pending()).toHaveLength(2);
        expect(answered.filter(isBusy)).toHaveLength(4);
        fake.clearFaults();
        fake.release();
        const results = await Promise.all(calls);
        expect(results.filter(result => !result.isError)).toHaveLength(2);
        expect(results.filter(isBusy)).toHaveLength(4);
        expect(fake.count('/tokens')).toBe(2);
        // Cached answers take no slot; and the slots are back once those two calls finished.
        const again = await Promise.all(
            Array.from({ length: 2 }, (_, i) => call(server, TOKEN, 'get_price', { symbols: [String(920_000 + i)] }, i + 1))
        );
        expect(again.every(result => !result.isError)).toBe(true);
    });
});

describe('failed bearer attempts', () => {
    /** A request as a proxy on this machine forwards it: `X-Forwarded-For` names the client. */
    const attempt = (server: HttpServerProcess, token: string, client: string) =>
        fetch(server.mcpUrl, {
            method: 'POST',
            headers: mcpHeaders(token, { 'x-forwarded-for': client }),
            body: JSON.stringify({ jsonrpc: '2.0', id: 1, method: 'tools/list', params: {} })
        });

    it('are limited per client address, answered 429 past the limit, and logged at warn without the token', async () => {
        const server = await start({ CRYPTO_INTEL_HTTP_AUTH_FAILURES_PER_MIN: '3' });
        for (let i = 0; i < 3; i++) expect((await attempt(server, WRONG_TOKEN, '203.0.113.7')).status).toBe(401);
        const limited = await attempt(server, WRONG_TOKEN, '203.0.113.7');
        expect(limited.status).toBe(429);
        expect(Number(limited.headers.get('retry-after'))).toBeGreaterThanOrEqual(1);
        // While over the limit no guess from that address is even looked at, the right one included...
        expect((await attempt(server, TOKEN, '203.0.113.7')).status).toBe(429);
        // ...and other addresses are not affected.
        expect((await attempt(server, TOKEN, '203.0.113.8')).status).toBe(200);
        expect((await attempt(server, WRONG_TOKEN, '203.0.113.8')).status).toBe(401);

        const lines = server.stderr.split('\n').filter(line => line.includes('"level":"warn"'));
        const refusals = lines.filter(line => line.includes('missing or wrong bearer token'));
        expect(refusals.filter(line => line.includes('203.0.113.7'))).toHaveLength(3);
        expect(refusals.filter(line => line.includes('203.0.113.8'))).toHaveLength(1);
        expect(lines.filter(line => line.includes('over the limit') && line.includes('203.0.113.7'))).toHaveLength(1);
        expect(server.stderr).not.toContain(WRONG_TOKEN);
        expect(server.stderr).not.toContain(WRONG_TOKEN.slice(0, 12));
    });

    it('refuses a tokens file other users can read, as the key file, unless told a shared file is intended', async () => {
        const file = join(dir, 'tokens');
        writeFileSync(file, `${TOKEN}\n`);
        chmodSync(file, 0o640);
        const env = { TOKEN_METRICS_API_KEY: KEY, TOKEN_METRICS_BASE_URL: fake.baseUrl, CRYPTO_INTEL_HTTP_TOKENS_FILE: file };
        const refused = await HttpServerProcess.run(env, ['--http', '--port', '0']);
        expect(refused.code).toBe(2);
        const lines = refused.stderr.trim().split('\n');
        expect(lines).toHaveLength(1);
        expect(lines[0]).toMatch(/is readable by other users \(mode 640\): refused\. Fix it with: chmod 600 '.*tokens'/);

        const shared = await start({
            CRYPTO_INTEL_HTTP_TOKENS: '',
            CRYPTO_INTEL_HTTP_TOKENS_FILE: file,
            CRYPTO_INTEL_ALLOW_SHARED_TOKENS_FILE: '1'
        });
        expect(shared.stderr).toMatch(
            /"level":"warn".*HTTP tokens file is readable by other users; using it because CRYPTO_INTEL_ALLOW_SHARED_TOKENS_FILE=1/
        );
        expect(shared.stderr).toContain('"mode":"640"');
        expect((await attempt(shared, TOKEN, '203.0.113.9')).status).toBe(200);

        chmodSync(file, 0o600);
        const tight = await start({ CRYPTO_INTEL_HTTP_TOKENS: '', CRYPTO_INTEL_HTTP_TOKENS_FILE: file });
        expect(tight.stderr).not.toMatch(/HTTP tokens file is readable/);
        for (const output of [refused.stderr, shared.stderr, tight.stderr]) expect(output).not.toContain(TOKEN);
    });
});
