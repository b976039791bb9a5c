import type { Socket } from 'node:net';
import type { buildConnector, Dispatcher } from 'undici';

/**
 * undici's Agent, its request API and its connector, imported by path: its index also loads fetch, WebSocket, the mocks
 * and the caches, some three times the load time (~25 ms against ~80 ms on the reference machine), all of it on the
 * way to the first answer. The shipped bundle (scripts/bundle.mjs) carries these modules as they were at build time,
 * so a later undici that moves them cannot break an installed server; a build against one fails at once.
 */
import request from 'undici/lib/api/api-request.js';
import buildConnectorFn from 'undici/lib/core/connect.js';
import Agent from 'undici/lib/dispatcher/agent.js';
import { DEFAULT_MAX_BODY_BYTES, readCapped } from './body.js';

/** One upstream answer as it came: status, headers and the body as text. */
export interface RawResponse {
    status: number;
    headers: Record<string, string | string[] | undefined>;
    text: string;
}

export interface TransportOptions {
    attemptTimeoutMs: number;
    concurrency: number;
    maxBodyBytes?: number;
    /** Injected for tests; by default one keep-alive Agent per transport. */
    dispatcher?: Dispatcher;
}

/** A connection `warm` opened for the first request to take; `socket` is null when it could not be opened. */
interface Spare {
    origin: string;
    socket: Promise<Socket | null>;
}

const isOpen = (socket: Socket): boolean => !socket.destroyed && socket.readyState === 'open';

/** The wire to the Token Metrics API: one keep-alive Agent for every request, and each answer's body read under the cap. */
export class UpstreamTransport {
    private dispatcher: Dispatcher | undefined;
    private readonly ownsDispatcher: boolean;
    private connector: buildConnector.connector | undefined;
    private spare: Spare | undefined;
    private closed = false;

    constructor(private readonly options: TransportOptions) {
        this.ownsDispatcher = !options.dispatcher;
        if (options.dispatcher) this.dispatcher = options.dispatcher;
    }

    /** One request, inside the upstream slot the caller holds; `signal` carries the attempt's timeout and the caller's abort. */
    async send(url: URL, key: string, signal: AbortSignal): Promise<RawResponse> {
        const response = await request.call(this.agent(), {
            origin: url.origin,
            path: `${url.pathname}${url.search}`,
            method: 'GET',
            headers: { 'x-api-key': key, accept: 'application/json', 'user-agent': 'crypto-intel-mcp' },
            signal
        });
        const text = await readCapped(
            response.body,
            response.statusCode,
            response.headers['content-length'],
            this.options.maxBodyBytes ?? DEFAULT_MAX_BODY_BYTES
        );
        return { status: response.statusCode, headers: response.headers, text };
    }

    /**
     * Makes the Agent and opens a connection to `origin` (TCP, and TLS for https) that the first request
     * takes, so that none of it is in the first call's way. No request goes out: nothing is spent. Rejects when the
     * connection could not be opened; the first request then opens its own and reports what fails.
     */
    async warm(origin: URL): Promise<void> {
        this.agent();
        if (!this.ownsDispatcher || this.closed || this.spare || !this.connector) return;
        const connector = this.connector;
        const socket = new Promise<Socket>((resolve, reject) =>
            connector(
                {
                    // undici passes IPv6 hosts without their brackets.
                    hostname: origin.hostname.replace(/^\[(.*)\]$/, '$1'),
                    host: origin.host,
                    protocol: origin.protocol,
                    port: origin.port
                },
                (error, connected) => (error ? reject(error) : resolve(connected))
            )
        );
        const spare: Spare = { origin: origin.origin, socket: socket.then(parked => this.park(spare, parked)).catch(() => null) };
        this.spare = spare;
        await socket;
    }

    async close(): Promise<void> {
        this.closed = true;
        const spare = this.spare;
        this.spare = undefined;
        (await spare?.socket)?.destroy();
        if (this.ownsDispatcher && this.dispatcher) await this.dispatcher.close();
    }

    /** One keep-alive Agent per transport, made on first use; its connections come from `connect`. */
    private agent(): Dispatcher {
        if (this.dispatcher) return this.dispatcher;
        const connector = buildConnectorFn({ timeout: Math.min(5_000, this.options.attemptTimeoutMs) });
        this.connector = connector;
        this.dispatcher = new Agent({
            connect: (options, callback) => this.connect(connector, options, callback),
            headersTimeout: this.options.attemptTimeoutMs,
            bodyTimeout: this.options.attemptTimeoutMs,
            keepAliveTimeout: KEEP_ALIVE_MS,
            connections: this.options.concurrency * 2
        });
        return this.dispatcher;
    }

    /** The connection undici asks for: the spare one when it goes where this one does and is still open, a new one otherwise. */
    private connect(connector: buildConnector.connector, options: buildConnector.Options, callback: buildConnector.Callback): void {
        const spare = this.spare;
        if (spare === undefined || spare.origin !== `${options.protocol}//${options.host}`) return connector(options, callback);
        this.spare = undefined;
        void spare.socket
            .then(socket => {
                if (socket !== null && isOpen(socket)) {
                    // Parked unreferenced (it must not keep the process alive); undici references it while it serves.
                    socket.ref();
                    return callback(null, socket);
                }
                socket?.destroy();
                connector(options, callback);
            })
            .catch((error: Error) => callback(error, null));
    }

    /** Holds a spare connection until a request takes it, or for as long as undici keeps an idle one. */
    private park(spare: Spare, socket: Socket): Socket | null {
        if (this.closed) {
            socket.destroy();
            return null;
        }
        // A request took it while it was connecting: it is that request's.
        if (this.spare !== spare) return socket;
        socket.unref();
        setTimeout(() => {
            if (this.spare !== spare) return;
            this.spare = undefined;
            socket.destroy();
        }, KEEP_ALIVE_MS).unref();
        return socket;
    }
}

/** How long an idle connection is kept, a spare one included. */
const KEEP_ALIVE_MS = 30_000;
