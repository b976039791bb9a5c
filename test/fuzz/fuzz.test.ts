import type { CallToolResult } from '@modelcontextprotocol/sdk/types.js';
import fc from 'fast-check';
import type { Dispatcher } from 'undici';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { isUpstreamError } from '../../src/api/errors.js';
import { UpstreamHttp } from '../../src/api/http.js';
import { parseRows } from '../../src/api/parse-rows.js';
import { ROW_SCHEMAS, type RowSchema } from '../../src/api/schemas.js';
import { KeyPool, type KeyProvider } from '../../src/keys/pool.js';
import { StderrLogger } from '../../src/logger.js';
import { Redactor } from '../../src/redact.js';
import { FakeUpstream } from '../fake-upstream/index.js';
import { FakeClock } from '../helpers/clock.js';
import { inProcessServer } from '../helpers/in-process.js';
import { startServer } from '../helpers/server-process.js';
import { keyLeaks, resultStrings, stringsOf, UNSAFE_TEXT } from '../hardening/support.js';
import { FUZZ_KEY, toolCall, upstreamAnswer, upstreamBody, type ToolCall, type UpstreamAnswer } from './arbitraries.js';

/**
 * Issue 16's fuzz suite (fast-check, seeded, so a failure replays): random upstream bodies through the client's
 * parsing path (the real UpstreamHttp over an undici MockAgent, then every row schema), a smaller number through the
 * built server over stdio, and random tool arguments through an in-process server backed by the fake upstream.
 * Counted: crashes (anything but an answer or a typed error), unhandled rejections, key fragments in any output,
 * unsafe characters in upstream-derived text, non-JSON-RPC stdout lines. All must be 0; one summary line at the end.
 */

const SEED = Number(process.env.FUZZ_SEED ?? 20_261_125);
/** `FUZZ_SCALE=0.1` for a quick local run; CI runs the full counts. */
const SCALE = Number(process.env.FUZZ_SCALE ?? 1);
const BODIES = Math.round(10_000 * SCALE);
const SERVER_BODIES = Math.round(300 * SCALE);
const CALLS = Math.round(10_000 * SCALE);
/** A bound for a run on a busy machine (the suite takes ~15 s of CPU); no assertion is made on time. */
const LIMIT_MS = 180_000;
/** Upstream bodies past this are cut off by the client: some generated bodies are bigger, to cover that path. */
const MAX_BODY_BYTES = 256 * 1024;

const tally = {
    bodies: 0,
    bodyAnswers: 0,
    bodyErrors: 0,
    rowsParsed: 0,
    serverBodies: 0,
    calls: 0,
    answers: 0,
    toolErrors: 0,
    rpcErrors: 0,
    crashes: [] as string[],
    unhandled: 0,
    leaks: [] as string[],
    unsafe: [] as string[],
    nonProtocolLines: 0
};
const started = Date.now();
const onUnhandled = () => void (tally.unhandled += 1);

const sample = <T>(arbitrary: fc.Arbitrary<T>, count: number, seed: number): T[] => fc.sample(arbitrary, { numRuns: count, seed });
const short = (value: unknown) => JSON.stringify(value)?.slice(0, 300) ?? String(value);

function checkLeaks(where: string, texts: readonly string[]): void {
    const found = keyLeaks(texts.join('\n'), [FUZZ_KEY]);
    if (found.length > 0) tally.leaks.push(`${where}: ${found.slice(0, 3).join(', ')}`);
}

function checkClean(where: string, texts: readonly string[]): void {
    for (const text of texts) if (UNSAFE_TEXT.test(text)) tally.unsafe.push(`${where}: ${JSON.stringify(text).slice(0, 120)}`);
}

/** Runs `work` over `items`, `width` at a time. */
async function pool<T>(items: readonly T[], width: number, work: (item: T, index: number) => Promise<void>): Promise<void> {
    let next = 0;
    await Promise.all(
        Array.from({ length: width }, async () => {
            while (next < items.length) {
                const index = next++;
                await work(items[index]!, index);
            }
        })
    );
}

/** The handler undici's `request()` passes to `dispatch` (its RequestHandler). */
interface LegacyHandler {
    onConnect(abort: (reason?: unknown) => void, context: object): void;
    onHeaders(status: number, headers: Buffer[], resume: () => void, statusText: string): unknown;
    onData(chunk: Buffer): unknown;
    onComplete(trailers: Buffer[]): void;
    onError(error: unknown): void;
}

