import { createServer as createHttpServer, type IncomingMessage, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { StreamableHTTPServerTransport } from '@modelcontextprotocol/sdk/server/streamableHttp.js';
import type { Runtime } from '../app.js';
import type { Clock } from '../clock.js';
import { withCaller } from '../api/call-scope.js';
import { isLoopbackHost, type HttpConfig } from '../config.js';
import type { Logger } from '../logger.js';
import { createServer } from '../server.js';
import { VERSION } from '../version.js';
import { bearerToken, TokenVerifier } from './auth.js';
import { readBody } from './body.js';
import { Backlog } from './backlog.js';
import { busyReplies, CallerGates } from './fairness.js';
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
    const text = JSON.stringify(body);
    // With its length the reply goes out as one write; without, writeHead commits to chunked encoding (several buffers
    // and a last chunk the client must parse too), a cost a flood's every refusal pays on both sides.
    res.writeHead(status, {
        'content-type': 'application/json',
        'cache-control': 'no-store',
        'content-length': String(Buffer.byteLength(text)),
        ...headers
    });
    res.end(text);
}

/** Refusals on /mcp use the JSON-RPC error shape the SDK's own transport answers with, so clients show the message. */
function refuse(res: ServerResponse, status: number, message: string, headers: Record<string, string> = {}): void {
    sendJson(res, status, { jsonrpc: '2.0', error: { code: status === 400 ? -32700 : -32000, message }, id: null }, headers);
}

/**
 * The client's address: the peer's, or, when the peer is on this machine (a reverse proxy such as the README's Caddy),
 * the last address in the `X-Forwarded-For` it added. Only a loopback peer is believed: anyone else could write
 * any address there.
 */
export function clientAddress(req: IncomingMessage): string {
    const peer = req.socket.remoteAddress ?? 'unknown';
    const forwarded = req.headers['x-forwarded-for'];
    if (typeof forwarded !== 'string' || !isLoopbackHost(peer.replace(/^::ffff:/i, ''))) return peer;
    const last = forwarded
        .split(',')
        .map(part => part.trim())
        .filter(part => part !== '')
        .at(-1);
    return last !== undefined && /^[0-9A-Fa-f:.]{2,45}$/.test(last) ? last : peer;
}

/** Tool calls in a JSON-RPC message or batch: what the per-token rate counts. */
export function countToolCalls(message: unknown): number {
    const messages = Array.isArray(message) ? (message as unknown[]) : [message];
    return messages.filter(item => typeof item === 'object' && item !== null && (item as { method?: unknown }).method === 'tools/call')
        .length;
}

/**
 * The Streamable HTTP transport, stateless: every POST to `/mcp` gets its own McpServer and transport, built
 * from the runtime every request shares (keys, upstream client, cache), and both are closed when the response
 * closes. So any replica can answer any request, and nothing per client outlives its request. Replies are JSON
 * rather than SSE streams: the tools send no progress, and JSON passes every reverse proxy unbuffered.
 * Access control runs before the body is read: Host/Origin (403), failed bearer attempts per address (429), bearer
 * token (401), rate (429), size (413). The rate counts tool calls, so it is spent once the body is parsed: a batch of
 * 100 `tools/call` costs 100 (any other request costs 1). Inside, each caller's uncached calls are capped (`busy`), and a
 * caller at its cap waits its turn (backlog.ts) before its body is even read, behind everyone else's work.
 * Why node:http and not the SDK's `createMcpExpressApp` with express-rate-limit: express-rate-limit counts requests
 * and decides before the body is read, so it cannot charge a batch per tool call; the SDK's host validation has no
 * Origin check and no `*`; and Express's routing and body parser cost a flood's every refusal: on loopback with 32
 * clients a bare handler answered 14,000-15,000 requests/s where Express with hostHeaderValidation and express.json
 * answered 5,500-6,000 (2026-11-25, this 2-core machine), and one token's flood is what another token's latency pays.
 */
