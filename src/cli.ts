#!/usr/bin/env node
import { writeSync } from 'node:fs';
import { StdioServerTransport } from '@modelcontextprotocol/sdk/server/stdio.js';
import type { JSONRPCMessage } from '@modelcontextprotocol/sdk/types.js';
import { openRuntime, type Runtime } from './app.js';
import { systemClock } from './clock.js';
import { ConfigError, loadConfig, type Config } from './config.js';
import { StderrLogger, type LogFields, type Logger } from './logger.js';
import { Redactor } from './redact.js';
import { createServer, forwardLogsToClient } from './server.js';
import { VERSION } from './version.js';

const HELP = `crypto-intel-mcp ${VERSION}: an MCP server for crypto market intelligence (Token Metrics Data API)

Usage: crypto-intel-mcp [--help] [--version]
       crypto-intel-mcp --http [--port N] [--host ADDRESS]
       crypto-intel-mcp doctor
       crypto-intel-mcp keys
Without --http it speaks MCP over stdio: start it from an MCP client such as Claude Desktop or Cursor.
With --http it serves the MCP Streamable HTTP transport on /mcp (stateless), plus GET /healthz and GET /readyz,
for a team: several replicas can share one Redis (CRYPTO_INTEL_REDIS_URL).

Commands:
  doctor                         check your key(s) and the Token Metrics API: calls each endpoint the tools use
                                 once (one credit each), prints status, rows, schema drift, latency and the key
                                 fingerprint per endpoint; safe to paste into a bug report. Same environment as
                                 the server. Exit 0 healthy, 1 drift or a failing endpoint, 2 no key configured
  keys                           print each key's fingerprint, label, source, state, validity dates, credits this
                                 month and last audit event; no network, no credit. Exit 0 a key is usable, 1 none
                                 is usable now, 2 no key configured or the key file refused

Options:
  --http                         serve over HTTP instead of stdio
  --port N                       HTTP port (default CRYPTO_INTEL_HTTP_PORT or 3333; 0 picks a free one, logged on stderr)
  --host ADDRESS                 HTTP bind address (default CRYPTO_INTEL_HTTP_HOST or 127.0.0.1); any other
                                 than a loopback address needs access tokens
  -h, --help                     this text
  -v, --version                  the version

Environment:
  TOKEN_METRICS_API_KEY          one API key
  TOKEN_METRICS_API_KEYS         several keys, comma-separated, tried in order; label:key names one
  TOKEN_METRICS_API_KEY_FILE     file with one key per line (then label=, expires=, not-before=), re-read when it
                                 changes; refused when group or others can read it
  CRYPTO_INTEL_ALLOW_SHARED_KEY_FILE  1: use a key file that group or others can read (default 0: refuse it)
  CRYPTO_INTEL_AUDIT_LOG         key events file (JSON lines), or "off" (default: audit.log in the cache dir)
  TOKEN_METRICS_BASE_URL         upstream base URL (default https://api.tokenmetrics.com/v2)
  CRYPTO_INTEL_CACHE_DIR         persistent cache directory, or "off" (default: the user cache dir)
  CRYPTO_INTEL_LOG_LEVEL         error | warn | info | debug (default info; logs go to stderr)
  CRYPTO_INTEL_CACHE_TTLS        per-endpoint TTL overrides in seconds, e.g. price=30,grades=600
  CRYPTO_INTEL_STALE_MAX_AGE_S   oldest cached answer served when the upstream fails (default 86400)
  CRYPTO_INTEL_BATCH_WINDOW_MS   window for merging price requests into one call (default 5)
  CRYPTO_INTEL_CACHE_MAX_ENTRIES in-memory cache entries (default 10000)
  CRYPTO_INTEL_TIMEOUT_MS        one upstream attempt's timeout (default 10000)
  CRYPTO_INTEL_DEADLINE_MS       a tool call's deadline, all its upstream requests included (default 25000)
  CRYPTO_INTEL_MAX_RETRIES       retries for 429/5xx/network errors (default 3)
  CRYPTO_INTEL_UPSTREAM_CONCURRENCY  upstream requests in flight at once (default 4; with Redis, across all replicas)
  CRYPTO_INTEL_MAX_BODY_BYTES    largest upstream answer read, in bytes (default 8388608, 8 MiB); a larger one is an error
  CRYPTO_INTEL_MONTHLY_CREDITS   your plan's monthly credits: get_usage and a log warning say when 80% and 95%
                                 are used (default: none)
  CRYPTO_INTEL_REDIS_URL         redis://[user:password@]host:port[/db]: cache tier, fetch locks and upstream
                                 budget shared by replicas (default: none, everything stays in process)
HTTP only (--http):
  CRYPTO_INTEL_HTTP_PORT         port (default 3333)
  CRYPTO_INTEL_HTTP_HOST         bind address (default 127.0.0.1)
  CRYPTO_INTEL_HTTP_TOKENS       bearer tokens accepted on /mcp, comma-separated (16+ characters each)
  CRYPTO_INTEL_HTTP_TOKENS_FILE  file with one token per line (# comments allowed), read at start-up; refused
                                 when others can read it, unless CRYPTO_INTEL_ALLOW_SHARED_TOKENS_FILE=1
  CRYPTO_INTEL_HTTP_ALLOWED_HOSTS  more host names accepted in Host/Origin headers, e.g. your proxy's public
                                 name; * accepts any (default: loopback names and the bind address)
  CRYPTO_INTEL_HTTP_RATE_PER_MIN tool calls (each element of a JSON-RPC batch) per minute per token, per replica;
                                 0 = no limit (default 600)
  CRYPTO_INTEL_HTTP_MAX_CONCURRENT_CALLS  uncached tool calls one token may have in flight; more get "busy, retry
                                 in N s" at once (default 8; 0 = no cap)
  CRYPTO_INTEL_HTTP_AUTH_FAILURES_PER_MIN  failed bearer attempts per client address before 429 (default 10; 0 = off)
`;

