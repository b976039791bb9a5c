import { AsyncLocalStorage } from 'node:async_hooks';
import { performance } from 'node:perf_hooks';
import { UpstreamError } from './errors.js';

/**
 * The upstream request limiter and the call scope it reads.
 *
 * Who is asking (an HTTP token, a client address) and until when (the tool call's deadline) are carried by an
 * AsyncLocalStorage scope rather than threaded through tools, resolver, cache and client: the transport sets the
 * caller around a request, `inToolCall` sets the deadline around one tool call, and the limiter, at the bottom, reads
 * both. Without a scope (stdio, doctor, tests of lower layers) there is one anonymous caller and no call deadline.
 */

export interface AcquireOptions {
    /** Time left (ms) for the request to be made and answered; a limiter starts nothing that cannot finish in it. */
    withinMs?: number;
}

/**
 * Grants one upstream request at a time; the function it resolves to gives the grant back (calling it twice is
 * harmless). It may refuse at once with a `RATE_LIMITED` error (see `refusalOf`) instead of queueing in vain.
 */
export interface ConcurrencyLimiter {
    acquire(signal: AbortSignal, options?: AcquireOptions): Promise<() => void>;
}

/** What a transport knows about who is asking; set around a whole request with `withCaller`. */
export interface CallerContext {
    /** An identity for fairness and logs that is not a secret: `token#2`, `address:10.0.0.7`. */
    caller: string;
    /** Takes one of the caller's slots for calls that need the upstream; false when all are taken. */
    enter?(): boolean;
    /** Gives back a slot `enter` took. */
    leave?(): void;
}

/** One tool call: its deadline and whether it holds one of its caller's upstream slots. */
class CallScope {
    private admitted = false;
    private ended = false;

    constructor(
        readonly context: CallerContext | undefined,
        /** `performance.now()` time by which the call must be answered. */
        readonly deadlineAt: number
    ) {}

    /** The call's first upstream request takes a caller slot, held until the call ends; later ones are let through. */
    admit(): boolean {
        if (this.admitted || this.ended || this.context?.enter === undefined) return true;
        if (!this.context.enter()) return false;
        this.admitted = true;
        return true;
    }

    end(): void {
        this.ended = true;
        if (!this.admitted) return;
        this.admitted = false;
        this.context?.leave?.();
    }
}

interface Scope {
    context?: CallerContext;
    call?: CallScope;
}

const scopes = new AsyncLocalStorage<Scope>();

/** Runs `fn` (a transport's handling of one request) with its caller known to the limiter. */
export function withCaller<T>(context: CallerContext, fn: () => T): T {
    return scopes.run({ context }, fn);
}

/**
 * Runs one tool call with its deadline known to the limiter; the caller slot its first upstream request took (if
 * any) is given back when it ends, answered or not.
 */
export async function inToolCall<T>(deadlineMs: number, fn: () => Promise<T>): Promise<T> {
    const context = scopes.getStore()?.context;
    const call = new CallScope(context, performance.now() + deadlineMs);
    try {
        return await scopes.run(context === undefined ? { call } : { context, call }, fn);
    } finally {
        call.end();
    }
}

/** Why a limiter refused: `busy` (its queue, or the caller's share, is full) or `too-late` (no time left for a request). */
export type Refusal = 'busy' | 'too-late';

const refusals = new WeakMap<object, Refusal>();

/** Whether (and why) an error is a limiter's refusal: nothing was sent upstream for it. */
export function refusalOf(error: unknown): Refusal | undefined {
    return typeof error === 'object' && error !== null ? refusals.get(error) : undefined;
}

/**
 * "Busy, retry in N s": a tool result (`isError`), not a JSON-RPC error, because the call itself was fine and the
 * model should read the advice. `RATE_LIMITED`, so the cache serves a stale answer instead when it has one.
 */
export function serverBusy(detail: string, retryAfterS: number): UpstreamError {
    const error = new UpstreamError(
        'RATE_LIMITED',
        `crypto-intel-mcp is busy: ${detail}; nothing was sent to the Token Metrics API and no credit was spent.`,
        `Retry in ${retryAfterS} s, and ask fewer uncached questions at once (get_price takes up to 25 tokens in one call).`,
        { status: 0 }
    );
    refusals.set(error, 'busy');
    return error;
}

function tooLate(): UpstreamError {
    const error = new UpstreamError(
        'UPSTREAM_TIMEOUT',
        "Too little of this tool call's time is left for another Token Metrics API request; none was started.",
        'Try again shortly; ask for fewer tokens at once if it keeps happening.',
        { status: 0 }
    );
    refusals.set(error, 'too-late');
    return error;
}

interface Waiter {
    caller: string;
    deadlineAt: number;
    grant(): void;
    refuse(error: unknown): void;
}

export interface SemaphoreOptions {
    /**
     * Slots an identified caller (an HTTP token or address) may not take while holding others, so one caller never
     * holds every slot and another's request starts at once. Default 1 when the limit is 2 or more.
     */
    reserve?: number;
    /** Recent request durations the estimates are made from. */
    window?: number;
    /** Monotonic milliseconds; injectable for tests. */
    now?: () => number;
}

const DEFAULT_WINDOW = 16;

/**
 * A counting semaphore: at most `limit` upstream requests in flight. Callers wait in their own queues, served in
 * turn (round robin), so a caller with a thousand requests queued delays another caller's one request by at most
 * one turn. The queue is bounded by time, not length: from the recent request durations it estimates when a new
 * request would start, and when that is too late for the request to finish before its call's deadline it refuses
 * at once ("busy, retry in N s") instead of letting the call wait out its deadline, and a credit, in vain. A
 * request whose turn comes too late to finish is refused then, never started. Before the first request has
 * finished there is no estimate, and nothing is refused for time.
 */
