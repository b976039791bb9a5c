import { writeFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { InMemoryTransport } from '@modelcontextprotocol/sdk/inMemory.js';
import { LATEST_PROTOCOL_VERSION, SUPPORTED_PROTOCOL_VERSIONS, type JSONRPCMessage } from '@modelcontextprotocol/sdk/types.js';
import { createRuntime } from '../app.js';
import { systemClock } from '../clock.js';
import { loadConfig } from '../config.js';
import { silentLogger } from '../logger.js';
import { Redactor } from '../redact.js';
import { createServer } from '../server.js';
import { VERSION } from '../version.js';
import { HANDSHAKE_FILE, type Handshake } from './handshake.js';

/**
 * Records the real server's answers to `initialize` and `tools/list`, as they cross the wire, for the stdio start-up
 * to give back before the SDK has loaded (handshake.ts). Run by `npm run build`: the record always matches the build.
 */
export async function recordHandshake(): Promise<Handshake> {
    const command = loadConfig({ TOKEN_METRICS_API_KEY: 'tm-handshake-record-0000', CRYPTO_INTEL_CACHE_DIR: 'off' }, []);
    if (command.kind !== 'run') throw new Error('unexpected CLI command');
    const runtime = createRuntime(command.config, { clock: systemClock, logger: silentLogger, redactor: new Redactor() });
    const server = createServer(runtime.deps);
    const [clientSide, serverSide] = InMemoryTransport.createLinkedPair();
    const results = new Map<unknown, Record<string, unknown>>();
    const client = new Client({ name: 'handshake-recorder', version: VERSION });
    await server.connect(serverSide);
    // The answers as the server sent them, before the client reads them.
    const send = serverSide.send.bind(serverSide);
    serverSide.send = (message: JSONRPCMessage, options) => {
        if ('result' in message) results.set(message.id, message.result);
        return send(message, options);
    };
    try {
        await client.connect(clientSide);
        await client.listTools();
    } finally {
        await client.close();
        await server.close();
        await runtime.close();
    }
    const [initialize, toolsList] = [...results.values()];
    if (!initialize || !toolsList) throw new Error('the server did not answer initialize and tools/list');
    // Negotiated per client: the early answer picks it as the SDK does.
    const recorded = { ...initialize };
    delete recorded.protocolVersion;
    return {
        version: VERSION,
        supportedProtocolVersions: [...SUPPORTED_PROTOCOL_VERSIONS],
        latestProtocolVersion: LATEST_PROTOCOL_VERSION,
        initialize: recorded,
        toolsList
    };
}

if (process.argv[1] === fileURLToPath(import.meta.url)) {
    writeFileSync(HANDSHAKE_FILE, `${JSON.stringify(await recordHandshake())}\n`);
}
