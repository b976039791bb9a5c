import type { Dispatcher } from 'undici';
import type { Clock } from '../clock.js';
import type { KeyChoice, KeyProvider } from '../keys/pool.js';
import type { Logger } from '../logger.js';
import {
    allKeysRevoked,
    cancelled,
    isUpstreamError,
    noApiKey,
    notFound,
    notInPlan,
    quotaExhausted,
    rateLimited,
    schemaDrift,
    upstreamRejected,
    upstreamTimeout,
    upstreamUnavailable,
    type UpstreamError
} from './errors.js';

export interface RetryPolicy {
    maxRetries: number;
    /** Full-jitter exponential backoff: a retry waits random() * min(maxMs, baseMs * 2^attempt). */
    backoffBaseMs: number;
    backoffMaxMs: number;
    /** Cool-down for a 429 that names no Retry-After. */
    defaultRetryAfterMs: number;
    /** How long a key whose quota is used up sits out before it is tried again. */
    exhaustedCooldownMs: number;
}

export interface HttpOptions {
    baseUrl: string;
    attemptTimeoutMs: number;
    deadlineMs: number;
    concurrency: number;
    retry?: Partial<RetryPolicy>;
    /** Injected for deterministic jitter in tests. */
    random?: () => number;
    /** Injected for tests; by default one keep-alive Agent per client. */
    dispatcher?: Dispatcher;
    /** Replaces the in-process cap of `concurrency`, e.g. with a budget shared by several replicas. */
    limiter?: ConcurrencyLimiter;
}

/** Grants one upstream request at a time; the function it resolves to gives the grant back (calling it twice is harmless). */
export interface ConcurrencyLimiter {
    acquire(signal: AbortSignal): Promise<() => void>;
}

export type QueryValue = string | number | undefined;

export interface UpstreamRequest {
    /** Endpoint path such as `/price`. */
    path: string;
    query?: Record<string, QueryValue>;
    signal?: AbortSignal;
}

export interface UpstreamPage {
    rows: unknown[];
    /** Fingerprint of the key that served the page. */
    servedBy: string;
}

const DEFAULT_RETRY: RetryPolicy = {
    maxRetries: 3,
    backoffBaseMs: 250,
    backoffMaxMs: 4_000,
    defaultRetryAfterMs: 10_000,
    exhaustedCooldownMs: 3_600_000
};

/** Statuses worth another attempt; 400/401/403/404 are answers, not accidents. */
const RETRYABLE_STATUS = new Set([408, 425, 429, 500, 502, 503, 504]);
/**
 * A used-up monthly quota, as opposed to a per-minute rate limit: "Rate limit exceeded" on a 429 must cool the
 * key for its Retry-After, not set it aside for an hour.
 */
const QUOTA_MESSAGE = /quota|credits?\b|monthly (?:limit|usage)|plan limit|upgrade your plan/i;
const QUOTA_USED_MESSAGE = /quota|credits?\b|monthly (?:limit|usage)/i;

/**
 * A 403 means "this key is no good" only when it says so; otherwise it is this endpoint outside the key's plan
 * (unconfirmed upstream behaviour, so both readings are handled), and the key keeps serving the other endpoints.
 */
const INVALID_KEY_MESSAGE = /invalid|revoked|expired|disabled|unauthori[sz]ed|not authenticated|forbidden key/i;

/**
 * undici is loaded on the first upstream request, not at start-up: an MCP client waits for the server's
 * tool list before anything else, and undici's load time (~60 ms) would add to that wait for nothing.
 */
let undici: Promise<typeof import('undici')> | undefined;
const loadUndici = (): Promise<typeof import('undici')> => (undici ??= import('undici'));

/** Parse `Retry-After` (delta seconds or an HTTP date) into an absolute time. */
export function parseRetryAfter(value: string | string[] | undefined, nowMs: number): number | undefined {
    const raw = Array.isArray(value) ? value[0] : value;
    if (raw === undefined || raw.trim() === '') return undefined;
    if (/^\d+(\.\d+)?$/.test(raw.trim())) return nowMs + Math.round(Number(raw) * 1000);
    const date = Date.parse(raw);
    return Number.isNaN(date) ? undefined : Math.max(nowMs, date);
}

/** A counting semaphore: at most `limit` upstream requests in flight, the rest queue in order. */
export class Semaphore implements ConcurrencyLimiter {
    private active = 0;
    private readonly waiting: Array<() => void> = [];

    constructor(private readonly limit: number) {}

