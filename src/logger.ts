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

/**
 * Structured one-line JSON logs on stderr: stdout carries JSON-RPC in stdio mode, so nothing else may
 * write there. Every line is scrubbed of registered secrets before it leaves.
 */
export class StderrLogger implements Logger {
    private readonly sinks: LogSink[] = [];

    constructor(
        private readonly level: LogLevel,
        private readonly redactor: Redactor,
        private readonly write: (line: string) => void = line => process.stderr.write(line)
    ) {}

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
        const line = this.redactor.scrub(JSON.stringify({ time: new Date().toISOString(), level, msg, ...fields }));
        this.write(`${line}\n`);
        for (const sink of this.sinks) {
            try {
                sink(level, this.redactor.scrub(msg), JSON.parse(line) as LogFields);
            } catch {
                // A broken sink (e.g. a closed transport) must not break the caller that logged.
            }
        }
    }
}

export const silentLogger: Logger = { error() {}, warn() {}, info() {}, debug() {} };
