#!/usr/bin/env node
import { fileURLToPath } from 'node:url';
import { loadBundle, type Main } from './cli/bundle.js';

/**
 * The entry point. The build bundles the server into one file, which starts from V8's code cache (cli/bundle.ts);
 * without it (tsc alone), the modules are imported one by one, the same code.
 */
const BUNDLE = fileURLToPath(new URL('../bundle/server.cjs', import.meta.url));

async function start(): Promise<void> {
    const main: Main = loadBundle(BUNDLE) ?? (await import('./cli/main.js')).main;
    await main();
}

start().catch((error: unknown) => {
    process.stderr.write(`crypto-intel-mcp: failed to start: ${error instanceof Error ? error.message : String(error)}\n`);
    process.exit(1);
});
