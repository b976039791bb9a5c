import { describe, expect, it } from 'vitest';
import { KeyPool } from '../../src/keys/pool.js';

const A = 'tm-pool-key-aaaa';
const B = 'tm-pool-key-bbbb';
const C = 'tm-pool-key-cccc';

describe('KeyPool', () => {
    it('serves the first healthy key, skipping revoked and cooling ones', () => {
        const pool = new KeyPool([A, B, C]);
        pool.report(A, { kind: 'revoked' }, 0);
        pool.report(B, { kind: 'rate-limited', untilMs: 30_000 }, 0);
        expect(pool.choose(1_000)).toEqual({ kind: 'key', key: C, fingerprint: 'tm-…cccc' });
        expect(pool.choose(30_000)).toEqual({ kind: 'key', key: B, fingerprint: 'tm-…bbbb' });
    });

    it('asks the caller to wait for the earliest cool-down when every live key is cooling', () => {
        const pool = new KeyPool([A, B]);
        pool.report(A, { kind: 'rate-limited', untilMs: 20_000 }, 0);
        pool.report(B, { kind: 'exhausted', untilMs: 10_000 }, 0);
        expect(pool.choose(0)).toEqual({ kind: 'wait', untilMs: 10_000, reason: 'exhausted' });
    });

    it('says all-revoked with fingerprints only, and no-keys when empty', () => {
        const pool = new KeyPool([A]);
        pool.report(A, { kind: 'revoked' }, 0);
        expect(pool.choose(0)).toEqual({ kind: 'none', reason: 'all-revoked', fingerprints: ['tm-…aaaa'] });
        expect(new KeyPool().choose(0)).toEqual({ kind: 'none', reason: 'no-keys' });
    });

    it('keeps counters and cool-downs across replace, forgets revocations, and ignores reports for rotated-out keys', () => {
        const pool = new KeyPool([A, B]);
        pool.report(A, { kind: 'revoked' }, 0);
        pool.report(B, { kind: 'rate-limited', untilMs: 30_000 }, 0);
        pool.replace([B, A, C]);
        pool.report('tm-gone-key-zzzz', { kind: 'ok' }, 1);
        const stats = pool.stats();
        expect(stats.map(stat => [stat.fingerprint, stat.calls, stat.revoked, stat.coolingUntil])).toEqual([
            ['tm-…bbbb', 1, false, 30_000],
            ['tm-…aaaa', 1, false, null],
            ['tm-…cccc', 0, false, null]
        ]);
        expect(pool.choose(1_000)).toMatchObject({ kind: 'key', key: A });
        expect(JSON.stringify(stats)).not.toContain('pool-key');
    });
});

describe('KeyPool.scrub', () => {
    it('replaces its keys with their fingerprints in upstream text', () => {
        expect(new KeyPool([A, B]).scrub(`Invalid key ${A}; also ${B}.`)).toBe('Invalid key tm-…aaaa; also tm-…bbbb.');
    });
});
