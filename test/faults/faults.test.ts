import type { CallToolResult, JSONRPCMessage } from '@modelcontextprotocol/sdk/types.js';
import type * as z from 'zod';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { isValidFilterValue } from '../../src/endpoints/params.js';
import type { UpstreamError } from '../../src/api/errors.js';
import { systemClock } from '../../src/clock.js';
import { ExplainSignalOutput } from '../../tools/explain-signal.js';
import { GetGradesOutput } from '../../tools/get-grades.js';
import { GetPriceOutput } from '../../tools/get-price.js';
import { ListMoonshotsOutput } from '../../tools/list-moonshots.js';
import { runClock } from '../fake-upstream/clocked.js';
import type { FakeUpstream, Fault } from '../fake-upstream/index.js';
import { FakeClock } from '../helpers/clock.js';
import { clientFor } from '../helpers/client.js';
import { inProcessServer, type InProcessServer } from '../helpers/in-process.js';
import { tempKeyFile } from '../keys/support.js';
import { badInputs, type BadInput } from './bad-inputs.js';
import {
    KEYS,
    attempts,
    capturedOutput,
    closeAllFakes,
    closeFake,
    countFault,
    eventually,
    findLeaks,
    inject,
    record,
    sessions,
    settleFake,
    spawnServer,
    startFake,
    tally,
    textOf,
    type RawResponse,
    type Session
} from './support.js';
import { PRICES } from '../../src/endpoints/registry.js';

/**
 * Issue 8: the built server keeps serving, loses nothing and leaks nothing under upstream faults, rate-limit storms,
 * key revocation and rotation, a thousand hostile inputs and a burst of concurrent calls. Faults are bounded in
 * count and time; nothing asserts on wall-clock durations, only that every call resolved and how many attempts the
 * fake upstream saw. Every spawned server is checked when it closes (no crash, stdout pure JSON-RPC, no key or key
 * fragment anywhere), and the suite prints one summary on stderr.
 */

const OUTPUT_SCHEMAS: Record<string, z.ZodType> = {
    get_price: GetPriceOutput,
    get_grades: GetGradesOutput,
    list_moonshots: ListMoonshotsOutput,
    explain_signal: ExplainSignalOutput
};

/** The upstream's price of a fake-world token, by symbol. */
function priceOf(fake: FakeUpstream, symbol: string): number {
    const token = fake.world.tokens.find(candidate => candidate.symbol === symbol);
    if (!token) throw new Error(`no fake token ${symbol}`);
    return token.price;
}

/** A fake clock whose waits end a millisecond early, as Node's timers can (they count from the event loop's cached time). */
class EarlyClock extends FakeClock {
    override async sleep(ms: number, signal?: AbortSignal): Promise<void> {
        await super.sleep(ms > 1 ? ms - 1 : ms, signal);
    }
}

interface PriceAnswer {
    prices: Array<{ symbol: string; price_usd: number | null }>;
    unresolved: Array<{ input: string }>;
    stale_age_s?: number;
}

/** An isError result whose text names the cause and says what to do next. */
function expectFailure(result: CallToolResult, cause: RegExp, next: RegExp): void {
    expect(result.isError, textOf(result)).toBe(true);
    expect(textOf(result)).toMatch(cause);
    expect(textOf(result)).toMatch(next);
}

function expectAnswer(tool: string, result: CallToolResult): void {
    expect(result.isError, textOf(result)).toBeFalsy();
    expect(OUTPUT_SCHEMAS[tool]!.safeParse(result.structuredContent).success).toBe(true);
}

afterAll(() => {
    const outcomes = tally.badInputOutcomes;
    process.stderr.write(
        [
            '',
            `fault suite: faults injected ${tally.faultsInjected}, bad inputs ${tally.badInputs}, calls answered ${tally.callsAnswered}, ` +
                `crashes ${tally.crashes}, leaks ${tally.leaks}`,
            `  servers spawned ${tally.servers}, upstream requests ${tally.upstreamRequests} (${tally.faultedResponses} faulted), ` +
                `non-protocol stdout lines ${tally.nonProtocolLines}, upstream URL problems ${tally.upstreamProblems}`,
            `  bad inputs answered with ${outcomes.toolErrors} isError results, ${outcomes.rpcErrors} JSON-RPC errors, ` +
                `${outcomes.answers} valid answers; server RSS grew ${(tally.rssGrowthBytes / 1024 / 1024).toFixed(1)} MB`,
            ''
        ].join('\n')
    );
    expect(tally.crashes).toBe(0);
    expect(tally.leaks).toBe(0);
});

// -----------------------------------------------------------------------------------------------------------------

