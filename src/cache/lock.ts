import { randomBytes } from 'node:crypto';
import { hostname } from 'node:os';
import { link, open, rename, rm } from 'node:fs/promises';
import { openRegularFile } from './files.js';

/**
 * A lock older than this is taken over: a compaction takes well under a second even at the file size cap, so a lock
 * this old belongs to a process that died (or hung) while holding it.
 */
export const LOCK_STALE_MS = 30_000;
const MAX_LOCK_FILE_BYTES = 4_096;

interface LockRecord {
    pid: number;
    host: string;
    token: string;
}

/** A lock file as read: its record (null when it is not JSON) and its modification time. */
export interface ReadLock {
    record: Partial<LockRecord> | null;
    mtimeMs: number;
}

export interface FileLock {
    /** Removes the lock file if it is still this holder's (a holder judged stale may have lost it to another process). */
    release(): Promise<void>;
}

/** Whether a process with this id runs on this host (`EPERM`: it runs under another user). Works on Windows too. */
export function processAlive(pid: number): boolean {
    if (!Number.isSafeInteger(pid) || pid <= 0) return false;
    try {
        process.kill(pid, 0);
        return true;
    } catch (error) {
        return (error as NodeJS.ErrnoException).code === 'EPERM';
    }
}

/**
 * Takes the lock file at `path` without waiting: it is created with O_EXCL (`wx`), which is atomic on every platform
 * and filesystem Node supports, and holds the owner's pid, host and a random token. A lock whose owner is gone
 * (same host, pid not running) or that is older than `LOCK_STALE_MS` is moved aside (a rename: of several processes
 * judging it stale at once, one succeeds) and the create is tried once more. Resolves `null` when another live
 * process holds the lock, or when the lock cannot be taken at all (a read-only directory): the caller skips its work.
 */
export async function tryLock(path: string, now: () => number = Date.now): Promise<FileLock | null> {
    const record: LockRecord = { pid: process.pid, host: hostname(), token: randomBytes(12).toString('hex') };
    for (let attempt = 0; attempt < 2; attempt++) {
        try {
            const handle = await open(path, 'wx', 0o600);
            try {
                await handle.writeFile(JSON.stringify({ ...record, at: now() }));
            } finally {
                await handle.close();
            }
            return { release: () => releaseLock(path, record.token) };
        } catch (error) {
            if ((error as NodeJS.ErrnoException).code !== 'EEXIST' || attempt > 0) return null;
            const stale = await staleLock(path, now());
            if (stale === null || !(await removeStale(path, stale, record.token))) return null;
        }
    }
    return null;
}

async function readLock(path: string): Promise<ReadLock | null> {
    const opened = await openRegularFile(path, MAX_LOCK_FILE_BYTES);
    if (!opened.ok) return null;
    try {
        const text = await opened.handle.readFile('utf8');
        let record: Partial<LockRecord> | null = null;
        try {
            const parsed: unknown = JSON.parse(text);
            if (typeof parsed === 'object' && parsed !== null) record = parsed;
        } catch {
            // Being written right now, or garbage: only its age can tell.
        }
        return { record, mtimeMs: opened.mtimeMs };
    } finally {
        await opened.handle.close();
    }
}

/**
 * Moves the lock `stale` (as `staleLock` read it) out of the way; false when it could not. Another process that judged
 * the same lock stale may have taken it over between that read and the rename here: what moved aside is then its new
 * lock. It goes back (never over a newer one), and the work is that process's.
 */
export async function removeStale(path: string, stale: ReadLock, token: string): Promise<boolean> {
    const aside = `${path}.${token}.stale`;
    try {
        await rename(path, aside);
        const moved = await readLock(aside);
        const same = moved !== null && moved.mtimeMs === stale.mtimeMs && moved.record?.token === stale.record?.token;
        if (!same) await link(aside, path).catch(() => undefined);
        await rm(aside, { force: true });
        return same;
    } catch {
        return false;
    }
}

/** The lock at `path` when it is stale (see `tryLock`), as read; null when it is not, is gone, or is not a regular file. */
export async function staleLock(path: string, nowMs: number): Promise<ReadLock | null> {
    const lock = await readLock(path);
    if (lock === null) return null;
    if (nowMs - lock.mtimeMs > LOCK_STALE_MS) return lock;
    const { record } = lock;
    return record !== null && record.host === hostname() && typeof record.pid === 'number' && !processAlive(record.pid) ? lock : null;
}

async function releaseLock(path: string, token: string): Promise<void> {
    const lock = await readLock(path).catch(() => null);
    if (lock?.record?.token === token) await rm(path, { force: true }).catch(() => undefined);
}
