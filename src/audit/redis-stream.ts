import { hostname } from 'node:os';
import type { Redis } from 'ioredis';
import type { AuditEvent, AuditSink } from './audit-log.js';

/** The stream every replica of a team deployment appends to; `XRANGE crypto-intel:v1:audit - +` reads it. */
export const AUDIT_STREAM_KEY = 'crypto-intel:v1:audit';
/** Entries kept: the stream is capped (`XADD … MAXLEN`), like the file's size bound. */
export const DEFAULT_AUDIT_STREAM_MAXLEN = 10_000;

/**
 * What the stream needs of a Redis connection: `RedisLink.run`, which answers `fallback` instead of failing when Redis
 * is down or slow, so an audit event never holds up or fails a request.
 */
export interface RedisRunner {
    run<T>(command: (client: Redis) => Promise<T>, fallback: T): Promise<T>;
}

export interface RedisStreamAuditOptions {
    key?: string;
    maxLen?: number;
    /** Names the replica in each entry; `<host>:<pid>` by default. */
    replica?: string;
}

/**
 * Key events of every replica in one capped Redis stream, for a team deployment: one entry per event with the fields
 * `time`, `event`, `fingerprint`, `label`, `replica` and `facts` (the rest of the event as JSON). Fingerprints and
 * labels only, never a key. Best effort: an event that finds Redis down is in the replica's file and log, not here.
 */
export class RedisStreamAudit implements AuditSink {
    private readonly key: string;
    private readonly maxLen: number;
    private readonly replica: string;

    constructor(
        private readonly link: RedisRunner,
        options: RedisStreamAuditOptions = {}
    ) {
        this.key = options.key ?? AUDIT_STREAM_KEY;
        this.maxLen = Math.max(1, options.maxLen ?? DEFAULT_AUDIT_STREAM_MAXLEN);
        this.replica = options.replica ?? `${hostname()}:${process.pid}`;
    }

    record(event: AuditEvent, nowMs: number): void {
        const { event: name, fingerprint, label, ...facts } = event;
        const fields = [
            'time',
            new Date(nowMs).toISOString(),
            'event',
            name,
            'fingerprint',
            fingerprint ?? '',
            'label',
            label ?? '',
            'replica',
            this.replica,
            'facts',
            JSON.stringify(facts)
        ];
        // Exact MAXLEN: key events are a handful a day, so the exact trim costs nothing and the cap is what it says.
        void this.link.run(client => client.call('XADD', this.key, 'MAXLEN', String(this.maxLen), '*', ...fields), null);
    }
}

/** Several sinks as one: the file and, in a team deployment, the Redis stream. */
export function teeAudit(...sinks: ReadonlyArray<AuditSink | null | undefined>): AuditSink {
    const present = sinks.filter((sink): sink is AuditSink => sink !== null && sink !== undefined);
    return {
        record(event, nowMs) {
            for (const sink of present) sink.record(event, nowMs);
        }
    };
}
