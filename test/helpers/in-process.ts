import { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { InMemoryTransport } from '@modelcontextprotocol/sdk/inMemory.js';
import type { CallToolResult } from '@modelcontextprotocol/sdk/types.js';
import { createRuntime, type Runtime } from '../../src/app.js';
import type { Clock } from '../../src/clock.js';
import { loadConfig } from '../../src/config.js';
import { StderrLogger } from '../../src/logger.js';
import { Redactor } from '../../src/redact.js';
import { createServer } from '../../src/server.js';
import type { FakeUpstream } from '../fake-upstream/index.js';
import { FakeClock } from './clock.js';

export interface InProcessServer {
    client: Client;
    runtime: Runtime;
    clock: Clock;
    /** Everything the logger wrote (stderr in production). */
    logs: string[];
    call(name: string, args: Record<string, unknown>): Promise<CallToolResult>;
    close(): Promise<void>;
}

/**
 * The real server (tools, resolver, cache, keys, client) wired to an SDK Client in memory and to the
 * fake upstream, configured through the same environment variables a user sets.
 */
export async function inProcessServer(
    fake: FakeUpstream,
    env: Record<string, string> = {},
    clock: Clock = new FakeClock()
): Promise<InProcessServer> {
    const command = loadConfig(
        {
            TOKEN_METRICS_API_KEY: 'tm-inproc-0000-9f2c',
            TOKEN_METRICS_BASE_URL: fake.baseUrl,
            CRYPTO_INTEL_CACHE_DIR: 'off',
            CRYPTO_INTEL_LOG_LEVEL: 'debug',
            ...env
        },
        []
    );
    if (command.kind !== 'run') throw new Error('unexpected CLI command');
    fake.world.followClock(clock);
    const logs: string[] = [];
    const redactor = new Redactor();
    const logger = new StderrLogger(command.config.logLevel, redactor, line => logs.push(line));
    const runtime = createRuntime(command.config, { clock, logger, redactor });
    const server = createServer(runtime.deps);
    const [clientSide, serverSide] = InMemoryTransport.createLinkedPair();
    const client = new Client({ name: 'contract-tests', version: '1.0.0' });
    await Promise.all([server.connect(serverSide), client.connect(clientSide)]);
    return {
        client,
        runtime,
        clock,
        logs,
        call: async (name, args) => (await client.callTool({ name, arguments: args })) as CallToolResult,
        close: async () => {
            await client.close();
            await server.close();
            await runtime.close();
        }
    };
}

export const textOf = (result: CallToolResult): string => result.content.map(part => (part.type === 'text' ? part.text : '')).join('\n');
