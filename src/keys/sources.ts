import { fingerprint } from '../redact.js';

/** Where a key came from. TOKEN_METRICS_API_KEY and TOKEN_METRICS_API_KEYS are merged by config, so they share one label. */
export type KeyOrigin = 'environment' | 'key file';

/** One configured key with its metadata. `key` is the secret: it leaves this module only towards the pool and the Redactor. */
export interface KeyEntry {
    key: string;
    /** `label=` in the key file, `label:` before the key in TOKEN_METRICS_API_KEYS; `null` when not given. */
    label: string | null;
    origin: KeyOrigin;
    /** 1-based line in the key file; absent for environment keys. */
    line?: number;
    /** First instant the key may be used (`not-before=`), in ms; `null`: from now on. */
    notBefore: number | null;
    /** First instant the key must no longer be used (the end of the `expires=` day, UTC), in ms; `null`: never. */
    expiresAt: number | null;
    /** The dates as the user wrote them, for a person reading `crypto-intel-mcp keys` (dates are not secrets). */
    written: { notBefore: string | null; expires: string | null };
}

/** Something wrong with one configured key, described by fingerprint only so it can be logged. */
export interface KeyWarning {
    origin: KeyOrigin;
    /** 1-based line in the key file; absent for environment keys. */
    line?: number;
    fingerprint: string;
    /**
     * `inner-whitespace`: the line is ignored (two keys on one line, or a key with a note after it).
     * `unexpected-format`: the key is used anyway, but it does not look like a Token Metrics key.
     * `not-sendable`: the key is refused: it holds a character an HTTP header cannot carry (non-ASCII, a control character).
     * `bad-attribute`: the key is refused: an attribute after it (`label=`, `expires=`, `not-before=`) is unknown or malformed.
     */
    problem: 'inner-whitespace' | 'unexpected-format' | 'not-sendable' | 'bad-attribute';
    /** What exactly is wrong, never key material: e.g. `character 12 is U+200B`, `expires=2026-13-01 is not a date`. */
    detail?: string;
}

/** Keys read from one source, in order and de-duplicated. */
export interface KeyList {
    keys: string[];
    entries: KeyEntry[];
    warnings: KeyWarning[];
    /**
     * Every string that may be key material, rejected ones included: the Redactor must know them all,
     * because a rejected line is still a secret the user pasted.
     */
    secrets: string[];
}

/** Token Metrics keys start with `tm-`; anything outside printable ASCII is a copy-paste artifact (smart quotes, zero-width spaces). */
const KEY_SHAPE = /^tm-[\x21-\x7e]+$/;
/** What an HTTP header value can carry without mangling: visible ASCII, no space, no control character (RFC 9110 field-vchar, ASCII only). */
const SENDABLE = /^[\x21-\x7e]+$/;
/** A part of a rejected line this long is likely key material; shorter ones are words of a note, not worth scrubbing everywhere. */
const MIN_SECRET_PART = 16;
/** Labels name keys in logs, the audit trail and `get_usage`: short, plain, unmistakable for key material. */
export const LABEL_SHAPE = /^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$/;
/** `name=value` after the key on a key file line. */
const ATTRIBUTE_SHAPE = /^([a-z][a-z-]{0,31})=(.*)$/;
const ATTRIBUTES = ['label', 'expires', 'not-before'] as const;
const DATE_ONLY = /^(\d{4})-(\d{2})-(\d{2})$/;
const DATE_TIME = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}(?::\d{2}(?:\.\d{1,3})?)?(?:Z|[+-]\d{2}:\d{2})$/;
const DAY_MS = 86_400_000;

/** Whether a key has the shape of a Token Metrics key (`tm-` then printable ASCII). */
export function looksLikeKey(key: string): boolean {
    return KEY_SHAPE.test(key);
}

/** Whether a key can be sent as an `x-api-key` header value as is. */
export function isSendable(key: string): boolean {
    return SENDABLE.test(key);
}

/** Keys from several sources, in the order given; the first occurrence of a duplicate wins. */
export function combineKeys(...lists: ReadonlyArray<readonly string[]>): string[] {
    return [...new Set(lists.flat())];
}

