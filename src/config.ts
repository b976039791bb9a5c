import { LOG_LEVELS, type LogLevel } from './logger.js';
import { parseCommandLine } from './config/arguments.js';
import { ConfigError, intIn, nonEmpty, parse, parseSwitch, splitList, withoutUnfilledPlaceholders } from './config/env.js';
import { DEFAULT_HTTP_HOST, DEFAULT_HTTP_PORT, parseHttp, type HttpConfig } from './config/http.js';
import { defaultCacheDir, parseAuditLog, parseBaseUrl, parseRedisUrl } from './config/locations.js';
import { parseTtls, type TtlEndpoint } from './config/ttl.js';

// What the rest of the server imports from here: the config types, the error the CLI reports, the loopback rule.
export { ConfigError } from './config/env.js';
export { isLoopbackHost, type HttpConfig } from './config/http.js';
export type { TtlEndpoint } from './config/ttl.js';

export interface Config {
    /** Keys from TOKEN_METRICS_API_KEY then TOKEN_METRICS_API_KEYS, in order, trimmed, de-duplicated. */
    apiKeys: string[];
    apiKeyFile: string | null;
    /** `CRYPTO_INTEL_ALLOW_SHARED_KEY_FILE=1`: use a key file that group or others can read instead of refusing it. */
    allowSharedKeyFile: boolean;
    /** The key events' audit trail (`CRYPTO_INTEL_AUDIT_LOG`): `<cacheDir>/audit.log` by default, `null` when off. */
    auditLog: string | null;
    baseUrl: string;
    /** `null` when the persistent cache is off. */
    cacheDir: string | null;
    logLevel: LogLevel;
    upstream: {
        /** One attempt's limit. */
        attemptTimeoutMs: number;
        /** The whole call's limit, retries and waits included. */
        deadlineMs: number;
        maxRetries: number;
        /** Upstream requests in flight at once, to protect the per-minute quota. */
        concurrency: number;
        /** Largest upstream body read (`CRYPTO_INTEL_MAX_BODY_BYTES`); a larger answer is an error, not retried. */
        maxBodyBytes: number;
    };
    cache: {
        ttlSeconds: Partial<Record<TtlEndpoint, number>>;
        staleMaxAgeSeconds: number;
        batchWindowMs: number;
        maxEntries: number;
    };
    transport: 'stdio' | 'http';
    http: HttpConfig;
    /** The shared cache tier and upstream budget of a team deployment; `null` keeps everything in process. */
    redisUrl: string | null;
    /** How long a tool call waits for one Redis command before going on without Redis. */
    redisTimeoutMs: number;
    /** The plan's monthly credits (`CRYPTO_INTEL_MONTHLY_CREDITS`), for the 80% and 95% warnings; `null` when not set. */
    monthlyCredits: number | null;
}

/** `doctor` checks the upstream with the user's keys and exits; its `config` is read exactly as the server's. */
export type CliCommand =
    | { kind: 'run'; config: Config }
    | { kind: 'doctor'; config: Config }
    /** `keys` prints the keys' state for a person: no network, no credit. */
    | { kind: 'keys'; config: Config }
    | { kind: 'help' }
    | { kind: 'version' };

/** How long a follow-up batch waits for stragglers once the one before it has settled (`CRYPTO_INTEL_BATCH_WINDOW_MS`). */
export const DEFAULT_BATCH_WINDOW_MS = 20;

function parseLogLevel(raw: string | undefined): LogLevel {
    const value = (nonEmpty(raw) ?? 'info').toLowerCase();
    if (!(LOG_LEVELS as readonly string[]).includes(value)) {
        throw new ConfigError(`CRYPTO_INTEL_LOG_LEVEL must be one of ${LOG_LEVELS.join(', ')}, got "${raw}"`);
    }
    return value as LogLevel;
}

/**
 * The one place that reads the environment and the command line. Everything else receives `Config`.
 * Throws `ConfigError` with a one-line message on any bad value.
 */
