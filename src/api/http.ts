import type { Dispatcher } from 'undici';
import type { Clock } from '../clock.js';
import type { KeyChoice, KeyProvider } from '../keys/pool.js';
import type { Logger } from '../logger.js';
import { scrubStrings } from '../redact.js';
import {
    allKeysRevoked,
    answerTooLarge,
    cancelled,
    isUpstreamError,
    noApiKey,
    noValidKey,
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
import { boundText, cleanText, MAX_TEXT_CHARS } from './upstream-text.js';
import { refusalOf, Semaphore, type ConcurrencyLimiter } from './limiter.js';

/** The limiter lives in limiter.ts (fair turns per caller, a queue bounded by time); re-exported for existing importers. */
export { Semaphore, type AcquireOptions, type ConcurrencyLimiter } from './limiter.js';

export interface RetryPolicy {
    maxRetries: number;
    /** Full-jitter exponential backoff: a retry waits random() * min(maxMs, baseMs * 2^attempt). */
    backoffBaseMs: number;
    backoffMaxMs: number;
    /** Cool-down for a 429 that names no Retry-After. */
    defaultRetryAfterMs: number;
    /** How long a key whose quota is used up sits out before it is tried again. */
    exhaustedCooldownMs: number;
    /**
     * Most time one call spends waiting for rate-limited keys to rest, all its waits together. Past it the call fails
     * at once with "retry in N s" (the cache then serves a stale answer if it has one) instead of holding the caller.
     */
    maxRateLimitWaitMs: number;
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
    /** Largest upstream body read, in bytes (`CRYPTO_INTEL_MAX_BODY_BYTES`); past it the answer is an error, not retried. */
    maxBodyBytes?: number;
    /**
     * Told about every attempt that reached the upstream and got an HTTP answer (`status` > 0: one credit spent), and
     * about connection failures and timeouts (`status` 0: no answer, no credit). Not called for cancelled attempts.
     * An observer (usage accounting), so it must not throw; if it does, the request carries on regardless.
     */
    onAttempt?: (attempt: UpstreamAttempt) => void;
}

/** One upstream attempt, as `HttpOptions.onAttempt` sees it: by key fingerprint, never the key. */
export interface UpstreamAttempt {
    fingerprint: string;
    endpoint: string;
    /** The HTTP status, or 0 when no answer came back (connection failure, timeout). */
    status: number;
    ms: number;
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
    exhaustedCooldownMs: 3_600_000,
    maxRateLimitWaitMs: 3_000
};

/** The default cap on an upstream body: the largest real page (100 rows) is a few hundred kB. */
export const DEFAULT_MAX_BODY_BYTES = 8 * 1024 * 1024;
/** A Retry-After further out than this is taken as this: a hostile or broken `Retry-After: 1e30` must not park a key forever. */
export const MAX_RETRY_AFTER_MS = 3_600_000;

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

/** Parse `Retry-After` (delta seconds or an HTTP date) into an absolute time, at most an hour away. */
export function parseRetryAfter(value: string | string[] | undefined, nowMs: number): number | undefined {
    const raw = Array.isArray(value) ? value[0] : value;
    if (raw === undefined || raw.trim() === '') return undefined;
    const seconds = raw.trim();
    if (/^\d+(\.\d+)?(e\+?\d+)?$/i.test(seconds)) return nowMs + Math.min(MAX_RETRY_AFTER_MS, Math.round(Number(seconds) * 1000));
    const date = Date.parse(raw);
    return Number.isNaN(date) ? undefined : Math.min(nowMs + MAX_RETRY_AFTER_MS, Math.max(nowMs, date));
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

/** An upstream body past the cap; `attempt` turns it into `answerTooLarge`, which is not retried. */
class BodyTooLarge extends Error {
    constructor(
        readonly limit: number,
        readonly status: number
    ) {
        super(`upstream body over ${limit} bytes`);
    }
}

/**
 * The body as text, counted while it streams: past `limit` bytes reading stops and the body is destroyed, so a
 * hostile or broken upstream cannot make the process buffer gigabytes (a Content-Length over the cap stops it at once).
 */
async function readCapped(
    body: Dispatcher.ResponseData['body'],
    status: number,
    contentLength: string | string[] | undefined,
    limit: number
): Promise<string> {
    const declared = Number(Array.isArray(contentLength) ? contentLength[0] : contentLength);
    if (Number.isFinite(declared) && declared > limit) {
        body.destroy();
        throw new BodyTooLarge(limit, status);
    }
    const chunks: Buffer[] = [];
    let size = 0;
    for await (const chunk of body as AsyncIterable<Buffer>) {
        size += chunk.length;
        if (size > limit) {
            body.destroy();
            throw new BodyTooLarge(limit, status);
        }
        chunks.push(chunk);
    }
    // TextDecoder, as undici's text() does: UTF-8, a BOM dropped, bad bytes replaced rather than thrown.
    return new TextDecoder().decode(chunks.length === 1 ? chunks[0] : Buffer.concat(chunks, size));
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
        /** Time this call has spent waiting for rate-limited keys, bounded by `maxRateLimitWaitMs`. */
        let waitedForKeysMs = 0;
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
                release = await this.semaphore.acquire(signal, { withinMs: remaining });
            } catch (error) {
                if (req.signal?.aborted) throw cancelled({ endpoint, cause: req.signal.reason });
                // Refused at once, nothing sent: "busy" says when to come back; "too late" is this call's timeout.
                const refusal = refusalOf(error);
                if (refusal === 'busy') throw error;
                if (refusal === 'too-late') throw lastFailure ?? upstreamTimeout(this.options.deadlineMs, { endpoint, cause: error });
                lastFailure = upstreamTimeout(attemptMs, { endpoint, cause: error });
                await retryOrThrow(lastFailure);
                continue;
            }
            const choice = this.keys.choose(this.clock.now());
            if (choice.kind !== 'key') {
                release();
                if (choice.kind === 'none') {
                    if (choice.reason === 'no-keys') throw noApiKey();
                    if (choice.reason === 'none-valid') throw noValidKey(choice.fingerprints, { endpoint });
                    throw allKeysRevoked(choice.fingerprints, { endpoint });
                }
                const failure =
                    choice.reason === 'exhausted'
                        ? quotaExhausted('', { endpoint, status: 429 })
                        : rateLimited(choice.untilMs, this.clock.now(), { endpoint });
                // A caller is never held long for a resting key: past a few seconds it hears "retry in N s" at once
                // (and the cache serves what it has), rather than after several Retry-After waits in a row.
                const waitMs = Math.max(0, choice.untilMs - this.clock.now());
                if (choice.reason === 'rate-limited' && waitedForKeysMs + waitMs > this.retry.maxRateLimitWaitMs) throw failure;
                waitedForKeysMs += waitMs;
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

    private observe(attempt: UpstreamAttempt): void {
        try {
            this.options.onAttempt?.(attempt);
        } catch (error) {
            this.logger.debug('upstream attempt observer failed', { error: error instanceof Error ? error.message : String(error) });
        }
    }

    /** One request with one key. Throws when the call is over (cancelled, or an answer no retry would change). */
    private async attempt({ url, endpoint, choice, signal, attemptMs, callerSignal }: Attempt): Promise<Verdict> {
        const started = this.clock.now();
        let response: RawResponse;
        try {
            response = await this.send(url, choice.key, signal);
        } catch (error) {
            if (callerSignal?.aborted) throw cancelled({ endpoint, cause: callerSignal.reason });
            if (error instanceof BodyTooLarge) {
                // The key worked (and the answer cost a credit); the answer is what is wrong, and asking again would bring
                // the same answer.
                this.keys.report(choice.key, { kind: 'ok' }, this.clock.now());
                this.observe({ fingerprint: choice.fingerprint, endpoint, status: error.status, ms: this.clock.now() - started });
                this.logger.warn('upstream answer over the body cap; not read', {
                    endpoint,
                    key: choice.fingerprint,
                    status: error.status,
                    limitBytes: error.limit
                });
                throw answerTooLarge(error.limit, { endpoint, status: error.status });
            }
            this.keys.report(choice.key, { kind: 'failed' }, this.clock.now());
            const timedOut =
                error instanceof Error &&
                (error.name === 'TimeoutError' || /timeout/i.test(error.name + (error as { code?: string }).code));
            const failure = timedOut
                ? upstreamTimeout(attemptMs, { endpoint, cause: error })
                : upstreamUnavailable('connection failed', { endpoint, cause: error });
            this.logger.debug('upstream attempt failed', {
                endpoint,
                key: choice.fingerprint,
                error: failure.code,
                ms: this.clock.now() - started
            });
            this.observe({ fingerprint: choice.fingerprint, endpoint, status: 0, ms: this.clock.now() - started });
            return { kind: 'retry', failure };
        }
        const now = this.clock.now();
        this.logger.debug('upstream attempt', { endpoint, key: choice.fingerprint, status: response.status, ms: now - started });
        this.observe({ fingerprint: choice.fingerprint, endpoint, status: response.status, ms: now - started });
        return this.judge(response, choice, endpoint, now);
    }

    /** What an answer means: the key's health is reported here, and terminal answers are thrown as typed errors. */
    private judge(response: RawResponse, choice: ChosenKey, endpoint: string, now: number): Verdict {
        const status = response.status;
        // A 2xx is unwrapped below (one parse); only other answers need the envelope's message.
        const message = status >= 200 && status < 300 ? '' : this.upstreamMessage(envelopeMessage(response.text));
        // "Upgrade your plan" on a 403 is about this endpoint, not a spent quota: only quota words count there.
        const quotaUsed =
            status === 403 ? QUOTA_USED_MESSAGE.test(message) : (status === 401 || status === 429) && QUOTA_MESSAGE.test(message);
        if (status === 402 || quotaUsed) {
            this.keys.report(choice.key, { kind: 'exhausted', untilMs: now + this.retry.exhaustedCooldownMs, status }, now);
            this.logger.warn('API key quota used up; trying the next key', { key: choice.fingerprint });
            return { kind: 'next-key', failure: quotaExhausted(message, { endpoint, status }) };
        }
        if (status === 403 && !INVALID_KEY_MESSAGE.test(message)) {
            this.keys.report(choice.key, { kind: 'ok' }, now);
            throw notInPlan(endpoint, message, { status });
        }
        if (status === 401 || status === 403) {
            this.keys.report(choice.key, { kind: 'revoked', status }, now);
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
            this.keys.report(choice.key, { kind: 'rate-limited', untilMs: retryAt, status }, now);
            this.logger.info('API key rate limited', { key: choice.fingerprint, retryInMs: retryAt - now });
            return { kind: 'next-key' };
        }
        if (RETRYABLE_STATUS.has(status)) {
            this.keys.report(choice.key, { kind: 'failed' }, now);
            const retryAt = parseRetryAfter(response.headers['retry-after'], now);
            return {
                kind: 'retry',
                failure: upstreamUnavailable(`HTTP ${status}`, { endpoint, status }),
                ...(retryAt === undefined ? {} : { retryAt })
            };
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
            throw QUOTA_MESSAGE.test(message)
                ? quotaExhausted(message, { endpoint, status: 200 })
                : upstreamRejected(message || 'success: false', { endpoint, status: 200 });
        }
        if (envelope.data === undefined || envelope.data === null) return [];
        if (!Array.isArray(envelope.data)) throw schemaDrift('"data" is not a list', { endpoint, status: 200 });
        return this.scrubRows(envelope.data);
    }

    /**
     * Every string in the rows without any piece of a key, before anything parses, caches or shows it. The cleaned form
     * (controls and invisible characters removed) is checked too: "tm-ab\u0007cdef…" is a key once the BEL is gone, and
     * the field readers remove it.
     */
    private scrubRows(rows: unknown[]): unknown[] {
        const scrub = this.keys.scrub?.bind(this.keys);
        if (!scrub) return rows;
        return scrubStrings(rows, text => {
            const scrubbed = scrub(text);
            if (scrubbed !== text) return scrubbed;
            const cleaned = cleanText(text);
            if (cleaned === text) return text;
            const cleanScrubbed = scrub(cleaned);
            return cleanScrubbed === cleaned ? text : cleanScrubbed;
        });
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
        // Cleaned first (a control character inside a key would hide it from the scrub), bounded last.
        const cleaned = cleanText(message);
        return boundText(this.keys.scrub?.(cleaned) ?? cleaned, MAX_TEXT_CHARS);
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
        const text = await readCapped(
            response.body,
            response.statusCode,
            response.headers['content-length'],
            this.options.maxBodyBytes ?? DEFAULT_MAX_BODY_BYTES
        );
        return { status: response.statusCode, headers: response.headers, text };
    }

    private async backoff(
        retry: number,
        deadline: number,
        signal: AbortSignal | undefined,
        endpoint: string,
        failure: UpstreamError
    ): Promise<void> {
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
