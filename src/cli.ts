#!/usr/bin/env node
import { writeSync } from 'node:fs';
import { StdioServerTransport } from '@modelcontextprotocol/sdk/server/stdio.js';
import { createRuntime } from './app.js';
import { systemClock } from './clock.js';
import { ConfigError, loadConfig, type Config } from './config.js';
import { StderrLogger } from './logger.js';
import { Redactor } from './redact.js';
import { createServer } from './server.js';
import { VERSION } from './version.js';

const HELP = `crypto-intel-mcp ${VERSION}: an MCP server for crypto market intelligence (Token Metrics Data API)

Usage: crypto-intel-mcp [--help] [--version]
Speaks MCP over stdio; start it from an MCP client such as Claude Desktop or Cursor.

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
  CRYPTO_INTEL_DEADLINE_MS       one call's deadline, retries included (default 25000)
  CRYPTO_INTEL_MAX_RETRIES       retries for 429/5xx/network errors (default 3)
  CRYPTO_INTEL_UPSTREAM_CONCURRENCY  upstream requests in flight at once (default 4)
`;

/** --help and --version are not stdio mode: they print for a person and exit, so stdout is theirs. */
function printForPerson(text: string): void {
    writeSync(1, text);
}

async function serveStdio(config: Config): Promise<void> {
    const redactor = new Redactor();
    const logger = new StderrLogger(config.logLevel, redactor);
    const runtime = createRuntime(config, { clock: systemClock, logger, redactor });
    const server = createServer(runtime.deps);
    logger.addSink((level, msg, fields) => {
        if ((level === 'warn' || level === 'error') && server.isConnected()) {
            server.sendLoggingMessage({ level: level === 'warn' ? 'warning' : 'error', logger: 'crypto-intel-mcp', data: { msg, ...fields } }).catch(() => {});
        }
    });

    let stopping = false;
    const shutdown = async (reason: string, code = 0) => {
        if (stopping) return;
        stopping = true;
        logger.info('shutting down', { reason });
        try {
            await runtime.close();
            await server.close();
        } finally {
            process.exit(code);
        }
    };
    process.on('SIGINT', () => void shutdown('SIGINT'));
    process.on('SIGTERM', () => void shutdown('SIGTERM'));
    process.stdin.on('end', () => void shutdown('stdin closed'));
    process.on('unhandledRejection', reason => {
        logger.error('unhandled rejection', { error: reason instanceof Error ? (reason.stack ?? reason.message) : String(reason) });
    });
    process.on('uncaughtException', error => {
        logger.error('uncaught exception', { error: error.stack ?? error.message });
        void shutdown('uncaught exception', 1);
    });

    const transport = new StdioServerTransport();
    transport.onclose = () => void shutdown('transport closed');
    await server.connect(transport);
    const keys = runtime.keys.describe();
    logger.info('crypto-intel-mcp ready on stdio', {
        version: VERSION,
        keys: keys.fingerprints.join(', ') || null,
        upstream: new URL(config.baseUrl).host,
        cache: config.cacheDir ?? 'off'
    });
    if (keys.configured === 0) {
        logger.warn('no Token Metrics API key configured: tools will explain how to set TOKEN_METRICS_API_KEY');
    }
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
    await serveStdio(command.config);
}

main().catch(error => {
    process.stderr.write(`crypto-intel-mcp: failed to start: ${error instanceof Error ? error.message : String(error)}\n`);
    process.exit(1);
});
