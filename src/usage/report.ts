// What `get_usage` reads: the usage report and its parts. `UsageTracker` builds it.

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
