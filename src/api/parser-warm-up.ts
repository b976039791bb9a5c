import { createRequire } from 'node:module';
import { Duplex } from 'node:stream';
import request from 'undici/lib/api/api-request.js';
import Client from 'undici/lib/dispatcher/client.js';
import { readCapped } from './body.js';
import { cleanText } from './upstream-text.js';

/**
 * undici compiles its HTTP/1 parser (llhttp, WebAssembly) when its first connection starts to serve, and V8 compiles
 * each of the parser's functions the first time an answer calls it: ~10 ms that the first tool call would otherwise
 * pay. One request and its answer through undici over an in-memory socket do that work while the client shakes hands.
 * Nothing leaves the process: the socket is a pair of buffers, and the answer is written here.
 */
const ANSWER = 'HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: 2\r\n\r\n{}';
/** Never resolved, never contacted: the socket below is this client's only way out. */
const ORIGIN = 'http://warm-up.invalid';
const MAX_BYTES = 1024;

export async function warmHttpParser(): Promise<void> {
    let written = '';
    const socket = new Duplex({
        read() {},
        write(chunk: Buffer, _encoding, done) {
            written += chunk.toString('latin1');
            // A GET's head ends with an empty line: only then is there something to answer. On a later turn (see below).
            if (written.includes('\r\n\r\n')) setImmediate(() => this.push(ANSWER));
            done();
        }
    });
    // Handed over on a later tick, as a real connection is: undici is not ready for one inside its connect call.
    const client = new Client(ORIGIN, { connect: (_options, connected) => process.nextTick(connected, null, socket) });
    try {
        const response = await request.call(client, {
            path: '/',
            method: 'GET',
            headers: { accept: 'application/json', 'user-agent': 'crypto-intel-mcp' }
        });
        await readCapped(response.body, response.statusCode, response.headers['content-length'], MAX_BYTES);
        await turn();
        // Besides HTTP, the first answer is the first to run two things V8 readies on first use: the upstream-text
        // regexes (Unicode classes, built on first match) and Date's ISO formatting (~1 ms the first time), which every
        // answer's timestamps go through. Server-side, over 21 starts, a first call took 1.3 ms less with these here.
        cleanText('warm-up\u0007');
        new Date(0).toISOString();
    } finally {
        await turn();
        // Destroying a client makes an error, whose stack Node reads: the process's first stack trace costs ~5 ms
        // (V8 collects source positions for every frame's function). Nobody reads this one: no frames to collect.
        const limit = Error.stackTraceLimit;
        Error.stackTraceLimit = 0;
        const destroyed = client.destroy();
        Error.stackTraceLimit = limit;
        await destroyed;
    }
}

/**
 * The warm-up is some 20 ms of work on the main thread (instantiating llhttp, V8 compiling its functions on their first
 * call, the Unicode regexes), done in parts with a turn of the event loop between them (the request, the answer, the
 * text, the client's end), so that a tool call arriving meanwhile waits for one part, not all of it. SDK clients that
 * call a tool the moment they have the list spend ~50 ms on the list first (compiling a validator per output schema),
 * which is when the warm-up runs: over 16 starts each, such a call waited up to 21 ms to be read (5 starts 9 ms or more)
 * when the warm-up was one piece, up to 10 ms (2 starts) in parts. Its first-call time did not change measurably.
 */
const turn = (): Promise<void> => new Promise(resolve => setImmediate(resolve));

/**
 * Starts compiling llhttp on one of V8's background threads, where the main thread, busy with the handshake, does not
 * wait for it. V8 keeps a compiled module by its bytes for the life of the process, so undici's own synchronous compile
 * of the same bytes (the warm-up's first request) then takes ~0.1 ms instead of ~3.5 ms on the main thread. undici
 * picks the SIMD build unless UNDICI_NO_WASM_SIMD=1 (and on older Node on ppc64, where this compiles one it won't use).
 */
export function precompileHttpParser(): void {
    WebAssembly.compile(llhttpBytes(process.env.UNDICI_NO_WASM_SIMD !== '1')).catch(() => undefined);
}

/**
 * The bytes undici compiles, from the module it loads them from. In the bundle, through the bundle's `require`: esbuild
 * hands over that module's export as it is, where an ES import would copy the Buffer's every byte onto a namespace
 * object (~175 ms and a collection at start-up for 72 KB). Run from the modules, through Node's.
 */
function llhttpBytes(simd: boolean): Buffer {
    /* eslint-disable @typescript-eslint/no-require-imports -- see above; both paths load the same module */
    if (typeof require === 'function') {
        return (simd ? require('undici/lib/llhttp/llhttp_simd-wasm.js') : require('undici/lib/llhttp/llhttp-wasm.js')) as Buffer;
    }
    /* eslint-enable @typescript-eslint/no-require-imports */
    return createRequire(import.meta.url)(`undici/lib/llhttp/${simd ? 'llhttp_simd-wasm' : 'llhttp-wasm'}.js`) as Buffer;
}
