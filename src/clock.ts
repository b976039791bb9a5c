import { performance } from 'node:perf_hooks';
import { setTimeout as delay } from 'node:timers/promises';

/**
 * Time as the program sees it; injected so tests can control backoff, TTLs, timeouts, deadlines and timestamps
 * instead of waiting for them (and instead of depending on how fast the machine runs).
 */
export interface Clock {
    /** Milliseconds since the epoch: timestamps, TTLs, Retry-After dates. */
    now(): number;
    /** Milliseconds from an arbitrary origin, never going back: durations and deadlines inside the process. */
    monotonic(): number;
    /** Resolves after `ms`, or rejects with the signal's reason when it aborts first. */
    sleep(ms: number, signal?: AbortSignal): Promise<void>;
    /** A signal that aborts after `ms` with a `TimeoutError` DOMException, as `AbortSignal.timeout` does. */
    timeout(ms: number): AbortSignal;
}

export const systemClock: Clock = {
    now: () => Date.now(),
    monotonic: () => performance.now(),
    sleep: async (ms, signal) => {
        await delay(Math.max(0, ms), undefined, signal ? { signal } : undefined);
    },
    // AbortSignal.timeout takes whole milliseconds only (a monotonic difference has fractions).
    timeout: ms => AbortSignal.timeout(Math.max(0, Math.ceil(ms)))
};

/** `clock.timeout(ms)`, and the caller's own signal when there is one: aborted by whichever comes first. */
export function timeoutOrCancel(clock: Clock, ms: number, signal: AbortSignal | undefined): AbortSignal {
    const timeout = clock.timeout(ms);
    return signal ? AbortSignal.any([timeout, signal]) : timeout;
}
