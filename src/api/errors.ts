/**
 * Typed upstream errors. Callers match on `code`, never on `instanceof` across module copies.
 * Every error carries `hint`: the next step for the user, because the message reaches the model verbatim.
 * Messages never contain an API key or a URL query string; callers pass fingerprints only.
 */
export type ErrorCode =
    | 'NO_API_KEY'
    | 'AUTH_REVOKED'
    | 'NOT_IN_PLAN'
    | 'RATE_LIMITED'
    | 'QUOTA_EXHAUSTED'
    | 'NOT_FOUND'
    | 'UPSTREAM_UNAVAILABLE'
    | 'UPSTREAM_TIMEOUT'
    | 'SCHEMA_DRIFT'
    | 'UPSTREAM_REJECTED'
    | 'INVALID_INPUT'
    | 'CANCELLED';

export interface UpstreamErrorOptions {
    /** HTTP status, `0` for network, timeout and cancellation failures. */
    status?: number;
    /** Upstream path such as `/price`, without its query. */
    endpoint?: string;
    cause?: unknown;
}

export class UpstreamError extends Error {
    readonly code: ErrorCode;
    readonly hint: string;
    readonly status: number;
    readonly endpoint: string | undefined;

    constructor(code: ErrorCode, message: string, hint: string, options: UpstreamErrorOptions = {}) {
        super(message, options.cause === undefined ? undefined : { cause: options.cause });
        this.name = 'UpstreamError';
        this.code = code;
        this.hint = hint;
        this.status = options.status ?? 0;
        this.endpoint = options.endpoint;
    }

    /** What a user (or model) should read: what happened, then what to do. */
    get userMessage(): string {
        return `${this.message} ${this.hint}`;
    }
}

const KEY_VARIABLES = 'TOKEN_METRICS_API_KEY, TOKEN_METRICS_API_KEYS or TOKEN_METRICS_API_KEY_FILE';

export const noApiKey = (): UpstreamError =>
    new UpstreamError(
        'NO_API_KEY',
        'No Token Metrics API key is configured.',
        `Set ${KEY_VARIABLES} in the server's environment (for Claude Desktop: the "env" block of claude_desktop_config.json), then restart the server. Keys are created in the API section of your Token Metrics account.`
    );

export const allKeysRevoked = (fingerprints: readonly string[], options?: UpstreamErrorOptions): UpstreamError =>
    new UpstreamError(
        'AUTH_REVOKED',
        `The Token Metrics API rejected every configured key (${fingerprints.join(', ')}) as invalid or revoked.`,
        `Create a new key in your Token Metrics dashboard and put it in ${KEY_VARIABLES}; a key file is re-read without a restart.`,
        { status: 401, ...options }
    );

/** Keys are configured, but each is before its `not-before` or past its `expires` date (key file attributes). */
export const noValidKey = (fingerprints: readonly string[], options?: UpstreamErrorOptions): UpstreamError =>
    new UpstreamError(
        'NO_API_KEY',
        `No configured Token Metrics API key is valid today (${fingerprints.join(', ')}): each is before its not-before date or past its expires date.`,
        "Fix the dates in the key file (it is re-read without a restart), or add a current key; `crypto-intel-mcp keys` shows each key's dates.",
        options
    );

export const rateLimited = (retryAtMs: number, nowMs: number, options?: UpstreamErrorOptions): UpstreamError => {
    const seconds = Math.max(1, Math.ceil((retryAtMs - nowMs) / 1000));
    return new UpstreamError(
        'RATE_LIMITED',
        `The Token Metrics API rate limit is reached for every configured key.`,
        `Retry in about ${seconds} s, or add another key to TOKEN_METRICS_API_KEYS to spread the per-minute limit.`,
        { status: 429, ...options }
    );
};

export const quotaExhausted = (upstreamMessage: string, options?: UpstreamErrorOptions): UpstreamError =>
    new UpstreamError(
        'QUOTA_EXHAUSTED',
        `The Token Metrics API credit quota is used up${upstreamMessage ? ` ("${upstreamMessage}")` : ''}.`,
        'Wait for the monthly quota to renew, upgrade the plan, or add a key from another plan to TOKEN_METRICS_API_KEYS. Cached answers keep working.',
        options
    );

/**
 * An upstream 404. The API answers unknown tokens with empty data, so a 404 means the endpoint itself is gone (retired
 * or moved): no symbol the user could change would help, and the text must not send them looking for one.
 */
export const notFound = (what: string, options?: UpstreamErrorOptions): UpstreamError =>
    new UpstreamError(
        'NOT_FOUND',
        `The Token Metrics API does not serve ${what} any more (HTTP 404).`,
        'Its API has changed: update crypto-intel-mcp, and report it to the maintainers if the latest version fails too. Other tools may still work.',
        { status: 404, ...options }
    );

