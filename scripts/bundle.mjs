// Bundles the built server (dist/src/cli/main.js, from tsc) into one CommonJS file, dist/bundle/server.cjs, that
// dist/src/cli.js compiles with V8's code cache (src/cli/bundle.ts). One file instead of some 300 modules, and
// CommonJS because only a classic script can be compiled from a code cache on Node 20 (vm.Script's cachedData).
import { build } from 'esbuild';
import { readFileSync, rmSync } from 'node:fs';
import process from 'node:process';
import { pathToFileURL } from 'node:url';

const OUT_DIR = 'dist/bundle';
const OUT_FILE = `${OUT_DIR}/server.cjs`;

/**
 * undici's HTTP/2 client loads node:http2 (and with it node:tls) when the bundle starts, ~5 ms and their garbage on
 * every start, for connections this server never makes: its Agent does not allow HTTP/2. In the bundle, that require
 * fails, which undici handles as a runtime without HTTP/2.
 */
const withoutHttp2 = {
    name: 'without-http2',
    setup(build) {
        build.onResolve({ filter: /^node:http2$/ }, args =>
            args.importer.includes('undici') ? { path: 'node:http2', namespace: 'without-http2' } : undefined
        );
        build.onLoad({ filter: /.*/, namespace: 'without-http2' }, () => ({
            contents: "throw new Error('HTTP/2 is not used by crypto-intel-mcp');",
            loader: 'js'
        }));
    }
};

rmSync(OUT_DIR, { recursive: true, force: true });
// The tool list, made here once from the same build's schemas rather than on every start (tools/index.ts).
const { TOOLS_LIST } = await import(pathToFileURL('dist/tools/index.js').href);
await build({
    entryPoints: ['dist/src/cli/main.js'],
    outfile: OUT_FILE,
    bundle: true,
    platform: 'node',
    format: 'cjs',
    target: 'node20.18',
    // Loaded only when a Redis URL is configured, from node_modules as before.
    external: ['ioredis'],
    plugins: [withoutHttp2],
    // The modules find package.json and the SDK's files relative to themselves; in the bundle, relative to it.
    define: { 'import.meta.url': '__bundleUrl', __BUILT_TOOLS_LIST__: JSON.stringify(TOOLS_LIST) },
    banner: { js: "var __bundleUrl = require('node:url').pathToFileURL(__filename).href;" },
    // Identifiers are kept, so that a stack trace in a log still names our functions.
    minifyWhitespace: true,
    minifySyntax: true,
    legalComments: 'none',
    sourcemap: 'external',
    logLevel: 'warning'
});

// A classic script cannot run import(): esbuild rewrites every dynamic import of a bundled or external module to a
// require, and this check makes sure none was left for the loader to trip on at run time.
if (/\bimport\(/.test(readFileSync(OUT_FILE, 'utf8'))) {
    process.stderr.write(`${OUT_FILE} still contains import(): it cannot be run as a classic script\n`);
    process.exit(1);
}
