export { CachedMarketService, createMarketService } from './cached-market-service.js';
export {
    CACHE_ENDPOINTS,
    type CacheEndpoint,
    type CacheStats,
    type EndpointStats,
    type MarketService,
    type MarketServiceOptions,
    type Sourced
} from './market-service.js';
export { CACHE_FILE_NAME, CACHE_FILE_VERSION } from './disk-format.js';
export type { Claim, SharedTier } from './shared-tier.js';
export type { CacheEntry } from './store.js';
export { DEFAULT_TTL_SECONDS, resolveTtlMs } from './ttl.js';
