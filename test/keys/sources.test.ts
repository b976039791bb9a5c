import { describe, expect, it } from 'vitest';
import { checkEnvironmentKeys, combineKeys, looksLikeKey, parseKeyFile } from '../../src/keys/sources.js';

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
