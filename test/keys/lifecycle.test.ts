import { afterEach, describe, expect, it } from 'vitest';
import { MemoryAudit } from '../../src/audit/audit-log.js';
import { KeyManager, type KeyManagerOptions } from '../../src/keys/manager.js';
import { Redactor } from '../../src/redact.js';
import { FakeClock } from '../helpers/clock.js';
import { keyWindows, memoryLogger, tempKeyFile, type MemoryLog, type TempKeyFile } from './support.js';

// The FakeClock starts at 2026-11-25T12:00:00Z.
const EXPIRED = 'tm-Pq7Lm2Vb9Xc4-e0e0';
const FUTURE = 'tm-Gh3Tr8Ky1Wd6-f0f0';
const CURRENT = 'tm-Nb5Zs4Qa8Ue2-c0c0';
const ENV_A = 'tm-Jw6Fo1Ri5Ym3-a1a1';
const ENV_B = 'tm-Dk2Hp7Sv3Ot9-b2b2';
const HOUR = 3_600_000;
const DAY = 24 * HOUR;

const files: TempKeyFile[] = [];
const managers: KeyManager[] = [];
afterEach(() => {
    for (const manager of managers.splice(0)) manager.close();
    for (const file of files.splice(0)) file.cleanup();
});

function keyFile(lines: readonly string[]): TempKeyFile {
    const file = tempKeyFile(lines);
    files.push(file);
    return file;
}

function manager(options: Partial<KeyManagerOptions> = {}): { keys: KeyManager; clock: FakeClock; log: MemoryLog; audit: MemoryAudit } {
    const log = memoryLogger('debug');
    const clock = (options.clock as FakeClock | undefined) ?? new FakeClock();
    const audit = new MemoryAudit();
    const keys = new KeyManager({
        envKeys: [],
        keyFile: null,
        watch: false,
        redactor: new Redactor(),
        audit,
        ...options,
        logger: log.logger,
        clock
    });
    managers.push(keys);
    return { keys, clock, log, audit };
}

const chosen = (keys: KeyManager, clock: FakeClock): string => {
    const choice = keys.choose(clock.now());
    return choice.kind === 'key' ? choice.key : `${choice.kind}:${'reason' in choice ? choice.reason : ''}`;
};

describe('key validity windows', () => {
    it('never hands out an expired or a not-yet-valid key', () => {
        const file = keyFile([`${EXPIRED} expires=2026-11-24`, `${FUTURE} not-before=2026-12-01`, CURRENT]);
        const { keys, clock } = manager({ keyFile: file.path });
        for (let i = 0; i < 5; i++) {
            expect(chosen(keys, clock)).toBe(CURRENT);
            clock.advance(HOUR);
        }
        expect(keys.describe()).toEqual({ configured: 3, usable: 1, fingerprints: ['tm-…e0e0', 'tm-…f0f0', 'tm-…c0c0'] });
    });

    it('lets a key with not-before take over on its date, with no file change and no restart', () => {
        const file = keyFile([`${FUTURE} not-before=2026-11-26`, CURRENT]);
        const { keys, clock, log } = manager({ keyFile: file.path, recheckMs: 10 * DAY });
        expect(chosen(keys, clock)).toBe(CURRENT);
        clock.advance(12 * HOUR - 1); // 2026-11-25T23:59:59.999Z
        expect(chosen(keys, clock)).toBe(CURRENT);
        clock.advance(1); // 2026-11-26T00:00:00Z
        expect(chosen(keys, clock)).toBe(FUTURE);
        expect(log.find('valid from now on')).toEqual([
            expect.objectContaining({ key: 'tm-…f0f0', notBefore: '2026-11-26T00:00:00.000Z' })
        ]);
    });

    it('stops using a key after the last day of its expires date (UTC), then answers none-valid', () => {
        const file = keyFile([`${CURRENT} expires=2026-11-25`]);
        const { keys, clock, log } = manager({ keyFile: file.path });
        expect(chosen(keys, clock)).toBe(CURRENT);
        clock.advance(12 * HOUR - 1);
        expect(chosen(keys, clock)).toBe(CURRENT);
        clock.advance(1);
        expect(keys.choose(clock.now())).toEqual({ kind: 'none', reason: 'none-valid', fingerprints: ['tm-…c0c0'] });
        expect(log.find('API key expired')).toEqual([expect.objectContaining({ level: 'warn', key: 'tm-…c0c0' })]);
    });

    it('honours an ISO time with a zone', () => {
        const file = keyFile([`${FUTURE} not-before=2026-11-25T13:30:00+01:00`, CURRENT]);
        const { keys, clock } = manager({ keyFile: file.path });
        expect(chosen(keys, clock)).toBe(CURRENT);
        clock.advance(30 * 60_000);
        expect(chosen(keys, clock)).toBe(FUTURE);
    });

    it('re-reads new dates for a key already loaded', () => {
        const file = keyFile([`${FUTURE} not-before=2026-12-01`, CURRENT]);
        const { keys, clock, audit } = manager({ keyFile: file.path });
        expect(chosen(keys, clock)).toBe(CURRENT);
        file.write([`${FUTURE} not-before=2026-11-25`, CURRENT]);
        clock.advance(1_000);
        expect(chosen(keys, clock)).toBe(FUTURE);
        expect(audit.events.filter(event => event.event === 'loaded').map(event => [event.fingerprint, event.updated ?? false])).toEqual([
            ['tm-…f0f0', false],
            ['tm-…c0c0', false],
            ['tm-…f0f0', true]
        ]);
    });
});

