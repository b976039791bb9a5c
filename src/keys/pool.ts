import { fingerprint } from '../redact.js';

/** What happened to a request made with a key; the pool turns it into the key's health. */
export type KeyOutcome =
    | { kind: 'ok' }
    | { kind: 'failed' }
    /** `status`: the upstream's HTTP status (401, 403), recorded in the audit trail when the caller gives it. */
    | { kind: 'revoked'; status?: number }
    | { kind: 'rate-limited'; untilMs: number; status?: number }
    | { kind: 'exhausted'; untilMs: number; status?: number };

export type KeyChoice =
    | { kind: 'key'; key: string; fingerprint: string }
    /** Every usable key is cooling down; the earliest is usable again at `untilMs`. */
    | { kind: 'wait'; untilMs: number; reason: 'rate-limited' | 'exhausted' }
    | { kind: 'none'; reason: 'no-keys' }
    | { kind: 'none'; reason: 'all-revoked'; fingerprints: string[] }
    /** Keys are configured, but none is valid now: each is before its `not-before` or past its `expires`. */
    | { kind: 'none'; reason: 'none-valid'; fingerprints: string[] };

/** A key with its validity window (from key metadata); both ends are optional, in ms since the epoch. */
export interface PoolKey {
    key: string;
    /** First instant the key may be used. */
    notBefore?: number | null;
    /** First instant the key must no longer be used. */
    expiresAt?: number | null;
}

/** The HTTP layer's view of key management: pick a key per attempt, report how it went. */
export interface KeyProvider {
    choose(nowMs: number): KeyChoice;
    report(key: string, outcome: KeyOutcome, nowMs: number): void;
    /**
     * Replace any key in `text` with its fingerprint. For upstream text that ends up in an error (an
     * envelope `message` could echo the key back); optional so simple providers need not implement it.
     */
    scrub?(text: string): string;
}

/** Per-key usage, exposed by fingerprint only. */
export interface KeyStats {
    fingerprint: string;
    calls: number;
    failures: number;
    rateLimited: number;
    revoked: boolean;
    exhausted: boolean;
    coolingUntil: number | null;
    lastUsedAt: number | null;
}

interface KeyState {
    readonly key: string;
    readonly stats: KeyStats;
    notBefore: number | null;
    expiresAt: number | null;
}

/** Whether a key's validity window holds `nowMs`: checked at each choice, so a key takes over (or bows out) without a reload. */
export function isWithinWindow(window: { notBefore?: number | null; expiresAt?: number | null }, nowMs: number): boolean {
    return nowMs >= (window.notBefore ?? -Infinity) && nowMs < (window.expiresAt ?? Infinity);
}

/**
 * Keys in the user's order; the first healthy one serves each attempt. A revoked key stays out until
 * the key set is replaced (the key file changed); a rate-limited or exhausted key sits out its cool-down;
 * a key outside its validity window (`not-before`, `expires`) is skipped until it is inside.
 */
export class KeyPool implements KeyProvider {
    private states: KeyState[] = [];

    constructor(keys: ReadonlyArray<string | PoolKey> = []) {
        this.replace(keys);
    }

    /**
     * Install a new key set (rotation). Counters and cool-downs of keys that stay are kept, so traffic
     * does not stampede a key that was just rate limited; revocations are forgotten because the user
     * edited the keys, which is how they tell us to try again.
     */
    replace(keys: ReadonlyArray<string | PoolKey>): void {
        const previous = new Map(this.states.map(state => [state.key, state]));
        const seen = new Set<string>();
        const unique = keys
            .map(item => (typeof item === 'string' ? { key: item } : item))
            .filter(item => !seen.has(item.key) && seen.add(item.key));
        this.states = unique.map(({ key, notBefore = null, expiresAt = null }) => {
            const kept = previous.get(key);
            if (kept) {
                kept.stats.revoked = false;
                kept.notBefore = notBefore;
                kept.expiresAt = expiresAt;
                return kept;
            }
            return {
                key,
                notBefore,
                expiresAt,
                stats: {
                    fingerprint: fingerprint(key),
                    calls: 0,
                    failures: 0,
                    rateLimited: 0,
                    revoked: false,
                    exhausted: false,
                    coolingUntil: null,
                    lastUsedAt: null
                }
            };
        });
    }

    get size(): number {
        return this.states.length;
    }

    choose(nowMs: number): KeyChoice {
        if (this.states.length === 0) return { kind: 'none', reason: 'no-keys' };
        const valid = this.states.filter(state => isWithinWindow(state, nowMs));
        if (valid.length === 0)
            return { kind: 'none', reason: 'none-valid', fingerprints: this.states.map(state => state.stats.fingerprint) };
        let earliest: KeyState | undefined;
        for (const state of valid) {
            const { stats } = state;
            if (stats.revoked) continue;
            if (stats.coolingUntil === null || stats.coolingUntil <= nowMs) {
                stats.coolingUntil = null;
                stats.exhausted = false;
                return { kind: 'key', key: state.key, fingerprint: stats.fingerprint };
            }
            if (!earliest || stats.coolingUntil < (earliest.stats.coolingUntil ?? Infinity)) earliest = state;
        }
        if (!earliest) return { kind: 'none', reason: 'all-revoked', fingerprints: valid.map(state => state.stats.fingerprint) };
        return { kind: 'wait', untilMs: earliest.stats.coolingUntil!, reason: earliest.stats.exhausted ? 'exhausted' : 'rate-limited' };
    }

    report(key: string, outcome: KeyOutcome, nowMs: number): void {
        const state = this.states.find(candidate => candidate.key === key);
        if (!state) return; // rotated out while the request was in flight
        const { stats } = state;
        stats.calls += 1;
        stats.lastUsedAt = nowMs;
        switch (outcome.kind) {
            case 'ok':
                break;
            case 'failed':
                stats.failures += 1;
                break;
            case 'revoked':
                stats.failures += 1;
                stats.revoked = true;
                break;
            case 'rate-limited':
                stats.failures += 1;
                stats.rateLimited += 1;
                stats.coolingUntil = Math.max(stats.coolingUntil ?? 0, outcome.untilMs);
                break;
            case 'exhausted':
                stats.failures += 1;
                stats.exhausted = true;
                stats.coolingUntil = Math.max(stats.coolingUntil ?? 0, outcome.untilMs);
                break;
        }
    }

    stats(): KeyStats[] {
        return this.states.map(state => ({ ...state.stats }));
    }

    scrub(text: string): string {
        let out = text;
        for (const { key, stats } of this.states) {
            if (out.includes(key)) out = out.split(key).join(stats.fingerprint);
        }
        return out;
    }
}
