import { spawn } from 'node:child_process';
import { performance } from 'node:perf_hooks';
import type { FakeUpstream } from '../test/fake-upstream/index.js';
import { CLI_PATH, startServer } from '../test/helpers/server-process.js';
import { median, round } from './stats.js';

/**
 * What a person waits for when Claude Desktop starts the server: spawn to `tools/list` answered, as a raw client sees
 * it (JSON-RPC lines on stdin and stdout, no SDK client in the way); the first cold call of a process against a later
 * one; and whether an answer survives a crash one second after it was cached.
 */

/** Medians of this many: a shared VM's noise moves a single start by tens of milliseconds. */
const STARTS = 15;
const FIRST_CALL_STARTS = 9;
const KEY = 'tm-bench-0000-0000-pr0c';
const PROTOCOL_VERSION = '2025-06-18';

function env(fake: FakeUpstream, cacheDir: string): Record<string, string> {
    return {
        TOKEN_METRICS_API_KEY: KEY,
        TOKEN_METRICS_BASE_URL: fake.baseUrl,
        CRYPTO_INTEL_CACHE_DIR: cacheDir,
        CRYPTO_INTEL_LOG_LEVEL: 'warn'
    };
}

export interface RawStartup {
    starts: number;
    medianMs: number;
    /** The `tools/list` result as it crossed stdout, in bytes of JSON. */
    toolsListBytes: number;
    /** The official Token Metrics server's figures from the same run, started in turn with this one's; null if not asked. */
    official: { medianMs: number; toolsListBytes: number } | null;
}

/** One start: initialize, wait for its answer, then `notifications/initialized` and `tools/list`, timed to that answer. */
async function rawStart(variables: Record<string, string>, cliPath = CLI_PATH): Promise<{ ms: number; toolsListBytes: number }> {
    const started = performance.now();
    const child = spawn(process.execPath, [cliPath], {
        env: { PATH: process.env.PATH ?? '', HOME: process.env.HOME ?? '/tmp', ...variables },
        stdio: ['pipe', 'pipe', 'ignore']
    });
    const exited = new Promise(resolve => child.once('exit', resolve));
    const answers = new Map<number, (line: string) => void>();
    let pending = '';
    child.stdout.setEncoding('utf8');
    child.stdout.on('data', (chunk: string) => {
        pending += chunk;
        let newline: number;
        while ((newline = pending.indexOf('\n')) >= 0) {
            const line = pending.slice(0, newline);
            pending = pending.slice(newline + 1);
            // Another server may print other lines on stdout; only JSON-RPC answers end a wait.
            const id = line.startsWith('{') ? (JSON.parse(line) as { id?: number }).id : undefined;
            if (id !== undefined) answers.get(id)?.(line);
        }
    });
    const request = (id: number, method: string, params: Record<string, unknown>): Promise<string> =>
        new Promise(resolve => {
            answers.set(id, resolve);
            child.stdin.write(`${JSON.stringify({ jsonrpc: '2.0', id, method, params })}\n`);
        });
    try {
        await request(1, 'initialize', {
            protocolVersion: PROTOCOL_VERSION,
            capabilities: {},
            clientInfo: { name: 'raw-bench-client', version: '1.0.0' }
        });
        child.stdin.write(`${JSON.stringify({ jsonrpc: '2.0', method: 'notifications/initialized' })}\n`);
        const listing = await request(2, 'tools/list', {});
        const ms = performance.now() - started;
        const { result } = JSON.parse(listing) as { result: unknown };
        return { ms, toolsListBytes: Buffer.byteLength(JSON.stringify(result)) };
    } finally {
        child.stdin.end();
        await exited;
    }
}

/**
 * Median start-up over `STARTS` starts. With `officialCli` (the built official server's `cli.js`), that server is
 * started in turn with this one, start for start, so both see the same machine: the comparison issue 15 asks for.
 */
export async function rawStartup(fake: FakeUpstream, officialCli?: string): Promise<RawStartup> {
    const ours: number[] = [];
    const theirs: number[] = [];
    let toolsListBytes = 0;
    let officialBytes = 0;
    for (let i = 0; i < STARTS; i++) {
        const start = await rawStart(env(fake, 'off'));
        ours.push(start.ms);
        toolsListBytes = start.toolsListBytes;
        if (officialCli) {
            const official = await rawStart({ TOKEN_METRICS_API_KEY: KEY }, officialCli);
            theirs.push(official.ms);
            officialBytes = official.toolsListBytes;
        }
    }
    return {
        starts: STARTS,
        medianMs: round(median(ours), 1),
        toolsListBytes,
        official: officialCli ? { medianMs: round(median(theirs), 1), toolsListBytes: officialBytes } : null
    };
}

export interface FirstColdCall {
    upstreamLatencyMs: number;
    /** Spawn to the first call's answer, the handshake and tool list included: what a client that never pauses waits. */
    spawnToFirstAnswerMs: number;
    /** A fresh process's first `get_price` of one token (a `/tokens` and a `/price` request), after `tools/list`. */
    firstMs: number;
    /** The same process's next one, for another token: the same two requests, with everything loaded. */
    laterMs: number;
}

/** Medians over several fresh processes, the upstream answering in `fake.latencyMs`. */
export async function firstColdCall(fake: FakeUpstream): Promise<FirstColdCall> {
    const first: number[] = [];
    const later: number[] = [];
    const endToEnd: number[] = [];
    for (let i = 0; i < FIRST_CALL_STARTS; i++) {
        const spawned = performance.now();
        const { client, server } = await startServer(env(fake, 'off'));
        try {
            await client.listTools();
            for (const [symbol, samples] of [
                ['BTC', first],
                ['ETH', later]
            ] as const) {
                const started = performance.now();
                await client.callTool({ name: 'get_price', arguments: { symbols: [symbol] } });
                samples.push(performance.now() - started);
                if (samples === first) endToEnd.push(performance.now() - spawned);
            }
        } finally {
            await server.close();
        }
    }
    return {
        upstreamLatencyMs: fake.latencyMs,
        spawnToFirstAnswerMs: round(median(endToEnd), 1),
        firstMs: round(median(first), 1),
        laterMs: round(median(later), 1)
    };
}

export interface Durability {
    /** How long after the answer the process was killed (SIGKILL: no shutdown hook runs). */
    crashAfterMs: number;
    /** Upstream requests the next process needed to answer the same question (0: the answer was on disk). */
    creditsAfterCrash: number;
}

/** Asks a question, kills the process `crashAfterMs` later without warning, and asks again in a new process on the same directory. */
export async function durability(fake: FakeUpstream, cacheDir: string, crashAfterMs = 1_000): Promise<Durability> {
    const question = { name: 'get_price', arguments: { symbols: ['AVAX'] } };
    const first = await startServer(env(fake, cacheDir));
    try {
        await first.client.callTool(question);
        await new Promise(resolve => setTimeout(resolve, crashAfterMs));
        first.server.signal('SIGKILL');
        await first.server.waitForExit();
    } finally {
        await first.server.close();
    }
    const second = await startServer(env(fake, cacheDir));
    try {
        const before = fake.count();
        await second.client.callTool(question);
        return { crashAfterMs, creditsAfterCrash: fake.count() - before };
    } finally {
        await second.server.close();
    }
}
