import { randomBytes } from 'node:crypto';
import { hostname } from 'node:os';
import { mkdir, open, readdir, rename, rm, stat, type FileHandle } from 'node:fs/promises';
import { join } from 'node:path';
import type { Clock } from '../clock.js';
import type { Logger } from '../logger.js';
import { ByteSink, errorCode, MAX_CACHE_FILE_BYTES, openRegularFile, readLines, Slicer, type OpenOutcome } from './files.js';
import { LOCK_STALE_MS, processAlive, tryLock } from './lock.js';
import { DEFAULT_MAX_NEGATIVE_ENTRIES, type CacheEntry } from './store.js';

export { errorCode } from './files.js';

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
const JOURNAL_NAME = new RegExp(`^${PREFIX.replace('.', '\\.')}\\.journal-(\\d+)-([0-9a-f]+)\\.jsonl$`);
const TEMP_NAME = new RegExp(`^\\.${CACHE_FILE_NAME.replace(/\./g, '\\.')}\\..+\\.tmp$`);
/** Files of earlier layouts (one JSON document rewritten whole); removed by the next compaction. */
const LEGACY_NAME = /^cache-v[12]\.json$/;

/** A change is appended this long after it was made at the latest: what a crash can lose. */
export const DEFAULT_PERSIST_DELAY_MS = 250;
/** A process compacts once its own journal holds this much (or as much as the last snapshot, if more). */
export const COMPACT_MIN_JOURNAL_BYTES = 1024 * 1024;
/** A compaction keeps the snapshot well under the read cap, so it is always read back. */
const MAX_SNAPSHOT_BYTES = Math.floor(MAX_CACHE_FILE_BYTES * 0.75);
/** Journals read at most; more only come from many processes dying without compacting, and the next compaction folds them. */
const MAX_JOURNALS = 64;
/** Background compaction after a restore waits this long, so it never competes with a client's first questions. */
const COMPACT_AFTER_RESTORE_MS = 2_000;
const WRITE_CHUNK_CHARS = 256 * 1024;
const MAX_KEY_LENGTH = 512;

/** An entry as read from disk: its value still JSON text, parsed and checked against the domain schema when first used. */
export interface StoredText {
    key: string;
    fetchedAt: number;
    expiresAt: number;
    text: string;
}

export interface DiskTierOptions {
    dir: string;
    clock: Clock;
    logger: Logger;
    /** Keys of a kind this version knows; entries under other keys are dropped when read. */
    knownKey: (key: string) => boolean;
    /** How long a retained entry lives past its expiry (stale-if-error); older ones are dropped by compaction. */
    staleMaxMs: number;
    /** Bounds of the snapshot, as of the in-memory store: this many real entries and this many negative ones. */
    maxEntries: number;
    maxNegativeEntries?: number;
    /** Longest delay between a change and its append; defaults to `DEFAULT_PERSIST_DELAY_MS`. */
    persistDelayMs?: number;
    /** Files larger than this are ignored; defaults to `MAX_CACHE_FILE_BYTES`. */
    maxFileBytes?: number;
}

interface Header {
    version: number;
    kind: 'snapshot' | 'journal';
    pid?: number;
    host?: string;
    createdAt?: number;
}

/** An entry line as read: its metadata parsed, the rest left as bytes in the read buffer (valid during the callback only). */
interface DiskRecord {
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

/** A journal's entry kept by a compaction until it is written: its line, decoded. */
interface KeptRecord {
    fetchedAt: number;
    expiresAt: number;
    negative: boolean;
    line: string;
    bytes: number;
}

type OpenFile = Extract<OpenOutcome, { ok: true }>;

/** A journal as found in the directory: whose it is, and whether it could be read. */
interface JournalInfo {
    name: string;
    pid: number;
    host: string | null;
    mtimeMs: number;
    readable: boolean;
}

/** The directory's files, opened: journals before the snapshot (see `openDir`). */
interface OpenedDir {
    snapshot: OpenFile | null;
    journals: Array<{ name: string; file: OpenFile }>;
    leftovers: string[];
}

/**
 * The persistent cache, safe to share between processes (Claude Desktop and Cursor each run copies of the server
 * on one cache directory) and cheap to write:
 * - each process appends what changed to its own journal within `persistDelayMs` (a crash loses at most that),
 *   never rewriting what is already on disk, in slices that never hold the event loop for long;
 * - a reader merges the snapshot and every journal, keeping the newest `fetchedAt` per key, so no process's
 *   entries are lost to another's write;
 * - now and then (a journal grown past `COMPACT_MIN_JOURNAL_BYTES`, closing, journals of dead processes found) one
 *   process, holding the lock file, folds everything into a new snapshot (written aside, then renamed over the old
 *   one), dropping what is too old to be served and bounding its size, and deletes the journals it folded that can no
 *   longer grow: its own (it starts a new one first) and those of processes that are gone;
 * - every file is read as a regular file of bounded size, without blocking (see `openRegularFile`); a missing,
 *   corrupt or foreign file is skipped with a warning, never fatal.
 * Nothing here reads synchronously: `load()` runs after construction, off the start-up path.
 */
export class DiskTier {
    private readonly dir: string;
    private readonly clock: Clock;
    private readonly logger: Logger;
    private readonly knownKey: (key: string) => boolean;
    private readonly persistDelayMs: number;
    private readonly maxFileBytes: number;
    private readonly host = hostname();

