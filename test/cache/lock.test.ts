import { mkdtempSync, readFileSync, readdirSync, rmSync, utimesSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';

/**
 * What another process does between this one's read of a stale lock and its rename: the test's hook, run once just
 * before a rename (the only step of the takeover it can come between).
 */
const beforeRename = vi.hoisted(() => ({ once: undefined as (() => void) | undefined }));
vi.mock('node:fs/promises', async original => {
    const fs = await original<typeof import('node:fs/promises')>();
    return {
        ...fs,
        rename: async (from: string, to: string) => {
            const hook = beforeRename.once;
            beforeRename.once = undefined;
            hook?.();
            return fs.rename(from, to);
        }
    };
});

const { LOCK_STALE_MS, tryLock } = await import('../../src/cache/lock.js');

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
    afterEach(() => {
        beforeRename.once = undefined;
        rmSync(dir, { recursive: true, force: true });
    });

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
        // The other process: it renamed the stale lock aside and made its own, after this one read the stale lock.
        beforeRename.once = () => {
            rmSync(path);
            writeFileSync(path, JSON.stringify({ pid: process.pid, host: 'other', token: 'theirs', at: Date.now() }));
        };
        expect(await tryLock(path)).toBeNull();
        // Theirs is in place, and nothing is left beside it.
        expect(holder()).toBe('theirs');
        expect(readdirSync(dir)).toEqual(['cache.lock']);
    });
});
