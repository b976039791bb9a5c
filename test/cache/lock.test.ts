import { mkdtempSync, readFileSync, readdirSync, rmSync, utimesSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { LOCK_STALE_MS, removeStale, staleLock, tryLock } from '../../src/cache/lock.js';

let dir: string;
let path: string;
const holder = (): string | undefined => (JSON.parse(readFileSync(path, 'utf8')) as { token?: string }).token;

/** A lock left by a process that is gone: older than `LOCK_STALE_MS`, of a pid that runs nowhere. */
function staleLockFile(): void {
    writeFileSync(path, JSON.stringify({ pid: 2 ** 31 - 1, host: 'elsewhere', token: 'dead', at: 0 }));
    const old = (Date.now() - LOCK_STALE_MS - 60_000) / 1000;
    utimesSync(path, old, old);
}

describe('the compaction lock', () => {
    beforeEach(() => {
        dir = mkdtempSync(join(tmpdir(), 'cim-lock-'));
        path = join(dir, 'cache.lock');
    });
    afterEach(() => rmSync(dir, { recursive: true, force: true }));

    it('takes over a stale lock, and a live one is never taken', async () => {
        staleLockFile();
        const lock = await tryLock(path);
        expect(lock).not.toBeNull();
        expect(holder()).not.toBe('dead');
        expect(await tryLock(path)).toBeNull();
        await lock!.release();
        expect(readdirSync(dir)).toEqual([]);
    });

    it('gives back a lock another process took over first, when both found the old one stale', async () => {
        staleLockFile();
        const stale = await staleLock(path, Date.now());
        expect(stale?.record?.token).toBe('dead');
        // The other process, between this one's read and its rename: it moved the stale lock aside and made its own.
        rmSync(path);
        writeFileSync(path, JSON.stringify({ pid: process.pid, host: 'other', token: 'theirs', at: Date.now() }));
        expect(await removeStale(path, stale!, 'mine')).toBe(false);
        // Theirs is in place, and nothing is left beside it.
        expect(holder()).toBe('theirs');
        expect(readdirSync(dir)).toEqual(['cache.lock']);
        expect(await tryLock(path)).toBeNull();
    });
});