    private disabled = false;
    private pending = new Map<string, CacheEntry>();
    private timer: NodeJS.Timeout | null = null;
    private compactTimer: NodeJS.Timeout | null = null;
    private writing: Promise<void> = Promise.resolve();
    private compacting: Promise<boolean> | null = null;
    private closed = false;
    private journal: { name: string; handle: FileHandle; bytes: number } | null = null;
    /** This process's journals that are closed but not yet folded into a snapshot. */
    private readonly retired = new Set<string>();
    private lastSnapshotBytes = 0;
    /** The restore found something a compaction should fold or remove (journals of dead processes, older layouts). */
    private compactionDue = false;
    private warnedWrite = false;

    constructor(private readonly options: DiskTierOptions) {
        this.dir = options.dir;
        this.clock = options.clock;
        this.logger = options.logger;
        this.knownKey = options.knownKey;
        this.persistDelayMs = Math.max(0, options.persistDelayMs ?? DEFAULT_PERSIST_DELAY_MS);
        this.maxFileBytes = options.maxFileBytes ?? MAX_CACHE_FILE_BYTES;
    }

    /** False once the directory proved unusable (then the cache stays in memory). */
    get enabled(): boolean {
        return !this.disabled;
    }

    /**
     * Creates the directory (owner-only) and reads the snapshot, then every journal, handing each entry of a known
     * kind to `sink` in file order (so a later line of one key comes after an earlier one), its value still as text:
     * the sink keeps the newest `fetchedAt` per key. Never rejects: a failure leaves the cache empty.
     */
    async load(sink: (entry: StoredText) => void): Promise<void> {
        try {
            await mkdir(this.dir, { recursive: true, mode: 0o700 });
        } catch (error) {
            this.disabled = true;
            this.logger.warn('cache directory cannot be created; the cache stays in memory', { path: this.dir, error: errorCode(error) });
            return;
        }
        const opened = await this.openDir(true);
        try {
            const slicer = new Slicer();
            let rejected = 0;
            const accept = (record: DiskRecord): void => {
                if (!this.knownKey(record.key)) rejected++;
                else sink({ ...metaOf(record), text: record.buffer.toString('utf8', record.valueStart, record.end) });
            };
            if (opened.snapshot !== null) {
                this.lastSnapshotBytes = opened.snapshot.size;
                await this.readEntries(CACHE_FILE_NAME, opened.snapshot, 'snapshot', accept, { slicer, warn: true });
            }
            let journalBytes = 0;
            const journals: JournalInfo[] = [];
            for (const { name, file } of opened.journals) {
                journalBytes += file.size;
                const header = await this.readEntries(name, file, 'journal', accept, { slicer, warn: true });
                journals.push(journalInfo(name, file, header));
            }
            if (rejected > 0) this.logger.warn('cache file entries ignored: unknown kind of key', { path: this.dir, rejected });
            if (journals.some(journal => this.foldable(journal)) || opened.leftovers.length > 0 || journalBytes > this.compactThreshold()) {
                this.compactionDue = true;
                this.scheduleCompaction();
            }
        } finally {
            await closeDir(opened);
        }
    }

