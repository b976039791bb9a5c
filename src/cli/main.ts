// First: it sets how zod parses, which every schema the other modules make reads when it is made.
import './zod-jitless.js';
import { writeSync } from 'node:fs';
import { StdioServerTransport } from '@modelcontextprotocol/sdk/server/stdio.js';
import { STDIO_DEFAULT_MAX_BUFFER_SIZE } from '@modelcontextprotocol/sdk/shared/stdio.js';
import type { JSONRPCMessage } from '@modelcontextprotocol/sdk/types.js';
import { openRuntime, type Runtime } from '../app.js';
import { systemClock } from '../clock.js';
import { ConfigError, loadConfig, type Config } from '../config.js';
import { StderrLogger, type LogFields, type Logger } from '../logger.js';
import { Redactor } from '../redact.js';
import { createServer, forwardLogsToClient } from '../server.js';
import { VERSION } from '../version.js';
import { HELP } from './help.js';
import { lineGuard } from './line-guard.js';
import { requestsInFlight } from './requests-in-flight.js';
import { exitOnSignals } from './shutdown.js';

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

/** The start-up line (keys by fingerprint only) and, without a key, the warning that says how to set one. */
function logReady(logger: Logger, message: string, config: Config, runtime: Runtime, hooks: Hooks, fields: LogFields = {}): void {
    const keys = runtime.keys.describe();
    logger.info(message, {
        version: VERSION,
        ...fields,
        codeCache: hooks.codeCache ?? 'unbundled',
        keys: keys.fingerprints.join(', ') || null,
        upstream: new URL(config.baseUrl).host,
        cache: config.cacheDir ?? 'off',
        redis: runtime.redis()?.endpoint ?? 'off'
    });
    if (keys.configured === 0) logger.warn('no Token Metrics API key configured: tools will explain how to set TOKEN_METRICS_API_KEY');
}

/** Warnings and errors forwarded to the client as MCP logging notifications per second, at most; all of them still go to stderr. */
const MAX_LOG_NOTIFICATIONS_PER_S = 20;

/** Resolves once what was written to stdout has gone out, or after `limitMs` (a reader that stopped reading). */
function flushStdout(limitMs: number): Promise<void> {
    if (!process.stdout.writableNeedDrain) return Promise.resolve();
    return new Promise(resolve => {
        setTimeout(resolve, limitMs).unref();
        process.stdout.once('drain', () => resolve());
    });
}

async function serveStdio(config: Config, hooks: Hooks): Promise<void> {
    const redactor = new Redactor();
    const logger = new StderrLogger(config.logLevel, redactor);
    const runtime = await openRuntime(config, { clock: systemClock, logger, redactor, answered: hooks.answered });
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
    const stdoutClosed = (error: NodeJS.ErrnoException) => {
        stdoutOpen = false;
        void shutdown(`stdout closed (${error.code ?? error.message})`, 0);
    };
    process.stdout.on('error', stdoutClosed);

    const calls = requestsInFlight();
    let overflow = false;
    // A line the SDK would refuse ends the connection here, with a word why (the SDK's own refusal would exit 0 without one).
    const input = lineGuard(process.stdin, STDIO_DEFAULT_MAX_BUFFER_SIZE, () => {
        overflow = true;
        logger.error('a message on stdin is larger than the MCP SDK reads as one line (10 MiB): closing the connection', {
            limitBytes: STDIO_DEFAULT_MAX_BUFFER_SIZE
        });
        void shutdown('stdin message too large', 1);
    });
    const transport = new StdioServerTransport(input);
    // Set before connect: the SDK chains its own handlers after these.
    transport.onmessage = message => calls.received(message);
    const send = transport.send.bind(transport);
    transport.send = (message: JSONRPCMessage) => {
        calls.answered(message);
        return send(message);
    };
    transport.onclose = () => void (overflow ? shutdown('stdin message too large', 1) : shutdown('transport closed'));
    // The end of what the server reads: every request before it has been received, and is waited for.
    input.on('end', () => void calls.drained(drainMs).then(() => shutdown('stdin closed')));
    // A failed read ends the input as surely, but emits no 'end'; unheard, the error would end the process at once.
    const stdinFailed = (error: NodeJS.ErrnoException) =>
        void calls.drained(drainMs).then(() => shutdown(`stdin failed (${error.code ?? error.message})`));
    process.stdin.on('error', stdinFailed);
    await server.connect(transport);
    // The upstream connection opens while the client shakes hands: a client that calls a tool the moment it has the
    // list finds it ready (first call ~7 ms sooner, the list no later). The rest waits for the list (server.ts).
    void runtime.deps.warmUp?.('connection');
    hooks.serving?.();
    logReady(logger, 'crypto-intel-mcp ready on stdio', config, runtime, hooks);
}

async function serveHttp(config: Config, hooks: Hooks): Promise<void> {
    const redactor = new Redactor();
    // Tokens are secrets like keys: if one ever reaches a log line, it leaves as a fingerprint.
    for (const token of config.http.tokens) redactor.register(token);
    const logger = new StderrLogger(config.logLevel, redactor);
    const runtime = await openRuntime(config, { clock: systemClock, logger, redactor, answered: hooks.answered });
    const { startHttpServer, MCP_PATH } = await import('../http/serve.js');
    const server = await startHttpServer({ http: config.http, baseUrl: config.baseUrl, runtime, clock: systemClock, logger });
    // No handshake here to wait for, nor one to slow down: a stateless client's first request is a tool call, which
    // finds the upstream connection open, the HTTP parser ready and the cache read (on stdio these wait for the client).
    void runtime.deps.warmUp?.();
    void runtime.market.restore();

    exitOnSignals(
        logger,
        'shutting down: finishing requests in flight',
        async () => {
            await server.close(HTTP_SHUTDOWN_GRACE_MS);
            await runtime.close();
        },
        HTTP_SHUTDOWN_GRACE_MS
    );
    hooks.serving?.();

    const host = config.http.host.includes(':') && !config.http.host.startsWith('[') ? `[${config.http.host}]` : config.http.host;
    logReady(logger, 'crypto-intel-mcp listening on HTTP', config, runtime, hooks, {
        url: `http://${host}:${server.port}${MCP_PATH}`,
        port: server.port,
        auth: config.http.tokens.length > 0 ? `bearer (${config.http.tokens.length} token(s))` : 'none (loopback only)'
    });
}

/** What the entry point (cli/bundle.ts) says and asks to be told. */
export interface Hooks {
    /** Whether the bundle started from V8's code cache; absent when the modules were imported one by one (no bundle). */
    codeCache?: 'used' | 'none' | 'rejected';
    /** Called once this process is a server: not for --help, doctor or keys, whose runs are no model for a cache. */
    serving?(): void;
    /** Called each time a tool call has its answer. */
    answered?: () => void;
}

/** Runs the command line. */
export async function main(hooks: Hooks = {}): Promise<void> {
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
        const { doctorCommand } = await import('../doctor.js');
        // printForPerson writes synchronously: the report is out when the process exits.
        process.exit(await doctorCommand(command.config, { write: printForPerson }));
    }
    if (command.kind === 'keys') {
        const { keysCommand } = await import('../keys/command.js');
        process.exit(keysCommand(command.config, { write: printForPerson }));
    }
    if (command.config.transport === 'http') await serveHttp(command.config, hooks);
    else await serveStdio(command.config, hooks);
}
