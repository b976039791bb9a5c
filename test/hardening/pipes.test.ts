import { spawn, type ChildProcessWithoutNullStreams } from 'node:child_process';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { FakeUpstream } from '../fake-upstream/index.js';
import { CLI_PATH } from '../helpers/server-process.js';
import { freePort } from '../helpers/ports.js';

/**
 * Issue 16, finding 2 (a broken log pipe made a busy loop) and the stdio items of finding 8 (a request written just
 * before EOF went unanswered; an oversized line ended the process with exit 0 and no word why), on the built CLI.
 * No wall-clock assertions: waits are bounded only so that a regression fails instead of hanging.
 */

const KEY = 'tm-HARDEN-pipes-6b1f0e3d9a27';

interface Child {
    proc: ChildProcessWithoutNullStreams;
    /** Complete stdout lines so far. */
    lines: string[];
    stderr(): string;
    send(message: object): void;
    /** The response to request `id`, waiting up to `limitMs`. */
    response(id: number, limitMs?: number): Promise<Record<string, unknown>>;
    /** The exit code (or signal name), waiting up to `limitMs`, then SIGKILL and `'killed'`. */
    exit(limitMs?: number): Promise<number | string>;
}

/** Every child a test started, so one that a failed test left running is killed (it could be spinning at 100% CPU). */
const children = new Set<ChildProcessWithoutNullStreams>();
afterEach(() => {
    for (const proc of children) if (proc.exitCode === null && proc.signalCode === null) proc.kill('SIGKILL');
    children.clear();
});

function start(args: string[], env: Record<string, string>, stderr: 'read' | 'closed' | 'one-byte'): Child {
    const proc = spawn(process.execPath, [CLI_PATH, ...args], {
        env: {
            PATH: process.env.PATH ?? '',
            HOME: process.env.HOME ?? '/tmp',
            CRYPTO_INTEL_CACHE_DIR: 'off',
            CRYPTO_INTEL_LOG_LEVEL: 'debug',
            ...env
        },
        stdio: ['pipe', 'pipe', 'pipe']
    });
    children.add(proc);
    const lines: string[] = [];
    let pending = '';
    proc.stdout.setEncoding('utf8');
    proc.stdout.on('data', (chunk: string) => {
        pending += chunk;
        let newline: number;
        while ((newline = pending.indexOf('\n')) >= 0) {
            lines.push(pending.slice(0, newline));
            pending = pending.slice(newline + 1);
        }
    });
    proc.stdout.on('error', () => {});
    proc.stdin.on('error', () => {});
    let errText = '';
    proc.stderr.on('error', () => {});
    if (stderr === 'closed') proc.stderr.destroy();
    else if (stderr === 'one-byte') {
        // Like `2> >(head -c 1 >/dev/null)`: the reader takes one byte and goes away.
        proc.stderr.once('data', () => proc.stderr.destroy());
    } else {
        proc.stderr.setEncoding('utf8');
        proc.stderr.on('data', (chunk: string) => (errText += chunk));
    }
    let exited: number | string | null = null;
    const exitPromise = new Promise<number | string>(resolve =>
        proc.on('exit', (code, signal) => resolve((exited = code ?? signal ?? 'unknown')))
    );
    return {
        proc,
        lines,
        stderr: () => errText,
        send: message => proc.stdin.write(`${JSON.stringify(message)}\n`),
        async response(id, limitMs = 15_000) {
            const until = Date.now() + limitMs;
            for (;;) {
                for (const line of lines) {
                    try {
                        const message = JSON.parse(line) as Record<string, unknown>;
                        if (message.id === id && !('method' in message)) return message;
                    } catch {
                        // not JSON: the purity checks below count these
                    }
                }
                if (exited !== null) throw new Error(`exited (${exited}) before answering ${id}`);
                if (Date.now() > until) throw new Error(`no answer to ${id}`);
                await new Promise(resolve => setTimeout(resolve, 20));
            }
        },
        async exit(limitMs = 15_000) {
            const timer = setTimeout(() => proc.kill('SIGKILL'), limitMs);
            const code = await exitPromise;
            clearTimeout(timer);
            return code === 'SIGKILL' ? 'killed' : code;
        }
    };
}

const INIT = {
    jsonrpc: '2.0',
    id: 1,
    method: 'initialize',
    params: { protocolVersion: '2025-06-18', capabilities: {}, clientInfo: { name: 'pipes-test', version: '1.0.0' } }
};
const INITIALIZED = { jsonrpc: '2.0', method: 'notifications/initialized' };
const call = (id: number, name: string, args: object) => ({ jsonrpc: '2.0', id, method: 'tools/call', params: { name, arguments: args } });

const notificationCount = (lines: readonly string[]) => lines.filter(line => line.includes('"notifications/message"')).length;

