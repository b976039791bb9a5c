import { TokenMetricsClient } from './api/client.js';
import { UpstreamHttp } from './api/http.js';
import { createMarketService } from './cache/index.js';
import type { MarketService } from './cache/market-service.js';
import type { Clock } from './clock.js';
import type { Config } from './config.js';
import { KeyManager } from './keys/manager.js';
import type { Logger } from './logger.js';
import type { Redactor } from './redact.js';
import { TokenResolver } from './resolve/resolver.js';
import type { ServerDeps } from './server.js';

/** Everything a running server holds, built from Config; `close()` flushes the cache and frees sockets. */
export interface Runtime {
    deps: ServerDeps;
    keys: KeyManager;
    market: MarketService;
    close(): Promise<void>;
}

/** Composition root: the only place that wires modules together. */
export function createRuntime(config: Config, base: { clock: Clock; logger: Logger; redactor: Redactor }): Runtime {
    const { clock, logger, redactor } = base;
    const keys = new KeyManager({ envKeys: config.apiKeys, keyFile: config.apiKeyFile, redactor, logger, clock });
    const http = new UpstreamHttp(
        {
            baseUrl: config.baseUrl,
            attemptTimeoutMs: config.upstream.attemptTimeoutMs,
            deadlineMs: config.upstream.deadlineMs,
            concurrency: config.upstream.concurrency,
            retry: { maxRetries: config.upstream.maxRetries }
        },
        keys,
        clock,
        logger
    );
    const client = new TokenMetricsClient(http, clock, logger);
    const market = createMarketService({
        inner: client,
        clock,
        logger,
        ttlSeconds: config.cache.ttlSeconds,
        staleMaxAgeSeconds: config.cache.staleMaxAgeSeconds,
        batchWindowMs: config.cache.batchWindowMs,
        maxEntries: config.cache.maxEntries,
        cacheDir: config.cacheDir
    });
    const resolver = new TokenResolver(market);
    let closing: Promise<void> | undefined;
    return {
        deps: { market, resolver, clock, logger, redactor },
        keys,
        market,
        close: () =>
            (closing ??= (async () => {
                await market.close();
                keys.close();
                await http.close();
            })())
    };
}
