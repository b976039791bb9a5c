import { readFileSync, statSync } from 'node:fs';
import type { Flags } from './arguments.js';
import { ConfigError, intIn, nonEmpty, parse, parseSwitch, splitList } from './env.js';

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

export const DEFAULT_HTTP_PORT = 3333;
export const DEFAULT_HTTP_HOST = '127.0.0.1';
/** Shorter tokens are guessable by brute force over the network. */
const MIN_TOKEN_LENGTH = 16;
/** A tokens file bigger than this is a wrong path, not a list of tokens. */
const MAX_TOKENS_FILE_BYTES = 64 * 1024;

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

/** The HTTP transport's settings from the environment and `--port`/`--host`; refuses a non-loopback host without tokens. */
export function parseHttp(env: NodeJS.ProcessEnv, flags: Flags): HttpConfig {
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
