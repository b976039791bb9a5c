import * as z from 'zod';
import { decimal } from '../src/decimal.js';
import type { KeyUsage, UsageReport } from '../src/usage/tracker.js';
import { iso } from './common.js';
import { defineTool } from './define.js';
import { age, utc } from './format.js';
import { LIST_OF_OBJECTS, OBJECT, publishAs } from './published.js';

export const GetUsageInput = z.object({});

const KeyRow = z.object({
    fingerprint: z.string(),
    label: z.string().nullable(),
    /** rejected: refused by the upstream (401/403), set aside; removed: no longer configured. */
    state: z.enum(['serving', 'rejected', 'rate_limited', 'quota_used_up', 'not_yet_valid', 'expired', 'removed']),
    since: z.string().nullable(),
    /** rate_limited, quota_used_up: tried again then; not_yet_valid: its not-before. */
    until: z.string().nullable(),
    expires_at: z.string().nullable(),
    /** Endpoints that answered 403 "not in your plan". */
    not_in_plan: z.array(z.string()),
    credits_today: z.number(),
    credits_month: z.number(),
    last_success: z.string().nullable()
});

export const GetUsageOutput = z.object({
    /** YYYY-MM, UTC. */
    month: z.string(),
    day: z.string(),
    /** Upstream answers today, all keys: one credit each. */
    credits_today: z.number(),
    credits_month: z.number(),
    /** CRYPTO_INTEL_MONTHLY_CREDITS, or null. */
    monthly_credits: z.number().nullable(),
    quota_used_pct: z.number().nullable(),
    /** Thresholds reached: 80, 95 (% of monthly_credits). */
    quota_warnings: z.array(z.number()),
    // A report for people, read through its text: its parts' members are listed in the README, not in every listing.
    keys: publishAs(z.array(KeyRow), LIST_OF_OBJECTS),
    cache: publishAs(
        z.object({
            answers_from_cache: z.number(),
            shared_in_flight: z.number(),
            credits_saved: z.number(),
            /** Expired answers served while the upstream failed. */
            stale_served: z.number()
        }),
        OBJECT
    ),
    latency_last_hour: publishAs(z.object({ answers: z.number(), p50_ms: z.number().nullable(), p95_ms: z.number().nullable() }), OBJECT),
    /** The newest upstream answer per endpoint in this process. */
    endpoints: publishAs(z.array(z.object({ endpoint: z.string(), last_answer_at: z.string(), age_s: z.number() })), LIST_OF_OBJECTS),
    /** redis: all replicas together; file: kept across restarts; memory: since this start. */
    storage: z.enum(['redis', 'file', 'memory']),
    /** false while Redis cannot be read: this replica only. */
    shared: z.boolean(),
    as_of: z.string()
});

const count = (value: number): string => decimal(value, 0);
const credits = (value: number): string => `${count(value)} credit${value === 1 ? '' : 's'}`;

const STATE_TEXT: Record<KeyUsage['state'], (key: KeyUsage) => string> = {
    serving: () => 'serving',
    rejected: key => `set aside${key.since === null ? '' : ` since ${utc(key.since)}`}: the upstream rejected it`,
    rate_limited: key => `rate-limited until ${utc(key.until!)}`,
    quota_used_up: key => `quota used up, tried again ${utc(key.until!)}`,
    not_yet_valid: key => `not used before ${key.notBefore === null ? 'its not-before date' : utc(key.notBefore)}`,
    expired: () => 'expired: no longer used (remove it from the key file)',
    removed: () => 'no longer configured'
};

const DAY_MS = 86_400_000;

function keyLine(key: KeyUsage, now: number): string {
    const name = key.label === null ? key.fingerprint : `${key.fingerprint} (${key.label})`;
    const left = key.expiresAt === null || key.state === 'expired' ? null : (Date.parse(key.expiresAt) - now) / DAY_MS;
    const expiry = left !== null && left <= 7 ? `; expires in ${Math.max(0, Math.ceil(left))} day(s)` : '';
    const plan = key.notInPlan.length > 0 ? `; not in plan: ${key.notInPlan.join(', ')}` : '';
    const last = key.lastSuccess === null ? 'no success yet' : `last success ${age(Math.max(0, (now - key.lastSuccess) / 1000))} ago`;
    return `Key ${name}: ${STATE_TEXT[key.state](key)}${expiry}${plan}; ${credits(key.creditsMonth)} this month (${count(key.creditsToday)} today), ${last}.`;
}

