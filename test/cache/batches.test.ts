import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { callTimeLeftMs, currentScope, inToolCall, withCaller, type CallerContext } from '../../src/api/call-scope.js';
import { CachedMarketService } from '../../src/cache/cached-market-service.js';
import { systemClock } from '../../src/clock.js';
import type { Endpoint } from '../../src/endpoints/endpoint.js';
import { PRICES, TM_GRADES, TOKENS } from '../../src/endpoints/registry.js';
import { FakeUpstream } from '../fake-upstream/index.js';
import { clientFor } from '../helpers/client.js';
import { FakeClock } from '../helpers/clock.js';
import { harness } from './helpers.js';
import { FakeMarketData, RecordingLogger } from './fakes.js';

/**
 * Issue 15: the missing prices and symbol/name lookups of concurrent calls share their upstream requests (one per
 * batch), a batch with nothing in flight before it goes out on the next turn of the event loop (no timer window), a
 * burst gathers behind the batch in flight, and a batch is nobody's: one member's cap, deadline or cancellation does
 * not fail it for the others.
 */

/** One turn of the event loop: a batch scheduled before this call has fired by the time it resolves. */
const nextTurn = (): Promise<void> => new Promise(resolve => setImmediate(resolve));

/** `fn` as a tool call of the HTTP caller `caller` with `deadlineMs` left, as the transport and the server run it. */
function asCaller<T>(clock: FakeClock, caller: CallerContext | string, fn: () => Promise<T>, deadlineMs = 60_000): Promise<T> {
    return withCaller(typeof caller === 'string' ? { caller } : caller, () => inToolCall(clock, deadlineMs, fn));
}

describe('token lookups of concurrent callers, against the fake upstream', () => {
    let fake: FakeUpstream;

    beforeAll(async () => {
        fake = await FakeUpstream.start();
    });
    afterAll(async () => {
        await fake.close();
    });
    beforeEach(() => fake.reset());

    function cache(clock: FakeClock): CachedMarketService {
        const { client } = clientFor(fake, { clock, http: { attemptTimeoutMs: 10_000, retry: { maxRetries: 0 } } });
        return new CachedMarketService({
            inner: client,
            clock,
            logger: new RecordingLogger(),
            staleMaxAgeSeconds: 86_400,
            batchWindowMs: 0,
            maxEntries: 1_000,
            cacheDir: null
        });
    }

    it('looks up 40 distinct symbols and 6 names of 46 callers in one /tokens request per kind, unknown ones included', async () => {
        const clock = new FakeClock();
        const service = cache(clock);
        const known = [...new Set(fake.world.tokens.map(token => token.symbol))].slice(0, 37);
        const symbols = [...known, 'NOPE1', 'NOPE2', 'NOPE3'];
        const names = ['Bitcoin', 'Solana', 'Fake Token 7', 'Fake Token 40', 'No Such Coin', 'Nothing At All'];
        const bySymbol = symbols.map((symbol, i) => asCaller(clock, `token#${i}`, () => service.get(TOKENS, { symbols: [symbol] })));
        const byName = names.map((name, i) => asCaller(clock, `token#${100 + i}`, () => service.get(TOKENS, { names: [name] })));
        const [symbolAnswers, nameAnswers] = await Promise.all([Promise.all(bySymbol), Promise.all(byName)]);

        // The two requests went out together: in either order.
        expect(fake.calls.map(call => Object.keys(call.query).filter(name => name !== 'limit' && name !== 'page')).sort()).toEqual([
            ['symbol'],
            ['token_name']
        ]);
        expect(fake.calls.find(call => call.query.symbol)!.query.symbol!.split(',')).toEqual(symbols);
        symbolAnswers.forEach((answer, i) => {
            const expected = fake.world.tokens.filter(token => token.symbol === symbols[i]).map(token => token.id);
            expect(answer.data.map(row => row.tokenId)).toEqual(expected);
        });
        expect(symbolAnswers.slice(-3).map(answer => answer.data)).toEqual([[], [], []]);
        expect(nameAnswers.map(answer => answer.data.map(row => row.symbol))).toEqual([['BTC'], ['SOL'], ['FK7'], ['FK40'], [], []]);

        // Every part has its own entry, "nothing" included, and the rows answered the id entries for free.
        const again = await Promise.all([
            service.get(TOKENS, { symbols: ['NOPE2', symbols[5]!] }),
            service.get(TOKENS, { names: ['no such coin'] }),
            service.get(TOKENS, { ids: [3375, fake.world.tokens.find(token => token.symbol === 'FK7')!.id] })
        ]);
        expect(again[2].data.map(row => row.symbol)).toEqual(['BTC', 'FK7']);
        expect(fake.count('/tokens')).toBe(2);
        expect(service.stats().endpoints.tokens).toMatchObject({ misses: 46, upstreamCalls: 2 });
    });

    it("runs a batch opened by a caller with seconds left until another member's deadline, so the limiter does not refuse it", async () => {
        // Every request takes 3 s of fake time: after one, the limiter knows that a request needs 3 s.
        const clock = new FakeClock();
        fake.clock = clock;
        fake.latencyMs = 3_000;
        try {
            const service = cache(clock);
            const warm = service.get(PRICES, { ids: [3375] });
            await fake.until(() => fake.pending().length === 1);
            clock.advance(3_000);
            await warm;
            // The batch's first member has 1 s left, too little for a request: run in its scope, the limiter would refuse
            // the batch ("too little time left"), and the member with a minute left would get that refusal too.
            const hurried = asCaller(clock, 'token#1', () => service.get(TOKENS, { symbols: ['BTC'] }), 1_000);
            const patient = asCaller(clock, 'token#2', () => service.get(TOKENS, { symbols: ['ETH'] }), 60_000);
            const both = Promise.allSettled([hurried, patient]);
            await Promise.race([fake.until(() => fake.pending().length === 1), both]);
            clock.advance(3_000);
            expect(await both).toMatchObject([
                { status: 'fulfilled', value: { data: [{ symbol: 'BTC' }] } },
                { status: 'fulfilled', value: { data: [{ symbol: 'ETH' }] } }
            ]);
            expect(fake.calls.map(call => [call.path, call.query.symbol])).toEqual([
                ['/price', undefined],
                ['/tokens', 'BTC,ETH']
            ]);
        } finally {
            fake.clock = systemClock;
            fake.latencyMs = 0;
        }
    });
});

