import { performance } from 'node:perf_hooks';
import { spawn } from 'node:child_process';
import { FakeUpstream } from '../test/fake-upstream/index.js';
import { HttpServerProcess, mcpHeaders, toolCallBody } from '../test/helpers/http-process.js';
import { HAS_REDIS, RedisServer } from '../test/helpers/redis-server.js';
import { median, percentile, round } from './stats.js';

/**
 * The HTTP transport under load: warm `tools/call` requests from N concurrent clients against the built server
 * started with `--http`, on one replica and on two replicas sharing a Redis, all on loopback. Warm means every
 * answer comes from the cache, so the figures are the transport's and the server's own cost (a fresh McpServer
 * and transport per request, auth, JSON), not the upstream's.
 */

const KEY = 'tm-bench-0000-0000-h77p';
const TOKEN = 'bench-token-0123456789abcdef';
/** Unmeasured requests per set of replicas first: V8 compiles the hot paths during the first few hundred. */
const WARM_UP_REQUESTS = 300;
/** Requests per client in the unmeasured pass before each client count. */
const CONNECTION_WARM_UP_ROUNDS = 4;
const TOOL = 'get_price';
const ARGS = { symbols: ['BTC', 'ETH', 'PEPE'] };

export interface HttpBenchOptions {
    /** A fake upstream to use; by default one is started and closed. */
    fake?: FakeUpstream;
    /** Concurrent clients per configuration. */
    clients?: readonly number[];
    /** Requests per configuration. */
    requests?: number;
    /** A configuration stops at this age even if requests remain. */
    timeCapMs?: number;
    /** Progress lines (stderr in a CLI). */
    log?: (line: string) => void;
}

export interface HttpBenchRow {
    replicas: 1 | 2;
    clients: number;
    requests: number;
    /** Non-200 answers, JSON-RPC errors and tool results with `isError`. */
    errors: number;
    seconds: number;
    requestsPerSecond: number;
    p50Ms: number;
    p95Ms: number;
    p99Ms: number;
    /** Upstream calls during the measured requests (expected 0: they are warm). */
    upstreamCalls: number;
    /** The time cap ended the configuration before its request count. */
    capped: boolean;
}

export interface HttpBenchResult {
    tool: string;
    args: Record<string, unknown>;
    rows: HttpBenchRow[];
    /** Why the two-replica part did not run, or `null` when it did. */
    skipped: string | null;
    /** One token's flood against another token's question (`runFloodBench`). */
    flood: FloodBenchResult;
}

/** One request as a Streamable HTTP client sends it; resolves to whether the answer was a good tool result. */
async function callOnce(url: URL, id: number): Promise<boolean> {
    const response = await fetch(url, { method: 'POST', headers: mcpHeaders(TOKEN), body: toolCallBody(TOOL, ARGS, id) });
    const body = (await response.json().catch(() => null)) as { result?: { isError?: boolean } } | null;
    return response.status === 200 && body?.result !== undefined && body.result.isError !== true;
}

/** `clients` loops sharing one request budget; client i talks to replica i mod n, as a load balancer would spread them. */
async function measure(
    servers: HttpServerProcess[],
    fake: FakeUpstream,
    clients: number,
    requests: number,
    timeCapMs: number
): Promise<HttpBenchRow> {
    const latencies: number[] = [];
    let errors = 0;
    let issued = 0;
    const callsBefore = fake.count();
    const started = performance.now();
    const stopAt = started + timeCapMs;
    await Promise.all(
        Array.from({ length: clients }, async (_, client) => {
            const url = servers[client % servers.length]!.mcpUrl;
            while (issued < requests && performance.now() < stopAt) {
                const id = ++issued;
                const sent = performance.now();
                const ok = await callOnce(url, id).catch(() => false);
                latencies.push(performance.now() - sent);
                if (!ok) errors++;
            }
        })
    );
    const seconds = (performance.now() - started) / 1000;
    return {
        replicas: servers.length === 1 ? 1 : 2,
        clients,
        requests: latencies.length,
        errors,
        seconds: round(seconds, 2),
        requestsPerSecond: Math.round(latencies.length / seconds),
        p50Ms: round(percentile(latencies, 50), 2),
        p95Ms: round(percentile(latencies, 95), 2),
        p99Ms: round(percentile(latencies, 99), 2),
        upstreamCalls: fake.count() - callsBefore,
        capped: latencies.length < requests
    };
}

