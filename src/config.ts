import { readFileSync, statSync } from 'node:fs';
import { homedir } from 'node:os';
import { join } from 'node:path';
import * as z from 'zod';
import { LOG_LEVELS, type LogLevel } from './logger.js';

/** Endpoints whose cache lifetime can be tuned; the cache module owns the defaults. */
export const TTL_ENDPOINTS = ['tokens', 'price', 'grades', 'signals', 'moonshots', 'ohlcv'] as const;
export type TtlEndpoint = (typeof TTL_ENDPOINTS)[number];

/** Streamable HTTP settings; read only with `--http`. */
export interface HttpConfig {
    port: number;
    host: string;
    /** Bearer tokens accepted on `/mcp`; empty means no authentication, which is allowed on a loopback host only. */
    tokens: string[];
    /** Host names accepted in the Host and Origin headers besides the loopback names and `host`. */
    allowedHosts: string[];
    /** `CRYPTO_INTEL_HTTP_ALLOWED_HOSTS=*`: any Host and Origin (for a proxy that rewrites them; tokens still apply). */
    allowAnyHost: boolean;
    /** Tool calls per minute per token (per client address without tokens), each batch element counted; 0 turns the limit off. */
    ratePerMin: number;
    /** Uncached tool calls one token (or address) may have under way at once; the excess is answered "busy". 0: no cap. */
    maxConcurrentCalls: number;
    /** Failed bearer attempts per minute per client address before its requests get 429; 0 turns the limit off. */
    authFailuresPerMin: number;
    /**
     * The tokens file's permission bits, `null` without a file. One that group or others can read is refused at
     * start-up unless `CRYPTO_INTEL_ALLOW_SHARED_TOKENS_FILE=1`, and then warned about.
     */
    tokensFileMode: number | null;
}

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

/** Subcommands: the first word of the command line, before any option. */
export const COMMANDS = ['doctor', 'keys'] as const;

/** A configuration mistake: the CLI prints `message` as one line and exits with code 2. */
export class ConfigError extends Error {
    override name = 'ConfigError';
}

const DEFAULT_BASE_URL = 'https://api.tokenmetrics.com/v2';
const DEFAULT_HTTP_PORT = 3333;
const DEFAULT_HTTP_HOST = '127.0.0.1';
/** Shorter tokens are guessable by brute force over the network. */
const MIN_TOKEN_LENGTH = 16;
/** A tokens file bigger than this is a wrong path, not a list of tokens. */
const MAX_TOKENS_FILE_BYTES = 64 * 1024;

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
            throw new ConfigError(
                `CRYPTO_INTEL_CACHE_TTLS: unknown endpoint "${name ?? ''}" (use ${TTL_ENDPOINTS.join(', ')}, e.g. price=30,grades=600)`
            );
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
    http: boolean;
    port?: string;
    host?: string;
}

/** `--port 3333` and `--port=3333` both work; a flag that takes no value refuses one. */
function parseFlags(argv: readonly string[]): Flags {
    const flags: Flags = { help: false, version: false, http: false };
    for (let i = 0; i < argv.length; i++) {
        const arg = argv[i]!;
        const equals = arg.indexOf('=');
        const name = equals < 0 ? arg : arg.slice(0, equals);
        const inline = equals < 0 ? undefined : arg.slice(equals + 1);
        const value = (): string => {
            const given = inline ?? argv[++i];
            if (given === undefined || given === '' || given.startsWith('--')) {
                throw new ConfigError(`option ${name} needs a value (see --help)`);
            }
            return given;
        };
        const flag = (): true => {
            if (inline !== undefined) throw new ConfigError(`option ${name} takes no value`);
            return true;
        };
        switch (name) {
            case '-h':
            case '--help':
                flags.help = flag();
                break;
            case '-v':
            case '--version':
                flags.version = flag();
                break;
            case '--http':
                flags.http = flag();
                break;
            case '--port':
                flags.port = value();
                break;
            case '--host':
                flags.host = value();
                break;
            default:
                throw new ConfigError(`unknown option "${name}" (see --help)`);
        }
    }
    if (!flags.http && (flags.port !== undefined || flags.host !== undefined)) {
        throw new ConfigError('--port and --host apply to the HTTP transport: add --http');
    }
    return flags;
}

/** Loopback names and addresses: a server bound there is reachable from this machine only. */
export function isLoopbackHost(host: string): boolean {
    const name = host
        .trim()
        .toLowerCase()
        .replace(/^\[(.*)\]$/, '$1');
    return name === 'localhost' || name === '::1' || /^127\.\d{1,3}\.\d{1,3}\.\d{1,3}$/.test(name);
}

