import { cancelled } from '../api/errors.js';

/**
 * One upstream call that several requests wait on. Each request joins once and leaves when it is done or gives up;
 * the upstream call is aborted only when the last waiter leaves before it settled, because one impatient caller
 * must not cancel an answer (and a credit already being spent) that others still want.
 */
export class SharedCall {
    private readonly controller = new AbortController();
    private readonly covered: string[] = [];
    private waiters = 0;
    private settled = false;

    /** `onAbandoned` runs once, when every waiter left before the call settled. */
    constructor(private readonly onAbandoned: (call: SharedCall) => void) {}

    /** The cache keys this call will answer (a batch grows until it fires). */
    get keys(): readonly string[] {
        return this.covered;
    }

    cover(keys: readonly string[]): void {
        this.covered.push(...keys);
    }

    /** Passed to the inner call. */
    get signal(): AbortSignal {
        return this.controller.signal;
    }

    get abandoned(): boolean {
        return this.controller.signal.aborted;
    }

    join(): void {
        this.waiters++;
    }

    leave(): void {
        this.waiters--;
        if (this.waiters <= 0 && !this.settled && !this.abandoned) {
            this.controller.abort(cancelled());
            this.onAbandoned(this);
        }
    }

    settle(): void {
        this.settled = true;
    }
}

export interface Deferred<T> {
    readonly promise: Promise<T>;
    resolve(value: T): void;
    reject(reason: unknown): void;
}

/** A promise settled from outside. It is marked handled: a result nobody waits for any more must not become an unhandled rejection. */
export function deferred<T>(): Deferred<T> {
    let resolve!: (value: T) => void;
    let reject!: (reason: unknown) => void;
    const promise = new Promise<T>((res, rej) => {
        resolve = res;
        reject = rej;
    });
    promise.catch(() => undefined);
    return { promise, resolve, reject };
}

/** Settles with `promise`, or rejects with `cancelled()` as soon as `signal` aborts; the promise itself keeps running for others. */
export function untilAborted<T>(promise: Promise<T>, signal: AbortSignal | undefined): Promise<T> {
    if (!signal) return promise;
    if (signal.aborted) return Promise.reject(cancelled());
    return new Promise<T>((resolve, reject) => {
        const onAbort = (): void => reject(cancelled());
        signal.addEventListener('abort', onAbort, { once: true });
        promise.then(
            value => {
                signal.removeEventListener('abort', onAbort);
                resolve(value);
            },
            (error: unknown) => {
                signal.removeEventListener('abort', onAbort);
                reject(error);
            }
        );
    });
}
