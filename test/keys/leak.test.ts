import { inspect } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { TokenMetricsClient } from '../../src/api/client.js';
import { isUpstreamError } from '../../src/api/errors.js';
import { systemClock } from '../../src/clock.js';
import { Redactor } from '../../src/redact.js';
import { runClock } from '../fake-upstream/clocked.js';
import { FakeUpstream, type Fault, type FaultRule } from '../fake-upstream/index.js';
import { managedClient, memoryLogger, tempKeyFile, type ManagedClient } from './support.js';
import {
    DAILY_OHLCV,
    FUNDAMENTAL_GRADES,
    MOONSHOTS,
    PRICES,
    TECHNOLOGY_GRADES,
    TM_GRADES,
    TOKENS,
    TRADING_SIGNALS
} from '../../src/endpoints/registry.js';

const ENV_KEYS = ['tm-LEAKCHECK-aaaa1111-bbbb2222', 'tm-LEAKCHECK-cccc3333-dddd4444'];
const FILE_KEY = 'tm-LEAKCHECK-eeee5555-ffff6666';
const ODD_KEY = 'LEAKCHECK-gggg7777-hhhh8888';
const SPACED_LINE = 'tm-LEAKCHECK-iiii9999 jjjj0000kkkk';
const ALL_KEYS = [...ENV_KEYS, FILE_KEY, ODD_KEY];

/** Every 8-character window of every secret: a partial key is a leak too. */
const FORBIDDEN = [...ALL_KEYS, SPACED_LINE].flatMap(secret => Array.from({ length: secret.length - 7 }, (_, i) => secret.slice(i, i + 8)));

interface Scenario {
    name: string;
    /** The error code expected, or `null` when the call should succeed. */
    expect: string | null;
    setup?(fake: FakeUpstream): void;
    /** `prices([3375, 3306])` when absent. */
    run?(client: TokenMetricsClient): Promise<unknown>;
    keys?: 'all' | 'none';
    retries?: number;
}

const prices = (client: TokenMetricsClient) => client.get(PRICES, { ids: [3375, 3306] });
const inject =
    (fault: Fault, rule: Omit<FaultRule, 'fault'> = {}) =>
    (fake: FakeUpstream): void =>
        fake.inject({ fault, ...rule });

const SCENARIOS: Scenario[] = [
    {
        name: 'every endpoint, healthy',
        expect: null,
        run: async client =>
            Promise.all([
                client.get(TOKENS, { symbols: ['BTC', 'ETH'] }),
                prices(client),
                client.get(TM_GRADES, { ids: [3375] }),
                client.get(TRADING_SIGNALS, { ids: [3375], days: 7 }),
                client.get(FUNDAMENTAL_GRADES, { ids: [3375] }),
                client.get(TECHNOLOGY_GRADES, { ids: [3375] }),
                client.get(MOONSHOTS, { type: 'active', limit: 5 }),
                client.get(DAILY_OHLCV, { id: 3306, days: 5 })
            ])
    },
    { name: 'a burst of 500s', expect: null, setup: inject({ kind: 'status', status: 500 }, { times: 2 }) },
    { name: '503s with Retry-After', expect: null, setup: inject({ kind: 'status', status: 503, retryAfter: '1' }, { times: 2 }) },
    { name: '503 that does not stop', expect: 'UPSTREAM_UNAVAILABLE', setup: inject({ kind: 'status', status: 503 }) },
    { name: 'a 400', expect: 'UPSTREAM_REJECTED', setup: inject({ kind: 'status', status: 400, message: 'token_id is invalid' }) },
    { name: 'a 402 on every key', expect: 'QUOTA_EXHAUSTED', setup: inject({ kind: 'status', status: 402, message: 'Credits used up' }) },
    { name: 'rate limit on the first key', expect: null, setup: inject({ kind: 'rate-limit', retryAfter: '30' }, { key: ENV_KEYS[0]! }) },
    { name: 'rate limit on every key', expect: 'RATE_LIMITED', setup: inject({ kind: 'rate-limit', retryAfter: '30' }) },
    { name: 'rate limit without Retry-After', expect: 'RATE_LIMITED', setup: inject({ kind: 'rate-limit' }) },
    { name: 'a truncated body', expect: 'SCHEMA_DRIFT', setup: inject({ kind: 'truncated' }) },
    { name: 'success: false', expect: 'UPSTREAM_REJECTED', setup: inject({ kind: 'success-false', message: 'Endpoint not in your plan' }) },
    { name: 'success: false, quota', expect: 'QUOTA_EXHAUSTED', setup: inject({ kind: 'success-false', message: 'Quota exceeded' }) },
    { name: 'schema drift', expect: 'SCHEMA_DRIFT', setup: inject({ kind: 'drift' }) },
    { name: 'one connection reset', expect: null, setup: inject({ kind: 'reset' }, { times: 1 }) },
    { name: 'resets that do not stop', expect: 'UPSTREAM_UNAVAILABLE', setup: inject({ kind: 'reset' }), retries: 1 },
    { name: 'one answer past the timeout', expect: null, setup: inject({ kind: 'latency', ms: 300 }, { times: 1 }) },
    { name: 'every answer past the timeout', expect: 'UPSTREAM_TIMEOUT', setup: inject({ kind: 'latency', ms: 300 }), retries: 1 },
    { name: 'the first key revoked', expect: null, setup: fake => fake.revoke(ENV_KEYS[0]!) },
    { name: 'every key revoked', expect: 'AUTH_REVOKED', setup: fake => ALL_KEYS.forEach(key => fake.revoke(key)) },
    { name: 'a removed endpoint (404)', expect: 'NOT_FOUND', setup: fake => fake.removeEndpoint('/price') },
    {
        name: 'no /tm-grade',
        expect: 'NOT_FOUND',
        setup: fake => fake.removeEndpoint('/tm-grade'),
        run: client => client.get(TM_GRADES, { ids: [3375] })
    },
    {
        name: 'a 403 outside the plan',
        expect: 'NOT_IN_PLAN',
        setup: inject({ kind: 'status', status: 403, message: 'This endpoint is not available in your plan' }),
        run: client => client.get(TECHNOLOGY_GRADES, { ids: [3375] })
    },
    { name: 'no key configured', expect: 'NO_API_KEY', keys: 'none' },
    {
        name: 'a cancelled call',
        expect: 'CANCELLED',
        run: client => client.get(PRICES, { ids: [3375] }, AbortSignal.abort(new Error('stop')))
    }
];

