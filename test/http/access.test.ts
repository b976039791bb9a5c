import { request } from 'node:http';
import type { CallToolResult } from '@modelcontextprotocol/sdk/types.js';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { FakeUpstream } from '../fake-upstream/index.js';
import { HttpServerProcess, mcpHeaders, toolCallBody } from '../helpers/http-process.js';

const KEY = 'tm-http-0000-1111-2222-cafe';
const TOKEN = 'access-token-0123456789abcdef';
const OTHER_TOKEN = 'second-token-0123456789abcdef';

let fake: FakeUpstream;
let server: HttpServerProcess;
const spawned: HttpServerProcess[] = [];

async function start(env: Record<string, string> = {}): Promise<HttpServerProcess> {
    const started = await HttpServerProcess.start({
        TOKEN_METRICS_API_KEY: KEY,
        TOKEN_METRICS_BASE_URL: fake.baseUrl,
        CRYPTO_INTEL_HTTP_TOKENS: `${TOKEN},${OTHER_TOKEN}`,
        ...env
    });
    spawned.push(started);
    return started;
}

const post = (target: HttpServerProcess, headers: Record<string, string>, body = toolCallBody('list_moonshots', {})) =>
    fetch(target.mcpUrl, { method: 'POST', headers, body });

/** node:http rather than fetch, which does not let a caller choose the Host header. */
function postWithHost(target: HttpServerProcess, host: string): Promise<number> {
    return new Promise((resolve, reject) => {
        const req = request(
            { host: '127.0.0.1', port: target.port, path: '/mcp', method: 'POST', headers: { ...mcpHeaders(TOKEN), host } },
            res => {
                res.resume();
                resolve(res.statusCode ?? 0);
            }
        );
        req.on('error', reject);
        req.end(toolCallBody('list_moonshots', {}));
    });
}

beforeAll(async () => {
    fake = await FakeUpstream.start();
    server = await start();
});

afterAll(async () => {
    await Promise.all(spawned.map(process => process.stop()));
    await fake?.close();
});

beforeEach(() => fake.reset());

