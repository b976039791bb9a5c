import { CachedMarketService } from '../../src/cache/cached-market-service.js';
import type { MarketServiceOptions } from '../../src/cache/market-service.js';
import { FakeClock, FakeMarketData, RecordingLogger } from './fakes.js';

export interface Harness {
    service: CachedMarketService;
    inner: FakeMarketData;
    clock: FakeClock;
    logger: RecordingLogger;
}

/** A cache over a fresh fake upstream, in memory unless `cacheDir` is given. */
export function harness(overrides: Partial<MarketServiceOptions> = {}, shared: Partial<Omit<Harness, 'service'>> = {}): Harness {
    const inner = shared.inner ?? new FakeMarketData();
    const clock = shared.clock ?? new FakeClock();
    const logger = shared.logger ?? new RecordingLogger();
    const service = new CachedMarketService({
        inner,
        clock,
        logger,
        staleMaxAgeSeconds: 24 * 3600,
        batchWindowMs: 0,
        maxEntries: 1000,
        cacheDir: null,
        ...overrides
    });
    return { service, inner, clock, logger };
}

/** Lets pending promise callbacks and zero-delay timers run. */
export const settle = (): Promise<void> => new Promise(resolve => setTimeout(resolve, 0));
