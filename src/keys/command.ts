import { readFileSync, statSync } from 'node:fs';
import { AUDIT_EVENTS } from '../audit/audit-log.js';
import { systemClock, type Clock } from '../clock.js';
import type { Config } from '../config.js';
import type { LogFields, Logger } from '../logger.js';
import { Redactor } from '../redact.js';
import { readUsageFile } from '../usage/file.js';
import { VERSION } from '../version.js';
import { KeyFileRefusedError } from './key-file.js';
import type { KeyDescription } from './key-state.js';
import { KeyManager, keySources } from './manager.js';

/**
 * `crypto-intel-mcp keys`: the configured keys' state for a person at a terminal, from the same data the server uses
 * (the environment, the key file with its metadata, the usage file and the audit trail). No network, no credit, and
 * nothing written: it prints fingerprints, labels and dates, never a key.
 */

export interface KeysIo {
    /** Where the table goes: stdout, by default. */
    write(text: string): void;
    clock?: Clock;
}

/** What the audit trail last said about a key, for the LAST EVENT column. */
export interface LastEvent {
    event: string;
    time: string;
    status?: number;
}

const DAY_MS = 86_400_000;
const MAX_AUDIT_READ_BYTES = 4 * 1024 * 1024;

const NO_KEY = `crypto-intel-mcp keys: no Token Metrics API key is configured.
Set one of these in the environment (the same variables the server reads), then run it again:
  TOKEN_METRICS_API_KEY=<your key>
  TOKEN_METRICS_API_KEYS=<key1>,<label>:<key2>      several keys, tried in order; a label is optional
  TOKEN_METRICS_API_KEY_FILE=<path>                 a file with one key per line (see the README for label=, expires=, not-before=)
`;

/** Warnings and errors the key manager raises, kept to print as plain lines under the table instead of JSON on stderr. */
class NoteLogger implements Logger {
    readonly notes: string[] = [];
    constructor(private readonly redactor: Redactor) {}
    error(msg: string, fields?: LogFields): void {
        this.note(msg, fields);
    }
    warn(msg: string, fields?: LogFields): void {
        this.note(msg, fields);
    }
    info(): void {}
    debug(): void {}
    private note(msg: string, fields: LogFields = {}): void {
        const where = [
            fields.key !== undefined && !msg.includes(String(fields.key)) ? `key ${fields.key}` : null,
            fields.label !== undefined ? `label ${fields.label}` : null,
            fields.line !== undefined ? `line ${fields.line}` : null
        ].filter(part => part !== null);
        const line = `${msg}${where.length > 0 ? ` (${where.join(', ')})` : ''}`;
        const clean = this.redactor.scrub(line);
        if (!this.notes.includes(clean)) this.notes.push(clean);
    }
}

/** The last audit event per fingerprint (the `loaded` events every start writes are skipped: they say nothing new). */
export function readLastEvents(path: string | null): Map<string, LastEvent> {
    const last = new Map<string, LastEvent>();
    if (path === null) return last;
    let text: string;
    try {
        const stat = statSync(path);
        if (!stat.isFile()) return last;
        text = readFileSync(path, 'utf8');
        if (text.length > MAX_AUDIT_READ_BYTES) text = text.slice(-MAX_AUDIT_READ_BYTES);
    } catch {
        return last;
    }
    for (const line of text.split('\n')) {
        if (line.trim() === '') continue;
        try {
            const entry = JSON.parse(line) as Record<string, unknown>;
            if (typeof entry.fingerprint !== 'string' || typeof entry.event !== 'string' || typeof entry.time !== 'string') continue;
            if (entry.event === 'loaded' || !(AUDIT_EVENTS as readonly string[]).includes(entry.event)) continue;
            last.set(entry.fingerprint, {
                event: entry.event,
                time: entry.time,
                ...(typeof entry.status === 'number' ? { status: entry.status } : {})
            });
        } catch {
            // A torn line (two processes rotating at once): skip it.
        }
    }
    return last;
}

function ago(ms: number): string {
    if (ms < 60_000) return 'just now';
    if (ms < 3_600_000) return `${Math.floor(ms / 60_000)} min ago`;
    if (ms < DAY_MS) return `${Math.floor(ms / 3_600_000)} h ago`;
    return `${Math.floor(ms / DAY_MS)} d ago`;
}

function stateText(key: KeyDescription): string {
    if (key.state === 'expiring') return `expiring (${key.daysLeft === 0 ? '<1 day' : `${key.daysLeft} d`})`;
    return key.state;
}

const dateText = (written: string | null, iso: string | null): string =>
    written ?? (iso === null ? '-' : iso.slice(0, 16).replace('T', ' '));

