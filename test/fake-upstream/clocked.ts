import type { FakeClock } from '../helpers/clock.js';
import type { FakeUpstream } from './index.js';

/**
 * Plays out the upstream's time for a test on a FakeClock (the same clock as `fake.clock` and the server's): until
 * `done` settles, it takes the request the fake has held back longest and moves the clock to when that request is
 * due, or to when the client gives up on it (`attemptTimeoutMs` after it arrived) if that comes first, then waits
 * until the fake is done with it (answered, or dropped by the client) before the next. Each step is exact: the
 * client's own timers fire at the fake times they name, so the limiter's estimates, timeouts and deadlines come out
 * the same on any machine, at any load.
 */
export async function runClock(fake: FakeUpstream, clock: FakeClock, done: Promise<unknown>, attemptTimeoutMs = Infinity): Promise<void> {
    let settled = false;
    const finished = done.then(
        () => void (settled = true),
        () => void (settled = true)
    );
    for (;;) {
        await Promise.race([finished, fake.until(() => fake.pending().length > 0)]);
        if (settled) return;
        const next = fake.pending()[0]!;
        const until = Math.min(next.dueAt, next.since + attemptTimeoutMs);
        if (until === Infinity)
            throw new Error(`${next.call.path} is held and nothing would end it: release it, or pass the attempt timeout`);
        clock.advance(until - clock.monotonic());
        await fake.until(() => next.call.done);
    }
}
