import { isAscii } from 'node:buffer';
import { constants } from 'node:fs';
import { lstat, open, type FileHandle } from 'node:fs/promises';
import { performance } from 'node:perf_hooks';

/** The largest cache file read: a larger one is ignored with a warning, never loaded into memory. */
export const MAX_CACHE_FILE_BYTES = 64 * 1024 * 1024;
/** How long one slice of file work may hold the event loop before it yields (requests in flight come first). */
export const SLICE_MS = 2;
const READ_CHUNK_BYTES = 256 * 1024;
/**
 * `O_NONBLOCK`: a FIFO put where a cache file belongs opens at once instead of waiting for a writer forever;
 * `O_NOFOLLOW`: a link swapped in after the `lstat` fails to open. Both are 0 on Windows, where `lstat` still
 * rules out links and a named pipe cannot take a cache file's name.
 */
export const SAFE_READ_FLAGS = constants.O_RDONLY | (constants.O_NONBLOCK ?? 0) | (constants.O_NOFOLLOW ?? 0);

/** Work split into slices of at most `budgetMs`, so a large file never blocks the event loop for long. */
export class Slicer {
    private since = performance.now();

    constructor(private readonly budgetMs = SLICE_MS) {}

    /** This slice has used its budget: `await yield()` before the next unit of work. */
    due(): boolean {
        return performance.now() - this.since >= this.budgetMs;
    }

    /** Lets I/O and timers run (`setImmediate` comes after the poll phase), then starts a new slice. */
    async yield(): Promise<void> {
        await new Promise<void>(resolve => setImmediate(resolve));
        this.since = performance.now();
    }
}

export type OpenOutcome =
    | { ok: true; handle: FileHandle; size: number; mtimeMs: number }
    | { ok: false; reason: 'missing' | 'not a regular file' | 'too large' | 'unreadable'; code?: string; size?: number };

/**
 * Opens `path` for reading only if it is a regular file of at most `maxBytes`: a link (say to `/dev/zero`), a FIFO,
 * a device or a directory is refused without reading a byte, and so is an oversize file. Never blocks: the type is
 * checked before the open and again, on the open descriptor, after it.
 */
export async function openRegularFile(path: string, maxBytes = MAX_CACHE_FILE_BYTES): Promise<OpenOutcome> {
    try {
        const before = await lstat(path);
        if (!before.isFile()) return { ok: false, reason: 'not a regular file' };
        const handle = await open(path, SAFE_READ_FLAGS);
        try {
            const stats = await handle.stat();
            if (!stats.isFile()) {
                await handle.close();
                return { ok: false, reason: 'not a regular file' };
            }
            if (stats.size > maxBytes) {
                await handle.close();
                return { ok: false, reason: 'too large', size: stats.size };
            }
            return { ok: true, handle, size: stats.size, mtimeMs: stats.mtimeMs };
        } catch (error) {
            await handle.close().catch(() => undefined);
            throw error;
        }
    } catch (error) {
        const code = errorCode(error);
        if (code === 'ENOENT') return { ok: false, reason: 'missing' };
        // ELOOP: a link replaced the file between the lstat and the open.
        return code === 'ELOOP' ? { ok: false, reason: 'not a regular file', code } : { ok: false, reason: 'unreadable', code };
    }
}

/**
 * Reads the first `size` bytes of an open file (what it held when it was opened: a journal another process appends
 * to may grow meanwhile), from byte `from`, in chunks, calling `onLine` with each line's byte range in `buffer`
 * (without its newline), yielding between slices. Nothing is decoded here: a caller decodes only the bytes it needs,
 * and must copy what it keeps, since the buffer is reused. The last line is passed with `complete: false` when the
 * file does not end with a newline (a write cut short by a crash, or one still under way). `afterChunk` runs after
 * each chunk's lines. Resolves the file position after the last complete line: where a later read picks up.
 */