/** Every configuration on one set of replicas, after a warm-up that fills the caches and lets V8 compile. */
async function runOn(
    servers: HttpServerProcess[],
    fake: FakeUpstream,
    options: Required<Omit<HttpBenchOptions, 'fake'>>
): Promise<HttpBenchRow[]> {
    for (const server of servers) {
        if (!(await callOnce(server.mcpUrl, 0))) throw new Error(`warm-up call failed on port ${server.port}: ${server.stderr}`);
    }
    await measure(servers, fake, 8, WARM_UP_REQUESTS * servers.length, options.timeCapMs);
    const rows: HttpBenchRow[] = [];
    for (const clients of options.clients) {
        // Unmeasured, at the same concurrency: the pool opens the connections this count needs. Without it, the first
        // requests of the 32-client row waited for 24 new connections, each set up while 31 others were served: p99
        // 354-472 ms where the rows after it, on the same server, measured 71-75 ms (2026-12-08).
        await measure(servers, fake, clients, clients * CONNECTION_WARM_UP_ROUNDS, options.timeCapMs);
        const row = await measure(servers, fake, clients, options.requests, options.timeCapMs);
        options.log(
            `http bench: ${row.replicas} replica(s), ${clients} client(s): ${row.requestsPerSecond} req/s, p50 ${row.p50Ms} ms, p99 ${row.p99Ms} ms`
        );
        rows.push(row);
    }
    return rows;
}

/**
 * Measures requests per second and p50/p95/p99 latency of warm `tools/call` requests, for each number of concurrent
 * clients, on one replica and then on two replicas sharing a redis-server it starts (skipped, and said so, when
 * redis-server is not installed), then the flood line (`runFloodBench`). Each set of replicas first gets 300
 * unmeasured requests per replica, and each client count 4 per client. Bounded: `requests` per configuration, each stopped at `timeCapMs`. Needs the build (`dist/src/cli.js`). Every process
 * it starts is stopped before it returns, whatever happens.
 */
export async function runHttpBench(options: HttpBenchOptions = {}): Promise<HttpBenchResult> {
    const settings = {
        clients: options.clients ?? [1, 8, 32],
        requests: options.requests ?? 400,
        timeCapMs: options.timeCapMs ?? 30_000,
        log: options.log ?? (() => undefined)
    };
    const fake = options.fake ?? (await FakeUpstream.start());
    const env = {
        TOKEN_METRICS_API_KEY: KEY,
        TOKEN_METRICS_BASE_URL: fake.baseUrl,
        CRYPTO_INTEL_HTTP_TOKENS: TOKEN,
        // The bench measures the server, not the per-token rate limit it would otherwise hit.
        CRYPTO_INTEL_HTTP_RATE_PER_MIN: '0',
        CRYPTO_INTEL_LOG_LEVEL: 'info'
    };
    const started: HttpServerProcess[] = [];
    let redis: RedisServer | null = null;
    try {
        const single = await HttpServerProcess.start(env);
        started.push(single);
        const rows = await runOn([single], fake, settings);
        await single.stop();

        let skipped: string | null = null;
        if (HAS_REDIS) {
            redis = await RedisServer.start();
            const shared = { ...env, CRYPTO_INTEL_REDIS_URL: redis.url };
            const pair = await Promise.all([HttpServerProcess.start(shared), HttpServerProcess.start(shared)]);
            started.push(...pair);
            rows.push(...(await runOn(pair, fake, settings)));
        } else {
            skipped = 'redis-server is not installed (apt-get install redis-server): two-replica figures skipped';
            settings.log(`http bench: ${skipped}`);
        }
        const flood = await runFloodBench({ fake, log: settings.log });
        return { tool: TOOL, args: ARGS, rows, skipped, flood };
    } finally {
        await Promise.all(started.map(server => server.stop()));
        await redis?.stop();
        if (options.fake === undefined) await fake.close();
    }
}

/** The figures as one plain-text table, with the skipped part named under it. */
export function formatHttpBench(result: HttpBenchResult): string {
    const header = ['replicas', 'clients', 'requests', 'errors', 'req/s', 'p50 ms', 'p95 ms', 'p99 ms', 'upstream calls'];
    const lines = result.rows.map(row =>
        [
            row.replicas === 2 ? '2 + Redis' : '1',
            row.clients,
            `${row.requests}${row.capped ? ' (time cap)' : ''}`,
            row.errors,
            row.requestsPerSecond,
            row.p50Ms,
            row.p95Ms,
            row.p99Ms,
            row.upstreamCalls
        ].map(String)
    );
    const widths = header.map((title, i) => Math.max(title.length, ...lines.map(line => line[i]!.length)));
    const format = (cells: string[]): string =>
        cells
            .map((cell, i) => cell.padEnd(widths[i]!))
            .join('  ')
            .trimEnd();
    const argsText = Object.entries(result.args)
        .map(([name, value]) => `${name}=${JSON.stringify(value)}`)
        .join(', ');
    return [
        `HTTP transport (--http, loopback): warm tools/call ${result.tool}(${argsText}), concurrent clients over one connection pool, each count after an unmeasured pass at that count`,
        format(header),
        ...lines.map(format),
        ...(result.skipped === null ? [] : [`two replicas: ${result.skipped}`]),
        formatFloodBench(result.flood)
    ].join('\n');
}

