import { CallToolResultSchema, LoggingMessageNotificationSchema, type JSONRPCMessage } from '@modelcontextprotocol/sdk/types.js';
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it, vi } from 'vitest';
import { FakeUpstream } from '../fake-upstream/index.js';
import { session, type Session } from '../usage/support.js';

let fake: FakeUpstream;
let open: Session[] = [];

const start = async (options: Parameters<typeof session>[1] = {}): Promise<Session> => {
    const opened = await session(fake, options);
    open.push(opened);
    return opened;
};

const isResponseTo = (id: unknown) => (message: JSONRPCMessage) =>
    'id' in message && message.id === id && ('result' in message || 'error' in message);
const isNotification = (method: string) => (message: JSONRPCMessage) =>
    'method' in message && !('id' in message) && message.method === method;

beforeAll(async () => {
    fake = await FakeUpstream.start();
});
afterAll(async () => {
    await fake.close();
});
beforeEach(() => fake.reset());
afterEach(async () => {
    for (const server of open) await server.close();
    open = [];
});

describe('progress notifications', () => {
    it('a cold 10-symbol get_price with a progressToken gets a notification per part before its result', async () => {
        const server = await start();
        const symbols = fake.world.tokens.slice(0, 10).map(token => token.symbol);
        const events: string[] = [];
        const result = await server.client.callTool({ name: 'get_price', arguments: { symbols } }, CallToolResultSchema, {
            onprogress: progress => events.push(`progress ${progress.progress}/${progress.total}: ${progress.message}`)
        });
        events.push('result');
        expect(result.isError).toBeFalsy();
        expect(fake.log().map(line => line.split(' ')[0])).toEqual(['/tokens', '/price']);
        expect(events).toEqual([
            'progress 1/2: resolved 10 of 10 token(s)',
            expect.stringMatching(/^progress 2\/2: prices of \d+ token\(s\) in hand$/),
            'result'
        ]);
        // On the wire too: both notifications precede the response.
        const call = server.received.find(message => 'method' in message && message.method === 'tools/call')!;
        const order = server.sent.filter(
            message => isNotification('notifications/progress')(message) || isResponseTo((call as { id: unknown }).id)(message)
        );
        expect(order.map(message => ('method' in message ? message.method : 'response'))).toEqual([
            'notifications/progress',
            'notifications/progress',
            'response'
        ]);
    });

    it('explain_signal reports its parts (lookup, signals, candles) as each completes', async () => {
        const server = await start();
        const events: number[] = [];
        await server.client.callTool({ name: 'explain_signal', arguments: { symbol: 'SOL' } }, CallToolResultSchema, {
            onprogress: progress => events.push(progress.progress)
        });
        expect(events).toEqual([1, 2, 3]);
    });

    it('sends none without a progressToken', async () => {
        const server = await start();
        await server.call('get_price', { symbols: ['BTC', 'ETH'] });
        expect(server.sent.filter(isNotification('notifications/progress'))).toEqual([]);
    });
});

