import { readdir, stat, type FileHandle } from 'node:fs/promises';
import { join } from 'node:path';
import type { Logger } from '../logger.js';
import { CACHE_FILE_NAME, isHeader, JOURNAL_NAME, LEGACY_NAME, TEMP_NAME, toRecord, type DiskRecord, type Header } from './disk-format.js';
import { errorCode, openRegularFile, readLines, type OpenOutcome, type Slicer } from './files.js';
import { LOCK_STALE_MS } from './lock.js';

/** Journals read at most; more only come from many processes dying without compacting, and the next compaction folds them. */
const MAX_JOURNALS = 64;

export type OpenFile = Extract<OpenOutcome, { ok: true }>;

/** A journal as found in the directory: whose it is, and whether it could be read. */
export interface JournalInfo {
    name: string;
    pid: number;
    host: string | null;
    mtimeMs: number;
    readable: boolean;
}

/** The directory's files, opened: journals before the snapshot (see `CacheDir.open`). */
export interface OpenedDir {
    snapshot: OpenFile | null;
    journals: Array<{ name: string; file: OpenFile }>;
    leftovers: string[];
}

/** Reading the cache directory: which files it holds, opened safely, and their entry lines. */
export class CacheDir {
    constructor(
        readonly dir: string,
        private readonly logger: Logger,
        private readonly maxFileBytes: number
    ) {}

    /**
     * Lists and opens the directory's files. Journals are opened before the snapshot: a compaction renames its snapshot
     * into place before it deletes the journals it folded, so a journal gone before it could be opened here is in the
     * snapshot opened next. Open files stay readable when another process deletes or replaces them.
     */
    async open(warn: boolean, retired: ReadonlySet<string>): Promise<OpenedDir> {
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
            .sort((a, b) => Number(retired.has(b)) - Number(retired.has(a)) || (a < b ? -1 : a > b ? 1 : 0));
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
     * Hands each entry line of one file to `onRecord`; resolves the file's header, or null when the file is not one of
     * ours (then nothing of it is used).
     */
    async readEntries(
        name: string,
        file: { handle: FileHandle; size: number },
        kind: Header['kind'],
        onRecord: (record: DiskRecord) => void,
        options: { slicer: Slicer; warn: boolean }
    ): Promise<Header | null> {
        let corrupt = 0;
        const header = await this.readEntryLines(
            name,
            file,
            kind,
            (buffer, start, end) => {
                const record = toRecord(buffer, start, end);
                if (record === null) corrupt++;
                else onRecord(record);
            },
            options
        );
        if (corrupt > 0 && options.warn)
            this.logger.warn('cache file lines ignored: not valid JSON or not an entry', { path: join(this.dir, name), lines: corrupt });
        return header;
    }

    /**
     * Hands each complete line after a valid header to `onLine`, undecoded: what `readEntries` decodes, for a caller
     * that reads a file twice and need not decode it again. `afterChunk` runs after each chunk read, for a caller
     * writing as it reads.
     */
    async readEntryLines(
        name: string,
        file: { handle: FileHandle; size: number },
        kind: Header['kind'],
        onLine: (buffer: Buffer, start: number, end: number) => void,
        options: { slicer: Slicer; warn: boolean; afterChunk?: () => Promise<void> }
    ): Promise<Header | null> {
        const path = join(this.dir, name);
        const warn = (msg: string): void => {
            if (options.warn) this.logger.warn(msg, { path });
        };
        let header: Header | null | undefined;
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
                if (complete) onLine(buffer, start, end);
            },
            options.slicer,
            options.afterChunk
        );
        return header ?? null;
    }
}

export function journalInfo(name: string, file: OpenFile, header: Header | null): JournalInfo {
    return { name, pid: Number(JOURNAL_NAME.exec(name)![1]), host: header?.host ?? null, mtimeMs: file.mtimeMs, readable: header !== null };
}

export async function closeDir(opened: OpenedDir): Promise<void> {
    for (const file of [opened.snapshot, ...opened.journals.map(journal => journal.file)])
        await file?.handle.close().catch(() => undefined);
    opened.snapshot = null;
    opened.journals = [];
}
