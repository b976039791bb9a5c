import type { CallToolResult } from '@modelcontextprotocol/sdk/types.js';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { inToolCall, withCaller } from '../../src/api/call-scope.js';
import { Semaphore } from '../../src/api/limiter.js';
import type { UpstreamError } from '../../src/api/errors.js';
import { refusalOf } from '../../src/api/refusals.js';
import { systemClock } from '../../src/clock.js';
import { PRICES } from '../../src/endpoints/registry.js';
import { busyReplies, CallerGates } from '../../src/http/fairness.js';
import { RateLimiter } from '../../src/http/rate-limit.js';
import { clientAddress, countToolCalls } from '../../src/http/serve.js';
import { runClock } from '../fake-upstream/clocked.js';
import { FakeUpstream } from '../fake-upstream/index.js';
import { FakeClock } from '../helpers/clock.js';
import { clientFor } from '../helpers/client.js';
import { inProcessServer, textOf } from '../helpers/in-process.js';

/**
 * The upstream limiter (src/api/limiter.ts) and the HTTP pieces around it: callers served in turn, a queue bounded by
 * time rather than length, a per-caller cap on uncached calls, and a rate that counts tool calls.
 */

const never = new AbortController().signal;

/** Resolves with the promise's state after pending callbacks ran: 'granted', 'waiting' or the refusal. */
async function state(promise: Promise<unknown>): Promise<string> {
    let result = 'waiting';
    promise.then(
        () => (result = 'granted'),
        (error: unknown) => (result = refusalOf(error) ?? 'rejected')
    );
    await new Promise(resolve => setTimeout(resolve, 0));
    return result;
}

describe('the upstream limiter', () => {
    it('serves callers in turn: one request of a quiet caller goes before a flood queued earlier', async () => {
        const sem = new Semaphore(1);
        const held = await withCaller({ caller: 'flood' }, () => sem.acquire(never));
        const order: string[] = [];
        const queued = [
            ...Array.from({ length: 5 }, (_, i) =>
                withCaller({ caller: 'flood' }, () => sem.acquire(never)).then(release => (order.push(`flood${i}`), release))
            ),
            withCaller({ caller: 'quiet' }, () => sem.acquire(never)).then(release => (order.push('quiet'), release))
        ];
        held();
        for (let i = 0; i < queued.length; i++) {
            await new Promise(resolve => setTimeout(resolve, 0));
            const next = order.length;
            expect(next).toBeGreaterThan(0);
            (await queued.find((_, index) => index === (order[next - 1] === 'quiet' ? 5 : Number(order[next - 1]!.slice(5))))!)();
        }
        expect(order.indexOf('quiet')).toBe(1);
    });

    it('keeps one slot from a caller that holds the others, so another caller starts at once', async () => {
        const sem = new Semaphore(2);
        const first = await withCaller({ caller: 'a' }, () => sem.acquire(never));
        const second = withCaller({ caller: 'a' }, () => sem.acquire(never));
        expect(await state(second)).toBe('waiting');
        const other = withCaller({ caller: 'b' }, () => sem.acquire(never));
        expect(await state(other)).toBe('granted');
        first();
        expect(await state(second)).toBe('granted');
        // The anonymous caller (stdio) is alone and may use every slot.
        const solo = new Semaphore(2);
        await solo.acquire(never);
        expect(await state(solo.acquire(never))).toBe('granted');
    });

    it('answers "busy, retry in N s" at once when its queue cannot reach a request before the deadline', async () => {
        const clock = new FakeClock();
        const sem = new Semaphore(1, { clock });
        // One request of 1 s: the estimate.
        const warm = await sem.acquire(never);
        clock.advance(1_000);
        warm();
        const held = await sem.acquire(never);
        // Each queued request starts about a second after the one before: four fit in 5 s, the fifth would not finish.
        const queued = Array.from({ length: 4 }, () => sem.acquire(never, { withinMs: 5_000 }));
        for (const waiter of queued) expect(await state(waiter)).toBe('waiting');
        const refused = sem.acquire(never, { withinMs: 5_000 });
        const error = (await refused.catch((reason: unknown) => reason)) as Error & { code: string; hint: string };
        expect(refusalOf(error)).toBe('busy');
        expect(error).toMatchObject({ code: 'RATE_LIMITED' });
        expect(error.message).toMatch(/busy.*no credit was spent/);
        expect(error.hint).toMatch(/^Retry in 5 s/);
        expect(sem.stats()).toEqual({ active: 1, waiting: 4 });
        held();
        for (const waiter of queued) (await waiter)();
    });

    it('starts no request whose turn comes too late to finish before its deadline', async () => {
        const clock = new FakeClock();
        const sem = new Semaphore(1, { clock });
        const warm = await sem.acquire(never);
        clock.advance(1_000);
        warm();
        // Less than one typical request left: refused before starting.
        await expect(sem.acquire(never, { withinMs: 500 }).catch(refusalOf)).resolves.toBe('too-late');
        // Queued in time, but the slot frees too late for it: refused at its turn, never started.
        const held = await sem.acquire(never);
        const waiter = sem.acquire(never, { withinMs: 2_500 });
        expect(await state(waiter)).toBe('waiting');
        clock.advance(2_000);
        held();
        expect(await state(waiter)).toBe('too-late');
        expect(sem.stats()).toEqual({ active: 0, waiting: 0 });
    });

    it('caps the uncached calls of one caller, counting a call once however many requests it makes', async () => {
        const clock = new FakeClock();
        const sem = new Semaphore(8, { clock });
        const gates = new CallerGates(2);
        const context = gates.context('token#1');
        /** A tool call that makes `requests` upstream requests, then runs until `end()`. */
        const toolCall = (requests: number) => {
            let end!: () => void;
            const ended = new Promise<void>(resolve => (end = resolve));
            const done = withCaller(context, () =>
                inToolCall(clock, 60_000, async () => {
                    for (let i = 0; i < requests; i++) (await sem.acquire(never))();
                    await ended;
                })
            );
            return { done, end };
        };
        const a = toolCall(3);
        const b = toolCall(1);
        await new Promise(resolve => setTimeout(resolve, 0));
        expect(gates.count('token#1')).toBe(2);
        await expect(toolCall(1).done).rejects.toMatchObject({ code: 'RATE_LIMITED', hint: expect.stringMatching(/^Retry in \d+ s/) });
        // Another caller is not affected, and a call that needs no upstream request takes no slot.
        await withCaller(gates.context('token#2'), () => inToolCall(clock, 60_000, async () => (await sem.acquire(never))()));
        await withCaller(context, () => inToolCall(clock, 60_000, async () => undefined));
        a.end();
        await a.done;
        expect(gates.count('token#1')).toBe(1);
        const d = toolCall(1);
        await new Promise(resolve => setTimeout(resolve, 0));
        expect(gates.count('token#1')).toBe(2);
        b.end();
        d.end();
        await Promise.all([b.done, d.done]);
        expect(gates.count('token#1')).toBe(0);
    });
});