describe('access control on /mcp', () => {
    it('refuses a missing token, a wrong token, a foreign Origin and a foreign Host before anything reaches the upstream', async () => {
        const missing = await post(server, mcpHeaders());
        expect(missing.status).toBe(401);
        expect(missing.headers.get('www-authenticate')).toMatch(/^Bearer /);
        expect(await missing.text()).toMatch(/Authorization: Bearer/);

        expect((await post(server, mcpHeaders('wrong-token-0123456789abcdef'))).status).toBe(401);
        expect(
            (await post(server, { ...mcpHeaders(), authorization: `Basic ${Buffer.from(`x:${TOKEN}`).toString('base64')}` })).status
        ).toBe(401);
        expect((await post(server, mcpHeaders(TOKEN, { origin: 'https://evil.example' }))).status).toBe(403);
        expect((await post(server, mcpHeaders(TOKEN, { origin: 'null' }))).status).toBe(403);
        expect(await postWithHost(server, 'evil.example')).toBe(403);
        expect(await postWithHost(server, `rebound.attacker.example:${server.port}`)).toBe(403);
        expect(fake.count()).toBe(0);

        // The same request from an allowed origin, with either token, goes through.
        expect((await post(server, mcpHeaders(TOKEN, { origin: `http://localhost:${server.port}` }))).status).toBe(200);
        expect((await post(server, mcpHeaders(OTHER_TOKEN))).status).toBe(200);
        expect(await postWithHost(server, `localhost:${server.port}`)).toBe(200);
        expect(fake.count()).toBe(1);
    });

    it('sends its own answers with their length, not chunked: a flood of refusals costs one write each', async () => {
        const refused = await post(server, mcpHeaders());
        const body = await refused.text();
        expect(refused.headers.get('transfer-encoding')).toBeNull();
        expect(refused.headers.get('content-length')).toBe(String(Buffer.byteLength(body)));
        expect(JSON.parse(body)).toMatchObject({ jsonrpc: '2.0', id: null });
    });

    it('lists and calls all four tools with the SDK client and the right token', async () => {
        const client = await server.client(TOKEN);
        try {
            const { tools } = await client.listTools();
            // The four market tools at least (issue 17 adds get_usage beside them).
            expect(tools.map(tool => tool.name)).toEqual(
                expect.arrayContaining(['get_price', 'get_grades', 'list_moonshots', 'explain_signal'])
            );
            const calls: Array<[string, Record<string, unknown>]> = [
                ['get_price', { symbols: ['BTC', 'ETH'] }],
                ['get_grades', { symbol: 'SOL' }],
                ['list_moonshots', { type: 'active', limit: 3 }],
                ['explain_signal', { symbol: 'ETH' }]
            ];
            for (const [name, args] of calls) {
                const result = (await client.callTool({ name, arguments: args })) as CallToolResult;
                expect(result.isError, name).toBeFalsy();
                expect(result.structuredContent, name).toBeDefined();
            }
            expect(fake.count()).toBeGreaterThan(0);
        } finally {
            await client.close();
        }
    });

    it('never takes an upstream key from the caller', async () => {
        const url = new URL(server.mcpUrl);
        url.searchParams.set('api_key', 'tm-caller-0000-0000-dead');
        const response = await fetch(url, {
            method: 'POST',
            headers: mcpHeaders(TOKEN, { 'x-api-key': 'tm-caller-0000-0000-beef' }),
            body: toolCallBody('get_price', { symbols: ['DOGE'] })
        });
        expect(response.status).toBe(200);
        expect(fake.calls.length).toBeGreaterThan(0);
        expect(new Set(fake.calls.map(call => call.key))).toEqual(new Set([KEY]));
    });

    it('answers 405 to GET and DELETE: the server is stateless', async () => {
        for (const method of ['GET', 'DELETE']) {
            const response = await fetch(server.mcpUrl, { method, headers: mcpHeaders(TOKEN) });
            expect(response.status).toBe(405);
            expect(response.headers.get('allow')).toBe('POST');
        }
    });

    it('refuses a body over 1 MB with 413 and a body that is not JSON with 400', async () => {
        const huge = JSON.stringify({
            jsonrpc: '2.0',
            id: 1,
            method: 'tools/call',
            params: { name: 'get_price', arguments: { symbols: ['x'.repeat(1_100_000)] } }
        });
        const tooLarge = await post(server, mcpHeaders(TOKEN), huge);
        expect(tooLarge.status).toBe(413);
        expect((await post(server, mcpHeaders(TOKEN), '{"jsonrpc":')).status).toBe(400);
        expect(fake.count()).toBe(0);
        // The connection that was refused does not take the server down with it.
        expect((await post(server, mcpHeaders(TOKEN))).status).toBe(200);
    });

    it('answers 429 with Retry-After past the per-token rate, and counts each token on its own', async () => {
        const limited = await start({ CRYPTO_INTEL_HTTP_RATE_PER_MIN: '3' });
        const list = JSON.stringify({ jsonrpc: '2.0', id: 1, method: 'tools/list', params: {} });
        for (let i = 0; i < 3; i++) expect((await post(limited, mcpHeaders(TOKEN), list)).status).toBe(200);
        const refused = await post(limited, mcpHeaders(TOKEN), list);
        expect(refused.status).toBe(429);
        expect(Number(refused.headers.get('retry-after'))).toBeGreaterThanOrEqual(1);
        expect((await post(limited, mcpHeaders(OTHER_TOKEN), list)).status).toBe(200);
    });
});