describe('regressions this suite found, pinned at the client', () => {
    let fake: FakeUpstream;

    beforeAll(async () => {
        fake = await startFake();
    });

    afterAll(async () => {
        if (fake) expect(await closeFake(fake)).toEqual([]);
    });

    it('does not loop on a 429 whose Retry-After is 0 or already past, and spends its retries on requests', async () => {
        for (const retryAfter of ['0', 'Thu, 01 Jan 2015 00:00:00 GMT']) {
            settleFake(fake);
            // Waits that end a millisecond early, as Node's timers can: an exact fake clock would hide the early wake.
            const http = { deadlineMs: 1_000, retry: { maxRetries: 2, backoffBaseMs: 50 } };
            const { client, http: upstream } = clientFor(fake, { clock: new EarlyClock(), http });
            try {
                inject(fake, { fault: { kind: 'rate-limit', retryAfter } });
                const outcome = client.get(PRICES, { ids: [3375] }).then(
                    () => null,
                    (failure: unknown) => failure as UpstreamError
                );
                // A loop would ask again and again without time passing: stop it at a dozen rather than at the test's timeout.
                const error = await Promise.race([outcome, fake.until(() => fake.count('/price') > 12).then(() => 'looped' as const)]);
                record(error);
                expect(error).not.toBe('looped');
                expect((error as UpstreamError | null)?.code).toBe('RATE_LIMITED');
                // One request and two retries: it was ~2,000 requests inside the 1 s deadline, or 2 when a wait ended early.
                expect(fake.count('/price'), retryAfter).toBe(3);
            } finally {
                await upstream.close();
            }
        }
    });

    it('chooses the key when a request gets its upstream slot, so queued requests skip a key that just hit a 429', async () => {
        settleFake(fake);
        const keys = ['tm-regress-first-0001', 'tm-regress-second-0002'];
        const { client, http } = clientFor(fake, { keys, http: { concurrency: 2 } });
        try {
            fake.latencyMs = 20;
            inject(fake, { fault: { kind: 'rate-limit', retryAfter: '30' }, key: keys[0] });
            const prices = await Promise.all(Array.from({ length: 12 }, (_, i) => client.get(PRICES, { ids: [40_000 + i] })));
            expect(prices.every(rows => rows.length === 1)).toBe(true);
            // Only the requests in flight when the first 429 arrived (one per slot) met the resting key; it was 12 before.
            expect(fake.calls.filter(call => call.key === keys[0]).length).toBeLessThanOrEqual(2);
            expect(fake.maxInFlight).toBeLessThanOrEqual(2);
        } finally {
            fake.latencyMs = 0;
            await http.close();
        }
    });

    it('keeps SQL quotes and comment markers out of the filter, and still takes an apostrophe inside a word', () => {
        for (const probe of ["' OR 1 --", "admin'--", "x' or 'x", "'quoted'", 'a--b']) expect(isValidFilterValue(probe), probe).toBe(false);
        for (const name of ["Pepe's", "O'Neil Coin", 'Wrapped (WBTC)', '$WIF', 'USD+', 'Bitcoin Cash']) {
            expect(isValidFilterValue(name), name).toBe(true);
        }
    });
});

// -----------------------------------------------------------------------------------------------------------------

