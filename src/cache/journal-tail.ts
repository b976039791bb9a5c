import { readdir } from 'node:fs/promises';
import { join } from 'node:path';
import { isHeader, JOURNAL_NAME, toRecord, type DiskRecord } from './disk-format.js';
import { openRegularFile, Slicer } from './files.js';

/** New bytes read from one journal per catch-up at most; the rest waits for the next (a journal is compacted at ~1 MB). */
const MAX_READ_BYTES = 4 * 1024 * 1024;
const NEWLINE = 0x0a;

/**
 * Other processes' journals, read as they grow: what a server running beside this one on the same cache directory
 * (Claude Desktop and Cursor each run one) fetched after this one restored, so that it is not paid for twice. Each
 * journal is read on from where the last read of it stopped, whole lines only. A journal another process folded into
 * a new snapshot and deleted between two reads is not followed there: what it held last costs a credit, as before.
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
            // From the byte before `from`: a line starts there only if that byte ends one (a read may stop mid-line).
            const start = Math.max(0, from - 1);
            const buffer = Buffer.allocUnsafe(Math.min(file.size - start, MAX_READ_BYTES));
            const { bytesRead } = await file.handle.read(buffer, 0, buffer.length, start);
            const bytes = buffer.subarray(0, bytesRead);
            const last = bytes.lastIndexOf(NEWLINE);
            if (last < 0) return;
            let at = from === 0 ? 0 : bytes.indexOf(NEWLINE) + 1;
            if (from === 0) {
                const headerEnd = bytes.indexOf(NEWLINE);
                if (!isJournalHeader(bytes.toString('utf8', 0, headerEnd))) {
                    this.foreign.add(name);
                    return;
                }
                at = headerEnd + 1;
            }
            for (let end = bytes.indexOf(NEWLINE, at); end !== -1 && end <= last; end = bytes.indexOf(NEWLINE, at)) {
                const record = end > at ? toRecord(bytes, at, end) : null;
                if (record !== null) onRecord(record);
                at = end + 1;
                if (slicer.due()) await slicer.yield();
            }
            this.offsets.set(name, start + last + 1);
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
