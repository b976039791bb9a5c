import { randomBytes } from 'node:crypto';
import { open, rename, rm } from 'node:fs/promises';
import { join } from 'node:path';
import type { Clock } from '../clock.js';
import { closeDir, journalInfo, type CacheDir, type JournalInfo } from './disk-files.js';
import { CACHE_FILE_NAME, CACHE_FILE_VERSION, emptyRecord, metaOf, readRecord, type DiskRecord, type Header } from './disk-format.js';
import { ByteSink, MAX_CACHE_FILE_BYTES, Slicer } from './files.js';
import { LOCK_STALE_MS } from './lock.js';
import { DEFAULT_MAX_NEGATIVE_ENTRIES } from './store.js';

/** A compaction keeps the snapshot well under the read cap, so it is always read back. */
const MAX_SNAPSHOT_BYTES = Math.floor(MAX_CACHE_FILE_BYTES * 0.75);

/** A journal's entry kept by a compaction until it is written: its line, decoded. */
interface KeptRecord {
    fetchedAt: number;
    expiresAt: number;
    negative: boolean;
    line: string;
    bytes: number;
}

/** What pass 1 of a compaction found a snapshot line to be worth. */
const enum Verdict {
    Drop,
    Keep,
    KeepNegative
}

/** One verdict per snapshot line, in a growing byte array: nothing the collector has to trace, however large the cache. */
class Verdicts {
    private bytes = new Uint8Array(4096);
    private length = 0;

    push(verdict: Verdict): void {
        if (this.length === this.bytes.length) {
            const bigger = new Uint8Array(this.bytes.length * 2);
            bigger.set(this.bytes);
            this.bytes = bigger;
        }
        this.bytes[this.length++] = verdict;
    }

    /** Drop past the end: a line pass 1 did not see is not copied. */
    at(index: number): Verdict {
        return index < this.length ? this.bytes[index]! : Verdict.Drop;
    }
}

export interface CompactionOptions {
    clock: Clock;
    /** Keys of a kind this version knows; others are dropped. */
    knownKey: (key: string) => boolean;
    /** How long a retained entry lives past its expiry; older ones are dropped. */
    staleMaxMs: number;
    /** Bounds of the snapshot: this many real entries and this many negative ones. */
    maxEntries: number;
    maxNegativeEntries?: number;
}

export interface Rewritten {
    bytes: number;
    /** The new snapshot's modification time, which its rename keeps: with `bytes`, how a reader tells it from another. */
    mtimeMs: number;
    entries: number;
    /** The journals read, whole or not. */
    journals: JournalInfo[];
    /** Files of earlier layouts and dead compactions, for the caller to remove. */
    leftovers: string[];
}

/**
 * Writes a new snapshot from the current one and the journals, keeping per key the newest entry that can still be
 * served, and dropping the oldest beyond the bounds (entries, negative entries, bytes). Only the journals are held
 * in memory: the snapshot is read twice, line by line (once to decode and judge each line, once to copy the kept ones,
 * noting a byte per line in between), so a compaction's memory and event-loop blocks do not grow with the cache.
 * Written through a temporary file (same directory, owner-only, synced) renamed over the old snapshot: a reader or a
 * crash sees the old snapshot or the new one, never half.
 */
