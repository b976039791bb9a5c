import { readdir } from 'node:fs/promises';
import { join } from 'node:path';
import { isHeader, JOURNAL_NAME, toRecord, type DiskRecord } from './disk-format.js';
import { openRegularFile, readLines, Slicer } from './files.js';

/**
 * Other processes' journals, read as they grow: what a server running beside this one on the same cache directory
 * (Claude Desktop and Cursor each run one) fetched after this one restored, so that it is not paid for twice. Each
 * journal is read on from where the last read of it stopped, whole lines only. What a journal held when a compaction
 * folded it into a new snapshot and deleted it is read from that snapshot (`DiskTier.catchUp`).
 */
export class JournalTail {
    /** Bytes of each journal already read, by name. */
    private readonly offsets = new Map<string, number>();
    /** Journals whose first line is not a journal header: not ours, never read. */
    private readonly foreign = new Set<string>();

    constructor(
        private readonly dir: string,
        private readonly maxFileBytes: number
    ) {}

    /** The restore read the first `bytes` of journal `name`. */
    read(name: string, bytes: number): void {
        this.offsets.set(name, bytes);
    }

    /** Hands each entry line appended to a journal other than `own` ones since the last call to `onRecord`; never rejects. */
    async catchUp(own: (name: string) => boolean, onRecord: (record: DiskRecord) => void): Promise<void> {
        let names: string[];
        try {
            names = (await readdir(this.dir)).filter(name => JOURNAL_NAME.test(name) && !own(name) && !this.foreign.has(name));
        } catch {
            return;
        }
        for (const name of this.offsets.keys()) if (!names.includes(name)) this.offsets.delete(name);
        // In slices, as the restore reads: a journal new to this process may hold thousands of lines.
        const slicer = new Slicer();
        for (const name of names) await this.readOn(name, onRecord, slicer).catch(() => undefined);
    }

    private async readOn(name: string, onRecord: (record: DiskRecord) => void, slicer: Slicer): Promise<void> {
        const from = this.offsets.get(name) ?? 0;
        const file = await openRegularFile(join(this.dir, name), this.maxFileBytes);
        if (!file.ok) return;
        try {
            if (file.size <= from) return;
            // A new journal starts with its header. Read on from the byte before `from`: a line starts at `from` only if
            // that byte ends one; if not (the last read stopped mid-line), what comes before the next newline is the
            // rest of a line and no entry.
            let header = from === 0;
            let foreign = false;
            const readTo = await readLines(
                file.handle,
                file.size,
                (buffer, start, end, complete) => {
                    if (!complete || foreign) return;
                    if (header) {
                        header = false;
                        foreign = !isJournalHeader(buffer.toString('utf8', start, end));
                        return;
                    }
                    const record = toRecord(buffer, start, end);
                    if (record !== null) onRecord(record);
                },
                slicer,
                undefined,
                Math.max(0, from - 1)
            );
            if (foreign) this.foreign.add(name);
            // Never back: with no newline after `from` yet, the read stops at the byte before it.
            else this.offsets.set(name, Math.max(from, readTo));
        } finally {
            await file.handle.close();
        }
    }
}

function isJournalHeader(line: string): boolean {
    try {
        return isHeader(JSON.parse(line), 'journal');
    } catch {
        return false;
    }
}
