import type { UpstreamAttempt } from '../api/http.js';
import type { KeyStats } from '../keys/pool.js';
import type { MonthRecord, UsageData } from './file.js';
import type { KeyLifecycle, KeyUsage } from './report.js';

/** A month's and a day's credits and every key's last success: what the report adds to each key's state. */
export interface KeyFigures {
    month: MonthRecord;
    today: Record<string, number>;
    lastSuccess: UsageData['lastSuccess'];
}

/**
 * What the upstream said of each key in this process (when it rejected it, which endpoints are not in its plan),
 * and each key's line of the usage report.
 */
export class KeyHealth {
    private readonly rejectedAt = new Map<string, number>();
    private readonly notInPlan = new Map<string, Set<string>>();

    noteAttempt(attempt: UpstreamAttempt, now: number): void {
        if (attempt.status === 401 || attempt.status === 403) this.rejectedAt.set(attempt.fingerprint, now);
        if (attempt.status === 403) this.plan(attempt.fingerprint).add(attempt.endpoint);
        if (attempt.status >= 200 && attempt.status < 300) this.notInPlan.get(attempt.fingerprint)?.delete(attempt.endpoint);
    }

    /** The configured keys in the pool's order, then the keys rotated out this month: they still spent credits. */
    usages(stats: readonly KeyStats[], lifecycles: readonly KeyLifecycle[], figures: KeyFigures, now: number): KeyUsage[] {
        const { month, today, lastSuccess } = figures;
        const configured = new Set(stats.map(stat => stat.fingerprint));
        const lifecycle = new Map(lifecycles.map(key => [key.fingerprint, key]));
        const keys: KeyUsage[] = stats.map(stat => ({
            fingerprint: stat.fingerprint,
            label: lifecycle.get(stat.fingerprint)?.label ?? null,
            expiresAt: lifecycle.get(stat.fingerprint)?.expiresAt ?? null,
            notBefore: lifecycle.get(stat.fingerprint)?.notBefore ?? null,
            ...this.stateOf(stat, now, lifecycle.get(stat.fingerprint)),
            notInPlan: stat.revoked ? [] : [...(this.notInPlan.get(stat.fingerprint) ?? [])].sort(),
            creditsToday: today[stat.fingerprint] ?? 0,
            creditsMonth: month.credits[stat.fingerprint] ?? 0,
            lastSuccess: lastSuccess[stat.fingerprint] ?? null
        }));
        for (const [fingerprint, credits] of Object.entries(month.credits)) {
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
                lastSuccess: lastSuccess[fingerprint] ?? null
            });
        }
        return keys;
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
}
