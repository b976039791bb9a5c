import type { JSONRPCMessage } from '@modelcontextprotocol/sdk/types.js';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { FakeUpstream } from '../fake-upstream/index.js';
import { inProcessServer } from '../helpers/in-process.js';
import { ServerProcess } from '../helpers/server-process.js';

/**
 * The built CLI answers `initialize` and `tools/list` before the SDK has loaded (src/cli/handshake.ts). Here a client
 * that sends everything at once, as soon as the process exists, gets exactly the answers the SDK server gives, each
 * request answered once, and its calls served by the real server behind.
 */
let fake: FakeUpstream;

beforeAll(async () => {
    fake = await FakeUpstream.start();
});
afterAll(async () => {
    await fake.close();
});

const request = (id: number, method: string, params?: Record<string, unknown>): JSONRPCMessage => ({
    jsonrpc: '2.0',
    id,
    method,
    ...(params ? { params } : {})
});

describe('the stdio handshake answered before the server is up', () => {
    it('gives the answers the SDK server gives, each request once, and serves what follows', async () => {
        const server = new ServerProcess({
            TOKEN_METRICS_API_KEY: 'tm-early-0000-0000-4e4e',
            TOKEN_METRICS_BASE_URL: fake.baseUrl,
            CRYPTO_INTEL_CACHE_DIR: 'off'
        });
        const answers: Array<JSONRPCMessage & { id?: unknown; result?: Record<string, unknown> }> = [];
        let arrived = () => {};
        server.onmessage = message => {
            answers.push(message);
            arrived();
        };
        await server.start();
        const reference = await inProcessServer(fake);
        try {
            for (const message of [
                request(1, 'initialize', {
                    protocolVersion: '2025-06-18',
                    capabilities: {},
                    clientInfo: { name: 'eager', version: '1.0.0' }
                }),
                { jsonrpc: '2.0', method: 'notifications/initialized' } as JSONRPCMessage,
                request(2, 'tools/list'),
                request(3, 'tools/call', { name: 'get_price', arguments: { symbols: ['BTC'] } }),
                request(4, 'ping')
            ]) {
                await server.send(message);
            }
            while (new Set(answers.map(answer => answer.id)).size < 4) await new Promise<void>(resolve => (arrived = resolve));
            // Let anything sent twice arrive too.
            await server.send(request(5, 'ping'));
            while (!answers.some(answer => answer.id === 5)) await new Promise<void>(resolve => (arrived = resolve));

            expect(answers.map(answer => answer.id).sort()).toEqual([1, 2, 3, 4, 5]);
            const byId = new Map(answers.map(answer => [answer.id, answer.result]));
            expect(byId.get(1)).toEqual({
                protocolVersion: '2025-06-18',
                capabilities: reference.client.getServerCapabilities(),
                serverInfo: reference.client.getServerVersion(),
                instructions: reference.client.getInstructions()
            });
            expect(byId.get(2)).toEqual(JSON.parse(JSON.stringify(await reference.client.listTools())));
            expect(byId.get(3)).toMatchObject({ structuredContent: { prices: [{ symbol: 'BTC' }] } });
            expect(server.stdoutLines.map(line => (JSON.parse(line) as { jsonrpc?: unknown }).jsonrpc)).toEqual(answers.map(() => '2.0'));
        } finally {
            await reference.close();
            await server.close();
        }
    });
});
