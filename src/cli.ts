#!/usr/bin/env node
import { writeSync } from 'node:fs';
import { StdioServerTransport } from '@modelcontextprotocol/sdk/server/stdio.js';
import { openRuntime, type Runtime } from './app.js';
import { systemClock } from './clock.js';
import { ConfigError, loadConfig, type Config } from './config.js';
import { StderrLogger, type LogFields, type Logger } from './logger.js';
import { Redactor } from './redact.js';
import { createServer } from './server.js';
import { VERSION } from './version.js';

const HELP = `crypto-intel-mcp ${VERSION}: an MCP server for crypto market intelligence (Token Metrics Data API)

Usage: crypto-intel-mcp [--help] [--version]
       crypto-intel-mcp --http [--port N] [--host ADDRESS]
       crypto-intel-mcp doctor
Without --http it speaks MCP over stdio: start it from an MCP client such as Claude Desktop or Cursor.
With --http it serves the MCP Streamable HTTP transport on /mcp (stateless), plus GET /healthz and GET /readyz,
for a team: several replicas can share one Redis (CRYPTO_INTEL_REDIS_URL).

Commands:
  doctor                         check your key(s) and the Token Metrics API: calls each endpoint the tools use
                                 once (one credit each), prints status, rows, schema drift, latency and the key
                                 fingerprint per endpoint; safe to paste into a bug report. Same environment as
                                 the server. Exit 0 healthy, 1 drift or a failing endpoint, 2 no key configured

Options:
  --http                         serve over HTTP instead of stdio
  --port N                       HTTP port (default CRYPTO_INTEL_HTTP_PORT or 3333; 0 picks a free one, logged on stderr)
  --host ADDRESS                 HTTP bind address (default CRYPTO_INTEL_HTTP_HOST or 127.0.0.1); any other
                                 than a loopback address needs access tokens
  -h, --help                     this text
  -v, --version                  the version

Environment:
  TOKEN_METRICS_API_KEY          one API key
  TOKEN_METRICS_API_KEYS         several keys, comma-separated, tried in order
  TOKEN_METRICS_API_KEY_FILE     file with one key per line, re-read when it changes
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
  CRYPTO_INTEL_REDIS_URL         redis://[user:password@]host:port[/db]: cache tier, fetch locks and upstream
                                 budget shared by replicas (default: none, everything stays in process)
HTTP only (--http):
  CRYPTO_INTEL_HTTP_PORT         port (default 3333)
  CRYPTO_INTEL_HTTP_HOST         bind address (default 127.0.0.1)
  CRYPTO_INTEL_HTTP_TOKENS       bearer tokens accepted on /mcp, comma-separated (16+ characters each)
  CRYPTO_INTEL_HTTP_TOKENS_FILE  file with one token per line (# comments allowed), read at start-up
  CRYPTO_INTEL_HTTP_ALLOWED_HOSTS  more host names accepted in Host/Origin headers, e.g. your proxy's public
                                 name; * accepts any (default: loopback names and the bind address)
  CRYPTO_INTEL_HTTP_RATE_PER_MIN requests per minute per token, per replica; 0 = no limit (default 600)
`;

/** --help and --version are not stdio mode: they print for a person and exit, so stdout is theirs. */
function printForPerson(text: string): void {
    writeSync(1, text);
}

/** How long a SIGTERM waits for requests in flight before closing them. */
const HTTP_SHUTDOWN_GRACE_MS = 10_000;

/**
 * Stops the process once, on SIGINT, SIGTERM or an uncaught exception (exit 1), after `stop` has flushed what
 * must survive; returns the same trigger for the transport's own ends (stdin closed). An unhandled rejection is
 * logged, not fatal: one failed request must not take the others down with it.
 */
function exitOnSignals(logger: Logger, message: string, stop: () => Promise<void>): (reason: string, code?: number) => Promise<void> {
    let stopping = false;
    const shutdown = async (reason: string, code = 0) => {
        if (stopping) return;
        stopping = true;
        logger.info(message, { reason });
        try {
            await stop();
        } finally {
            process.exit(code);
        }
    };
    process.on('SIGINT', () => void shutdown('SIGINT'));
    process.on('SIGTERM', () => void shutdown('SIGTERM'));
    process.on('unhandledRejection', reason => {
        logger.error('unhandled rejection', { error: reason instanceof Error ? (reason.stack ?? reason.message) : String(reason) });
    });
    process.on('uncaughtException', error => {
        logger.error('uncaught exception', { error: error.stack ?? error.message });
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

async function serveStdio(config: Config): Promise<void> {
    const redactor = new Redactor();
    const logger = new StderrLogger(config.logLevel, redactor);
    const runtime = await openRuntime(config, { clock: systemClock, logger, redactor });
    const server = createServer(runtime.deps);
    logger.addSink((level, msg, fields) => {
        if ((level === 'warn' || level === 'error') && server.isConnected()) {
            server.sendLoggingMessage({ level: level === 'warn' ? 'warning' : 'error', logger: 'crypto-intel-mcp', data: { msg, ...fields } }).catch(() => {});
        }
    });

    const shutdown = exitOnSignals(logger, 'shutting down', async () => {
        await runtime.close();
        await server.close();
    });
    process.stdin.on('end', () => void shutdown('stdin closed'));

    const transport = new StdioServerTransport();
    transport.onclose = () => void shutdown('transport closed');
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

    exitOnSignals(logger, 'shutting down: finishing requests in flight', async () => {
        await server.close(HTTP_SHUTDOWN_GRACE_MS);
        await runtime.close();
    });

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
        const code = await doctorCommand(command.config);
        // Exit once stdout has drained, so a piped report is complete.
        return void process.stdout.write('', () => process.exit(code));
    }
    if (command.config.transport === 'http') await serveHttp(command.config);
    else await serveStdio(command.config);
}

main().catch(error => {
    process.stderr.write(`crypto-intel-mcp: failed to start: ${error instanceof Error ? error.message : String(error)}\n`);
    process.exit(1);
});