    async acquire(signal: AbortSignal): Promise<() => void> {
        if (this.active >= this.limit) {
            await new Promise<void>((resolve, reject) => {
                const onAbort = () => {
                    const index = this.waiting.indexOf(grant);
                    if (index >= 0) this.waiting.splice(index, 1);
                    reject(signal.reason);
                };
                const grant = () => {
                    signal.removeEventListener('abort', onAbort);
                    resolve();
                };
                if (signal.aborted) return reject(signal.reason);
                signal.addEventListener('abort', onAbort, { once: true });
                this.waiting.push(grant);
            });
        } else {
            this.active += 1;
        }
        let released = false;
        return () => {
            if (released) return;
            released = true;
            const next = this.waiting.shift();
            if (next) next();
            else this.active -= 1;
        };
    }
}

type ChosenKey = Extract<KeyChoice, { kind: 'key' }>;

interface Attempt {
    url: URL;
    endpoint: string;
    choice: ChosenKey;
    /** The attempt's timeout and the caller's abort together. */
    signal: AbortSignal;
    attemptMs: number;
    callerSignal: AbortSignal | undefined;
}

/** What one upstream answer means for the call that asked. */
type Verdict =
    | { kind: 'answer'; page: UpstreamPage }
    /** The key was the problem (revoked, rate limited, quota used up): the same request moves to the next key at once. */
    | { kind: 'next-key'; failure?: UpstreamError }
    /** A transient failure, worth another attempt at `retryAt` (the upstream's Retry-After), or after a backoff. */
    | { kind: 'retry'; failure: UpstreamError; retryAt?: number };

interface RawResponse {
    status: number;
    headers: Record<string, string | string[] | undefined>;
    text: string;
}

/** A message the upstream put in its envelope, if any, without trusting its shape. */
function envelopeMessage(text: string): unknown {
    try {
        return (JSON.parse(text) as { message?: unknown })?.message;
    } catch {
        return undefined;
    }
}

/**
 * The HTTP layer for the Token Metrics API: one keep-alive Agent, a per-attempt timeout inside an
 * overall deadline, cancellation, key selection per attempt, retries with full-jitter backoff that
 * honour Retry-After, and a concurrency cap. It returns the envelope's `data` rows, unparsed.
 */
export class UpstreamHttp {
    private readonly retry: RetryPolicy;
    private dispatcher: Promise<Dispatcher> | undefined;
    private readonly ownsDispatcher: boolean;
    private readonly semaphore: ConcurrencyLimiter;
    private readonly random: () => number;
    private readonly base: URL;

    constructor(
        private readonly options: HttpOptions,
        private readonly keys: KeyProvider,
        private readonly clock: Clock,
        private readonly logger: Logger
    ) {
        this.retry = { ...DEFAULT_RETRY, ...options.retry };
        this.random = options.random ?? Math.random;
        this.semaphore = options.limiter ?? new Semaphore(options.concurrency);
        this.base = new URL(options.baseUrl.endsWith('/') ? options.baseUrl : `${options.baseUrl}/`);
        this.ownsDispatcher = !options.dispatcher;
        if (options.dispatcher) this.dispatcher = Promise.resolve(options.dispatcher);
    }

    /** The URL of a request, query encoded by URLSearchParams; never carries a key. */
    url(path: string, query: Record<string, QueryValue> = {}): URL {
        const url = new URL(path.replace(/^\/+/, ''), this.base);
        for (const [name, value] of Object.entries(query)) {
            if (value !== undefined) url.searchParams.set(name, String(value));
        }
        return url;
    }

    async getRows(req: UpstreamRequest): Promise<UpstreamPage> {
        const deadline = this.clock.now() + this.options.deadlineMs;
        const url = this.url(req.path, req.query);
        const endpoint = req.path;
        let retries = 0;
        let lastFailure: UpstreamError | undefined;
        /** Spends one retry waiting (until `retryAt`, or a backoff), or throws `failure` when none is left in budget or time. */
        const retryOrThrow = async (failure: UpstreamError, retryAt?: number): Promise<void> => {
            if (retries >= this.retry.maxRetries) throw failure;
            retries += 1;
            if (retryAt === undefined) return this.backoff(retries, deadline, req.signal, endpoint, failure);
            if (retryAt > deadline) throw failure;
            await this.pauseUntil(retryAt, req.signal, endpoint);
        };

        for (;;) {
            if (req.signal?.aborted) throw cancelled({ endpoint, cause: req.signal.reason });
            const remaining = deadline - this.clock.now();
            if (remaining <= 0) throw lastFailure ?? upstreamTimeout(this.options.deadlineMs, { endpoint });
            const attemptMs = Math.min(this.options.attemptTimeoutMs, remaining);
            const signal = req.signal ? AbortSignal.any([AbortSignal.timeout(attemptMs), req.signal]) : AbortSignal.timeout(attemptMs);
            // The slot first, the key second: a request that queued behind others must see the 429s and revocations
            // they met, not the key that looked healthy when it joined the queue (a storm of concurrent calls would
            // otherwise send every queued request to a key already known to be resting).
            let release: () => void;
            try {
                release = await this.semaphore.acquire(signal);
            } catch (error) {
                if (req.signal?.aborted) throw cancelled({ endpoint, cause: req.signal.reason });
                lastFailure = upstreamTimeout(attemptMs, { endpoint, cause: error });
                await retryOrThrow(lastFailure);
                continue;
            }
            const choice = this.keys.choose(this.clock.now());
            if (choice.kind !== 'key') {
                release();
                if (choice.kind === 'none') throw choice.reason === 'no-keys' ? noApiKey() : allKeysRevoked(choice.fingerprints, { endpoint });
                const failure =
                    choice.reason === 'exhausted' ? quotaExhausted('', { endpoint, status: 429 }) : rateLimited(choice.untilMs, this.clock.now(), { endpoint });
                await retryOrThrow(failure, choice.untilMs);
                continue;
            }

            let verdict: Verdict;
            try {
                verdict = await this.attempt({ url, endpoint, choice, signal, attemptMs, callerSignal: req.signal });
            } finally {
                release();
            }
            if (verdict.kind === 'answer') return verdict.page;
            if (verdict.kind === 'next-key') {
                lastFailure = verdict.failure ?? lastFailure;
                continue;
            }
            lastFailure = verdict.failure;
            await retryOrThrow(verdict.failure, verdict.retryAt);
        }
    }

