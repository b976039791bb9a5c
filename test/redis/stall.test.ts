import type { CallToolResult } from '@modelcontextprotocol/sdk/types.js';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Redactor } from '../../src/redact.js';
import { connectRedis, type SharedServices } from '../../src/redis/index.js';
import { harness } from '../cache/helpers.js';
import { RecordingLogger } from '../cache/fakes.js';
import { FakeUpstream } from '../fake-upstream/index.js';
import { HttpServerProcess, mcpHeaders, toolCallBody } from '../helpers/http-process.js';
import { RedisServer, redisTestsEnabled } from '../helpers/redis-server.js';
import { PRICES } from '../../src/endpoints/registry.js';

/**
 * Issue 16, finding 8: a SIGSTOPped Redis (the connection stays open, nothing answers) made `/readyz` flap and added
 * ~1 s to calls. Now commands are bounded by a short timeout and skip Redis after the first one fails, until a
 * probe answers; readiness changes only after several failed probes in a row and comes back after several good ones.
 */

const KEY = 'tm-stall-0000-1111-2222-5709';
const TOKEN = 'stall-token-0123456789abcdef';
const enabled = redisTestsEnabled();

let redis: RedisServer;
let fake: FakeUpstream;
const opened: SharedServices[] = [];
const spawned: HttpServerProcess[] = [];

const pause = (ms: number): Promise<void> => new Promise(resolve => setTimeout(resolve, ms));

async function until(what: string, check: () => boolean | Promise<boolean>, tries = 400): Promise<void> {
    for (let i = 0; i < tries; i++) {
        if (await check()) return;
        await pause(50);
    }
    throw new Error(`never happened: ${what}`);
}

async function readiness(server: HttpServerProcess): Promise<{ status: string; checks: { redis: string } }> {
    return (await (await fetch(`${server.origin}/readyz`)).json()) as { status: string; checks: { redis: string } };
}

async function call(server: HttpServerProcess, name: string, args: Record<string, unknown>): Promise<CallToolResult> {
    const response = await fetch(server.mcpUrl, { method: 'POST', headers: mcpHeaders(TOKEN), body: toolCallBody(name, args) });
    expect(response.status).toBe(200);
    return ((await response.json()) as { result: CallToolResult }).result;
}

/** Consecutive duplicates collapsed: the transitions a load balancer would have seen. */
const transitions = (states: string[]): string[] => states.filter((state, i) => i === 0 || states[i - 1] !== state);

describe.runIf(enabled)('a stalled (SIGSTOPped) Redis', () => {
    beforeAll(async () => {
        redis = await RedisServer.start();
        fake = await FakeUpstream.start();
    });

    afterAll(async () => {
        redis?.signal('SIGCONT');
        await Promise.all(opened.splice(0).map(shared => shared.close()));
        await Promise.all(spawned.map(server => server.stop()));
        await redis?.stop();
        await fake?.close();
    });

    it('costs calls at most one short command timeout, not one per call, and they are all answered', async () => {
        const logger = new RecordingLogger();
        const shared = connectRedis({
            url: redis.url,
            logger,
            redactor: new Redactor(),
            staleMaxAgeSeconds: 3600,
            lockTtlMs: 5_000,
            concurrency: 2,
            attemptTimeoutMs: 5_000
        });
        opened.push(shared);
        const replica = harness({ shared: shared.tier }, { logger });
        await until('Redis connected', () => shared.health().up);
        await replica.service.get(PRICES, { ids: [1] });
        // Its publish to Redis finishes after the answer: let it, so the stall starts with nothing in flight.
        await pause(100);
        const before = shared.stats();
        expect(before.commands).toBeGreaterThan(0);

        redis.signal('SIGSTOP');
        try {
            for (let id = 2; id < 22; id++) expect((await replica.service.get(PRICES, { ids: [id] })).data).toHaveLength(1);
            const during = shared.stats();
            // The first command waited for its short timeout; every later one skipped Redis at once.
            expect(during.timeouts - before.timeouts).toBe(1);
            expect(during.commands - before.commands).toBe(1);
            expect(during.skipped - before.skipped).toBeGreaterThanOrEqual(19);
        } finally {
            redis.signal('SIGCONT');
        }
        // A probe answers within a second or so, and the replica shares through Redis again.
        const resumed = shared.stats().commands;
        await until('commands go to Redis again', async () => {
            await replica.service.get(PRICES, { ids: [100 + Math.floor(Math.random() * 1e6)] });
            return shared.stats().commands > resumed;
        });
        expect(replica.inner.count()).toBeGreaterThanOrEqual(21);
    });

    it('keeps /readyz steady through a short stall, changes it once for a long one, and answers calls throughout', async () => {
        const server = await HttpServerProcess.start({
            TOKEN_METRICS_API_KEY: KEY,
            TOKEN_METRICS_BASE_URL: fake.baseUrl,
            CRYPTO_INTEL_REDIS_URL: redis.url,
            CRYPTO_INTEL_HTTP_TOKENS: TOKEN
        });
        spawned.push(server);
        await until('Redis ok on /readyz', async () => (await readiness(server)).checks.redis === 'ok');

        // A stall shorter than the hysteresis (3 failed probes, a second apart): nothing to report.
        const shortStall: string[] = [];
        redis.signal('SIGSTOP');
        try {
            for (let i = 0; i < 10; i++) {
                shortStall.push((await readiness(server)).status);
                expect((await call(server, 'get_price', { symbols: [String(3375 + (i % 2) * -69)] })).isError).toBeFalsy();
                await pause(50);
            }
        } finally {
            redis.signal('SIGCONT');
        }
        expect(new Set(shortStall)).toEqual(new Set(['ok']));

        // A long stall: degraded once, back once, never flapping in between; calls answered all along.
        await until('Redis ok again', async () => (await readiness(server)).checks.redis === 'ok');
        const states: string[] = [];
        let made = 0;
        let answered = 0;
        redis.signal('SIGSTOP');
        try {
            await until('degraded', async () => {
                const { status } = await readiness(server);
                states.push(status);
                made++;
                if (!(await call(server, 'list_moonshots', { type: states.length % 2 === 0 ? 'active' : 'past' })).isError) answered++;
                return status === 'degraded';
            });
        } finally {
            redis.signal('SIGCONT');
        }
        await until('ok after the stall', async () => {
            const { status } = await readiness(server);
            states.push(status);
            return status === 'ok';
        });
        expect(transitions(states)).toEqual(['ok', 'degraded', 'ok']);
        expect(answered).toBe(made);
        const log = server.stderr.split('\n');
        expect(log.filter(line => line.includes('"msg":"Redis unavailable'))).toHaveLength(1);
        expect(log.filter(line => line.includes('"msg":"Redis reachable again'))).toHaveLength(1);
    });
});
