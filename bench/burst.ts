import type { FakeUpstream } from '../test/fake-upstream/index.js';
import { HttpServerProcess, mcpHeaders, toolCallBody } from '../test/helpers/http-process.js';

/**
 * Many clients of one HTTP replica, each with its own bearer token, asking at once for a token nobody asked for yet:
 * each call alone needs a symbol lookup and a price, and the credits they spend together show whether concurrent
 * lookups and prices are merged into shared requests (the upstream takes comma-separated lists) or paid one by one.
 */

const KEY = 'tm-bench-0000-0000-bur5';
const bearer = (client: number): string => `bench-burst-client-${String(client).padStart(3, '0')}-0123456789abcdef`;

export interface ColdBurst {
    calls: number;
    upstreamLatencyMs: number;
    answered: number;
    /** Upstream requests the burst made, each one credit. */
    credits: number;
}

export async function coldBurst(fake: FakeUpstream, calls = 40): Promise<ColdBurst> {
    const symbols = [...new Set(fake.world.tokens.map(token => token.symbol))].slice(0, calls);
    if (symbols.length < calls) throw new Error(`the fake upstream has only ${symbols.length} distinct symbols`);
    const server = await HttpServerProcess.start({
        TOKEN_METRICS_API_KEY: KEY,
        TOKEN_METRICS_BASE_URL: fake.baseUrl,
        CRYPTO_INTEL_HTTP_TOKENS: symbols.map((_, i) => bearer(i)).join(','),
        CRYPTO_INTEL_HTTP_RATE_PER_MIN: '0',
        // info: the helper learns the port from the "listening" line.
        CRYPTO_INTEL_LOG_LEVEL: 'info'
    });
    try {
        const before = fake.count();
        const results = await Promise.all(
            symbols.map(async (symbol, i) => {
                const response = await fetch(server.mcpUrl, {
                    method: 'POST',
                    headers: mcpHeaders(bearer(i)),
                    body: toolCallBody('get_price', { symbols: [symbol] }, i + 1)
                });
                const body = (await response.json().catch(() => null)) as { result?: { isError?: boolean } } | null;
                return response.status === 200 && body?.result !== undefined && body.result.isError !== true;
            })
        );
        return { calls, upstreamLatencyMs: fake.latencyMs, answered: results.filter(Boolean).length, credits: fake.count() - before };
    } finally {
        await server.stop();
    }
}
