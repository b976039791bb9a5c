import { chmodSync, mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterEach, describe, expect, it, vi } from 'vitest';
import { KeyFileRefusedError } from '../../src/keys/key-file.js';
import { KeyManager, type KeyManagerOptions } from '../../src/keys/manager.js';
import { Redactor } from '../../src/redact.js';
import { FakeClock } from '../helpers/clock.js';
import { memoryLogger, tempKeyFile, type MemoryLog, type TempKeyFile } from './support.js';

// Realistic keys share no 8-character run (the Redactor scrubs any such run, naming the first key that has it).
const ENV_KEY = 'tm-8f3kQz1Lw7Vn-e001';
const OLD = 'tm-Xc4Rt9Yp2Bm6-0a01';
const NEW = 'tm-Hd5Js8Gk3Nq1-0b02';
const OTHER = 'tm-Wu7Ea2Fo6Ci4-0c03';

const files: TempKeyFile[] = [];
const managers: KeyManager[] = [];

afterEach(() => {
    for (const manager of managers.splice(0)) manager.close();
    for (const file of files.splice(0)) file.cleanup();
    vi.unstubAllEnvs();
});

function keyFile(lines?: readonly string[]): TempKeyFile {
    const file = tempKeyFile(lines);
    files.push(file);
    return file;
}

interface Managed {
    keys: KeyManager;
    clock: FakeClock;
    log: MemoryLog;
    redactor: Redactor;
}

function manager(options: Partial<KeyManagerOptions> & { log?: MemoryLog } = {}): Managed {
    const redactor = options.redactor ?? new Redactor();
    const log = options.log ?? memoryLogger('debug');
    const clock = (options.clock as FakeClock | undefined) ?? new FakeClock();
    const keys = new KeyManager({ envKeys: [], keyFile: null, watch: false, ...options, redactor, logger: log.logger, clock });
    managers.push(keys);
    return { keys, clock, log, redactor };
}

/** The key `choose` hands out now, or the kind of answer when it is not a key. */
function chosen(keys: KeyManager, clock: FakeClock): string {
    const choice = keys.choose(clock.now());
    return choice.kind === 'key' ? choice.key : choice.kind;
}