export async function readLines(
    handle: FileHandle,
    size: number,
    onLine: (buffer: Buffer, start: number, end: number, complete: boolean) => void,
    slicer = new Slicer(),
    afterChunk?: () => Promise<void>,
    from = 0
): Promise<number> {
    let buffer = Buffer.allocUnsafe(Math.min(READ_CHUNK_BYTES, Math.max(1, size - from)));
    // Bytes of a line begun in the previous chunk, moved to the buffer's start.
    let carried = 0;
    let position = from;
    while (position < size) {
        if (carried === buffer.length) {
            // One line longer than the buffer: grow it (bounded by the file size cap).
            const bigger = Buffer.allocUnsafe(buffer.length * 2);
            buffer.copy(bigger, 0, 0, carried);
            buffer = bigger;
        }
        const { bytesRead } = await handle.read(buffer, carried, Math.min(buffer.length - carried, size - position), position);
        if (bytesRead === 0) break;
        position += bytesRead;
        const filled = buffer.subarray(0, carried + bytesRead);
        let start = 0;
        for (let end = filled.indexOf(NEWLINE); end !== -1; end = filled.indexOf(NEWLINE, start)) {
            if (end > start) onLine(filled, start, end, true);
            start = end + 1;
            if (slicer.due()) await slicer.yield();
        }
        filled.copy(buffer, 0, start);
        carried = filled.length - start;
        await afterChunk?.();
        if (slicer.due()) await slicer.yield();
    }
    if (carried > 0) onLine(buffer, 0, carried, false);
    return position - carried;
}

const NEWLINE = 0x0a;

/**
 * Values decoded from the chunks `readLines` hands out, for a reader that keeps them (a restore keeps every line's
 * value as text until first use). A chunk of ASCII, as the cache's JSON almost always is, is decoded once, and each
 * value is a slice of that text: V8 makes a slice a small view of the chunk's string, which is too large for the young
 * generation. Decoded one by one, the values were copies of some hundred bytes each, all alive at the next scavenge,
 * which then had megabytes to copy: at 50,000 entries the scavenge after a restore paused the event loop 7.6–14.5 ms
 * (wherever it fell; in the bench, the compaction), against 4.0–6.2 ms with slices (5 runs each). The cost: a chunk's
 * text, its keys and times too, stays in memory while any of its values does, ~23% more heap right after a restore,
 * never more than the files read. A chunk that is not all ASCII has each value decoded as UTF-8 on its own.
 * One per reader: `readLines` hands each chunk out as a new Buffer, which is how a new chunk is told from the last.
 */
export class ChunkText {
    private chunk: Buffer | null = null;
    private text: string | null = null;

    /** The UTF-8 text of `buffer[start..end)`, where `buffer` is the chunk the line came in. */
    slice(buffer: Buffer, start: number, end: number): string {
        if (buffer !== this.chunk) {
            this.chunk = buffer;
            this.text = isAscii(buffer) ? buffer.toString('latin1') : null;
        }
        return this.text !== null ? this.text.slice(start, end) : buffer.toString('utf8', start, end);
    }
}

/** Bytes collected for a file, written out in large chunks. */
export class ByteSink {
    private buffer = Buffer.allocUnsafe(READ_CHUNK_BYTES * 2);
    private length = 0;
    written = 0;

    constructor(private readonly handle: FileHandle) {}

    /** Adds `source[start..end)` and a newline. */
    pushLine(source: Buffer, start: number, end: number): void {
        this.reserve(end - start + 1);
        this.length += source.copy(this.buffer, this.length, start, end);
        this.buffer[this.length++] = NEWLINE;
    }

    pushText(text: string): void {
        const bytes = Buffer.byteLength(text);
        this.reserve(bytes);
        this.length += this.buffer.write(text, this.length, 'utf8');
    }

    /** Writes what is collected once it reaches `atLeast` bytes. */
    async drain(atLeast = READ_CHUNK_BYTES): Promise<void> {
        if (this.length < atLeast || this.length === 0) return;
        let offset = 0;
        while (offset < this.length) offset += (await this.handle.write(this.buffer, offset, this.length - offset)).bytesWritten;
        this.written += this.length;
        this.length = 0;
    }

    private reserve(bytes: number): void {
        if (this.length + bytes <= this.buffer.length) return;
        const bigger = Buffer.allocUnsafe(Math.max(this.buffer.length * 2, this.length + bytes));
        this.buffer.copy(bigger, 0, 0, this.length);
        this.buffer = bigger;
    }
}

/** The errno code only: a whole error object could carry more than a path. */
export function errorCode(error: unknown): string {
    const code = (error as NodeJS.ErrnoException | undefined)?.code;
    return typeof code === 'string' ? code : error instanceof Error ? error.name : 'unknown';
}
