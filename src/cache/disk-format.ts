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

/** A record for `readRecord` to fill line after line. */
export function emptyRecord(): DiskRecord {
    return { key: '', fetchedAt: 0, expiresAt: 0, negative: false, buffer: Buffer.alloc(0), start: 0, valueStart: 0, end: 0 };
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
const QUOTE = 0x22;
const BACKSLASH = 0x5c;
const MINUS = 0x2d;
const ZERO = 0x30;
const NINE = 0x39;
const CLOSE_BRACE = 0x7d;
/** What `meta` writes around the key and the two times, byte for byte. */
const KEY_OPENING = Buffer.from('{"key":"');
const FETCHED_AT = Buffer.from('","fetchedAt":');
const EXPIRES_AT = Buffer.from(',"expiresAt":');
const NULL = Buffer.from('null');
const EMPTY_LIST = Buffer.from('[]');
/** Integers of up to 15 digits are exact in a double, as `JSON.parse` reads them. */
const MAX_DIGITS = 15;

/**
 * An entry line: its metadata parsed and checked, its value left as bytes (checked when first used). A new record per
 * line, and the parse's own objects: what a restore keeps of each line is young when the collector runs, and this
 * garbage keeps it a small share of each collection (a restore allocating less was measured to pause longer).
 */
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

/**
 * `toRecord` into `into` (reused line after line); false when the line is not an entry. Lines as `meta` writes them
 * are read byte by byte, allocating nothing but the key: a compaction reads every line of the cache, and garbage that
 * grew with it would start collections that pause the event loop. Any other spelling goes through `toRecord`.
 */
export function readRecord(buffer: Buffer, start: number, end: number, into: DiskRecord): boolean {
    const tab = buffer.indexOf(TAB, start);
    if (tab > start && tab < end - 1 && readMeta(buffer, start, tab, into) && into.key.length > 0 && into.key.length <= MAX_KEY_LENGTH) {
        into.negative = isNegativeBytes(buffer, tab + 1, end);
        into.buffer = buffer;
        into.start = start;
        into.valueStart = tab + 1;
        into.end = end;
        return true;
    }
    const record = toRecord(buffer, start, end);
    if (record !== null) Object.assign(into, record);
    return record !== null;
}

/** `{"key":"<no escapes>","fetchedAt":<integer>,"expiresAt":<integer>}`, exactly; false for anything else. */
function readMeta(buffer: Buffer, start: number, tab: number, into: DiskRecord): boolean {
    if (!bytesAt(buffer, start, tab, KEY_OPENING)) return false;
    const keyStart = start + KEY_OPENING.length;
    let at = keyStart;
    for (; at < tab && buffer[at] !== QUOTE; at++) {
        // An escape, or a control character JSON must escape: left to JSON.parse, which decodes or refuses it.
        if (buffer[at] === BACKSLASH || buffer[at]! < 0x20) return false;
    }
    const fetchedAt = at + FETCHED_AT.length;
    const fetchedEnd = bytesAt(buffer, at, tab, FETCHED_AT) ? integerEnd(buffer, fetchedAt, tab) : -1;
    const expiresAt = fetchedEnd + EXPIRES_AT.length;
    const expiresEnd = fetchedEnd !== -1 && bytesAt(buffer, fetchedEnd, tab, EXPIRES_AT) ? integerEnd(buffer, expiresAt, tab) : -1;
    if (expiresEnd !== tab - 1 || buffer[expiresEnd] !== CLOSE_BRACE) return false;
    into.key = buffer.toString('utf8', keyStart, at);
    into.fetchedAt = integerAt(buffer, fetchedAt, fetchedEnd);
    into.expiresAt = integerAt(buffer, expiresAt, expiresEnd);
    return true;
}

/** Where the JSON integer (no fraction, no exponent, no leading zero) at `start` ends; -1 when there is none. */
function integerEnd(buffer: Buffer, start: number, limit: number): number {
    const first = buffer[start] === MINUS ? start + 1 : start;
    let at = first;
    while (at < limit && buffer[at]! >= ZERO && buffer[at]! <= NINE) at++;
    const digits = at - first;
    return digits === 0 || digits > MAX_DIGITS || (buffer[first] === ZERO && digits > 1) ? -1 : at;
}

/** The value of the integer `integerEnd` found. */
function integerAt(buffer: Buffer, start: number, end: number): number {
    const negative = buffer[start] === MINUS;
    let value = 0;
    for (let at = negative ? start + 1 : start; at < end; at++) value = value * 10 + (buffer[at]! - ZERO);
    return negative ? -value : value;
}

function bytesAt(buffer: Buffer, at: number, limit: number, expected: Buffer): boolean {
    return at + expected.length <= limit && buffer.compare(expected, 0, expected.length, at, at + expected.length) === 0;
}

export function metaOf(record: DiskRecord): { key: string; fetchedAt: number; expiresAt: number } {
    return { key: record.key, fetchedAt: record.fetchedAt, expiresAt: record.expiresAt };
}

/** `null` or `[]`, as `JSON.stringify` writes a negative value (see `isNegativeText`). */
function isNegativeBytes(buffer: Buffer, start: number, end: number): boolean {
    return (
        (end - start === NULL.length && bytesAt(buffer, start, end, NULL)) ||
        (end - start === EMPTY_LIST.length && bytesAt(buffer, start, end, EMPTY_LIST))
    );
}
