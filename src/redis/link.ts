import { createHash } from 'node:crypto';
import { Redis } from 'ioredis';
import type { Logger } from '../logger.js';
import type { Redactor } from '../redact.js';

/** After a failed command Redis is left alone this long, so a hung server costs one timeout per second, not one per request. */
const BACKOFF_AFTER_FAILURE_MS = 1_000;
/** Short: a replica would rather answer without the shared tier than wait for it. */
const COMMAND_TIMEOUT_MS = 1_000;
const CONNECT_TIMEOUT_MS = 2_000;
/** Reconnection never stops; the delay grows from 200 ms to this, so sharing resumes within a second of Redis coming back. */
const MAX_RECONNECT_DELAY_MS = 1_000;
const QUIT_TIMEOUT_MS = 1_000;

/** What `/readyz` says about Redis: never the URL, which may carry a password. */
export interface RedisHealth {
    up: boolean;
    /** host:port */
    endpoint: string;
}

/** A Lua script run by its SHA1, sent in full only when Redis does not have it yet (after a restart, say). */
export class Script {
    private readonly sha: string;

    constructor(private readonly lua: string) {
        this.sha = createHash('sha1').update(lua).digest('hex');
    }

    async run(client: Redis, keys: readonly string[], args: ReadonlyArray<string | number>): Promise<unknown> {
        try {
            return await client.evalsha(this.sha, keys.length, ...keys, ...args);
        } catch (error) {
            if (!(error instanceof Error) || !error.message.startsWith('NOSCRIPT')) throw error;
            return client.eval(this.lua, keys.length, ...keys, ...args);
        }
    }
}

/** The error's code or class, never its message: ioredis messages can quote the command, and with it cached data. */
function errorCode(error: unknown): string {
    const code = (error as { code?: unknown } | undefined)?.code;
    if (typeof code === 'string') return code;
    if (error instanceof Error) return error.message.startsWith('NOSCRIPT') ? 'NOSCRIPT' : error.name;
    return 'unknown';
}

/**
 * One Redis connection and its health. Redis is an optimisation here, never a dependency: `run` answers its
 * fallback whenever Redis is unreachable, slow or failing, and the connection retries in the background forever.
 * Commands are not queued while disconnected (`enableOfflineQueue: false`): they fail at once, so a request never
 * waits for a Redis that is down. An outage is logged once when it starts and once when it ends.
 */
export class RedisLink {
    readonly client: Redis;
    readonly endpoint: string;
    private outageSince: number | null = null;
    private connectedOnce = false;
    private skipUntil = 0;
    private closing = false;

    constructor(
        url: string,
        private readonly logger: Logger
    ) {
        const parsed = new URL(url);
        this.endpoint = `${parsed.hostname}:${parsed.port || '6379'}`;
        this.client = new Redis(url, {
            enableOfflineQueue: false,
            maxRetriesPerRequest: 0,
            connectTimeout: CONNECT_TIMEOUT_MS,
            commandTimeout: COMMAND_TIMEOUT_MS,
            retryStrategy: times => Math.min(MAX_RECONNECT_DELAY_MS, 100 * 2 ** Math.min(times, 4))
        });
        this.client.on('ready', () => this.succeeded());
        // Without an 'error' listener ioredis prints every failed reconnection to the console.
        this.client.on('error', (error: unknown) => this.failed(errorCode(error)));
        this.client.on('close', () => this.failed('connection closed'));
    }

    /** Whether a command is worth sending now. */
    get up(): boolean {
        return this.client.status === 'ready' && Date.now() >= this.skipUntil;
    }

    health(): RedisHealth {
        return { up: this.up, endpoint: this.endpoint };
    }

    /** Runs `command` against Redis, or answers `fallback` when Redis is unavailable or the command fails. Never rejects. */
    async run<T>(command: (client: Redis) => Promise<T>, fallback: T): Promise<T> {
        if (!this.up) return fallback;
        try {
            const result = await command(this.client);
            this.succeeded();
            return result;
        } catch (error) {
            this.skipUntil = Date.now() + BACKOFF_AFTER_FAILURE_MS;
            this.failed(errorCode(error));
            return fallback;
        }
    }

    /** Closes the connection, waiting briefly for replies in flight; stops reconnecting. */
    async close(): Promise<void> {
        this.closing = true;
        const quit = this.client.quit().catch(() => undefined);
        const timer = new Promise<void>(resolve => setTimeout(resolve, QUIT_TIMEOUT_MS).unref());
        await Promise.race([quit, timer]);
        this.client.disconnect();
    }

    private succeeded(): void {
        if (this.outageSince !== null) {
            this.logger.info('Redis reachable again: the shared cache and upstream budget are back', {
                redis: this.endpoint,
                outageS: Math.round((Date.now() - this.outageSince) / 1000)
            });
            this.outageSince = null;
        } else if (!this.connectedOnce) {
            this.logger.info('Redis connected: sharing the cache and the upstream budget with other replicas', { redis: this.endpoint });
        }
        this.connectedOnce = true;
    }

    private failed(code: string): void {
        if (this.closing || this.outageSince !== null) return;
        this.outageSince = Date.now();
        this.logger.warn('Redis unavailable: answering from the local cache and the upstream until it is back', {
            redis: this.endpoint,
            error: code
        });
    }
}