/** A few lines a user can read in chat. */
export function renderUsage(report: UsageReport): string {
    const lines: string[] = [];
    const quota =
        report.monthlyCredits === null
            ? credits(report.creditsMonth)
            : `${count(report.creditsMonth)} of ${credits(report.monthlyCredits)} (${report.quotaUsedPct}%)`;
    lines.push(`This month (${report.month}, UTC): ${quota} spent through this server, ${count(report.creditsToday)} today.`);
    const reached = report.quotaThresholdsReached.at(-1);
    if (reached !== undefined) lines.push(`WARNING: over ${reached}% of the monthly credits are used.`);
    const { cache } = report;
    lines.push(
        `Cache: ${count(cache.answersFromCache + cache.sharedInFlight)} answers without a new upstream request saved ${credits(cache.creditsSaved)}; ` +
            `${count(cache.staleServed)} stale answers served while the upstream failed.`
    );
    if (report.keys.length === 0) lines.push('No API key configured.');
    for (const key of report.keys) lines.push(keyLine(key, report.now));
    const { latency } = report;
    lines.push(
        latency.samples === 0
            ? 'Upstream latency: no upstream answer in the last hour.'
            : `Upstream latency, last hour: p50 ${latency.p50Ms} ms, p95 ${latency.p95Ms} ms (${count(latency.samples)} answers).`
    );
    if (report.endpoints.length > 0) {
        const ages = report.endpoints.map(entry => `${entry.endpoint} ${age(Math.max(0, (report.now - entry.lastAnswerAt) / 1000))}`);
        lines.push(`Newest data fetched: ${ages.join(', ')} ago.`);
    }
    if (report.storage === 'memory') lines.push('(Counted since this start: the cache directory is off.)');
    if (!report.shared) lines.push("(Redis unreachable: this replica's figures only.)");
    if (report.storage === 'redis' && report.shared) lines.push('(All replicas together, kept in Redis.)');
    return lines.join('\n');
}

export const getUsage = defineTool({
    name: 'get_usage',
    title: 'Credits used and key health',
    description: 'Per API key: credits used today and this month, cache savings, key health. Free: reads local counters.',
    inputSchema: GetUsageInput,
    outputSchema: GetUsageOutput,
    // Reads this server's own counters, never the upstream.
    annotations: { readOnlyHint: true, openWorldHint: false },
    async handler(_args, { usage }) {
        if (usage === undefined) throw new Error('usage figures are not collected in this server');
        const report = await usage.report();
        const structured = {
            month: report.month,
            day: report.day,
            credits_today: report.creditsToday,
            credits_month: report.creditsMonth,
            monthly_credits: report.monthlyCredits,
            quota_used_pct: report.quotaUsedPct,
            quota_warnings: report.quotaThresholdsReached,
            keys: report.keys.map(key => ({
                fingerprint: key.fingerprint,
                label: key.label,
                state: key.state,
                since: key.since === null ? null : iso(key.since),
                until: key.until === null ? null : iso(key.until),
                expires_at: key.expiresAt,
                not_in_plan: key.notInPlan,
                credits_today: key.creditsToday,
                credits_month: key.creditsMonth,
                last_success: key.lastSuccess === null ? null : iso(key.lastSuccess)
            })),
            cache: {
                answers_from_cache: report.cache.answersFromCache,
                shared_in_flight: report.cache.sharedInFlight,
                credits_saved: report.cache.creditsSaved,
                stale_served: report.cache.staleServed
            },
            latency_last_hour: { answers: report.latency.samples, p50_ms: report.latency.p50Ms, p95_ms: report.latency.p95Ms },
            endpoints: report.endpoints.map(entry => ({
                endpoint: entry.endpoint,
                last_answer_at: iso(entry.lastAnswerAt),
                age_s: Math.max(0, Math.round((report.now - entry.lastAnswerAt) / 1000))
            })),
            storage: report.storage,
            shared: report.shared,
            as_of: iso(report.now)
        };
        return { structured, text: renderUsage(report) };
    }
});