/** The flood line: what one token's flood of uncached calls costs another token, and what it costs in credits. */
export interface FloodBenchResult {
    floodCalls: number;
    /** Upstream latency the fake adds to every request during this measurement. */
    upstreamLatencyMs: number;
    /** Floods run, each with its own tokens: one flood's figure says more about the machine's mood than the server. */
    rounds: number;
    /** The other token's uncached question, alone and during the flood: medians over the rounds. */
    unloadedMs: number;
    loadedMs: number;
    /** loadedMs / unloadedMs (target at most 2), and each round's own ratio. */
    ratio: number;
    roundRatios: number[];
    otherAnswered: boolean;
    /** Flood calls answered, told "busy, retry in N s", or failed otherwise. */
    answered: number;
    busy: number;
    failed: number;
    /** Upstream requests (credits) the flood spent, and those spent for calls that were not answered (target 0). */
    credits: number;
    creditsOnUnanswered: number;
}

const FLOOD_TOKEN = 'flood-token-0123456789abcdef';
const FLOOD_BASE_ID = 800_000;

async function floodCall(url: URL, token: string, args: Record<string, unknown>, id: number): Promise<{ ok: boolean; busy: boolean }> {
    const response = await fetch(url, { method: 'POST', headers: mcpHeaders(token), body: toolCallBody('get_price', args, id) });
    const body = (await response.json().catch(() => null)) as { result?: { isError?: boolean; content?: Array<{ text?: string }> } } | null;
    const result = response.status === 200 ? body?.result : undefined;
    const ok = result !== undefined && result.isError !== true;
    return { ok, busy: !ok && /busy/i.test(result?.content?.[0]?.text ?? '') };
}

/** What the flood process runs: every call at once, each reported as answered, busy, or neither, as JSON on stdout. */
const FLOOD_SCRIPT = `
const { url, token, calls, baseId, headers } = JSON.parse(process.argv[1]);
const one = async i => {
    try {
        const body = JSON.stringify({ jsonrpc: '2.0', id: 10 + i, method: 'tools/call', params: { name: 'get_price', arguments: { symbols: [String(baseId + i)] } } });
        const response = await fetch(url, { method: 'POST', headers: { ...headers, authorization: 'Bearer ' + token }, body });
        const reply = await response.json().catch(() => null);
        const result = response.status === 200 && reply ? reply.result : undefined;
        const ok = result !== undefined && result.isError !== true;
        const text = (result && result.content && result.content[0] && result.content[0].text) || '';
        return { ok, busy: !ok && /busy/i.test(text) };
    } catch {
        return { ok: false, busy: false };
    }
};
Promise.all(Array.from({ length: calls }, (_, i) => one(i))).then(results => process.stdout.write(JSON.stringify(results)));
`;

/**
 * The flood comes from a process of its own, as it would from another machine, at normal priority: on this machine
 * its fetches share the CPU with the server (a harsher test than another machine), while a lower priority would
 * starve the flood of CPU whenever the server is busy and so understate it.
 */
function floodFromProcess(url: URL, calls: number, baseId: number): Promise<Array<{ ok: boolean; busy: boolean }>> {
    const data = JSON.stringify({ url: url.toString(), token: FLOOD_TOKEN, calls, baseId, headers: mcpHeaders() });
    const child = spawn(process.execPath, ['-e', FLOOD_SCRIPT, data], { stdio: ['ignore', 'pipe', 'inherit'] });
    let out = '';
    child.stdout.setEncoding('utf8').on('data', (chunk: string) => (out += chunk));
    return new Promise((resolve, reject) => {
        child.once('error', reject);
        child.once('close', code => {
            if (code === 0) resolve(JSON.parse(out) as Array<{ ok: boolean; busy: boolean }>);
            else reject(new Error(`flood process exited with ${code}`));
        });
    });
}

/**
 * One token sends `floodCalls` concurrent uncached calls (get_price of unknown ids: one /tokens request each, which
 * names its call) while another token asks one uncached question (ETH's price by id: /tokens then /price). The other
 * token's latency is compared with the same kind of question asked alone, and the flood's credits are attributed to
 * its calls by id, so credits spent on calls that were never answered can be counted. Default settings, except the
 * per-token rate, which is off so that the fairness inside, not the rate limit, is what is measured.
 */