describe('finding 2: a broken stderr pipe', () => {
    let fake: FakeUpstream;
    beforeAll(async () => {
        fake = await FakeUpstream.start();
    });
    afterAll(async () => {
        await fake.close();
    });

    it.each(['closed', 'one-byte'] as const)(
        'stdio with stderr %s: still answers, sends few notifications, exits on SIGTERM',
        async mode => {
            const child = start([], { TOKEN_METRICS_API_KEY: KEY, TOKEN_METRICS_BASE_URL: fake.baseUrl }, mode);
            child.send(INIT);
            await child.response(1);
            child.send(INITIALIZED);
            child.send({ jsonrpc: '2.0', id: 2, method: 'tools/list' });
            const list = await child.response(2);
            expect(((list.result as { tools: unknown[] }).tools ?? []).length).toBeGreaterThanOrEqual(4);
            // Calls that log (debug lines on every upstream attempt) and one that warns (an unknown symbol's lookups).
            child.send(call(3, 'get_price', { symbols: ['BTC', 'ETH'] }));
            child.send(call(4, 'get_grades', { symbol: 'NOSUCHTOKEN' }));
            expect((await child.response(3)).result).toBeDefined();
            expect(await child.response(4)).toBeDefined();
            child.send({ jsonrpc: '2.0', id: 5, method: 'tools/list' });
            await child.response(5);
            // It was ~18,000 notifications/message a second; a handful of warnings at most now.
            expect(notificationCount(child.lines)).toBeLessThan(20);
            expect(child.lines.every(line => line.startsWith('{"'))).toBe(true);
            child.proc.kill('SIGTERM');
            expect(await child.exit()).toBe(0);
        }
    );

    it.each(['closed', 'one-byte'] as const)('HTTP with stderr %s: still listens and exits on SIGTERM', async mode => {
        const port = await freePort();
        const child = start(['--http', '--port', String(port)], { TOKEN_METRICS_API_KEY: KEY, TOKEN_METRICS_BASE_URL: fake.baseUrl }, mode);
        let healthy = false;
        for (let attempt = 0; attempt < 200 && !healthy; attempt++) {
            healthy = await fetch(`http://127.0.0.1:${port}/healthz`).then(
                response => response.ok,
                () => false
            );
            if (!healthy) await new Promise(resolve => setTimeout(resolve, 50));
        }
        expect(healthy).toBe(true);
        const answer = await fetch(`http://127.0.0.1:${port}/mcp`, {
            method: 'POST',
            headers: { 'content-type': 'application/json', accept: 'application/json, text/event-stream' },
            body: JSON.stringify({ jsonrpc: '2.0', id: 2, method: 'tools/list', params: {} })
        });
        expect(answer.status).toBe(200);
        expect(await answer.text()).toContain('get_price');
        child.proc.kill('SIGTERM');
        expect(await child.exit()).toBe(0);
    });

    it('stdio with stdout closed (the client is gone): finishes and exits by itself, stderr stays small', async () => {
        const child = start([], { TOKEN_METRICS_API_KEY: KEY, TOKEN_METRICS_BASE_URL: fake.baseUrl }, 'read');
        child.send(INIT);
        await child.response(1);
        child.send(INITIALIZED);
        child.proc.stdout.destroy();
        child.send(call(2, 'get_price', { symbols: ['BTC'] }));
        child.send({ jsonrpc: '2.0', id: 3, method: 'tools/list' });
        expect(await child.exit()).toBe(0);
        // It grew 15 MB/s before.
        expect(child.stderr().length).toBeLessThan(64 * 1024);
        expect(child.stderr()).toMatch(/stdout closed/);
    });
});

describe('finding 8: stdio end of input', () => {
    let fake: FakeUpstream;
    beforeAll(async () => {
        fake = await FakeUpstream.start();
    });
    afterAll(async () => {
        await fake.close();
    });

    it('answers a request written just before stdin ends, then exits 0', async () => {
        const child = start([], { TOKEN_METRICS_API_KEY: KEY, TOKEN_METRICS_BASE_URL: fake.baseUrl }, 'read');
        child.send(INIT);
        await child.response(1);
        child.send(INITIALIZED);
        // The call's first upstream request is held, so stdin has ended while the call is still waiting for it.
        fake.inject({ fault: { kind: 'hold' }, times: 1 });
        child.send(call(2, 'get_price', { symbols: ['BTC'] }));
        child.proc.stdin.end();
        // A server that exits at the end of stdin may never make the request: then `response` below says so.
        await Promise.race([fake.until(() => fake.pending().length === 1), child.exit()]);
        fake.release();
        const answer = await child.response(2);
        expect((answer.result as { isError?: boolean }).isError).toBeFalsy();
        expect(await child.exit()).toBe(0);
    });

    it('says why on stderr and exits 1 when a line is larger than the SDK reads', async () => {
        const child = start([], { TOKEN_METRICS_API_KEY: KEY, TOKEN_METRICS_BASE_URL: fake.baseUrl }, 'read');
        child.send(INIT);
        await child.response(1);
        child.proc.stdin.write(`{"jsonrpc":"2.0","id":2,"method":"ping","params":{"pad":"${'x'.repeat(11 * 1024 * 1024)}"}}\n`);
        expect(await child.exit()).toBe(1);
        expect(child.stderr()).toMatch(/larger than the MCP SDK reads as one line/);
    });
});