/** Everything about an error that could be printed, serialised or shown to a model. */
function errorText(error: unknown): string {
    if (!(error instanceof Error)) return String(error);
    const parts = [error.message, error.stack ?? '', String(error.cause), JSON.stringify(error), inspect(error, { depth: 6 })];
    if (isUpstreamError(error)) parts.push(error.hint, error.userMessage);
    return parts.join('\n');
}

describe('no key leaks through the client', () => {
    let fake: FakeUpstream;
    beforeAll(async () => {
        fake = await FakeUpstream.start();
    });
    afterAll(async () => {
        await fake.close();
    });

    it('keeps every key, and every 8-character piece of one, out of logs, errors, results and stats under every fault', async () => {
        // The logger gets a Redactor of its own that knows no key, so its last-line scrubbing cannot hide a leak at the source.
        const log = memoryLogger('debug', new Redactor());
        const captured: string[] = [];
        const outcomes: string[] = [];
        const file = tempKeyFile(['# leak check', FILE_KEY, ODD_KEY, SPACED_LINE, ENV_KEYS[0]!]);
        try {
            for (const scenario of SCENARIOS) {
                fake.reset();
                const stack: ManagedClient = managedClient(fake, {
                    envKeys: scenario.keys === 'none' ? [] : ENV_KEYS,
                    keyFile: scenario.keys === 'none' ? null : file.path,
                    logger: log.logger,
                    http: { attemptTimeoutMs: 150, deadlineMs: 120_000, retry: { maxRetries: scenario.retries ?? 3 } }
                });
                // Latency runs on the client's fake clock, moved past each attempt's timeout when one is due.
                fake.clock = stack.clock;
                try {
                    scenario.setup?.(fake);
                    let code: string | null = null;
                    try {
                        const answer = (scenario.run ?? prices)(stack.client);
                        await runClock(fake, stack.clock, answer, 150);
                        captured.push(JSON.stringify(await answer) ?? '');
                    } catch (error) {
                        code = isUpstreamError(error) ? error.code : `unexpected ${String(error)}`;
                        captured.push(errorText(error));
                    }
                    outcomes.push(`${scenario.name}: ${code ?? 'ok'}`);
                    captured.push(JSON.stringify(stack.keys.stats()), JSON.stringify(stack.keys.describe()));
                    expect(fake.calls.every(call => !ALL_KEYS.some(key => call.rawQuery.includes(key)))).toBe(true);
                } finally {
                    await stack.close();
                }
            }
        } finally {
            fake.reset();
            fake.clock = systemClock;
            file.cleanup();
        }

        expect(outcomes).toEqual(SCENARIOS.map(scenario => `${scenario.name}: ${scenario.expect ?? 'ok'}`));
        const everything = [log.text(), ...captured].join('\n');
        expect(log.lines.length).toBeGreaterThan(50);
        expect(everything).toContain('tm-…2222'); // fingerprints are how keys are named, and they do show up
        const leaks = FORBIDDEN.filter(piece => everything.includes(piece));
        expect(leaks).toEqual([]);
    });

    it('scrubs a key the upstream echoes back in its envelope message', async () => {
        const stack = managedClient(fake, { envKeys: ENV_KEYS, keyFile: null, logger: memoryLogger('debug', new Redactor()).logger });
        const texts: string[] = [];
        try {
            for (const fault of [
                { kind: 'success-false', message: `Key ${ENV_KEYS[0]} is not enabled for this endpoint` },
                { kind: 'status', status: 400, message: `Bad request for key ${ENV_KEYS[0]}` }
            ] satisfies Fault[]) {
                fake.reset();
                fake.inject({ fault, times: 1 });
                try {
                    await prices(stack.client);
                    texts.push('unexpected success');
                } catch (error) {
                    texts.push(errorText(error));
                }
            }
        } finally {
            await stack.close();
        }
        const everything = texts.join('\n');
        expect(everything).toContain('not enabled for this endpoint');
        expect(everything).toContain('tm-…2222');
        expect(FORBIDDEN.filter(piece => everything.includes(piece))).toEqual([]);
    });
});
