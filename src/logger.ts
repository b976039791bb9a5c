import type { Redactor } from './redact.js';

export const LOG_LEVELS = ['error', 'warn', 'info', 'debug'] as const;
export type LogLevel = (typeof LOG_LEVELS)[number];

export type LogFields = Record<string, string | number | boolean | null | undefined>;

export interface Logger {
    error(msg: string, fields?: LogFields): void;
    warn(msg: string, fields?: LogFields): void;
    info(msg: string, fields?: LogFields): void;
    debug(msg: string, fields?: LogFields): void;
}

/** Where a formatted line goes besides stderr, e.g. MCP logging notifications. */
export type LogSink = (level: LogLevel, msg: string, fields: LogFields) => void;

/** Lines waiting in a slow stderr pipe past this many bytes are dropped: a log must never grow memory without bound. */
const MAX_PENDING_STDERR_BYTES = 1024 * 1024;

interface StreamState {
    broken: boolean;
    dropped: number;
}
const streams = new WeakMap<NodeJS.WritableStream, StreamState>();

/**
 * A line writer for stderr that survives its pipe. An `error` event (EPIPE: the reader is gone, e.g.
 * `2> >(head -c 1)`) would otherwise be an uncaught exception, whose handler logs, which writes, which fails again: a
 * busy loop. Here the first error stops writing to that stream for good and the process keeps serving; a reader that
 * is merely slow gets lines dropped past 1 MiB waiting, not an ever-growing buffer.
 */
export function stderrWriter(
    stream: NodeJS.WritableStream & { writableLength?: number; destroyed?: boolean } = process.stderr
): (line: string) => void {
    let state = streams.get(stream);
    if (!state) {
        const created: StreamState = { broken: false, dropped: 0 };
        state = created;
        streams.set(stream, created);
        stream.on('error', () => {
            created.broken = true;
        });
    }
    const current = state;
    return line => {
        if (current.broken || stream.destroyed === true) return;
        if ((stream.writableLength ?? 0) > MAX_PENDING_STDERR_BYTES) {
            current.dropped += 1;
            return;
        }
        try {
            stream.write(line, error => {
                if (error) current.broken = true;
            });
        } catch {
            current.broken = true;
        }
    };
}

/**
 * Structured one-line JSON logs on stderr: stdout carries JSON-RPC in stdio mode, so nothing else may
 * write there. Every line is scrubbed of registered secrets before it leaves.
 */
export class StderrLogger implements Logger {
    private readonly sinks: LogSink[] = [];

    constructor(
        private readonly level: LogLevel,
        private readonly redactor: Redactor,
        private readonly write: (line: string) => void = stderrWriter()
    ) {}

    /** Set while a line is being written, so a sink or writer that logs cannot recurse. */
    private writing = false;

    addSink(sink: LogSink): void {
        this.sinks.push(sink);
    }

    error(msg: string, fields?: LogFields): void {
        this.log('error', msg, fields);
    }
    warn(msg: string, fields?: LogFields): void {
        this.log('warn', msg, fields);
    }
    info(msg: string, fields?: LogFields): void {
        this.log('info', msg, fields);
    }
    debug(msg: string, fields?: LogFields): void {
        this.log('debug', msg, fields);
    }

    private log(level: LogLevel, msg: string, fields: LogFields = {}): void {
        if (LOG_LEVELS.indexOf(level) > LOG_LEVELS.indexOf(this.level)) return;
        // A line logged from inside a write or a sink (a failing transport that logs its failure) is dropped, not a loop.
        if (this.writing) return;
        this.writing = true;
        try {
            const line = this.redactor.scrub(JSON.stringify({ time: new Date().toISOString(), level, msg, ...fields }));
            try {
                this.write(`${line}\n`);
            } catch {
                // A log that cannot be written is lost; the caller that logged carries on.
            }
            for (const sink of this.sinks) {
                try {
                    sink(level, this.redactor.scrub(msg), JSON.parse(line) as LogFields);
                } catch {
                    // A broken sink (e.g. a closed transport) must not break the caller that logged.
                }
            }
        } finally {
            this.writing = false;
        }
    }
}

export const silentLogger: Logger = { error() {}, warn() {}, info() {}, debug() {} };