describe('upstream faults: every call ends in a correct answer or an error that says what to do', () => {
    const MAX_RETRIES = 2;
    /** One upstream request gets at most this many attempts. */
    const MAX_ATTEMPTS = MAX_RETRIES + 1;
    /** The clocked server's attempt timeout and call deadline, in fake time. */
    const TIMEOUT_MS = 3_000;
    const DEADLINE_MS = 15_000;
    let fake: FakeUpstream;
    /** The built server over stdio, for the faults that take no time: on the real clock, with margins no answer nears. */
    let server: Session;
    /** The same server in process on a fake clock, for the faults that are about time: slow answers, Retry-After. */
    let clocked: InProcessServer;
    const clock = new FakeClock();

    beforeAll(async () => {
        fake = await startFake();
        server = await spawnServer('upstream faults', {
            TOKEN_METRICS_API_KEY: KEYS.single,
            TOKEN_METRICS_BASE_URL: fake.baseUrl,
            CRYPTO_INTEL_TIMEOUT_MS: '10000',
            CRYPTO_INTEL_DEADLINE_MS: '20000',
            CRYPTO_INTEL_MAX_RETRIES: String(MAX_RETRIES),
            CRYPTO_INTEL_CACHE_TTLS: 'price=0'
        });
        clocked = await inProcessServer(
            fake,
            {
                TOKEN_METRICS_API_KEY: KEYS.inProcess,
                CRYPTO_INTEL_TIMEOUT_MS: String(TIMEOUT_MS),
                CRYPTO_INTEL_DEADLINE_MS: String(DEADLINE_MS),
                CRYPTO_INTEL_MAX_RETRIES: String(MAX_RETRIES),
                CRYPTO_INTEL_CACHE_TTLS: 'price=0'
            },
            clock
        );
    });

    afterAll(async () => {
        if (clocked) {
            await clocked.close();
            record(clocked.logs.join(''));
        }
        if (server) expect(await server.close()).toEqual({ label: 'upstream faults', crashed: false, nonProtocolLines: [], leaks: [] });
        if (fake) expect(await closeFake(fake)).toEqual([]);
    });

    /** A call to the clocked server with its fake time played out: slow answers take their time, or the attempt's timeout. */
    async function clockedCall(tool: string, args: Record<string, unknown>): Promise<CallToolResult> {
        fake.clock = clock;
        try {
            const call = clocked.call(tool, args);
            await runClock(fake, clock, call, TIMEOUT_MS);
            const result = await call;
            record(result);
            tally.callsAnswered += 1;
            return result;
        } finally {
            fake.clock = systemClock;
        }
    }

    interface FaultCase {
        name: string;
        tool: string;
        args: Record<string, unknown>;
        faults: Array<{ fault: Fault; path: string; times?: number }>;
        /** Run before the call, e.g. to remove an endpoint. */
        setup?: (fake: FakeUpstream) => void;
        /** `answer`: checks of a correct result; otherwise the cause and the next step the error text must name. */
        outcome: { answer: (result: CallToolResult, fake: FakeUpstream) => void } | { cause: RegExp; next: RegExp };
        /** Most attempts per path the fake may see for this call. */
        bounds: Record<string, number>;
        /** Attempts per path that prove a retry happened (a fault, then the answer). */
        exact?: Record<string, number>;
        /** About time (slow answers, Retry-After): asked of the clocked server. */
        clocked?: true;
    }

    const price =
        (symbol: string) =>
        (result: CallToolResult, fake: FakeUpstream): void => {
            expectAnswer('get_price', result);
            const structured = result.structuredContent as unknown as PriceAnswer;
            expect(structured.prices).toEqual([expect.objectContaining({ symbol, price_usd: priceOf(fake, symbol) })]);
            expect(structured.stale_age_s).toBeUndefined();
        };

    const CASES: FaultCase[] = [
        {
            name: 'a burst of 503s, then the answer',
            tool: 'get_price',
            args: { symbols: ['FK1'] },
            faults: [{ fault: { kind: 'status', status: 503 }, path: '/price', times: 2 }],
            outcome: { answer: price('FK1') },
            bounds: { '/price': 3 },
            exact: { '/price': 3 }
        },
        {
            name: '500s that do not stop',
            tool: 'get_price',
            args: { symbols: ['FK2'] },
            faults: [{ fault: { kind: 'status', status: 500 }, path: '/price' }],
            outcome: { cause: /unavailable \(HTTP 500\)/, next: /try again in a minute/ },
            bounds: { '/price': MAX_ATTEMPTS }
        },
        {
            name: 'a 502 whose Retry-After is past the deadline',
            tool: 'get_price',
            args: { symbols: ['FK3'] },
            faults: [{ fault: { kind: 'status', status: 502, retryAfter: '60' }, path: '/price' }],
            outcome: { cause: /unavailable \(HTTP 502\)/, next: /try again in a minute/ },
            bounds: { '/price': 1 }
        },
        {
            name: 'a 503 with Retry-After 1, then the answer',
            tool: 'list_moonshots',
            args: { type: 'active', limit: 3 },
            faults: [{ fault: { kind: 'status', status: 503, retryAfter: '1' }, path: '/moonshot-tokens', times: 1 }],
            clocked: true,
            outcome: {
                answer: result => {
                    expectAnswer('list_moonshots', result);
                    expect((result.structuredContent as { moonshots: unknown[] }).moonshots).toHaveLength(3);
                }
            },
            bounds: { '/moonshot-tokens': 2 },
            exact: { '/moonshot-tokens': 2 }
        },
        {
            name: 'one answer slower than the attempt timeout',
            tool: 'get_price',
            args: { symbols: ['FK4'] },
            faults: [{ fault: { kind: 'latency', ms: 10_000 }, path: '/price', times: 1 }],
            clocked: true,
            outcome: { answer: price('FK4') },
            bounds: { '/price': 2 },
            exact: { '/price': 2 }
        },
        {
            name: 'every answer slower than the deadline',
            tool: 'get_price',
            args: { symbols: ['FK5'] },
            faults: [{ fault: { kind: 'latency', ms: 20_000 }, path: '/price' }],
            clocked: true,
            outcome: { cause: /did not answer within/, next: /Try again shortly/ },
            bounds: { '/price': MAX_ATTEMPTS }
        },
        {
            name: 'one connection reset, then the answer',
            tool: 'get_grades',
            args: { symbol: 'FK6' },
            faults: [{ fault: { kind: 'reset' }, path: '/tm-grade', times: 1 }],
            outcome: {
                answer: result => {
                    expectAnswer('get_grades', result);
                    expect(result.structuredContent).toMatchObject({ symbol: 'FK6', tm_grade: expect.any(Number) });
                    expect(result.structuredContent).not.toHaveProperty('unavailable');
                }
            },
            bounds: { '/tm-grade': 2, '/trading-signals': 1 },
            exact: { '/tm-grade': 2 }
        },
        {
            name: 'connection resets that do not stop',
            tool: 'explain_signal',
            args: { symbol: 'FK7' },
            faults: [{ fault: { kind: 'reset' }, path: '/trading-signals' }],
            outcome: { cause: /unavailable \(connection failed\)/, next: /check TOKEN_METRICS_BASE_URL/ },
            bounds: { '/trading-signals': MAX_ATTEMPTS }
        },
        {
            name: 'a truncated JSON body',
            tool: 'get_price',
            args: { symbols: ['FK8'] },
            faults: [{ fault: { kind: 'truncated' }, path: '/price' }],
            outcome: {
                cause: /unexpected format \(the response body is not valid JSON\)/,
                next: /run `crypto-intel-mcp doctor`.*remembered for another 60 s/s
            },
            bounds: { '/price': 1 }
        },
        {
            name: 'a truncated body on the token lookup',
            tool: 'get_grades',
            args: { symbol: 'FK9' },
            faults: [{ fault: { kind: 'truncated' }, path: '/tokens' }],
            outcome: { cause: /unexpected format/, next: /report its output to the crypto-intel-mcp maintainers/ },
            bounds: { '/tokens': 1, '/tm-grade': 0 }
        },
        {
            name: 'success: false with HTTP 200',
            tool: 'get_price',
            args: { symbols: ['FK10'] },
            faults: [{ fault: { kind: 'success-false', message: 'Endpoint temporarily disabled' }, path: '/price' }],
            outcome: { cause: /refused the request: "Endpoint temporarily disabled"/, next: /Check the request parameters/ },
            bounds: { '/price': 1 }
        },
        {
            name: 'success: false about the quota',
            tool: 'list_moonshots',
            args: { type: 'past' },
            faults: [{ fault: { kind: 'success-false', message: 'Monthly quota exceeded' }, path: '/moonshot-tokens' }],
            outcome: { cause: /credit quota is used up \("Monthly quota exceeded"\)/, next: /Wait for the monthly quota to renew/ },
            bounds: { '/moonshot-tokens': 1 }
        },
        {
            name: 'drifted field types on /price',
            tool: 'get_price',
            args: { symbols: ['FK11'] },
            faults: [{ fault: { kind: 'drift' }, path: '/price' }],
            outcome: { cause: /unexpected format \(\/price: none of its 1 rows has TOKEN_ID\)/, next: /report its output/ },
            bounds: { '/price': 1 }
        },
        {
            name: 'drifted field types on /trading-signals',
            tool: 'explain_signal',
            args: { symbol: 'FK12' },
            faults: [{ fault: { kind: 'drift' }, path: '/trading-signals' }],
            outcome: { cause: /unexpected format \(\/trading-signals/, next: /crypto-intel-mcp doctor/ },
            bounds: { '/trading-signals': 1 }
        },
        {
            name: 'a 400 with a message',
            tool: 'get_price',
            args: { symbols: ['FK13'] },
            faults: [{ fault: { kind: 'status', status: 400, message: 'token_id is invalid' }, path: '/price' }],
            outcome: { cause: /refused the request: "token_id is invalid"/, next: /Check the request parameters/ },
            bounds: { '/price': 1 }
        },
        {
            // Retry-After: 0 hands the key straight back; it must not turn into a request loop until the deadline.
            name: 'a 429 storm with Retry-After 0 on the only key',
            tool: 'get_price',
            args: { symbols: ['FK14'] },
            faults: [{ fault: { kind: 'rate-limit', retryAfter: '0' }, path: '/price' }],
            outcome: { cause: /rate limit is reached for every configured key/, next: /Retry in about \d+ s/ },
            bounds: { '/price': MAX_ATTEMPTS }
        },
        {
            name: 'a 429 storm with a Retry-After date in the past',
            tool: 'get_price',
            args: { symbols: ['FK15'] },
            faults: [{ fault: { kind: 'rate-limit', retryAfter: 'Thu, 01 Jan 2015 00:00:00 GMT' }, path: '/price' }],
            outcome: { cause: /rate limit is reached for every configured key/, next: /Retry in about \d+ s/ },
            bounds: { '/price': MAX_ATTEMPTS }
        },
        {
            name: '/tm-grade gone (404): the grades the signal rows carry, and what is missing',
            tool: 'get_grades',
            args: { symbol: 'FK16' },
            faults: [],
            setup: fake => {
                countFault();
                fake.removeEndpoint('/tm-grade');
            },
            outcome: {
                answer: result => {
                    expectAnswer('get_grades', result);
                    expect(result.structuredContent).toMatchObject({
                        symbol: 'FK16',
                        tm_grade: null,
                        trader_grade: expect.any(Number),
                        investor_grade: expect.any(Number),
                        unavailable: ['tm-grade: not served upstream']
                    });
                    expect(textOf(result)).toMatch(/Unavailable: tm-grade: not served upstream/);
                }
            },
            bounds: { '/tm-grade': 1, '/trader-grades': 0, '/investor-grades': 0 }
        },
        {
            name: '/tm-grade still gone: not asked again for another token',
            tool: 'get_grades',
            args: { symbol: 'FK17' },
            faults: [],
            outcome: {
                answer: result =>
                    expect(result.structuredContent).toMatchObject({ symbol: 'FK17', unavailable: ['tm-grade: not served upstream'] })
            },
            bounds: { '/tm-grade': 0 }
        },
        {
            name: 'a removed /price endpoint (404)',
            tool: 'get_price',
            args: { symbols: ['FK18'] },
            faults: [],
            setup: fake => {
                countFault();
                fake.removeEndpoint('/price');
            },
            outcome: { cause: /does not serve the endpoint \/price any more \(HTTP 404\)/, next: /update crypto-intel-mcp/ },
            bounds: { '/price': 1 }
        }
    ];

    it('serves a stale price, marked with its age, through every transient fault once the TTL has passed', async () => {
        settleFake(fake);
        const fresh = await clockedCall('get_price', { symbols: ['FK20'] });
        expect((fresh.structuredContent as unknown as PriceAnswer).stale_age_s).toBeUndefined();
        // CRYPTO_INTEL_CACHE_TTLS=price=0: the cached price is expired at once but inside the stale window, with no wait.
        const transient: Fault[] = [
            { kind: 'status', status: 503 },
            { kind: 'latency', ms: DEADLINE_MS + 5_000 },
            { kind: 'reset' },
            { kind: 'truncated' },
            { kind: 'drift' }
        ];
        for (const fault of transient) {
            settleFake(fake);
            inject(fake, { fault, path: '/price' });
            const result = await clockedCall('get_price', { symbols: ['FK20'] });
            expectAnswer('get_price', result);
            const structured = result.structuredContent as unknown as PriceAnswer;
            expect(structured.prices[0]?.price_usd, fault.kind).toBe(priceOf(fake, 'FK20'));
            expect(structured.stale_age_s, fault.kind).toBeGreaterThanOrEqual(0);
            expect(textOf(result)).toMatch(/STALE: upstream unavailable, cached \d+s ago/);
            expect(attempts(fake, '/price')).toBeLessThanOrEqual(MAX_ATTEMPTS);
        }
        // The unreadable answers (truncated, drifted) are remembered for a minute: until then the stale price answers
        // and the upstream is not paid again for the same unreadable answer.
        settleFake(fake);
        const remembered = await clockedCall('get_price', { symbols: ['FK20'] });
        expect((remembered.structuredContent as unknown as PriceAnswer).stale_age_s).toBeGreaterThanOrEqual(0);
        expect(attempts(fake, '/price')).toBe(0);
        const other = await clockedCall('get_price', { symbols: ['FK21'] });
        expect((other.structuredContent as unknown as PriceAnswer).stale_age_s).toBeUndefined();
    });

    for (const scenario of CASES) {
        it(`${scenario.name}: ${'answer' in scenario.outcome ? 'answers' : 'explains the failure'}, with bounded attempts`, async () => {
            settleFake(fake);
            scenario.setup?.(fake);
            for (const { fault, path, times } of scenario.faults) inject(fake, { fault, path, ...(times === undefined ? {} : { times }) });
            const result = scenario.clocked
                ? await clockedCall(scenario.tool, scenario.args)
                : await server.call(scenario.tool, scenario.args);
            if ('answer' in scenario.outcome) scenario.outcome.answer(result, fake);
            else expectFailure(result, scenario.outcome.cause, scenario.outcome.next);
            for (const [path, most] of Object.entries(scenario.bounds)) expect(attempts(fake, path), path).toBeLessThanOrEqual(most);
            for (const [path, count] of Object.entries(scenario.exact ?? {})) expect(attempts(fake, path), path).toBe(count);
            expect(server.alive).toBe(true);
        });
    }

    it('serves stale grades, signals and moonshots with a fake clock, and stops at the stale limit', async () => {
        settleFake(fake);
        const clock = new FakeClock();
        const local = await inProcessServer(fake, { TOKEN_METRICS_API_KEY: KEYS.inProcess, CRYPTO_INTEL_MAX_RETRIES: '2' }, clock);
        try {
            const calls: Array<[string, Record<string, unknown>]> = [
                ['get_grades', { symbol: 'SOL' }],
                ['explain_signal', { symbol: 'ETH' }],
                ['list_moonshots', { type: 'active' }]
            ];
            for (const [tool, args] of calls) {
                const result = await local.call(tool, args);
                record(result);
                tally.callsAnswered += 1;
                expectAnswer(tool, result);
            }
            clock.advance(2 * 3_600_000); // past the grades, signals, candles and moonshots TTLs; tokens stay fresh
            inject(fake, { fault: { kind: 'status', status: 503 } });
            for (const [tool, args] of calls) {
                const from = fake.calls.length;
                const result = await local.call(tool, args);
                record(result);
                tally.callsAnswered += 1;
                expectAnswer(tool, result);
                // Backoff sleeps move the fake clock too, so the age is two hours and a few seconds.
                expect((result.structuredContent as { stale_age_s: number }).stale_age_s, tool).toBeGreaterThanOrEqual(7_200);
                expect((result.structuredContent as { stale_age_s: number }).stale_age_s, tool).toBeLessThan(7_300);
                expect(textOf(result)).toMatch(/STALE/);
                expect(fake.calls.length - from).toBeLessThanOrEqual(3 * 3);
            }
            clock.advance(25 * 3_600_000); // past CRYPTO_INTEL_STALE_MAX_AGE_S (24 h): nothing old enough to serve
            const tooOld = await local.call('get_grades', { symbol: 'SOL' });
            record(tooOld);
            tally.callsAnswered += 1;
            expectFailure(tooOld, /unavailable \(HTTP 503\)/, /try again in a minute/);
        } finally {
            await local.close();
            record(local.logs.join(''));
        }
    });
});

describe('an upstream that goes away', () => {
    it('answers from cache, then refuses cleanly (connection refused), and keeps serving', async () => {
        const lost = await startFake();
        const server = await spawnServer('upstream lost', {
            TOKEN_METRICS_API_KEY: KEYS.refused,
            TOKEN_METRICS_BASE_URL: lost.baseUrl,
            CRYPTO_INTEL_TIMEOUT_MS: '10000',
            CRYPTO_INTEL_DEADLINE_MS: '20000',
            CRYPTO_INTEL_MAX_RETRIES: '1',
            CRYPTO_INTEL_CACHE_TTLS: 'price=0'
        });
        try {
            const warm = await server.call('get_price', { symbols: ['DOGE'] });
            expectAnswer('get_price', warm);
            countFault();
            expect(await closeFake(lost)).toEqual([]); // from now on the port refuses connections

            const stale = await server.call('get_price', { symbols: ['DOGE'] });
            expectAnswer('get_price', stale);
            expect((stale.structuredContent as unknown as PriceAnswer).stale_age_s).toBeGreaterThanOrEqual(0);

            const uncached = await server.call('get_price', { symbols: ['ADA'] });
            expectFailure(uncached, /unavailable \(connection failed\)/, /check TOKEN_METRICS_BASE_URL/);
            const moonshots = await server.call('list_moonshots', {});
            expectFailure(moonshots, /unavailable \(connection failed\)/, /check TOKEN_METRICS_BASE_URL/);

            expect((await server.client.listTools()).tools).toHaveLength(5);
        } finally {
            expect(await server.close()).toMatchObject({ crashed: false, nonProtocolLines: [], leaks: [] });
        }
    });
});

// -----------------------------------------------------------------------------------------------------------------

/** Distinct tokens for concurrent calls, so neither the cache nor coalescing can merge them. */
function distinctCalls(symbols: readonly string[]): Array<[string, Record<string, unknown>]> {
    const tools = ['get_price', 'get_grades', 'explain_signal'] as const;
    return symbols.map((symbol, i) => {
        const tool = tools[i % tools.length]!;
        return [tool, tool === 'get_price' ? { symbols: [symbol] } : { symbol }];
    });
}

const fkSymbols = (from: number, to: number): string[] => Array.from({ length: to - from }, (_, i) => `FK${from + i}`);

describe('429 storms across keys, and the upstream concurrency cap', () => {
    let fake: FakeUpstream;
    let server: Session;
    const [first, second, third] = KEYS.storm;

    beforeAll(async () => {
        fake = await startFake();
        server = await spawnServer('rate-limit storm', {
            TOKEN_METRICS_API_KEYS: KEYS.storm.join(','),
            TOKEN_METRICS_BASE_URL: fake.baseUrl
        });
    });

    afterAll(async () => {
        if (server) expect(await server.close()).toMatchObject({ crashed: false, nonProtocolLines: [], leaks: [] });
        if (fake) expect(await closeFake(fake)).toEqual([]);
    });

    it('fails no call while one key is usable, honours Retry-After, and never exceeds the default concurrency of 4', async () => {
        settleFake(fake);
        fake.latencyMs = 30;
        inject(fake, { fault: { kind: 'rate-limit', retryAfter: '30' }, key: first });
        inject(fake, { fault: { kind: 'rate-limit', retryAfter: '30' }, key: second });

        const storm = await Promise.all(distinctCalls(fkSymbols(0, 30)).map(([tool, args]) => server.call(tool, args)));
        expect(storm.filter(result => result.isError).map(textOf)).toEqual([]);
        expect(fake.maxInFlight).toBeLessThanOrEqual(4);
        expect(fake.maxInFlight).toBeGreaterThan(1);
        const byKey = (key: string) => fake.calls.filter(call => call.key === key);
        expect(byKey(first).every(call => call.status === 429)).toBe(true);
        expect(byKey(second).every(call => call.status === 429)).toBe(true);
        expect(byKey(third).every(call => call.status === 200)).toBe(true);
        // A limited key is asked again only by requests already in flight when its first 429 came back: at most one
        // per upstream slot. Requests queued behind the cap choose their key when they get a slot.
        expect(byKey(first).length).toBeGreaterThan(0);
        expect(byKey(first).length).toBeLessThanOrEqual(4);
        expect(byKey(second).length).toBeLessThanOrEqual(4);

        // The two limited keys rest until their Retry-After (30 s): a second wave goes to the third key only.
        const before = fake.calls.length;
        const secondWave = distinctCalls([...fkSymbols(30, 48), 'XRP', 'LINK', 'DOT', 'AVAX']);
        const wave = await Promise.all(secondWave.map(([tool, args]) => server.call(tool, args)));
        expect(wave.filter(result => result.isError).map(textOf)).toEqual([]);
        const later = fake.calls.slice(before);
        expect(later.length).toBeGreaterThan(0);
        expect(later.every(call => call.key === third)).toBe(true);
        expect(fake.maxInFlight).toBeLessThanOrEqual(4);
        fake.latencyMs = 0;
    });

    it('names the wait when every key is rate limited, after one attempt per usable key, and still answers from cache', async () => {
        settleFake(fake);
        for (const key of KEYS.storm) inject(fake, { fault: { kind: 'rate-limit', retryAfter: '30' }, key });
        const limited = await server.call('get_price', { symbols: ['ADA'] });
        expectFailure(limited, /rate limit is reached for every configured key/, /Retry in about \d+ s, or add another key/);
        // The wait named is what is left of the 30 s Retry-After the earlier keys got: never more, and never nothing.
        const seconds = Number(/Retry in about (\d+) s/.exec(textOf(limited))?.[1]);
        expect(seconds).toBeGreaterThanOrEqual(1);
        expect(seconds).toBeLessThanOrEqual(30);
        // Only the third key was usable: one attempt with it, then nothing until the Retry-After.
        expect(fake.calls.map(call => call.key)).toEqual([third]);

        const cached = await server.call('get_price', { symbols: ['FK0'] });
        expectAnswer('get_price', cached);
        expect(fake.calls).toHaveLength(1);
    });

    it('never exceeds a configured concurrency of 2', async () => {
        const narrowFake = await startFake();
        const narrow = await spawnServer('concurrency 2', {
            TOKEN_METRICS_API_KEY: KEYS.narrow,
            TOKEN_METRICS_BASE_URL: narrowFake.baseUrl,
            CRYPTO_INTEL_UPSTREAM_CONCURRENCY: '2'
        });
        try {
            narrowFake.latencyMs = 30;
            const results = await Promise.all(distinctCalls(fkSymbols(0, 24)).map(([tool, args]) => narrow.call(tool, args)));
            expect(results.filter(result => result.isError).map(textOf)).toEqual([]);
            expect(narrowFake.maxInFlight).toBe(2);
        } finally {
            expect(await narrow.close()).toMatchObject({ crashed: false, nonProtocolLines: [], leaks: [] });
            expect(await closeFake(narrowFake)).toEqual([]);
        }
    });
});

// -----------------------------------------------------------------------------------------------------------------

/**
 * How long to wait for a spawned server to notice a key file change: its own real time, which a loaded machine
 * stretches; generous, since only a server that never notices should fail.
 */
const CHILD_MS = 20_000;

/** Every answer goes upstream (tokens stay cached), so each call proves which key served it. */
const NO_CACHE_TTLS = 'price=0,grades=0,signals=0,moonshots=0,ohlcv=0';
const ROTATION_CALLS: Array<[string, Record<string, unknown>]> = [
    ['get_price', { symbols: ['BTC', 'ETH'] }],
    ['get_grades', { symbol: 'SOL' }],
    ['list_moonshots', { type: 'active', limit: 5 }],
    ['explain_signal', { symbol: 'ETH' }],
    ['get_price', { symbols: ['PEPE', 'uni'] }]
];

describe('keys revoked and rotated mid-session', { timeout: 8 * CHILD_MS }, () => {
    let fake: FakeUpstream;

    beforeAll(async () => {
        fake = await startFake();
    });

    afterAll(async () => {
        if (fake) expect(await closeFake(fake)).toEqual([]);
    });

    it('fails no call while one configured key is valid, then says every key was rejected', async () => {
        settleFake(fake);
        const [a, b, c] = KEYS.revoke;
        const server = await spawnServer('env keys revoked', {
            TOKEN_METRICS_API_KEYS: KEYS.revoke.join(','),
            TOKEN_METRICS_BASE_URL: fake.baseUrl,
            CRYPTO_INTEL_CACHE_TTLS: NO_CACHE_TTLS
        });
        const wave = async (revokeMidway?: string): Promise<CallToolResult[]> => {
            // Midway: the wave's first request is held at the fake until its key has been revoked, then answered 401.
            if (revokeMidway) fake.inject({ fault: { kind: 'hold' }, times: 1 });
            const pending = Promise.all(ROTATION_CALLS.map(([tool, args]) => server.call(tool, args)));
            if (revokeMidway) {
                await fake.until(() => fake.pending().length === 1);
                const held = fake.pending()[0]!.call;
                countFault();
                fake.revoke(revokeMidway);
                fake.release();
                await fake.until(() => held.done);
                expect([held.key, held.status]).toEqual([revokeMidway, 401]);
            }
            return pending;
        };
        try {
            const results = [...(await wave()), ...(await wave(a)), ...(await wave()), ...(await wave(b)), ...(await wave())];
            expect(results.filter(result => result.isError).map(textOf)).toEqual([]);
            const lastWave = fake.calls.slice(-ROTATION_CALLS.length);
            expect(lastWave.every(call => call.key === c && call.status === 200)).toBe(true);
            expect(fake.calls.filter(call => call.key === a && call.status === 200).length).toBeGreaterThan(0);

            countFault();
            fake.revoke(c);
            const none = await server.call('get_price', { symbols: ['BTC'] });
            expectFailure(
                none,
                /rejected every configured key \(tm-…0d36, tm-…7a21, tm-…1e7b\)/,
                /Create a new key .* a key file is re-read without a restart/
            );
            expect((await server.client.listTools()).tools).toHaveLength(5);
        } finally {
            expect(await server.close()).toMatchObject({ crashed: false, nonProtocolLines: [], leaks: [] });
        }
    });

    it('rotates a key file old -> old+new -> new, survives revocations and a deleted file, with zero failed calls', async () => {
        settleFake(fake);
        const { fileOld, fileNew, fileNewer } = KEYS;
        const file = tempKeyFile([fileOld]);
        const server = await spawnServer('key file rotation', {
            TOKEN_METRICS_API_KEY_FILE: file.path,
            TOKEN_METRICS_BASE_URL: fake.baseUrl,
            CRYPTO_INTEL_CACHE_TTLS: NO_CACHE_TTLS
        });
        const failures: string[] = [];
        let calls = 0;
        let running = true;
        // Steady traffic while the file changes: two callers, one call at a time each.
        const traffic = Promise.all(
            [0, 1].map(async lane => {
                for (let i = lane; running; i += 2) {
                    const [tool, args] = ROTATION_CALLS[i % ROTATION_CALLS.length]!;
                    const result = await server.call(tool, args);
                    calls += 1;
                    if (result.isError) failures.push(textOf(result));
                }
            })
        );
        const servedBy = (key: string, from = 0) => fake.calls.slice(from).filter(call => call.key === key && call.status === 200).length;
        const reloaded = (fingerprint: string) => () =>
            server.proc.stderr.split('\n').some(line => line.includes('reloaded from the key file') && line.includes(fingerprint));
        try {
            expect(await eventually(() => servedBy(fileOld) >= 4, CHILD_MS)).toBe(true);

            countFault();
            file.replace([fileOld, fileNew]);
            expect(await eventually(reloaded('tm-…f1c4'), CHILD_MS)).toBe(true);
            const afterBoth = fake.calls.length;
            expect(await eventually(() => servedBy(fileOld, afterBoth) >= 2, CHILD_MS)).toBe(true); // the old key is still first

            countFault();
            file.replace([fileNew]);
            expect(await eventually(() => servedBy(fileNew) >= 2, CHILD_MS)).toBe(true);
            countFault();
            fake.revoke(fileOld);
            const afterRevoke = fake.calls.length;
            expect(await eventually(() => servedBy(fileNew, afterRevoke) >= 4, CHILD_MS)).toBe(true);
            expect(fake.calls.slice(afterRevoke).filter(call => call.key === fileOld)).toEqual([]);

            // Second cycle: the current key is revoked while still listed, next to its successor: same-call failover.
            countFault();
            file.replace([fileNew, fileNewer]);
            expect(await eventually(reloaded('tm-…3b8d'), CHILD_MS)).toBe(true);
            countFault();
            fake.revoke(fileNew);
            const afterSecond = fake.calls.length;
            expect(await eventually(() => servedBy(fileNewer, afterSecond) >= 4, CHILD_MS)).toBe(true);

            // A deleted key file is a slip, not a wish to stop: the keys in hand keep serving.
            countFault();
            file.remove();
            expect(await eventually(() => server.proc.stderr.includes('API key file does not exist'), CHILD_MS)).toBe(true);
            const afterRemove = calls;
            expect(await eventually(() => calls >= afterRemove + 4, CHILD_MS)).toBe(true);
        } finally {
            running = false;
            await traffic;
            file.cleanup();
            expect(await server.close()).toMatchObject({ crashed: false, nonProtocolLines: [], leaks: [] });
        }
        // Not vacuous: every step above waited for calls answered under its keys, the last for four more tool calls.
        expect(failures).toEqual([]);
    });
});

// -----------------------------------------------------------------------------------------------------------------

describe('a thousand hostile inputs over stdio', () => {
    const COUNT = 1_000;
    const BATCH = 25;
    const inputs = badInputs(COUNT);

    /** Why a response is not a clean answer to `input`; null when it is. */
    function verdict(input: BadInput, response: RawResponse): string | null {
        if (response.error) {
            const { code, message } = response.error;
            if (typeof code !== 'number' || typeof message !== 'string' || message.length === 0) return 'malformed JSON-RPC error';
            if (/\n\s+at .+:\d+:\d+/.test(message)) return 'JSON-RPC error carries a stack trace';
            return null;
        }
        const result = response.result as unknown as CallToolResult | undefined;
        if (!result || !Array.isArray(result.content)) return 'neither a result nor an error';
        const text = textOf(result);
        if (/\n\s+at .+:\d+:\d+/.test(text)) return 'result carries a stack trace';
        if (result.isError) {
            if (text.trim() === '') return 'isError without a message';
            if (/internal error/i.test(text)) return `the tool crashed: ${text.slice(0, 300)}`;
            return null;
        }
        if (input.expect === 'error') return `answered instead of refusing: ${text.slice(0, 200)}`;
        const schema = OUTPUT_SCHEMAS[String(input.params.name)];
        if (!schema?.safeParse(result.structuredContent).success) return 'answer does not match the output schema';
        if (input.params.name === 'get_price') {
            const structured = result.structuredContent as unknown as PriceAnswer;
            if (structured.prices.length + structured.unresolved.length === 0) return 'price answer with neither prices nor unresolved';
        }
        return null;
    }

    it('answers every one cleanly, forwards none of it raw upstream, stays alive and keeps its memory bounded', async () => {
        const fake = await startFake();
        const server = await spawnServer('hostile inputs', { TOKEN_METRICS_API_KEY: KEYS.abuse, TOKEN_METRICS_BASE_URL: fake.baseUrl });
        try {
            for (const [tool, args] of ROTATION_CALLS) expectAnswer(tool, await server.call(tool, args));
            const rssBefore = server.rssBytes();

            const problems: string[] = [];
            const outcomes = tally.badInputOutcomes;
            for (let start = 0; start < inputs.length; start += BATCH) {
                const batch = inputs.slice(start, start + BATCH);
                const responses = await Promise.all(batch.map((input, i) => server.raw(`raw:bad-${start + i}`, input.params)));
                responses.forEach((response, i) => {
                    const input = batch[i]!;
                    tally.badInputs += 1;
                    const problem = verdict(input, response);
                    if (problem) problems.push(`#${start + i} ${input.kind} ${JSON.stringify(input.params).slice(0, 160)}: ${problem}`);
                    if (response.error) outcomes.rpcErrors += 1;
                    else if ((response.result as { isError?: boolean }).isError) outcomes.toolErrors += 1;
                    else outcomes.answers += 1;
                });
            }
            expect(problems).toEqual([]);
            expect(outcomes.toolErrors + outcomes.rpcErrors + outcomes.answers).toBe(COUNT);
            expect(outcomes.toolErrors).toBeGreaterThan(COUNT / 2);

            // Answered exactly once each, and the server is still itself.
            const counts = server.responsesById();
            expect(inputs.filter((_, i) => counts.get(`raw:bad-${i}`) !== 1)).toEqual([]);
            expect(server.alive).toBe(true);
            expect((await server.client.listTools()).tools).toHaveLength(5);
            expectAnswer('get_price', await server.call('get_price', { symbols: ['BTC'] }));

            tally.rssGrowthBytes = server.rssBytes() - rssBefore;
            expect(tally.rssGrowthBytes).toBeLessThan(64 * 1024 * 1024);

            // Whatever reached the upstream: known parameters, encoded values, ids of digits, filters the client allows.
            expect(fake.calls.length).toBeGreaterThan(0);
            expect(await closeFake(fake)).toEqual([]);
        } finally {
            expect(await server.close()).toMatchObject({ crashed: false, nonProtocolLines: [], leaks: [] });
        }
    });
});

// -----------------------------------------------------------------------------------------------------------------

describe('200 concurrent mixed calls over one stdio connection', () => {
    it('answers every call exactly once, faults and all', async () => {
        const fake = await startFake();
        const server = await spawnServer('mixed burst', { TOKEN_METRICS_API_KEY: KEYS.mixed, TOKEN_METRICS_BASE_URL: fake.baseUrl });
        try {
            await server.client.listTools(); // so the Client checks each structuredContent against its outputSchema
            const sent: Array<string | number> = [];
            const send = server.proc.send.bind(server.proc);
            server.proc.send = async (message: JSONRPCMessage) => {
                if ('method' in message && message.method === 'tools/call' && 'id' in message) sent.push(message.id);
                return send(message);
            };
            fake.latencyMs = 5;
            inject(fake, { fault: { kind: 'status', status: 503 }, path: '/price', times: 3 });
            inject(fake, { fault: { kind: 'reset' }, path: '/trading-signals', times: 2 });
            inject(fake, { fault: { kind: 'latency', ms: 50 }, path: '/tokens', times: 5 });

            const wellKnown = ['BTC', 'ETH', 'SOL', 'XRP', 'DOGE', 'ADA', 'PEPE', 'UNI', 'LINK', 'DOT', 'AVAX'];
            const symbols = [...wellKnown, ...fkSymbols(0, 20), '3375', 'solana', 'NOPE404'];
            const calls = Array.from({ length: 200 }, (_, i): [string, Record<string, unknown>] => {
                const symbol = symbols[i % symbols.length]!;
                switch (i % 4) {
                    case 0:
                        return ['get_price', { symbols: [symbol, symbols[(i * 7) % symbols.length]!] }];
                    case 1:
                        return ['get_grades', { symbol }];
                    case 2:
                        return [
                            'list_moonshots',
                            { type: i % 8 === 2 ? 'active' : 'past', limit: 1 + (i % 50), ...(i % 3 === 0 ? { min_trader_grade: 70 } : {}) }
                        ];
                    default:
                        return ['explain_signal', { symbol }];
                }
            });
            const settled = await Promise.allSettled(calls.map(([tool, args]) => server.call(tool, args)));
            const rejected = settled.flatMap(outcome => (outcome.status === 'rejected' ? [String(outcome.reason)] : []));
            expect(rejected).toEqual([]);
            const results = settled.map(outcome => (outcome as PromiseFulfilledResult<CallToolResult>).value);
            // The only expected errors: the unknown symbol, and faults that outlasted their retries.
            const unexpected = results.filter(result => result.isError && !/NOPE404|unavailable|did not answer/.test(textOf(result)));
            expect(unexpected.map(textOf)).toEqual([]);
            expect(results.filter(result => !result.isError).length).toBeGreaterThan(180);

            expect(sent).toHaveLength(200);
            const counts = server.responsesById();
            expect(sent.filter(id => counts.get(String(id)) !== 1)).toEqual([]);
            const toolResponses = [...counts.entries()].filter(([id]) => sent.map(String).includes(id));
            expect(toolResponses.reduce((sum, [, count]) => sum + count, 0)).toBe(200);
            expect(await closeFake(fake)).toEqual([]);
        } finally {
            expect(await server.close()).toMatchObject({ crashed: false, nonProtocolLines: [], leaks: [] });
        }
    });
});

// -----------------------------------------------------------------------------------------------------------------

describe('the whole suite', () => {
    it('crashed no server, wrote nothing but JSON-RPC to stdout, and leaked no key or key fragment anywhere', async () => {
        for (const session of sessions) await session.close();
        expect(await closeAllFakes()).toEqual([]);
        // The check is not vacuous: it finds a fragment, and the keys did show up in the logs, as fingerprints.
        expect(findLeaks(`header ${KEYS.storm[1].slice(9, 17)} trailer`)).not.toEqual([]);
        for (const session of sessions) expect(session.proc.stderr, session.label).toMatch(/"tm-…[0-9a-f]{4}/);
        const clientSideLeaks = findLeaks(capturedOutput.join('\n'));
        tally.leaks += clientSideLeaks.length;
        expect(clientSideLeaks).toEqual([]);
        expect(sessions.length).toBeGreaterThanOrEqual(7);
        expect(tally.crashes).toBe(0);
        expect(tally.nonProtocolLines).toBe(0);
        expect(tally.upstreamProblems).toBe(0);
        expect(tally.leaks).toBe(0);
    });
});
