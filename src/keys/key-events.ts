import type { AuditSink, AuditValue } from '../audit/audit-log.js';
import type { Clock } from '../clock.js';
import type { Logger } from '../logger.js';
import { fingerprint } from '../redact.js';
import { DAY_MS, EXPIRY_WARNING_MS, iso } from './key-state.js';
import { isWithinWindow, type KeyOutcome } from './pool.js';
import type { KeyEntry } from './sources.js';

/** What `noteQuotaWarning` records: the caller (usage accounting) decides when a quota is close. */
export interface QuotaWarning {
    /** The key the warning is about; omit for the monthly budget of all keys together. */
    fingerprint?: string;
    used: number;
    quota: number;
    /** Anything else worth keeping, e.g. `{ month: '2026-11', threshold: 0.8 }`. */
    [field: string]: AuditValue | undefined;
}

type KeyEvent = 'loaded' | 'removed' | 'first-used' | 'set-aside' | 'rate-limited' | 'restored' | 'expiring' | 'expired';

/** What this process has seen of one key, for the audit trail's once-only events. */
interface KeyLife {
    firstUsed: boolean;
    /** Why the key was last set aside; cleared (with a `restored` event) when it serves again. */
    aside: 'revoked' | 'exhausted' | 'rate-limited' | null;
    /** UTC day number of the last expiry warning. */
    expiringWarnedDay: number | null;
    expiredNoted: boolean;
    /** Whether it was before its `not-before` when last looked at, to log the moment it takes over. */
    pending: boolean;
}

/**
 * A key's story in this process, told once per happening: to the audit trail (loaded, first used, set aside,
 * restored, expiring, expired, removed, quota warnings) and, for its validity window, to the log. Keys leave
 * as fingerprints only.
 */
export class KeyEvents {
    private readonly life = new Map<string, KeyLife>();

    constructor(
        private readonly audit: AuditSink,
        private readonly logger: Logger,
        private readonly clock: Clock,
        /** The keys in use now, in order. */
        private readonly entries: () => readonly KeyEntry[]
    ) {}

    loaded(entry: KeyEntry): void {
        this.record('loaded', entry, this.loadFacts(entry));
    }

    /** A key that stays with new metadata: recorded as loaded again, and its new dates are warned about afresh. */
    updated(entry: KeyEntry): void {
        this.record('loaded', entry, { ...this.loadFacts(entry), updated: true });
        const life = this.lifeOf(entry.key);
        life.expiringWarnedDay = null;
        life.expiredNoted = false;
    }

    removed(entry: KeyEntry): void {
        this.record('removed', entry, {});
        this.life.delete(entry.key);
    }

    /** How a request with `key` went: being set aside is one event per episode, until the key serves again. */
    outcome(key: string, outcome: KeyOutcome, nowMs: number): void {
        const entry = this.find(key);
        if (!entry) return; // rotated out while the request was in flight
        const life = this.lifeOf(key);
        const status = 'status' in outcome && outcome.status !== undefined ? outcome.status : null;
        if (outcome.kind === 'revoked' && life.aside !== 'revoked') {
            life.aside = 'revoked';
            this.record('set-aside', entry, { reason: 'rejected as invalid or revoked', status }, nowMs);
        } else if (outcome.kind === 'exhausted' && life.aside !== 'exhausted') {
            life.aside = 'exhausted';
            this.record('set-aside', entry, { reason: 'quota used up', status, until: iso(outcome.untilMs) }, nowMs);
        } else if (outcome.kind === 'rate-limited' && life.aside === null) {
            // Once per episode: a key hit by a burst of 429s is one event, until it serves again (`restored`).
            life.aside = 'rate-limited';
            this.record('rate-limited', entry, { status: status ?? 429, until: iso(outcome.untilMs) }, nowMs);
        }
    }

    /** The events of a key being handed out: its first use in this process, or its return after being set aside. */
    serving(key: string, nowMs: number): void {
        const life = this.lifeOf(key);
        if (life.firstUsed && life.aside === null) return;
        const entry = this.find(key);
        if (!entry) return;
        if (!life.firstUsed) {
            life.firstUsed = true;
            this.record('first-used', entry, {}, nowMs);
        }
        if (life.aside !== null) {
            this.record('restored', entry, { after: life.aside }, nowMs);
            life.aside = null;
        }
    }

