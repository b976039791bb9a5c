import { homedir } from 'node:os';
import { join } from 'node:path';
import { ConfigError, nonEmpty } from './env.js';

// Where the server talks to and writes: the upstream and Redis URLs, the cache directory, the audit trail.

const DEFAULT_BASE_URL = 'https://api.tokenmetrics.com/v2';

/** The user's cache directory, following XDG on Linux and the platform convention elsewhere. */
export function defaultCacheDir(env: NodeJS.ProcessEnv, platform: NodeJS.Platform = process.platform): string {
    if (platform === 'win32') return join(env.LOCALAPPDATA ?? join(homedir(), 'AppData', 'Local'), 'crypto-intel-mcp', 'cache');
    if (platform === 'darwin') return join(homedir(), 'Library', 'Caches', 'crypto-intel-mcp');
    return join(nonEmpty(env.XDG_CACHE_HOME) ?? join(homedir(), '.cache'), 'crypto-intel-mcp');
}

export function parseBaseUrl(raw: string | undefined): string {
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

/** `CRYPTO_INTEL_AUDIT_LOG`: a file path, or `off`; unset means `audit.log` in the cache directory (none when the cache is off). */
export function parseAuditLog(raw: string | undefined, cacheDir: string | null): string | null {
    const value = nonEmpty(raw);
    if (value === undefined) return cacheDir === null ? null : join(cacheDir, 'audit.log');
    return value.toLowerCase() === 'off' ? null : value;
}

export function parseRedisUrl(raw: string | undefined): string | null {
    const value = nonEmpty(raw);
    if (value === undefined) return null;
    let url: URL;
    try {
        url = new URL(value);
    } catch {
        // Not echoed: a malformed URL may still hold a password.
        throw new ConfigError(
            'CRYPTO_INTEL_REDIS_URL is not a URL (expected e.g. redis://127.0.0.1:6379 or rediss://user:password@host:6380/0)'
        );
    }
    if (url.protocol !== 'redis:' && url.protocol !== 'rediss:') {
        throw new ConfigError(`CRYPTO_INTEL_REDIS_URL must start with redis:// or rediss://, got "${url.protocol}"`);
    }
    return value;
}