/** Streamed bodies come in pieces of this size, as a socket would deliver them. */
const CHUNK_BYTES = 64 * 1024;

/**
 * An undici dispatcher that answers every request with `answer` at once, through the same handler calls a socket's
 * response makes (connect, headers, data in chunks, complete). A MockAgent does the same with ten times the overhead,
 * which 10,000 bodies would pay on every CI run.
 */
class ScriptedUpstream {
    answer: UpstreamAnswer = { status: 200, body: '{}' };

    dispatch(_options: unknown, handler: LegacyHandler): boolean {
        const { status, body, retryAfter } = this.answer;
        let abortedWith: unknown;
        handler.onConnect((reason: unknown) => (abortedWith = reason ?? new Error('aborted')), {});
        if (abortedWith !== undefined) {
            handler.onError(abortedWith);
            return true;
        }
        const headers = ['content-type', 'application/json', ...(retryAfter === undefined ? [] : ['retry-after', retryAfter])].map(text =>
            Buffer.from(text)
        );
        handler.onHeaders(status, headers, () => {}, 'scripted');
        const bytes = Buffer.from(body);
        for (let offset = 0; offset < bytes.length && abortedWith === undefined; offset += CHUNK_BYTES)
            handler.onData(bytes.subarray(offset, offset + CHUNK_BYTES));
        if (abortedWith === undefined) handler.onComplete([]);
        return true;
    }

    async close(): Promise<void> {}
}

beforeAll(() => {
    process.on('unhandledRejection', onUnhandled);
});

afterAll(() => {
    process.off('unhandledRejection', onUnhandled);
    process.stderr.write(
        `\nfuzz suite (seed ${SEED}): ${tally.bodies} upstream bodies (${tally.bodyAnswers} answers, ${tally.bodyErrors} typed errors, ` +
            `${tally.rowsParsed} rows parsed), ${tally.serverBodies} through the built server, ${tally.calls} tool calls (${tally.answers} answers, ` +
            `${tally.toolErrors} isError, ${tally.rpcErrors} JSON-RPC errors): crashes ${tally.crashes.length}, unhandled rejections ${tally.unhandled}, ` +
            `key fragments ${tally.leaks.length}, unsafe upstream text ${tally.unsafe.length}, non-JSON-RPC stdout lines ${tally.nonProtocolLines} ` +
            `(${((Date.now() - started) / 1000).toFixed(1)} s)\n`
    );
});

