import type { Clock } from '../../src/clock.js';

/**
 * A clock tests drive: `sleep` returns at once and moves time forward by the requested amount, and
 * every requested wait is recorded so backoff and Retry-After can be asserted without waiting.
 */
export class FakeClock implements Clock {
    readonly sleeps: number[] = [];

    constructor(private current = Date.parse('2026-11-25T12:00:00Z')) {}

    now(): number {
        return this.current;
    }

    advance(ms: number): void {
        this.current += ms;
    }

    async sleep(ms: number, signal?: AbortSignal): Promise<void> {
        if (signal?.aborted) throw signal.reason;
        this.sleeps.push(ms);
        this.current += Math.max(0, ms);
        await Promise.resolve();
    }
}
