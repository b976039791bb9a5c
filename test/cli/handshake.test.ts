import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { PassThrough } from 'node:stream';
import { pathToFileURL } from 'node:url';
import { describe, expect, it } from 'vitest';
import { EarlyHandshake, readHandshake, type Handshake } from '../../src/cli/handshake.js';

const HANDSHAKE: Handshake = {
    version: '1.2.3',
    supportedProtocolVersions: ['2025-11-25', '2025-06-18'],
    latestProtocolVersion: '2025-11-25',
    initialize: { capabilities: { tools: {} }, serverInfo: { name: 'crypto-intel-mcp', version: '1.2.3' } },
    toolsList: { tools: [{ name: 'get_price' }] }
};

const line = (message: Record<string, unknown>) => `${JSON.stringify({ jsonrpc: '2.0', ...message })}\n`;
const initialize = (id: number, protocolVersion = '2025-06-18', clientInfo: unknown = { name: 'test', version: '1' }) =>
    line({ id, method: 'initialize', params: { protocolVersion, capabilities: {}, clientInfo } });

function harness() {
    const stdin = new PassThrough();
    const stdout = new PassThrough();
    const toServer = new PassThrough();
    const early = new EarlyHandshake(HANDSHAKE, stdin, stdout, toServer);
    const written = () => String(stdout.read() ?? '');
    const forwarded = () => String(toServer.read() ?? '');
    return { stdin, stdout, early, written, forwarded };
}

describe('the handshake answered before the server is up', () => {
    it('answers initialize with the version the client asked for, and still passes it to the server, whose answer is dropped once', () => {
        const { stdin, early, written, forwarded } = harness();
        stdin.write(initialize(1));
        expect(JSON.parse(written())).toEqual({
            jsonrpc: '2.0',
            id: 1,
            result: { protocolVersion: '2025-06-18', ...HANDSHAKE.initialize }
        });
        expect(forwarded()).toBe(initialize(1));
        expect(early.dropAnswer({ jsonrpc: '2.0', id: 1, result: {} })).toBe(true);
        expect(early.dropAnswer({ jsonrpc: '2.0', id: 1, result: {} })).toBe(false);
    });

    it('offers its latest protocol version to a client asking for one it does not know', () => {
        const { stdin, written } = harness();
        stdin.write(initialize(7, '1999-01-01'));
        expect(JSON.parse(written())).toMatchObject({ id: 7, result: { protocolVersion: '2025-11-25' } });
    });

    it('answers tools/list itself and keeps it from the server; every other line reaches the server, in order', () => {
        const { stdin, early, written, forwarded } = harness();
        const ping = line({ id: 3, method: 'ping' });
        const call = line({ id: 4, method: 'tools/call', params: { name: 'get_price', arguments: { symbols: ['BTC'] } } });
        stdin.write(initialize(1) + line({ method: 'notifications/initialized' }) + line({ id: 2, method: 'tools/list' }) + ping);
        stdin.write(call.slice(0, 10));
        expect(
            written()
                .trim()
                .split('\n')
                .map(text => (JSON.parse(text) as { id: number }).id)
        ).toEqual([1, 2]);
        expect(early.listedTools).toBe(true);
        expect(forwarded()).toBe(initialize(1) + line({ method: 'notifications/initialized' }) + ping);
        // Half a line waits for its end; after ready(), stdin goes to the server as it comes, tools/list included.
        stdin.write(call.slice(10));
        expect(forwarded()).toBe(call);
        early.ready();
        stdin.write(line({ id: 5, method: 'tools/list' }));
        expect(forwarded()).toBe(line({ id: 5, method: 'tools/list' }));
        expect(written()).toBe('');
    });

    it('leaves what the SDK would refuse, or is no request, for the server to answer', () => {
        const { stdin, written, forwarded } = harness();
        const lines = [
            initialize(1, '2025-06-18', { name: 'no version' }),
            'not json\n',
            line({ method: 'tools/list' }),
            `${JSON.stringify({ id: 2, method: 'tools/list' })}\n`,
            line({ id: 3, method: 'tools/list', params: [] })
        ];
        stdin.write(lines.join(''));
        expect(written()).toBe('');
        expect(forwarded()).toBe(lines.join(''));
    });

    it('stops reading lines once one is longer than any handshake, and passes the bytes on as they came', () => {
        const { stdin, early, written, forwarded } = harness();
        const huge = `{"jsonrpc":"2.0","id":9,"method":"ping","params":{"pad":"${'x'.repeat(1024 * 1024)}`;
        stdin.write(huge);
        expect(forwarded()).toBe(huge);
        stdin.write(`"}}\n${line({ id: 10, method: 'tools/list' })}`);
        expect(written()).toBe('');
        expect(forwarded()).toBe(`"}}\n${line({ id: 10, method: 'tools/list' })}`);
        expect(early.listedTools).toBe(false);
    });

    it('writes nothing more once stdout failed, and keeps the error for the server', () => {
        const { stdin, stdout, early, written } = harness();
        stdout.emit('error', Object.assign(new Error('write EPIPE'), { code: 'EPIPE' }));
        stdin.write(initialize(1));
        expect(written()).toBe('');
        expect(early.stdoutError?.message).toBe('write EPIPE');
    });

    it('keeps a failed read of stdin for the server, instead of letting it end the process', () => {
        const { stdin, early } = harness();
        stdin.emit('error', Object.assign(new Error('read EIO'), { code: 'EIO' }));
        expect(early.stdinError?.message).toBe('read EIO');
    });

    it('ends what the server reads when stdin ends, with a last line that had no newline', () => {
        const { stdin, forwarded, early } = harness();
        const ended = new Promise(resolve => early.toServer.once('finish', resolve));
        stdin.end(line({ id: 1, method: 'ping' }).trim());
        return ended.then(() => expect(forwarded()).toBe(line({ id: 1, method: 'ping' }).trim()));
    });
});

describe('the recorded handshake', () => {
    const write = (content: unknown): URL => {
        const file = join(mkdtempSync(join(tmpdir(), 'handshake-')), 'handshake.json');
        writeFileSync(file, typeof content === 'string' ? content : JSON.stringify(content));
        return pathToFileURL(file);
    };

    it('is used only for the version it was recorded for, and only when it is whole', () => {
        expect(readHandshake('1.2.3', write(HANDSHAKE))).toEqual(HANDSHAKE);
        expect(readHandshake('1.2.4', write(HANDSHAKE))).toBeNull();
        expect(readHandshake('1.2.3', write({ ...HANDSHAKE, toolsList: null }))).toBeNull();
        expect(readHandshake('1.2.3', write('{"version":'))).toBeNull();
        expect(readHandshake('1.2.3', new URL('file:///nonexistent/handshake.json'))).toBeNull();
    });
});