describe('fuzz: random upstream bodies', () => {
    it(
        `parses ${BODIES} random bodies through UpstreamHttp and every row schema without a crash, a leak or unsafe text`,
        async () => {
            const upstream = new ScriptedUpstream();
            const redactor = new Redactor();
            redactor.register(FUZZ_KEY);
            const logs: string[] = [];
            const logger = new StderrLogger('info', redactor, line => logs.push(line));
            const answers = sample(upstreamAnswer, BODIES, SEED);
            try {
                for (const [index, answer] of answers.entries()) {
                    upstream.answer = answer;
                    tally.bodies += 1;
                    const schema = ROW_SCHEMAS[index % ROW_SCHEMAS.length]!;
                    const keyPool = new KeyPool([FUZZ_KEY]);
                    const keys: KeyProvider = {
                        choose: now => keyPool.choose(now),
                        report: (key, outcome, now) => keyPool.report(key, outcome, now),
                        scrub: text => redactor.scrub(text)
                    };
                    const http = new UpstreamHttp(
                        {
                            baseUrl: 'http://fuzz.invalid/v2',
                            attemptTimeoutMs: 5_000,
                            deadlineMs: 60_000,
                            concurrency: 1,
                            maxBodyBytes: MAX_BODY_BYTES,
                            retry: { maxRetries: 1 },
                            random: () => 0.5,
                            dispatcher: upstream as unknown as Dispatcher
                        },
                        keys,
                        new FakeClock(),
                        logger
                    );
                    let rows: unknown[];
                    try {
                        rows = (await http.getRows({ path: schema.endpoint })).rows;
                        tally.bodyAnswers += 1;
                    } catch (error) {
                        if (!isUpstreamError(error)) {
                            tally.crashes.push(
                                `body #${index}: ${error instanceof Error ? error.stack : String(error)} for ${short(answer)}`
                            );
                            continue;
                        }
                        tally.bodyErrors += 1;
                        checkLeaks(`error of body #${index}`, [error.userMessage]);
                        checkClean(`error of body #${index}`, [error.userMessage]);
                        continue;
                    }
                    // The endpoint's own schema and its neighbour: every schema meets a quarter of the bodies (and every body
                    // meets all eight in the raw-rows test below), at a quarter of the cost of all eight each time.
                    for (const rowSchema of [schema, ROW_SCHEMAS[(index + 1) % ROW_SCHEMAS.length]!]) {
                        try {
                            const parsed = parseRows(rowSchema as RowSchema<unknown>, rows);
                            tally.rowsParsed += parsed.rows.length;
                            const texts = stringsOf(JSON.parse(JSON.stringify(parsed)));
                            checkLeaks(`${rowSchema.endpoint} rows of body #${index}`, texts);
                            checkClean(`${rowSchema.endpoint} rows of body #${index}`, texts);
                            const long = texts.filter(text => text.length > 200);
                            if (long.length > 0)
                                tally.unsafe.push(`${rowSchema.endpoint} rows of body #${index}: a text of ${long[0]!.length} characters`);
                        } catch (error) {
                            tally.crashes.push(
                                `parseRows ${rowSchema.endpoint}, body #${index}: ${error instanceof Error ? error.stack : String(error)}`
                            );
                        }
                    }
                }
            } finally {
                await upstream.close();
            }
            checkLeaks('client logs', logs);
            expect(tally.crashes).toEqual([]);
            expect(tally.leaks).toEqual([]);
            expect(tally.unsafe).toEqual([]);
        },
        LIMIT_MS
    );

    it(
        'parses the raw rows of every body with every row schema without a crash (no HTTP layer in between)',
        () => {
            const crashes: string[] = [];
            for (const [index, body] of sample(upstreamBody, Math.round(1_000 * SCALE), SEED + 1).entries()) {
                let data: unknown;
                try {
                    data = (JSON.parse(body) as { data?: unknown })?.data;
                } catch {
                    continue;
                }
                if (!Array.isArray(data)) continue;
                for (const schema of ROW_SCHEMAS) {
                    try {
                        const texts = stringsOf(JSON.parse(JSON.stringify(parseRows(schema as RowSchema<unknown>, data).rows)));
                        checkClean(`raw ${schema.endpoint} rows of body #${index}`, texts);
                    } catch (error) {
                        crashes.push(`${schema.endpoint}, body #${index}: ${error instanceof Error ? error.message : String(error)}`);
                    }
                }
            }
            tally.crashes.push(...crashes);
            expect(crashes).toEqual([]);
            expect(tally.unsafe).toEqual([]);
        },
        LIMIT_MS
    );

    it(
        `answers ${SERVER_BODIES} random upstream bodies through the built server with results or isError, stdout pure JSON-RPC`,
        async () => {
            const fake = await FakeUpstream.start();
            const { client, server } = await startServer({
                TOKEN_METRICS_API_KEY: FUZZ_KEY,
                TOKEN_METRICS_BASE_URL: fake.baseUrl,
                CRYPTO_INTEL_CACHE_DIR: 'off',
                CRYPTO_INTEL_LOG_LEVEL: 'debug',
                CRYPTO_INTEL_CACHE_TTLS: 'tokens=0,price=0,grades=0,signals=0,moonshots=0,ohlcv=0',
                CRYPTO_INTEL_MAX_RETRIES: '0',
                CRYPTO_INTEL_MAX_BODY_BYTES: String(MAX_BODY_BYTES)
            });
            const calls: ToolCall[] = [
                { name: 'get_price', args: { symbols: ['BTC', 'ETH', 'FK7'] } },
                { name: 'get_grades', args: { symbol: 'SOL', include: ['fundamental', 'technology'] } },
                { name: 'list_moonshots', args: { type: 'active', limit: 20 } },
                { name: 'list_moonshots', args: { type: 'past', limit: 5 } },
                { name: 'explain_signal', args: { symbol: 'ETH' } }
            ];
            try {
                // Statuses that would put the one key out of service for the rest of the run (401, 402, 403, 429) are
                // covered by the in-process part above; here they become a 200 or a 500 so every call meets its body.
                for (const [index, answer] of sample(upstreamAnswer, SERVER_BODIES, SEED + 2).entries()) {
                    const status = [401, 402, 403, 429].includes(answer.status) ? (index % 2 === 0 ? 200 : 500) : answer.status;
                    fake.clearFaults();
                    fake.inject({ fault: { kind: 'body', body: answer.body, status } });
                    const call = calls[index % calls.length]!;
                    tally.serverBodies += 1;
                    let result: CallToolResult;
                    try {
                        result = (await client.callTool({ name: call.name, arguments: call.args })) as CallToolResult;
                    } catch (error) {
                        tally.crashes.push(`server body #${index}: ${error instanceof Error ? error.message : String(error)}`);
                        continue;
                    }
                    const texts = resultStrings(result);
                    if (result.isError && /internal error/i.test(texts.join('\n')))
                        tally.crashes.push(`server body #${index}: ${texts[0]}`);
                    checkLeaks(`server body #${index}`, texts);
                    checkClean(`structuredContent for server body #${index}`, stringsOf(result.structuredContent ?? null));
                }
            } finally {
                await client.close();
                await server.close();
                await fake.close();
            }
            tally.nonProtocolLines += server.nonProtocolLines().length;
            checkLeaks('built server stdout and stderr', [...server.stdoutLines, server.stderr]);
            if (/tool call crashed|uncaught exception|unhandled rejection/.test(server.stderr))
                tally.crashes.push('the built server logged a crash');
            expect(server.exitCode).toBe(0);
            expect(tally.crashes).toEqual([]);
            expect(tally.nonProtocolLines).toBe(0);
            expect(tally.leaks).toEqual([]);
            expect(tally.unsafe).toEqual([]);
        },
        LIMIT_MS
    );
});

