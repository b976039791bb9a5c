import { TokenMetricsClient } from './api/client.js';
import { FileAuditLog } from './audit/audit-log.js';
import { teeAudit } from './audit/redis-stream.js';
import type { DriftStats } from './api/drift.js';
import { UpstreamHttp, type HttpOptions } from './api/http.js';
import { Semaphore } from './api/limiter.js';
import { createMarketService } from './cache/index.js';
import type { MarketService } from './cache/market-service.js';
import type { Clock } from './clock.js';
import type { Config } from './config.js';
import { TOKEN_DIRECTORY } from './endpoints/registry.js';
import { KeyManager, keySources } from './keys/manager.js';
import type { Logger } from './logger.js';
import type { Redactor } from './redact.js';
import type { RedisHealth, SharedServices } from './redis/index.js';
import { SymbolCompleter } from './prompts/index.js';
import { TokenDirectory } from './resolve/directory.js';
import { TokenResolver } from './resolve/resolver.js';
import type { ServerDeps } from './server.js';
import { UsageTracker } from './usage/tracker.js';

/** What every runtime is built from; `shared` joins a team deployment's Redis. */
export interface RuntimeBase {
    clock: Clock;
    logger: Logger;
    redactor: Redactor;
    shared?: SharedServices;
    /** Told each time a tool call has its answer (the entry point's code cache waits for one). */
    answered?: () => void;
}

/** Everything a running server holds, built from Config; `close()` flushes the cache and frees sockets. */
export interface Runtime {
    deps: ServerDeps;
    keys: KeyManager;
    market: MarketService;
    /** Credits spent per key, cache savings, key health (`get_usage`). */
    usage: UsageTracker;
    /** Redis's state, or `null` when the deployment has none. */
    redis(): RedisHealth | null;
    /** Upstream fields of the wrong kind and rows dropped since start-up: the format drift the answers survived. */
    drift(): DriftStats;
    close(): Promise<void>;
}

/** The upstream client's settings from the configuration: the server and `doctor` talk to the API alike. */
export function upstreamOptions(config: Config): HttpOptions {
    return {
        baseUrl: config.baseUrl,
        attemptTimeoutMs: config.upstream.attemptTimeoutMs,
        deadlineMs: config.upstream.deadlineMs,
        concurrency: config.upstream.concurrency,
        maxBodyBytes: config.upstream.maxBodyBytes,
        retry: { maxRetries: config.upstream.maxRetries }
    };
}

/** Composition root: the only place that wires modules together. */
export function createRuntime(config: Config, base: RuntimeBase): Runtime {
    const { clock, logger, redactor, shared, answered } = base;
    const keys = new KeyManager({
        ...keySources(config),
        redactor,
        logger,
        clock,
        audit: teeAudit(
            config.auditLog === null ? null : new FileAuditLog({ path: config.auditLog, logger, scrub: text => redactor.scrub(text) }),
            shared?.audit
        )
    });
    const usage = new UsageTracker({
        clock,
        logger,
        cacheDir: config.cacheDir,
        monthlyCredits: config.monthlyCredits,
        keyStats: () => keys.stats(),
        keyLifecycle: () => keys.describeKeys(),
        onQuotaWarning: warning => keys.noteQuotaWarning(warning),
        cacheStats: () => market.stats(),
        ...(shared ? { ledger: shared.usage } : {})
    });
    const http = new UpstreamHttp(
        {
            ...upstreamOptions(config),
            onAttempt: attempt => usage.record(attempt),
            ...(shared ? { limiter: shared.limiter(new Semaphore(config.upstream.concurrency, { clock })) } : {})
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
        cacheDir: config.cacheDir,
        ...(shared ? { shared: shared.tier } : {})
    });
    // One directory of the tokens seen: the resolver's lookups, and the first place completion searches.
    const directory = new TokenDirectory();
    const resolver = new TokenResolver(market, directory);
    const symbols = new SymbolCompleter({
        known: () => directory.all(),
        page: (page, signal) => client.get(TOKEN_DIRECTORY, { page }, signal),
        logger
    });
    let closing: Promise<void> | undefined;
    let connecting: Promise<void> | undefined;
    let parsing: Promise<void> | undefined;
    return {
        deps: {
            market,
            resolver,
            clock,
            answered,
            logger,
            redactor,
            callDeadlineMs: config.upstream.deadlineMs,
            usage,
            symbols,
            // Without a usable key no request will go out: nothing to ready, and no reason to contact the upstream. Once
            // started, asking again (every HTTP tools/list does) costs nothing, not even the keys' summary.
            warmUp: only => {
                const started = only === 'connection' ? connecting : parsing;
                if (started !== undefined) return started;
                if (keys.describe().usable === 0) return Promise.resolve();
                connecting ??= http.warm();
                return only === 'connection' ? connecting : (parsing = connecting.then(() => http.warmParser()));
            }
        },
        keys,
        market,
        usage,
        redis: () => shared?.health() ?? null,
        drift: () => client.drift.stats(),
        close: () =>
            (closing ??= (async () => {
                await market.close();
                await usage.close();
                keys.close();
                await http.close();
                await shared?.close();
            })())
    };
}

/**
 * `createRuntime`, joined to Redis when `CRYPTO_INTEL_REDIS_URL` is set. The Redis client is loaded only then:
 * a stdio server without Redis neither loads nor runs any of it.
 */
export async function openRuntime(config: Config, base: Omit<RuntimeBase, 'shared'>): Promise<Runtime> {
    if (config.redisUrl === null) return createRuntime(config, base);
    const { connectRedis } = await import('./redis/index.js');
    const shared = connectRedis({
        url: config.redisUrl,
        logger: base.logger,
        redactor: base.redactor,
        staleMaxAgeSeconds: config.cache.staleMaxAgeSeconds,
        // One attempt's worth: a replica that dies mid-fetch delays the others by at most this, and a slower fetch
        // (retries after 429s) costs at most one duplicate call.
        lockTtlMs: config.upstream.attemptTimeoutMs,
        concurrency: config.upstream.concurrency,
        attemptTimeoutMs: config.upstream.attemptTimeoutMs,
        callTimeoutMs: config.redisTimeoutMs
    });
    return createRuntime(config, { ...base, shared });
}