    /**
     * Validity windows against the clock: a key that just took over (its `not-before` passed) is logged, one within
     * EXPIRY_WARNING_MS of its expiry is warned about at start-up and once a UTC day after, one past it once.
     */
    checkWindows(nowMs: number): void {
        const today = Math.floor(nowMs / DAY_MS);
        for (const entry of this.entries()) {
            if (entry.notBefore === null && entry.expiresAt === null) continue;
            const life = this.lifeOf(entry.key);
            const fields = { key: fingerprint(entry.key), label: entry.label ?? undefined };
            if (entry.expiresAt !== null && nowMs >= entry.expiresAt) {
                if (life.expiredNoted) continue;
                life.expiredNoted = true;
                this.logger.warn('API key expired: no longer used (remove it from the key file)', {
                    ...fields,
                    expiresAt: iso(entry.expiresAt)
                });
                this.record('expired', entry, { expiresAt: iso(entry.expiresAt) }, nowMs);
                continue;
            }
            if (entry.notBefore !== null && nowMs < entry.notBefore) {
                if (!life.pending)
                    this.logger.info('API key not valid yet: it will be used from its not-before date', {
                        ...fields,
                        notBefore: iso(entry.notBefore)
                    });
                life.pending = true;
                continue;
            }
            if (life.pending) {
                life.pending = false;
                this.logger.info('API key valid from now on (its not-before date passed)', { ...fields, notBefore: iso(entry.notBefore) });
            }
            if (entry.expiresAt !== null && entry.expiresAt - nowMs <= EXPIRY_WARNING_MS && life.expiringWarnedDay !== today) {
                life.expiringWarnedDay = today;
                const daysLeft = Math.floor((entry.expiresAt - nowMs) / DAY_MS);
                this.logger.warn(
                    `API key expires in ${daysLeft === 0 ? 'less than a day' : `${daysLeft} day(s)`}: add its successor to the key file`,
                    {
                        ...fields,
                        expiresAt: iso(entry.expiresAt),
                        daysLeft
                    }
                );
                this.record('expiring', entry, { expiresAt: iso(entry.expiresAt), daysLeft }, nowMs);
            }
        }
    }

    /** A quota warning in the audit trail; the label is looked up from the fingerprint. */
    quotaWarning(warning: QuotaWarning): void {
        const { fingerprint: print = null, ...facts } = warning;
        const entry = print === null ? undefined : this.entries().find(candidate => fingerprint(candidate.key) === print);
        const values: Record<string, AuditValue> = {};
        for (const [name, value] of Object.entries(facts)) if (value !== undefined) values[name] = value;
        this.audit.record(
            {
                event: 'quota-warning',
                fingerprint: print,
                label: entry?.label ?? null,
                ...(entry ? { source: entry.origin } : {}),
                ...values
            },
            this.clock.now()
        );
    }

    private find(key: string): KeyEntry | undefined {
        return this.entries().find(candidate => candidate.key === key);
    }

    private lifeOf(key: string): KeyLife {
        let life = this.life.get(key);
        if (!life) {
            life = { firstUsed: false, aside: null, expiringWarnedDay: null, expiredNoted: false, pending: false };
            this.life.set(key, life);
        }
        return life;
    }

    private loadFacts(entry: KeyEntry): Record<string, AuditValue> {
        return {
            ...(entry.line === undefined ? {} : { line: entry.line }),
            notBefore: iso(entry.notBefore),
            expiresAt: iso(entry.expiresAt),
            validNow: isWithinWindow(entry, this.clock.now())
        };
    }

    private record(event: KeyEvent, entry: KeyEntry, facts: Record<string, AuditValue>, nowMs = this.clock.now()): void {
        this.audit.record({ event, fingerprint: fingerprint(entry.key), label: entry.label, source: entry.origin, ...facts }, nowMs);
    }
}
