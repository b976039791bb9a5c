#!/usr/bin/env node
import { PassThrough } from 'node:stream';
import { EarlyHandshake, readHandshake } from './cli/handshake.js';
import { VERSION } from './version.js';

/**
 * The entry point. Started with no arguments, as an MCP client starts a stdio server, it answers the handshake from
 * the build's record while the rest loads (cli/handshake.ts); any argument (--http, doctor, keys, --help) takes the
 * ordinary path. Only light modules are imported here: the rest comes in with cli/main.ts.
 */
function earlyHandshake(): EarlyHandshake | null {
    if (process.argv.length > 2) return null;
    const handshake = readHandshake(VERSION);
    return handshake && new EarlyHandshake(handshake, process.stdin, process.stdout, new PassThrough());
}

const early = earlyHandshake();
import('./cli/main.js')
    .then(({ main }) => main(early))
    .catch((error: unknown) => {
        process.stderr.write(`crypto-intel-mcp: failed to start: ${error instanceof Error ? error.message : String(error)}\n`);
        process.exit(1);
    });