describe('the rate and the caller on /mcp', () => {
    it('spends a cost all or nothing, and says when it will fit', () => {
        const clock = new FakeClock();
        const limiter = new RateLimiter(60, clock);
        expect(limiter.take('token#1', 50)).toEqual({ ok: true });
        expect(limiter.take('token#1', 20)).toEqual({ ok: false, retryAfterS: 10 });
        expect(limiter.take('token#1', 10)).toEqual({ ok: true });
        expect(limiter.check('token#1')).toEqual({ ok: false, retryAfterS: 1 });
        expect(limiter.burst).toBe(60);
    });

    it('counts the tools/call elements of a message or batch', () => {
        const toolCall = { jsonrpc: '2.0', id: 1, method: 'tools/call', params: {} };
        expect(countToolCalls(toolCall)).toBe(1);
        expect(countToolCalls({ jsonrpc: '2.0', id: 1, method: 'tools/list' })).toBe(0);
        expect(countToolCalls([toolCall, toolCall, { jsonrpc: '2.0', method: 'notifications/initialized' }, null, 7])).toBe(2);
    });

    it('answers a flooding caller at the door: every tools/call of the message busy, anything else left to the SDK', () => {
        const call = (id: number | string) => ({ jsonrpc: '2.0', id, method: 'tools/call', params: { name: 'get_price', arguments: {} } });
        const single = busyReplies(call(7), 1) as { id: number; result: { isError: boolean; content: Array<{ text: string }> } };
        expect(single).toMatchObject({ jsonrpc: '2.0', id: 7, result: { isError: true } });
        expect(single.result.content[0]!.text).toMatch(/busy.*Retry in 1 s/);
        expect((busyReplies([call(1), call('b')], 2) as Array<{ id: unknown }>).map(reply => reply.id)).toEqual([1, 'b']);
        expect(busyReplies([call(1), { jsonrpc: '2.0', id: 2, method: 'tools/list' }], 1)).toBeNull();
        expect(busyReplies({ jsonrpc: '2.0', method: 'tools/call' }, 1)).toBeNull();
        expect(busyReplies([], 1)).toBeNull();
        const gates = new CallerGates(1);
        const context = gates.context('token#1');
        expect(gates.full('token#1')).toBe(false);
        expect(context.enter!()).toBe(true);
        expect(gates.full('token#1')).toBe(true);
        context.leave!();
        expect(gates.full('token#1')).toBe(false);
        expect(new CallerGates(0).full('token#1')).toBe(false);
    });

    it('believes X-Forwarded-For from a proxy on this machine only', () => {
        const req = (remoteAddress: string, forwarded?: string) =>
            ({ socket: { remoteAddress }, headers: forwarded === undefined ? {} : { 'x-forwarded-for': forwarded } }) as never;
        expect(clientAddress(req('127.0.0.1', '198.51.100.4, 203.0.113.7'))).toBe('203.0.113.7');
        expect(clientAddress(req('::ffff:127.0.0.1', '203.0.113.7'))).toBe('203.0.113.7');
        expect(clientAddress(req('10.0.0.9', '203.0.113.7'))).toBe('10.0.0.9');
        expect(clientAddress(req('127.0.0.1', 'not an address'))).toBe('127.0.0.1');
        expect(clientAddress(req('127.0.0.1'))).toBe('127.0.0.1');
    });
});