    /** Queues an entry; it is appended to this process's journal within `persistDelayMs`. */
    record(key: string, entry: CacheEntry): void {
        // `undefined` is what a fetcher that skipped a key leaves: nothing a reader could use.
        if (this.disabled || this.closed || entry.value === undefined) return;
        this.pending.delete(key);
        this.pending.set(key, entry);
        // While the disk refuses writes, what waits is bounded like the snapshot: the oldest changes give way.
        if (this.pending.size > this.maxPending()) this.pending.delete(this.pending.keys().next().value!);
        if (this.timer !== null) return;
        this.timer = setTimeout(() => {
            this.timer = null;
            void this.flush();
        }, this.persistDelayMs);
        // The timer must not keep a finished process alive; close() appends whatever is pending.
        this.timer.unref();
    }

    /** Appends every queued entry now. Never rejects: a failed write is logged and retried with the next one. */
    async flush(): Promise<void> {
        if (this.disabled) return;
        if (this.timer !== null) clearTimeout(this.timer);
        this.timer = null;
        // Appends are chained, so two flushes never interleave their lines, nor an append a journal rotation.
        this.writing = this.writing.then(() => this.appendPending());
        await this.writing;
    }

    /**
     * Folds the snapshot and every journal into a new snapshot, if no other process is doing it. Resolves whether
     * this process compacted. Never rejects.
     */
    compact(): Promise<boolean> {
        if (this.disabled) return Promise.resolve(false);
        this.compacting ??= this.runCompaction().finally(() => (this.compacting = null));
        return this.compacting;
    }

    /** Appends what is pending, folds this process's journal into the snapshot (unless another process is compacting). */
    async close(): Promise<void> {
        if (this.closed) return;
        if (this.compactTimer !== null) clearTimeout(this.compactTimer);
        this.compactTimer = null;
        await this.flush();
        this.closed = true;
        if (!this.disabled && (this.compactionDue || this.journal !== null || this.retired.size > 0)) await this.compact();
        await this.compacting;
        await this.closeJournal();
    }

    private maxPending(): number {
        return Math.max(1, Math.floor(this.options.maxEntries)) + (this.options.maxNegativeEntries ?? DEFAULT_MAX_NEGATIVE_ENTRIES);
    }

    private compactThreshold(): number {
        return Math.max(COMPACT_MIN_JOURNAL_BYTES, this.lastSnapshotBytes);
    }

    private scheduleCompaction(): void {
        if (this.compactTimer !== null || this.closed) return;
        this.compactTimer = setTimeout(() => {
            this.compactTimer = null;
            if (!this.closed) void this.compact();
        }, COMPACT_AFTER_RESTORE_MS);
        this.compactTimer.unref();
    }

    private async appendPending(): Promise<void> {
        if (this.pending.size === 0) return;
        const batch = this.pending;
        this.pending = new Map();
        const slicer = new Slicer();
        try {
            const journal = await this.openJournal();
            let chunk = '';
            for (const [key, entry] of batch) {
                chunk += `${serialize(key, entry)}\n`;
                if (chunk.length >= WRITE_CHUNK_CHARS) {
                    journal.bytes += await writeText(journal.handle, chunk);
                    chunk = '';
                }
                if (slicer.due()) await slicer.yield();
            }
            if (chunk.length > 0) journal.bytes += await writeText(journal.handle, chunk);
            this.warnedWrite = false;
        } catch (error) {
            // A write cut short may have left half a line: later appends go to a new journal, not after it.
            await this.closeJournal();
            for (const [key, entry] of batch) if (!this.pending.has(key)) this.pending.set(key, entry);
            if (!this.warnedWrite) {
                this.logger.warn('cache journal could not be written; the cache keeps working in memory', {
                    path: this.dir,
                    error: errorCode(error)
                });
            }
            this.warnedWrite = true;
            return;
        }
        if (!this.closed && this.journal !== null && this.journal.bytes > this.compactThreshold()) void this.compact();
    }

    private async openJournal(): Promise<{ name: string; handle: FileHandle; bytes: number }> {
        if (this.journal !== null) return this.journal;
        await mkdir(this.dir, { recursive: true, mode: 0o700 });
        const name = `${JOURNAL_PREFIX}${process.pid}-${randomBytes(6).toString('hex')}.jsonl`;
        // `ax`: append-only, and never an existing file (or a link planted under the name).
        const handle = await open(join(this.dir, name), 'ax', 0o600);
        try {
            const header: Header = {
                version: CACHE_FILE_VERSION,
                kind: 'journal',
                pid: process.pid,
                host: this.host,
                createdAt: this.clock.now()
            };
            const bytes = await writeText(handle, `${JSON.stringify(header)}\n`);
            this.journal = { name, handle, bytes };
            return this.journal;
        } catch (error) {
            await handle.close().catch(() => undefined);
            throw error;
        }
    }

