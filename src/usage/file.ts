import { SAFE_READ_FLAGS } from '../cache/files.js';
import { closeSync, fstatSync, mkdirSync, openSync, readSync } from 'node:fs';
import { mkdir, rename, rm, writeFile } from 'node:fs/promises';
import { randomBytes } from 'node:crypto';
import { join } from 'node:path';
import * as z from 'zod';

/** Bumped whenever the file's shape changes: an older file is then ignored, not misread. */
export const USAGE_FILE_VERSION = 1;
export const USAGE_FILE_NAME = `usage-v${USAGE_FILE_VERSION}.json`;
/** A few months of a few keys take a few kB; anything near this is not our file. */
export const MAX_USAGE_FILE_BYTES = 256 * 1024;

const count = z.number().int().min(0).max(Number.MAX_SAFE_INTEGER);
const counts = z.record(z.string().max(64), count);

const CacheCounts = z.object({ hits: count, sharedHits: count, coalesced: count, misses: count, upstreamCalls: count, staleServed: count });
export type CacheCounts = z.infer<typeof CacheCounts>;

const MonthRecord = z.object({
    /** Credits per key fingerprint. */
    credits: counts,
    /** Cache counters per cache endpoint, summed over every process that used this file this month. */
    cache: z.record(z.string().max(64), CacheCounts),
    /** Quota thresholds (percent) already warned about this month. */
    warned: z.array(z.number().int().min(0).max(100)).max(10)
});
export type MonthRecord = z.infer<typeof MonthRecord>;

const UsageFileSchema = z.object({
    version: z.literal(USAGE_FILE_VERSION),
    /** By `YYYY-MM` (UTC). */
    months: z.record(z.string().regex(/^\d{4}-\d{2}$/), MonthRecord),
    /** Credits per key fingerprint by `YYYY-MM-DD` (UTC). */
    days: z.record(z.string().regex(/^\d{4}-\d{2}-\d{2}$/), counts),
    /** Last 2xx answer per key fingerprint, ms epoch. */
    lastSuccess: counts
});
export type UsageData = Omit<z.infer<typeof UsageFileSchema>, 'version'>;

export const emptyUsage = (): UsageData => ({ months: {}, days: {}, lastSuccess: {} });
export const emptyMonth = (): MonthRecord => ({ credits: {}, cache: {}, warned: [] });
export const emptyCacheCounts = (): CacheCounts => ({ hits: 0, sharedHits: 0, coalesced: 0, misses: 0, upstreamCalls: 0, staleServed: 0 });

export type UsageRead = { kind: 'ok'; data: UsageData } | { kind: 'missing' } | { kind: 'bad'; problem: string };

/**
 * Reads `<dir>/usage-v1.json`: a regular file (a symlink or a FIFO is refused where the platform allows), at most
 * `MAX_USAGE_FILE_BYTES`, of the expected shape. Anything else is reported, never thrown.
 */
export function readUsageFile(dir: string): UsageRead {
    const path = join(dir, USAGE_FILE_NAME);
    let fd: number;
    try {
        // Non-blocking too: a FIFO in the file's place must not hang start-up (it is refused below, as not a file).
        fd = openSync(path, SAFE_READ_FLAGS);
    } catch (error) {
        const code = (error as NodeJS.ErrnoException).code ?? 'unknown';
        return code === 'ENOENT'
            ? { kind: 'missing' }
            : { kind: 'bad', problem: code === 'ELOOP' ? 'is a symbolic link' : `cannot be read (${code})` };
    }
    let text: string;
    try {
        const stat = fstatSync(fd);
        if (!stat.isFile()) return { kind: 'bad', problem: 'is not a regular file' };
        if (stat.size > MAX_USAGE_FILE_BYTES) return { kind: 'bad', problem: `is over ${MAX_USAGE_FILE_BYTES} bytes` };
        const buffer = Buffer.alloc(stat.size);
        let read = 0;
        while (read < buffer.length) {
            const n = readSync(fd, buffer, read, buffer.length - read, read);
            if (n === 0) break;
            read += n;
        }
        text = buffer.subarray(0, read).toString('utf8');
    } catch (error) {
        return { kind: 'bad', problem: `cannot be read (${(error as NodeJS.ErrnoException).code ?? 'unknown'})` };
    } finally {
        closeSync(fd);
    }
    let json: unknown;
    try {
        json = JSON.parse(text);
    } catch {
        return { kind: 'bad', problem: 'is not valid JSON' };
    }
    const parsed = UsageFileSchema.safeParse(json);
    if (!parsed.success) return { kind: 'bad', problem: 'has an unknown version or shape' };
    const { version: _version, ...data } = parsed.data;
    return { kind: 'ok', data };
}

/** Creates the directory owner-only; false when it cannot be. */
export function ensureUsageDir(dir: string): boolean {
    try {
        mkdirSync(dir, { recursive: true, mode: 0o700 });
        return true;
    } catch {
        return false;
    }
}

/** Atomic write: an owner-only temporary file in the same directory, renamed over the old one. */
export async function writeUsageFile(dir: string, data: UsageData): Promise<void> {
    await mkdir(dir, { recursive: true, mode: 0o700 });
    const target = join(dir, USAGE_FILE_NAME);
    const temp = join(dir, `.${USAGE_FILE_NAME}.${process.pid}.${randomBytes(4).toString('hex')}.tmp`);
    try {
        await writeFile(temp, JSON.stringify({ version: USAGE_FILE_VERSION, ...data }), { encoding: 'utf8', mode: 0o600 });
        await rename(temp, target);
    } catch (error) {
        await rm(temp, { force: true }).catch(() => undefined);
        throw error;
    }
}

/** `a + b`: counts add up, warned thresholds unite, last successes take the later time. Neither input is changed. */
export function mergeUsage(a: UsageData, b: UsageData): UsageData {
    const out = structuredClone(a);
    for (const [month, record] of Object.entries(b.months)) {
        const target = (out.months[month] ??= emptyMonth());
        addCounts(target.credits, record.credits);
        for (const [endpoint, cache] of Object.entries(record.cache)) {
            const into = (target.cache[endpoint] ??= emptyCacheCounts());
            for (const field of Object.keys(into) as Array<keyof CacheCounts>) into[field] += cache[field];
        }
        target.warned = [...new Set([...target.warned, ...record.warned])].sort((x, y) => x - y);
    }
    for (const [day, credits] of Object.entries(b.days)) addCounts((out.days[day] ??= {}), credits);
    for (const [fingerprint, at] of Object.entries(b.lastSuccess))
        out.lastSuccess[fingerprint] = Math.max(out.lastSuccess[fingerprint] ?? 0, at);
    return out;
}

/** Keeps this month and the one before, today and yesterday: what the report reads, and a margin for clocks near midnight. */
export function pruneUsage(data: UsageData, month: string, day: string): UsageData {
    const months = Object.keys(data.months).sort();
    const days = Object.keys(data.days).sort();
    const keepMonths = new Set([...months.filter(m => m <= month).slice(-2), month]);
    const keepDays = new Set([...days.filter(d => d <= day).slice(-2), day]);
    return {
        months: Object.fromEntries(Object.entries(data.months).filter(([m]) => keepMonths.has(m))),
        days: Object.fromEntries(Object.entries(data.days).filter(([d]) => keepDays.has(d))),
        lastSuccess: { ...data.lastSuccess }
    };
}

function addCounts(into: Record<string, number>, from: Record<string, number>): void {
    for (const [name, value] of Object.entries(from)) into[name] = (into[name] ?? 0) + value;
}
