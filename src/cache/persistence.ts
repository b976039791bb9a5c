import { hostname } from 'node:os';
import { mkdir, rm, stat } from 'node:fs/promises';
import { join } from 'node:path';
import type { Clock } from '../clock.js';
import type { Logger } from '../logger.js';
import { rewrite } from './compaction.js';
import { CacheDir, closeDir, journalInfo, type JournalInfo } from './disk-files.js';
import { CACHE_FILE_NAME, LOCK_FILE_NAME, metaOf, type DiskRecord } from './disk-format.js';
import { ChunkText, errorCode, MAX_CACHE_FILE_BYTES, openRegularFile, Slicer } from './files.js';
import { Journal } from './journal.js';
import { JournalTail } from './journal-tail.js';
import { processAlive, tryLock } from './lock.js';
import { DEFAULT_MAX_NEGATIVE_ENTRIES, type CacheEntry } from './store.js';

/** A change is appended this long after it was made at the latest: what a crash can lose. */
export const DEFAULT_PERSIST_DELAY_MS = 250;
/** A process compacts once its own journal holds this much (or as much as the last snapshot, if more). */
const COMPACT_MIN_JOURNAL_BYTES = 1024 * 1024;
/** Background compaction after a restore waits this long, so it never competes with a client's first questions. */
const COMPACT_AFTER_RESTORE_MS = 2_000;
/** Other processes' journals are read on a miss at most this often (a burst of misses shares one read). */
const CATCH_UP_EVERY_MS = 100;

/** An entry as read from disk: its value still JSON text, parsed and checked against the domain schema when first used. */
export interface StoredText {
    key: string;
    fetchedAt: number;
    expiresAt: number;
    text: string;
}

/** A line's entry as `load` and `catchUp` hand it over: its value decoded, still JSON text. */
function storedText(record: DiskRecord, chunks: ChunkText): StoredText {
    return { ...metaOf(record), text: chunks.slice(record.buffer, record.valueStart, record.end) };
}