describe('health, readiness and start-up', () => {
    it('answers /healthz and /readyz without a token and without naming a key or a token', async () => {
        const health = await fetch(`${server.origin}/healthz`);
        expect(health.status).toBe(200);
        expect(await health.json()).toMatchObject({ status: 'ok' });
        const ready = await fetch(`${server.origin}/readyz`);
        expect(ready.status).toBe(200);
        const text = await ready.text();
        expect(JSON.parse(text)).toMatchObject({
            status: 'ok',
            checks: {
                upstream: 'reachable',
                keys: { configured: 1, usable: 1 },
                redis: 'not configured',
                upstreamFormat: { driftedValues: 0, droppedRows: 0 }
            }
        });
        for (const secret of [KEY, KEY.slice(-4), TOKEN]) expect(text).not.toContain(secret);
    });

    it('reports degraded when configured Redis is unreachable, and unavailable when nothing can answer', async () => {
        const closed = await FakeUpstream.start();
        const deadUpstream = closed.baseUrl;
        await closed.close();
        const [lonely, degraded] = await Promise.all([
            start({ TOKEN_METRICS_BASE_URL: deadUpstream, CRYPTO_INTEL_REDIS_URL: 'redis://127.0.0.1:1' }),
            start({ CRYPTO_INTEL_REDIS_URL: 'redis://127.0.0.1:1' })
        ]);
        const ready = await fetch(`${lonely.origin}/readyz`);
        expect(ready.status).toBe(503);
        expect(await ready.json()).toMatchObject({ status: 'unavailable', checks: { upstream: 'unreachable', redis: 'unavailable' } });
        expect(await (await fetch(`${degraded.origin}/readyz`)).json()).toMatchObject({
            status: 'degraded',
            checks: { redis: 'unavailable' }
        });
        // It still answers.
        expect((await post(degraded, mcpHeaders(TOKEN))).status).toBe(200);
    });

    it('refuses to start on a non-loopback host without tokens: exit code 2 and one line', async () => {
        const { code, stderr } = await HttpServerProcess.run({ TOKEN_METRICS_BASE_URL: fake.baseUrl }, [
            '--http',
            '--host',
            '0.0.0.0',
            '--port',
            '0'
        ]);
        expect(code).toBe(2);
        const lines = stderr.trim().split('\n');
        expect(lines).toHaveLength(1);
        expect(lines[0]).toMatch(
            /^crypto-intel-mcp: refusing to serve on non-loopback host 0\.0\.0\.0 without access tokens: set CRYPTO_INTEL_HTTP_TOKENS/
        );
    });

    it('finishes a request in flight on SIGTERM, refuses new ones, and exits 0', async () => {
        const draining = await start();
        // The request's upstream call is held at the fake until the server has begun to shut down.
        fake.inject({ fault: { kind: 'hold' }, times: 1 });
        try {
            const inFlight = post(draining, mcpHeaders(TOKEN), toolCallBody('list_moonshots', { type: 'past' }));
            await fake.until(() => fake.pending().length === 1);
            draining.signal('SIGTERM');
            // The child's own time: bounded by the test's timeout, and no assertion on how long it took.
            while (!draining.stderr.includes('"msg":"shutting down: finishing requests in flight"')) {
                await new Promise(resolve => setTimeout(resolve, 10));
            }
            fake.release();
            const response = await inFlight;
            expect(response.status).toBe(200);
            expect(((await response.json()) as { result: CallToolResult }).result.isError).toBeFalsy();
            expect(await draining.waitForExit()).toBe(0);
            await expect(post(draining, mcpHeaders(TOKEN))).rejects.toThrow();
        } finally {
            fake.release();
        }
    });

    it('never writes the upstream key or a token to its logs', () => {
        for (const started of spawned) {
            for (const secret of [KEY, TOKEN, OTHER_TOKEN]) expect(started.stderr).not.toContain(secret);
        }
    });
});

describe('an HTTP server that has answered nothing yet', () => {
    it('has opened its upstream connection, and sent nothing on it: a first tool call finds it ready', async () => {
        // A fake of its own: the connections of the other servers above would count too.
        const upstream = await FakeUpstream.start();
        const idle = await HttpServerProcess.start({
            TOKEN_METRICS_API_KEY: KEY,
            TOKEN_METRICS_BASE_URL: upstream.baseUrl,
            CRYPTO_INTEL_HTTP_TOKENS: TOKEN
        });
        try {
            await upstream.until(() => upstream.connections() === 1);
            expect(upstream.count()).toBe(0);
            const response = await post(idle, mcpHeaders(TOKEN), toolCallBody('get_price', { symbols: ['BTC'] }));
            expect(((await response.json()) as { result: CallToolResult }).result.isError).toBeFalsy();
            // The call's requests went over that connection: no other was opened.
            expect(upstream.connections()).toBe(1);
        } finally {
            await idle.stop();
            await upstream.close();
        }
    });
});
