import { createRequire } from 'node:module';
import { afterAll, afterEach, beforeAll, describe, expect, it, vi } from 'vitest';
import { Socket } from 'node:net';
import { precompileHttpParser, warmHttpParser } from '../../src/api/parser-warm-up.js';
import { UpstreamTransport } from '../../src/api/transport.js';
import { FakeUpstream } from '../fake-upstream/index.js';
import { freePort } from '../helpers/ports.js';

const KEY = 'tm-transport-0000-7c1e';

describe('warming the HTTP parser', () => {
    it('runs a request and its answer through undici in memory, opening no socket, as often as asked', async () => {
        const connect = vi.spyOn(Socket.prototype, 'connect');
        try {
            await warmHttpParser();
            await warmHttpParser();
            expect(connect).not.toHaveBeenCalled();
        } finally {
            connect.mockRestore();
        }
    });

    it('gives the event loop back between its parts, so that a tool call arriving meanwhile waits for one part, not all', async () => {
        // Turns of the event loop taken while the warm-up runs: each is a moment stdin is read and a call started.
        let turns = 0;
        let warmed = false;
        const counting = (async () => {
            while (!warmed) {
                await new Promise(resolve => setImmediate(resolve));
                turns++;
            }
        })();
        const limit = Error.stackTraceLimit;
        await warmHttpParser();
        warmed = true;
        await counting;
        // The request, the answer, the text, the client's end (all in one turn, a call waited for all of them).
        expect(turns).toBeGreaterThanOrEqual(3);
        // Stack traces are cut only while its own client's error is made.
        expect(Error.stackTraceLimit).toBe(limit);
    });

    it('compiles, ahead of time, the very bytes undici compiles: its SIMD build, or the other when told not to use SIMD', () => {
        const compile = vi.spyOn(WebAssembly, 'compile');
        const undici = createRequire(import.meta.url);
        try {
            precompileHttpParser();
            vi.stubEnv('UNDICI_NO_WASM_SIMD', '1');
            precompileHttpParser();
            expect(compile.mock.calls).toEqual([
                [undici('undici/lib/llhttp/llhttp_simd-wasm.js')],
                [undici('undici/lib/llhttp/llhttp-wasm.js')]
            ]);
        } finally {
            vi.unstubAllEnvs();
            compile.mockRestore();
        }
    });

    it('never fails for a compile that does', async () => {
        const compile = vi.spyOn(WebAssembly, 'compile').mockRejectedValue(new Error('no WebAssembly here'));
        const unhandled = vi.fn();
        process.on('unhandledRejection', unhandled);
        try {
            expect(() => precompileHttpParser()).not.toThrow();
            await new Promise(resolve => setImmediate(resolve));
            expect(unhandled).not.toHaveBeenCalled();
        } finally {
            process.off('unhandledRejection', unhandled);
            compile.mockRestore();
        }
    });
});

describe('warming the transport', () => {
    let fake: FakeUpstream;
    let transport: UpstreamTransport | undefined;

    beforeAll(async () => {
        fake = await FakeUpstream.start();
    });
    afterAll(async () => {
        await fake?.close();
    });
    afterEach(async () => {
        await transport?.close();
        fake.dropConnections();
        await fake.until(() => fake.connections() === 0);
        fake.reset();
    });

    const origin = (): URL => new URL(fake.baseUrl);
    const tokens = (): URL => new URL(`${fake.baseUrl}/tokens?symbol=BTC`);

    it('opens one connection to the upstream and sends nothing on it; the first request takes it', async () => {
        transport = new UpstreamTransport({ attemptTimeoutMs: 5_000, concurrency: 2 });
        await transport.warm(origin());
        await transport.warm(origin());
        await fake.until(() => fake.connections() === 1);
        expect(fake.count()).toBe(0);

        const response = await transport.send(tokens(), KEY, AbortSignal.timeout(5_000));
        expect(response.status).toBe(200);
        expect(fake.count()).toBe(1);
        expect(fake.connections()).toBe(1);
    });

    it('lets an unused spare connection go after the keep-alive time, and the first request opens its own', async () => {
        // Only the timers: connections and turns of the event loop stay real.
        vi.useFakeTimers({ toFake: ['setTimeout', 'clearTimeout'] });
        try {
            transport = new UpstreamTransport({ attemptTimeoutMs: 5_000, concurrency: 2 });
            await transport.warm(origin());
            await fake.until(() => fake.connections() === 1);
            vi.advanceTimersByTime(30_000);
            await fake.until(() => fake.connections() === 0);
        } finally {
            vi.useRealTimers();
        }
        const response = await transport.send(tokens(), KEY, AbortSignal.timeout(5_000));
        expect(response.status).toBe(200);
        expect(fake.log()).toEqual(['/tokens tm-…7c1e -> 200']);
    });

    it('rejects when the upstream cannot be reached, and requests go on as without it', async () => {
        transport = new UpstreamTransport({ attemptTimeoutMs: 5_000, concurrency: 2 });
        await expect(transport.warm(new URL(`http://127.0.0.1:${await freePort()}/v2`))).rejects.toThrow();
        const response = await transport.send(tokens(), KEY, AbortSignal.timeout(5_000));
        expect(response.status).toBe(200);
    });

    it("loads undici's own modules, not its index (fetch, WebSocket, mocks)", async () => {
        transport = new UpstreamTransport({ attemptTimeoutMs: 5_000, concurrency: 2 });
        await transport.warm(origin());
        const loaded = Object.keys(createRequire(import.meta.url).cache);
        expect(loaded.some(path => path.endsWith('/undici/lib/dispatcher/agent.js'))).toBe(true);
        expect(loaded.some(path => path.endsWith('/undici/index.js'))).toBe(false);
    });

    it('closes the spare connection when the transport closes', async () => {
        transport = new UpstreamTransport({ attemptTimeoutMs: 5_000, concurrency: 2 });
        await transport.warm(origin());
        await fake.until(() => fake.connections() === 1);
        await transport.close();
        transport = undefined;
        await fake.until(() => fake.connections() === 0);
        expect(fake.count()).toBe(0);
    });
});