describe('fuzz: random tool arguments', () => {
    it(
        `answers ${CALLS} random tool calls in process with a result, an isError result or a JSON-RPC error`,
        async () => {
            const fake = await FakeUpstream.start();
            const server = await inProcessServer(fake, {
                TOKEN_METRICS_API_KEY: FUZZ_KEY,
                CRYPTO_INTEL_UPSTREAM_CONCURRENCY: '16',
                CRYPTO_INTEL_LOG_LEVEL: 'info'
            });
            try {
                const tools = (await server.client.listTools()).tools.map(tool => tool.name);
                await pool(sample(toolCall(tools), CALLS, SEED + 3), 16, async (call, index) => {
                    tally.calls += 1;
                    let result: CallToolResult;
                    try {
                        result = (await server.client.callTool({ name: call.name, arguments: call.args })) as CallToolResult;
                    } catch (error) {
                        const code = (error as { code?: unknown }).code;
                        // The SDK's own answers to a malformed call: invalid params, unknown method.
                        if (code === -32602 || code === -32601) {
                            tally.rpcErrors += 1;
                            checkLeaks(`JSON-RPC error of call #${index}`, [String((error as Error).message)]);
                        } else {
                            tally.crashes.push(`call #${index} ${short(call)}: ${error instanceof Error ? error.message : String(error)}`);
                        }
                        return;
                    }
                    const texts = resultStrings(result);
                    if (result.isError) {
                        tally.toolErrors += 1;
                        if (/internal error/i.test(texts.join('\n')))
                            tally.crashes.push(`call #${index} ${short(call)}: ${texts[0]?.slice(0, 300)}`);
                    } else {
                        tally.answers += 1;
                        if (result.structuredContent === undefined)
                            tally.crashes.push(`call #${index} ${short(call)}: an answer without structuredContent`);
                    }
                    checkLeaks(`call #${index} ${short(call)}`, texts);
                });
            } finally {
                await server.close();
                await fake.close();
            }
            checkLeaks('in-process server logs', server.logs);
            if (server.logs.some(line => line.includes('"tool call crashed"'))) tally.crashes.push('the in-process server logged a crash');
            expect(tally.calls).toBe(CALLS);
            expect(tally.crashes).toEqual([]);
            expect(tally.leaks).toEqual([]);
            expect(tally.unhandled).toBe(0);
        },
        LIMIT_MS
    );
});
