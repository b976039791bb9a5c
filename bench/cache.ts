import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { monitorEventLoopDelay, performance } from 'node:perf_hooks';
import { CachedMarketService } from '../src/cache/cached-market-service.js';
import { systemClock } from '../src/clock.js';
import type { Logger } from '../src/logger.js';
import { FakeMarketData } from '../test/cache/fakes.js';
import type { FakeUpstream } from '../test/fake-upstream/index.js';
import { startServer } from '../test/helpers/server-process.js';
import { median, round } from './stats.js';
import { PRICES, TM_GRADES, TRADING_SIGNALS } from '../src/endpoints/registry.js';

/**
 * The persistent cache at 10k and 50k entries: what it adds to start-up (spawn to `tools/list` answered, against an
 * empty cache directory), how long the restore takes in the background, and the longest event-loop block while
 * restoring, appending 1,000 changes, and compacting it all at close (targets: +20 ms at 50k, 10 ms). Blocks include
 * garbage-collection pauses, which grow when the machine's cores are busy.
 */

const SIZES = [10_000, 50_000];
const STARTS = 9;
/** Processes measured per size; each figure is their median (a busy machine's pauses vary a lot from run to run). */
const ROUNDS = 3;
/** Room for the largest size plus the rounds' changes; lru-cache preallocates for `max`, a cost of its own at construction. */
const MAX_ENTRIES = 60_000;
const KEY = 'tm-bench-0000-0000-b3nc';
const quiet: Logger = { error: () => undefined, warn: () => undefined, info: () => undefined, debug: () => undefined };

export interface CacheSizeFigures {
    entries: number;
    snapshotStartupAddedMs: number;
    /** The synchronous part: constructing the cache over a directory holding this many entries. */
    constructMs: number;
    restoreMs: number;
    longestBlockMs: { restore: number; append: number; compaction: number };
}

export interface CacheBenchFigures {
    emptyStartupMs: number;
    sizes: CacheSizeFigures[];
}

/** Runs `work` while sampling event-loop delay every millisecond; resolves the longest block seen, in ms. */
async function longestBlock(work: () => Promise<unknown>): Promise<number> {
    const histogram = monitorEventLoopDelay({ resolution: 1 });
    histogram.enable();
    await work();
    // One more turn so a block at the very end is sampled too.
    await new Promise(resolve => setTimeout(resolve, 5));
    histogram.disable();
    return round(histogram.max / 1e6, 1);
}

function service(dir: string, inner = new FakeMarketData()): CachedMarketService {
    return new CachedMarketService({
        inner,
        clock: systemClock,
        logger: quiet,
        staleMaxAgeSeconds: 24 * 3600,
        batchWindowMs: 0,
        maxEntries: MAX_ENTRIES,
        cacheDir: dir,
        // Far beyond the run: the bench flushes by hand, so the append it measures holds every entry.
        persistDebounceMs: 600_000
    });
}

/** Fills a directory with `entries` entries (prices, grades and signals over distinct ids), compacted into a snapshot. */
async function populate(dir: string, entries: number): Promise<void> {
    const cache = service(dir);
    const perKind = Math.ceil(entries / 3);
    for (let from = 1; from <= perKind; from += 100) {
        const ids = Array.from({ length: Math.min(100, perKind - from + 1) }, (_, i) => from + i);
        await cache.get(PRICES, { ids });
        await cache.get(TM_GRADES, { ids });
        await cache.get(TRADING_SIGNALS, { ids, days: 7 });
    }
    await cache.close();
}

/**
 * A process on that directory: its restore, then a busy minute's writes (1,000 new entries appended at once), then
 * its compaction at close (the whole cache plus those entries).
 */
async function writes(
    dir: string,
    round: number
): Promise<{ constructMs: number; restoreMs: number; restore: number; append: number; compaction: number }> {
    let cache!: CachedMarketService;
    let constructMs = 0;
    let restoreMs = 0;
    const restore = await longestBlock(async () => {
        const started = performance.now();
        cache = service(dir);
        // What the start-up path pays: construction reads nothing, the restore runs after it.
        constructMs = performance.now() - started;
        await cache.restore();
        restoreMs = performance.now() - started;
    });
    const first = 1_000_000 + round * 1_000;
    for (let from = first; from < first + 1_000; from += 100)
        await cache.get(PRICES, { ids: Array.from({ length: 100 }, (_, i) => from + i) });
    const append = await longestBlock(() => cache.flush());
    const compaction = await longestBlock(() => cache.close());
    return { constructMs, restoreMs, restore, append, compaction };
}