/** Which snapshot is on disk: a compaction writes a new file and renames it into place. */
const snapshotIdentity = (file: { size: number; mtimeMs: number }): string => `${file.size}:${file.mtimeMs}`;

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
    private readonly files: CacheDir;
    private readonly clock: Clock;
    private readonly logger: Logger;
    private readonly knownKey: (key: string) => boolean;
    private readonly persistDelayMs: number;
    private readonly maxFileBytes: number;

    private disabled = false;
    private pending = new Map<string, CacheEntry>();
    private timer: NodeJS.Timeout | null = null;
    private compactTimer: NodeJS.Timeout | null = null;
    private writing: Promise<void> = Promise.resolve();
    private compacting: Promise<boolean> | null = null;
    private closed = false;
    private readonly journal: Journal;
    private readonly others: JournalTail;
    private catchingUp: Promise<void> | null = null;
    private caughtUpAt = -Infinity;
    /** The snapshot this process last read or wrote (`snapshotIdentity`): another one is news from another process. */
    private snapshotSeen: string | null = null;
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
        this.files = new CacheDir(options.dir, options.logger, this.maxFileBytes);
        this.journal = new Journal(options.dir, options.clock, hostname());
        this.others = new JournalTail(options.dir, this.maxFileBytes);
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
        const opened = await this.files.open(true, this.journal.retired);
        try {
            const slicer = new Slicer();
            const chunks = new ChunkText();
            let rejected = 0;
            const accept = (record: DiskRecord): void => {
                if (!this.knownKey(record.key)) rejected++;
                else sink(storedText(record, chunks));
            };
            if (opened.snapshot !== null) {
                this.lastSnapshotBytes = opened.snapshot.size;
                this.snapshotSeen = snapshotIdentity(opened.snapshot);
                await this.files.readEntries(CACHE_FILE_NAME, opened.snapshot, 'snapshot', accept, { slicer, warn: true });
            }
            let journalBytes = 0;
            const journals: JournalInfo[] = [];
            for (const { name, file } of opened.journals) {
                journalBytes += file.size;
                const header = await this.files.readEntries(name, file, 'journal', accept, { slicer, warn: true });
                journals.push(journalInfo(name, file, header));
                this.others.read(name, file.size);
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

    /**
     * Hands `sink` what other processes wrote since the restore (or the last catch-up), as `load` does: for a lookup
     * about to go upstream, whose answer another server on this directory may have paid for. That is what they appended
     * to their journals, and a snapshot another process's compaction wrote meanwhile. At most one read every
     * `CATCH_UP_EVERY_MS`, shared by the lookups that ask meanwhile; never rejects.
     */
    catchUp(sink: (entry: StoredText) => void): Promise<void> {
        if (this.disabled || this.closed) return Promise.resolve();
        if (this.catchingUp !== null) return this.catchingUp;
        const now = this.clock.monotonic();
        if (now - this.caughtUpAt < CATCH_UP_EVERY_MS) return Promise.resolve();
        this.caughtUpAt = now;
        const own = (name: string): boolean => name === this.journal.name || this.journal.retired.has(name);
        // One ChunkText per reader: the two read side by side, their chunks interleaved.
        const accept = (chunks: ChunkText) => (record: DiskRecord) => {
            if (this.knownKey(record.key)) sink(storedText(record, chunks));
        };
        // Side by side: the newest fetch of a key wins whichever file it is read from first.
        this.catchingUp = Promise.all([
            this.readNewSnapshot(accept(new ChunkText())).catch(() => undefined),
            this.others.catchUp(own, accept(new ChunkText()))
        ])
            .then(() => undefined)
            .finally(() => (this.catchingUp = null));
        return this.catchingUp;
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
        if (!this.disabled && (this.compactionDue || this.journal.name !== null || this.journal.retired.size > 0)) await this.compact();
        await this.compacting;
        await this.journal.close();
    }

    /**
     * The snapshot on disk, when it is not the one this process last read or wrote. A compaction deletes the journals it
     * folds, so what their processes appended after this one's last catch-up (a server that closes folds its journal
     * so) is in that snapshot and nowhere else. A read of the whole file, in slices, once per compaction by another
     * process; the snapshot's entries this process already holds are skipped (`adopter`).
     */
    private async readNewSnapshot(accept: (record: DiskRecord) => void): Promise<void> {
        const path = join(this.dir, CACHE_FILE_NAME);
        const listed = await stat(path).catch(() => null);
        if (listed === null || snapshotIdentity(listed) === this.snapshotSeen) return;
        const file = await openRegularFile(path, this.maxFileBytes);
        if (!file.ok) return;
        try {
            this.snapshotSeen = snapshotIdentity(file);
            await this.files.readEntries(CACHE_FILE_NAME, file, 'snapshot', accept, { slicer: new Slicer(), warn: false });
        } finally {
            await file.handle.close();
        }
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
        try {
            await this.journal.append(batch);
            this.warnedWrite = false;
        } catch (error) {
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
        if (!this.closed && this.journal.name !== null && this.journal.bytes > this.compactThreshold()) void this.compact();
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
                await this.journal.close();
            });
            this.writing = rotate;
            await rotate;
            const written = await rewrite(this.files, this.options, this.journal.retired);
            this.lastSnapshotBytes = written.bytes;
            this.snapshotSeen = snapshotIdentity({ size: written.bytes, mtimeMs: written.mtimeMs });
            // Only journals this compaction read whole: this process's closed ones, and those that can no longer grow.
            const folded = written.journals.filter(journal =>
                this.journal.retired.has(journal.name) ? journal.readable : this.foldable(journal)
            );
            const removable = [...folded.map(journal => journal.name), ...written.leftovers];
            for (const name of removable) await rm(join(this.dir, name), { force: true }).catch(() => undefined);
            for (const journal of folded) this.journal.retired.delete(journal.name);
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
        if (journal.name === this.journal.name || this.journal.retired.has(journal.name)) return false;
        if (Date.now() - journal.mtimeMs > this.retentionMs()) return true;
        return journal.host === this.journal.host && journal.readable && !processAlive(journal.pid);
    }

    /** Entries live at most their TTL (a day for the longest) plus the stale window; a week is a safe upper bound. */
    private retentionMs(): number {
        return 7 * 24 * 3600 * 1000 + this.options.staleMaxMs;
    }
}
