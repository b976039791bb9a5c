import { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { InMemoryTransport } from '@modelcontextprotocol/sdk/inMemory.js';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { createServer } from '../../src/server.js';
import { FakeUpstream } from '../fake-upstream/index.js';
import { inProcessServer, type InProcessServer } from '../helpers/in-process.js';

describe('warming the upstream client', () => {
    let fake: FakeUpstream;
    let base: InProcessServer;

    beforeAll(async () => {
        fake = await FakeUpstream.start();
        base = await inProcessServer(fake);
    });
    afterAll(async () => {
        await base?.close();
        await fake?.close();
    });

    it('readies the client once the tool list is answered, not before, and sends nothing upstream', async () => {
        const warmUp = vi.fn();
        const server = createServer({ ...base.runtime.deps, warmUp });
        const [clientSide, serverSide] = InMemoryTransport.createLinkedPair();
        const client = new Client({ name: 'warm-up-test', version: '1.0.0' });
        await Promise.all([server.connect(serverSide), client.connect(clientSide)]);
        try {
            expect(warmUp).not.toHaveBeenCalled();
            const calls = fake.count();
            await client.listTools();
            await vi.waitFor(() => expect(warmUp).toHaveBeenCalledTimes(1));
            expect(fake.count()).toBe(calls);
        } finally {
            await client.close();
            await server.close();
        }
    });

    it('is wired to the runtime: a warmed server answers its first call as before', async () => {
        expect(base.runtime.deps.warmUp).toBeTypeOf('function');
        base.runtime.deps.warmUp!();
        const result = await base.call('get_price', { symbols: ['BTC'] });
        expect(result.isError).toBeFalsy();
    });
});