describe('cancellation', () => {
    it('a cancelled explain_signal sends no result and its unshared upstream requests are closed', async () => {
        const server = await start();
        await server.call('get_price', { symbols: ['SOL'] }); // SOL known: the call goes straight to its data
        const paid = fake.calls.length;
        fake.reset();
        fake.inject({ path: '/trading-signals', fault: { kind: 'latency', ms: 10_000 } });
        fake.inject({ path: '/daily-ohlcv', fault: { kind: 'latency', ms: 10_000 } });
        const controller = new AbortController();
        const pending = server.client.callTool({ name: 'explain_signal', arguments: { symbol: 'SOL' } }, CallToolResultSchema, {
            signal: controller.signal
        });
        await vi.waitFor(() => expect(fake.calls.map(call => call.path).sort()).toEqual(['/daily-ohlcv', '/trading-signals']));
        controller.abort('the user changed their mind');
        await expect(pending).rejects.toThrow();
        await vi.waitFor(() => expect(fake.calls.map(call => call.aborted)).toEqual([true, true]));
        const call = server.received.find(
            message => 'method' in message && message.method === 'tools/call' && JSON.stringify(message).includes('explain_signal')
        )!;
        expect(server.received.some(isNotification('notifications/cancelled'))).toBe(true);
        // The server carries on, and never answers the cancelled request.
        await server.call('get_usage', {});
        expect(server.sent.filter(isResponseTo((call as { id: unknown }).id))).toEqual([]);
        expect((await server.call('get_usage', {})).structuredContent).toMatchObject({ credits_month: paid }); // an aborted request got no answer: no credit
    });

    it('a request shared with another caller keeps going for it when one caller cancels', async () => {
        const server = await start();
        await server.call('get_price', { symbols: ['ETH'] });
        fake.reset();
        fake.inject({ path: '/trading-signals', fault: { kind: 'latency', ms: 300 } });
        fake.inject({ path: '/daily-ohlcv', fault: { kind: 'latency', ms: 300 } });
        const controller = new AbortController();
        const cancelled = server.client.callTool({ name: 'explain_signal', arguments: { symbol: 'ETH' } }, CallToolResultSchema, {
            signal: controller.signal
        });
        const kept = server.call('explain_signal', { symbol: 'ETH' });
        await vi.waitFor(() => expect(fake.calls).toHaveLength(2));
        controller.abort();
        await expect(cancelled).rejects.toThrow();
        const result = await kept;
        expect(result.isError).toBeFalsy();
        expect(result.structuredContent).toMatchObject({ symbol: 'ETH' });
        expect(fake.calls.map(call => [call.path, call.aborted, call.status])).toEqual(
            expect.arrayContaining([
                ['/trading-signals', false, 200],
                ['/daily-ohlcv', false, 200]
            ])
        );
    });
});

describe('logging', () => {
    it('sends no notifications/message before the client has initialized, and the early lines after', async () => {
        const server = await start({
            forwardLogs: true,
            beforeConnect: ({ logger }) => {
                // A burst of debug lines first: they must not crowd the warning out of what waits for the handshake.
                for (let i = 0; i < 50; i++) logger.debug('start-up detail', { i });
                logger.warn('logged before the handshake', { detail: 1 });
            }
        });
        await vi.waitFor(() => expect(server.sent.some(isNotification('notifications/message'))).toBe(true));
        const steps = server.wire.map(({ dir, message }) =>
            'method' in message
                ? `${dir} ${message.method}`
                : `${dir} ${'result' in message && 'protocolVersion' in (message.result as object) ? 'initialize result' : 'response'}`
        );
        expect(steps.slice(0, 4)).toEqual([
            'in initialize',
            'out initialize result',
            'in notifications/initialized',
            'out notifications/message'
        ]);
        expect(JSON.stringify(server.sent.find(isNotification('notifications/message')))).toContain('logged before the handshake');
    });

    it('honours logging/setLevel: warnings by default, then only what the client asked for', async () => {
        const received: Array<{ level: string; msg: unknown }> = [];
        const server = await start({
            forwardLogs: true,
            beforeConnect: ({ client }) =>
                client.setNotificationHandler(LoggingMessageNotificationSchema, notification => {
                    received.push({ level: notification.params.level, msg: (notification.params.data as { msg?: unknown }).msg });
                })
        });
        const say = async (level: 'debug' | 'info' | 'warn' | 'error', msg: string) => {
            server.logger[level](msg);
            await server.client.ping(); // a round trip: any notification sent before it has arrived
        };
        await say('info', 'info by default');
        await say('warn', 'warn by default');
        await server.client.setLoggingLevel('error');
        await say('warn', 'warn under error');
        await say('error', 'error under error');
        await server.client.setLoggingLevel('debug');
        await say('debug', 'debug under debug');
        expect(received).toEqual([
            { level: 'warning', msg: 'warn by default' },
            { level: 'error', msg: 'error under error' },
            { level: 'debug', msg: 'debug under debug' }
        ]);
    });
});
