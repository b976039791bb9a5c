import { Redis } from 'ioredis';
import type { Logger } from '../logger.js';

/** ioredis's own bound on a command: the backstop behind the shorter per-command bounds below. */
const COMMAND_TIMEOUT_MS = 1_000;
/**
 * A command on a tool call's path (a cache-tier read, a publish, a budget lease) waits at most this by default
 * (`CRYPTO_INTEL_REDIS_TIMEOUT_MS`): a replica would rather answer from its own tier than wait. Redis on loopback or
 * a LAN answers in about a millisecond.
 */
export const CALL_PATH_TIMEOUT_MS = 150;
const CONNECT_TIMEOUT_MS = 2_000;
/** Reconnection never stops; the delay grows from 200 ms to this, so sharing resumes within a second of Redis coming back. */
const MAX_RECONNECT_DELAY_MS = 1_000;
const QUIT_TIMEOUT_MS = 1_000;

/**
 * The health probe: a PING every `intervalMs`. Readiness changes only after `degradeAfter` failed probes in a row
 * and comes back after `recoverAfter` good ones, so a Redis that stalls for a moment (paused, a slow fork, a
 * failover) does not make `/readyz` flap; commands on a call's path stop at the first failure, though, and wait for
 * a good probe before they go to Redis again, so a stalled Redis costs calls one short timeout, not one per call.
 */
export interface HealthPolicy {
    intervalMs: number;
    timeoutMs: number;
    degradeAfter: number;
    recoverAfter: number;
}

export const DEFAULT_HEALTH: HealthPolicy = { intervalMs: 1_000, timeoutMs: 500, degradeAfter: 3, recoverAfter: 2 };

/** Counts since start-up, for tests and status: commands that ran, timed out, or were skipped while Redis was suspect. */
export interface RedisStats {
    commands: number;
    timeouts: number;
    skipped: number;
}

class RedisTimeout extends Error {
    override name = 'RedisTimeout';
}

/** `promise`, or a `RedisTimeout` after `ms`; the promise's own later failure is handled, never unhandled. */
function within<T>(promise: Promise<T>, ms: number): Promise<T> {
    let timer: NodeJS.Timeout | undefined;
    const timeout = new Promise<never>((_, reject) => (timer = setTimeout(() => reject(new RedisTimeout(`no reply within ${ms} ms`)), ms)));
    return Promise.race([promise, timeout]).finally(() => clearTimeout(timer));
}

/** What `/readyz` says about Redis: never the URL, which may carry a password. */
export interface RedisHealth {
    up: boolean;
    /** host:port */
    endpoint: string;
}

type ScriptCommand = (numberOfKeys: number, ...keysAndArgs: Array<string | number>) => Promise<unknown>;

/**
 * A Lua script, through ioredis' own script support (`defineCommand`): sent by its SHA1, and in full only when Redis
 * does not have it yet (after a restart, say). Defined on a connection the first time it runs there.
 */
export class Script {
    private readonly definedOn = new WeakSet<Redis>();

    constructor(
        /** The command's name on the connection: unique per script. */
        private readonly name: string,
        private readonly lua: string
    ) {}

