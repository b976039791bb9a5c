import { AsyncLocalStorage } from 'node:async_hooks';
import type { Clock } from '../clock.js';

/**
 * The call scope the upstream limiter reads. Who is asking (an HTTP token, a client address) and until when (the tool
 * call's deadline) are carried by an AsyncLocalStorage scope rather than threaded through tools, resolver, cache and
 * client: the transport sets the caller around a request, `inToolCall` sets the deadline around one tool call, and
 * the limiter, at the bottom, reads both. Without a scope (stdio, doctor, tests of lower layers) there is one
 * anonymous caller and no call deadline.
 */

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
    private readonly deadlineAt: number;

    constructor(
        readonly context: CallerContext | undefined,
        private readonly clock: Pick<Clock, 'monotonic'>,
        deadlineMs: number
    ) {
        this.deadlineAt = clock.monotonic() + deadlineMs;
    }

    /**
     * Time left until the call's deadline, by the clock the call was started with: a limiter on another clock turns
     * it into its own time without the two having to agree on an origin.
     */
    remainingMs(): number {
        return this.deadlineAt - this.clock.monotonic();
    }

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

export interface Scope {
    context?: CallerContext;
    call?: CallScope;
}

const scopes = new AsyncLocalStorage<Scope>();

/** The scope the current request runs in, if any. */
export function currentScope(): Scope | undefined {
    return scopes.getStore();
}

/** Runs `fn` (a transport's handling of one request) with its caller known to the limiter. */
export function withCaller<T>(context: CallerContext, fn: () => T): T {
    return scopes.run({ context }, fn);
}

/**
 * Runs one tool call with its deadline (`deadlineMs` from now, by `clock`) known to the limiter; the caller slot its
 * first upstream request took (if any) is given back when it ends, answered or not.
 */
export async function inToolCall<T>(clock: Pick<Clock, 'monotonic'>, deadlineMs: number, fn: () => Promise<T>): Promise<T> {
    const context = scopes.getStore()?.context;
    const call = new CallScope(context, clock, deadlineMs);
    try {
        return await scopes.run(context === undefined ? { call } : { context, call }, fn);
    } finally {
        call.end();
    }
}

/** Time left (ms) until the current tool call's deadline; Infinity outside a tool call. */
export function callTimeLeftMs(): number {
    return scopes.getStore()?.call?.remainingMs() ?? Infinity;
}

/**
 * Takes the current tool call's caller slot for work it will share with other callers (see `asSharedWork`), as its
 * first upstream request would: false when the caller has all its slots taken. True outside a tool call.
 */
export function admitSharedWork(): boolean {
    return scopes.getStore()?.call?.admit() ?? true;
}

/**
 * Runs `fn`, work several callers wait on (a batch of their lookups), as nobody's: it must not be refused or cut short
 * for the caller that happened to start it, so no caller's slots, turn or cap apply to it (each caller took its slot
 * when it joined, `admitSharedWork`), and its deadline is `deadlineMs` from now (the latest of its callers'; none when
 * Infinity). Timers and promises it creates stay in this scope, never in the caller's that scheduled it.
 */
export function asSharedWork<T>(clock: Pick<Clock, 'monotonic'>, deadlineMs: number, fn: () => T): T {
    return scopes.run(Number.isFinite(deadlineMs) ? { call: new CallScope(undefined, clock, deadlineMs) } : {}, fn);
}
