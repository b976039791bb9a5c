import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, symlinkSync, unlinkSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { isAbsolute, join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { VERSION } from '../../src/version.js';
import { builtCli, childEnv, explain, npmMissing, ROOT, run } from './support.js';

/**
 * The npx / global-install path: `npm pack` ships the built dist/ (the `prepack` script builds it), and installing
 * the tarball needs no dev dependency (no `prepare` running `tsc` on the user's machine). The tarball is packed here
 * with --ignore-scripts from the dist/ that `npm test` just built, so the suite does not rebuild dist/ under the
 * other tests' feet; the scripts themselves are checked below. Installing needs the npm registry (or its cache).
 */
const skip = npmMissing();
if (skip) process.stderr.write(`test/packaging/npm-pack.test.ts: ${skip}\n`);

interface PackEntry {
    filename: string;
    files: Array<{ path: string }>;
}

let work: string;
let tarball: string;
let files: string[];

describe.skipIf(skip !== null)('npm package', () => {
    beforeAll(async () => {
        if (!existsSync(builtCli(ROOT))) throw new Error('dist/src/cli.js is missing: run `npm run build` (npm test does it first)');
        work = mkdtempSync(join(tmpdir(), 'cim-npm-pack-'));
        const packed = await run('npm', ['pack', '--ignore-scripts', '--json', '--pack-destination', work]);
        if (packed.code !== 0) throw new Error(explain('npm pack', packed));
        const entry = (JSON.parse(packed.stdout) as PackEntry[])[0]!;
        tarball = join(work, entry.filename);
        files = entry.files.map(file => file.path);
    }, 120_000);
    afterAll(() => {
        if (work) rmSync(work, { recursive: true, force: true });
    });

    it('builds on pack and before tests, never on install', () => {
        const { scripts } = JSON.parse(readFileSync(join(ROOT, 'package.json'), 'utf8')) as { scripts: Record<string, string> };
        expect(scripts.prepack).toBe('npm run build');
        expect(scripts.pretest).toBe('npm run build');
        for (const hook of ['prepare', 'preinstall', 'install', 'postinstall']) expect(scripts[hook], hook).toBeUndefined();
    });

    it('ships the built server and nothing of the tests or sources', () => {
        expect(files).toContain('dist/src/cli.js');
        // The bundle the entry point runs (scripts/bundle.mjs), without this machine's code cache.
        expect(files).toContain('dist/bundle/server.cjs');
        expect(files.filter(file => file.endsWith('.v8cache'))).toEqual([]);
        expect(files).toContain('dist/tools/index.js');
        expect(files).toContain('package.json');
        expect(
            files.filter(file => /^(src|test|tools|dist\/test|dist\/bench)\//.test(file) || file.endsWith('.map') || file.endsWith('.ts'))
        ).toEqual([]);
    });

    it('installs with --omit=dev into a temporary prefix and runs crypto-intel-mcp --version', async () => {
        const prefix = join(work, 'prefix');
        const installed = await run(
            'npm',
            ['install', '--global', '--prefix', prefix, '--omit=dev', '--no-audit', '--no-fund', '--prefer-offline', tarball],
            {
                cwd: work,
                timeoutMs: 240_000
            }
        );
        expect(installed.code, explain('npm install -g', installed)).toBe(0);
        const packageDir =
            process.platform === 'win32'
                ? join(prefix, 'node_modules', 'crypto-intel-mcp')
                : join(prefix, 'lib', 'node_modules', 'crypto-intel-mcp');
        for (const dev of ['typescript', 'vitest', '@anthropic-ai/mcpb'])
            expect(existsSync(join(packageDir, 'node_modules', dev)), dev).toBe(false);
        const bin = process.platform === 'win32' ? join(prefix, 'crypto-intel-mcp.cmd') : join(prefix, 'bin', 'crypto-intel-mcp');
        const version = await run(bin, ['--version'], { cwd: work, timeoutMs: 30_000 });
        expect(version.code, explain('crypto-intel-mcp --version', version)).toBe(0);
        expect(version.stdout).toBe(`${VERSION}\n`);
    }, 300_000);

    it('runs through npx from the tarball, as the client configurations in the README do', async () => {
        // npx installs into <npm cache>/_npx/<hash>. It gets a cache directory of its own in the test's folder, so that
        // install (and npm's logs) never lands in the user's cache, nor meets another run's; that directory's package
        // store is a link to the user's, so the dependencies still come from there, as --prefer-offline asks.
        const cache = (await run('npm', ['config', 'get', 'cache'], { cwd: work })).stdout.trim();
        expect(isAbsolute(cache), `npm config get cache: ${cache}`).toBe(true);
        const store = join(cache, '_cacache');
        const npxCache = join(work, 'npx-cache');
        const link = join(npxCache, '_cacache');
        mkdirSync(store, { recursive: true });
        mkdirSync(npxCache);
        symlinkSync(store, link, 'junction');
        try {
            const ran = await run('npx', ['-y', '--prefer-offline', `--package=${tarball}`, 'crypto-intel-mcp', '--version'], {
                cwd: work,
                env: childEnv({ npm_config_cache: npxCache }),
                timeoutMs: 240_000
            });
            expect(ran.code, explain('npx --package=<tarball> crypto-intel-mcp --version', ran)).toBe(0);
            expect(ran.stdout.trim().split('\n').at(-1)).toBe(VERSION);
        } finally {
            // The link goes first, on its own: nothing may ever delete through it into the user's package store.
            unlinkSync(link);
        }
    }, 300_000);
});
