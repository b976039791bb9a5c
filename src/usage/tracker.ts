import type { UpstreamAttempt } from '../api/http.js';
import type { CacheStats } from '../cache/market-service.js';
import type { Clock } from '../clock.js';
import type { KeyStats } from '../keys/pool.js';
import type { Logger } from '../logger.js';
import { CacheCountsSeen, cacheFigures } from './cache-counters.js';
import {
    emptyCacheCounts,
    emptyMonth,
    emptyUsage,
    ensureUsageDir,
    mergeUsage,
    pruneUsage,
    readUsageFile,
    USAGE_FILE_NAME,
    writeUsageFile,
    type CacheCounts,
    type UsageData
} from './file.js';
import { KeyHealth } from './key-health.js';
import { LatencyWindow } from './latency.js';
import { MonthlyQuota, type QuotaWarningListener } from './quota.js';
import type { UsageLedger } from './redis-ledger.js';
import type { KeyLifecycle, UsageReport, UsageSource } from './report.js';

// The report's types, where the tools have always imported them from.
export type { KeyUsage, UsageReport, UsageSource } from './report.js';

const DEFAULT_PERSIST_DEBOUNCE_MS = 2_000;

export interface UsageTrackerOptions {
    clock: Clock;
    logger: Logger;
    /** Where `usage-v1.json` lives; `null` keeps the figures in memory (they start at zero after a restart). */
    cacheDir: string | null;
    monthlyCredits: number | null;
    keyStats: () => KeyStats[];
    cacheStats: () => CacheStats;
    persistDebounceMs?: number;
    /** A team deployment's Redis: replicas add their figures up there, and the cache directory is not used for them. */
    ledger?: UsageLedger;
    /** Labels and validity dates from the key file (the key manager's `describeKeys`). */
    keyLifecycle?: () => KeyLifecycle[];
    /** Told when a quota threshold is first reached this month, e.g. to record it in the audit trail. */
    onQuotaWarning?: QuotaWarningListener;
}

const monthOf = (ms: number): string => new Date(ms).toISOString().slice(0, 7);
const dayOf = (ms: number): string => new Date(ms).toISOString().slice(0, 10);
const sum = (values: Record<string, number> | undefined): number => Object.values(values ?? {}).reduce((total, value) => total + value, 0);

/**
 * Credits spent through this server, per key fingerprint, today and this month (UTC); what the cache saved; key health;
 * upstream latency. Fed by `UpstreamHttp`'s `onAttempt` observer: every attempt that got an HTTP answer is one credit
 * (what the upstream counts), a connection failure none.
 *
 * Persistence: the figures on disk plus this process's changes since its last write (`pending`). A write re-reads the
 * file and adds `pending` to it, so several servers sharing one cache directory (Claude Desktop starts one per chat)
 * add up instead of overwriting each other. With a Redis `ledger` (a team deployment), writes add `pending` there
 * instead, and the report reads the deployment's totals back.
 */
export class UsageTracker implements UsageSource {
    private readonly clock: Clock;
    private readonly logger: Logger;
    private readonly dir: string | null;
    private readonly quota: MonthlyQuota;
    private readonly keyStats: () => KeyStats[];
    private readonly cacheStats: () => CacheStats;
    private readonly debounceMs: number;
    /** What the file held when last read or written. */
    private base: UsageData = emptyUsage();
    /** This process's changes since then. */
    private pending: UsageData = emptyUsage();
    /** The cache's cumulative counters when last taken into `pending`. */
    private readonly cacheSeen = new CacheCountsSeen();
    private readonly latency = new LatencyWindow();
    private readonly lastAnswer = new Map<string, number>();
    private readonly health = new KeyHealth();
    private timer: NodeJS.Timeout | null = null;
    private writing: Promise<void> = Promise.resolve();
    private closed = false;
    private fileProblem: string | null = null;
    private readonly ledger: UsageLedger | null;
    private readonly keyLifecycle: (() => KeyLifecycle[]) | undefined;
    /** With a ledger: what this replica has added to it, for when Redis cannot be read. */
    private added: UsageData = emptyUsage();
    private sharedRead = true;

