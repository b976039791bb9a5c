import type { Logger } from '../logger.js';
import type { UsageLedger } from './redis-ledger.js';
import type { UsageReport } from './report.js';

/** Percent of `CRYPTO_INTEL_MONTHLY_CREDITS` at which the tool and a log warning speak up, once per month each. */
const QUOTA_THRESHOLDS = [80, 95] as const;

export type QuotaWarningListener = (warning: { used: number; quota: number; month: string; threshold: number }) => void;

/** The plan's monthly credits: how much of them is used, and a warning (log line and listener) as each threshold is reached. */
export class MonthlyQuota {
    /** With a ledger: `<month>:<threshold>` warnings this replica has settled (logged, or left to another replica). */
    private readonly warnedHere = new Set<string>();

    constructor(
        private readonly credits: number | null,
        private readonly logger: Logger,
        private readonly onWarning: QuotaWarningListener | undefined
    ) {}

    /** The report's quota figures for `used` credits this month. */
    figures(used: number): Pick<UsageReport, 'monthlyCredits' | 'quotaUsedPct' | 'quotaThresholdsReached'> {
        const quotaUsedPct = this.credits === null ? null : Math.round((used / this.credits) * 1000) / 10;
        return {
            monthlyCredits: this.credits,
            quotaUsedPct,
            quotaThresholdsReached: quotaUsedPct === null ? [] : QUOTA_THRESHOLDS.filter(threshold => quotaUsedPct >= threshold)
        };
    }

    /** Warns of each threshold reached and not in `warned` (the month's record, so a restart does not repeat it); returns them. */
    warnReached(month: string, used: number, warned: readonly number[]): number[] {
        if (this.credits === null) return [];
        const reached = QUOTA_THRESHOLDS.filter(threshold => !warned.includes(threshold) && used * 100 >= threshold * this.credits!);
        for (const threshold of reached) this.warn(threshold, used, month);
        return reached;
    }

    /** The deployment-wide check: each threshold is logged once per month by the first replica to claim it. */
    async warnReachedShared(month: string, used: number, ledger: UsageLedger): Promise<void> {
        if (this.credits === null) return;
        for (const threshold of QUOTA_THRESHOLDS) {
            const id = `${month}:${threshold}`;
            if (this.warnedHere.has(id) || used * 100 < threshold * this.credits) continue;
            // Unknown (Redis down): better this replica warns too than nobody does.
            if ((await ledger.claimWarning(month, threshold)) !== false) this.warn(threshold, used, month);
            this.warnedHere.add(id);
        }
    }

    private warn(threshold: number, used: number, month: string): void {
        this.logger.warn(`${threshold}% of this month's Token Metrics credits used`, {
            used,
            monthlyCredits: this.credits,
            month,
            hint: 'get_usage shows which key spent them; CRYPTO_INTEL_MONTHLY_CREDITS sets the quota'
        });
        if (this.credits !== null) this.onWarning?.({ used, quota: this.credits, month, threshold });
    }
}
