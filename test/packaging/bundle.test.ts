import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { StdioClientTransport } from '@modelcontextprotocol/sdk/client/stdio.js';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { FakeUpstream } from '../fake-upstream/index.js';
import { builtCli, explain, MCPB_CLI, npmMissing, ROOT, run } from './support.js';

/**
 * The Claude Desktop bundle as a user gets it: `mcpb/pack.mjs` (what `npm run pack:mcpb` runs after the build) stages
 * the built server with production dependencies only (`npm ci --omit=dev`: needs the npm registry or its cache), then
 * the official mcpb tool validates and packs it; the bundle is unpacked into a temporary folder and started from there.
 */
const skip = npmMissing();
if (skip) process.stderr.write(`test/packaging/bundle.test.ts: ${skip}\n`);

interface Manifest {
    version: string;
    icon: string;
    server: { type: string; entry_point: string; mcp_config: { command: string; args: string[]; env: Record<string, string> } };
    tools: Array<{ name: string }>;
    prompts: Array<{ name: string; text: string }>;
    user_config: Record<string, { type: string; sensitive?: boolean; required?: boolean }>;
}

const KEY = 'tm-Bundle7Kq2Xw9-5e5e';
let work: string;
let bundle: string;
let packed: Awaited<ReturnType<typeof run>>;

describe.skipIf(skip !== null)('Claude Desktop bundle (mcpb)', () => {
    beforeAll(async () => {
        if (!existsSync(builtCli(ROOT))) throw new Error('dist/src/cli.js is missing: run `npm run build` (npm test does it first)');
        work = mkdtempSync(join(tmpdir(), 'cim-bundle-test-'));
        bundle = join(work, 'crypto-intel-mcp.mcpb');
        packed = await run(process.execPath, [join(ROOT, 'mcpb', 'pack.mjs'), '--out', bundle]);
    }, 300_000);
    afterAll(() => {
        if (work) rmSync(work, { recursive: true, force: true });
    });

    it('declares the server, the key as a keychain secret, the tools and prompts, mapped to the environment', () => {
        const manifest = JSON.parse(readFileSync(join(ROOT, 'mcpb', 'manifest.json'), 'utf8')) as Manifest;
        const pkg = JSON.parse(readFileSync(join(ROOT, 'package.json'), 'utf8')) as { version: string; bin: Record<string, string> };
        expect(manifest.version).toBe(pkg.version);
        expect(manifest.server).toMatchObject({ type: 'node', entry_point: pkg.bin['crypto-intel-mcp'] });
        expect(manifest.server.mcp_config).toEqual({
            command: 'node',
            args: ['${__dirname}/dist/src/cli.js'],
            env: {
                TOKEN_METRICS_API_KEY: '${user_config.api_key}',
                TOKEN_METRICS_API_KEYS: '${user_config.extra_api_keys}',
                CRYPTO_INTEL_MONTHLY_CREDITS: '${user_config.monthly_credits}',
                CRYPTO_INTEL_CACHE_DIR: '${user_config.cache_dir}'
            }
        });
        expect(manifest.user_config.api_key).toMatchObject({ type: 'string', sensitive: true, required: true });
        expect(manifest.user_config.extra_api_keys).toMatchObject({ type: 'string', sensitive: true, required: false });
        expect(manifest.user_config.monthly_credits).toMatchObject({ type: 'number', required: false });
        expect(manifest.user_config.cache_dir).toMatchObject({ type: 'directory', required: false });
        expect(manifest.tools.map(tool => tool.name)).toEqual(['get_price', 'get_grades', 'list_moonshots', 'explain_signal', 'get_usage']);
        expect(manifest.prompts.map(prompt => prompt.name)).toEqual(['token_briefing', 'moonshot_scan', 'compare_tokens']);
        expect(
            readFileSync(join(ROOT, 'mcpb', manifest.icon))
                .subarray(1, 4)
                .toString('ascii')
        ).toBe('PNG');
    });

    it('passes mcpb validate', async () => {
        const validated = await run(process.execPath, [MCPB_CLI, 'validate', join(ROOT, 'mcpb', 'manifest.json')]);
        expect(validated.code, explain('mcpb validate', validated)).toBe(0);
        expect(validated.stdout).toContain('Manifest schema validation passes!');
    });

    it('builds the bundle with production dependencies only', async () => {
        expect(packed.code, explain('mcpb/pack.mjs', packed)).toBe(0);
        expect(existsSync(bundle)).toBe(true);
        const info = await run(process.execPath, [MCPB_CLI, 'info', bundle]);
        expect(info.code, explain('mcpb info', info)).toBe(0);
    });

    it('unpacks into a temporary folder and serves tools/list and a tool call over stdio from there', async () => {
        expect(packed.code, explain('mcpb/pack.mjs', packed)).toBe(0);
        const dir = join(work, 'unpacked');
        const unpacked = await run(process.execPath, [MCPB_CLI, 'unpack', bundle, dir]);
        expect(unpacked.code, explain('mcpb unpack', unpacked)).toBe(0);
        const manifest = JSON.parse(readFileSync(join(dir, 'manifest.json'), 'utf8')) as Manifest;
        for (const present of ['@modelcontextprotocol/sdk', 'zod', 'undici', 'lru-cache', 'ioredis'])
            expect(existsSync(join(dir, 'node_modules', present))).toBe(true);
        for (const dev of ['typescript', 'vitest', '@anthropic-ai/mcpb', 'eslint', 'fast-check'])
            expect(existsSync(join(dir, 'node_modules', dev)), dev).toBe(false);
        expect(existsSync(join(dir, 'dist', 'test'))).toBe(false);
        expect(existsSync(join(dir, 'dist', 'bundle', 'server.cjs'))).toBe(true);

        const fake = await FakeUpstream.start();
        // As Claude Desktop starts it: the manifest's command and args with ${__dirname} filled in; the key from the
        // keychain; optional settings the user left empty arrive as unresolved placeholders in some client versions.
        const env: Record<string, string> = {
            PATH: process.env.PATH ?? '',
            HOME: process.env.HOME ?? tmpdir(),
            ...manifest.server.mcp_config.env,
            TOKEN_METRICS_API_KEY: KEY,
            CRYPTO_INTEL_CACHE_DIR: join(work, 'cache'),
            TOKEN_METRICS_BASE_URL: fake.baseUrl
        };
        const transport = new StdioClientTransport({
            command: process.execPath,
            args: manifest.server.mcp_config.args.map(arg => arg.replace('${__dirname}', dir)),
            env,
            cwd: dir,
            stderr: 'pipe'
        });
        let stderr = '';
        transport.stderr?.on('data', chunk => (stderr += String(chunk)));
        const client = new Client({ name: 'bundle-test', version: '1.0.0' });
        try {
            await client.connect(transport);
            const { tools } = await client.listTools();
            expect(tools.map(tool => tool.name).sort()).toEqual(manifest.tools.map(tool => tool.name).sort());
            const { prompts } = await client.listPrompts();
            expect(prompts.map(prompt => prompt.name).sort()).toEqual(manifest.prompts.map(prompt => prompt.name).sort());
            const price = await client.callTool({ name: 'get_price', arguments: { symbols: ['BTC'] } });
            expect(price.isError ?? false, JSON.stringify(price.content)).toBe(false);
            expect(fake.calls.length).toBeGreaterThan(0);
        } finally {
            await client.close();
            await fake.close();
        }
        expect(stderr).not.toContain(KEY.slice(3, 11));
        expect(stderr).toContain('ready on stdio');
    }, 60_000);
});