function parseTokens(env: NodeJS.ProcessEnv): { tokens: string[]; fileMode: number | null } {
    const tokens = splitList(env.CRYPTO_INTEL_HTTP_TOKENS);
    const file = nonEmpty(env.CRYPTO_INTEL_HTTP_TOKENS_FILE);
    let fileMode: number | null = null;
    if (file !== undefined) {
        let text: string;
        try {
            // A FIFO or a device would block start-up or never end: only a regular file is read, as the key file.
            const stat = statSync(file);
            if (!stat.isFile()) throw new ConfigError(`CRYPTO_INTEL_HTTP_TOKENS_FILE is not a regular file: "${file}"`);
            fileMode = stat.mode & 0o777;
            // As the API key file: the tokens are secrets, so a file other users can read is refused unless intended.
            if (
                (fileMode & 0o077) !== 0 &&
                process.platform !== 'win32' &&
                !parseSwitch('CRYPTO_INTEL_ALLOW_SHARED_TOKENS_FILE', env.CRYPTO_INTEL_ALLOW_SHARED_TOKENS_FILE)
            ) {
                throw new ConfigError(
                    `CRYPTO_INTEL_HTTP_TOKENS_FILE "${file}" is readable by other users (mode ${fileMode.toString(8).padStart(3, '0')}): refused. ` +
                        `Fix it with: chmod 600 '${file.replace(/'/g, "'\\''")}' (or set CRYPTO_INTEL_ALLOW_SHARED_TOKENS_FILE=1 to use it anyway)`
                );
            }
            const buffer = readFileSync(file);
            if (buffer.length > MAX_TOKENS_FILE_BYTES) {
                throw new ConfigError(`CRYPTO_INTEL_HTTP_TOKENS_FILE is over ${MAX_TOKENS_FILE_BYTES} bytes: is "${file}" the right file?`);
            }
            text = buffer.toString('utf8');
        } catch (error) {
            if (error instanceof ConfigError) throw error;
            const code = (error as NodeJS.ErrnoException).code ?? 'error';
            throw new ConfigError(`CRYPTO_INTEL_HTTP_TOKENS_FILE cannot be read: "${file}" (${code})`);
        }
        for (const line of text.split(/\r?\n/)) {
            const token = line.trim();
            if (token !== '' && !token.startsWith('#')) tokens.push(token);
        }
    }
    for (const [index, token] of tokens.entries()) {
        // The message names the position, never the token: this line goes to a log.
        if (token.length < MIN_TOKEN_LENGTH) {
            throw new ConfigError(
                `HTTP token #${index + 1} is shorter than ${MIN_TOKEN_LENGTH} characters; make one with: openssl rand -hex 32`
            );
        }
        if (/\s/.test(token)) throw new ConfigError(`HTTP token #${index + 1} contains whitespace`);
    }
    return { tokens: [...new Set(tokens)], fileMode };
}

function parseHttp(env: NodeJS.ProcessEnv, flags: Flags): HttpConfig {
    const portSource = flags.port !== undefined ? '--port' : 'CRYPTO_INTEL_HTTP_PORT';
    const port = parse(intIn(portSource, 0, 65_535), flags.port ?? nonEmpty(env.CRYPTO_INTEL_HTTP_PORT) ?? DEFAULT_HTTP_PORT);
    const host = flags.host ?? nonEmpty(env.CRYPTO_INTEL_HTTP_HOST) ?? DEFAULT_HTTP_HOST;
    const hostSource = flags.host !== undefined ? '--host' : 'CRYPTO_INTEL_HTTP_HOST';
    if (!/^[A-Za-z0-9.:[\]_-]+$/.test(host)) throw new ConfigError(`${hostSource} is not a host name or address: "${host}"`);
    const { tokens, fileMode } = parseTokens(env);
    if (!isLoopbackHost(host) && tokens.length === 0) {
        throw new ConfigError(
            `refusing to serve on non-loopback host ${host} without access tokens: ` +
                'set CRYPTO_INTEL_HTTP_TOKENS or CRYPTO_INTEL_HTTP_TOKENS_FILE, or bind to 127.0.0.1'
        );
    }
    const allowed = splitList(env.CRYPTO_INTEL_HTTP_ALLOWED_HOSTS).map(name => name.toLowerCase());
    return {
        port,
        host,
        tokens,
        allowedHosts: allowed.filter(name => name !== '*'),
        allowAnyHost: allowed.includes('*'),
        ratePerMin: parse(intIn('CRYPTO_INTEL_HTTP_RATE_PER_MIN', 0, 1_000_000), nonEmpty(env.CRYPTO_INTEL_HTTP_RATE_PER_MIN) ?? 600),
        maxConcurrentCalls: parse(
            intIn('CRYPTO_INTEL_HTTP_MAX_CONCURRENT_CALLS', 0, 10_000),
            nonEmpty(env.CRYPTO_INTEL_HTTP_MAX_CONCURRENT_CALLS) ?? 8
        ),
        authFailuresPerMin: parse(
            intIn('CRYPTO_INTEL_HTTP_AUTH_FAILURES_PER_MIN', 0, 100_000),
            nonEmpty(env.CRYPTO_INTEL_HTTP_AUTH_FAILURES_PER_MIN) ?? 10
        ),
        tokensFileMode: fileMode
    };
}

