import { homedir } from 'node:os';
import { join } from 'node:path';
import * as z from 'zod';
import { LOG_LEVELS, type LogLevel } from './logger.js';

/** Endpoints whose cache lifetime can be tuned; the cache module owns the defaults. */
export const TTL_ENDPOINTS = ['tokens', 'price', 'grades', 'signals', 'moonshots', 'ohlcv'] as const;
export type TtlEndpoint = (typeof TTL_ENDPOINTS)[number];

export interface Config {
    /** Keys from TOKEN_METRICS_API_KEY then TOKEN_METRICS_API_KEYS, in order, trimmed, de-duplicated. */
    apiKeys: string[];
    apiKeyFile: string | null;
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
    };
    cache: {
        ttlSeconds: Partial<Record<TtlEndpoint, number>>;
        staleMaxAgeSeconds: number;
        batchWindowMs: number;
        maxEntries: number;
    };
}

export type CliCommand = { kind: 'run'; config: Config } | { kind: 'help' } | { kind: 'version' };

/** A configuration mistake: the CLI prints `message` as one line and exits with code 2. */
export class ConfigError extends Error {
    override name = 'ConfigError';
}

const DEFAULT_BASE_URL = 'https://api.tokenmetrics.com/v2';

const intIn = (name: string, min: number, max: number) =>
    z.coerce
        .number({ error: `${name} must be a number` })
        .int(`${name} must be a whole number`)
        .min(min, `${name} must be at least ${min}`)
        .max(max, `${name} must be at most ${max}`);

const splitList = (value: string | undefined): string[] =>
    (value ?? '')
        .split(',')
        .map(item => item.trim())
        .filter(item => item.length > 0);

const nonEmpty = (value: string | undefined): string | undefined => (value === undefined || value.trim() === '' ? undefined : value.trim());

/** The user's cache directory, following XDG on Linux and the platform convention elsewhere. */
export function defaultCacheDir(env: NodeJS.ProcessEnv, platform: NodeJS.Platform = process.platform): string {
    if (platform === 'win32') return join(env.LOCALAPPDATA ?? join(homedir(), 'AppData', 'Local'), 'crypto-intel-mcp', 'cache');
    if (platform === 'darwin') return join(homedir(), 'Library', 'Caches', 'crypto-intel-mcp');
    return join(nonEmpty(env.XDG_CACHE_HOME) ?? join(homedir(), '.cache'), 'crypto-intel-mcp');
}

function parseTtls(raw: string | undefined): Partial<Record<TtlEndpoint, number>> {
    const ttls: Partial<Record<TtlEndpoint, number>> = {};
    for (const pair of splitList(raw)) {
        const [name, value] = pair.split('=').map(part => part.trim());
        if (!name || !(TTL_ENDPOINTS as readonly string[]).includes(name)) {
            throw new ConfigError(`CRYPTO_INTEL_CACHE_TTLS: unknown endpoint "${name ?? ''}" (use ${TTL_ENDPOINTS.join(', ')}, e.g. price=30,grades=600)`);
        }
        ttls[name as TtlEndpoint] = parse(intIn(`CRYPTO_INTEL_CACHE_TTLS ${name}`, 0, 7 * 24 * 3600), value);
    }
    return ttls;
}

function parse<T>(schema: z.ZodType<T>, value: unknown): T {
    const result = schema.safeParse(value);
    if (!result.success) throw new ConfigError(result.error.issues[0]?.message ?? 'invalid configuration');
    return result.data;
}

function parseBaseUrl(raw: string | undefined): string {
    const value = nonEmpty(raw) ?? DEFAULT_BASE_URL;
    let url: URL;
    try {
        url = new URL(value);
    } catch {
        throw new ConfigError(`TOKEN_METRICS_BASE_URL is not a URL: "${value}" (expected e.g. ${DEFAULT_BASE_URL})`);
    }
    if (url.protocol !== 'https:' && url.protocol !== 'http:') {
        throw new ConfigError(`TOKEN_METRICS_BASE_URL must be http(s), got "${url.protocol}"`);
    }
    if (url.search || url.username || url.password) {
        throw new ConfigError('TOKEN_METRICS_BASE_URL must not carry credentials or a query string: keys go in TOKEN_METRICS_API_KEY(S)');
    }
    return url.toString().replace(/\/+$/, '');
}