/** The fake upstream the slot-wait and flood tests share; each test starts from a fresh one on the real clock. */
let fake: FakeUpstream;

beforeAll(async () => {
    fake = await FakeUpstream.start();
});

afterAll(async () => {
    await fake?.close();
});

beforeEach(() => {
    fake.reset();
    fake.latencyMs = 0;
    fake.clock = systemClock;
});

describe('the wait for an upstream slot', () => {
    it('times each attempt from when it is sent, not from when it joined the queue', async () => {
        const clock = new FakeClock();
        fake.clock = clock;
        fake.latencyMs = 800;
        const { client, http } = clientFor(fake, { clock, http: { concurrency: 1, attemptTimeoutMs: 1_000, deadlineMs: 10_000 } });
        try {
            // Three requests of 0.8 s one at a time: the third waits 1.6 s for its slot, longer than an attempt may take.
            const answers = Promise.all(fake.world.tokens.slice(0, 3).map(token => client.get(PRICES, { ids: [token.id] })));
            await runClock(fake, clock, answers);
            expect((await answers).map(rows => rows.length)).toEqual([1, 1, 1]);
            expect(fake.calls.map(call => [call.status, call.aborted])).toEqual([
                [200, false],
                [200, false],
                [200, false]
            ]);
        } finally {
            await http.close();
        }
    });

    it('says nothing was sent, and no credit spent, when the deadline comes while a request waits for its slot', async () => {
        const clock = new FakeClock();
        fake.clock = clock;
        fake.inject({ fault: { kind: 'hold' }, times: 1 });
        const { client, http } = clientFor(fake, {
            clock,
            http: { concurrency: 1, attemptTimeoutMs: 1_000, deadlineMs: 1_000, retry: { maxRetries: 0 } }
        });
        try {
            const first = client.get(PRICES, { ids: [3375] }).catch((error: unknown) => error as UpstreamError);
            const second = client.get(PRICES, { ids: [3306] }).catch((error: unknown) => error as UpstreamError);
            await fake.until(() => fake.pending().length === 1);
            clock.advance(1_000);
            expect(await first).toMatchObject({ code: 'UPSTREAM_TIMEOUT', message: expect.stringMatching(/did not answer within 1\.0 s/) });
            expect(await second).toMatchObject({
                code: 'UPSTREAM_TIMEOUT',
                message: expect.stringMatching(
                    /ran out while its Token Metrics API request waited.*nothing was sent and no credit was spent/
                ),
                hint: expect.stringMatching(/^Try again shortly/)
            });
            expect(fake.count()).toBe(1);
        } finally {
            await http.close();
        }
    });
});

describe('a flood through the whole server (in process)', () => {
    it('answers the calls its queue cannot serve in time "busy" at once, and sends nothing upstream for them', async () => {
        // Every request takes 3 s of fake time, one at a time: the limiter's estimates are exact, whatever the machine.
        const clock = new FakeClock();
        const server = await inProcessServer(
            fake,
            {
                CRYPTO_INTEL_UPSTREAM_CONCURRENCY: '1',
                CRYPTO_INTEL_TIMEOUT_MS: '25000',
                CRYPTO_INTEL_DEADLINE_MS: '31000',
                CRYPTO_INTEL_LOG_LEVEL: 'warn'
            },
            clock
        );
        fake.clock = clock;
        fake.latencyMs = 3_000;
        try {
            // One call first, so the limiter knows how long a request takes (a lookup and a price, 3 s each).
            const warm = server.call('get_price', { symbols: ['3375'] });
            await runClock(fake, clock, warm);
            expect((await warm).isError).toBeFalsy();
            const calls = fake.count();
            const answered: CallToolResult[] = [];
            const flood = Promise.all(
                Array.from({ length: 20 }, (_, i) =>
                    server.call('get_price', { symbols: [String(930_000 + i)] }).then(result => (answered.push(result), result))
                )
            );
            // The first request is out and no fake time has passed: the calls the queue cannot serve are answered already.
            await fake.until(() => fake.pending().length === 1);
            expect(answered.length).toBe(10);
            await runClock(fake, clock, flood);
            const results = await flood;
            const busy = results.map((result, i) => [result, 930_000 + i] as const).filter(([result]) => result.isError === true);
            // 20 requests of 3 s one at a time need 60 s: ten finish within the 31 s deadline (the last at 30 s); the
            // other ten are told at once that the queue would reach them in 30 s...
            expect(busy.map(([result]) => /busy.*Retry in (\d+) s/s.exec(textOf(result))?.[1])).toEqual(Array(10).fill('30'));
            // ...and none of them reached the upstream: every request made was for an answered call.
            const asked = new Set(fake.calls.slice(calls).map(call => Number(call.query.token_id)));
            for (const [, id] of busy) expect(asked.has(id)).toBe(false);
            expect(asked.size).toBe(10);
            expect(fake.calls.slice(calls).every(call => call.status === 200 && !call.aborted)).toBe(true);
        } finally {
            fake.clock = systemClock;
            await server.close();
        }
    });
});
