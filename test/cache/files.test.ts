import fc from 'fast-check';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { open } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { ChunkText, readLines } from '../../src/cache/files.js';

let dir: string;
beforeEach(() => (dir = mkdtempSync(join(tmpdir(), 'cache-files-'))));
afterEach(() => rmSync(dir, { recursive: true, force: true }));

/**
 * Runs `readLines` over a file holding `text`, calling `onLine` for each complete line with the chunk it came in. As in
 * the cache's readers, a line is read during its callback: the chunks share the read buffer's memory, which the next
 * read overwrites.
 */
async function readEach(text: string, onLine: (chunk: Buffer, start: number, end: number) => void): Promise<void> {
    const path = join(dir, 'lines.jsonl');
    writeFileSync(path, text);
    const handle = await open(path, 'r');
    try {
        await readLines(handle, Buffer.byteLength(text), (chunk, start, end, complete) => {
            if (complete) onLine(chunk, start, end);
        });
    } finally {
        await handle.close();
    }
}

/** Values as a cache line holds them: JSON, mostly ASCII. */
const asciiValue = fc.string({
    unit: fc.constantFrom('a', 'Z', '7', '"', ':', ',', '{', '}', '.', ' '),
    minLength: 100,
    maxLength: 400,
    size: 'max'
});
/** Now and then a name beyond ASCII (2, 3 and 4 UTF-8 bytes). */
const mixedValue = fc.oneof(
    { weight: 9, arbitrary: asciiValue },
    {
        weight: 1,
        arbitrary: fc.string({ unit: fc.constantFrom('a', 'é', '日', '\u{1F680}', '"'), minLength: 1, maxLength: 60, size: 'max' })
    }
);
/** Runs of lines of either kind, each about a chunk long: some chunks all ASCII (decoded once), some not (value by value). */
const values = fc
    .array(
        fc.oneof(fc.array(asciiValue, { minLength: 600, maxLength: 1_200 }), fc.array(mixedValue, { minLength: 600, maxLength: 1_200 })),
        {
            minLength: 2,
            maxLength: 4
        }
    )
    .map(runs => runs.flat());

describe('values read from the cache files', () => {
    it('decode to the text of their bytes, whether their chunk is ASCII or not', async () => {
        await fc.assert(
            fc.asyncProperty(values, async lines => {
                // Over 256 KiB: several chunks, and lines cut by a chunk's end.
                const text = lines.map((line, i) => `{"key":"k${i}"}\t${line}`).join('\n') + '\n';
                const decoded: string[] = [];
                const seen = new Set<Buffer>();
                const chunks = new ChunkText();
                await readEach(text, (chunk, start, end) => {
                    seen.add(chunk);
                    decoded.push(chunks.slice(chunk, chunk.indexOf(0x09, start) + 1, end));
                });
                expect(seen.size).toBeGreaterThan(1);
                expect(decoded).toEqual(lines);
            }),
            { seed: 8_122, numRuns: 12, endOnFailure: true }
        );
    });

    it('come in a new Buffer for each chunk, which is how ChunkText tells a chunk from the last', async () => {
        const lines = Array.from({ length: 4_000 }, (_, i) => `{"key":"price:${i}"}\t${'x'.repeat(150)}`);
        const seen = new Set<Buffer>();
        const decoded: string[] = [];
        const decoder = new ChunkText();
        await readEach(lines.join('\n') + '\n', (chunk, start, end) => {
            seen.add(chunk);
            decoded.push(decoder.slice(chunk, start, end));
        });
        // ~690 KB in chunks of 256 KiB: three, each its own object though they share the read buffer's memory.
        expect(seen.size).toBe(3);
        expect(decoded).toEqual(lines);
    });
});