describe('expiry warnings', () => {
    it('warns about a key within 7 days of expiry at start-up and once a day after, and still uses it', () => {
        const file = keyFile([`${CURRENT} label=prod-1 expires=2026-11-30`]);
        const { keys, clock, log, audit } = manager({ keyFile: file.path });
        const warnings = () => log.find('API key expires in');
        expect(warnings()).toEqual([
            expect.objectContaining({ level: 'warn', key: 'tm-…c0c0', label: 'prod-1', expiresAt: '2026-12-01T00:00:00.000Z', daysLeft: 5 })
        ]);
        expect(warnings()[0]!.msg).toBe('API key expires in 5 day(s): add its successor to the key file');
        for (let i = 0; i < 11; i++) {
            clock.advance(HOUR); // up to 2026-11-25T23:00
            expect(chosen(keys, clock)).toBe(CURRENT);
        }
        expect(warnings()).toHaveLength(1);
        clock.advance(HOUR); // 2026-11-26T00:00: a new UTC day
        expect(chosen(keys, clock)).toBe(CURRENT);
        expect(warnings()).toHaveLength(2);
        expect(warnings()[1]).toMatchObject({ daysLeft: 5 });
        expect(audit.events.filter(event => event.event === 'expiring').map(event => [event.time, event.daysLeft])).toEqual([
            ['2026-11-25T12:00:00.000Z', 5],
            ['2026-11-26T00:00:00.000Z', 5]
        ]);
    });

    it('does not warn about a key 8 days from expiry, and describes every key for get_usage', () => {
        const file = keyFile([
            `${CURRENT} label=prod-1 expires=2026-12-02`,
            `${FUTURE} label=prod-2 not-before=2026-12-01 expires=2027-06-30`,
            `${EXPIRED} expires=2026-11-01`
        ]);
        const { keys, log } = manager({ keyFile: file.path, envKeys: [`ci:${ENV_A}`] });
        expect(log.find('API key expires in')).toEqual([]);
        expect(keys.describeKeys()).toEqual([
            {
                fingerprint: 'tm-…a1a1',
                label: 'ci',
                source: 'environment',
                state: 'active',
                usable: true,
                notBefore: null,
                expiresAt: null,
                daysLeft: null,
                written: { notBefore: null, expires: null }
            },
            {
                fingerprint: 'tm-…c0c0',
                label: 'prod-1',
                source: 'key file',
                state: 'active',
                usable: true,
                notBefore: null,
                expiresAt: '2026-12-03T00:00:00.000Z',
                daysLeft: 7,
                written: { notBefore: null, expires: '2026-12-02' }
            },
            {
                fingerprint: 'tm-…f0f0',
                label: 'prod-2',
                source: 'key file',
                state: 'not-yet-valid',
                usable: false,
                notBefore: '2026-12-01T00:00:00.000Z',
                expiresAt: '2027-07-01T00:00:00.000Z',
                daysLeft: 217,
                written: { notBefore: '2026-12-01', expires: '2027-06-30' }
            },
            {
                fingerprint: 'tm-…e0e0',
                label: null,
                source: 'key file',
                state: 'expired',
                usable: false,
                notBefore: null,
                expiresAt: '2026-11-02T00:00:00.000Z',
                daysLeft: null,
                written: { notBefore: null, expires: '2026-11-01' }
            }
        ]);
    });

    it('shows health in the state: rejected, rate-limited, quota used up', () => {
        const { keys, clock } = manager({ envKeys: [ENV_A, ENV_B, CURRENT] });
        keys.report(ENV_A, { kind: 'revoked', status: 401 }, clock.now());
        keys.report(ENV_B, { kind: 'rate-limited', untilMs: clock.now() + 30_000 }, clock.now());
        keys.report(CURRENT, { kind: 'exhausted', untilMs: clock.now() + 60_000 }, clock.now());
        expect(keys.describeKeys().map(key => [key.fingerprint, key.state, key.usable])).toEqual([
            ['tm-…a1a1', 'rejected', false],
            ['tm-…b2b2', 'rate-limited', false],
            ['tm-…c0c0', 'quota-used', false]
        ]);
    });
});

