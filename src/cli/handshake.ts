import { readFileSync } from 'node:fs';
import type { PassThrough, Readable, Writable } from 'node:stream';

/**
 * The stdio handshake answered before the MCP SDK has loaded. The SDK and zod take most of a start (about 300 of
 * 400 ms on the reference machine, against about 100 ms for the whole of a process that loads neither), and a client
 * such as Claude Desktop waits for `initialize` and `tools/list` before it shows any tool. Both answers depend on
 * nothing a user configures, so the build records the real server's answers (write-handshake.ts) and this module
 * gives them back at once; every message still reaches the real server, in order, once it is up.
 */

/** What the build recorded from the real server: `initialize`'s result without the negotiated version, and `tools/list`'s. */
export interface Handshake {
    /** The package version it was recorded for: another build's answers are never used. */
    version: string;
    supportedProtocolVersions: string[];
    latestProtocolVersion: string;
    initialize: Record<string, unknown>;
    toolsList: Record<string, unknown>;
}

export const HANDSHAKE_FILE = new URL('../handshake.json', import.meta.url);

/** The recorded handshake, or null when there is none for `version` (a build that did not record it): no early answers then. */
export function readHandshake(version: string, file: URL = HANDSHAKE_FILE): Handshake | null {
    try {
        const handshake = JSON.parse(readFileSync(file, 'utf8')) as Partial<Handshake>;
        const valid =
            handshake.version === version &&
            Array.isArray(handshake.supportedProtocolVersions) &&
            typeof handshake.latestProtocolVersion === 'string' &&
            typeof handshake.initialize === 'object' &&
            handshake.initialize !== null &&
            typeof handshake.toolsList === 'object' &&
            handshake.toolsList !== null;
        return valid ? (handshake as Handshake) : null;
    } catch {
        return null;
    }
}

type Message = { jsonrpc?: unknown; id?: unknown; method?: unknown; params?: unknown };

const isObject = (value: unknown): value is Record<string, unknown> => typeof value === 'object' && value !== null && !Array.isArray(value);
const isId = (value: unknown): value is string | number =>
    typeof value === 'string' || (typeof value === 'number' && Number.isInteger(value));

/** An `initialize` request the SDK would accept: anything else is left for the SDK to answer, with its own error. */
function isInitialize(message: Message): boolean {
    const params = message.params;
    return (
        message.method === 'initialize' &&
        isObject(params) &&
        typeof params.protocolVersion === 'string' &&
        isObject(params.capabilities) &&
        isObject(params.clientInfo) &&
        typeof params.clientInfo.name === 'string' &&
        typeof params.clientInfo.version === 'string'
    );
}

/** Lines read before the server is up are parsed here only up to this size; past it, everything goes to the server as read. */
const EARLY_LINE_BYTES = 1024 * 1024;

/**
 * Reads stdin until the server is ready. Answers `initialize` and `tools/list` from the recorded handshake and passes
 * every line on to `toServer` in order, except the `tools/list` requests it answered; the server then sees the
 * `initialize` too (it must know the client), and `dropAnswer` names the id whose answer the server must not send
 * again. After `ready()`, stdin flows to the server untouched.
 */
export class EarlyHandshake {
    private pending = '';
    private parsing = true;
    private initializeId: string | number | undefined;
    /** Whether a `tools/list` was answered here: what the server does on one (its warm-up) is then still to do. */
    listedTools = false;
    /** Set when writing an answer failed (EPIPE: the client is gone) before the server could listen for it. */
    stdoutError: Error | undefined;
    /** Set when reading stdin failed before the server could listen for it: no more requests will come. */
    stdinError: Error | undefined;

    constructor(
        private readonly handshake: Handshake,
        private readonly stdin: Readable,
        private readonly stdout: Writable,
        /** What the server's transport reads: everything stdin brings, in order. */
        readonly toServer: PassThrough
    ) {
        stdin.setEncoding('utf8');
        stdin.on('data', this.onData);
        // Until the server has its own listeners: an unheard 'error' event would end the process at once.
        stdout.on('error', (error: Error) => (this.stdoutError ??= error));
        stdin.on('error', (error: Error) => (this.stdinError ??= error));
        stdin.once('end', () => {
            this.flush();
            toServer.end();
        });
    }

    /** Whether `message` is the server's answer to the `initialize` this class already answered; true once. */
    dropAnswer(message: unknown): boolean {
        if (this.initializeId === undefined || !isObject(message) || 'method' in message || message.id !== this.initializeId) return false;
        this.initializeId = undefined;
        return true;
    }

    /** The server is connected: what was held goes to it, and stdin goes straight to it from now on. */
    ready(): void {
        this.flush();
        this.parsing = false;
    }

    private readonly onData = (chunk: string): void => {
        if (!this.parsing) return void this.toServer.write(chunk);
        this.pending += chunk;
        let newline: number;
        while ((newline = this.pending.indexOf('\n')) >= 0) {
            const line = this.pending.slice(0, newline + 1);
            this.pending = this.pending.slice(newline + 1);
            if (!this.answer(line)) this.toServer.write(line);
        }
        // A line this long is no handshake: stop looking, and let the server read it (and refuse it if it is too long).
        if (Buffer.byteLength(this.pending) > EARLY_LINE_BYTES) this.ready();
    };

    private flush(): void {
        if (this.pending) this.toServer.write(this.pending);
        this.pending = '';
    }

    /** Answers `line` if it is an `initialize` or `tools/list` request; true when it must not reach the server. */
    private answer(line: string): boolean {
        let message: Message;
        try {
            message = JSON.parse(line) as Message;
        } catch {
            return false;
        }
        if (!isObject(message) || message.jsonrpc !== '2.0' || !isId(message.id)) return false;
        if (isInitialize(message) && this.initializeId === undefined) {
            const requested = (message.params as { protocolVersion: string }).protocolVersion;
            const protocolVersion = this.handshake.supportedProtocolVersions.includes(requested)
                ? requested
                : this.handshake.latestProtocolVersion;
            this.initializeId = message.id;
            this.send(message.id, { protocolVersion, ...this.handshake.initialize });
            return false;
        }
        if (message.method === 'tools/list' && (message.params === undefined || isObject(message.params))) {
            this.send(message.id, this.handshake.toolsList);
            this.listedTools = true;
            return true;
        }
        return false;
    }

    private send(id: string | number, result: Record<string, unknown>): void {
        if (this.stdoutError) return;
        this.stdout.write(`${JSON.stringify({ jsonrpc: '2.0', id, result })}\n`);
    }
}