/** Records the call scope each upstream call runs in. */
class ScopeRecordingMarketData extends FakeMarketData {
    readonly scopes: Array<{ endpoint: string; caller: string | undefined; timeLeftMs: number }> = [];

    override get<P, Row>(endpoint: Endpoint<P, Row>, params: P, signal?: AbortSignal): Promise<Row[]> {
        this.scopes.push({ endpoint: endpoint.name, caller: currentScope()?.context?.caller, timeLeftMs: callTimeLeftMs() });
        return super.get(endpoint, params, signal);
    }
}

describe('the batch schedule', () => {
    it("starts a lone call's request on the next turn of the event loop, whatever the window is set to", async () => {
        // A minute of window, on a clock that never moves by itself: had the call waited for a timer, the request
        // would not have been made.
        const { service, inner, clock } = harness({ batchWindowMs: 60_000 });
        const price = service.get(PRICES, { ids: [1] });
        const lookup = service.get(TOKENS, { symbols: ['BTC'] });
        await nextTurn();
        expect(inner.calls.map(call => call.endpoint)).toEqual(['prices', 'tokens']);
        expect(clock.sleeps).toEqual([]);
        await Promise.all([price, lookup]);
    });

    it('sends the parts asked during a burst behind the batch in flight in exactly one more request', async () => {
        const { service, inner } = harness();
        const release = inner.hold();
        const first = service.get(PRICES, { ids: [1] });
        await nextTurn();
        expect(inner.count('prices')).toBe(1);
        // 24 more calls over several turns while the first one is in flight: they wait for it, together.
        const burst: Array<Promise<unknown>> = [];
        for (let i = 2; i <= 25; i++) {
            burst.push(service.get(PRICES, { ids: [i] }));
            if (i % 5 === 0) await nextTurn();
        }
        expect(inner.count('prices')).toBe(1);
        release();
        await Promise.all([first, ...burst]);
        expect(inner.calls.map(call => call.params)).toEqual([{ ids: [1] }, { ids: Array.from({ length: 24 }, (_, i) => i + 2) }]);
    });

    it('keeps a batch per kind: a name lookup does not wait for the symbol lookup in flight, and ids go alone', async () => {
        const { service, inner } = harness();
        const release = inner.hold();
        const bySymbol = service.get(TOKENS, { symbols: ['BTC'] });
        await nextTurn();
        const byName = service.get(TOKENS, { names: ['Solana'] });
        const byId = service.get(TOKENS, { ids: [3306] });
        await nextTurn();
        expect(inner.calls.map(call => call.params)).toEqual([{ symbols: ['BTC'] }, { ids: [3306] }, { names: ['Solana'] }]);
        release();
        const answers = await Promise.all([bySymbol, byName, byId]);
        expect(answers.map(answer => answer.data.map(row => row.symbol))).toEqual([['BTC'], ['SOL'], ['ETH']]);
    });

    it('sends a batch gathered behind another once no call joined it for CRYPTO_INTEL_BATCH_WINDOW_MS, 250 ms at most', async () => {
        /** Runs one call in flight, a second that joins the next batch, then `elapseMs` before the first one settles. */
        const followUp = async (windowMs: number, elapseMs: number): Promise<number[]> => {
            const { service, inner, clock } = harness({ batchWindowMs: windowMs });
            const release = inner.hold();
            const first = service.get(PRICES, { ids: [1] });
            await nextTurn();
            const second = service.get(PRICES, { ids: [2] });
            clock.advance(elapseMs);
            release();
            await Promise.all([first, second]);
            expect(inner.calls.map(call => call.params)).toEqual([{ ids: [1] }, { ids: [2] }]);
            return clock.sleeps;
        };
        // The last call joined 30 ms before the settle: 10 ms more of quiet. Long enough ago, or no window: none.
        expect(await followUp(40, 30)).toEqual([10]);
        expect(await followUp(40, 50)).toEqual([]);
        expect(await followUp(0, 0)).toEqual([]);
        // However long the window, a batch waits at most 250 ms after the one before it settled.
        expect(await followUp(1_000, 0)).toEqual([250]);
    });
});

