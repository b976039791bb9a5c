import type { FileHandle } from 'node:fs/promises';
import type { CacheEntry } from './store.js';

/** Bumped whenever the key scheme, an entry's shape or the file layout changes: older files are then ignored, not misread. */
export const CACHE_FILE_VERSION = 3;
const PREFIX = `cache-v${CACHE_FILE_VERSION}`;
/**
 * The snapshot: every entry as of the last compaction, one line each after a JSON header line. An entry's line is
 * `{"key":…,"fetchedAt":…,"expiresAt":…}<TAB><value as JSON>`: JSON never holds a raw tab, so the first tab splits
 * the line, and neither a restore nor a compaction has to parse a value to know what it is.
 */
export const CACHE_FILE_NAME = `${PREFIX}.snapshot.jsonl`;
/** Each process appends its changes to its own journal, `cache-v3.journal-<pid>-<random>.jsonl`. */
export const JOURNAL_PREFIX = `${PREFIX}.journal-`;
/** Held (created with O_EXCL) by the one process compacting the directory. */
export const LOCK_FILE_NAME = `${PREFIX}.lock`;
export const JOURNAL_NAME = new RegExp(`^${PREFIX.replace('.', '\\.')}\\.journal-(\\d+)-([0-9a-f]+)\\.jsonl$`);
export const TEMP_NAME = new RegExp(`^\\.${CACHE_FILE_NAME.replace(/\./g, '\\.')}\\..+\\.tmp$`);
/** Files of earlier layouts (one JSON document rewritten whole); removed by the next compaction. */
export const LEGACY_NAME = /^cache-v[12]\.json$/;
const MAX_KEY_LENGTH = 512;

/** A file's first line. */
export interface Header {
    version: number;
    kind: 'snapshot' | 'journal';
    pid?: number;
    host?: string;
    createdAt?: number;
}

/** An entry line as read: its metadata parsed, the rest left as bytes in the read buffer (valid during the callback only). */
export interface DiskRecord {
    key: string;
    fetchedAt: number;
    expiresAt: number;
    /** The value is `null` or `[]`: a negative answer (see `isNegativeValue`). */
    negative: boolean;
    buffer: Buffer;
    start: number;
    /** Where the value's JSON starts (after the tab). */
    valueStart: number;
    end: number;
}

function meta(key: string, entry: { fetchedAt: number; expiresAt: number }): string {
    return JSON.stringify({ key, fetchedAt: entry.fetchedAt, expiresAt: entry.expiresAt });
}

export function serialize(key: string, entry: CacheEntry): string {
    return `${meta(key, entry)}\t${JSON.stringify(entry.value)}`;
}

export async function writeText(handle: FileHandle, text: string): Promise<number> {
    const buffer = Buffer.from(text, 'utf8');
    let written = 0;
    while (written < buffer.length) {
        const { bytesWritten } = await handle.write(buffer, written, buffer.length - written);
        written += bytesWritten;
    }
    return written;
}

export function isHeader(value: unknown, kind: Header['kind']): value is Header {
    if (typeof value !== 'object' || value === null) return false;
    const header = value as Partial<Header>;
    return header.version === CACHE_FILE_VERSION && header.kind === kind;
}

const TAB = 0x09;

/** An entry line: its metadata parsed and checked, its value left as bytes (checked when first used). */
export function toRecord(buffer: Buffer, start: number, end: number): DiskRecord | null {
    const tab = buffer.indexOf(TAB, start);
    if (tab <= start || tab >= end - 1) return null;
    let parsed: unknown;
    try {
        parsed = JSON.parse(buffer.toString('utf8', start, tab));
    } catch {
        return null;
    }
    if (typeof parsed !== 'object' || parsed === null) return null;
    const { key, fetchedAt, expiresAt } = parsed as Partial<DiskRecord>;
    if (typeof key !== 'string' || key.length === 0 || key.length > MAX_KEY_LENGTH) return null;
    if (typeof fetchedAt !== 'number' || !Number.isFinite(fetchedAt) || typeof expiresAt !== 'number' || !Number.isFinite(expiresAt))
        return null;
    return { key, fetchedAt, expiresAt, negative: isNegativeBytes(buffer, tab + 1, end), buffer, start, valueStart: tab + 1, end };
}

export function metaOf(record: DiskRecord): { key: string; fetchedAt: number; expiresAt: number } {
    return { key: record.key, fetchedAt: record.fetchedAt, expiresAt: record.expiresAt };
}

/** `null` or `[]`, as `JSON.stringify` writes a negative value (see `isNegativeText`). */
function isNegativeBytes(buffer: Buffer, start: number, end: number): boolean {
    const length = end - start;
    if (length === 4) return buffer.toString('latin1', start, end) === 'null';
    return length === 2 && buffer[start] === 0x5b && buffer[start + 1] === 0x5d;
}
