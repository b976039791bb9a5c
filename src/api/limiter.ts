import { systemClock, type Clock } from '../clock.js';
import { currentScope } from './call-scope.js';
import { serverBusy, tooLate } from './refusals.js';

/** The upstream request limiter: a semaphore bounded by time, reading the call scope (call-scope.ts) for who asks and until when. */

// The HTTP transport's fairness pieces import these from here, where the limiter they feed lives.

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
    /** Where the estimates and deadlines are measured (its `monotonic()`); the system clock by default. */
    clock?: Pick<Clock, 'monotonic'>;
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
    private readonly clock: Pick<Clock, 'monotonic'>;

    constructor(
        private readonly limit: number,
        options: SemaphoreOptions = {}
    ) {
        this.reserve = Math.min(Math.max(0, options.reserve ?? 1), limit - 1);
        this.window = Math.max(1, options.window ?? DEFAULT_WINDOW);
        this.clock = options.clock ?? systemClock;
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
        const scope = currentScope();
        const caller = scope?.context?.caller ?? '';
        const now = this.clock.monotonic();
        const deadlineAt = now + Math.min(options.withinMs ?? Infinity, scope?.call?.remainingMs() ?? Infinity);
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

        const startedAt = this.clock.monotonic();
        let released = false;
        return () => {
            if (released) return;
            released = true;
            this.record(this.clock.monotonic() - startedAt);
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
                if (typical !== undefined && this.clock.monotonic() + typical > waiter.deadlineAt) {
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
