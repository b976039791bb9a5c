import { TokenMetricsClient } from '../../src/api/client.js';
import { UpstreamHttp, type HttpOptions } from '../../src/api/http.js';
import type { Clock } from '../../src/clock.js';
import { KeyPool } from '../../src/keys/pool.js';
import { silentLogger, type Logger } from '../../src/logger.js';
import type { FakeUpstream } from '../fake-upstream/index.js';
import { FakeClock } from './clock.js';

export interface TestClient {
    client: TokenMetricsClient;
    http: UpstreamHttp;
    keys: KeyPool;
    clock: Clock;
}

/** A real client and HTTP stack pointed at the fake, with a fake clock and no jitter. */
export function clientFor(
    fake: FakeUpstream,
    options: { keys?: string[]; clock?: Clock; logger?: Logger; http?: Partial<HttpOptions> } = {}
): TestClient {
    const clock = options.clock ?? new FakeClock();
    fake.world.followClock(clock);
    const keys = new KeyPool(options.keys ?? ['tm-test-key-0001']);
    const logger = options.logger ?? silentLogger;
    const http = new UpstreamHttp(
        { baseUrl: fake.baseUrl, attemptTimeoutMs: 2_000, deadlineMs: 20_000, concurrency: 4, random: () => 1, ...options.http },
        keys,
        clock,
        logger
    );
    return { client: new TokenMetricsClient(http, clock, logger), http, keys, clock };
}