    async close(): Promise<void> {
        if (this.ownsDispatcher && this.dispatcher) await (await this.dispatcher).close();
    }

    /** One request with one key. Throws when the call is over (cancelled, or an answer no retry would change). */
    private async attempt({ url, endpoint, choice, signal, attemptMs, callerSignal }: Attempt): Promise<Verdict> {
        const started = this.clock.now();
        let response: RawResponse;
        try {
            response = await this.send(url, choice.key, signal);
        } catch (error) {
            if (callerSignal?.aborted) throw cancelled({ endpoint, cause: callerSignal.reason });
            this.keys.report(choice.key, { kind: 'failed' }, this.clock.now());
            const timedOut = error instanceof Error && (error.name === 'TimeoutError' || /timeout/i.test(error.name + (error as { code?: string }).code));
            const failure = timedOut ? upstreamTimeout(attemptMs, { endpoint, cause: error }) : upstreamUnavailable('connection failed', { endpoint, cause: error });
            this.logger.debug('upstream attempt failed', { endpoint, key: choice.fingerprint, error: failure.code, ms: this.clock.now() - started });
            return { kind: 'retry', failure };
        }
        const now = this.clock.now();
        this.logger.debug('upstream attempt', { endpoint, key: choice.fingerprint, status: response.status, ms: now - started });
        return this.judge(response, choice, endpoint, now);
    }

    /** What an answer means: the key's health is reported here, and terminal answers are thrown as typed errors. */
    private judge(response: RawResponse, choice: ChosenKey, endpoint: string, now: number): Verdict {
        const message = this.upstreamMessage(envelopeMessage(response.text));
        const status = response.status;
        // "Upgrade your plan" on a 403 is about this endpoint, not a spent quota: only quota words count there.
        const quotaUsed = status === 403 ? QUOTA_USED_MESSAGE.test(message) : (status === 401 || status === 429) && QUOTA_MESSAGE.test(message);
        if (status === 402 || quotaUsed) {
            this.keys.report(choice.key, { kind: 'exhausted', untilMs: now + this.retry.exhaustedCooldownMs }, now);
            this.logger.warn('API key quota used up; trying the next key', { key: choice.fingerprint });
            return { kind: 'next-key', failure: quotaExhausted(message, { endpoint, status }) };
        }
        if (status === 403 && !INVALID_KEY_MESSAGE.test(message)) {
            this.keys.report(choice.key, { kind: 'ok' }, now);
            throw notInPlan(endpoint, message, { status });
        }
        if (status === 401 || status === 403) {
            this.keys.report(choice.key, { kind: 'revoked' }, now);
            this.logger.warn('API key rejected as invalid or revoked; trying the next key', { key: choice.fingerprint, status });
            return { kind: 'next-key' };
        }
        if (status === 429) {
            // `Retry-After: 0` (or a date already past) would hand the same key straight back, and since a 429 moves on
            // without spending a retry, one call would loop request after request until its deadline. A limited key
            // rests at least the base backoff, so waiting for it goes through the key choice, which counts retries.
            const retryAt = Math.max(
                parseRetryAfter(response.headers['retry-after'], now) ?? now + this.retry.defaultRetryAfterMs,
                now + this.retry.backoffBaseMs
            );
            this.keys.report(choice.key, { kind: 'rate-limited', untilMs: retryAt }, now);
            this.logger.info('API key rate limited', { key: choice.fingerprint, retryInMs: retryAt - now });
            return { kind: 'next-key' };
        }
        if (RETRYABLE_STATUS.has(status)) {
            this.keys.report(choice.key, { kind: 'failed' }, now);
            const retryAt = parseRetryAfter(response.headers['retry-after'], now);
            return { kind: 'retry', failure: upstreamUnavailable(`HTTP ${status}`, { endpoint, status }), ...(retryAt === undefined ? {} : { retryAt }) };
        }
        this.keys.report(choice.key, { kind: 'ok' }, now);
        if (status === 404) throw notFound(`the endpoint ${endpoint}`, { endpoint });
        if (status < 200 || status >= 300) throw upstreamRejected(message || `HTTP ${status}`, { endpoint, status });
        return { kind: 'answer', page: { rows: this.unwrap(response.text, endpoint), servedBy: choice.fingerprint } };
    }