/**
 * The Claude Desktop bundle maps optional settings to variables with `${user_config.name}`; some client versions pass
 * a setting the user left empty as that placeholder, unresolved (modelcontextprotocol/mcpb#250, #251). Such a value
 * means "not set": a literal placeholder must neither be read as an API key nor fail a number's check.
 */
function withoutUnfilledPlaceholders(env: NodeJS.ProcessEnv): NodeJS.ProcessEnv {
    const placeholder = /^\$\{user_config\.[A-Za-z0-9_]+\}$/;
    if (!Object.values(env).some(value => value !== undefined && placeholder.test(value.trim()))) return env;
    return Object.fromEntries(Object.entries(env).filter(([, value]) => value === undefined || !placeholder.test(value.trim())));
}

/** `1`/`true`/`yes` or `0`/`false`/`no` (any case); unset is off. */
function parseSwitch(name: string, raw: string | undefined): boolean {
    const value = nonEmpty(raw)?.toLowerCase();
    if (value === undefined || value === '0' || value === 'false' || value === 'no') return false;
    if (value === '1' || value === 'true' || value === 'yes') return true;
    throw new ConfigError(`${name} must be 1 or 0, got "${raw}"`);
}

/** `CRYPTO_INTEL_AUDIT_LOG`: a file path, or `off`; unset means `audit.log` in the cache directory (none when the cache is off). */
function parseAuditLog(raw: string | undefined, cacheDir: string | null): string | null {
    const value = nonEmpty(raw);
    if (value === undefined) return cacheDir === null ? null : join(cacheDir, 'audit.log');
    return value.toLowerCase() === 'off' ? null : value;
}

function parseRedisUrl(raw: string | undefined): string | null {
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

/**
 * The one place that reads the environment and the command line. Everything else receives `Config`.
 * Throws `ConfigError` with a one-line message on any bad value.
 */
export function loadConfig(env: NodeJS.ProcessEnv, argv: readonly string[]): CliCommand {
    env = withoutUnfilledPlaceholders(env);
    const [first, ...rest] = argv;
    const doctor = first === 'doctor';
    const keysCommand = first === 'keys';
    const subcommand = doctor || keysCommand;
    if (first !== undefined && !subcommand && !first.startsWith('-')) {
        throw new ConfigError(`unknown command "${first}" (the commands are ${COMMANDS.join(', ')}; see --help)`);
    }
    if (doctor && rest.some(arg => /^--(?:http|port|host)(?:=|$)/.test(arg))) {
        throw new ConfigError('doctor takes no --http, --port or --host: it calls the Token Metrics API directly');
    }
    if (keysCommand && rest.some(arg => /^--(?:http|port|host)(?:=|$)/.test(arg))) {
        throw new ConfigError('keys takes no --http, --port or --host: it reads the key configuration and makes no call');
    }
    const flags = parseFlags(subcommand ? rest : argv);
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
            batchWindowMs: parse(intIn('CRYPTO_INTEL_BATCH_WINDOW_MS', 0, 1000), env.CRYPTO_INTEL_BATCH_WINDOW_MS ?? 5),
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
        monthlyCredits:
            nonEmpty(env.CRYPTO_INTEL_MONTHLY_CREDITS) === undefined
                ? null
                : parse(intIn('CRYPTO_INTEL_MONTHLY_CREDITS', 1, 1_000_000_000), nonEmpty(env.CRYPTO_INTEL_MONTHLY_CREDITS))
    };
    if (config.upstream.attemptTimeoutMs > config.upstream.deadlineMs) {
        throw new ConfigError('CRYPTO_INTEL_TIMEOUT_MS must not exceed CRYPTO_INTEL_DEADLINE_MS');
    }
    return doctor ? { kind: 'doctor', config } : keysCommand ? { kind: 'keys', config } : { kind: 'run', config };
}