export async function rewrite(files: CacheDir, options: CompactionOptions, retired: ReadonlySet<string>): Promise<Rewritten> {
    const opened = await files.open(false, retired);
    const temp = join(files.dir, `.${CACHE_FILE_NAME}.${process.pid}.${randomBytes(4).toString('hex')}.tmp`);
    try {
        const now = options.clock.now();
        const slicer = new Slicer();
        const newest = new Map<string, KeptRecord>();
        const journals: JournalInfo[] = [];
        for (const { name, file } of opened.journals) {
            const onRecord = (record: DiskRecord): void => {
                const known = newest.get(record.key);
                if (known !== undefined && known.fetchedAt > record.fetchedAt) return;
                newest.delete(record.key);
                const bytes = record.end - record.start + 1;
                newest.set(record.key, {
                    ...metaOf(record),
                    negative: record.negative,
                    line: record.buffer.toString('utf8', record.start, record.end),
                    bytes
                });
            };
            const header = await files.readEntries(name, file, 'journal', onRecord, { slicer, warn: false });
            journals.push(journalInfo(name, file, header));
        }
        const servable = (key: string, record: { fetchedAt: number; expiresAt: number }): boolean =>
            options.knownKey(key) &&
            (now < record.expiresAt || now - record.fetchedAt <= options.staleMaxMs) &&
            record.fetchedAt <= now + LOCK_STALE_MS;
        const fromSnapshot = (record: DiskRecord): boolean => {
            const newer = newest.get(record.key);
            return servable(record.key, record) && (newer === undefined || newer.fetchedAt < record.fetchedAt);
        };

        // Pass 1: how much there is, so the oldest can be dropped in pass 2 (the files run oldest first). What each
        // snapshot line is worth is noted here, so pass 2 copies lines without decoding them again.
        const total = { positive: 0, negative: 0, bytes: 0 };
        const count = (negative: boolean, bytes: number): void => {
            total[negative ? 'negative' : 'positive']++;
            total.bytes += bytes;
        };
        const snapshot = opened.snapshot;
        const verdicts = new Verdicts();
        let snapshotOk = false;
        if (snapshot !== null) {
            const record = emptyRecord();
            const onLine = (buffer: Buffer, start: number, end: number): void => {
                const kept = readRecord(buffer, start, end, record) && fromSnapshot(record);
                verdicts.push(kept ? (record.negative ? Verdict.KeepNegative : Verdict.Keep) : Verdict.Drop);
                if (kept) count(record.negative, end - start + 1);
            };
            snapshotOk = (await files.readEntryLines(CACHE_FILE_NAME, snapshot, 'snapshot', onLine, { slicer, warn: false })) !== null;
        }
        for (const [key, record] of newest) {
            if (servable(key, record)) count(record.negative, record.bytes);
            if (slicer.due()) await slicer.yield();
        }
        const headerLine = `${JSON.stringify({ version: CACHE_FILE_VERSION, kind: 'snapshot', createdAt: now } satisfies Header)}\n`;
        const drop = {
            positive: Math.max(0, total.positive - Math.max(0, Math.floor(options.maxEntries))),
            negative: Math.max(0, total.negative - Math.max(0, Math.floor(options.maxNegativeEntries ?? DEFAULT_MAX_NEGATIVE_ENTRIES))),
            bytes: Math.max(0, total.bytes - (MAX_SNAPSHOT_BYTES - Buffer.byteLength(headerLine)))
        };
        const admit = (negative: boolean, bytes: number): boolean => {
            const kind = negative ? 'negative' : 'positive';
            if (drop[kind] <= 0 && drop.bytes <= 0) return true;
            drop[kind] = Math.max(0, drop[kind] - 1);
            drop.bytes -= bytes;
            return false;
        };

        // Pass 2: copy what is kept, the snapshot's lines byte for byte.
        let entries = 0;
        let bytes = 0;
        let mtimeMs = 0;
        const handle = await open(temp, 'wx', 0o600);
        try {
            const out = new ByteSink(handle);
            out.pushText(headerLine);
            if (snapshot !== null && snapshotOk) {
                let line = 0;
                const onLine = (buffer: Buffer, start: number, end: number): void => {
                    const verdict = verdicts.at(line++);
                    if (verdict === Verdict.Drop || !admit(verdict === Verdict.KeepNegative, end - start + 1)) return;
                    out.pushLine(buffer, start, end);
                    entries++;
                };
                await files.readEntryLines(CACHE_FILE_NAME, snapshot, 'snapshot', onLine, {
                    slicer,
                    warn: false,
                    afterChunk: () => out.drain()
                });
            }
            for (const [key, record] of newest) {
                if (servable(key, record) && admit(record.negative, record.bytes)) {
                    out.pushText(`${record.line}\n`);
                    entries++;
                }
                await out.drain();
                if (slicer.due()) await slicer.yield();
            }
            await out.drain(0);
            bytes = out.written;
            await handle.sync();
            mtimeMs = (await handle.stat()).mtimeMs;
        } finally {
            await handle.close();
        }
        await rename(temp, join(files.dir, CACHE_FILE_NAME));
        return { bytes, mtimeMs, entries, journals, leftovers: opened.leftovers };
    } catch (error) {
        await rm(temp, { force: true }).catch(() => undefined);
        throw error;
    } finally {
        await closeDir(opened);
    }
}