/**
 * --help, --version, doctor and keys are not stdio mode: they print for a person and exit, so stdout is theirs. The
 * write is synchronous, so the text is out before the exit; a non-blocking pipe (macOS) that is full is retried.
 */
function printForPerson(text: string): void {
    let rest = Buffer.from(text);
    while (rest.length > 0) {
        try {
            rest = rest.subarray(writeSync(1, rest));
        } catch (error) {
            if ((error as NodeJS.ErrnoException).code !== 'EAGAIN') throw error;
        }
    }
}

/** How long a SIGTERM waits for requests in flight before closing them. */
const HTTP_SHUTDOWN_GRACE_MS = 10_000;
/** How long `stop` may take beyond the grace it was given (flushing the cache, closing sockets) before the process just exits. */
const STOP_MARGIN_MS = 3_000;
/** Uncaught exceptions and unhandled rejections logged at most: a failure that repeats must not flood the log (or its pipe). */
const MAX_FATAL_LOGS = 5;

/**
 * Stops the process once, on SIGINT, SIGTERM or an uncaught exception (exit 1), after `stop` has flushed what
 * must survive; returns the same trigger for the transport's own ends (stdin closed). An unhandled rejection is
 * logged, not fatal: one failed request must not take the others down with it.
 *
 * The process always ends: `stop` gets `graceMs` plus a margin, then the process exits whatever it is doing, and a
 * second SIGINT or SIGTERM exits at once. No handler re-enters itself: a log line that fails inside the
 * uncaught-exception handler (a broken stderr) is dropped, never another uncaught exception to log.
 */
function exitOnSignals(
    logger: Logger,
    message: string,
    stop: () => Promise<void>,
    graceMs: number
): (reason: string, code?: number) => Promise<void> {
    let stopping = false;
    let exitCode = 0;
    let fatalLogs = 0;
    let inFatalHandler = false;
    const quietly = (log: () => void) => {
        try {
            log();
        } catch {
            // Nowhere left to say it.
        }
    };
    const shutdown = async (reason: string, code = 0) => {
        if (stopping) return;
        stopping = true;
        exitCode = code;
        setTimeout(() => process.exit(exitCode), graceMs + STOP_MARGIN_MS);
        quietly(() => logger.info(message, { reason }));
        try {
            await stop();
        } catch (error) {
            quietly(() => logger.warn('shutdown step failed', { error: error instanceof Error ? error.message : String(error) }));
        } finally {
            process.exit(exitCode);
        }
    };
    const onSignal = (signal: NodeJS.Signals) => {
        if (stopping) process.exit(exitCode || 128 + (signal === 'SIGINT' ? 2 : 15));
        void shutdown(signal);
    };
    process.on('SIGINT', onSignal);
    process.on('SIGTERM', onSignal);
    const fatal = (what: string, detail: unknown) => {
        if (inFatalHandler || fatalLogs >= MAX_FATAL_LOGS) return;
        inFatalHandler = true;
        fatalLogs += 1;
        quietly(() => logger.error(what, { error: detail instanceof Error ? (detail.stack ?? detail.message) : String(detail) }));
        inFatalHandler = false;
    };
    process.on('unhandledRejection', reason => fatal('unhandled rejection', reason));
    process.on('uncaughtException', error => {
        fatal('uncaught exception', error);
        void shutdown('uncaught exception', 1);
    });
    return shutdown;
}

