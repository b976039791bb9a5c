import type { Clock } from '../../src/clock.js';

interface Timer {
    at: number;
    controller: AbortController;
}

/**
 * A clock tests drive. Time moves only when the test says so (`advance`) or when code sleeps: `sleep` returns at once
 * and moves time forward by the requested amount, and every requested wait is recorded so backoff and Retry-After can
 * be asserted without waiting. Timeouts (`timeout(ms)`) fire when time reaches them, whichever of the two moved it.
 */
export class FakeClock implements Clock {
    readonly sleeps: number[] = [];
    /** Pending timeouts by due time; those due at the same time in the order they were made, as Node fires them. */
    private readonly timers: Timer[] = [];

    constructor(private current = Date.parse('2026-11-25T12:00:00Z')) {}

    now(): number {
        return this.current;
    }

    /** Fake time never goes back, so it serves as the monotonic clock too. */
    monotonic(): number {
        return this.current;
    }

    /** Moves time forward by `ms`, firing every timeout due on the way, in time order. */
    advance(ms: number): void {
        this.moveTo(this.current + Math.max(0, ms));
    }

    async sleep(ms: number, signal?: AbortSignal): Promise<void> {
        if (signal?.aborted) throw signal.reason;
        this.sleeps.push(ms);
        // A timeout that fires on the way and aborts this sleep's signal ends the sleep there, as a real one would.
        this.moveTo(this.current + Math.max(0, ms), signal);
        await Promise.resolve();
        if (signal?.aborted) throw signal.reason;
    }

    timeout(ms: number): AbortSignal {
        const timer: Timer = { at: this.current + Math.max(0, ms), controller: new AbortController() };
        const index = this.timers.findIndex(other => other.at > timer.at);
        this.timers.splice(index < 0 ? this.timers.length : index, 0, timer);
        return timer.controller.signal;
    }

    private moveTo(target: number, stopWhen?: AbortSignal): void {
        for (let timer = this.timers[0]; timer !== undefined && timer.at <= target; timer = this.timers[0]) {
            this.timers.shift();
            this.current = Math.max(this.current, timer.at);
            timer.controller.abort(new DOMException('The operation was aborted due to timeout', 'TimeoutError'));
            if (stopWhen?.aborted) return;
        }
        this.current = Math.max(this.current, target);
    }
}