describe('KeyManager: sources', () => {
    it('puts environment keys first, then the file keys, and registers every key with the Redactor', () => {
        const file = keyFile(['# rotated monthly', NEW, ENV_KEY, '', OTHER]);
        const { keys, redactor, log } = manager({ envKeys: [ENV_KEY], keyFile: file.path });
        expect(keys.describe()).toEqual({ configured: 3, usable: 3, fingerprints: ['tm-…e001', 'tm-…0b02', 'tm-…0c03'] });
        for (const key of [ENV_KEY, NEW, OTHER]) expect(redactor.scrub(`x-api-key: ${key}`)).toBe(`x-api-key: tm-…${key.slice(-4)}`);
        expect(log.find('API keys loaded')[0]).toMatchObject({
            level: 'info',
            keys: 3,
            fromEnvironment: 1,
            fromFile: 3,
            fingerprints: 'tm-…e001, tm-…0b02, tm-…0c03'
        });
    });

    it('warns once by fingerprint about odd keys, never printing them, even across reloads', () => {
        const odd = 'sk-looks-wrong-5555';
        const spaced = 'tm-two-words-here 6666';
        const file = keyFile([odd, spaced, NEW]);
        const { keys, clock, log, redactor } = manager({ keyFile: file.path });
        expect(keys.describe().fingerprints).toEqual(['tm-…5555', 'tm-…0b02']);
        file.write([odd, spaced, NEW, OTHER]);
        clock.advance(1_000);
        expect(keys.describe().configured).toBe(3);
        const warnings = log.find('API key');
        expect(warnings.filter(entry => entry.level === 'warn').map(entry => [entry.key, entry.line])).toEqual([
            ['tm-…5555', 1],
            ['tm-…6666', 2]
        ]);
        expect(log.find('does not look like')).toHaveLength(1);
        expect(log.find('contains whitespace')).toHaveLength(1);
        expect(redactor.scrub(spaced)).toBe('tm-…6666');
        expect(log.text()).not.toContain('looks-wrong');
        expect(log.text()).not.toContain('two-words');
    });

    it('warns once about a missing key file and keeps serving the environment keys', () => {
        const { keys, clock, log } = manager({ envKeys: [ENV_KEY], keyFile: join(keyFile().path, '..', 'absent.txt') });
        for (let i = 0; i < 5; i++) {
            expect(chosen(keys, clock)).toBe(ENV_KEY);
            clock.advance(1_000);
        }
        expect(log.find('does not exist')).toHaveLength(1);
        expect(log.find('does not exist')[0]).toMatchObject({ level: 'warn' });
    });

    it('answers no-keys without a key, then picks the key file up as soon as it appears', () => {
        const file = keyFile();
        const { keys, clock, log } = manager({ keyFile: file.path });
        expect(chosen(keys, clock)).toBe('none');
        expect(log.find('No Token Metrics API key configured')).toHaveLength(1);
        file.write([NEW]);
        // No clock advance: a call that would fail for want of a key looks at the file first.
        expect(chosen(keys, clock)).toBe(NEW);
    });

    it('expands ~/ in the key file path', () => {
        const file = keyFile([NEW]);
        vi.stubEnv('HOME', join(file.path, '..'));
        const { keys } = manager({ keyFile: '~/keys.txt' });
        expect(keys.describe().fingerprints).toEqual(['tm-…0b02']);
    });

    it.skipIf(process.platform === 'win32')('refuses a key file readable by group or others, naming the exact chmod command', () => {
        const file = keyFile([NEW]);
        for (const mode of [0o640, 0o604, 0o644]) {
            chmodSync(file.path, mode);
            expect(() => manager({ keyFile: file.path })).toThrow(KeyFileRefusedError);
            expect(() => manager({ keyFile: file.path })).toThrow(
                `API key file ${file.path} is readable by other users (mode ${mode.toString(8)}): refused. Fix it with: chmod 600 ${file.path} `
            );
        }
    });

    it.skipIf(process.platform === 'win32')('uses a shared key file with CRYPTO_INTEL_ALLOW_SHARED_KEY_FILE, warning once', () => {
        const file = keyFile([NEW]);
        chmodSync(file.path, 0o644);
        const { keys, clock, log } = manager({ keyFile: file.path, allowSharedKeyFile: true });
        file.write([NEW, OTHER]);
        clock.advance(1_000);
        expect(chosen(keys, clock)).toBe(NEW);
        expect(keys.describe().configured).toBe(2);
        expect(log.find('readable by other users')).toEqual([expect.objectContaining({ level: 'warn', mode: '644' })]);
    });

    it.skipIf(process.platform === 'win32')('quotes a key file path with spaces in the chmod command', () => {
        const file = keyFile();
        const spaced = join(file.path, '..', "my keys's.txt");
        writeFileSync(spaced, `${NEW}\n`, { mode: 0o644 });
        chmodSync(spaced, 0o644);
        expect(() => manager({ keyFile: spaced })).toThrow(`chmod 600 '${join(file.path, '..')}/my keys'\\''s.txt'`);
    });

    it.skipIf(process.platform === 'win32')('keeps its keys when the file turns readable by others at run time, until it is fixed', () => {
        const file = keyFile([OLD]);
        const { keys, clock, log } = manager({ keyFile: file.path });
        file.write([NEW]);
        chmodSync(file.path, 0o644);
        clock.advance(1_000);
        expect(chosen(keys, clock)).toBe(OLD);
        clock.advance(1_000);
        expect(chosen(keys, clock)).toBe(OLD);
        expect(log.find('chmod 600')).toHaveLength(1);
        chmodSync(file.path, 0o600);
        clock.advance(1_000);
        expect(chosen(keys, clock)).toBe(NEW);
    });

    it('refuses a directory or an oversized file as a key file, with a warning', () => {
        const file = keyFile();
        mkdirSync(file.path);
        const big = join(file.path, '..', 'big.txt');
        writeFileSync(big, `${NEW}\n`.repeat(5_000));
        expect(manager({ keyFile: file.path }).log.find('not a regular file')).toHaveLength(1);
        const oversized = manager({ keyFile: big });
        expect(oversized.log.find('is over')).toHaveLength(1);
        expect(oversized.keys.describe().configured).toBe(0);
    });
});

