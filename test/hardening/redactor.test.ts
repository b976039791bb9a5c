import { describe, expect, it } from 'vitest';
import { Redactor } from '../../src/redact.js';

const KEY = 'tm-HARDEN-redact-7c1e9a04b2f6';
const windows = (secret: string) => Array.from({ length: secret.length - 7 }, (_, i) => secret.slice(i, i + 8));
const leaks = (text: string) => windows(KEY).filter(piece => text.toLowerCase().includes(piece.toLowerCase()));

describe('Redactor', () => {
    const redactor = new Redactor();
    redactor.register(KEY);
    redactor.register('pw');

    it.each([
        ['the key', `key ${KEY} end`],
        ['upper case', `KEY ${KEY.toUpperCase()} END`],
        ['lower case', KEY.toLowerCase()],
        ['URL-encoded', `x-api-key=${encodeURIComponent(KEY)}&a=1`],
        ['a 10-character prefix', `name ${KEY.slice(0, 10)} left`],
        ['a 10-character suffix', `${KEY.slice(-10)} right`],
        ['an 8-character run from the middle', `mid${KEY.slice(7, 15)}mid`],
        ['two pieces side by side', `${KEY.slice(0, 12)}${KEY.slice(12)}`],
        ['JSON-escaped in a log line', JSON.stringify({ msg: KEY })]
    ])('replaces %s with the fingerprint', (_, text) => {
        const out = redactor.scrub(text);
        expect(leaks(out)).toEqual([]);
        expect(out).toContain('tm-…b2f6');
    });

    it('leaves text without a key alone, and 7 characters of one too', () => {
        for (const text of ['hello world', '', 'short', `a ${KEY.slice(0, 7)} b`, 'Bitcoin (BTC) 65,000.12 USD'])
            expect(redactor.scrub(text)).toBe(text);
    });

    it('matches a secret shorter than 8 characters exactly only', () => {
        expect(redactor.scrub('a pw b')).toBe('a tm-…pw b');
        expect(redactor.scrub('a PW b')).toBe('a PW b');
    });

    it('is idempotent', () => {
        const once = redactor.scrub(`${KEY} ${KEY.toUpperCase().slice(2, 14)} x`);
        expect(redactor.scrub(once)).toBe(once);
    });

    it('scrubs every string of a structure, keys included, and keeps __proto__ a key', () => {
        const value = JSON.parse(`{"a":["${KEY}",1,null,{"${KEY.slice(0, 9)}":"x","__proto__":"${KEY.slice(-9)}"}]}`) as unknown;
        const out = redactor.scrubDeep(value);
        expect(leaks(JSON.stringify(out))).toEqual([]);
        expect(Object.keys((out as { a: unknown[] }).a[3] as object)).toEqual(['tm-…b2f6', '__proto__']);
    });
});