    /** Closes the current journal; it is folded (and deleted) by the next compaction this process runs. */
    private async closeJournal(): Promise<void> {
        const journal = this.journal;
        if (journal === null) return;
        this.journal = null;
        this.retired.add(journal.name);
        await journal.handle.close().catch(() => undefined);
    }

    private async runCompaction(): Promise<boolean> {
        let lock;
        try {
            await mkdir(this.dir, { recursive: true, mode: 0o700 });
            lock = await tryLock(join(this.dir, LOCK_FILE_NAME));
        } catch {
            lock = null;
        }
        if (lock === null) {
            this.logger.debug('cache compaction skipped: another process is compacting', { path: this.dir });
            return false;
        }
        try {
            // What is pending goes into the current journal, which is then closed: appends from now on go to a new
            // journal this compaction does not read, so deleting the old one afterwards loses nothing.
            const rotate = this.writing.then(async () => {
                await this.appendPending();
                await this.closeJournal();
            });
            this.writing = rotate;
            await rotate;
            const written = await this.rewrite();
            this.lastSnapshotBytes = written.bytes;
            // Only journals this compaction read whole: this process's closed ones, and those that can no longer grow.
            const folded = written.journals.filter(journal => (this.retired.has(journal.name) ? journal.readable : this.foldable(journal)));
            const removable = [...folded.map(journal => journal.name), ...written.leftovers];
            for (const name of removable) await rm(join(this.dir, name), { force: true }).catch(() => undefined);
            for (const journal of folded) this.retired.delete(journal.name);
            this.compactionDue = false;
            this.logger.debug('cache compacted', { entries: written.entries, bytes: written.bytes, removed: removable.length });
            return true;
        } catch (error) {
            this.logger.warn('cache compaction failed; the journals are kept and compacted later', {
                path: this.dir,
                error: errorCode(error)
            });
            return false;
        } finally {
            await lock.release();
        }
    }

    /**
     * A journal that can no longer grow, so a snapshot holding its entries replaces it: its process is gone (it ran on
     * this host and its pid runs no more), or it was last written so long ago that nothing in it can still be served.
     */
    private foldable(journal: JournalInfo): boolean {
        if (journal.name === this.journal?.name || this.retired.has(journal.name)) return false;
        if (Date.now() - journal.mtimeMs > this.retentionMs()) return true;
        return journal.host === this.host && journal.readable && !processAlive(journal.pid);
    }

    /** Entries live at most their TTL (a day for the longest) plus the stale window; a week is a safe upper bound. */
    private retentionMs(): number {
        return 7 * 24 * 3600 * 1000 + this.options.staleMaxMs;
    }

    /**
     * Lists and opens the directory's files. Journals are opened before the snapshot: a compaction renames its snapshot
     * into place before it deletes the journals it folded, so a journal gone before it could be opened here is in the
     * snapshot opened next. Open files stay readable when another process deletes or replaces them.
     */
    private async openDir(warn: boolean): Promise<OpenedDir> {
        const opened: OpenedDir = { snapshot: null, journals: [], leftovers: [] };
        let names: string[];
        try {
            names = await readdir(this.dir);
        } catch (error) {
            if (errorCode(error) !== 'ENOENT')
                this.logger.warn('cache directory unreadable; starting with an empty cache', { path: this.dir, error: errorCode(error) });
            return opened;
        }
        // This process's closed journals first: a compaction deletes them after, so it must read them whatever the count.
        const journalNames = names
            .filter(name => JOURNAL_NAME.test(name))
            .sort((a, b) => Number(this.retired.has(b)) - Number(this.retired.has(a)) || (a < b ? -1 : a > b ? 1 : 0));
        if (warn && journalNames.length > MAX_JOURNALS) {
            this.logger.warn('too many cache journals; reading the first ones, a compaction folds the rest', {
                path: this.dir,
                journals: journalNames.length
            });
        }
        opened.leftovers = await this.leftovers(names);
        try {
            for (const name of journalNames.slice(0, MAX_JOURNALS)) {
                const file = await this.openFile(name, warn);
                if (file !== null) opened.journals.push({ name, file });
            }
            opened.snapshot = await this.openFile(CACHE_FILE_NAME, warn);
        } catch (error) {
            await closeDir(opened);
            throw error;
        }
        return opened;
    }

