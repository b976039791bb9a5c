import { mkdirSync, readFileSync } from 'node:fs';
import { mkdir, rename, rm, writeFile } from 'node:fs/promises';
import { randomBytes } from 'node:crypto';
import { join } from 'node:path';
import * as z from 'zod';
import type { Logger } from '../logger.js';
import type { CacheEntry } from './store.js';

/** Bumped whenever the key scheme or an entry's shape changes: an older file is then ignored, not misread. */
export const CACHE_FILE_VERSION = 2;
export const CACHE_FILE_NAME = `cache-v${CACHE_FILE_VERSION}.json`;

const PersistedFile = z.object({
    version: z.literal(CACHE_FILE_VERSION),
    savedAt: z.number(),
    entries: z.array(z.object({ key: z.string().min(1).max(512), fetchedAt: z.number(), expiresAt: z.number(), value: z.unknown() }))
});

/** Checks a persisted value's outer shape against its key, so a hand-edited file cannot hand a tool the wrong kind of value. */
export type ValueCheck = (key: string, value: unknown) => boolean;

/**
 * Reads `<dir>/cache-v1.json` synchronously (it runs once, at construction, before any request). A missing file is
 * normal; an unreadable, corrupt or wrong-version file is logged and ignored, never fatal: the cache starts empty.
 */
export function loadCacheFile(dir: string, logger: Logger, check: ValueCheck): Array<[string, CacheEntry]> {
    const path = join(dir, CACHE_FILE_NAME);
    let text: string;
    try {
        text = readFileSync(path, 'utf8');
    } catch (error) {
        if ((error as NodeJS.ErrnoException).code !== 'ENOENT') {
            logger.warn('cache file unreadable; starting with an empty cache', { path, error: errorCode(error) });
        }
        return [];
    }
    let json: unknown;
    try {
        json = JSON.parse(text);
    } catch {
        logger.warn('cache file is not valid JSON; starting with an empty cache', { path });
        return [];
    }
    const parsed = PersistedFile.safeParse(json);
    if (!parsed.success) {
        logger.warn('cache file has an unknown version or shape; starting with an empty cache', { path });
        return [];
    }
    const entries: Array<[string, CacheEntry]> = [];
    let rejected = 0;
    for (const { key, value, fetchedAt, expiresAt } of parsed.data.entries) {
        if (check(key, value)) entries.push([key, { value, fetchedAt, expiresAt }]);
        else rejected++;
    }
    if (rejected > 0) logger.warn('cache file entries ignored: unexpected value shape', { path, rejected });
    return entries;
}

/** Creates the cache directory (owner-only) at construction, so a bad path is reported once and early. */
export function ensureCacheDir(dir: string, logger: Logger): boolean {
    try {
        mkdirSync(dir, { recursive: true, mode: 0o700 });
        return true;
    } catch (error) {
        logger.warn('cache directory cannot be created; the cache stays in memory', { path: dir, error: errorCode(error) });
        return false;
    }
}

/**
 * Writes the file atomically: a temporary file in the same directory (same filesystem, so `rename` is atomic),
 * owner-only, then renamed over the old one. A reader (or a crash) sees the old file or the new one, never half.
 */
export async function saveCacheFile(dir: string, entries: ReadonlyArray<[string, CacheEntry]>, savedAt: number): Promise<void> {
    await mkdir(dir, { recursive: true, mode: 0o700 });
    const body = JSON.stringify({
        version: CACHE_FILE_VERSION,
        savedAt,
        entries: entries.map(([key, entry]) => ({ key, fetchedAt: entry.fetchedAt, expiresAt: entry.expiresAt, value: entry.value }))
    });
    const target = join(dir, CACHE_FILE_NAME);
    const temp = join(dir, `.${CACHE_FILE_NAME}.${process.pid}.${randomBytes(4).toString('hex')}.tmp`);
    try {
        await writeFile(temp, body, { encoding: 'utf8', mode: 0o600 });
        await rename(temp, target);
    } catch (error) {
        await rm(temp, { force: true }).catch(() => undefined);
        throw error;
    }
}

/** The errno code only: a whole error object could carry more than a path. */
export function errorCode(error: unknown): string {
    const code = (error as NodeJS.ErrnoException | undefined)?.code;
    return typeof code === 'string' ? code : error instanceof Error ? error.name : 'unknown';
}