/** The start-up line (keys by fingerprint only) and, without a key, the warning that says how to set one. */
function logReady(logger: Logger, message: string, config: Config, runtime: Runtime, fields: LogFields = {}): void {
    const keys = runtime.keys.describe();
    logger.info(message, {
        version: VERSION,
        ...fields,
        keys: keys.fingerprints.join(', ') || null,
        upstream: new URL(config.baseUrl).host,
        cache: config.cacheDir ?? 'off',
        redis: runtime.redis()?.endpoint ?? 'off'
    });
    if (keys.configured === 0) logger.warn('no Token Metrics API key configured: tools will explain how to set TOKEN_METRICS_API_KEY');
}

/** Warnings and errors forwarded to the client as MCP logging notifications per second, at most; all of them still go to stderr. */
const MAX_LOG_NOTIFICATIONS_PER_S = 20;

/**
 * The ids of requests received and not yet answered, so the end of stdin can wait for their answers (a request
 * written just before EOF gets one), as the HTTP server drains its requests on SIGTERM.
 */
function requestsInFlight() {
    const ids = new Set<string | number>();
    const idle: Array<() => void> = [];
    const settle = () => {
        if (ids.size === 0) for (const resolve of idle.splice(0)) resolve();
    };
    return {
        received(message: JSONRPCMessage): void {
            if ('method' in message && 'id' in message) ids.add(message.id);
            else if ('method' in message && message.method === 'notifications/cancelled') {
                const requestId = (message.params as { requestId?: unknown } | undefined)?.requestId;
                if (typeof requestId === 'string' || typeof requestId === 'number') ids.delete(requestId);
                settle();
            }
        },
        answered(message: JSONRPCMessage): void {
            if (!('method' in message) && 'id' in message && message.id !== undefined) {
                ids.delete(message.id);
                settle();
            }
        },
        /** Resolves when every request has its answer, or after `limitMs`. */
        drained(limitMs: number): Promise<void> {
            if (ids.size === 0) return Promise.resolve();
            return new Promise(resolve => {
                const timer = setTimeout(resolve, limitMs);
                idle.push(() => {
                    clearTimeout(timer);
                    resolve();
                });
            });
        }
    };
}

/** Resolves once what was written to stdout has gone out, or after `limitMs` (a reader that stopped reading). */
function flushStdout(limitMs: number): Promise<void> {
    if (!process.stdout.writableNeedDrain) return Promise.resolve();
    return new Promise(resolve => {
        setTimeout(resolve, limitMs).unref();
        process.stdout.once('drain', () => resolve());
    });
}

