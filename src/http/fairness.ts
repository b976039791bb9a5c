import type { CallerContext } from '../api/call-scope.js';
import { serverBusy } from '../api/refusals.js';
import type { Logger } from '../logger.js';

/** A caller over its cap is reported at most this often, with the count of calls answered busy meanwhile. */
const REPORT_EVERY_MS = 60_000;

/**
 * Tool calls a caller may have past the door at once, per slot of its uncached-call cap. A slot is taken only once a
 * call needs the upstream, deep inside an MCP server built for it; the first thousand calls of a flood would all be
 * let in (and each get a server) before the first of them took a slot. Cache hits answer in a millisecond or two, so
 * a caller meets this bound only with a burst of calls that wait on the upstream.
 */
const CALLS_INSIDE_PER_SLOT = 4;

/**
 * Per-caller caps on uncached tool calls under way at once. A call takes one of its caller's slots when it first
 * needs the upstream (a cache hit takes none) and gives it back when it is answered; past the cap the limiter answers
 * "busy, retry in N s" at once, so one token's flood cannot fill the upstream queue and spend credits on calls that
 * would time out in it. Per replica, like the rate limit.
 */
export class CallerGates {
    private readonly inUse = new Map<string, number>();
    private readonly inside = new Map<string, number>();
    private readonly refused = new Map<string, { count: number; reportedAt: number }>();

    /** `cap` 0 turns the cap off. */
    constructor(
        private readonly cap: number,
        private readonly logger?: Logger,
        private readonly now: () => number = Date.now
    ) {}

    /** The limiter's view of one caller: its identity, and its slots when there is a cap. */
    context(caller: string): CallerContext {
        if (this.cap <= 0) return { caller };
        return { caller, enter: () => this.enter(caller), leave: () => this.leave(caller) };
    }

    /** Whether `caller` has its cap of uncached calls under way (never, without a cap). */
    full(caller: string): boolean {
        return this.cap > 0 && this.count(caller) >= this.cap;
    }

    /**
     * Lets `calls` tool calls of `caller` past the door, or refuses (undefined) while it has its cap of uncached calls
     * under way or as many calls inside as its slots allow; the function returned marks them answered.
     */
    letIn(caller: string, calls: number): (() => void) | undefined {
        if (this.cap <= 0 || calls === 0) return () => {};
        if (this.atDoor(caller)) return undefined;
        this.inside.set(caller, (this.inside.get(caller) ?? 0) + calls);
        let out = false;
        return () => {
            if (out) return;
            out = true;
            const left = (this.inside.get(caller) ?? calls) - calls;
            if (left <= 0) this.inside.delete(caller);
            else this.inside.set(caller, left);
        };
    }

    /** Whether `letIn` would refuse a tool call of `caller` now (never, without a cap). */
    atDoor(caller: string): boolean {
        return this.cap > 0 && (this.full(caller) || (this.inside.get(caller) ?? 0) >= this.cap * CALLS_INSIDE_PER_SLOT);
    }

    /** Uncached calls under way for `caller`. */
    count(caller: string): number {
        return this.inUse.get(caller) ?? 0;
    }

    /**
     * Counts a call of `caller` answered "busy" by the cap, and warns at most once a minute per
     * caller with the count: a flood is one log line a minute, not one per call.
     */
    noteRefused(caller: string): void {
        const now = this.now();
        const entry = this.refused.get(caller);
        if (entry !== undefined && now - entry.reportedAt < REPORT_EVERY_MS) {
            entry.count++;
            return;
        }
        const count = (entry?.count ?? 0) + 1;
        this.logger?.warn('caller over its cap of concurrent uncached tool calls: answering "busy"', {
            caller,
            cap: this.cap,
            answeredBusy: count,
            sinceS: entry === undefined ? 0 : Math.round((now - entry.reportedAt) / 1000)
        });
        this.refused.set(caller, { count: 0, reportedAt: now });
        // Bounded like the rate limiter's buckets: callers quiet for a while are forgotten.
        if (this.refused.size > 10_000) {
            for (const [key, old] of this.refused) if (now - old.reportedAt >= REPORT_EVERY_MS) this.refused.delete(key);
        }
    }

    private enter(caller: string): boolean {
        const count = this.inUse.get(caller) ?? 0;
        if (count >= this.cap) {
            this.noteRefused(caller);
            return false;
        }
        this.inUse.set(caller, count + 1);
        return true;
    }

    private leave(caller: string): void {
        const count = (this.inUse.get(caller) ?? 1) - 1;
        if (count <= 0) this.inUse.delete(caller);
        else this.inUse.set(caller, count);
    }
}

const busyTexts = new Map<number, string>();

/** A flood is answered with the same few texts a thousand times: built once each, not with an error (and its stack) per reply. */
function busyText(retryAfterS: number): string {
    let text = busyTexts.get(retryAfterS);
    if (text === undefined) {
        text = serverBusy('this caller already has as many uncached tool calls under way as it may', retryAfterS).userMessage;
        if (busyTexts.size < 64) busyTexts.set(retryAfterS, text);
    }
    return text;
}

/**
 * The replies to a message made only of `tools/call` requests, every one the limiter's "busy, retry in N s" tool
 * result, built without an MCP server. `null` for anything else, which the SDK answers as usual.
 */
export function busyReplies(message: unknown, retryAfterS: number): unknown {
    const messages = Array.isArray(message) ? (message as unknown[]) : [message];
    if (messages.length === 0) return null;
    const ids: Array<string | number> = [];
    for (const item of messages) {
        const request = item as { jsonrpc?: unknown; method?: unknown; id?: unknown } | null;
        if (typeof request !== 'object' || request === null || request.jsonrpc !== '2.0' || request.method !== 'tools/call') return null;
        if (typeof request.id !== 'string' && typeof request.id !== 'number') return null;
        ids.push(request.id);
    }
    const text = busyText(retryAfterS);
    const replies = ids.map(id => ({ jsonrpc: '2.0', id, result: { isError: true, content: [{ type: 'text', text }] } }));
    return Array.isArray(message) ? replies : replies[0];
}
