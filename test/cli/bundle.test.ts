import { spawn } from 'node:child_process';
import { createHash } from 'node:crypto';
import { cpSync, existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { TOOLS } from '../../tools/index.js';
import { toolsListResult } from '../../tools/published.js';
import { CLI_PATH, startServer } from '../helpers/server-process.js';
import { ROOT, run, type Ran } from '../packaging/support.js';

/**
 * The entry point's loader (src/cli/bundle.ts), run as the CLI runs it: in a process of its own, since the code cache
 * is written when that process exits. The bundle here is a stand-in that reports what the loader told it.
 */
const LOADER = new URL('../../dist/src/cli/bundle.js', import.meta.url).href;
const STAND_IN = `exports.main = async hooks => {
    process.stdout.write(JSON.stringify({ codeCache: hooks.codeCache }));
    if (process.env.SERVE === '1') hooks.serving();
    if (process.env.ANSWER === '1') hooks.answered();
    if (process.env.AFTER_ANSWER === '1') {
        // Whether the cache is on disk a few turns of the event loop after the first answer, while the process goes on.
        const file = __filename + '.' + process.version + '-' + process.arch + '.v8cache';
        hooks.answered();
        for (let turn = 0; turn < 5; turn++) await new Promise(resolve => setTimeout(resolve, 0));
        process.stderr.write(require('node:fs').existsSync(file) ? 'written at once' : 'not yet');
        await new Promise(resolve => setTimeout(resolve, 50));
    }
    if (process.env.LINGER === '1') {
        // A server that keeps serving: it says which cache file it saw written (one other than PREVIOUS), then ends.
        const file = __filename + '.' + process.version + '-' + process.arch + '.v8cache';
        const inode = () => (require('node:fs').existsSync(file) ? String(require('node:fs').statSync(file).ino) : undefined);
        for (let waited = 0; waited < 20000; waited += 20) {
            const now = inode();
            if (now !== undefined && now !== process.env.PREVIOUS) return void process.stderr.write('inode ' + now);
            await new Promise(resolve => setTimeout(resolve, 20));
        }
    }
};
`;

let dir: string;
let bundle: string;
const cacheFile = (): string => `${bundle}.${process.version}-${process.arch}.v8cache`;

function runLoader(env: Record<string, string> = { SERVE: '1' }): Promise<Ran> {
    const driver = join(dir, 'driver.mjs');
    writeFileSync(
        driver,
        `import { loadBundle } from ${JSON.stringify(LOADER)};\n` +
            `const main = loadBundle(${JSON.stringify(bundle)});\n` +
            `if (main === null) process.stdout.write('no bundle'); else await main();\n`
    );
    return run(process.execPath, [driver], { env: { PATH: process.env.PATH ?? '', ...env }, timeoutMs: 30_000 });
}

const reported = async (env?: Record<string, string>): Promise<string> => {
    const ran = await runLoader(env);
    expect(ran.code, ran.stderr).toBe(0);
    return ran.stdout === 'no bundle' ? ran.stdout : (JSON.parse(ran.stdout) as { codeCache: string }).codeCache;
};

describe.skipIf(!existsSync(fileURLToPath(LOADER)))('the bundle loader and its code cache', () => {
    beforeEach(() => {
        dir = mkdtempSync(join(tmpdir(), 'cim-bundle-loader-'));
        bundle = join(dir, 'server.cjs');
        writeFileSync(bundle, STAND_IN);
    });
    afterEach(() => rmSync(dir, { recursive: true, force: true }));

    it('says there is no bundle when the file is missing, so the CLI imports the modules instead', async () => {
        rmSync(bundle);
        expect(await reported()).toBe('no bundle');
    });

    it('compiles without a cache, writes one when a server exits, and starts from it next time', async () => {
        expect(await reported()).toBe('none');
        const written = readFileSync(cacheFile());
        // The bundle's SHA-256 first: a cache is only ever used with the source it was made from.
        expect(written.subarray(0, 32)).toEqual(createHash('sha256').update(STAND_IN).digest());
        expect(written.length).toBeGreaterThan(32);
        expect(await reported()).toBe('used');
        // Nothing but the cache itself is left beside the bundle (no temporary file).
        expect(readdirSync(dir).sort()).toEqual(['driver.mjs', 'server.cjs', cacheFile().slice(dir.length + 1)].sort());
    });

    it('writes again a cache whose process answered no tool call, once a process answers one, and then keeps it', async () => {
        // The byte after the hash says what the writer ran: 0, it only shook hands; 1, it answered a tool call.
        const coverage = (): number | undefined => readFileSync(cacheFile())[32];
        const inode = (): number => statSync(cacheFile()).ino;
        expect(await reported()).toBe('none');
        expect(coverage()).toBe(0);
        const handshakeOnly = inode();
        // Another handshake teaches V8 nothing new: the file stays as it is.
        expect(await reported()).toBe('used');
        expect(inode()).toBe(handshakeOnly);

        expect(await reported({ SERVE: '1', ANSWER: '1' })).toBe('used');
        expect(coverage()).toBe(1);
        const answered = inode();
        expect(answered).not.toBe(handshakeOnly);
        expect(await reported({ SERVE: '1', ANSWER: '1' })).toBe('used');
        expect(await reported()).toBe('used');
        expect(inode()).toBe(answered);
    });

    it('writes the cache soon after a server starts, and after its first answer, not when it exits: V8 drops unused code', async () => {
        // What the stand-in saw while it was still serving, and whether the file changed after (a rename: a new inode).
        const seenWhileServing = async (env: Record<string, string>): Promise<number> => {
            const ran = await runLoader({ ...env, LINGER: '1' });
            expect(ran.code, ran.stderr).toBe(0);
            const seen = Number(/inode (\d+)/.exec(ran.stderr)?.[1]);
            expect(seen).toBe(statSync(cacheFile()).ino);
            return seen;
        };
        const started = await seenWhileServing({ SERVE: '1' });
        expect(readFileSync(cacheFile())[32]).toBe(0);
        // A cache that covers no call is taken again a second after a process answers one.
        await seenWhileServing({ SERVE: '1', ANSWER: '1', PREVIOUS: String(started) });
        expect(readFileSync(cacheFile())[32]).toBe(1);
    });

    it('takes the cache on the turn after the first answer, before a busy session can spoil it', async () => {
        const ran = await runLoader({ SERVE: '1', AFTER_ANSWER: '1' });
        expect(ran.code, ran.stderr).toBe(0);
        expect(ran.stderr).toBe('written at once');
        expect(readFileSync(cacheFile())[32]).toBe(1);
    });

    it('marks a first cache written after a tool call as such', async () => {
        expect(await reported({ SERVE: '1', ANSWER: '1' })).toBe('none');
        expect(readFileSync(cacheFile())[32]).toBe(1);
    });

    it('writes no cache for a run that never became a server (--help, doctor, keys)', async () => {
        expect(await reported({})).toBe('none');
        expect(existsSync(cacheFile())).toBe(false);
    });

    it('never uses a cache made from another bundle of the same length, and replaces it', async () => {
        expect(await reported()).toBe('none');
        // V8 itself would accept this cache: it checks the source's length, not its content.
        writeFileSync(bundle, STAND_IN.replace("=== '1'", '=== "1"'));
        expect(readFileSync(bundle, 'utf8')).not.toBe(STAND_IN);
        expect(readFileSync(bundle).length).toBe(Buffer.byteLength(STAND_IN));
        expect(await reported()).toBe('none');
        expect(readFileSync(cacheFile()).subarray(0, 32)).toEqual(createHash('sha256').update(readFileSync(bundle)).digest());
        expect(await reported()).toBe('used');
    });

    it('falls back to compiling when V8 rejects the cache, and writes a good one', async () => {
        const hash = createHash('sha256').update(STAND_IN).digest();
        writeFileSync(cacheFile(), Buffer.concat([hash, Buffer.from('not a V8 code cache at all')]));
        expect(await reported()).toBe('rejected');
        expect(await reported()).toBe('used');
    });

    it('keeps a cache per set of Node options, so that servers started with and without them do not undo each other', async () => {
        // V8 rejects a cache made under other V8 flags: with one file, each start would reject and replace the other's.
        const withOptions = { SERVE: '1', NODE_OPTIONS: '--max-old-space-size=4096' };
        const optionCaches = (): string[] => readdirSync(dir).filter(name => name.endsWith('.v8cache') && join(dir, name) !== cacheFile());
        expect(await reported()).toBe('none');
        const plain = statSync(cacheFile()).ino;
        expect(await reported(withOptions)).toBe('none');
        expect(optionCaches()).toHaveLength(1);
        expect(await reported(withOptions)).toBe('used');
        expect(await reported()).toBe('used');
        expect(statSync(cacheFile()).ino).toBe(plain);
    });

    it('keeps the newest four caches made under Node options, so that options that change on every run cannot fill the folder', async () => {
        expect(await reported()).toBe('none');
        const tagged = (): string[] => readdirSync(dir).filter(name => name.endsWith('.v8cache') && join(dir, name) !== cacheFile());
        const written: string[] = [];
        for (let size = 4096; size < 4102; size++) {
            const before = tagged();
            expect(await reported({ SERVE: '1', NODE_OPTIONS: `--max-old-space-size=${size}` })).toBe('none');
            written.push(...tagged().filter(name => !before.includes(name)));
            expect(tagged().length).toBe(Math.min(written.length, 4));
        }
        expect(written).toHaveLength(6);
        // The plain cache is not one of theirs: neither counted nor removed.
        expect(tagged().sort()).toEqual(written.slice(2).sort());
        expect(existsSync(cacheFile())).toBe(true);
    });

    it('keeps serving when the cache cannot be written', async () => {
        // A directory where the file would go: the rename fails, as on a folder the user cannot write.
        mkdirSync(cacheFile());
        expect(await reported()).toBe('none');
        expect(readdirSync(dir).filter(name => name.endsWith('.tmp'))).toEqual([]);
        expect(await reported()).toBe('none');
    });
});

describe('the built CLI', () => {
    it('runs the bundle and, once a server has exited, starts from its code cache', async () => {
        const readyLine = async (): Promise<Record<string, unknown>> => {
            const { client, server } = await startServer({ CRYPTO_INTEL_CACHE_DIR: 'off', CRYPTO_INTEL_LOG_LEVEL: 'info' });
            try {
                await client.listTools();
            } finally {
                await server.close();
            }
            const line = server.stderr.split('\n').find(text => text.includes('ready on stdio'));
            return JSON.parse(line!) as Record<string, unknown>;
        };
        // Other tests' servers may have written the cache already: the first start says either.
        expect(['none', 'used']).toContain((await readyLine()).codeCache);
        expect((await readyLine()).codeCache).toBe('used');
    });
});

describe.skipIf(!CLI_PATH.endsWith(join('dist', 'src', 'cli.js')))('the bundle', () => {
    it('answers tools/list with the list the build made, the one these schemas make', async () => {
        const { client, server } = await startServer({ CRYPTO_INTEL_CACHE_DIR: 'off' });
        try {
            expect(await client.listTools()).toEqual(toolsListResult(TOOLS));
        } finally {
            await server.close();
        }
    });

    it('starts without node:http2, which undici would load for connections this server never makes', async () => {
        const dir = mkdtempSync(join(tmpdir(), 'cim-probe-'));
        try {
            const probe = join(dir, 'probe.cjs');
            writeFileSync(
                probe,
                "process.on('exit', () => process.stderr.write(`\\nhttp2 loaded: ${process.moduleLoadList.includes('NativeModule http2')}\\n`));"
            );
            const { client, server } = await startServer({
                CRYPTO_INTEL_CACHE_DIR: 'off',
                NODE_OPTIONS: `--require ${JSON.stringify(probe)}`
            });
            try {
                await client.listTools();
            } finally {
                await server.close();
            }
            expect(server.stderr).toContain('http2 loaded: false');
        } finally {
            rmSync(dir, { recursive: true, force: true });
        }
    });
});

describe.skipIf(!CLI_PATH.endsWith(join('dist', 'src', 'cli.js')))('the built CLI without its bundle (tsc alone)', () => {
    it('imports the modules one by one and serves the same tools', async () => {
        // Inside the project, so that its node_modules resolve as they do for dist/.
        const copy = mkdtempSync(join(ROOT, '.unbundled-'));
        try {
            for (const part of ['src', 'tools']) {
                cpSync(join(ROOT, 'dist', part), join(copy, 'dist', part), { recursive: true, filter: file => !file.endsWith('.map') });
            }
            cpSync(join(ROOT, 'package.json'), join(copy, 'package.json'));
            const child = spawn(process.execPath, [join(copy, 'dist', 'src', 'cli.js')], {
                env: { PATH: process.env.PATH ?? '', HOME: tmpdir(), CRYPTO_INTEL_CACHE_DIR: 'off', CRYPTO_INTEL_LOG_LEVEL: 'info' },
                stdio: ['pipe', 'pipe', 'pipe']
            });
            let stdout = '';
            let stderr = '';
            child.stdout.on('data', chunk => (stdout += String(chunk)));
            child.stderr.on('data', chunk => (stderr += String(chunk)));
            const exited = new Promise(resolve => child.on('exit', resolve));
            const messages = [
                {
                    jsonrpc: '2.0',
                    id: 1,
                    method: 'initialize',
                    params: { protocolVersion: '2025-06-18', capabilities: {}, clientInfo: { name: 't', version: '1' } }
                },
                { jsonrpc: '2.0', method: 'notifications/initialized' },
                { jsonrpc: '2.0', id: 2, method: 'tools/list', params: {} }
            ];
            child.stdin.write(messages.map(message => `${JSON.stringify(message)}\n`).join(''));
            child.stdin.end();
            await exited;
            const answers = stdout
                .trim()
                .split('\n')
                .map(line => JSON.parse(line) as { id?: number; result?: { tools?: Array<{ name: string }> } });
            const bundled = await startServer({ CRYPTO_INTEL_CACHE_DIR: 'off' });
            try {
                const { tools } = await bundled.client.listTools();
                expect(answers.find(answer => answer.id === 2)?.result?.tools?.map(tool => tool.name)).toEqual(
                    tools.map(tool => tool.name)
                );
            } finally {
                await bundled.server.close();
            }
            expect(stderr).toContain('"codeCache":"unbundled"');
        } finally {
            rmSync(copy, { recursive: true, force: true });
        }
    });
});
