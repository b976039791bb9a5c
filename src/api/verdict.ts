import type { KeyChoice, KeyProvider } from '../keys/pool.js';
import type { Logger } from '../logger.js';
import { scrubStrings } from '../redact.js';
import { notFound, notInPlan, quotaExhausted, schemaDrift, upstreamRejected, upstreamUnavailable, type UpstreamError } from './errors.js';
import { parseRetryAfter, type RetryPolicy } from './retry.js';
import type { RawResponse } from './transport.js';
import { boundText, cleanText, MAX_TEXT_CHARS } from './upstream-text.js';

export interface UpstreamPage {
    rows: unknown[];
    /** Fingerprint of the key that served the page. */
    servedBy: string;
}

export type ChosenKey = Extract<KeyChoice, { kind: 'key' }>;

/** What one upstream answer means for the call that asked. */
export type Verdict =
    | { kind: 'answer'; page: UpstreamPage }
    /** The key was the problem (revoked, rate limited, quota used up): the same request moves to the next key at once. */
    | { kind: 'next-key'; failure?: UpstreamError }
    /** A transient failure, worth another attempt at `retryAt` (the upstream's Retry-After), or after a backoff. */
    | { kind: 'retry'; failure: UpstreamError; retryAt?: number };

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

/** A message the upstream put in its envelope, if any, without trusting its shape. */
function envelopeMessage(text: string): unknown {
    try {
        return (JSON.parse(text) as { message?: unknown })?.message;
    } catch {
        return undefined;
    }
}

/**
 * What an upstream answer means: the key's health is reported here (every answer says something about the key that
 * got it), terminal answers are thrown as typed errors, and a good answer's rows come out of the envelope scrubbed.
 */
export class AnswerJudge {
    constructor(
        private readonly keys: KeyProvider,
        private readonly retry: RetryPolicy,
        private readonly logger: Logger
    ) {}

    judge(response: RawResponse, choice: ChosenKey, endpoint: string, now: number): Verdict {
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
}
