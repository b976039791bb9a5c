import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { fileURLToPath } from 'node:url';
import type { Client } from '@modelcontextprotocol/sdk/client/index.js';
import type { CallToolResult } from '@modelcontextprotocol/sdk/types.js';
import { systemClock } from '../src/clock.js';
import { FakeUpstream, type FakeCall } from '../test/fake-upstream/index.js';
import { inProcessServer } from '../test/helpers/in-process.js';
import { startServer, type ServerProcess } from '../test/helpers/server-process.js';
import { formatCacheBench, runCacheBench } from './cache.js';
import { formatHttpBench, runHttpBench } from './http.js';
import { SESSION, type Question } from './session.js';
import { median, percentile, round } from './stats.js';

/**
 * `npm run bench`: a scripted session against the built server over stdio and the local fake upstream,
 * reporting credits (upstream calls) against the minimum, result bytes against raw upstream envelopes,
 * latency cold and warm, start-up time, and repeat passes in the same and in a new process.
 */

const UPSTREAM_LATENCY_MS = 50;
const WARM_CALLS = 240;
const STARTS = 7;
const KEY = 'tm-bench-0000-0000-b3nc';
/**
 * Where a run's figures go: a git-ignored file, so a run on a busy laptop does not rewrite the recorded figures;
 * `npm run bench -- --record` writes the tracked `latest.json` that closing notes and reviews quote.
 */
const RECORD = process.argv.includes('--record');
const RESULTS = fileURLToPath(new URL(`../../bench/results/${RECORD ? 'latest.json' : 'last-run.json'}`, import.meta.url));

interface QuestionFigures {
    ask: string;
    tool: string;
    credits: number;
    minimumCredits: number;
    resultBytes: number;
    rawEnvelopeBytes: number;
    coldMs: number;
    isError: boolean;
}

interface DataNeed {
    kind: string;
    item: string;
}

/** A data need: an endpoint (e.g. `/price`) and one item of it (a token id, or a moonshot type). */
function dataNeeds(call: FakeCall): DataNeed[] {
    const filter = ['token_id', 'type'].find(name => call.query[name] !== undefined);
    const items = filter ? call.query[filter]!.split(',').map(item => item.trim().toLowerCase()) : ['*'];
    return items.map(item => ({ kind: call.path, item }));
}

/**
 * Resolving a token is one need per token, however it was named: "solana" after "SOL" needs nothing
 * new. Inputs that matched nothing are needs of their own.
 */
function resolutionNeeds(result: CallToolResult): DataNeed[] {
    const structured = (result.structuredContent ?? {}) as {
        token_id?: number;
        prices?: Array<{ token_id: number }>;
        unresolved?: Array<{ input: string }>;
    };
    const ids = [structured.token_id, ...(structured.prices ?? []).map(row => row.token_id)].filter((id): id is number => id !== undefined);
    return [
        ...ids.map(id => ({ kind: '/tokens', item: String(id) })),
        ...(structured.unresolved ?? []).map(entry => ({ kind: '/tokens', item: `unknown:${entry.input.toLowerCase()}` }))
    ];
}

function resultBytes(result: CallToolResult): number {
    const text = result.content.map(part => (part.type === 'text' ? part.text : '')).join('');
    return Buffer.byteLength(text) + (result.structuredContent ? Buffer.byteLength(JSON.stringify(result.structuredContent)) : 0);
}

async function timedCall(client: Client, question: Question): Promise<{ ms: number; result: CallToolResult }> {
    const started = performance.now();
    const result = (await client.callTool({ name: question.tool, arguments: question.args })) as CallToolResult;
    return { ms: performance.now() - started, result };
}

/**
 * What each question needs on its own: the envelopes a pass-through server would forward, and the
 * data needs that give the session's minimum credits: a need met earlier in the session costs nothing,
 * and a question's new needs on one endpoint could share one call. That is the least any server could
 * spend asking questions one at a time, within the cache lifetimes.
 */
async function reference(fake: FakeUpstream): Promise<Array<{ rawBytes: number; minimum: number }>> {
    const seen = new Set<string>();
    const figures: Array<{ rawBytes: number; minimum: number }> = [];
    for (const question of SESSION) {
        fake.reset();
        const server = await inProcessServer(fake, { TOKEN_METRICS_API_KEY: KEY, CRYPTO_INTEL_LOG_LEVEL: 'error' }, systemClock);
        const result = await server.call(question.tool, question.args);
        await server.close();
        const needs = [...fake.calls.filter(call => call.path !== '/tokens').flatMap(dataNeeds), ...resolutionNeeds(result)];
        const kindsWithNewNeeds = new Set(needs.filter(need => !seen.has(`${need.kind}=${need.item}`)).map(need => need.kind));
        for (const need of needs) seen.add(`${need.kind}=${need.item}`);
        figures.push({ rawBytes: fake.calls.reduce((sum, call) => sum + call.bytes, 0), minimum: kindsWithNewNeeds.size });
    }
    return figures;
}

