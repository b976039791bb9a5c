import { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { InMemoryTransport } from '@modelcontextprotocol/sdk/inMemory.js';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { createServer } from '../../src/server.js';
import { FakeUpstream } from '../fake-upstream/index.js';
import { inProcessServer } from '../helpers/in-process.js';
import { freePort } from '../helpers/ports.js';
import { startServer } from '../helpers/server-process.js';

const levels = (logs: string[]): string[] => logs.map(line => (JSON.parse(line) as { level: string }).level);

describe('the warm-up', () => {
    let fake: FakeUpstream;

    beforeAll(async () => {
        fake = await FakeUpstream.start();
    });
    afterAll(async () => {
        await fake?.close();
    });

    it('starts a while after the tool list is answered, not before: a call sent at once goes first', async () => {
        const base = await inProcessServer(fake);
        const warmUp = vi.fn(() => Promise.resolve());
        // The first sleep, the warm-up's, lasts until the test ends it; the tool call's own waits pass as usual.
        let waited: () => void = () => undefined;
        const clock = base.runtime.deps.clock;
        const sleep = vi.fn((ms: number, signal?: AbortSignal) =>
            sleep.mock.calls.length === 1 ? new Promise<void>(resolve => (waited = resolve)) : clock.sleep(ms, signal)
        );
        const gated = { now: () => clock.now(), monotonic: () => clock.monotonic(), timeout: (ms: number) => clock.timeout(ms), sleep };
        const server = createServer({ ...base.runtime.deps, clock: gated, warmUp });
        const [clientSide, serverSide] = InMemoryTransport.createLinkedPair();
        const client = new Client({ name: 'warm-up-test', version: '1.0.0' });
        await Promise.all([server.connect(serverSide), client.connect(clientSide)]);
        try {
            expect(warmUp).not.toHaveBeenCalled();
            await client.listTools();
            expect(sleep).toHaveBeenCalledTimes(1);
            expect(sleep.mock.calls[0]![0]).toBeGreaterThan(0);
            const result = await client.callTool({ name: 'get_price', arguments: { symbols: ['BTC'] } });
            expect(result.isError).toBeFalsy();
            expect(warmUp).not.toHaveBeenCalled();
            waited();
            await vi.waitFor(() => expect(warmUp).toHaveBeenCalledTimes(1));
            // All of it: the connection and, now that the list is out, the HTTP parser.
            expect(warmUp).toHaveBeenCalledWith();
        } finally {
            await client.close();
            await server.close();
            await base.close();
            fake.reset();
        }
    });

    it("starts the persistent cache's restore when the client has initialized, not before", async () => {
        const base = await inProcessServer(fake);
        const restore = vi.spyOn(base.runtime.deps.market, 'restore');
        const server = createServer(base.runtime.deps);
        const [clientSide, serverSide] = InMemoryTransport.createLinkedPair();
        const client = new Client({ name: 'restore-test', version: '1.0.0' });
        try {
            await server.connect(serverSide);
            expect(restore).not.toHaveBeenCalled();
            // connect() sends initialize, waits for its answer, then sends the initialized notification.
            await client.connect(clientSide);
            await vi.waitFor(() => expect(restore).toHaveBeenCalledTimes(1));
        } finally {
            restore.mockRestore();
            await client.close();
            await server.close();
            await base.close();
        }
    });

    it('runs once, opens one connection to the upstream, sends nothing and logs nothing; the first call takes the connection', async () => {
        const server = await inProcessServer(fake);
        try {
            const logged = server.logs.length;
            const warmUp = server.runtime.deps.warmUp!;
            await Promise.all([warmUp(), warmUp()]);
            await warmUp();
            await fake.until(() => fake.connections() === 1);
            expect(fake.count()).toBe(0);
            expect(server.logs.slice(logged)).toEqual([]);

            const result = await server.call('get_price', { symbols: ['BTC'] });
            expect(result.isError).toBeFalsy();
            expect(fake.log()).toEqual(['/tokens tm-…9f2c -> 200', '/price tm-…9f2c -> 200']);
            expect(fake.connections()).toBe(1);
        } finally {
            await server.close();
        }
    });

    it('is harmless when the upstream cannot be reached: it resolves, says so at debug only, and calls answer as before', async () => {
        const server = await inProcessServer(fake, {
            TOKEN_METRICS_BASE_URL: `http://127.0.0.1:${await freePort()}/v2`,
            CRYPTO_INTEL_MAX_RETRIES: '0'
        });
        try {
            const logged = server.logs.length;
            await expect(server.runtime.deps.warmUp!()).resolves.toBeUndefined();
            expect(levels(server.logs.slice(logged))).toEqual(['debug']);

            const result = await server.call('get_price', { symbols: ['BTC'] });
            expect(result.isError).toBe(true);
        } finally {
            await server.close();
        }
    });

    it('starts in the stdio server once it is connected, before any tool list: one connection, no request', async () => {
        await fake.until(() => fake.connections() === 0);
        const requests = fake.count();
        // startServer returns once `initialize` is answered; the client has asked for nothing else.
        const { server } = await startServer({
            TOKEN_METRICS_API_KEY: 'tm-warm-0000-0000-stdio',
            TOKEN_METRICS_BASE_URL: fake.baseUrl,
            CRYPTO_INTEL_CACHE_DIR: 'off'
        });
        try {
            await fake.until(() => fake.connections() === 1);
            expect(fake.count()).toBe(requests);
        } finally {
            await server.close();
        }
    });

    it('contacts nothing without a usable key', async () => {
        await fake.until(() => fake.connections() === 0);
        const server = await inProcessServer(fake, { TOKEN_METRICS_API_KEY: '' });
        try {
            await server.runtime.deps.warmUp!();
            expect(fake.connections()).toBe(0);
        } finally {
            await server.close();
        }
    });

    it('tells the entry point of every answered tool call, a failed one included, and of nothing else', async () => {
        // The entry point waits for one before it keeps V8's code cache (src/cli/bundle.ts).
        const own = await FakeUpstream.start();
        const base = await inProcessServer(own);
        const answered = vi.fn();
        const server = createServer({ ...base.runtime.deps, answered });
        const [clientSide, serverSide] = InMemoryTransport.createLinkedPair();
        const client = new Client({ name: 'answered-test', version: '1.0.0' });
        await Promise.all([server.connect(serverSide), client.connect(clientSide)]);
        try {
            await client.listTools();
            expect(answered).not.toHaveBeenCalled();
            expect((await client.callTool({ name: 'get_price', arguments: { symbols: ['BTC'] } })).isError).toBeFalsy();
            expect(answered).toHaveBeenCalledTimes(1);
            expect((await client.callTool({ name: 'get_grades', arguments: { symbol: 'NOSUCHTOKEN1' } })).isError).toBe(true);
            expect(answered).toHaveBeenCalledTimes(2);
        } finally {
            await client.close();
            await server.close();
            await base.close();
            await own.close();
        }
    });
});
