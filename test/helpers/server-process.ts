import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { Client } from '@modelcontextprotocol/sdk/client/index.js';
import type { Transport } from '@modelcontextprotocol/sdk/shared/transport.js';
import { JSONRPCMessageSchema, type JSONRPCMessage } from '@modelcontextprotocol/sdk/types.js';

/** The built CLI, as Claude Desktop would start it; found from test/helpers and from its build in dist/test/helpers. */
export const CLI_PATH = ['../../dist/src/cli.js', '../../src/cli.js']
    .map(relative => fileURLToPath(new URL(relative, import.meta.url)))
    .find(path => existsSync(path))!;

/**
 * A stdio transport over a real child process that keeps every byte the server wrote, so tests can
 * assert that stdout carried nothing but JSON-RPC and that nothing anywhere leaked a key.
 */
export class ServerProcess implements Transport {
    readonly stdoutLines: string[] = [];
    stderr = '';
    exitCode: number | null = null;
    onmessage?: (message: JSONRPCMessage) => void;
    onerror?: (error: Error) => void;
    onclose?: () => void;

    private child: ChildProcess | undefined;
    private pending = '';
    private readonly exited: Promise<void>;
    private markExited!: () => void;

    constructor(private readonly env: Record<string, string>) {
        this.exited = new Promise(resolve => (this.markExited = resolve));
    }

    /** The child's process id, e.g. to sample its memory in /proc; undefined before `start()`. */
    get pid(): number | undefined {
        return this.child?.pid;
    }

    async start(): Promise<void> {
        this.child = spawn(process.execPath, [CLI_PATH], {
            env: { PATH: process.env.PATH ?? '', HOME: process.env.HOME ?? '/tmp', ...this.env },
            stdio: ['pipe', 'pipe', 'pipe']
        });
        this.child.stdout!.setEncoding('utf8');
        this.child.stderr!.setEncoding('utf8');
        this.child.stdout!.on('data', (chunk: string) => this.read(chunk));
        this.child.stderr!.on('data', (chunk: string) => (this.stderr += chunk));
        this.child.on('error', error => this.onerror?.(error));
        this.child.on('exit', code => {
            this.exitCode = code;
            this.markExited();
            this.onclose?.();
        });
    }

    private read(chunk: string): void {
        this.pending += chunk;
        let newline: number;
        while ((newline = this.pending.indexOf('\n')) >= 0) {
            const line = this.pending.slice(0, newline).replace(/\r$/, '');
            this.pending = this.pending.slice(newline + 1);
            this.stdoutLines.push(line);
            try {
                this.onmessage?.(JSONRPCMessageSchema.parse(JSON.parse(line)));
            } catch (error) {
                this.onerror?.(error as Error);
            }
        }
    }

    async send(message: JSONRPCMessage): Promise<void> {
        const stdin = this.child?.stdin;
        if (!stdin || stdin.destroyed) throw new Error('server process is not running');
        await new Promise<void>((resolve, reject) =>
            stdin.write(`${JSON.stringify(message)}\n`, error => (error ? reject(error) : resolve()))
        );
    }

    /** Close stdin (as a client does on exit) and wait for the process to end. */
    async close(): Promise<void> {
        if (!this.child || this.exitCode !== null) return;
        this.child.stdin!.end();
        const timer = setTimeout(() => this.child?.kill('SIGKILL'), 5_000);
        await this.exited;
        clearTimeout(timer);
    }

    signal(name: NodeJS.Signals): void {
        this.child?.kill(name);
    }

    async waitForExit(): Promise<number | null> {
        await this.exited;
        return this.exitCode;
    }

    /** Every stdout line that is not a JSON-RPC 2.0 message (expected: none). */
    nonProtocolLines(): string[] {
        return this.stdoutLines.filter(line => {
            try {
                return !JSONRPCMessageSchema.safeParse(JSON.parse(line)).success;
            } catch {
                return true;
            }
        });
    }
}

/** Spawn the built server with `env` and connect the SDK's own Client to it. */
export async function startServer(env: Record<string, string>): Promise<{ client: Client; server: ServerProcess }> {
    const server = new ServerProcess(env);
    const client = new Client({ name: 'crypto-intel-mcp-tests', version: '1.0.0' });
    await client.connect(server);
    return { client, server };
}
