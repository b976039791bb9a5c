import { fingerprint } from '../redact.js';
import type { KeyStats } from './pool.js';
import type { KeyEntry, KeyOrigin } from './sources.js';

/** A key's state for a person or a tool: its lifecycle first (validity window), then its health in this process. */
export type KeyState = 'active' | 'expiring' | 'not-yet-valid' | 'expired' | 'rejected' | 'quota-used' | 'rate-limited';

/** One key as `get_usage` and `crypto-intel-mcp keys` show it: fingerprint and metadata, never the key. */
export interface KeyDescription {
    fingerprint: string;
    label: string | null;
    source: KeyOrigin;
    state: KeyState;
    /** Whether a request could use it now (valid, not set aside, not cooling down). */
    usable: boolean;
    /** First instant of use (ISO), from `not-before`; `null`: no lower bound. */
    notBefore: string | null;
    /** First instant it is no longer used (ISO): the end of the `expires` day, UTC; `null`: no expiry. */
    expiresAt: string | null;
    /** Whole days until `expiresAt` (0 on its last day); `null` without an expiry or once expired. */
    daysLeft: number | null;
    /** The `expires=` and `not-before=` values as written in the key file. */
    written: { notBefore: string | null; expires: string | null };
}

/** The key set at a glance, for a status resource or a startup line. Fingerprints only. */
export interface KeySummary {
    configured: number;
    /** Keys usable right now: inside their validity window, neither rejected nor cooling down. */
    usable: number;
    fingerprints: string[];
}

export const DAY_MS = 86_400_000;
/** A key this close to its expiry is still used, and warned about (at start-up, then once a day). */
export const EXPIRY_WARNING_MS = 7 * DAY_MS;

export const iso = (ms: number | null): string | null => (ms === null ? null : new Date(ms).toISOString());

/** One key's description at `now`, from its entry and the pool's counters by fingerprint. */
export function describeKey(entry: KeyEntry, stats: ReadonlyMap<string, KeyStats>, now: number): KeyDescription {
    const print = fingerprint(entry.key);
    const stat = stats.get(print);
    const cooling = stat !== undefined && stat.coolingUntil !== null && stat.coolingUntil > now;
    let state: KeyState;
    if (entry.expiresAt !== null && now >= entry.expiresAt) state = 'expired';
    else if (entry.notBefore !== null && now < entry.notBefore) state = 'not-yet-valid';
    else if (stat?.revoked) state = 'rejected';
    else if (cooling) state = stat.exhausted ? 'quota-used' : 'rate-limited';
    else if (entry.expiresAt !== null && entry.expiresAt - now <= EXPIRY_WARNING_MS) state = 'expiring';
    else state = 'active';
    const expiring = entry.expiresAt !== null && now < entry.expiresAt;
    return {
        fingerprint: print,
        label: entry.label,
        source: entry.origin,
        state,
        usable: state === 'active' || state === 'expiring',
        notBefore: iso(entry.notBefore),
        expiresAt: iso(entry.expiresAt),
        daysLeft: expiring ? Math.floor((entry.expiresAt! - now) / DAY_MS) : null,
        written: { ...entry.written }
    };
}
