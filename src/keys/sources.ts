import { fingerprint } from '../redact.js';

/** Where a key came from. TOKEN_METRICS_API_KEY and TOKEN_METRICS_API_KEYS are merged by config, so they share one label. */
export type KeyOrigin = 'environment' | 'key file';

/** Something wrong with one configured key, described by fingerprint only so it can be logged. */
export interface KeyWarning {
    origin: KeyOrigin;
    /** 1-based line in the key file; absent for environment keys. */
    line?: number;
    fingerprint: string;
    /**
     * `inner-whitespace`: the key is ignored (two keys on one line, or a key with a note after it).
     * `unexpected-format`: the key is used anyway, but it does not look like a Token Metrics key.
     */
    problem: 'inner-whitespace' | 'unexpected-format';
}

/** Keys read from one source, in order and de-duplicated. */
export interface KeyList {
    keys: string[];
    warnings: KeyWarning[];
    /**
     * Every string that may be key material, rejected ones included: the Redactor must know them all,
     * because a rejected line is still a secret the user pasted.
     */
    secrets: string[];
}

/** Token Metrics keys start with `tm-`; anything outside printable ASCII is a copy-paste artifact (smart quotes, zero-width spaces). */
const KEY_SHAPE = /^tm-[\x21-\x7e]+$/;
/** A part of a rejected line this long is likely key material; shorter ones are words of a note, not worth scrubbing everywhere. */
const MIN_SECRET_PART = 16;

/** Whether a key has the shape of a Token Metrics key (`tm-` then printable ASCII). */
export function looksLikeKey(key: string): boolean {
    return KEY_SHAPE.test(key);
}

/** Keys from several sources, in the order given; the first occurrence of a duplicate wins. */
export function combineKeys(...lists: ReadonlyArray<readonly string[]>): string[] {
    return [...new Set(lists.flat())];
}

function collect(candidates: ReadonlyArray<{ value: string; line?: number }>, origin: KeyOrigin): KeyList {
    const keys: string[] = [];
    const warnings: KeyWarning[] = [];
    const secrets: string[] = [];
    for (const { value, line } of candidates) {
        const where = line === undefined ? {} : { line };
        secrets.push(value);
        if (/\s/.test(value)) {
            secrets.push(...value.split(/\s+/).filter(part => part.startsWith('tm-') || part.length >= MIN_SECRET_PART));
            warnings.push({ origin, ...where, fingerprint: fingerprint(value), problem: 'inner-whitespace' });
            continue;
        }
        if (!looksLikeKey(value)) warnings.push({ origin, ...where, fingerprint: fingerprint(value), problem: 'unexpected-format' });
        keys.push(value);
    }
    return { keys: combineKeys(keys), warnings, secrets: combineKeys(secrets) };
}

/**
 * Parse a key file: one key per line; surrounding whitespace (CR of CRLF files, a BOM) is trimmed;
 * blank lines and lines starting with `#` are skipped. A line with whitespace inside is ignored with a
 * warning rather than split, since it is as likely a key followed by a note as two keys.
 */
export function parseKeyFile(text: string): KeyList {
    const candidates: Array<{ value: string; line: number }> = [];
    text.split(/\r\n|\r|\n/).forEach((raw, index) => {
        const value = raw.trim();
        if (value === '' || value.startsWith('#')) return;
        candidates.push({ value, line: index + 1 });
    });
    return collect(candidates, 'key file');
}

/** Check the keys config took from TOKEN_METRICS_API_KEY and TOKEN_METRICS_API_KEYS (already trimmed and de-duplicated). */
export function checkEnvironmentKeys(keys: readonly string[]): KeyList {
    return collect(
        keys.map(key => ({ value: key.trim() })).filter(candidate => candidate.value !== ''),
        'environment'
    );
}

/** A one-line log message for a warning; the fingerprint, origin and line go in the log fields. */
export function keyWarningMessage(warning: KeyWarning): string {
    return warning.problem === 'inner-whitespace'
        ? 'API key ignored: it contains whitespace (put one key per line, notes on their own "#" lines)'
        : 'API key does not look like a Token Metrics key ("tm-" followed by printable characters); using it anyway';
}