export async function runFloodBench(
    options: { fake?: FakeUpstream; floodCalls?: number; upstreamLatencyMs?: number; rounds?: number; log?: (line: string) => void } = {}
): Promise<FloodBenchResult> {
    const floodCalls = options.floodCalls ?? 1_000;
    const rounds = options.rounds ?? 5;
    const upstreamLatencyMs = options.upstreamLatencyMs ?? 50;
    const fake = options.fake ?? (await FakeUpstream.start());
    const latencyBefore = fake.latencyMs;
    let server: HttpServerProcess | null = null;
    try {
        server = await HttpServerProcess.start({
            TOKEN_METRICS_API_KEY: KEY,
            TOKEN_METRICS_BASE_URL: fake.baseUrl,
            CRYPTO_INTEL_HTTP_TOKENS: `${TOKEN},${FLOOD_TOKEN}`,
            CRYPTO_INTEL_HTTP_RATE_PER_MIN: '0',
            // info: the helper learns the port from the "listening" line.
            CRYPTO_INTEL_LOG_LEVEL: 'info'
        });
        const url = server.mcpUrl;
        fake.latencyMs = upstreamLatencyMs;
        // Loads the upstream client and gives the limiter its first request durations, as any running server has.
        await floodCall(url, TOKEN, { symbols: ['1'] }, 1);
        // Two uncached questions per round (one alone, one during the flood), each of a token not asked before.
        const questions = fake.world.tokens.map(token => String(token.id)).filter(id => id !== '1');
        if (questions.length < 2 * rounds)
            throw new Error(`flood bench: the fake knows ${questions.length} tokens, ${2 * rounds} are needed`);
        const unloaded: number[] = [];
        const loaded: number[] = [];
        let otherAnswered = true;
        let answered = 0;
        let busy = 0;
        let failed = 0;
        let credits = 0;
        let creditsOnUnanswered = 0;
        for (let round = 0; round < rounds; round++) {
            let started = performance.now();
            const alone = await floodCall(url, TOKEN, { symbols: [questions[2 * round]] }, 2);
            unloaded.push(performance.now() - started);
            if (!alone.ok) throw new Error(`flood bench: the unloaded question failed: ${server.stderr}`);

            const baseId = FLOOD_BASE_ID + round * floodCalls;
            const callsBefore = fake.calls.length;
            const flood = floodFromProcess(url, floodCalls, baseId);
            // The question is asked once the flood is under way: its first request has reached the upstream.
            while (fake.calls.length === callsBefore) await new Promise(resolve => setTimeout(resolve, 1));
            started = performance.now();
            const other = await floodCall(url, TOKEN, { symbols: [questions[2 * round + 1]] }, 3);
            loaded.push(performance.now() - started);
            otherAnswered &&= other.ok;
            const results = await flood;

            const answeredIds = new Set(results.flatMap((result, i) => (result.ok ? [baseId + i] : [])));
            const floodRequests = fake.calls.slice(callsBefore).filter(call => Number(call.query.token_id) >= baseId);
            answered += answeredIds.size;
            busy += results.filter(entry => entry.busy).length;
            failed += results.filter(entry => !entry.ok && !entry.busy).length;
            credits += floodRequests.length;
            creditsOnUnanswered += floodRequests.filter(call => !answeredIds.has(Number(call.query.token_id))).length;
        }
        const result: FloodBenchResult = {
            floodCalls,
            upstreamLatencyMs,
            rounds,
            unloadedMs: round(median(unloaded), 1),
            loadedMs: round(median(loaded), 1),
            ratio: round(median(loaded) / median(unloaded), 2),
            roundRatios: loaded.map((ms, i) => round(ms / unloaded[i]!, 2)),
            otherAnswered,
            answered,
            busy,
            failed,
            credits,
            creditsOnUnanswered
        };
        options.log?.(`http bench: ${formatFloodBench(result)}`);
        return result;
    } finally {
        fake.latencyMs = latencyBefore;
        await server?.stop();
        if (options.fake === undefined) await fake.close();
    }
}

/** The flood line of `npm run bench`. */
export function formatFloodBench(flood: FloodBenchResult): string {
    return (
        `flood: 1 token x ${flood.floodCalls} concurrent uncached calls (upstream ${flood.upstreamLatencyMs} ms), ${flood.rounds} rounds; ` +
        `the other token's uncached call ${flood.otherAnswered ? 'answered' : 'NOT answered'} in ${flood.loadedMs} ms vs ${flood.unloadedMs} ms alone ` +
        `(medians: ${flood.ratio}x, target <= 2x; rounds ${flood.roundRatios.join(', ')}); ` +
        `flood: ${flood.answered} answered, ${flood.busy} busy, ${flood.failed} failed; ` +
        `credits ${flood.credits}, on unanswered calls ${flood.creditsOnUnanswered} (target 0)`
    );
}
