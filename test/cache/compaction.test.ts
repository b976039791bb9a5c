import { mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { rewrite, type CompactionOptions } from '../../src/cache/compaction.js';
import { CacheDir } from '../../src/cache/disk-files.js';
import { CACHE_FILE_NAME, CACHE_FILE_VERSION, JOURNAL_PREFIX, serialize } from '../../src/cache/disk-format.js';
import { MAX_CACHE_FILE_BYTES } from '../../src/cache/files.js';
import { FakeClock, RecordingLogger } from './fakes.js';

const MINUTE = 60_000;
let dir: string;

beforeEach(() => {
    dir = mkdtempSync(join(tmpdir(), 'compaction-test-'));
});

afterEach(() => {
    rmSync(dir, { recursive: true, force: true });
});

const clock = new FakeClock();
const now = clock.now();
const entry = (key: string, value: unknown, minutesAgo: number): string =>
    serialize(key, { value, fetchedAt: now - minutesAgo * MINUTE, expiresAt: now - minutesAgo * MINUTE + MINUTE });
const header = (kind: 'snapshot' | 'journal'): string =>
    JSON.stringify(kind === 'snapshot' ? { version: CACHE_FILE_VERSION, kind } : { version: CACHE_FILE_VERSION, kind, pid: 1, host: 'h' });
const write = (name: string, lines: string[]): void => writeFileSync(join(dir, name), `${lines.join('\n')}\n`, { mode: 0o600 });

async function compact(options: Partial<CompactionOptions> = {}): Promise<string[]> {
    const files = new CacheDir(dir, new RecordingLogger(), MAX_CACHE_FILE_BYTES);
    await rewrite(
        files,
        {
            clock,
            knownKey: key => key.startsWith('price:') || key.startsWith('tokens:'),
            staleMaxMs: 30 * MINUTE,
            maxEntries: 100,
            ...options
        },
        new Set()
    );
    const [first, ...rest] = readFileSync(join(dir, CACHE_FILE_NAME), 'utf8').split('\n');
    expect(JSON.parse(first!)).toMatchObject({ version: CACHE_FILE_VERSION, kind: 'snapshot' });
    expect(rest.pop()).toBe('');
    return rest;
}

describe('compaction', () => {
    const kept = entry('price:1', { priceUsd: 1 }, 5);
    // Written by another writer: spaces, an escaped key, a time with a fraction. Copied as it is.
    const spelledOtherwise = `{"key": "tokens:name:say \\"hi\\"", "fetchedAt": ${now - MINUTE + 0.5}, "expiresAt": ${now}}\t[{"tokenId":7}]`;
    const negative = entry('tokens:symbol:UNII', [], 4);
    const tooOld = entry('price:2', { priceUsd: 2 }, 120);
    const unknownKind = entry('moonshots:all', [1], 3);
    const superseded = entry('price:3', { priceUsd: 3 }, 10);
    const newer = entry('price:3', { priceUsd: 30 }, 1);
    const fromJournal = entry('price:4', { priceUsd: 4 }, 2);

    it('copies the snapshot lines it keeps byte for byte, then the journals’ newest entries', async () => {
        write(CACHE_FILE_NAME, [header('snapshot'), kept, tooOld, 'not an entry', spelledOtherwise, unknownKind, superseded, negative]);
        write(`${JOURNAL_PREFIX}1-abcdef.jsonl`, [header('journal'), newer, fromJournal]);
        expect(await compact()).toEqual([kept, spelledOtherwise, negative, newer, fromJournal]);
    });

    it('drops the oldest lines beyond the bounds, counting negative answers apart', async () => {
        write(CACHE_FILE_NAME, [header('snapshot'), kept, spelledOtherwise, negative, entry('tokens:symbol:NOPE', null, 3)]);
        write(`${JOURNAL_PREFIX}1-abcdef.jsonl`, [header('journal'), fromJournal]);
        expect(await compact({ maxEntries: 2, maxNegativeEntries: 1 })).toEqual([
            spelledOtherwise,
            entry('tokens:symbol:NOPE', null, 3),
            fromJournal
        ]);
    });

    it('copies a snapshot larger than one read chunk whole, in order', async () => {
        const lines = Array.from({ length: 5_000 }, (_, i) => entry(`price:${i}`, { priceUsd: i, pad: 'x'.repeat(i % 200) }, 5));
        write(CACHE_FILE_NAME, [header('snapshot'), ...lines]);
        expect(await compact({ maxEntries: 10_000 })).toEqual(lines);
        expect(readdirSync(dir)).toEqual([CACHE_FILE_NAME]);
    });
});
