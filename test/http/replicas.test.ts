import type { CallToolResult } from '@modelcontextprotocol/sdk/types.js';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { FakeUpstream } from '../fake-upstream/index.js';
import { HttpServerProcess, mcpHeaders, toolCallBody } from '../helpers/http-process.js';
import { RedisServer, redisTestsEnabled } from '../helpers/redis-server.js';

const KEY = 'tm-team-0000-1111-2222-beef';
const TOKEN = 'team-token-0123456789abcdef';
const enabled = redisTestsEnabled();
const REDIS_STATE_MS = 20_000;

let fake: FakeUpstream;
let redis: RedisServer;
let a: HttpServerProcess;
let b: HttpServerProcess;
const spawned: HttpServerProcess[] = [];

/** One `tools/call` over plain HTTP, as any Streamable HTTP client sends it. */
async function call(server: HttpServerProcess, name: string, args: Record<string, unknown>): Promise<CallToolResult> {
    const response = await fetch(server.mcpUrl, { method: 'POST', headers: mcpHeaders(TOKEN), body: toolCallBody(name, args) });
    expect(response.status).toBe(200);
    const body = (await response.json()) as { result: CallToolResult };
    return body.result;
}

async function readiness(server: HttpServerProcess): Promise<{ status: string; checks: { redis: string } }> {
    return (await (await fetch(`${server.origin}/readyz`)).json()) as { status: string; checks: { redis: string } };
}

/**
 * Polls `/readyz` until Redis is in the given state. The server reconnects within about a second of its own (real)
 * time; the bound is generous, so only a server that never notices fails, however loaded the machine.
 */
async function redisState(server: HttpServerProcess, state: 'ok' | 'unavailable'): Promise<void> {
    const giveUp = Date.now() + REDIS_STATE_MS;
    while (Date.now() < giveUp) {
        if ((await readiness(server)).checks.redis === state) return;
        await new Promise(resolve => setTimeout(resolve, 50));
    }
    throw new Error(`Redis never became ${state} on port ${server.port}: ${server.stderr}`);
}

const redisWarnings = (server: HttpServerProcess): number =>
    server.stderr.split('\n').filter(line => line.includes('"msg":"Redis unavailable')).length;

describe.runIf(enabled)('two replicas sharing one Redis', { timeout: 6 * REDIS_STATE_MS }, () => {
    beforeAll(async () => {
        fake = await FakeUpstream.start();
        redis = await RedisServer.start();
        const env = {
            TOKEN_METRICS_API_KEY: KEY,
            TOKEN_METRICS_BASE_URL: fake.baseUrl,
            CRYPTO_INTEL_REDIS_URL: redis.url,
            // About sharing, not about a slow Redis: a loaded CI machine may take longer than the default 150 ms.
            CRYPTO_INTEL_REDIS_TIMEOUT_MS: '5000',
            CRYPTO_INTEL_HTTP_TOKENS: TOKEN
        };
        const start = async (): Promise<HttpServerProcess> => {
            const server = await HttpServerProcess.start(env);
            spawned.push(server);
            return server;
        };
        [a, b] = await Promise.all([start(), start()]);
        await Promise.all([redisState(a, 'ok'), redisState(b, 'ok')]);
    }, 3 * REDIS_STATE_MS);

    afterAll(async () => {
        await Promise.all(spawned.map(server => server.stop()));
        await redis?.stop();
        await fake?.close();
    });

    it('answers on B a question A already paid for, with no second upstream call', async () => {
        fake.reset();
        const first = await call(a, 'list_moonshots', { type: 'active' });
        expect(first.isError).toBeFalsy();
        expect(fake.count()).toBe(1);
        const second = await call(b, 'list_moonshots', { type: 'active' });
        expect(second.structuredContent).toEqual(first.structuredContent);
        expect(fake.count()).toBe(1);
    });

    it('makes one upstream call for 20 concurrent identical questions spread over both replicas', async () => {
        fake.reset();
        // Slow enough that every question arrives while the first upstream call is still out.
        fake.latencyMs = 200;
        try {
            const answers = await Promise.all(
                Array.from({ length: 20 }, (_, i) => call(i % 2 === 0 ? a : b, 'list_moonshots', { type: 'past', limit: 5 }))
            );
            expect(answers.every(answer => !answer.isError)).toBe(true);
            expect(new Set(answers.map(answer => JSON.stringify(answer.structuredContent))).size).toBe(1);
            expect(fake.log()).toEqual(['/moonshot-tokens tm-…beef -> 200']);
        } finally {
            fake.latencyMs = 0;
        }
    });

    it('keeps answering while Redis is down, warns once per replica, and shares again once it is back', async () => {
        await redis.stop();
        await Promise.all([redisState(a, 'unavailable'), redisState(b, 'unavailable')]);
        expect((await readiness(a)).status).toBe('degraded');

        const questions: Array<[string, Record<string, unknown>]> = [
            ['get_price', { symbols: ['BTC', 'ETH'] }],
            ['get_grades', { symbol: 'ETH' }],
            ['list_moonshots', { type: 'active', limit: 3 }],
            ['get_price', { symbols: ['PEPE'] }]
        ];
        for (const server of [a, b]) {
            for (const [name, args] of questions) expect((await call(server, name, args)).isError, `${name} on ${server.port}`).toBeFalsy();
        }
        expect([redisWarnings(a), redisWarnings(b)]).toEqual([1, 1]);

        await redis.start();
        await Promise.all([redisState(a, 'ok'), redisState(b, 'ok')]);
        expect(a.stderr).toMatch(/"msg":"Redis reachable again/);

        fake.reset();
        const onA = await call(a, 'get_grades', { symbol: 'SOL' });
        expect(onA.isError).toBeFalsy();
        const paid = fake.count();
        expect(paid).toBeGreaterThan(0);
        const onB = await call(b, 'get_grades', { symbol: 'SOL' });
        expect(onB.structuredContent).toEqual(onA.structuredContent);
        expect(fake.count()).toBe(paid);
    });

    it('never writes the upstream key or the access token to its logs', () => {
        for (const server of [a, b]) {
            expect(server.stderr).not.toContain(KEY);
            expect(server.stderr).not.toContain(TOKEN);
        }
    });
});
