import { mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { FileAuditLog } from '../../src/audit/audit-log.js';
import { loadConfig } from '../../src/config.js';
import { Redactor } from '../../src/redact.js';
import { FakeUpstream } from '../fake-upstream/index.js';
import { FakeClock } from '../helpers/clock.js';
import { keyWindows, managedClient, memoryLogger, tempKeyFile, type ManagedClient, type TempKeyFile } from './support.js';
import { PRICES } from '../../src/endpoints/registry.js';

// The FakeClock starts at 2026-11-25T12:00:00Z.
const OLD = 'tm-Rb8Wn3Kd6Pa1-01d1';
const NEW = 'tm-Fy2Mc7Tq4Lh9-0e2e';
const fp = (key: string) => `tm-…${key.slice(-4)}`;

let fake: FakeUpstream;
const dirs: string[] = [];
const open: Array<ManagedClient | TempKeyFile> = [];

beforeAll(async () => {
    fake = await FakeUpstream.start();
});
afterAll(async () => {
    await fake.close();
});
afterEach(async () => {
    for (const item of open.splice(0)) {
        if ('cleanup' in item) item.cleanup();
        else await item.close();
    }
    for (const dir of dirs.splice(0)) rmSync(dir, { recursive: true, force: true });
    fake.reset();
});

function tempDir(): string {
    const dir = mkdtempSync(join(tmpdir(), 'cim-audit-'));
    dirs.push(dir);
    return dir;
}

const readLines = (path: string): Array<Record<string, unknown>> =>
    readFileSync(path, 'utf8')
        .split('\n')
        .filter(line => line !== '')
        .map(line => JSON.parse(line) as Record<string, unknown>);

describe('audit trail', () => {
    it('records every event of a scripted rotation (add, take over, remove) by fingerprint and label, never the key', async () => {
        const dir = tempDir();
        const path = join(dir, 'cache', 'audit.log');
        const clock = new FakeClock();
        const redactor = new Redactor();
        const log = memoryLogger('debug', redactor);
        const audit = new FileAuditLog({ path, logger: log.logger, scrub: text => redactor.scrub(text) });
        const file = tempKeyFile([`${OLD} label=old-key expires=2026-11-29`]);
        open.push(file);
        const managed = managedClient(fake, { keyFile: file.path, clock, redactor, logger: log.logger, audit });
        open.push(managed);
        const { client, keys } = managed;

        // 1. The old key serves, and is rate limited once.
        await client.get(PRICES, { ids: [3375] });
        fake.inject({ fault: { kind: 'rate-limit', retryAfter: '2' }, key: OLD, times: 1 });
        await client.get(PRICES, { ids: [3306] });
        // 2. Add the new key, valid from 2026-11-27: the old one keeps serving until then.
        file.replace([`${NEW} label=new-key not-before=2026-11-27`, `${OLD} label=old-key expires=2026-11-29`]);
        clock.advance(1_000);
        await client.get(PRICES, { ids: [3375] });
        expect(fake.log().at(-1)).toBe(`/price ${fp(OLD)} -> 200`);
        // 3. 2026-11-27: the new key takes over, without a file change or a restart.
        clock.advance(Date.parse('2026-11-27T00:00:00Z') - clock.now());
        await client.get(PRICES, { ids: [3306] });
        expect(fake.log().at(-1)).toBe(`/price ${fp(NEW)} -> 200`);
        // 4. The upstream rejects the new key for a while: set aside, the old key serves again.
        fake.revoke(NEW);
        await client.get(PRICES, { ids: [3375] });
        expect(fake.log().slice(-2)).toEqual([`/price ${fp(NEW)} -> 401`, `/price ${fp(OLD)} -> 200`]);
        // 5. The old key's expiry passes.
        clock.advance(Date.parse('2026-11-30T00:00:00Z') - clock.now());
        expect(keys.describeKeys().map(key => key.state)).toEqual(['rejected', 'expired']);
        // 6. The new key works again and the old one is removed from the file: the new key is restored.
        fake.reset();
        file.replace([`${NEW} label=new-key not-before=2026-11-27`]);
        clock.advance(1_000);
        await client.get(PRICES, { ids: [3306] });
        expect(fake.log()).toEqual([`/price ${fp(NEW)} -> 200`]);
        // 7. Usage accounting reports a quota warning.
        keys.noteQuotaWarning({ fingerprint: fp(NEW), used: 800, quota: 1000, threshold: 80 });

        const lines = readLines(path);
        expect(lines.map(line => [line.event, line.fingerprint, line.label])).toEqual([
            ['loaded', fp(OLD), 'old-key'],
            ['expiring', fp(OLD), 'old-key'],
            ['first-used', fp(OLD), 'old-key'],
            ['rate-limited', fp(OLD), 'old-key'],
            ['restored', fp(OLD), 'old-key'],
            ['loaded', fp(NEW), 'new-key'],
            ['expiring', fp(OLD), 'old-key'],
            ['first-used', fp(NEW), 'new-key'],
            ['set-aside', fp(NEW), 'new-key'],
            ['expired', fp(OLD), 'old-key'],
            ['removed', fp(OLD), 'old-key'],
            ['restored', fp(NEW), 'new-key'],
            ['quota-warning', fp(NEW), 'new-key']
        ]);
        for (const line of lines) {
            expect(line.time).toMatch(/^2026-11-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$/);
            expect(line.pid).toBe(process.pid);
        }
        expect(lines[0]).toMatchObject({
            source: 'key file',
            line: 1,
            notBefore: null,
            expiresAt: '2026-11-30T00:00:00.000Z',
            validNow: true
        });
        expect(lines[3]).toMatchObject({ status: 429, until: '2026-11-25T12:00:02.000Z' });
        expect(lines[4]).toMatchObject({ after: 'rate-limited' });
        expect(lines[5]).toMatchObject({ notBefore: '2026-11-27T00:00:00.000Z', validNow: false });
        expect(lines[6]).toMatchObject({ time: '2026-11-27T00:00:00.000Z', daysLeft: 3 });
        expect(lines[8]).toMatchObject({ reason: 'rejected as invalid or revoked' });
        expect([401, null]).toContain(lines[8]!.status);
        expect(lines[11]).toMatchObject({ after: 'revoked' });
        expect(lines[12]).toMatchObject({ used: 800, quota: 1000, threshold: 80 });

        const text = readFileSync(path, 'utf8');
        for (const window of keyWindows(OLD, NEW)) expect(text).not.toContain(window);
        if (process.platform !== 'win32') expect(statSync(path).mode & 0o777).toBe(0o600);
    });

    it('rotates the file past its size bound, keeping one predecessor', () => {
        const dir = tempDir();
        const path = join(dir, 'audit.log');
        const { logger } = memoryLogger();
        const audit = new FileAuditLog({ path, logger, maxBytes: 4096 });
        for (let i = 0; i < 100; i++)
            audit.record({ event: 'first-used', fingerprint: 'tm-…abcd', label: `n${i}` }, Date.parse('2026-11-25T12:00:00Z'));
        expect(statSync(path).size).toBeLessThanOrEqual(4096);
        expect(statSync(`${path}.1`).size).toBeLessThanOrEqual(4096);
        const labels = [...readLines(`${path}.1`), ...readLines(path)].map(line => line.label);
        expect(labels.at(-1)).toBe('n99');
        // One rotation only: the oldest events are gone, the rest are in order.
        expect(labels).toEqual(labels.slice().sort((a, b) => Number(String(a).slice(1)) - Number(String(b).slice(1))));
        expect(labels.length).toBeLessThan(100);
    });

    it('tightens an existing file to 0600 and warns once when it cannot write', () => {
        const dir = tempDir();
        const path = join(dir, 'audit.log');
        writeFileSync(path, '', { mode: 0o644 });
        const log = memoryLogger();
        new FileAuditLog({ path, logger: log.logger }).record({ event: 'loaded', fingerprint: 'tm-…abcd', label: null }, 0);
        if (process.platform !== 'win32') expect(statSync(path).mode & 0o777).toBe(0o600);

        const blocked = join(dir, 'audit.log', 'nested.log'); // a file where a directory should be
        const broken = new FileAuditLog({ path: blocked, logger: log.logger });
        for (let i = 0; i < 3; i++) broken.record({ event: 'loaded', fingerprint: 'tm-…abcd', label: null }, 0);
        expect(log.find('audit log cannot be written')).toHaveLength(1);
    });

    it('lives in the cache directory by default, follows CRYPTO_INTEL_AUDIT_LOG, and is off with the cache', () => {
        const config = (env: Record<string, string>) => {
            const command = loadConfig(env, []);
            if (command.kind !== 'run') throw new Error('unexpected command');
            return command.config;
        };
        expect(config({ CRYPTO_INTEL_CACHE_DIR: '/var/cache/cim' }).auditLog).toBe(join('/var/cache/cim', 'audit.log'));
        expect(config({ CRYPTO_INTEL_CACHE_DIR: 'off' }).auditLog).toBeNull();
        expect(config({ CRYPTO_INTEL_CACHE_DIR: 'off', CRYPTO_INTEL_AUDIT_LOG: '/var/log/cim-audit.log' }).auditLog).toBe(
            '/var/log/cim-audit.log'
        );
        expect(config({ CRYPTO_INTEL_CACHE_DIR: '/var/cache/cim', CRYPTO_INTEL_AUDIT_LOG: 'off' }).auditLog).toBeNull();
        expect(config({}).allowSharedKeyFile).toBe(false);
        expect(config({ CRYPTO_INTEL_ALLOW_SHARED_KEY_FILE: '1' }).allowSharedKeyFile).toBe(true);
        expect(() => config({ CRYPTO_INTEL_ALLOW_SHARED_KEY_FILE: 'maybe' })).toThrow('CRYPTO_INTEL_ALLOW_SHARED_KEY_FILE must be 1 or 0');
    });
});