/** The table, one key per row; pure, for tests. */
export function formatKeys(
    keys: readonly KeyDescription[],
    options: {
        credits: Map<string, number> | null;
        month: string;
        lastEvents: Map<string, LastEvent>;
        nowMs: number;
        lines?: Map<string, number>;
    }
): string[] {
    const header = ['FINGERPRINT', 'LABEL', 'SOURCE', 'STATE', 'NOT BEFORE', 'EXPIRES', `CREDITS ${options.month}`, 'LAST EVENT'];
    const rows = keys.map(key => {
        const last = options.lastEvents.get(key.fingerprint);
        const credits = options.credits === null ? 'n/a' : (options.credits.get(key.fingerprint) ?? 0).toLocaleString('en-US');
        return [
            key.fingerprint,
            key.label ?? '-',
            key.source,
            stateText(key),
            dateText(key.written.notBefore, key.notBefore),
            dateText(key.written.expires, key.expiresAt),
            credits,
            last === undefined
                ? '-'
                : `${last.event}${last.status === undefined ? '' : ` ${last.status}`}, ${ago(options.nowMs - Date.parse(last.time))}`
        ];
    });
    const widths = header.map((title, column) => Math.max([...title].length, ...rows.map(row => [...row[column]!].length)));
    const pad = (cells: string[]) =>
        cells
            .map((cell, column) => (column === cells.length - 1 ? cell : cell + ' '.repeat(widths[column]! - [...cell].length)))
            .join('  ')
            .trimEnd();
    return [pad(header), ...rows.map(pad)];
}

/**
 * The command: returns the exit code. 0: at least one key is usable now; 1: keys are configured but none is usable
 * (each expired, not yet valid or refused); 2: no key is configured, or the key file is refused (permissions).
 */
export function keysCommand(config: Config, io: KeysIo): number {
    const clock = io.clock ?? systemClock;
    const redactor = new Redactor();
    const notes = new NoteLogger(redactor);
    const print = (lines: readonly string[]) => io.write(redactor.scrub(lines.map(line => `${line}\n`).join('')));
    if (config.apiKeys.length === 0 && config.apiKeyFile === null) {
        io.write(NO_KEY);
        return 2;
    }
    let manager: KeyManager;
    try {
        manager = new KeyManager({ ...keySources(config), redactor, logger: notes, clock, watch: false });
    } catch (error) {
        if (!(error instanceof KeyFileRefusedError)) throw error;
        print([`crypto-intel-mcp keys: ${error.message}`]);
        return 2;
    }
    try {
        const now = clock.now();
        const keys = manager.describeKeys();
        const month = new Date(now).toISOString().slice(0, 7);
        let credits: Map<string, number> | null = null;
        let usageNote = 'credits: n/a (no usage file yet: the server writes it to the cache directory as it spends credits)';
        if (config.cacheDir === null) {
            usageNote = 'credits: n/a (CRYPTO_INTEL_CACHE_DIR=off: no usage file)';
        } else {
            const usage = readUsageFile(config.cacheDir);
            if (usage.kind === 'ok') {
                credits = new Map(Object.entries(usage.data.months[month]?.credits ?? {}));
                usageNote = `credits: spent this month (UTC) by the servers sharing ${config.cacheDir}`;
            } else if (usage.kind === 'bad') {
                usageNote = `credits: n/a (the usage file ${usage.problem})`;
            }
        }
        const usable = keys.filter(key => key.usable).length;
        const source = config.apiKeyFile === null ? 'environment only' : `key file ${config.apiKeyFile}`;
        print([
            `crypto-intel-mcp ${VERSION} keys · ${keys.length} ${keys.length === 1 ? 'key' : 'keys'}, ${usable} usable now · ${source} · ${new Date(now).toISOString().slice(0, 16).replace('T', ' ')} UTC`,
            ...(keys.length > 0
                ? formatKeys(keys, { credits, month, lastEvents: readLastEvents(config.auditLog), nowMs: now })
                : ['(no key could be read)']),
            '',
            usageNote,
            `audit trail: ${config.auditLog ?? 'off (CRYPTO_INTEL_CACHE_DIR or CRYPTO_INTEL_AUDIT_LOG is off)'}`,
            'state is what this configuration says now; rejected or rate-limited keys show in LAST EVENT, from the audit trail',
            ...notes.notes.map(note => `! ${note}`)
        ]);
        if (keys.length === 0) return config.apiKeyFile === null ? 2 : 1;
        return usable > 0 ? 0 : 1;
    } finally {
        manager.close();
    }
}