export function loadConfig(env: NodeJS.ProcessEnv, argv: readonly string[]): CliCommand {
    env = withoutUnfilledPlaceholders(env);
    const { command, flags } = parseCommandLine(argv);
    const subcommand = command !== 'run';
    if (flags.help) return { kind: 'help' };
    if (flags.version) return { kind: 'version' };

    const apiKeys = [...new Set([...splitList(env.TOKEN_METRICS_API_KEY), ...splitList(env.TOKEN_METRICS_API_KEYS)])];
    const cacheDirRaw = nonEmpty(env.CRYPTO_INTEL_CACHE_DIR);
    const cacheDir = cacheDirRaw?.toLowerCase() === 'off' ? null : (cacheDirRaw ?? defaultCacheDir(env));
    const config: Config = {
        apiKeys,
        apiKeyFile: nonEmpty(env.TOKEN_METRICS_API_KEY_FILE) ?? null,
        allowSharedKeyFile: parseSwitch('CRYPTO_INTEL_ALLOW_SHARED_KEY_FILE', env.CRYPTO_INTEL_ALLOW_SHARED_KEY_FILE),
        auditLog: parseAuditLog(env.CRYPTO_INTEL_AUDIT_LOG, cacheDir),
        baseUrl: parseBaseUrl(env.TOKEN_METRICS_BASE_URL),
        cacheDir,
        // doctor prints a report for a person on stdout: its stderr stays quiet (warnings only) unless asked for more.
        logLevel: subcommand && nonEmpty(env.CRYPTO_INTEL_LOG_LEVEL) === undefined ? 'warn' : parseLogLevel(env.CRYPTO_INTEL_LOG_LEVEL),
        upstream: {
            attemptTimeoutMs: parse(intIn('CRYPTO_INTEL_TIMEOUT_MS', 100, 120_000), env.CRYPTO_INTEL_TIMEOUT_MS ?? 10_000),
            deadlineMs: parse(intIn('CRYPTO_INTEL_DEADLINE_MS', 100, 300_000), env.CRYPTO_INTEL_DEADLINE_MS ?? 25_000),
            maxRetries: parse(intIn('CRYPTO_INTEL_MAX_RETRIES', 0, 10), env.CRYPTO_INTEL_MAX_RETRIES ?? 3),
            concurrency: parse(intIn('CRYPTO_INTEL_UPSTREAM_CONCURRENCY', 1, 64), env.CRYPTO_INTEL_UPSTREAM_CONCURRENCY ?? 4),
            maxBodyBytes: parse(
                intIn('CRYPTO_INTEL_MAX_BODY_BYTES', 64 * 1024, 1024 * 1024 * 1024),
                nonEmpty(env.CRYPTO_INTEL_MAX_BODY_BYTES) ?? 8 * 1024 * 1024
            )
        },
        cache: {
            ttlSeconds: parseTtls(env.CRYPTO_INTEL_CACHE_TTLS),
            staleMaxAgeSeconds: parse(
                intIn('CRYPTO_INTEL_STALE_MAX_AGE_S', 0, 30 * 24 * 3600),
                env.CRYPTO_INTEL_STALE_MAX_AGE_S ?? 24 * 3600
            ),
            batchWindowMs: parse(
                intIn('CRYPTO_INTEL_BATCH_WINDOW_MS', 0, 1000),
                env.CRYPTO_INTEL_BATCH_WINDOW_MS ?? DEFAULT_BATCH_WINDOW_MS
            ),
            maxEntries: parse(intIn('CRYPTO_INTEL_CACHE_MAX_ENTRIES', 100, 1_000_000), env.CRYPTO_INTEL_CACHE_MAX_ENTRIES ?? 10_000)
        },
        transport: flags.http ? 'http' : 'stdio',
        // Only checked in HTTP mode: a stdio server must not fail over a variable it never uses.
        http: flags.http
            ? parseHttp(env, flags)
            : {
                  port: DEFAULT_HTTP_PORT,
                  host: DEFAULT_HTTP_HOST,
                  tokens: [],
                  allowedHosts: [],
                  allowAnyHost: false,
                  ratePerMin: 600,
                  maxConcurrentCalls: 8,
                  authFailuresPerMin: 10,
                  tokensFileMode: null
              },
        redisUrl: parseRedisUrl(env.CRYPTO_INTEL_REDIS_URL),
        redisTimeoutMs: parse(intIn('CRYPTO_INTEL_REDIS_TIMEOUT_MS', 10, 60_000), nonEmpty(env.CRYPTO_INTEL_REDIS_TIMEOUT_MS) ?? 150),
        monthlyCredits:
            nonEmpty(env.CRYPTO_INTEL_MONTHLY_CREDITS) === undefined
                ? null
                : parse(intIn('CRYPTO_INTEL_MONTHLY_CREDITS', 1, 1_000_000_000), nonEmpty(env.CRYPTO_INTEL_MONTHLY_CREDITS))
    };
    if (config.upstream.attemptTimeoutMs > config.upstream.deadlineMs) {
        throw new ConfigError('CRYPTO_INTEL_TIMEOUT_MS must not exceed CRYPTO_INTEL_DEADLINE_MS');
    }
    return { kind: command, config };
}