describe('a batch shared by several callers', () => {
    it("runs outside every member's scope, until the latest member's deadline", async () => {
        const inner = new ScopeRecordingMarketData();
        const { service, clock } = harness({}, { inner });
        await Promise.all([
            asCaller(clock, 'token#1', () => service.get(PRICES, { ids: [1] }), 5_000),
            asCaller(clock, 'token#2', () => service.get(PRICES, { ids: [2] }), 20_000),
            asCaller(clock, 'token#3', () => service.get(PRICES, { ids: [3] }), 8_000),
            // A call of its own question stays in its caller's scope.
            asCaller(clock, 'token#4', () => service.get(TM_GRADES, { ids: [4] }), 7_000)
        ]);
        expect(inner.scopes).toEqual([
            { endpoint: 'tmGrades', caller: 'token#4', timeLeftMs: 7_000 },
            { endpoint: 'prices', caller: undefined, timeLeftMs: 20_000 }
        ]);
        expect(inner.calls.find(call => call.endpoint === 'prices')!.params).toEqual({ ids: [1, 2, 3] });
    });

    it('answers a member over its caller cap "busy" alone, and the others from the batch', async () => {
        const { service, inner, clock } = harness();
        const full: CallerContext = { caller: 'token#1', enter: () => false, leave: () => undefined };
        const [refused, answered] = await Promise.allSettled([
            asCaller(clock, full, () => service.get(PRICES, { ids: [1] })),
            asCaller(clock, 'token#2', () => service.get(PRICES, { ids: [2] }))
        ]);
        expect(refused).toMatchObject({ status: 'rejected', reason: { code: 'RATE_LIMITED', message: expect.stringMatching(/busy/) } });
        expect(answered).toMatchObject({ status: 'fulfilled', value: { data: [{ tokenId: 2 }] } });
        expect(inner.calls.map(call => call.params)).toEqual([{ ids: [2] }]);
    });

    it('keeps going for the other members when one cancels, and is aborted only when all have', async () => {
        const { service, inner, clock } = harness();
        const release = inner.hold();
        const leaving = new AbortController();
        const cancelled = asCaller(clock, 'token#1', () => service.get(PRICES, { ids: [1] }, leaving.signal));
        const kept = asCaller(clock, 'token#2', () => service.get(PRICES, { ids: [2] }));
        await nextTurn();
        leaving.abort();
        await expect(cancelled).rejects.toMatchObject({ code: 'CANCELLED' });
        expect(inner.calls[0]!.signal?.aborted).toBe(false);
        release();
        expect((await kept).data).toEqual([expect.objectContaining({ tokenId: 2 })]);
        // The cancelled member's entry was paid for with the others': it is kept.
        await service.get(PRICES, { ids: [1] });
        expect(inner.count('prices')).toBe(1);

        const release2 = inner.hold();
        const all = [new AbortController(), new AbortController()];
        const gone = all.map((controller, i) => service.get(PRICES, { ids: [10 + i] }, controller.signal));
        await nextTurn();
        for (const controller of all) controller.abort();
        for (const call of gone) await expect(call).rejects.toMatchObject({ code: 'CANCELLED' });
        expect(inner.calls[1]!.signal?.aborted).toBe(true);
        release2();
    });

    it('fails only the member whose deadline passed while the batch was in flight', async () => {
        const { service, inner, clock } = harness();
        const release = inner.hold();
        const deadline = new AbortController();
        const late = asCaller(clock, 'token#1', () => service.get(PRICES, { ids: [1] }, deadline.signal));
        const onTime = asCaller(clock, 'token#2', () => service.get(PRICES, { ids: [2] }));
        await nextTurn();
        deadline.abort(new DOMException('The operation timed out.', 'TimeoutError'));
        await expect(late).rejects.toMatchObject({ code: 'UPSTREAM_TIMEOUT' });
        expect(inner.calls[0]!.signal?.aborted).toBe(false);
        release();
        expect((await onTime).data).toEqual([expect.objectContaining({ tokenId: 2 })]);
    });

    it('fails a bad symbol in its own call, before it can join a batch and fail the others', async () => {
        const { service, inner } = harness();
        const bad = service.get(TOKENS, { symbols: ["' OR 1 --"] });
        const good = service.get(TOKENS, { symbols: ['ETH'] });
        await expect(bad).rejects.toMatchObject({ code: 'INVALID_INPUT' });
        expect((await good).data.map(row => row.symbol)).toEqual(['ETH']);
        expect(inner.calls.map(call => call.params)).toEqual([{ symbols: ['ETH'] }]);
    });
});