/** Entries from several sources, in the order given; the first entry of a key wins (with its metadata). */
export function combineEntries(...lists: ReadonlyArray<readonly KeyEntry[]>): KeyEntry[] {
    const seen = new Set<string>();
    return lists.flat().filter(entry => !seen.has(entry.key) && seen.add(entry.key));
}

/** The first character a header cannot carry, as `character N is U+XXXX` (a position and a code point, never the key). */
function unsendableDetail(key: string): string {
    const chars = [...key];
    const index = chars.findIndex(char => !/^[\x21-\x7e]$/.test(char));
    const code = chars[index]!.codePointAt(0)!.toString(16).toUpperCase().padStart(4, '0');
    return `character ${index + 1} of ${chars.length} is U+${code}`;
}

/**
 * A date attribute as an instant. `YYYY-MM-DD` is a UTC day: `not-before` starts at its first instant, `expires` ends
 * after its last one (the key still works all of that day). A full ISO time with a zone is taken as that instant.
 */
export function parseKeyDate(value: string, bound: 'start' | 'end'): number | null {
    const day = DATE_ONLY.exec(value);
    if (day) {
        const [year, month, date] = [Number(day[1]), Number(day[2]), Number(day[3])];
        const ms = Date.UTC(year, month - 1, date);
        // Date.UTC rolls 2026-02-30 over into March: a date that does not survive the round trip does not exist.
        if (new Date(ms).toISOString().slice(0, 10) !== value) return null;
        return bound === 'start' ? ms : ms + DAY_MS;
    }
    if (DATE_TIME.test(value)) {
        const ms = Date.parse(value);
        return Number.isNaN(ms) ? null : ms;
    }
    return null;
}

type Attributes =
    | { ok: true; label: string | null; notBefore: number | null; expiresAt: number | null; written: KeyEntry['written'] }
    | { ok: false; detail: string };

/** `label=… expires=… not-before=…`, each at most once; the message of a failure names the attribute, never the key. */
function parseAttributes(parts: readonly string[]): Attributes {
    const values = new Map<string, string>();
    for (const part of parts) {
        const [, name, value] = ATTRIBUTE_SHAPE.exec(part)!;
        if (!(ATTRIBUTES as readonly string[]).includes(name!))
            return { ok: false, detail: `unknown attribute "${name}" (use ${ATTRIBUTES.join(', ')})` };
        if (values.has(name!)) return { ok: false, detail: `${name} is given twice` };
        values.set(name!, value!);
    }
    const label = values.get('label') ?? null;
    if (label !== null && !LABEL_SHAPE.test(label)) {
        return { ok: false, detail: 'label must be 1-64 letters, digits, ".", "_" or "-", starting with a letter or digit' };
    }
    const dates: Record<'not-before' | 'expires', number | null> = { 'not-before': null, expires: null };
    for (const name of ['not-before', 'expires'] as const) {
        const value = values.get(name);
        if (value === undefined) continue;
        const ms = parseKeyDate(value, name === 'expires' ? 'end' : 'start');
        if (ms === null)
            return { ok: false, detail: `${name}=${value.slice(0, 40)} is not a date (use YYYY-MM-DD, UTC, or an ISO time with a zone)` };
        dates[name] = ms;
    }
    if (dates['not-before'] !== null && dates.expires !== null && dates['not-before'] >= dates.expires) {
        return { ok: false, detail: 'not-before is not before expires' };
    }
    return {
        ok: true,
        label,
        notBefore: dates['not-before'],
        expiresAt: dates.expires,
        written: { notBefore: values.get('not-before') ?? null, expires: values.get('expires') ?? null }
    };
}

interface Candidate {
    value: string;
    line?: number;
    /** The key file line's words after the key, comments removed; environment keys have none. */
    attributes?: string[];
    label?: string | null;
}