    constructor(options: UsageTrackerOptions) {
        this.clock = options.clock;
        this.logger = options.logger;
        this.quota = new MonthlyQuota(options.monthlyCredits, options.logger, options.onQuotaWarning);
        this.keyStats = options.keyStats;
        this.cacheStats = options.cacheStats;
        this.debounceMs = Math.max(0, options.persistDebounceMs ?? DEFAULT_PERSIST_DEBOUNCE_MS);
        this.ledger = options.ledger ?? null;
        this.keyLifecycle = options.keyLifecycle;
        this.dir = this.ledger === null && options.cacheDir !== null && ensureUsageDir(options.cacheDir) ? options.cacheDir : null;
        if (this.ledger === null && options.cacheDir !== null && this.dir === null) {
            this.logger.warn('usage figures cannot be saved: the cache directory cannot be created; counting in memory', {
                path: options.cacheDir
            });
        }
        if (this.dir !== null) this.base = this.load(this.dir);
    }

    /** The `onAttempt` observer. */
    record(attempt: UpstreamAttempt): void {
        const now = this.clock.now();
        this.health.noteAttempt(attempt, now);
        if (attempt.status <= 0) return;
        const month = (this.pending.months[monthOf(now)] ??= emptyMonth());
        month.credits[attempt.fingerprint] = (month.credits[attempt.fingerprint] ?? 0) + 1;
        const day = (this.pending.days[dayOf(now)] ??= {});
        day[attempt.fingerprint] = (day[attempt.fingerprint] ?? 0) + 1;
        if (attempt.status >= 200 && attempt.status < 300) {
            this.pending.lastSuccess[attempt.fingerprint] = now;
            this.lastAnswer.set(attempt.endpoint, now);
        }
        this.latency.add(now, attempt.ms);
        // With Redis, the deployment's total is known only after a flush, which checks the quota then.
        if (this.ledger === null) this.checkQuota(now);
        this.changed();
    }

    async report(): Promise<UsageReport> {
        // With Redis: add this replica's news, then read the deployment's totals back.
        if (this.ledger !== null) await this.flush();
        const now = this.clock.now();
        this.takeCacheStats(now);
        // Other servers sharing the directory may have written since: the file is small, read it again.
        if (this.dir !== null) this.base = this.load(this.dir);
        const view = mergeUsage(this.base, this.pending);
        const month = monthOf(now);
        const day = dayOf(now);
        const monthRecord = view.months[month] ?? emptyMonth();
        const today = view.days[day] ?? {};
        const creditsMonth = sum(monthRecord.credits);
        const keys = this.health.usages(
            this.keyStats(),
            this.keyLifecycle?.() ?? [],
            { month: monthRecord, today, lastSuccess: view.lastSuccess },
            now
        );
        return {
            now,
            month,
            day,
            creditsToday: sum(today),
            creditsMonth,
            ...this.quota.figures(creditsMonth),
            keys,
            cache: cacheFigures(monthRecord.cache),
            latency: this.latency.summary(now),
            endpoints: [...this.lastAnswer]
                .map(([endpoint, lastAnswerAt]) => ({ endpoint, lastAnswerAt }))
                .sort((a, b) => a.endpoint.localeCompare(b.endpoint)),
            storage: this.ledger !== null ? 'redis' : this.dir === null ? 'memory' : 'file',
            shared: this.ledger === null || this.sharedRead
        };
    }

    /** Writes the file (or adds to Redis) now; no-op in memory. Never rejects: a failed write is retried at the next one. */
    async flush(): Promise<void> {
        if (this.dir === null && this.ledger === null) return;
        this.clearTimer();
        const { dir, ledger } = this;
        this.writing = this.writing.then(() => (ledger !== null ? this.addToLedger(ledger) : this.write(dir!)));
        await this.writing;
    }