describe('KeyManager: rotation', () => {
    it('re-reads a changed file at most once per recheck interval', () => {
        const file = keyFile([OLD]);
        const { keys, clock } = manager({ keyFile: file.path, recheckMs: 1_000 });
        file.write([NEW]);
        clock.advance(999);
        expect(chosen(keys, clock)).toBe(OLD);
        clock.advance(1);
        expect(chosen(keys, clock)).toBe(NEW);
    });

    it('sees a file replaced by rename, and logs added and removed keys by fingerprint', () => {
        const file = keyFile([OLD]);
        const { keys, clock, log } = manager({ keyFile: file.path });
        file.replace([OLD, NEW]);
        clock.advance(1_000);
        expect(keys.describe().fingerprints).toEqual(['tm-…0a01', 'tm-…0b02']);
        file.replace([NEW]);
        clock.advance(1_000);
        expect(chosen(keys, clock)).toBe(NEW);
        expect(log.find('reloaded').map(entry => [entry.added, entry.removed, entry.keys])).toEqual([
            ['tm-…0b02', '', 2],
            ['', 'tm-…0a01', 1]
        ]);
        expect(log.text()).not.toContain('file-old-key');
    });

    it('still scrubs a rotated-out key', () => {
        const file = keyFile([OLD]);
        const { keys, clock } = manager({ keyFile: file.path });
        file.write([NEW]);
        clock.advance(1_000);
        expect(keys.describe().fingerprints).toEqual(['tm-…0b02']);
        expect(keys.scrub(`echo ${OLD} and ${NEW}`)).toBe('echo tm-…0a01 and tm-…0b02');
    });

    it('does not reload for an edit that leaves the keys as they were', () => {
        const file = keyFile([OLD]);
        const { keys, clock, log } = manager({ keyFile: file.path });
        file.write(['# a comment', OLD]);
        clock.advance(1_000);
        expect(chosen(keys, clock)).toBe(OLD);
        expect(log.find('reloaded')).toEqual([]);
    });

    it('keeps the previous keys when the file disappears or is emptied, warning once each', () => {
        const file = keyFile([OLD]);
        const { keys, clock, log } = manager({ keyFile: file.path });
        file.remove();
        for (let i = 0; i < 3; i++) {
            clock.advance(1_000);
            expect(chosen(keys, clock)).toBe(OLD);
        }
        file.write([]);
        for (let i = 0; i < 3; i++) {
            clock.advance(1_000);
            expect(chosen(keys, clock)).toBe(OLD);
        }
        file.write([NEW]);
        clock.advance(1_000);
        expect(chosen(keys, clock)).toBe(NEW);
        expect(log.find('does not exist')).toHaveLength(1);
        expect(log.find('has no key')).toHaveLength(1);
        expect(log.find('keeping the keys already loaded')).toHaveLength(2);
    });

    it('looks at the file right away when a key is revoked, without waiting for the interval', () => {
        const file = keyFile([OLD]);
        const { keys, clock } = manager({ keyFile: file.path, recheckMs: 60_000 });
        expect(chosen(keys, clock)).toBe(OLD);
        file.write([NEW]);
        keys.report(OLD, { kind: 'revoked' }, clock.now());
        expect(chosen(keys, clock)).toBe(NEW);
    });

    it('keeps a cool-down across a reload, so a rate-limited key is not hammered again', () => {
        const file = keyFile([OLD, NEW]);
        const { keys, clock } = manager({ keyFile: file.path });
        keys.report(OLD, { kind: 'rate-limited', untilMs: clock.now() + 30_000 }, clock.now());
        file.write([OLD, NEW, OTHER]);
        clock.advance(1_000);
        expect(chosen(keys, clock)).toBe(NEW);
        expect(keys.describe()).toEqual({ configured: 3, usable: 2, fingerprints: ['tm-…0a01', 'tm-…0b02', 'tm-…0c03'] });
        expect(keys.stats().map(stat => [stat.fingerprint, stat.rateLimited])).toEqual([
            ['tm-…0a01', 1],
            ['tm-…0b02', 0],
            ['tm-…0c03', 0]
        ]);
    });

    it('with the watch on, sees an edit before the recheck interval is up', async () => {
        const file = keyFile([OLD]);
        const { keys, clock } = manager({ keyFile: file.path, recheckMs: 3_600_000, watch: true });
        expect(chosen(keys, clock)).toBe(OLD);
        file.replace([NEW]);
        await vi.waitFor(() => expect(chosen(keys, clock)).toBe(NEW), { timeout: 5_000, interval: 10 });
    });

    it('stops reading the file after close', () => {
        const file = keyFile([OLD]);
        const { keys, clock } = manager({ keyFile: file.path, watch: true });
        keys.close();
        file.write([NEW]);
        clock.advance(5_000);
        expect(chosen(keys, clock)).toBe(OLD);
    });
});