    run(client: Redis, keys: readonly string[], args: ReadonlyArray<string | number>): Promise<unknown> {
        if (!this.definedOn.has(client)) {
            // No numberOfKeys: the claim and release scripts take as many keys as a call has, so each call says how many.
            client.defineCommand(this.name, { lua: this.lua });
            this.definedOn.add(client);
        }
        // defineCommand adds the method at run time; ioredis' types cannot know it.
        const command = (client as unknown as Record<string, ScriptCommand>)[this.name]!;
        return command.call(client, keys.length, ...keys, ...args);
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
 * waits for a Redis that is down, and each command is bounded (`callTimeoutMs` by default) for one that is
 * up but stalled. An outage is logged once when readiness drops and once when it returns.
 */
export class RedisLink {
    readonly client: Redis;
    readonly endpoint: string;
    private readonly policy: HealthPolicy;
    /** What `/readyz` reports: changes only after `degradeAfter` / `recoverAfter` probes in a row. */
    private healthy = false;
    private connectedOnce = false;
    private warnedAtStart = false;
    private outageSince: number | null = null;
    /** A command failed or timed out: commands skip Redis until a probe answers. */
    private suspect = false;
    private failuresInRow = 0;
    private successesInRow = 0;
    private probing = false;
    private readonly probe: NodeJS.Timeout;
    private closing = false;
    private readonly counts: RedisStats = { commands: 0, timeouts: 0, skipped: 0 };

    constructor(
        url: string,
        private readonly logger: Logger,
        health: Partial<HealthPolicy> = {},
        /** How long a command on a tool call's path waits before the call goes on without Redis. */
        readonly callTimeoutMs: number = CALL_PATH_TIMEOUT_MS
    ) {
        const parsed = new URL(url);
        this.endpoint = `${parsed.hostname}:${parsed.port || '6379'}`;
        // A probe is never stricter than a call: a Redis slow enough to serve calls is not reported down.
        const policy = { ...DEFAULT_HEALTH, ...health };
        this.policy = { ...policy, timeoutMs: Math.max(policy.timeoutMs, callTimeoutMs) };
        this.client = new Redis(url, {
            enableOfflineQueue: false,
            maxRetriesPerRequest: 0,
            connectTimeout: CONNECT_TIMEOUT_MS,
            commandTimeout: Math.max(COMMAND_TIMEOUT_MS, callTimeoutMs),
            retryStrategy: times => Math.min(MAX_RECONNECT_DELAY_MS, 100 * 2 ** Math.min(times, 4))
        });
        this.client.on('ready', () => this.connected());
        // Without an 'error' listener ioredis prints every failed reconnection to the console.
        this.client.on('error', (error: unknown) => this.connectionFailed(errorCode(error)));
        this.client.on('close', () => this.connectionFailed('connection closed'));
        this.probe = setInterval(() => void this.runProbe(), this.policy.intervalMs);
        this.probe.unref();
    }

    /** Whether a command is worth sending now. */
    get up(): boolean {
        return this.client.status === 'ready' && !this.suspect;
    }

    health(): RedisHealth {
        return { up: this.healthy, endpoint: this.endpoint };
    }

    stats(): RedisStats {
        return { ...this.counts };
    }

    /**
     * Runs `command` against Redis, or answers `fallback` when Redis is unavailable, the command fails, or no reply
     * comes within `timeoutMs`. Never rejects.
     */
    async run<T>(command: (client: Redis) => Promise<T>, fallback: T, timeoutMs: number = this.callTimeoutMs): Promise<T> {
        if (!this.up) {
            this.counts.skipped++;
            return fallback;
        }
        this.counts.commands++;
        try {
            return await within(command(this.client), timeoutMs);
        } catch (error) {
            // A reply error (NOSCRIPT, WRONGTYPE...) is Redis answering: no reason to stop asking it.
            if (error instanceof Error && error.name === 'ReplyError') return fallback;
            if (error instanceof RedisTimeout) this.counts.timeouts++;
            if (!this.suspect)
                this.logger.debug('Redis command failed: skipping Redis until it answers a probe', {
                    redis: this.endpoint,
                    error: errorCode(error)
                });
            this.suspect = true;
            return fallback;
        }
    }

    /** Closes the connection, waiting briefly for replies in flight; stops reconnecting. */
    async close(): Promise<void> {
        this.closing = true;
        clearInterval(this.probe);
        const quit = this.client.quit().catch(() => undefined);
        const timer = new Promise<void>(resolve => setTimeout(resolve, QUIT_TIMEOUT_MS).unref());
        await Promise.race([quit, timer]);
        this.client.disconnect();
    }

    private async runProbe(): Promise<void> {
        if (this.probing || this.closing) return;
        this.probing = true;
        try {
            let ok = false;
            if (this.client.status === 'ready') {
                try {
                    ok = (await within(this.client.ping(), this.policy.timeoutMs)) === 'PONG';
                } catch {
                    ok = false;
                }
            }
            if (this.closing) return;
            if (ok) this.probeSucceeded();
            else this.probeFailed();
        } finally {
            this.probing = false;
        }
    }

    private probeSucceeded(): void {
        this.suspect = false;
        this.failuresInRow = 0;
        this.successesInRow++;
        if (!this.healthy && this.connectedOnce && this.successesInRow >= this.policy.recoverAfter) this.becomeHealthy();
    }

    private probeFailed(): void {
        this.suspect = true;
        this.successesInRow = 0;
        this.failuresInRow++;
        if (this.healthy && this.failuresInRow >= this.policy.degradeAfter)
            this.becomeUnhealthy(this.client.status === 'ready' ? 'no reply to PING' : 'not connected');
    }

    private connected(): void {
        this.suspect = false;
        // At start-up there is no state to flap from: the first connection makes the replica ready at once.
        if (!this.connectedOnce) {
            this.connectedOnce = true;
            this.healthy = true;
            this.logger.info('Redis connected: sharing the cache and the upstream budget with other replicas', { redis: this.endpoint });
        }
    }

    private connectionFailed(code: string): void {
        if (this.closing) return;
        this.suspect = true;
        // Never connected yet: say so once, at once (readiness is already "unavailable").
        if (!this.connectedOnce && !this.warnedAtStart) {
            this.warnedAtStart = true;
            this.outageSince = Date.now();
            this.logger.warn('Redis unavailable: answering from the local cache and the upstream until it is back', {
                redis: this.endpoint,
                error: code
            });
        }
    }

    private becomeHealthy(): void {
        this.healthy = true;
        this.logger.info('Redis reachable again: the shared cache and upstream budget are back', {
            redis: this.endpoint,
            outageS: this.outageSince === null ? 0 : Math.round((Date.now() - this.outageSince) / 1000)
        });
        this.outageSince = null;
    }

    private becomeUnhealthy(reason: string): void {
        this.healthy = false;
        this.outageSince = Date.now();
        this.logger.warn('Redis unavailable: answering from the local cache and the upstream until it is back', {
            redis: this.endpoint,
            error: reason
        });
    }
}
