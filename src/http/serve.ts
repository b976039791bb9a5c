import { createServer as createHttpServer, type IncomingMessage, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { StreamableHTTPServerTransport } from '@modelcontextprotocol/sdk/server/streamableHttp.js';
import type { Runtime } from '../app.js';
import type { Clock } from '../clock.js';
import type { HttpConfig } from '../config.js';
import type { Logger } from '../logger.js';
import { createServer } from '../server.js';
import { VERSION } from '../version.js';
import { bearerToken, TokenVerifier } from './auth.js';
import { readBody } from './body.js';
import { HostGuard } from './origin.js';
import { RateLimiter } from './rate-limit.js';
import { ReadinessProbe } from './readiness.js';

/** The one MCP endpoint. */
export const MCP_PATH = '/mcp';
/** Tool arguments are a few hundred bytes; a megabyte is generous and still cheap to refuse. */
export const MAX_BODY_BYTES = 1024 * 1024;

export interface HttpServerOptions {
    http: HttpConfig;
    /** The upstream base URL, dialled by `/readyz`. */
    baseUrl: string;
    runtime: Runtime;
    clock: Clock;
    logger: Logger;
}

export interface RunningHttpServer {
    /** The bound port (the real one when 0 was asked for). */
    port: number;
    /** Stops accepting connections, lets requests in flight finish for up to `graceMs`, then closes what is left. */
    close(graceMs: number): Promise<void>;
}

function sendJson(res: ServerResponse, status: number, body: unknown, headers: Record<string, string> = {}): void {
    if (res.headersSent) return void res.end();
    res.writeHead(status, { 'content-type': 'application/json', 'cache-control': 'no-store', ...headers });
    res.end(JSON.stringify(body));
}

/** Refusals on /mcp use the JSON-RPC error shape the SDK's own transport answers with, so clients show the message. */
function refuse(res: ServerResponse, status: number, message: string, headers: Record<string, string> = {}): void {
    sendJson(res, status, { jsonrpc: '2.0', error: { code: status === 400 ? -32700 : -32000, message }, id: null }, headers);
}

/**
 * The Streamable HTTP transport, stateless: every POST to `/mcp` gets its own McpServer and transport, built
 * from the runtime every request shares (keys, upstream client, cache), and both are closed when the response
 * closes. So any replica can answer any request, and nothing per client outlives its request. Replies are JSON
 * rather than SSE streams: the tools send no progress, and JSON passes every reverse proxy unbuffered.
 * Access control runs before the body is read: Host/Origin (403), bearer token (401), rate (429), size (413).
 */
export async function startHttpServer(options: HttpServerOptions): Promise<RunningHttpServer> {
    const { http, runtime, clock, logger } = options;
    const tokens = new TokenVerifier(http.tokens);
    const guard = new HostGuard(http);
    const limiter = new RateLimiter(http.ratePerMin, clock);
    const readiness = new ReadinessProbe(options.baseUrl, runtime);
    let stopping = false;
    let inFlight = 0;
    const drained: Array<() => void> = [];

    const serveMcp = async (req: IncomingMessage, res: ServerResponse): Promise<void> => {
        const refusal = guard.check(req.headers.host, req.headers.origin);
        if (refusal !== null) {
            logger.debug('HTTP request refused', { status: 403, reason: refusal });
            return refuse(res, 403, `Forbidden: ${refusal}`);
        }
        const caller = tokens.required ? tokens.match(bearerToken(req.headers.authorization)) : -1;
        if (tokens.required && caller < 0) {
            logger.debug('HTTP request refused', {
                status: 401,
                reason: req.headers.authorization === undefined ? 'no token' : 'wrong token'
            });
            return refuse(res, 401, 'Unauthorized: send Authorization: Bearer <token> with one of the tokens in CRYPTO_INTEL_HTTP_TOKENS', {
                'www-authenticate': 'Bearer realm="crypto-intel-mcp"'
            });
        }
        const rate = limiter.take(caller >= 0 ? `token#${caller + 1}` : `address:${req.socket.remoteAddress ?? 'unknown'}`);
        if (!rate.ok) {
            logger.debug('HTTP request refused', {
                status: 429,
                caller: caller >= 0 ? `token#${caller + 1}` : 'address',
                retryAfterS: rate.retryAfterS
            });
            return refuse(res, 429, `Too many requests: try again in ${rate.retryAfterS} s`, { 'retry-after': String(rate.retryAfterS) });
        }
        if (req.method !== 'POST') {
            // Stateless: no session to resume, no server-initiated stream to open (GET) or end (DELETE).
            return refuse(res, 405, 'Method not allowed: this server is stateless; send JSON-RPC messages with POST', { allow: 'POST' });
        }
        const body = await readBody(req, MAX_BODY_BYTES);
        if (!body.ok) return refuse(res, 413, `Request body over ${MAX_BODY_BYTES} bytes`, { connection: 'close' });
        let message: unknown;
        try {
            message = JSON.parse(body.text);
        } catch {
            return refuse(res, 400, 'Parse error: the body is not JSON');
        }

        const server = createServer(runtime.deps);
        const transport = new StreamableHTTPServerTransport({ sessionIdGenerator: undefined, enableJsonResponse: true });
        res.on('close', () => {
            void transport.close();
            void server.close();
        });
        await server.connect(transport);
        await transport.handleRequest(req, res, message);
    };

    const handle = async (req: IncomingMessage, res: ServerResponse): Promise<void> => {
        const path = (req.url ?? '/').split('?', 1)[0];
        if (stopping) res.setHeader('connection', 'close');
        if (path === '/healthz') return sendJson(res, 200, { status: 'ok', version: VERSION });
        if (path === '/readyz') {
            const state = await readiness.check(stopping);
            return sendJson(res, state.status === 'unavailable' || state.status === 'stopping' ? 503 : 200, { ...state, version: VERSION });
        }
        if (path !== MCP_PATH) return sendJson(res, 404, { error: `not found: the MCP endpoint is ${MCP_PATH}` });
        if (stopping) return refuse(res, 503, 'Server shutting down: retry on another replica', { 'retry-after': '1' });
        await serveMcp(req, res);
    };

    const server = createHttpServer((req, res) => {
        inFlight++;
        res.on('close', () => {
            if (--inFlight === 0) for (const resolve of drained.splice(0)) resolve();
        });
        handle(req, res).catch((error: unknown) => {
            // The stack only: an error object can hold request headers, and with them a token.
            logger.error('HTTP request failed', { error: error instanceof Error ? (error.stack ?? error.name) : 'unknown' });
            if (!res.headersSent) refuse(res, 500, 'Internal server error');
            else res.destroy();
        });
    });
    // Slow-loris bounds: a request must arrive whole within these.
    server.headersTimeout = 10_000;
    server.requestTimeout = 60_000;
    // Longer than a proxy's or load balancer's idle timeout (60 s for most): the proxy, not this server, closes an
    // idle pooled connection, so it never sends a request down a socket this side is closing (a spurious 502).
    server.keepAliveTimeout = 65_000;

    const host = http.host.replace(/^\[(.*)\]$/, '$1');
    await new Promise<void>((resolve, reject) => {
        server.once('error', reject);
        server.listen(http.port, host, () => {
            server.off('error', reject);
            resolve();
        });
    });
    const port = (server.address() as AddressInfo).port;

    return {
        port,
        close: async graceMs => {
            stopping = true;
            const closed = new Promise<void>(resolve => server.close(() => resolve()));
            server.closeIdleConnections();
            if (inFlight > 0) {
                let timer: NodeJS.Timeout | undefined;
                await Promise.race([
                    new Promise<void>(resolve => drained.push(resolve)),
                    new Promise<void>(resolve => (timer = setTimeout(resolve, graceMs)))
                ]);
                clearTimeout(timer);
                if (inFlight > 0) logger.warn('shutdown grace period over: closing requests still in flight', { requests: inFlight });
            }
            server.closeAllConnections();
            await closed;
        }
    };
}
