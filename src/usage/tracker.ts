import type { UpstreamAttempt } from '../api/http.js';
import { CACHE_ENDPOINTS, type CacheEndpoint, type CacheStats } from '../cache/market-service.js';
import type { Clock } from '../clock.js';
import type { KeyStats } from '../keys/pool.js';
import type { Logger } from '../logger.js';
import type { UsageLedger } from './redis-ledger.js';
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

/** Percent of `CRYPTO_INTEL_MONTHLY_CREDITS` at which the tool and a log warning speak up, once per month each. */
export const QUOTA_THRESHOLDS = [80, 95] as const;
/** Latency is reported over this window. */
export const LATENCY_WINDOW_MS = 3_600_000;
/** Bound on the latency samples kept (one per upstream answer): an hour of a busy team server fits. */
const MAX_LATENCY_SAMPLES = 10_000;
const DEFAULT_PERSIST_DEBOUNCE_MS = 2_000;

export type KeyState = 'serving' | 'rejected' | 'rate_limited' | 'quota_used_up' | 'not_yet_valid' | 'expired' | 'removed';

/** What the key file says of a key (label, dates) and whether its dates allow it today. */
export interface KeyLifecycle {
    fingerprint: string;
    label: string | null;
    /** `not-yet-valid` and `expired` keys are not used; `expiring` ones are, for at most 7 more days. */
    state: string;
    notBefore: string | null;
    expiresAt: string | null;
}

export interface KeyUsage {
    fingerprint: string;
    label: string | null;
    state: KeyState;
    /** First instant it is no longer used (ISO), from the key file's `expires`; null without one. */
    expiresAt: string | null;
    /** First instant of use (ISO), from `not-before`; null without one. */
    notBefore: string | null;
    /** `rejected`: when the upstream rejected it (ms epoch). */
    since: number | null;
    /** `rate_limited` and `quota_used_up`: when it is tried again (ms epoch). */
    until: number | null;
    /** Endpoints this key got "not in your plan" (403) for, and has not been served since. */
    notInPlan: string[];
    creditsToday: number;
    creditsMonth: number;
    lastSuccess: number | null;
}

export interface UsageReport {
    now: number;
    /** `YYYY-MM`, UTC. */
    month: string;
    /** `YYYY-MM-DD`, UTC. */
    day: string;
    creditsToday: number;
    creditsMonth: number;
    monthlyCredits: number | null;
    /** Percent of `monthlyCredits` used, one decimal; null without a quota. */
    quotaUsedPct: number | null;
    /** The thresholds (80, 95) this month's use has reached. */
    quotaThresholdsReached: number[];
    keys: KeyUsage[];
    cache: {
        /** Entries answered from the cache (this process's or, in a team, another replica's) this month. */
        answersFromCache: number;
        /** Entries that joined an upstream call already in flight instead of making their own. */
        sharedInFlight: number;
        /** Credits those answers saved: entries per credit differ per endpoint (one price call covers many tokens). */
        creditsSaved: number;
        /** Expired answers served because the upstream failed. */
        staleServed: number;
    };
    latency: { samples: number; p50Ms: number | null; p95Ms: number | null };
    /** The newest upstream answer per endpoint: how old the freshest data of each kind is. */
    endpoints: Array<{ endpoint: string; lastAnswerAt: number }>;
    /** Where the figures live between restarts: Redis (a team's replicas together), the cache directory, or nowhere. */
    storage: 'redis' | 'file' | 'memory';
    /** With Redis: false when it could not be read, so the figures are this replica's only. */
    shared: boolean;
}

