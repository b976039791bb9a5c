import { performance } from 'node:perf_hooks';
import { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { InMemoryTransport } from '@modelcontextprotocol/sdk/inMemory.js';
import { createRuntime } from '../src/app.js';
import { systemClock } from '../src/clock.js';
import { DEFAULT_BATCH_WINDOW_MS, loadConfig } from '../src/config.js';
import type { Token } from '../src/domain/market.js';
import { silentLogger } from '../src/logger.js';
import { Redactor } from '../src/redact.js';
import { TokenDirectory } from '../src/resolve/directory.js';
import { TokenResolver } from '../src/resolve/resolver.js';
import { createServer } from '../src/server.js';
import type { FakeUpstream } from '../test/fake-upstream/index.js';
import { inProcessServer } from '../test/helpers/in-process.js';
import { median, round } from './stats.js';

/**
 * Server costs without a process boundary: a warm 25-symbol call while the resolver knows no other token and while it
 * knows 20,000 (issue 14's token directory), and what a lone cold call pays for the price batch window.
 */

const KEY = 'tm-bench-0000-0000-1npr';
const WARM_SAMPLES = 300;
const KNOWN_TOKENS = 20_000;
const COLD_SAMPLES = 21;

/** A server over memory whose resolver starts out knowing `known` tokens, and a client connected to it. */
async function serverKnowing(fake: FakeUpstream, known: readonly Token[]): Promise<{ client: Client; close(): Promise<void> }> {
    const command = loadConfig({ TOKEN_METRICS_API_KEY: KEY, TOKEN_METRICS_BASE_URL: fake.baseUrl, CRYPTO_INTEL_CACHE_DIR: 'off' }, []);
    if (command.kind !== 'run') throw new Error('unexpected CLI command');
    const runtime = createRuntime(command.config, { clock: systemClock, logger: silentLogger, redactor: new Redactor() });
    const directory = new TokenDirectory();
    directory.remember(known);
    const server = createServer({ ...runtime.deps, resolver: new TokenResolver(runtime.market, directory) });
    const [clientSide, serverSide] = InMemoryTransport.createLinkedPair();
    const client = new Client({ name: 'bench', version: '1.0.0' });
    await Promise.all([server.connect(serverSide), client.connect(clientSide)]);
    return {
        client,
        close: async () => {
            await client.close();
            await server.close();
            await runtime.close();
        }
    };
}

const synthetic = (i: number): Token => ({
    tokenId: 5_000_000 + i,
    name: `Synthetic Token ${i}`,
    symbol: `SY${i}`,
    categories: [],
    exchanges: [],
    contracts: {}
});

export interface WarmResolution {
    symbols: number;
    /** Median of a warm `get_price` of `symbols` tokens (every answer cached), with no other token known. */
    noneKnownMs: number;
    knownTokens: number;
    /** The same with `knownTokens` other tokens in the resolver's directory. */
    manyKnownMs: number;
}

export async function warmResolution(fake: FakeUpstream): Promise<WarmResolution> {
    const symbols = [...new Set(fake.world.tokens.map(token => token.symbol))].slice(0, 25);
    const servers = [
        await serverKnowing(fake, []),
        await serverKnowing(
            fake,
            Array.from({ length: KNOWN_TOKENS }, (_, i) => synthetic(i))
        )
    ];
    try {
        const call = (client: Client) => client.callTool({ name: 'get_price', arguments: { symbols } });
        for (const { client } of servers) await call(client);
        const samples: number[][] = [[], []];
        // In turns, so that whatever else the machine does touches both alike.
        for (let i = 0; i < WARM_SAMPLES; i++) {
            for (const [s, { client }] of servers.entries()) {
                const started = performance.now();
                await call(client);
                samples[s]!.push(performance.now() - started);
            }
        }
        return {
            symbols: symbols.length,
            noneKnownMs: round(median(samples[0]!), 3),
            knownTokens: KNOWN_TOKENS,
            manyKnownMs: round(median(samples[1]!), 3)
        };
    } finally {
        for (const server of servers) await server.close();
    }
}

export interface BatchWindow {
    configuredMs: number;
    /** A lone cold `get_price` of one token id with the window configured, and with it off (medians). */
    withWindowMs: number;
    withoutWindowMs: number;
}

/** What a cold call pays for the batch window when no other call shares its batch: with the window on, then off. */
export async function batchWindow(fake: FakeUpstream, configuredMs = DEFAULT_BATCH_WINDOW_MS): Promise<BatchWindow> {
    const latency = fake.latencyMs;
    fake.latencyMs = 0;
    const base = { TOKEN_METRICS_API_KEY: KEY, CRYPTO_INTEL_LOG_LEVEL: 'error' };
    const servers = [
        await inProcessServer(fake, { ...base, CRYPTO_INTEL_BATCH_WINDOW_MS: String(configuredMs) }, systemClock),
        await inProcessServer(fake, { ...base, CRYPTO_INTEL_BATCH_WINDOW_MS: '0' }, systemClock)
    ];
    try {
        const ids = fake.world.tokens.map(token => token.id).slice(0, COLD_SAMPLES);
        const samples: number[][] = [[], []];
        for (const id of ids) {
            for (const [s, server] of servers.entries()) {
                const started = performance.now();
                await server.call('get_price', { symbols: [id] });
                samples[s]!.push(performance.now() - started);
            }
        }
        return { configuredMs, withWindowMs: round(median(samples[0]!), 2), withoutWindowMs: round(median(samples[1]!), 2) };
    } finally {
        fake.latencyMs = latency;
        for (const server of servers) await server.close();
    }
}
