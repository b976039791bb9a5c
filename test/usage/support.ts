import { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { InMemoryTransport } from '@modelcontextprotocol/sdk/inMemory.js';
import type { CallToolResult, JSONRPCMessage } from '@modelcontextprotocol/sdk/types.js';
import { createRuntime, openRuntime, type Runtime } from '../../src/app.js';
import { loadConfig } from '../../src/config.js';
import { StderrLogger } from '../../src/logger.js';
import { Redactor } from '../../src/redact.js';
import { createServer, forwardLogsToClient } from '../../src/server.js';
import type { FakeCall, FakeUpstream } from '../fake-upstream/index.js';
import { FakeClock } from '../helpers/clock.js';

export interface Session {
    client: Client;
    runtime: Runtime;
    clock: FakeClock;
    logger: StderrLogger;
    /** Every line the logger wrote (stderr in production). */
    logs: string[];
    /** Every JSON-RPC message the server sent, in order. */
    sent: JSONRPCMessage[];
    /** Every JSON-RPC message the client sent, in order. */
    received: JSONRPCMessage[];
    /** Both directions in one order: `out` from the server, `in` to it. */
    wire: Array<{ dir: 'in' | 'out'; message: JSONRPCMessage }>;
    call(name: string, args: Record<string, unknown>): Promise<CallToolResult>;
    close(): Promise<void>;
}

export interface SessionOptions {
    env?: Record<string, string>;
    clock?: FakeClock;
    /** Forward log lines to the client as notifications/message, as the stdio CLI does. */
    forwardLogs?: boolean;
    /** Connect the client (default); when false, `connect()` on the returned client's transport is left to the test. */
    beforeConnect?: (session: Omit<Session, 'call' | 'close'>) => void;
}

/**
 * The real server wired to an SDK Client in memory, like test/helpers/in-process.ts, with the messages on the wire
 * recorded (to prove what was and was not sent) and, optionally, log forwarding as the stdio CLI sets it up.
 */
export async function session(fake: FakeUpstream, options: SessionOptions = {}): Promise<Session> {
    const clock = options.clock ?? new FakeClock();
    const command = loadConfig(
        {
            TOKEN_METRICS_API_KEY: 'tm-usage-0000-9f2c',
            TOKEN_METRICS_BASE_URL: fake.baseUrl,
            CRYPTO_INTEL_CACHE_DIR: 'off',
            CRYPTO_INTEL_LOG_LEVEL: 'debug',
            ...options.env
        },
        []
    );
    if (command.kind !== 'run') throw new Error('unexpected CLI command');
    fake.world.followClock(clock);
    const logs: string[] = [];
    const redactor = new Redactor();
    const logger = new StderrLogger(command.config.logLevel, redactor, line => logs.push(line));
    // With CRYPTO_INTEL_REDIS_URL, joined to Redis as a team replica is.
    const runtime =
        command.config.redisUrl === null
            ? createRuntime(command.config, { clock, logger, redactor })
            : await openRuntime(command.config, { clock, logger, redactor });
    const server = createServer(runtime.deps);
    if (options.forwardLogs) forwardLogsToClient(server, logger);
    const [clientSide, serverSide] = InMemoryTransport.createLinkedPair();
    const sent: JSONRPCMessage[] = [];
    const received: JSONRPCMessage[] = [];
    const wire: Session['wire'] = [];
    const serverSend = serverSide.send.bind(serverSide);
    serverSide.send = async (message, sendOptions) => {
        sent.push(message);
        wire.push({ dir: 'out', message });
        return serverSend(message, sendOptions);
    };
    const clientSend = clientSide.send.bind(clientSide);
    clientSide.send = async (message, sendOptions) => {
        received.push(message);
        wire.push({ dir: 'in', message });
        return clientSend(message, sendOptions);
    };
    const client = new Client({ name: 'usage-tests', version: '1.0.0' });
    options.beforeConnect?.({ client, runtime, clock, logger, logs, sent, received, wire });
    await Promise.all([server.connect(serverSide), client.connect(clientSide)]);
    return {
        client,
        runtime,
        clock,
        logger,
        logs,
        sent,
        received,
        wire,
        call: async (name, args) => (await client.callTool({ name, arguments: args })) as CallToolResult,
        close: async () => {
            await client.close();
            await server.close();
            await runtime.close();
        }
    };
}

/** Credits as the fake counts them: requests it answered (an HTTP status), per key. */
export function fakeCredits(calls: readonly FakeCall[], key: string): number {
    return calls.filter(call => call.key === key && call.status > 0).length;
}

export const textOf = (result: CallToolResult): string => result.content.map(part => (part.type === 'text' ? part.text : '')).join('\n');
