import { appendFileSync, chmodSync, mkdirSync, renameSync, statSync } from 'node:fs';
import { dirname } from 'node:path';
import type { Logger } from '../logger.js';

/** The key events the audit trail records. */
export const AUDIT_EVENTS = [
    'loaded',
    'removed',
    'first-used',
    'set-aside',
    'rate-limited',
    'restored',
    'expiring',
    'expired',
    'quota-warning'
] as const;
export type AuditEventName = (typeof AUDIT_EVENTS)[number];

export type AuditValue = string | number | boolean | null;

/** One event about one key (or, for a quota warning, possibly about all of them: `fingerprint` null). Never the key. */
export interface AuditEvent {
    event: AuditEventName;
    fingerprint: string | null;
    label: string | null;
    /** More facts: `source`, `status`, `until`, `expiresAt`, ... Values only; never key material. */
    [field: string]: AuditValue;
}

/** Where key events go. `record` never throws: an audit trail that cannot be written must not stop a request. */
export interface AuditSink {
    record(event: AuditEvent, nowMs: number): void;
}

export const noAudit: AuditSink = { record() {} };

/** The file name inside the cache directory; its one rotated predecessor is `audit.log.1`. */
export const AUDIT_FILE_NAME = 'audit.log';
/** Past this size the file is rotated to `audit.log.1` (replacing the previous one): at most twice this on disk. */
export const DEFAULT_AUDIT_MAX_BYTES = 1024 * 1024;

export interface FileAuditLogOptions {
    path: string;
    logger: Logger;
    maxBytes?: number;
    /** Last line of defence: the Redactor's `scrub`, so a key can never reach the file even if a caller slipped. */
    scrub?: (text: string) => string;
}

/**
 * An append-only JSON-lines file, one event per line: `{"time":…,"event":"set-aside","fingerprint":"tm-…9f2c",
 * "label":"prod-1","status":401,"pid":1234}`. Mode 0600, directory 0700. Each write is one `O_APPEND` write of a
 * short line, so the several servers Claude Desktop starts (one per chat) can share the file without interleaving;
 * when two rotate at the same moment, one rotation's events may land in `audit.log.1`: acceptable for a trail that
 * keeps the last ~2 MiB. Key events are rare (a handful per key per day), so the writes are synchronous.
 */
export class FileAuditLog implements AuditSink {
    private readonly path: string;
    private readonly logger: Logger;
    private readonly maxBytes: number;
    private readonly scrub: (text: string) => string;
    private prepared = false;
    private failing: string | null = null;

    constructor(options: FileAuditLogOptions) {
        this.path = options.path;
        this.logger = options.logger;
        this.maxBytes = Math.max(1024, options.maxBytes ?? DEFAULT_AUDIT_MAX_BYTES);
        this.scrub = options.scrub ?? (text => text);
    }

    record(event: AuditEvent, nowMs: number): void {
        const { event: name, fingerprint, label, ...facts } = event;
        const line = `${this.scrub(JSON.stringify({ time: new Date(nowMs).toISOString(), event: name, fingerprint, label, ...facts, pid: process.pid }))}\n`;
        try {
            this.prepare();
            this.rotateIfFull(Buffer.byteLength(line));
            appendFileSync(this.path, line, { mode: 0o600 });
            if (this.failing !== null) {
                this.failing = null;
                this.logger.info('audit log writable again', { auditLog: this.path });
            }
        } catch (error) {
            const code = (error as NodeJS.ErrnoException).code ?? (error as Error).name;
            if (this.failing === code) return;
            this.failing = code;
            this.logger.warn('audit log cannot be written; key events are in this log only until it can', {
                auditLog: this.path,
                error: code
            });
        }
    }

    /** Once: the directory (0700 when created) and a file left wider than 0600 by an older version or a copy. */
    private prepare(): void {
        if (this.prepared) return;
        mkdirSync(dirname(this.path), { recursive: true, mode: 0o700 });
        try {
            const mode = statSync(this.path).mode & 0o777;
            if (process.platform !== 'win32' && mode !== 0o600) chmodSync(this.path, 0o600);
        } catch (error) {
            if ((error as NodeJS.ErrnoException).code !== 'ENOENT') throw error;
        }
        this.prepared = true;
    }

    private rotateIfFull(incoming: number): void {
        let size: number;
        try {
            size = statSync(this.path).size;
        } catch (error) {
            if ((error as NodeJS.ErrnoException).code === 'ENOENT') return;
            throw error;
        }
        if (size > 0 && size + incoming > this.maxBytes) renameSync(this.path, `${this.path}.1`);
    }
}

/** The events a sink received, in order; for tests and for `crypto-intel-mcp keys`. */
export class MemoryAudit implements AuditSink {
    readonly events: Array<AuditEvent & { time: string }> = [];

    record(event: AuditEvent, nowMs: number): void {
        this.events.push({ ...event, time: new Date(nowMs).toISOString() });
    }
}
