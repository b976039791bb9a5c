import type { Logger } from '../logger.js';

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
export function exitOnSignals(
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
