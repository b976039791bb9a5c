import { spawnSync } from 'node:child_process';
import { chmodSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { loadConfig } from '../../src/config.js';
import { keysCommand } from '../../src/keys/command.js';
import { FakeClock } from '../helpers/clock.js';
import { CLI_PATH } from '../helpers/server-process.js';
import { keyWindows } from './support.js';

const PROD_1 = 'tm-Sa3Dg8Hj1Kl5-9f2c';
const PROD_2 = 'tm-Zx6Cv2Bn7Mq4-77b1';
const OLD = 'tm-Qw9Er4Ty2Ui8-0ld0';
const CI = 'tm-Op5As1Df6Gh3-c1c1';

const dirs: string[] = [];
afterEach(() => {
    for (const dir of dirs.splice(0)) rmSync(dir, { recursive: true, force: true });
});

function setup(): { dir: string; keyFile: string; cacheDir: string; env: Record<string, string> } {
    const dir = mkdtempSync(join(tmpdir(), 'cim-keys-cmd-'));
    dirs.push(dir);
    const keyFile = join(dir, 'keys.txt');
    writeFileSync(
        keyFile,
        [
            '# production keys',
            `${PROD_2} label=prod-2 not-before=2026-12-01 expires=2027-06-30`,
            `${PROD_1} label=prod-1 expires=2026-11-30`,
            `${OLD} label=old expires=2026-11-01`,
            ''
        ].join('\n'),
        { mode: 0o600 }
    );
    const cacheDir = join(dir, 'cache');
    return {
        dir,
        keyFile,
        cacheDir,
        env: { TOKEN_METRICS_API_KEYS: `ci:${CI}`, TOKEN_METRICS_API_KEY_FILE: keyFile, CRYPTO_INTEL_CACHE_DIR: cacheDir }
    };
}

function run(env: Record<string, string>): { code: number; out: string } {
    const command = loadConfig(env, ['keys']);
    if (command.kind !== 'keys') throw new Error(`expected the keys command, got ${command.kind}`);
    let out = '';
    const code = keysCommand(command.config, { write: text => (out += text), clock: new FakeClock() });
    return { code, out };
}

describe('crypto-intel-mcp keys', () => {
    it('prints each key with label, source, state, dates, credits this month and last audit event', () => {
        const { cacheDir, env } = setup();
        mkdirSync(cacheDir, { recursive: true });
        writeFileSync(
            join(cacheDir, 'usage-v1.json'),
            JSON.stringify({
                version: 1,
                months: { '2026-11': { credits: { 'tm-…9f2c': 1234, 'tm-…c1c1': 7 }, cache: {}, warned: [] } },
                days: {},
                lastSuccess: {}
            })
        );
        writeFileSync(
            join(cacheDir, 'audit.log'),
            [
                { time: '2026-11-25T09:00:00.000Z', event: 'loaded', fingerprint: 'tm-…c1c1', label: 'ci' },
                { time: '2026-11-25T10:00:00.000Z', event: 'set-aside', fingerprint: 'tm-…c1c1', label: 'ci', status: 401 },
                { time: '2026-11-25T11:30:00.000Z', event: 'first-used', fingerprint: 'tm-…9f2c', label: 'prod-1' }
            ]
                .map(line => `${JSON.stringify(line)}\n`)
                .join('')
        );
        const { code, out } = run(env);
        expect(code).toBe(0);
        expect(out.split('\n').slice(0, 6)).toEqual([
            expect.stringMatching(/^crypto-intel-mcp \S+ keys · 4 keys, 2 usable now · key file .*keys\.txt · 2026-11-25 12:00 UTC$/),
            'FINGERPRINT  LABEL   SOURCE       STATE           NOT BEFORE  EXPIRES     CREDITS 2026-11  LAST EVENT',
            'tm-…c1c1     ci      environment  active          -           -           7                set-aside 401, 2 h ago',
            'tm-…77b1     prod-2  key file     not-yet-valid   2026-12-01  2027-06-30  0                -',
            'tm-…9f2c     prod-1  key file     expiring (5 d)  -           2026-11-30  1,234            first-used, 30 min ago',
            'tm-…0ld0     old     key file     expired         -           2026-11-01  0                -'
        ]);
        expect(out).toContain('! API key expires in 5 day(s): add its successor to the key file (key tm-…9f2c, label prod-1)');
        for (const window of keyWindows(PROD_1, PROD_2, OLD, CI)) expect(out).not.toContain(window);
    });

    it('prints n/a for credits without a usage file', () => {
        const { env } = setup();
        const { code, out } = run(env);
        expect(code).toBe(0);
        expect(out).toMatch(/tm-…9f2c +prod-1 +key file +expiring \(5 d\) +- +2026-11-30 +n\/a +-/);
        expect(out).toContain('credits: n/a (no usage file yet');
    });

    it('exits 1 when no key is usable now, 2 without any key', () => {
        const { keyFile } = setup();
        writeFileSync(keyFile, `${OLD} expires=2026-11-01\n`);
        expect(run({ TOKEN_METRICS_API_KEY_FILE: keyFile, CRYPTO_INTEL_CACHE_DIR: 'off' }).code).toBe(1);
        const none = run({ CRYPTO_INTEL_CACHE_DIR: 'off' });
        expect(none.code).toBe(2);
        expect(none.out).toContain('no Token Metrics API key is configured');
    });

    it.skipIf(process.platform === 'win32')('refuses a group-readable key file with the chmod command, unless allowed', () => {
        const { keyFile, env } = setup();
        chmodSync(keyFile, 0o640);
        const refused = run(env);
        expect(refused.code).toBe(2);
        expect(refused.out).toBe(
            `crypto-intel-mcp keys: API key file ${keyFile} is readable by other users (mode 640): refused. Fix it with: chmod 600 ${keyFile} ` +
                '(or set CRYPTO_INTEL_ALLOW_SHARED_KEY_FILE=1 to use it anyway)\n'
        );
        const allowed = run({ ...env, CRYPTO_INTEL_ALLOW_SHARED_KEY_FILE: '1' });
        expect(allowed.code).toBe(0);
        expect(allowed.out).toContain('! API key file is readable by other users; using it because CRYPTO_INTEL_ALLOW_SHARED_KEY_FILE=1');
    });

    it('runs from the built CLI without touching the network, and the server refuses a shared key file at start-up', () => {
        const { keyFile, env } = setup();
        const base = {
            PATH: process.env.PATH ?? '',
            HOME: process.env.HOME ?? '/tmp',
            TOKEN_METRICS_BASE_URL: 'http://127.0.0.1:9/v2',
            ...env
        };
        const keys = spawnSync(process.execPath, [CLI_PATH, 'keys'], { env: base, encoding: 'utf8', timeout: 20_000 });
        expect(keys.status).toBe(0);
        expect(keys.stdout).toContain('tm-…9f2c     prod-1');
        expect(keys.stderr).toBe('');
        if (process.platform === 'win32') return;
        chmodSync(keyFile, 0o644);
        const server = spawnSync(process.execPath, [CLI_PATH], { env: base, encoding: 'utf8', timeout: 20_000, input: '' });
        expect(server.status).toBe(1);
        expect(server.stdout).toBe('');
        expect(server.stderr).toContain(`readable by other users (mode 644): refused. Fix it with: chmod 600 ${keyFile}`);
    });
});