describe('labels and refused keys', () => {
    it('reads label:key in TOKEN_METRICS_API_KEYS and logs labels, never the keys', () => {
        const { keys, log } = manager({ envKeys: [`prod-1:${ENV_A}`, `prod-2:${ENV_B}`] });
        expect(keys.describeKeys().map(key => [key.fingerprint, key.label])).toEqual([
            ['tm-…a1a1', 'prod-1'],
            ['tm-…b2b2', 'prod-2']
        ]);
        expect(log.find('API keys loaded')[0]).toMatchObject({ fingerprints: 'tm-…a1a1, tm-…b2b2', labels: 'prod-1, prod-2' });
        for (const window of keyWindows(ENV_A, ENV_B)) expect(log.text()).not.toContain(window);
    });

    it('refuses a non-ASCII key from the key file, naming its fingerprint and the character, never the key', () => {
        const bad = 'tm-Vx4Ci9Eb2\u200bRk7-d4d4';
        const file = keyFile([bad, CURRENT]);
        const { keys, clock, log } = manager({ keyFile: file.path });
        expect(keys.describe().fingerprints).toEqual(['tm-…c0c0']);
        expect(chosen(keys, clock)).toBe(CURRENT);
        const refused = log.find('refused');
        expect(refused).toEqual([expect.objectContaining({ level: 'error', key: 'tm-…d4d4', line: 1, source: 'key file' })]);
        expect(refused[0]!.msg).toBe(
            'API key tm-…d4d4 refused: character 13 of 21 is U+200B, which an HTTP header cannot carry (only printable ASCII, no spaces): ' +
                'retype it or copy it again from your Token Metrics account'
        );
        for (const window of keyWindows(bad.replace('\u200b', ''))) expect(log.text()).not.toContain(window);
    });

    it('refuses a key with a smart quote or a control character from the environment', () => {
        const { keys, log } = manager({ envKeys: [`${ENV_A}\u201d`, `tm-Ab1\u0007Cd2Ef3-e5e5`, ENV_B] });
        expect(keys.describe().fingerprints).toEqual(['tm-…b2b2']);
        expect(log.find('refused').map(entry => [entry.key, String(entry.msg).match(/U\+[0-9A-F]{4}/)?.[0]])).toEqual([
            ['tm-…1a1”', 'U+201D'],
            ['tm-…e5e5', 'U+0007']
        ]);
    });

    it('refuses a key whose attributes are malformed, naming the attribute', () => {
        const file = keyFile([
            `${EXPIRED} expires=2026-13-01`,
            `${FUTURE} colour=blue`,
            `${CURRENT} not-before=2026-12-01 expires=2026-11-30`,
            ENV_A
        ]);
        const { keys, log } = manager({ keyFile: file.path });
        expect(keys.describe().fingerprints).toEqual(['tm-…a1a1']);
        expect(log.find('refused').map(entry => entry.msg)).toEqual([
            'API key tm-…e0e0 refused: expires=2026-13-01 is not a date (use YYYY-MM-DD, UTC, or an ISO time with a zone)',
            'API key tm-…f0f0 refused: unknown attribute "colour" (use label, expires, not-before)',
            'API key tm-…c0c0 refused: not-before is not before expires'
        ]);
    });
});
