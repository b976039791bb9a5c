import { spawn, type ChildProcess } from 'node:child_process';
import { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { StreamableHTTPClientTransport } from '@modelcontextprotocol/sdk/client/streamableHttp.js';
import { CLI_PATH } from './server-process.js';

/** The log line the server writes once it listens; with `--port 0` it is the only place the port is told. */
const LISTENING = 'crypto-intel-mcp listening on HTTP';

/**
 * The built server started with `--http --port 0` as a child process, as a replica of a team deployment runs.
 * Its stderr is kept so tests can assert what it logged (and that it never logged a secret).
 */
export class HttpServerProcess {
    stderr = '';
    exitCode: number | null = null;
    port = 0;
    private readonly exited: Promise<number | null>;

    private constructor(private readonly child: ChildProcess) {
        this.exited = new Promise(resolve =>
            child.once('exit', code => {
                this.exitCode = code;
                resolve(code);
            })
        );
        child.stderr!.setEncoding('utf8');
        child.stderr!.on('data', (chunk: string) => (this.stderr += chunk));
    }

    /** Spawns the server with only `env` (plus PATH and HOME) and resolves once it listens, or rejects if it exits first. */
    static async start(env: Record<string, string>, args: string[] = ['--http', '--port', '0']): Promise<HttpServerProcess> {
        const child = spawn(process.execPath, [CLI_PATH, ...args], {
            env: { PATH: process.env.PATH ?? '', HOME: process.env.HOME ?? '/tmp', CRYPTO_INTEL_CACHE_DIR: 'off', ...env },
            stdio: ['ignore', 'ignore', 'pipe']
        });
        const server = new HttpServerProcess(child);
        const giveUp = Date.now() + 15_000;
        while (server.port === 0) {
            const line = server.stderr.split('\n').find(text => text.includes(LISTENING));
            if (line !== undefined) server.port = (JSON.parse(line) as { port: number }).port;
            else if (server.exitCode !== null) throw new Error(`server exited with ${server.exitCode} before listening: ${server.stderr}`);
            else if (Date.now() > giveUp) {
                child.kill('SIGKILL');
                throw new Error(`server did not listen within 15 s: ${server.stderr}`);
            } else await new Promise(resolve => setTimeout(resolve, 10));
        }
        return server;
    }

    /** Runs the CLI and waits for it to exit, for start-up refusals. */
    static async run(env: Record<string, string>, args: string[]): Promise<{ code: number | null; stderr: string }> {
        const child = spawn(process.execPath, [CLI_PATH, ...args], {
            env: { PATH: process.env.PATH ?? '', HOME: process.env.HOME ?? '/tmp', ...env },
            stdio: ['ignore', 'ignore', 'pipe']
        });
        const server = new HttpServerProcess(child);
        const timer = setTimeout(() => child.kill('SIGKILL'), 15_000);
        const code = await server.exited;
        clearTimeout(timer);
        return { code, stderr: server.stderr };
    }

    get origin(): string {
        return `http://127.0.0.1:${this.port}`;
    }

    get mcpUrl(): URL {
        return new URL('/mcp', this.origin);
    }

    /** An SDK Client connected over Streamable HTTP, with the bearer token when one is given. */
    async client(token?: string): Promise<Client> {
        const transport = new StreamableHTTPClientTransport(
            this.mcpUrl,
            token === undefined ? {} : { requestInit: { headers: { Authorization: `Bearer ${token}` } } }
        );
        const client = new Client({ name: 'crypto-intel-mcp-http-tests', version: '1.0.0' });
        await client.connect(transport);
        return client;
    }

    signal(name: NodeJS.Signals): void {
        if (this.exitCode === null) this.child.kill(name);
    }

    waitForExit(): Promise<number | null> {
        return this.exited;
    }

    /** SIGTERM, then SIGKILL if it has not exited within 5 s. */
    async stop(): Promise<void> {
        if (this.exitCode !== null || this.child.exitCode !== null) return;
        this.child.kill('SIGTERM');
        const timer = setTimeout(() => this.child.kill('SIGKILL'), 5_000);
        await this.exited;
        clearTimeout(timer);
    }
}

/** The headers a Streamable HTTP client sends with a JSON-RPC POST. */
export function mcpHeaders(token?: string, extra: Record<string, string> = {}): Record<string, string> {
    return {
        'content-type': 'application/json',
        accept: 'application/json, text/event-stream',
        'mcp-protocol-version': '2025-06-18',
        ...(token === undefined ? {} : { authorization: `Bearer ${token}` }),
        ...extra
    };
}

/** A `tools/call` JSON-RPC body. */
export function toolCallBody(name: string, args: Record<string, unknown>, id: number = 1): string {
    return JSON.stringify({ jsonrpc: '2.0', id, method: 'tools/call', params: { name, arguments: args } });
}
