import { randomBytes } from 'node:crypto';
import { mkdir, open, type FileHandle } from 'node:fs/promises';
import { join } from 'node:path';
import type { Clock } from '../clock.js';
import { CACHE_FILE_VERSION, JOURNAL_PREFIX, serialize, writeText, type Header } from './disk-format.js';
import { Slicer } from './files.js';
import type { CacheEntry } from './store.js';

const WRITE_CHUNK_CHARS = 256 * 1024;

/**
 * This process's journal: a file only this process writes, created on first use, appended to and never rewritten.
 * A closed journal stays `retired` until a compaction of this process folds it into the snapshot (and deletes it).
 */
export class Journal {
    private current: { name: string; handle: FileHandle; bytes: number } | null = null;
    /** This process's journals that are closed but not yet folded into a snapshot. */
    readonly retired = new Set<string>();

    constructor(
        private readonly dir: string,
        private readonly clock: Clock,
        /** The host named in the journal's header: a journal of this host whose process is gone can be folded. */
        readonly host: string
    ) {}

    /** The open journal's file name, `null` when none is open. */
    get name(): string | null {
        return this.current?.name ?? null;
    }

    /** Bytes of the open journal (0 when none is open). */
    get bytes(): number {
        return this.current?.bytes ?? 0;
    }

    /** Appends one line per entry, in slices that never hold the event loop for long. */
    async append(entries: ReadonlyMap<string, CacheEntry>): Promise<void> {
        const slicer = new Slicer();
        try {
            const journal = await this.open();
            let chunk = '';
            for (const [key, entry] of entries) {
                chunk += `${serialize(key, entry)}\n`;
                if (chunk.length >= WRITE_CHUNK_CHARS) {
                    journal.bytes += await writeText(journal.handle, chunk);
                    chunk = '';
                }
                if (slicer.due()) await slicer.yield();
            }
            if (chunk.length > 0) journal.bytes += await writeText(journal.handle, chunk);
        } catch (error) {
            // A write cut short may have left half a line: later appends go to a new journal, not after it.
            await this.close();
            throw error;
        }
    }

    /** Closes the current journal; it is folded (and deleted) by the next compaction this process runs. */
    async close(): Promise<void> {
        const journal = this.current;
        if (journal === null) return;
        this.current = null;
        this.retired.add(journal.name);
        await journal.handle.close().catch(() => undefined);
    }

    private async open(): Promise<{ name: string; handle: FileHandle; bytes: number }> {
        if (this.current !== null) return this.current;
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
            this.current = { name, handle, bytes };
            return this.current;
        } catch (error) {
            await handle.close().catch(() => undefined);
            throw error;
        }
    }
}