export async function startHttpServer(options: HttpServerOptions): Promise<RunningHttpServer> {
    const { http, runtime, clock, logger } = options;
    const tokens = new TokenVerifier(http.tokens);
    const guard = new HostGuard(http);
    const limiter = new RateLimiter(http.ratePerMin, clock);
    const authFailures = new RateLimiter(http.authFailuresPerMin, clock);
    const gates = new CallerGates(http.maxConcurrentCalls, logger);
    const backlog = new Backlog();
    // Only reachable with CRYPTO_INTEL_ALLOW_SHARED_TOKENS_FILE=1 (config refuses such a file otherwise): say so once.
    if (http.tokensFileMode !== null && (http.tokensFileMode & 0o077) !== 0 && process.platform !== 'win32') {
        logger.warn('HTTP tokens file is readable by other users; using it because CRYPTO_INTEL_ALLOW_SHARED_TOKENS_FILE=1', {
            variable: 'CRYPTO_INTEL_HTTP_TOKENS_FILE',
            mode: http.tokensFileMode.toString(8)
        });
    }
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
        // Looked up only when needed: the peer's address is a system call per connection, and a flood's every request is
        // a new connection.
        let address: string | undefined;
        const addressOf = (): string => (address ??= clientAddress(req));
        let caller: string;
        if (tokens.required) {
            // Checked before the token: while an address is over its failures, no guess from it is even looked at.
            const locked = authFailures.tracked > 0 ? authFailures.check(addressOf()) : { ok: true as const };
            if (!locked.ok) {
                logger.debug('HTTP request refused', { status: 429, reason: 'too many failed bearer attempts', address: addressOf() });
                return refuse(res, 429, `Too many failed authentication attempts from this address: try again in ${locked.retryAfterS} s`, {
                    'retry-after': String(locked.retryAfterS)
                });
            }
            const index = tokens.match(bearerToken(req.headers.authorization));
            if (index < 0) {
                authFailures.take(addressOf());
                // Never the presented token, nor any part of it: a near miss is most of a secret.
                logger.warn('HTTP request refused: missing or wrong bearer token', {
                    status: 401,
                    reason:
                        req.headers.authorization === undefined
                            ? 'no token'
                            : bearerToken(req.headers.authorization) === null
                              ? 'not a bearer token'
                              : 'wrong token',
                    address: addressOf()
                });
                if (!authFailures.check(addressOf()).ok) {
                    logger.warn('failed bearer attempts over the limit: this address gets 429 until it slows down', {
                        address: addressOf(),
                        limitPerMin: http.authFailuresPerMin
                    });
                }
                return refuse(
                    res,
                    401,
                    'Unauthorized: send Authorization: Bearer <token> with one of the tokens in CRYPTO_INTEL_HTTP_TOKENS',
                    {
                        'www-authenticate': 'Bearer realm="crypto-intel-mcp"'
                    }
                );
            }
            caller = `token#${index + 1}`;
        } else {
            caller = `address:${addressOf()}`;
        }
        const tooMany = (retryAfterS: number, message: string): void => {
            logger.debug('HTTP request refused', { status: 429, caller: caller.startsWith('token#') ? caller : 'address', retryAfterS });
            refuse(res, 429, message, { 'retry-after': String(retryAfterS) });
        };
        // Nothing is read from a caller already out of allowance; refusals below still cost one unit each.
        const allowance = limiter.check(caller);
        if (!allowance.ok) return tooMany(allowance.retryAfterS, `Too many requests: try again in ${allowance.retryAfterS} s`);
        if (req.method !== 'POST') {
            limiter.take(caller);
            // Stateless: no session to resume, no server-initiated stream to open (GET) or end (DELETE).
            return refuse(res, 405, 'Method not allowed: this server is stateless; send JSON-RPC messages with POST', { allow: 'POST' });
        }
        // A caller at its cap goes to the back: its request is read, and most likely refused, on a later turn of the
        // event loop, so what everyone else has ready (requests, upstream answers) is handled before a flood's refusals.
        if (gates.atDoor(caller)) {
            await backlog.turn();
            // Gone while it waited: nothing to answer, nothing to count.
            if (req.destroyed) return;
        }
        const body = await readBody(req, MAX_BODY_BYTES);
        if (!body.ok) {
            limiter.take(caller);
            return refuse(res, 413, `Request body over ${MAX_BODY_BYTES} bytes`, { connection: 'close' });
        }
        let message: unknown;
        try {
            message = JSON.parse(body.text);
        } catch {
            limiter.take(caller);
            return refuse(res, 400, 'Parse error: the body is not JSON');
        }
        const calls = countToolCalls(message);
        if (limiter.enabled && calls > limiter.burst) {
            limiter.take(caller);
            return refuse(
                res,
                413,
                `A batch of ${calls} tool calls is over the limit of ${limiter.burst} per minute (CRYPTO_INTEL_HTTP_RATE_PER_MIN): send at most ${limiter.burst} per request`
            );
        }
        const rate = limiter.take(caller, Math.max(1, calls));
        if (!rate.ok) {
            return tooMany(
                rate.retryAfterS,
                calls > 1
                    ? `Too many tool calls: this batch of ${calls} needs more than is left of the per-minute limit; try again in ${rate.retryAfterS} s`
                    : `Too many requests: try again in ${rate.retryAfterS} s`
            );
        }

        // At the door: while a caller has its cap of uncached calls under way, or a few calls per slot inside already,
        // its further tool calls get the limiter's "busy" answer before any MCP server is built (a tenth of the work), so one token's flood costs the replica,
        // and everyone else's latency, as little as possible. The retry finds a free slot, or the answer cached.
        const leave = gates.letIn(caller, calls);
        if (leave === undefined) {
            const replies = busyReplies(message, 1);
            if (replies !== null) {
                gates.noteRefused(caller);
                return sendJson(res, 200, replies);
            }
        }

        const server = createServer(runtime.deps);
        const transport = new StreamableHTTPServerTransport({ sessionIdGenerator: undefined, enableJsonResponse: true });
        res.on('close', () => {
            leave?.();
            void transport.close();
            void server.close();
        });
        // The caller rides along to the upstream limiter: turns are taken per caller, and its uncached calls are capped.
        await withCaller(gates.context(caller), async () => {
            await server.connect(transport);
            await transport.handleRequest(req, res, message);
        });
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