    /** Files a compaction removes: earlier layouts, and temporary snapshots left by a compaction that died. */
    private async leftovers(names: readonly string[]): Promise<string[]> {
        const out: string[] = [];
        for (const name of names) {
            if (LEGACY_NAME.test(name)) out.push(name);
            else if (TEMP_NAME.test(name)) {
                const stats = await stat(join(this.dir, name)).catch(() => null);
                if (stats !== null && Date.now() - stats.mtimeMs > LOCK_STALE_MS) out.push(name);
            }
        }
        return out;
    }

    private async openFile(name: string, warn: boolean): Promise<OpenFile | null> {
        const path = join(this.dir, name);
        const file = await openRegularFile(path, this.maxFileBytes);
        if (file.ok) return file;
        if (!warn || file.reason === 'missing') return null;
        if (file.reason === 'not a regular file') {
            this.logger.warn('cache file is not a regular file; ignoring it', { path });
        } else if (file.reason === 'too large') {
            this.logger.warn('cache file is larger than the cap; ignoring it', { path, bytes: file.size, maxBytes: this.maxFileBytes });
        } else {
            this.logger.warn('cache file unreadable; ignoring it', { path, error: file.code });
        }
        return null;
    }

    /**
     * Hands each entry line of one file to `onRecord`; resolves the file's header, or null when the file is not one
     * of ours (then nothing of it is used). `afterChunk` runs after each chunk read, for a caller writing as it reads.
     */
    private async readEntries(
        name: string,
        file: { handle: FileHandle; size: number },
        kind: Header['kind'],
        onRecord: (record: DiskRecord) => void,
        options: { slicer: Slicer; warn: boolean; afterChunk?: () => Promise<void> }
    ): Promise<Header | null> {
        const path = join(this.dir, name);
        const warn = (msg: string, fields: Record<string, unknown> = {}): void => {
            if (options.warn) this.logger.warn(msg, { path, ...fields });
        };
        let header: Header | null | undefined;
        let corrupt = 0;
        await readLines(
            file.handle,
            file.size,
            (buffer, start, end, complete) => {
                if (header === null) return;
                if (header === undefined) {
                    let parsed: unknown;
                    try {
                        parsed = JSON.parse(buffer.toString('utf8', start, end));
                    } catch {
                        header = null;
                        // A journal whose header is still being written by its process is not corrupt, only young.
                        if (complete || kind === 'snapshot') warn('cache file is not valid JSON; ignoring it');
                        return;
                    }
                    header = isHeader(parsed, kind) ? parsed : null;
                    if (header === null) warn('cache file has an unknown version or shape; ignoring it');
                    return;
                }
                // A last line without its newline is an append a crash cut short: expected, not worth a warning.
                if (!complete) return;
                const record = toRecord(buffer, start, end);
                if (record === null) corrupt++;
                else onRecord(record);
            },
            options.slicer,
            options.afterChunk
        );
        if (corrupt > 0) warn('cache file lines ignored: not valid JSON or not an entry', { lines: corrupt });
        return header ?? null;
    }