function parseLogLevel(raw: string | undefined): LogLevel {
    const value = (nonEmpty(raw) ?? 'info').toLowerCase();
    if (!(LOG_LEVELS as readonly string[]).includes(value)) {
        throw new ConfigError(`CRYPTO_INTEL_LOG_LEVEL must be one of ${LOG_LEVELS.join(', ')}, got "${raw}"`);
    }
    return value as LogLevel;
}

interface Flags {
    help: boolean;
    version: boolean;
}

function parseFlags(argv: readonly string[]): Flags {
    const flags: Flags = { help: false, version: false };
    for (const arg of argv) {
        const name = arg.split('=', 1)[0]!;
        switch (name) {
            case '-h':
            case '--help':
                flags.help = true;
                break;
            case '-v':
            case '--version':
                flags.version = true;
                break;
            default:
                throw new ConfigError(`unknown option "${name}" (see --help)`);
        }
    }
    return flags;
}

/**
 * The one place that reads the environment and the command line. Everything else receives `Config`.
 * Throws `ConfigError` with a one-line message on any bad value.
 */
export function loadConfig(env: NodeJS.ProcessEnv, argv: readonly string[]): CliCommand {
    const flags = parseFlags(argv);
    if (flags.help) return { kind: 'help' };
    if (flags.version) return { kind: 'version' };

    const apiKeys = [...new Set([...splitList(env.TOKEN_METRICS_API_KEY), ...splitList(env.TOKEN_METRICS_API_KEYS)])];
    const cacheDirRaw = nonEmpty(env.CRYPTO_INTEL_CACHE_DIR);
    const config: Config = {
        apiKeys,
        apiKeyFile: nonEmpty(env.TOKEN_METRICS_API_KEY_FILE) ?? null,
        baseUrl: parseBaseUrl(env.TOKEN_METRICS_BASE_URL),
        cacheDir: cacheDirRaw?.toLowerCase() === 'off' ? null : (cacheDirRaw ?? defaultCacheDir(env)),
        logLevel: parseLogLevel(env.CRYPTO_INTEL_LOG_LEVEL),
        upstream: {
            attemptTimeoutMs: parse(intIn('CRYPTO_INTEL_TIMEOUT_MS', 100, 120_000), env.CRYPTO_INTEL_TIMEOUT_MS ?? 10_000),
            deadlineMs: parse(intIn('CRYPTO_INTEL_DEADLINE_MS', 100, 300_000), env.CRYPTO_INTEL_DEADLINE_MS ?? 25_000),
            maxRetries: parse(intIn('CRYPTO_INTEL_MAX_RETRIES', 0, 10), env.CRYPTO_INTEL_MAX_RETRIES ?? 3),
            concurrency: parse(intIn('CRYPTO_INTEL_UPSTREAM_CONCURRENCY', 1, 64), env.CRYPTO_INTEL_UPSTREAM_CONCURRENCY ?? 4)
        },
        cache: {
            ttlSeconds: parseTtls(env.CRYPTO_INTEL_CACHE_TTLS),
            staleMaxAgeSeconds: parse(intIn('CRYPTO_INTEL_STALE_MAX_AGE_S', 0, 30 * 24 * 3600), env.CRYPTO_INTEL_STALE_MAX_AGE_S ?? 24 * 3600),
            batchWindowMs: parse(intIn('CRYPTO_INTEL_BATCH_WINDOW_MS', 0, 1000), env.CRYPTO_INTEL_BATCH_WINDOW_MS ?? 5),
            maxEntries: parse(intIn('CRYPTO_INTEL_CACHE_MAX_ENTRIES', 100, 1_000_000), env.CRYPTO_INTEL_CACHE_MAX_ENTRIES ?? 10_000)
        },
    };
    if (config.upstream.attemptTimeoutMs > config.upstream.deadlineMs) {
        throw new ConfigError('CRYPTO_INTEL_TIMEOUT_MS must not exceed CRYPTO_INTEL_DEADLINE_MS');
    }
    return { kind: 'run', config };
}