    private unwrap(text: string, endpoint: string): unknown[] {
        let body: unknown;
        try {
            body = JSON.parse(text);
        } catch (error) {
            throw schemaDrift('the response body is not valid JSON', { endpoint, status: 200, cause: error });
        }
        if (typeof body !== 'object' || body === null) throw schemaDrift('the response is not a JSON object', { endpoint, status: 200 });
        const envelope = body as { success?: unknown; message?: unknown; data?: unknown };
        const message = this.upstreamMessage(envelope.message);
        if (envelope.success === false) {
            throw QUOTA_MESSAGE.test(message) ? quotaExhausted(message, { endpoint, status: 200 }) : upstreamRejected(message || 'success: false', { endpoint, status: 200 });
        }
        if (envelope.data === undefined || envelope.data === null) return [];
        if (!Array.isArray(envelope.data)) throw schemaDrift('"data" is not a list', { endpoint, status: 200 });
        return envelope.data;
    }

    /** One keep-alive Agent per client, made on first use. */
    private agent(): Promise<Dispatcher> {
        this.dispatcher ??= loadUndici().then(
            ({ Agent }) =>
                new Agent({
                    connectTimeout: Math.min(5_000, this.options.attemptTimeoutMs),
                    headersTimeout: this.options.attemptTimeoutMs,
                    bodyTimeout: this.options.attemptTimeoutMs,
                    keepAliveTimeout: 30_000,
                    connections: this.options.concurrency * 2
                })
        );
        return this.dispatcher;
    }

    /**
     * The upstream's own words go into error messages, so an echoed key is scrubbed first (before
     * truncation, which could cut a key past recognition) and the text is bounded.
     */
    private upstreamMessage(message: unknown): string {
        if (typeof message !== 'string') return '';
        const scrubbed = this.keys.scrub?.(message) ?? message;
        return scrubbed.replace(/[\u0000-\u001f]+/g, ' ').slice(0, 200);
    }

    /** One request, inside the upstream slot the caller holds; `signal` carries the attempt's timeout and the caller's abort. */
    private async send(url: URL, key: string, signal: AbortSignal): Promise<RawResponse> {
        const [{ request }, dispatcher] = await Promise.all([loadUndici(), this.agent()]);
        const response = await request(url, {
            method: 'GET',
            headers: { 'x-api-key': key, accept: 'application/json', 'user-agent': 'crypto-intel-mcp' },
            signal,
            dispatcher
        });
        const text = await response.body.text();
        return { status: response.statusCode, headers: response.headers, text };
    }

    private async backoff(retry: number, deadline: number, signal: AbortSignal | undefined, endpoint: string, failure: UpstreamError): Promise<void> {
        const ceiling = Math.min(this.retry.backoffMaxMs, this.retry.backoffBaseMs * 2 ** retry);
        const wait = Math.floor(this.random() * ceiling);
        if (this.clock.now() + wait >= deadline) throw failure;
        await this.pause(wait, signal, endpoint);
    }

    /**
     * Sleep until `untilMs` by the clock. Node's timers count from the event loop's cached time, so a sleep can end a
     * millisecond or more before the wall clock gets there; the key would still be resting, and the next turn of the
     * loop would spend a retry (or fail the call) on nothing. Bounded, in case an injected clock's sleep does not move it.
     */
    private async pauseUntil(untilMs: number, signal: AbortSignal | undefined, endpoint: string): Promise<void> {
        for (let turn = 0; turn < 3 && this.clock.now() < untilMs; turn++) await this.pause(untilMs - this.clock.now(), signal, endpoint);
    }

    private async pause(ms: number, signal: AbortSignal | undefined, endpoint: string): Promise<void> {
        try {
            await this.clock.sleep(ms, signal);
        } catch (error) {
            if (isUpstreamError(error)) throw error;
            throw cancelled({ endpoint, cause: error });
        }
    }
}