export class Semaphore implements ConcurrencyLimiter {
    private active = 0;
    private waiting = 0;
    private readonly queues = new Map<string, Waiter[]>();
    private readonly holding = new Map<string, number>();
    private readonly durations: number[] = [];
    private next = 0;
    private readonly reserve: number;
    private readonly window: number;
    private readonly now: () => number;

    constructor(
        private readonly limit: number,
        options: SemaphoreOptions = {}
    ) {
        this.reserve = Math.min(Math.max(0, options.reserve ?? 1), limit - 1);
        this.window = Math.max(1, options.window ?? DEFAULT_WINDOW);
        this.now = options.now ?? (() => performance.now());
    }

    /** The mean of the recent request durations, or `undefined` before the first one finished. */
    typicalMs(): number | undefined {
        if (this.durations.length === 0) return undefined;
        return this.durations.reduce((sum, ms) => sum + ms, 0) / this.durations.length;
    }

    /** Requests in flight and waiting, for tests and status. */
    stats(): { active: number; waiting: number } {
        return { active: this.active, waiting: this.waiting };
    }

    async acquire(signal: AbortSignal, options: AcquireOptions = {}): Promise<() => void> {
        if (signal.aborted) throw signal.reason;
        const scope = scopes.getStore();
        const caller = scope?.context?.caller ?? '';
        const now = this.now();
        const deadlineAt = Math.min(
            options.withinMs === undefined ? Infinity : now + options.withinMs,
            scope?.call?.deadlineAt ?? Infinity
        );
        const typical = this.typicalMs();
        if (scope?.call !== undefined && !scope.call.admit()) {
            throw serverBusy('this caller already has as many uncached tool calls under way as it may', this.retryAfterS(typical ?? 1_000));
        }
        const startsAt = now + this.waitEstimate(caller, typical ?? 0);
        if (typical !== undefined && startsAt + typical > deadlineAt) {
            if (startsAt === now) throw tooLate();
            throw serverBusy(
                "its queue for the Token Metrics API would not reach this call before the call's deadline",
                this.retryAfterS(startsAt - now)
            );
        }

        const granted = await new Promise<string>((resolve, reject) => {
            const waiter: Waiter = {
                caller,
                deadlineAt,
                grant: () => {
                    signal.removeEventListener('abort', onAbort);
                    resolve(caller);
                },
                refuse: error => {
                    signal.removeEventListener('abort', onAbort);
                    reject(error);
                }
            };
            const onAbort = (): void => {
                const queue = this.queues.get(caller);
                const index = queue?.indexOf(waiter) ?? -1;
                if (queue === undefined || index < 0) return;
                queue.splice(index, 1);
                this.waiting -= 1;
                if (queue.length === 0) this.queues.delete(caller);
                reject(signal.reason instanceof Error ? signal.reason : new Error(String(signal.reason)));
            };
            signal.addEventListener('abort', onAbort, { once: true });
            const queue = this.queues.get(caller);
            if (queue === undefined) this.queues.set(caller, [waiter]);
            else queue.push(waiter);
            this.waiting += 1;
            this.pump();
        });

        const startedAt = this.now();
        let released = false;
        return () => {
            if (released) return;
            released = true;
            this.record(this.now() - startedAt);
            this.active -= 1;
            const held = (this.holding.get(granted) ?? 1) - 1;
            if (held <= 0) this.holding.delete(granted);
            else this.holding.set(granted, held);
            this.pump();
        };
    }

    /** Most slots `caller` may hold: all of them for the anonymous caller, all but the reserve for the others. */
    private capOf(caller: string): number {
        return caller === '' ? this.limit : this.limit - this.reserve;
    }

    /** Grants free slots to waiters, one caller at a time in turn; refuses those whose turn comes too late. */
    private pump(): void {
        while (this.active < this.limit) {
            let served: string | undefined;
            for (const [caller, queue] of this.queues) {
                if ((this.holding.get(caller) ?? 0) >= this.capOf(caller)) continue;
                const waiter = queue.shift()!;
                this.waiting -= 1;
                // Back of the line: the next free slot goes to the next caller.
                this.queues.delete(caller);
                if (queue.length > 0) this.queues.set(caller, queue);
                const typical = this.typicalMs();
                if (typical !== undefined && this.now() + typical > waiter.deadlineAt) {
                    waiter.refuse(tooLate());
                } else {
                    this.active += 1;
                    this.holding.set(caller, (this.holding.get(caller) ?? 0) + 1);
                    waiter.grant();
                }
                served = caller;
                break;
            }
            if (served === undefined) return;
        }
    }

    /**
     * When a new request of `caller` would start, from now: 0 when a slot is free for it and nobody is ahead, else
     * one typical duration per `limit` requests ahead of it. In turn order, each other caller gets at most one more
     * request in before it than the caller has queued already.
     */
    private waitEstimate(caller: string, typical: number): number {
        const own = this.queues.get(caller)?.length ?? 0;
        let ahead = own;
        for (const [other, queue] of this.queues) if (other !== caller) ahead += Math.min(queue.length, own + 1);
        const free = this.limit - this.active;
        if (ahead < free && (this.holding.get(caller) ?? 0) < this.capOf(caller)) return 0;
        return Math.ceil((ahead + 1) / this.limit) * typical;
    }

    private record(ms: number): void {
        if (this.durations.length < this.window) this.durations.push(ms);
        else this.durations[this.next] = ms;
        this.next = (this.next + 1) % this.window;
    }

    private retryAfterS(ms: number): number {
        return Math.max(1, Math.ceil(ms / 1000));
    }
}