    /** Flushes and stops the timer; idempotent. */
    async close(): Promise<void> {
        this.closed = true;
        await this.flush();
    }

    /** Logs once per threshold per month (remembered in the file, so a restart does not repeat it). */
    private checkQuota(now: number): void {
        const month = monthOf(now);
        const base = this.base.months[month];
        const pending = this.pending.months[month]!;
        const used = sum(base?.credits) + sum(pending.credits);
        pending.warned.push(...this.quota.warnReached(month, used, [...(base?.warned ?? []), ...pending.warned]));
    }

    /** Adds what the cache counted since last time to this month's pending figures. */
    private takeCacheStats(now: number): void {
        let stats: CacheStats;
        try {
            stats = this.cacheStats();
        } catch {
            return;
        }
        const deltas = this.cacheSeen.since(stats);
        if (deltas.length === 0) return;
        const record = (this.pending.months[monthOf(now)] ??= emptyMonth());
        for (const [endpoint, delta] of deltas) {
            const into = (record.cache[endpoint] ??= emptyCacheCounts());
            for (const field of Object.keys(delta) as Array<keyof CacheCounts>) into[field] += delta[field];
        }
        this.changed();
    }

    private changed(): void {
        if ((this.dir === null && this.ledger === null) || this.closed || this.timer !== null) return;
        this.timer = setTimeout(() => {
            this.timer = null;
            void this.flush();
        }, this.debounceMs);
        this.timer.unref();
    }

    private clearTimer(): void {
        if (this.timer !== null) clearTimeout(this.timer);
        this.timer = null;
    }

    private load(dir: string): UsageData {
        const read = readUsageFile(dir);
        if (read.kind === 'ok') {
            this.fileProblem = null;
            return read.data;
        }
        if (read.kind === 'bad' && this.fileProblem !== read.problem) {
            this.fileProblem = read.problem;
            this.logger.warn(`usage file ${read.problem}; it will be replaced`, { path: dir, file: USAGE_FILE_NAME });
        }
        return this.base;
    }

    private async addToLedger(ledger: UsageLedger): Promise<void> {
        const now = this.clock.now();
        this.takeCacheStats(now);
        const pending = this.pending;
        this.pending = emptyUsage();
        if (!isEmpty(pending)) {
            if (await ledger.add(pending)) {
                this.added = mergeUsage(this.added, pending);
            } else {
                // Redis is down (the link has said so in the log): keep the figures for the next try.
                this.pending = mergeUsage(pending, this.pending);
            }
        }
        const shared = await ledger.read(monthOf(now), dayOf(now));
        this.sharedRead = shared !== null;
        this.base = shared ?? pruneUsage(this.added, monthOf(now), dayOf(now));
        const month = monthOf(now);
        await this.quota.warnReachedShared(month, sum(this.base.months[month]?.credits) + sum(this.pending.months[month]?.credits), ledger);
    }

    private async write(dir: string): Promise<void> {
        const now = this.clock.now();
        this.takeCacheStats(now);
        const pending = this.pending;
        if (isEmpty(pending)) return;
        // Another server may have written since: add this process's changes to what the file holds now.
        const onDisk = readUsageFile(dir);
        const base = onDisk.kind === 'ok' ? onDisk.data : this.base;
        const merged = pruneUsage(mergeUsage(base, pending), monthOf(now), dayOf(now));
        this.pending = emptyUsage();
        try {
            await writeUsageFile(dir, merged);
            this.base = merged;
        } catch (error) {
            // Keep the changes for the next write.
            this.pending = mergeUsage(pending, this.pending);
            this.logger.warn('usage file could not be written; the figures stay in memory until the next try', {
                path: dir,
                error: (error as NodeJS.ErrnoException).code ?? 'unknown'
            });
        }
    }
}

function isEmpty(data: UsageData): boolean {
    return Object.keys(data.months).length === 0 && Object.keys(data.days).length === 0 && Object.keys(data.lastSuccess).length === 0;
}
