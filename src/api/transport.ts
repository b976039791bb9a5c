import type { Dispatcher } from 'undici';
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

/**
 * undici is loaded once the tool list has been answered (`warm`), or by the first upstream request, not at start-up:
 * an MCP client waits for the server's tool list before anything else, and undici's load time (~60 ms) would add
 * to that wait for nothing.
 */
let undici: Promise<typeof import('undici')> | undefined;
const loadUndici = (): Promise<typeof import('undici')> => (undici ??= import('undici'));

/** The wire to the Token Metrics API: one keep-alive Agent for every request, and each answer's body read under the cap. */
export class UpstreamTransport {
    private dispatcher: Promise<Dispatcher> | undefined;
    private readonly ownsDispatcher: boolean;

    constructor(private readonly options: TransportOptions) {
        this.ownsDispatcher = !options.dispatcher;
        if (options.dispatcher) this.dispatcher = Promise.resolve(options.dispatcher);
    }

    /** One request, inside the upstream slot the caller holds; `signal` carries the attempt's timeout and the caller's abort. */
    async send(url: URL, key: string, signal: AbortSignal): Promise<RawResponse> {
        const [{ request }, dispatcher] = await Promise.all([loadUndici(), this.agent()]);
        const response = await request(url, {
            method: 'GET',
            headers: { 'x-api-key': key, accept: 'application/json', 'user-agent': 'crypto-intel-mcp' },
            signal,
            dispatcher
        });
        const text = await readCapped(
            response.body,
            response.statusCode,
            response.headers['content-length'],
            this.options.maxBodyBytes ?? DEFAULT_MAX_BODY_BYTES
        );
        return { status: response.statusCode, headers: response.headers, text };
    }

    /** Loads undici and makes the Agent now, so that the first request does not pay for them; never rejects. */
    async warm(): Promise<void> {
        await this.agent().catch(() => undefined);
    }

    async close(): Promise<void> {
        if (this.ownsDispatcher && this.dispatcher) await (await this.dispatcher).close();
    }

    /** One keep-alive Agent per transport, made on first use. */
    private agent(): Promise<Dispatcher> {
        this.dispatcher ??= loadUndici().then(
            ({ Agent }) =>
                new Agent({
                    connectTimeout: Math.min(5_000, this.options.attemptTimeoutMs),
                    headersTimeout: this.options.attemptTimeoutMs,
                    bodyTimeout: this.options.attemptTimeoutMs,
                    keepAliveTimeout: 30_000,
                    connections: this.options.concurrency * 2
                })
        );
        return this.dispatcher;
    }
}