async function pass(
    client: Client,
    fake: FakeUpstream
): Promise<{ credits: number; figures: Array<{ credits: number; ms: number; result: CallToolResult }> }> {
    const figures: Array<{ credits: number; ms: number; result: CallToolResult }> = [];
    const before = fake.count();
    for (const question of SESSION) {
        const calls = fake.count();
        const { ms, result } = await timedCall(client, question);
        figures.push({ credits: fake.count() - calls, ms, result });
    }
    return { credits: fake.count() - before, figures };
}

async function warmLatency(call: (question: Question) => Promise<unknown>): Promise<number[]> {
    const samples: number[] = [];
    for (let i = 0; i < WARM_CALLS; i++) {
        const question = SESSION[i % SESSION.length]!;
        const started = performance.now();
        await call(question);
        samples.push(performance.now() - started);
    }
    return samples;
}

async function startupTimes(fake: FakeUpstream): Promise<number[]> {
    const samples: number[] = [];
    for (let i = 0; i < STARTS; i++) {
        const started = performance.now();
        const { client, server } = await startServer({
            TOKEN_METRICS_API_KEY: KEY,
            TOKEN_METRICS_BASE_URL: fake.baseUrl,
            CRYPTO_INTEL_CACHE_DIR: 'off'
        });
        await client.listTools();
        samples.push(performance.now() - started);
        await server.close();
    }
    return samples;
}

function pad(value: string | number, width: number, left = false): string {
    const text = String(value);
    return left ? text.padEnd(width) : text.padStart(width);
}