function collect(candidates: readonly Candidate[], origin: KeyOrigin): KeyList {
    const entries: KeyEntry[] = [];
    const warnings: KeyWarning[] = [];
    const secrets: string[] = [];
    for (const { value, line, attributes = [], label = null } of candidates) {
        const where = line === undefined ? {} : { line };
        const warn = (problem: KeyWarning['problem'], detail?: string) =>
            warnings.push({ origin, ...where, fingerprint: fingerprint(value), problem, ...(detail === undefined ? {} : { detail }) });
        secrets.push(value);
        if (/\s/.test(value)) {
            secrets.push(...value.split(/\s+/).filter(part => part.startsWith('tm-') || part.length >= MIN_SECRET_PART));
            warn('inner-whitespace');
            continue;
        }
        // A key a header cannot carry would fail every request it is chosen for (or be mangled on the way): refuse it now.
        if (!isSendable(value)) {
            warn('not-sendable', unsendableDetail(value));
            continue;
        }
        const parsed = parseAttributes(attributes);
        if (!parsed.ok) {
            warn('bad-attribute', parsed.detail);
            continue;
        }
        if (!looksLikeKey(value)) warn('unexpected-format');
        entries.push({
            key: value,
            label: parsed.label ?? label,
            origin,
            ...where,
            notBefore: parsed.notBefore,
            expiresAt: parsed.expiresAt,
            written: parsed.written
        });
    }
    const unique = combineEntries(entries);
    return { keys: unique.map(entry => entry.key), entries: unique, warnings, secrets: combineKeys(secrets) };
}

/**
 * Parse a key file: one key per line, optionally followed by attributes
 * (`tm-… label=prod-2 expires=2026-12-31 not-before=2026-12-01`) and a `# note`; surrounding whitespace (CR of CRLF
 * files, a BOM) is trimmed; blank lines and lines starting with `#` are skipped. A line with other words after the
 * key is ignored with a warning rather than split, since it is as likely a key followed by a note as two keys.
 */
export function parseKeyFile(text: string): KeyList {
    const candidates: Candidate[] = [];
    text.split(/\r\n|\r|\n/).forEach((raw, index) => {
        const trimmed = raw.trim();
        if (trimmed === '' || trimmed.startsWith('#')) return;
        const words = trimmed.split(/\s+/);
        const comment = words.findIndex(word => word.startsWith('#'));
        const kept = comment < 0 ? words : words.slice(0, comment);
        const [key, ...rest] = kept;
        if (rest.length > 0 && rest.every(word => ATTRIBUTE_SHAPE.test(word))) {
            candidates.push({ value: key!, line: index + 1, attributes: rest });
        } else {
            // Words that are not attributes: keep the whole line as one candidate, which the whitespace rule refuses.
            candidates.push({ value: rest.length === 0 ? key! : trimmed, line: index + 1 });
        }
    });
    return collect(candidates, 'key file');
}

/** `prod-1:tm-…` names a key in TOKEN_METRICS_API_KEYS; a key that itself holds a colon (`tm-a:b`) is not split. */
function splitEnvironmentLabel(value: string): Candidate {
    const colon = value.indexOf(':');
    if (colon > 0) {
        const label = value.slice(0, colon);
        const key = value.slice(colon + 1);
        if (LABEL_SHAPE.test(label) && key !== '' && (!label.startsWith('tm-') || key.startsWith('tm-'))) return { value: key, label };
    }
    return { value };
}

/** Check the keys config took from TOKEN_METRICS_API_KEY and TOKEN_METRICS_API_KEYS (already trimmed and de-duplicated). */
export function checkEnvironmentKeys(keys: readonly string[]): KeyList {
    const list = collect(
        keys
            .map(key => key.trim())
            .filter(key => key !== '')
            .map(splitEnvironmentLabel),
        'environment'
    );
    // The `label:key` form as written is key material too: a log line quoting it must lose the key.
    return {
        ...list,
        secrets: combineKeys(
            list.secrets,
            keys.map(key => key.trim()).filter(key => key !== '')
        )
    };
}

/** A one-line log message for a warning, naming the key by fingerprint; the origin and line go in the log fields. */
export function keyWarningMessage(warning: KeyWarning): string {
    switch (warning.problem) {
        case 'inner-whitespace':
            return 'API key ignored: it contains whitespace followed by words that are not attributes (one key per line, then only label=, expires=, not-before= or a "# note")';
        case 'unexpected-format':
            return 'API key does not look like a Token Metrics key ("tm-" followed by printable characters); using it anyway';
        case 'not-sendable':
            return (
                `API key ${warning.fingerprint} refused: ${warning.detail ?? 'it holds a character'}, which an HTTP header cannot carry ` +
                '(only printable ASCII, no spaces): retype it or copy it again from your Token Metrics account'
            );
        case 'bad-attribute':
            return `API key ${warning.fingerprint} refused: ${warning.detail ?? 'a malformed attribute'}`;
    }
}