async function serveStdio(config: Config): Promise<void> {
    const redactor = new Redactor();
    const logger = new StderrLogger(config.logLevel, redactor);
    const runtime = await openRuntime(config, { clock: systemClock, logger, redactor });
    const server = createServer(runtime.deps);
    let stdoutOpen = true;
    let notices = { second: 0, sent: 0 };
    // Warnings and errors (or what the client asks for with logging/setLevel), never before its `initialized`.
    forwardLogsToClient(server, logger, () => {
        if (!stdoutOpen) return false;
        const second = Math.floor(Date.now() / 1000);
        if (second !== notices.second) notices = { second, sent: 0 };
        return ++notices.sent <= MAX_LOG_NOTIFICATIONS_PER_S;
    });

    // A tool call in flight is given its whole deadline to answer after stdin ends.
    const drainMs = config.upstream.deadlineMs + 1_000;
    const shutdown = exitOnSignals(
        logger,
        'shutting down',
        async () => {
            await runtime.close();
            await server.close();
            // Answers already written reach the client before the exit.
            if (stdoutOpen) await flushStdout(1_000);
        },
        drainMs
    );
    // EPIPE on stdout: the client is gone and nobody will read an answer. Finish (the cache is flushed) and exit.
    process.stdout.on('error', (error: NodeJS.ErrnoException) => {
        stdoutOpen = false;
        void shutdown(`stdout closed (${error.code ?? error.message})`, 0);
    });

    const calls = requestsInFlight();
    const transport = new StdioServerTransport();
    let overflow = false;
    // Set before connect: the SDK chains its own handlers after these.
    transport.onmessage = message => calls.received(message);
    transport.onerror = error => {
        // The SDK's ReadBuffer refuses a line over 10 MiB and closes the transport; without this, the process would exit 0 with no word.
        if (/ReadBuffer exceeded/i.test(error.message)) {
            overflow = true;
            logger.error('a message on stdin is larger than the MCP SDK reads as one line (10 MiB): closing the connection', {
                error: error.message
            });
        }
    };
    const send = transport.send.bind(transport);
    transport.send = (message: JSONRPCMessage) => {
        calls.answered(message);
        return send(message);
    };
    transport.onclose = () => void (overflow ? shutdown('stdin message too large', 1) : shutdown('transport closed'));
    process.stdin.on('end', () => void calls.drained(drainMs).then(() => shutdown('stdin closed')));
    await server.connect(transport);
    logReady(logger, 'crypto-intel-mcp ready on stdio', config, runtime);
}

async function serveHttp(config: Config): Promise<void> {
    const redactor = new Redactor();
    // Tokens are secrets like keys: if one ever reaches a log line, it leaves as a fingerprint.
    for (const token of config.http.tokens) redactor.register(token);
    const logger = new StderrLogger(config.logLevel, redactor);
    const runtime = await openRuntime(config, { clock: systemClock, logger, redactor });
    const { startHttpServer, MCP_PATH } = await import('./http/serve.js');
    const server = await startHttpServer({ http: config.http, baseUrl: config.baseUrl, runtime, clock: systemClock, logger });

    exitOnSignals(
        logger,
        'shutting down: finishing requests in flight',
        async () => {
            await server.close(HTTP_SHUTDOWN_GRACE_MS);
            await runtime.close();
        },
        HTTP_SHUTDOWN_GRACE_MS
    );

    const host = config.http.host.includes(':') && !config.http.host.startsWith('[') ? `[${config.http.host}]` : config.http.host;
    logReady(logger, 'crypto-intel-mcp listening on HTTP', config, runtime, {
        url: `http://${host}:${server.port}${MCP_PATH}`,
        port: server.port,
        auth: config.http.tokens.length > 0 ? `bearer (${config.http.tokens.length} token(s))` : 'none (loopback only)'
    });
}

async function main(): Promise<void> {
    let command;
    try {
        command = loadConfig(process.env, process.argv.slice(2));
    } catch (error) {
        if (error instanceof ConfigError) {
            process.stderr.write(`crypto-intel-mcp: ${error.message}\n`);
            process.exit(2);
        }
        throw error;
    }
    if (command.kind === 'help') return printForPerson(HELP);
    if (command.kind === 'version') return printForPerson(`${VERSION}\n`);
    if (command.kind === 'doctor') {
        // Loaded only for doctor: the stdio server's start-up does not pay for it.
        const { doctorCommand } = await import('./doctor.js');
        // printForPerson writes synchronously: the report is out when the process exits.
        process.exit(await doctorCommand(command.config, { write: printForPerson }));
    }
    if (command.kind === 'keys') {
        const { keysCommand } = await import('./keys/command.js');
        process.exit(keysCommand(command.config, { write: printForPerson }));
    }
    if (command.config.transport === 'http') await serveHttp(command.config);
    else await serveStdio(command.config);
}

main().catch(error => {
    process.stderr.write(`crypto-intel-mcp: failed to start: ${error instanceof Error ? error.message : String(error)}\n`);
    process.exit(1);
});
