import type { Dispatcher } from 'undici';
import { timeoutOrCancel, type Clock } from '../clock.js';
import type { KeyProvider } from '../keys/pool.js';
import type { Logger } from '../logger.js';
import { BodyTooLarge } from './body.js';
import {
    allKeysRevoked,
    answerTooLarge,
    cancelled,
    noApiKey,
    noValidKey,
    quotaExhausted,
    rateLimited,
    upstreamTimeout,
    upstreamUnavailable,
    type UpstreamError
} from './errors.js';
import { Semaphore, type ConcurrencyLimiter } from './limiter.js';
import { precompileHttpParser, warmHttpParser } from './parser-warm-up.js';
import { deadlineInQueue, refusalOf } from './refusals.js';
import { CallRetries, DEFAULT_RETRY, type RetryPolicy } from './retry.js';
import { UpstreamTransport, type RawResponse } from './transport.js';
import { AnswerJudge, type ChosenKey, type UpstreamPage, type Verdict } from './verdict.js';

/** The limiter, the retry rules and the page type live in their own modules; re-exported for existing importers. */

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

interface Attempt {
    url: URL;
    endpoint: string;
    choice: ChosenKey;
    /** The attempt's own timeout, started when the request goes out. */
    attemptMs: number;
    callerSignal: AbortSignal | undefined;
}

/**
 * The HTTP layer for the Token Metrics API: a per-attempt timeout inside an overall deadline, cancellation, key
 * selection per attempt, retries with full-jitter backoff that honour Retry-After, and a concurrency cap, all timed by
 * the injected clock. It returns the envelope's `data` rows, unparsed.
 */
export class UpstreamHttp {
    private readonly retry: RetryPolicy;
    private readonly semaphore: ConcurrencyLimiter;
    private readonly random: () => number;
    private readonly base: URL;
    private readonly transport: UpstreamTransport;
    private readonly judge: AnswerJudge;

    constructor(
        private readonly options: HttpOptions,
        private readonly keys: KeyProvider,
        private readonly clock: Clock,
        private readonly logger: Logger
    ) {
        this.retry = { ...DEFAULT_RETRY, ...options.retry };
        this.random = options.random ?? Math.random;
        this.semaphore = options.limiter ?? new Semaphore(options.concurrency, { clock });
        this.base = new URL(options.baseUrl.endsWith('/') ? options.baseUrl : `${options.baseUrl}/`);
        this.transport = new UpstreamTransport(options);
        this.judge = new AnswerJudge(keys, this.retry, logger);
    }

    /**
     * Readies the HTTP client ahead of the first request: makes the Agent, starts compiling its parser off the main
     * thread (parser-warm-up.ts) and opens a connection to the upstream, sending nothing on it (no credit). Never
     * rejects: what fails here, the first request meets and reports.
     */
    warm(): Promise<void> {
        precompileHttpParser();
        return this.transport.warm(this.base).catch((error: unknown) =>
            this.logger.debug('could not open a connection to the upstream ahead of the first request', {
                error: error instanceof Error ? error.message : String(error)
            })
        );
    }

    /** Readies undici's HTTP parser ahead of the first answer, in memory (parser-warm-up.ts). Never rejects, like `warm`. */
    warmParser(): Promise<void> {
        return warmHttpParser().catch((error: unknown) =>
            this.logger.debug('could not ready the HTTP parser ahead of the first answer', {
                error: error instanceof Error ? error.message : String(error)
            })
        );
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
        const retries = new CallRetries(this.retry, this.clock, this.random, deadline, req.signal, endpoint);
        let lastFailure: UpstreamError | undefined;

        for (;;) {
            if (req.signal?.aborted) throw cancelled({ endpoint, cause: req.signal.reason });
            const remaining = deadline - this.clock.now();
            if (remaining <= 0) throw lastFailure ?? upstreamTimeout(this.options.deadlineMs, { endpoint });
            const release = await this.slot(remaining, req.signal, endpoint, lastFailure);
            // The attempt's own timer starts only now, as the request goes out: time spent queued for the slot is not
            // held against it, so a request the limiter admitted is never killed by a timer that started before it.
            const attemptMs = Math.min(this.options.attemptTimeoutMs, deadline - this.clock.now());
            if (attemptMs <= 0) {
                release();
                throw lastFailure ?? deadlineInQueue(endpoint, undefined);
            }
            // The slot first, the key second: a request that queued behind others must see the 429s and revocations
            // they met, not the key that looked healthy when it joined the queue (a storm of concurrent calls would
            // otherwise send every queued request to a key already known to be resting).
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
                await retries.waitForKey(failure, choice.untilMs, choice.reason === 'rate-limited');
                continue;
            }

            let verdict: Verdict;
            try {
                verdict = await this.attempt({ url, endpoint, choice, attemptMs, callerSignal: req.signal });
            } finally {
                release();
            }
            if (verdict.kind === 'answer') return verdict.page;
            if (verdict.kind === 'next-key') {
                lastFailure = verdict.failure ?? lastFailure;
                continue;
            }
            lastFailure = verdict.failure;
            await retries.retryOrThrow(verdict.failure, verdict.retryAt);
        }
    }

    async close(): Promise<void> {
        await this.transport.close();
    }

    /**
     * An upstream slot from the limiter. The wait for it is bounded by what is left of the call's deadline and by the
     * caller's cancellation, never by an attempt's timeout. When no slot comes, nothing was sent and no credit spent,
     * and the error says so: "busy" as the limiter put it; for the deadline (too close to start, or reached in the
     * queue) the failure of an earlier attempt if there was one, since it says more.
     */
    private async slot(
        remainingMs: number,
        callerSignal: AbortSignal | undefined,
        endpoint: string,
        lastFailure: UpstreamError | undefined
    ): Promise<() => void> {
        const waiting = timeoutOrCancel(this.clock, remainingMs, callerSignal);
        try {
            return await this.semaphore.acquire(waiting, { withinMs: remainingMs });
        } catch (error) {
            if (callerSignal?.aborted) throw cancelled({ endpoint, cause: callerSignal.reason });
            const refusal = refusalOf(error);
            if (refusal === 'busy') throw error;
            if (refusal === 'too-late') throw lastFailure ?? error;
            if (waiting.aborted) throw lastFailure ?? deadlineInQueue(endpoint, error);
            throw error;
        }
    }

    private observe(attempt: UpstreamAttempt): void {
        try {
            this.options.onAttempt?.(attempt);
        } catch (error) {
            this.logger.debug('upstream attempt observer failed', { error: error instanceof Error ? error.message : String(error) });
        }
    }

    /** One request with one key. Throws when the call is over (cancelled, or an answer no retry would change). */
    private async attempt({ url, endpoint, choice, attemptMs, callerSignal }: Attempt): Promise<Verdict> {
        const started = this.clock.now();
        let response: RawResponse;
        try {
            response = await this.transport.send(url, choice.key, timeoutOrCancel(this.clock, attemptMs, callerSignal));
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
        return this.judge.judge(response, choice, endpoint, now);
    }
}
