import { UpstreamError } from './errors.js';

/**
 * The limiter's answers when it sends nothing: every one says that no request went out and no credit was spent,
 * and is marked, so the layers above can tell a refusal from an upstream failure (`refusalOf`).
 */

/** Why a limiter refused: `busy` (its queue, or the caller's share, is full) or `too-late` (no time left for a request). */
export type Refusal = 'busy' | 'too-late';

const refusals = new WeakMap<object, Refusal>();

/** Whether (and why) an error is a limiter's refusal: nothing was sent upstream for it. */
export function refusalOf(error: unknown): Refusal | undefined {
    return typeof error === 'object' && error !== null ? refusals.get(error) : undefined;
}

function refusal(kind: Refusal, error: UpstreamError): UpstreamError {
    refusals.set(error, kind);
    return error;
}

/**
 * "Busy, retry in N s": a tool result (`isError`), not a JSON-RPC error, because the call itself was fine and the
 * model should read the advice. `RATE_LIMITED`, so the cache serves a stale answer instead when it has one.
 */
export function serverBusy(detail: string, retryAfterS: number): UpstreamError {
    return refusal(
        'busy',
        new UpstreamError(
            'RATE_LIMITED',
            `crypto-intel-mcp is busy: ${detail}; nothing was sent to the Token Metrics API and no credit was spent.`,
            `Retry in ${retryAfterS} s, and ask fewer uncached questions at once (get_price takes up to 25 tokens in one call).`,
            { status: 0 }
        )
    );
}

const TIMEOUT_HINT = 'Try again shortly; ask for fewer tokens at once if it keeps happening.';

/** Less time left than one typical request takes: refused before starting. */
export function tooLate(): UpstreamError {
    return refusal(
        'too-late',
        new UpstreamError(
            'UPSTREAM_TIMEOUT',
            "Too little of this tool call's time is left for another Token Metrics API request; none was started.",
            TIMEOUT_HINT,
            { status: 0 }
        )
    );
}

/** The call's deadline came while its request still waited for a free upstream slot. */
export function deadlineInQueue(endpoint: string, cause: unknown): UpstreamError {
    return refusal(
        'too-late',
        new UpstreamError(
            'UPSTREAM_TIMEOUT',
            "This tool call's time ran out while its Token Metrics API request waited for a free slot; nothing was sent and no credit was spent.",
            TIMEOUT_HINT,
            { status: 0, endpoint, cause }
        )
    );
}
