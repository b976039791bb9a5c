import { ConfigError, intIn, parse, splitList } from './env.js';

/** Endpoints whose cache lifetime can be tuned; the cache module owns the defaults. */
export const TTL_ENDPOINTS = ['tokens', 'price', 'grades', 'signals', 'moonshots', 'ohlcv'] as const;
export type TtlEndpoint = (typeof TTL_ENDPOINTS)[number];

/** `CRYPTO_INTEL_CACHE_TTLS`: per-endpoint TTL overrides in seconds, e.g. `price=30,grades=600`. */
export function parseTtls(raw: string | undefined): Partial<Record<TtlEndpoint, number>> {
    const ttls: Partial<Record<TtlEndpoint, number>> = {};
    for (const pair of splitList(raw)) {
        const [name, value] = pair.split('=').map(part => part.trim());
        if (!name || !(TTL_ENDPOINTS as readonly string[]).includes(name)) {
            throw new ConfigError(
                `CRYPTO_INTEL_CACHE_TTLS: unknown endpoint "${name ?? ''}" (use ${TTL_ENDPOINTS.join(', ')}, e.g. price=30,grades=600)`
            );
        }
        ttls[name as TtlEndpoint] = parse(intIn(`CRYPTO_INTEL_CACHE_TTLS ${name}`, 0, 7 * 24 * 3600), value);
    }
    return ttls;
}
