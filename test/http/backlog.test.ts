import { createServer, connect, type Server } from 'node:net';
import { afterEach, describe, expect, it } from 'vitest';
import { Backlog } from '../../src/http/backlog.js';

let server: Server | undefined;

afterEach(async () => {
    await new Promise(resolve => (server ? server.close(resolve) : resolve(undefined)));
    server = undefined;
});

describe('the backlog of requests that can wait', () => {
    it('lets them go on one per turn of the event loop, in the order they came', async () => {
        const backlog = new Backlog();
        const order: string[] = [];
        const waits = ['a', 'b', 'c'].map(name => backlog.turn().then(() => order.push(name)));
        expect(backlog.size).toBe(3);
        // An immediate queued now runs in the first turn, after the first waiter and before the second.
        setImmediate(() => order.push('other work'));
        await Promise.all(waits);
        expect(order).toEqual(['a', 'other work', 'b', 'c']);
        expect(backlog.size).toBe(0);
    });

    it('reads a socket that became ready before the queue is empty, however long the queue stays full', async () => {
        server = createServer(socket => socket.end('ready'));
        await new Promise<void>(resolve => server!.listen(0, '127.0.0.1', resolve));
        const { port } = server.address() as { port: number };
        const backlog = new Backlog();
        let turns = 0;
        let readAfter: number | undefined;
        let waitingThen = 0;
        const client = connect(port, '127.0.0.1');
        client.on('data', () => {
            readAfter ??= turns;
            waitingThen = backlog.size;
        });
        // Two requests forever going back to the queue: it never empties until the socket has been read.
        const busy = async (): Promise<void> => {
            while (readAfter === undefined && turns < 1_000_000) {
                await backlog.turn();
                turns++;
            }
        };
        await Promise.all([busy(), busy()]);
        client.destroy();
        expect(readAfter).toBeDefined();
        expect(waitingThen).toBeGreaterThan(0);
    });
});
