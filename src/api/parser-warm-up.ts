import { Duplex } from 'node:stream';
import request from 'undici/lib/api/api-request.js';
import Client from 'undici/lib/dispatcher/client.js';
import { readCapped } from './body.js';

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
            // A GET's head ends with an empty line: only then is there something to answer.
            if (written.includes('\r\n\r\n')) this.push(ANSWER);
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
    } finally {
        await client.destroy();
    }
}
