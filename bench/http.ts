import { performance } from 'node:perf_hooks';
import { FakeUpstream } from '../test/fake-upstream/index.js';
import { HttpServerProcess, mcpHeaders, toolCallBody } from '../test/helpers/http-process.js';
import { HAS_REDIS, RedisServer } from '../test/helpers/redis-server.js';
import { percentile, round } from './stats.js';

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
        const row = await measure(servers, fake, clients, options.requests, options.timeCapMs);
        options.log(
            `http bench: ${row.replicas} replica(s), ${clients} client(s): ${row.requestsPerSecond} req/s, p50 ${row.p50Ms} ms, p95 ${row.p95Ms} ms`
        );
        rows.push(row);
    }
    return rows;
}

/**
 * Measures requests per second and p50/p95 latency of warm `tools/call` requests, for each number of concurrent
 * clients, on one replica and then on two replicas sharing a redis-server it starts (skipped, and said so, when
 * redis-server is not installed). Each set of replicas first gets 300 unmeasured requests per replica. Bounded:
 * `requests` per configuration, each stopped at `timeCapMs`. Needs the build (`dist/src/cli.js`). Every process
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
        return { tool: TOOL, args: ARGS, rows, skipped };
    } finally {
        await Promise.all(started.map(server => server.stop()));
        await redis?.stop();
        if (options.fake === undefined) await fake.close();
    }
}

/** The figures as one plain-text table, with the skipped part named under it. */
export function formatHttpBench(result: HttpBenchResult): string {
    const header = ['replicas', 'clients', 'requests', 'errors', 'req/s', 'p50 ms', 'p95 ms', 'upstream calls'];
    const lines = result.rows.map(row =>
        [
            row.replicas === 2 ? '2 + Redis' : '1',
            row.clients,
            `${row.requests}${row.capped ? ' (time cap)' : ''}`,
            row.errors,
            row.requestsPerSecond,
            row.p50Ms,
            row.p95Ms,
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
        `HTTP transport (--http, loopback): warm tools/call ${result.tool}(${argsText}), concurrent clients over one connection pool`,
        format(header),
        ...lines.map(format),
        ...(result.skipped === null ? [] : [`two replicas: ${result.skipped}`])
    ].join('\n');
}