/** Spawn to `tools/list` answered, once per directory in turn (so a machine's changing load touches each alike). */
async function startupMs(fake: FakeUpstream, cacheDirs: readonly string[]): Promise<number[]> {
    const samples = cacheDirs.map((): number[] => []);
    for (let i = 0; i < STARTS; i++) {
        for (const [d, cacheDir] of cacheDirs.entries()) {
            const started = performance.now();
            const env = {
                TOKEN_METRICS_API_KEY: KEY,
                TOKEN_METRICS_BASE_URL: fake.baseUrl,
                CRYPTO_INTEL_CACHE_DIR: cacheDir,
                // Room for every entry on disk (the default keeps 10,000), so the restore holds them all.
                CRYPTO_INTEL_CACHE_MAX_ENTRIES: String(MAX_ENTRIES),
                CRYPTO_INTEL_LOG_LEVEL: 'warn'
            };
            const { client, server } = await startServer(env);
            await client.listTools();
            samples[d]!.push(performance.now() - started);
            await server.close();
        }
    }
    return samples.map(median);
}

export async function runCacheBench(fake: FakeUpstream): Promise<CacheBenchFigures> {
    const root = mkdtempSync(join(tmpdir(), 'crypto-intel-cache-bench-'));
    try {
        const dirs = SIZES.map(entries => join(root, String(entries)));
        const measured: Array<Awaited<ReturnType<typeof writes>>> = [];
        for (const [i, entries] of SIZES.entries()) {
            await populate(dirs[i]!, entries);
            const rounds: Array<Awaited<ReturnType<typeof writes>>> = [];
            for (let round = 0; round < ROUNDS; round++) rounds.push(await writes(dirs[i]!, round));
            const mid = (pick: (figures: (typeof rounds)[number]) => number): number => median(rounds.map(pick));
            measured.push({
                // A cost, not a pause: the least of the rounds (the others include whatever preempted them).
                constructMs: Math.min(...rounds.map(r => r.constructMs)),
                restoreMs: mid(r => r.restoreMs),
                restore: mid(r => r.restore),
                append: mid(r => r.append),
                compaction: mid(r => r.compaction)
            });
        }
        const [emptyStartupMs, ...withCache] = await startupMs(fake, [join(root, 'empty'), ...dirs]);
        const sizes = SIZES.map((entries, i): CacheSizeFigures => ({
            entries,
            snapshotStartupAddedMs: round(withCache[i]! - emptyStartupMs!, 1),
            constructMs: round(measured[i]!.constructMs, 2),
            restoreMs: round(measured[i]!.restoreMs, 1),
            longestBlockMs: { restore: measured[i]!.restore, append: measured[i]!.append, compaction: measured[i]!.compaction }
        }));
        return { emptyStartupMs: round(emptyStartupMs!, 1), sizes };
    } finally {
        rmSync(root, { recursive: true, force: true });
    }
}

export function formatCacheBench(figures: CacheBenchFigures): string {
    return [
        `persistent cache              start-up to tools/list ${figures.emptyStartupMs} ms with an empty cache directory`,
        ...figures.sizes.map(
            size =>
                `  ${String(size.entries).padStart(6)} entries         start-up ${size.snapshotStartupAddedMs >= 0 ? '+' : ''}${size.snapshotStartupAddedMs} ms (target <= +20 at 50k), ` +
                `(construction ${size.constructMs} ms), restore ${size.restoreMs} ms in the background; longest event-loop block: restore ${size.longestBlockMs.restore} ms, ` +
                `append of 1,000 changes ${size.longestBlockMs.append} ms, compaction ${size.longestBlockMs.compaction} ms (target <= 10)`
        )
    ].join('\n');
}