    /**
     * Writes a new snapshot from the current one and the journals, keeping per key the newest entry that can still be
     * served, and dropping the oldest beyond the bounds (entries, negative entries, bytes). Only the journals are held
     * in memory: the snapshot is read twice (once to count, once to copy), line by line, so a compaction's memory and
     * event-loop blocks do not grow with the cache. Written through a temporary file (same directory, owner-only,
     * synced) renamed over the old snapshot: a reader or a crash sees the old snapshot or the new one, never half.
     */
    private async rewrite(): Promise<{ bytes: number; entries: number; journals: JournalInfo[]; leftovers: string[] }> {
        const opened = await this.openDir(false);
        const temp = join(this.dir, `.${CACHE_FILE_NAME}.${process.pid}.${randomBytes(4).toString('hex')}.tmp`);
        try {
            const now = this.clock.now();
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
                const header = await this.readEntries(name, file, 'journal', onRecord, { slicer, warn: false });
                journals.push(journalInfo(name, file, header));
            }
            const servable = (key: string, record: { fetchedAt: number; expiresAt: number }): boolean =>
                this.knownKey(key) &&
                (now < record.expiresAt || now - record.fetchedAt <= this.options.staleMaxMs) &&
                record.fetchedAt <= now + LOCK_STALE_MS;
            const fromSnapshot = (record: DiskRecord): boolean => {
                const newer = newest.get(record.key);
                return servable(record.key, record) && (newer === undefined || newer.fetchedAt < record.fetchedAt);
            };

            // Pass 1: how much there is, so the oldest can be dropped in pass 2 (the files run oldest first).
            const total = { positive: 0, negative: 0, bytes: 0 };
            const count = (negative: boolean, bytes: number): void => {
                total[negative ? 'negative' : 'positive']++;
                total.bytes += bytes;
            };
            const snapshot = opened.snapshot;
            let snapshotOk = false;
            if (snapshot !== null) {
                const onRecord = (record: DiskRecord): void => {
                    if (fromSnapshot(record)) count(record.negative, record.end - record.start + 1);
                };
                snapshotOk = (await this.readEntries(CACHE_FILE_NAME, snapshot, 'snapshot', onRecord, { slicer, warn: false })) !== null;
            }
            for (const [key, record] of newest) {
                if (servable(key, record)) count(record.negative, record.bytes);
                if (slicer.due()) await slicer.yield();
            }
            const headerLine = `${JSON.stringify({ version: CACHE_FILE_VERSION, kind: 'snapshot', createdAt: now } satisfies Header)}\n`;
            const drop = {
                positive: Math.max(0, total.positive - Math.max(0, Math.floor(this.options.maxEntries))),
                negative: Math.max(
                    0,
                    total.negative - Math.max(0, Math.floor(this.options.maxNegativeEntries ?? DEFAULT_MAX_NEGATIVE_ENTRIES))
                ),
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
            const handle = await open(temp, 'wx', 0o600);
            try {
                const out = new ByteSink(handle);
                out.pushText(headerLine);
                if (snapshot !== null && snapshotOk) {
                    const onRecord = (record: DiskRecord): void => {
                        if (!fromSnapshot(record) || !admit(record.negative, record.end - record.start + 1)) return;
                        out.pushLine(record.buffer, record.start, record.end);
                        entries++;
                    };
                    await this.readEntries(CACHE_FILE_NAME, snapshot, 'snapshot', onRecord, {
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
            } finally {
                await handle.close();
            }
            await rename(temp, join(this.dir, CACHE_FILE_NAME));
            return { bytes, entries, journals, leftovers: opened.leftovers };
        } catch (error) {
            await rm(temp, { force: true }).catch(() => undefined);
            throw error;
        } finally {
            await closeDir(opened);
        }
    }
}

function journalInfo(name: string, file: OpenFile, header: Header | null): JournalInfo {
    return { name, pid: Number(JOURNAL_NAME.exec(name)![1]), host: header?.host ?? null, mtimeMs: file.mtimeMs, readable: header !== null };
}

async function closeDir(opened: OpenedDir): Promise<void> {
    for (const file of [opened.snapshot, ...opened.journals.map(journal => journal.file)])
        await file?.handle.close().catch(() => undefined);
    opened.snapshot = null;
    opened.journals = [];
}

function meta(key: string, entry: { fetchedAt: number; expiresAt: number }): string {
    return JSON.stringify({ key, fetchedAt: entry.fetchedAt, expiresAt: entry.expiresAt });
}

function serialize(key: string, entry: CacheEntry): string {
    return `${meta(key, entry)}\t${JSON.stringify(entry.value)}`;
}

async function writeText(handle: FileHandle, text: string): Promise<number> {
    const buffer = Buffer.from(text, 'utf8');
    let written = 0;
    while (written < buffer.length) {
        const { bytesWritten } = await handle.write(buffer, written, buffer.length - written);
        written += bytesWritten;
    }
    return written;
}

function isHeader(value: unknown, kind: Header['kind']): value is Header {
    if (typeof value !== 'object' || value === null) return false;
    const header = value as Partial<Header>;
    return header.version === CACHE_FILE_VERSION && header.kind === kind;
}

const TAB = 0x09;

/** An entry line: its metadata parsed and checked, its value left as bytes (checked when first used). */
function toRecord(buffer: Buffer, start: number, end: number): DiskRecord | null {
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

function metaOf(record: DiskRecord): { key: string; fetchedAt: number; expiresAt: number } {
    return { key: record.key, fetchedAt: record.fetchedAt, expiresAt: record.expiresAt };
}

/** `null` or `[]`, as `JSON.stringify` writes a negative value (see `isNegativeText`). */
function isNegativeBytes(buffer: Buffer, start: number, end: number): boolean {
    const length = end - start;
    if (length === 4) return buffer.toString('latin1', start, end) === 'null';
    return length === 2 && buffer[start] === 0x5b && buffer[start + 1] === 0x5d;
}
