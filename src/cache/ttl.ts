import type { TtlEndpoint } from '../config.js';

/**
 * How long each kind of answer counts as fresh, in seconds: the one table `CRYPTO_INTEL_CACHE_TTLS` overrides.
 * Prices move by the second and cost a credit each time, so they get the shortest life; the token list
 * changes rarely; grades and signals are recomputed hourly upstream; moonshots are curated a few times an hour.
 */
export const DEFAULT_TTL_SECONDS: Readonly<Record<TtlEndpoint, number>> = {
    tokens: 24 * 3600,
    price: 60,
    grades: 3600,
    signals: 3600,
    moonshots: 15 * 60,
    ohlcv: 3600
};

/** The defaults with the configured overrides applied, in milliseconds; negative or non-finite overrides are ignored. */
export function resolveTtlMs(overrides: Partial<Record<TtlEndpoint, number>> = {}): Record<TtlEndpoint, number> {
    const resolved = {} as Record<TtlEndpoint, number>;
    for (const endpoint of Object.keys(DEFAULT_TTL_SECONDS) as TtlEndpoint[]) {
        const override = overrides[endpoint];
        const seconds = override !== undefined && Number.isFinite(override) && override >= 0 ? override : DEFAULT_TTL_SECONDS[endpoint];
        resolved[endpoint] = Math.round(seconds * 1000);
    }
    return resolved;
}