export const upstreamUnavailable = (detail: string, options?: UpstreamErrorOptions): UpstreamError =>
    new UpstreamError(
        'UPSTREAM_UNAVAILABLE',
        `The Token Metrics API is unavailable (${detail}).`,
        'This is usually brief: try again in a minute. If it persists, check TOKEN_METRICS_BASE_URL and your network.',
        options
    );

export const upstreamTimeout = (ms: number, options?: UpstreamErrorOptions): UpstreamError =>
    new UpstreamError(
        'UPSTREAM_TIMEOUT',
        `The Token Metrics API did not answer within ${(ms / 1000).toFixed(1)} s.`,
        'Try again shortly; ask for fewer tokens at once if it keeps happening.',
        { status: 0, ...options }
    );

/** The tool call's own deadline passed while an upstream request was still running. */
export const callDeadlinePassed = (options?: UpstreamErrorOptions): UpstreamError =>
    new UpstreamError(
        'UPSTREAM_TIMEOUT',
        'The Token Metrics API did not answer before this tool call ran out of time.',
        'Try again shortly; ask for fewer tokens at once if it keeps happening.',
        { status: 0, ...options }
    );

/**
 * The upstream's format changed under us. Repeating the question would get the same answer (and spend another
 * credit), so the hint sends the user to `doctor` and the maintainers, never to "try again later".
 */
export const schemaDrift = (detail: string, options?: UpstreamErrorOptions): UpstreamError =>
    new UpstreamError(
        'SCHEMA_DRIFT',
        `The Token Metrics API answered in an unexpected format (${detail}).`,
        'Its format has changed: run `crypto-intel-mcp doctor` to see which fields, and report its output to the crypto-intel-mcp maintainers. Other tools may still work.',
        options
    );

/**
 * A 403 that does not call the key invalid: the plan does not include this endpoint. The key stays in service for
 * the endpoints it does include.
 */
export const notInPlan = (endpoint: string, upstreamMessage: string, options?: UpstreamErrorOptions): UpstreamError =>
    new UpstreamError(
        'NOT_IN_PLAN',
        `Your Token Metrics plan does not include ${endpoint}${upstreamMessage ? ` ("${upstreamMessage}")` : ''}.`,
        'This is not a fault of the key, which keeps serving the other tools; upgrading the plan on tokenmetrics.com unlocks this one.',
        { status: 403, endpoint, ...options }
    );

/** A failure remembered briefly so that repeating the question does not pay for the same failure again. */
export const rememberedFailure = (error: UpstreamError, secondsLeft: number): UpstreamError =>
    new UpstreamError(
        error.code,
        error.message,
        `${error.hint} (This failure is remembered for another ${secondsLeft < 120 ? `${secondsLeft} s` : `${Math.ceil(secondsLeft / 60)} min`}, so asking again now spends no credit.)`,
        { status: error.status, ...(error.endpoint === undefined ? {} : { endpoint: error.endpoint }), cause: error }
    );

export const upstreamRejected = (upstreamMessage: string, options?: UpstreamErrorOptions): UpstreamError =>
    new UpstreamError(
        'UPSTREAM_REJECTED',
        `The Token Metrics API refused the request: "${upstreamMessage}".`,
        'Check the request parameters; if they look right, try again later.',
        options
    );

/**
 * The upstream's answer was larger than the body cap (`CRYPTO_INTEL_MAX_BODY_BYTES`): reading stopped there. Asking
 * again would get the same answer, so it is not retried.
 */
export const answerTooLarge = (limitBytes: number, options?: UpstreamErrorOptions): UpstreamError =>
    new UpstreamError(
        'UPSTREAM_REJECTED',
        `The Token Metrics API sent an answer larger than ${formatBytes(limitBytes)}; it was not read (CRYPTO_INTEL_MAX_BODY_BYTES).`,
        'Ask for less at once (fewer tokens, a shorter range). If an ordinary question hits this, check that TOKEN_METRICS_BASE_URL points at the Token Metrics API, or raise CRYPTO_INTEL_MAX_BODY_BYTES.',
        options
    );

const formatBytes = (bytes: number): string =>
    bytes >= 1024 * 1024
        ? `${+(bytes / 1024 / 1024).toFixed(1)} MiB`
        : bytes >= 1024
          ? `${+(bytes / 1024).toFixed(1)} KiB`
          : `${bytes} bytes`;

export const invalidInput = (detail: string, hint = 'Correct the arguments and call again.'): UpstreamError =>
    new UpstreamError('INVALID_INPUT', detail, hint, { status: 400 });

export const cancelled = (options?: UpstreamErrorOptions): UpstreamError =>
    new UpstreamError('CANCELLED', 'The request was cancelled.', 'Nothing to do: the caller cancelled it.', { status: 0, ...options });

export const isUpstreamError = (value: unknown): value is UpstreamError =>
    value instanceof Error &&
    typeof (value as Partial<UpstreamError>).code === 'string' &&
    typeof (value as Partial<UpstreamError>).hint === 'string';