async function main(): Promise<void> {
    const fake = await FakeUpstream.start({ latencyMs: UPSTREAM_LATENCY_MS });
    const cacheDir = mkdtempSync(join(tmpdir(), 'crypto-intel-bench-'));
    const env = {
        TOKEN_METRICS_API_KEY: KEY,
        TOKEN_METRICS_BASE_URL: fake.baseUrl,
        CRYPTO_INTEL_CACHE_DIR: cacheDir,
        CRYPTO_INTEL_LOG_LEVEL: 'warn'
    };
    const servers: ServerProcess[] = [];
    try {
        const needs = await reference(fake);

        fake.reset();
        const first = await startServer(env);
        servers.push(first.server);
        const definitions = await first.client.listTools();
        const cold = await pass(first.client, fake);
        const samePass = await pass(first.client, fake);
        fake.latencyMs = 0;
        const warmCallsBefore = fake.count();
        const warm = await warmLatency(question => first.client.callTool({ name: question.tool, arguments: question.args }));
        const warmUpstreamCalls = fake.count() - warmCallsBefore;
        first.server.signal('SIGTERM');
        await first.server.waitForExit();

        fake.latencyMs = UPSTREAM_LATENCY_MS;
        const second = await startServer(env);
        servers.push(second.server);
        const newProcessPass = await pass(second.client, fake);
        await second.server.close();

        const inProcess = await inProcessServer(fake, { TOKEN_METRICS_API_KEY: KEY, CRYPTO_INTEL_LOG_LEVEL: 'error' }, systemClock);
        for (const question of SESSION) await inProcess.call(question.tool, question.args);
        const inProcessWarm = await warmLatency(question => inProcess.call(question.tool, question.args));
        await inProcess.close();

        fake.latencyMs = 0;
        const startup = await startupTimes(fake);
        const http = await runHttpBench({ fake, log: line => process.stderr.write(`${line}\n`) });
        const persistentCache = await runCacheBench(fake);

        const questions: QuestionFigures[] = SESSION.map((question, i) => ({
            ask: question.ask,
            tool: question.tool,
            credits: cold.figures[i]!.credits,
            minimumCredits: needs[i]!.minimum,
            resultBytes: resultBytes(cold.figures[i]!.result),
            rawEnvelopeBytes: needs[i]!.rawBytes,
            coldMs: round(cold.figures[i]!.ms, 1),
            isError: Boolean(cold.figures[i]!.result.isError)
        }));
        const totals = {
            credits: cold.credits,
            minimumCredits: questions.reduce((sum, q) => sum + q.minimumCredits, 0),
            resultBytes: questions.reduce((sum, q) => sum + q.resultBytes, 0),
            rawEnvelopeBytes: questions.reduce((sum, q) => sum + q.rawEnvelopeBytes, 0)
        };
        const summary = {
            date: new Date().toISOString(),
            node: process.version,
            upstreamLatencyMs: UPSTREAM_LATENCY_MS,
            questions,
            totals: {
                ...totals,
                creditsVsMinimum: round(totals.credits / totals.minimumCredits),
                resultVsRawBytes: round(totals.resultBytes / totals.rawEnvelopeBytes, 3)
            },
            secondPassSameProcessCredits: samePass.credits,
            secondPassNewProcessCredits: newProcessPass.credits,
            warmStdio: {
                calls: warm.length,
                upstreamCalls: warmUpstreamCalls,
                medianMs: round(median(warm), 3),
                p95Ms: round(percentile(warm, 95), 3)
            },
            warmInProcess: {
                calls: inProcessWarm.length,
                medianMs: round(median(inProcessWarm), 3),
                p95Ms: round(percentile(inProcessWarm, 95), 3)
            },
            coldStdio: {
                medianMs: round(median(questions.map(q => q.coldMs)), 1),
                p95Ms: round(
                    percentile(
                        questions.map(q => q.coldMs),
                        95
                    ),
                    1
                )
            },
            startup: { starts: startup.length, medianMs: round(median(startup), 1), p95Ms: round(percentile(startup, 95), 1) },
            toolDefinitionsBytes: Buffer.byteLength(JSON.stringify(definitions.tools)),
            // What a model is shown of a tool: its name, description and input schema; output schemas are for the client.
            toolDefinitionsModelBytes: Buffer.byteLength(
                JSON.stringify(
                    definitions.tools.map(tool => ({ name: tool.name, description: tool.description, inputSchema: tool.inputSchema }))
                )
            ),
            http,
            persistentCache
        };

        const lines = [
            `crypto-intel-mcp bench: ${SESSION.length} questions over stdio, fake upstream at ${UPSTREAM_LATENCY_MS} ms per call (${summary.node})`,
            '',
            `${pad('#', 2)}  ${pad('question', 50, true)}  ${pad('credits', 7)}  ${pad('min', 3)}  ${pad('result B', 8)}  ${pad('raw B', 7)}  ${pad('ratio', 5)}  ${pad('cold ms', 7)}`,
            ...questions.map(
                (q, i) =>
                    `${pad(i + 1, 2)}  ${pad(`${q.ask} [${q.tool}]`.slice(0, 50), 50, true)}  ${pad(q.credits, 7)}  ${pad(q.minimumCredits, 3)}  ${pad(q.resultBytes, 8)}  ${pad(q.rawEnvelopeBytes, 7)}  ${pad(
                        (q.resultBytes / q.rawEnvelopeBytes).toFixed(2),
                        5
                    )}  ${pad(q.coldMs.toFixed(1), 7)}${q.isError ? '  ERROR' : ''}`
            ),
            `${pad('', 2)}  ${pad('total', 50, true)}  ${pad(totals.credits, 7)}  ${pad(totals.minimumCredits, 3)}  ${pad(totals.resultBytes, 8)}  ${pad(totals.rawEnvelopeBytes, 7)}  ${pad(
                summary.totals.resultVsRawBytes.toFixed(2),
                5
            )}`,
            '',
            `credits vs minimum            ${summary.totals.creditsVsMinimum}x (${totals.credits} / ${totals.minimumCredits})`,
            `result bytes vs raw envelopes ${summary.totals.resultVsRawBytes} (1/${round(1 / summary.totals.resultVsRawBytes, 1)})`,
            `second pass, same process     ${summary.secondPassSameProcessCredits} upstream calls`,
            `second pass, new process      ${summary.secondPassNewProcessCredits} upstream calls (persistent cache)`,
            `cold call over stdio          median ${summary.coldStdio.medianMs} ms, p95 ${summary.coldStdio.p95Ms} ms`,
            `warm call over stdio          median ${summary.warmStdio.medianMs} ms, p95 ${summary.warmStdio.p95Ms} ms over ${summary.warmStdio.calls} calls, ${summary.warmStdio.upstreamCalls} upstream calls (all server + transport overhead)`,
            `warm call in process          median ${summary.warmInProcess.medianMs} ms, p95 ${summary.warmInProcess.p95Ms} ms (server overhead without stdio)`,
            `start-up to tools/list        median ${summary.startup.medianMs} ms, p95 ${summary.startup.p95Ms} ms over ${summary.startup.starts} starts`,
            `tool definitions              ${summary.toolDefinitionsBytes} bytes in tools/list, ${summary.toolDefinitionsModelBytes} of them name, description and input schema (what a model reads)`,
            '',
            formatCacheBench(persistentCache),
            '',
            formatHttpBench(http)
        ];
        process.stdout.write(`${lines.join('\n')}\n`);
        mkdirSync(join(RESULTS, '..'), { recursive: true });
        writeFileSync(RESULTS, `${JSON.stringify(summary, null, 2)}\n`);
        process.stdout.write(
            `\nfigures written to bench/results/${RECORD ? 'latest.json (recorded)' : 'last-run.json (npm run bench -- --record to record them)'}\n`
        );
    } finally {
        for (const server of servers) await server.close();
        await fake.close();
        rmSync(cacheDir, { recursive: true, force: true });
    }
}

main().catch(error => {
    process.stderr.write(`bench failed: ${error instanceof Error ? (error.stack ?? error.message) : String(error)}\n`);
    process.exit(1);
});