/** What `get_usage` reads. */
export interface UsageSource {
    report(): Promise<UsageReport>;
}

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
    onQuotaWarning?: (warning: { used: number; quota: number; month: string; threshold: number }) => void;
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
    private readonly monthlyCredits: number | null;
    private readonly keyStats: () => KeyStats[];
    private readonly cacheStats: () => CacheStats;
    private readonly debounceMs: number;
    /** What the file held when last read or written. */
    private base: UsageData = emptyUsage();
    /** This process's changes since then. */
    private pending: UsageData = emptyUsage();
    /** The cache's cumulative counters when last taken into `pending`. */
    private cacheSeen: Record<CacheEndpoint, CacheCounts>;
    private readonly latency: Array<{ at: number; ms: number }> = [];
    private readonly lastAnswer = new Map<string, number>();
    private readonly rejectedAt = new Map<string, number>();
    private readonly notInPlan = new Map<string, Set<string>>();
    private timer: NodeJS.Timeout | null = null;
    private writing: Promise<void> = Promise.resolve();
    private closed = false;
    private fileProblem: string | null = null;
    private readonly ledger: UsageLedger | null;
    private readonly keyLifecycle: (() => KeyLifecycle[]) | undefined;
    private readonly onQuotaWarning: UsageTrackerOptions['onQuotaWarning'];
    /** With a ledger: what this replica has added to it, for when Redis cannot be read. */
    private added: UsageData = emptyUsage();
    private sharedRead = true;
    /** With a ledger: `<month>:<threshold>` warnings this replica has settled (logged, or left to another replica). */
    private readonly warnedHere = new Set<string>();

    constructor(options: UsageTrackerOptions) {
        this.clock = options.clock;
        this.logger = options.logger;
        this.monthlyCredits = options.monthlyCredits;
        this.keyStats = options.keyStats;
        this.cacheStats = options.cacheStats;
        this.debounceMs = Math.max(0, options.persistDebounceMs ?? DEFAULT_PERSIST_DEBOUNCE_MS);
        this.cacheSeen = Object.fromEntries(CACHE_ENDPOINTS.map(endpoint => [endpoint, emptyCacheCounts()])) as Record<
            CacheEndpoint,
            CacheCounts
        >;
        this.ledger = options.ledger ?? null;
        this.keyLifecycle = options.keyLifecycle;
        this.onQuotaWarning = options.onQuotaWarning;
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
        if (attempt.status === 401 || attempt.status === 403) this.rejectedAt.set(attempt.fingerprint, now);
        if (attempt.status === 403) this.plan(attempt.fingerprint).add(attempt.endpoint);
        if (attempt.status <= 0) return;
        const month = (this.pending.months[monthOf(now)] ??= emptyMonth());
        month.credits[attempt.fingerprint] = (month.credits[attempt.fingerprint] ?? 0) + 1;
        const day = (this.pending.days[dayOf(now)] ??= {});
        day[attempt.fingerprint] = (day[attempt.fingerprint] ?? 0) + 1;
        if (attempt.status >= 200 && attempt.status < 300) {
            this.pending.lastSuccess[attempt.fingerprint] = now;
            this.lastAnswer.set(attempt.endpoint, now);
            this.notInPlan.get(attempt.fingerprint)?.delete(attempt.endpoint);
        }
        this.latency.push({ at: now, ms: Math.max(0, attempt.ms) });
        if (this.latency.length > MAX_LATENCY_SAMPLES) this.latency.splice(0, this.latency.length - MAX_LATENCY_SAMPLES);
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
        const stats = this.keyStats();
        const configured = new Set(stats.map(stat => stat.fingerprint));
        const lifecycle = new Map((this.keyLifecycle?.() ?? []).map(key => [key.fingerprint, key]));
        const keys: KeyUsage[] = stats.map(stat => ({
            fingerprint: stat.fingerprint,
            label: lifecycle.get(stat.fingerprint)?.label ?? null,
            expiresAt: lifecycle.get(stat.fingerprint)?.expiresAt ?? null,
            notBefore: lifecycle.get(stat.fingerprint)?.notBefore ?? null,
            ...this.stateOf(stat, now, lifecycle.get(stat.fingerprint)),
            notInPlan: stat.revoked ? [] : [...(this.notInPlan.get(stat.fingerprint) ?? [])].sort(),
            creditsToday: today[stat.fingerprint] ?? 0,
            creditsMonth: monthRecord.credits[stat.fingerprint] ?? 0,
            lastSuccess: view.lastSuccess[stat.fingerprint] ?? null
        }));
        // Keys rotated out this month still spent credits: they stay in the account.
        for (const [fingerprint, credits] of Object.entries(monthRecord.credits)) {
            if (configured.has(fingerprint)) continue;
            keys.push({
                fingerprint,
                label: null,
                expiresAt: null,
                notBefore: null,
                state: 'removed',
                since: null,
                until: null,
                notInPlan: [],
                creditsToday: today[fingerprint] ?? 0,
                creditsMonth: credits,
                lastSuccess: view.lastSuccess[fingerprint] ?? null
            });
        }
        const samples = this.recentLatency(now);
        const quotaUsedPct = this.monthlyCredits === null ? null : Math.round((creditsMonth / this.monthlyCredits) * 1000) / 10;
        return {
            now,
            month,
            day,
            creditsToday: sum(today),
            creditsMonth,
            monthlyCredits: this.monthlyCredits,
            quotaUsedPct,
            quotaThresholdsReached: quotaUsedPct === null ? [] : QUOTA_THRESHOLDS.filter(threshold => quotaUsedPct >= threshold),
            keys,
            cache: cacheFigures(monthRecord.cache),
            latency: { samples: samples.length, p50Ms: percentile(samples, 50), p95Ms: percentile(samples, 95) },
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

    private stateOf(stat: KeyStats, now: number, lifecycle: KeyLifecycle | undefined): Pick<KeyUsage, 'state' | 'since' | 'until'> {
        // Dates first: an expired or not-yet-valid key is not used whatever the upstream last said of it.
        if (lifecycle?.state === 'expired') return { state: 'expired', since: null, until: null };
        if (lifecycle?.state === 'not-yet-valid') {
            const from = lifecycle.notBefore === null ? null : Date.parse(lifecycle.notBefore);
            return { state: 'not_yet_valid', since: null, until: from };
        }
        if (stat.revoked) return { state: 'rejected', since: this.rejectedAt.get(stat.fingerprint) ?? stat.lastUsedAt, until: null };
        if (stat.coolingUntil !== null && stat.coolingUntil > now) {
            return { state: stat.exhausted ? 'quota_used_up' : 'rate_limited', since: null, until: stat.coolingUntil };
        }
        return { state: 'serving', since: null, until: null };
    }

    private plan(fingerprint: string): Set<string> {
        let endpoints = this.notInPlan.get(fingerprint);
        if (endpoints === undefined) this.notInPlan.set(fingerprint, (endpoints = new Set()));
        return endpoints;
    }

    private recentLatency(now: number): number[] {
        while (this.latency.length > 0 && this.latency[0]!.at <= now - LATENCY_WINDOW_MS) this.latency.shift();
        return this.latency.map(sample => sample.ms);
    }

    /** Logs once per threshold per month (remembered in the file, so a restart does not repeat it). */
    private checkQuota(now: number): void {
        if (this.monthlyCredits === null) return;
        const month = monthOf(now);
        const base = this.base.months[month];
        const pending = this.pending.months[month]!;
        const used = sum(base?.credits) + sum(pending.credits);
        const warned = new Set([...(base?.warned ?? []), ...pending.warned]);
        for (const threshold of QUOTA_THRESHOLDS) {
            if (warned.has(threshold) || used * 100 < threshold * this.monthlyCredits) continue;
            pending.warned.push(threshold);
            this.warnQuota(threshold, used, month);
        }
    }

    /** Adds what the cache counted since last time to this month's pending figures. */
    private takeCacheStats(now: number): void {
        let stats: CacheStats;
        try {
            stats = this.cacheStats();
        } catch {
            return;
        }
        let moved = false;
        const month = monthOf(now);
        for (const endpoint of CACHE_ENDPOINTS) {
            const current = stats.endpoints[endpoint];
            if (current === undefined) continue;
            const seen = this.cacheSeen[endpoint];
            const delta = emptyCacheCounts();
            for (const field of Object.keys(delta) as Array<keyof CacheCounts>) {
                // A counter that went down was reset (a new cache): count it from zero.
                delta[field] = current[field] >= seen[field] ? current[field] - seen[field] : current[field];
                seen[field] = current[field];
            }
            if (Object.values(delta).every(value => value === 0)) continue;
            const record = (this.pending.months[month] ??= emptyMonth());
            const into = (record.cache[endpoint] ??= emptyCacheCounts());
            for (const field of Object.keys(delta) as Array<keyof CacheCounts>) into[field] += delta[field];
            moved = true;
        }
        if (moved) this.changed();
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
        await this.checkSharedQuota(now, ledger);
    }

    /** The deployment-wide quota check: each threshold is logged once per month by the first replica to claim it. */
    private async checkSharedQuota(now: number, ledger: UsageLedger): Promise<void> {
        if (this.monthlyCredits === null) return;
        const month = monthOf(now);
        const used = sum(this.base.months[month]?.credits) + sum(this.pending.months[month]?.credits);
        for (const threshold of QUOTA_THRESHOLDS) {
            const id = `${month}:${threshold}`;
            if (this.warnedHere.has(id) || used * 100 < threshold * this.monthlyCredits) continue;
            // Unknown (Redis down): better this replica warns too than nobody does.
            if ((await ledger.claimWarning(month, threshold)) !== false) this.warnQuota(threshold, used, month);
            this.warnedHere.add(id);
        }
    }

    private warnQuota(threshold: number, used: number, month: string): void {
        this.logger.warn(`${threshold}% of this month's Token Metrics credits used`, {
            used,
            monthlyCredits: this.monthlyCredits,
            month,
            hint: 'get_usage shows which key spent them; CRYPTO_INTEL_MONTHLY_CREDITS sets the quota'
        });
        if (this.monthlyCredits !== null) this.onQuotaWarning?.({ used, quota: this.monthlyCredits, month, threshold });
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

function cacheFigures(cache: Record<string, CacheCounts>): UsageReport['cache'] {
    let answersFromCache = 0;
    let sharedInFlight = 0;
    let saved = 0;
    let staleServed = 0;
    for (const counts of Object.values(cache)) {
        const answered = counts.hits + counts.sharedHits;
        answersFromCache += answered;
        sharedInFlight += counts.coalesced;
        staleServed += counts.staleServed;
        // One upstream call answers `misses / upstreamCalls` entries on average for this endpoint (a price call covers
        // many tokens): an entry answered without one saved that fraction of a credit. Without a miss yet, one each.
        const creditsPerEntry = counts.misses > 0 ? Math.min(1, counts.upstreamCalls / counts.misses) : 1;
        saved += (answered + counts.coalesced) * creditsPerEntry;
    }
    return { answersFromCache, sharedInFlight, creditsSaved: Math.round(saved), staleServed };
}

/** Nearest-rank percentile; null without samples. */
function percentile(values: readonly number[], p: number): number | null {
    if (values.length === 0) return null;
    const sorted = [...values].sort((a, b) => a - b);
    return sorted[Math.min(sorted.length - 1, Math.max(0, Math.ceil((p / 100) * sorted.length) - 1))]!;
}
