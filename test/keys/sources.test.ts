import { describe, expect, it } from 'vitest';
import { checkEnvironmentKeys, combineKeys, isSendable, looksLikeKey, parseKeyDate, parseKeyFile } from '../../src/keys/sources.js';

describe('parseKeyFile', () => {
    it('reads one key per line, skipping comments, blank and whitespace-only lines, in order', () => {
        const text = ['# production keys', '', 'tm-first-key-0001', '   ', '\t# indented comment', '  tm-second-key-0002  ', ''].join('\n');
        const parsed = parseKeyFile(text);
        expect(parsed.keys).toEqual(['tm-first-key-0001', 'tm-second-key-0002']);
        expect(parsed.warnings).toEqual([]);
    });

    it('handles CRLF line endings and a byte-order mark from Windows editors', () => {
        expect(parseKeyFile('\uFEFFtm-first-key-0001\r\ntm-second-key-0002\r\n').keys).toEqual(['tm-first-key-0001', 'tm-second-key-0002']);
    });

    it('collapses duplicates, keeping the first position', () => {
        expect(parseKeyFile('tm-a-key-0001\ntm-b-key-0002\ntm-a-key-0001\n').keys).toEqual(['tm-a-key-0001', 'tm-b-key-0002']);
    });

    it('rejects a key with inner whitespace, warning by fingerprint and line, and keeps the line as a secret', () => {
        const parsed = parseKeyFile('tm-good-key-0001\ntm-secret-value-9999 production\n');
        expect(parsed.keys).toEqual(['tm-good-key-0001']);
        expect(parsed.warnings).toEqual([{ origin: 'key file', line: 2, fingerprint: 'tm-…tion', problem: 'inner-whitespace' }]);
        expect(parsed.secrets).toContain('tm-secret-value-9999 production');
        expect(parsed.secrets).toContain('tm-secret-value-9999');
        expect(parsed.secrets).not.toContain('production');
    });

    it('uses a key that does not look like tm-… but warns by fingerprint', () => {
        const parsed = parseKeyFile('sk-not-a-tm-key-7777\n"tm-quoted-8888"\n');
        expect(parsed.keys).toEqual(['sk-not-a-tm-key-7777', '"tm-quoted-8888"']);
        expect(parsed.warnings).toEqual([
            { origin: 'key file', line: 1, fingerprint: 'tm-…7777', problem: 'unexpected-format' },
            { origin: 'key file', line: 2, fingerprint: 'tm-…888"', problem: 'unexpected-format' }
        ]);
        expect(JSON.stringify(parsed.warnings)).not.toContain('not-a-tm');
    });

    it('returns no key for an empty or comment-only file', () => {
        expect(parseKeyFile('').keys).toEqual([]);
        expect(parseKeyFile('# nothing yet\n\n').keys).toEqual([]);
    });
});

describe('key sources', () => {
    it('recognises the tm- shape, rejecting zero-width and non-ASCII artefacts', () => {
        expect(looksLikeKey('tm-abc123')).toBe(true);
        expect(looksLikeKey('tm-')).toBe(false);
        expect(looksLikeKey('TM-abc123')).toBe(false);
        expect(looksLikeKey('tm-abc\u200b123')).toBe(false);
        expect(looksLikeKey('tm-abc”')).toBe(false);
    });

    it('combines TOKEN_METRICS_API_KEY, TOKEN_METRICS_API_KEYS, then the file, collapsing duplicates', () => {
        const env = ['tm-single-0001', 'tm-list-a-0002', 'tm-list-b-0003'];
        const file = ['tm-list-b-0003', 'tm-file-0004', 'tm-single-0001'];
        expect(combineKeys(env, file)).toEqual(['tm-single-0001', 'tm-list-a-0002', 'tm-list-b-0003', 'tm-file-0004']);
    });

    it('applies the same checks to environment keys', () => {
        const checked = checkEnvironmentKeys(['tm-env-0001', 'tm-env two-0002', 'plain-0003']);
        expect(checked.keys).toEqual(['tm-env-0001', 'plain-0003']);
        expect(checked.warnings).toEqual([
            { origin: 'environment', fingerprint: 'tm-…0002', problem: 'inner-whitespace' },
            { origin: 'environment', fingerprint: 'tm-…0003', problem: 'unexpected-format' }
        ]);
    });
});

describe('key metadata', () => {
    it('reads label, expires and not-before after a key, and a trailing # note', () => {
        const parsed = parseKeyFile(
            'tm-first-key-0001 label=prod-2 expires=2026-12-31 not-before=2026-12-01  # rotated in December\ntm-second-key-0002\n'
        );
        expect(parsed.warnings).toEqual([]);
        expect(parsed.entries).toEqual([
            {
                key: 'tm-first-key-0001',
                label: 'prod-2',
                origin: 'key file',
                line: 1,
                notBefore: Date.parse('2026-12-01T00:00:00Z'),
                expiresAt: Date.parse('2027-01-01T00:00:00Z'),
                written: { notBefore: '2026-12-01', expires: '2026-12-31' }
            },
            {
                key: 'tm-second-key-0002',
                label: null,
                origin: 'key file',
                line: 2,
                notBefore: null,
                expiresAt: null,
                written: { notBefore: null, expires: null }
            }
        ]);
        expect(parsed.secrets).not.toContain('prod-2');
    });

    it('reads dates as UTC days (expires inclusive) or ISO times with a zone, and rejects impossible ones', () => {
        expect(parseKeyDate('2026-12-31', 'end')).toBe(Date.parse('2027-01-01T00:00:00Z'));
        expect(parseKeyDate('2026-12-01', 'start')).toBe(Date.parse('2026-12-01T00:00:00Z'));
        expect(parseKeyDate('2026-12-01T09:30+02:00', 'start')).toBe(Date.parse('2026-12-01T07:30:00Z'));
        for (const bad of ['2026-02-30', '2026-13-01', '31/12/2026', '2026-12-01T09:30', 'tomorrow'])
            expect(parseKeyDate(bad, 'end')).toBeNull();
    });

    it('reads prod-1:tm-… labels from the environment, leaving a key that holds a colon whole', () => {
        const checked = checkEnvironmentKeys(['prod-1:tm-env-0001', 'tm-env:odd-0002', 'tm-env-0003']);
        expect(checked.entries.map(entry => [entry.key, entry.label])).toEqual([
            ['tm-env-0001', 'prod-1'],
            ['tm-env:odd-0002', null],
            ['tm-env-0003', null]
        ]);
        expect(checked.secrets).toContain('prod-1:tm-env-0001');
    });

    it('refuses a key that is not sendable as a header value, by fingerprint and code point', () => {
        const parsed = parseKeyFile('tm-caf\u00e9-key-0001\ntm-ok-key-0002\n');
        expect(parsed.keys).toEqual(['tm-ok-key-0002']);
        expect(parsed.warnings).toEqual([
            { origin: 'key file', line: 1, fingerprint: 'tm-…0001', problem: 'not-sendable', detail: 'character 7 of 16 is U+00E9' }
        ]);
        expect(isSendable('tm-abc\u007f')).toBe(false);
        expect(isSendable('tm-abc')).toBe(true);
    });
});
