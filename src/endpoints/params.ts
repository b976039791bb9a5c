import { invalidInput } from '../api/errors.js';

/** The upstream caps `limit` at 100 rows per page. */
export const MAX_PAGE_SIZE = 100;
/** Date ranges are limited to 29 days per request. */
const MAX_RANGE_DAYS = 29;
/** A listing is read at most this many pages deep: a filter that matches more is not a lookup any more. */
export const MAX_PAGES = 20;

/** Symbols and names go into a comma-separated filter: a comma or control character would change its meaning. */
const FILTER_VALUE = /^[\p{L}\p{N} ._\-$()+']{1,64}$/u;
/**
 * An apostrophe belongs to a name only inside a word ("Pepe's"). At a word's edge it opens or closes a string literal,
 * and `--` starts a SQL comment: "' OR 1 --" and "admin'--" are injection probes, not token names, so they never go upstream.
 */
const SQL_FRAGMENT = /--|(?<![\p{L}\p{N}])'|'(?![\p{L}\p{N}])/u;
/**
 * The same two rules for ASCII text, where a letter or digit is [A-Za-z0-9]. V8 builds a `\p{L}` class (thousands of
 * ranges) when such a regex first runs: ~1.5 ms for the two above, paid by a process's first tool call. Symbols and
 * most names are ASCII, so the Unicode forms run only for the text that needs them.
 */
const ASCII_FILTER_VALUE = /^[A-Za-z0-9 ._\-$()+']{1,64}$/;
const ASCII_SQL_FRAGMENT = /--|(?<![A-Za-z0-9])'|'(?![A-Za-z0-9])/;
const ASCII_ONLY = /^[\x00-\x7f]*$/;
/** A word of a name, to title-case: the Unicode form only for text beyond ASCII (see above). */
const WORD = /[\p{L}\p{N}']+/gu;
const ASCII_WORD = /[A-Za-z0-9']+/g;

/** Whether a symbol or name can be sent as a `/tokens` filter value. */
export const isValidFilterValue = (value: string): boolean =>
    ASCII_ONLY.test(value)
        ? ASCII_FILTER_VALUE.test(value) && !ASCII_SQL_FRAGMENT.test(value)
        : FILTER_VALUE.test(value) && !SQL_FRAGMENT.test(value);

/** Throws for any value that cannot go into a comma-separated filter, naming it as a token `kind` (symbol, name). */
export function checkFilterValues(kind: string, values: readonly string[]): void {
    for (const value of values) {
        if (!isValidFilterValue(value)) {
            throw invalidInput(
                `${JSON.stringify(value.slice(0, 40))} is not a valid token ${kind}.`,
                'Use letters, digits, spaces or . _ - only.'
            );
        }
    }
}

/** Throws for anything that is not a positive safe integer: one bad id would otherwise fail a whole merged request. */
export function checkIds(ids: readonly number[]): void {
    for (const id of ids) {
        if (!Number.isSafeInteger(id) || id <= 0) throw invalidInput(`"${String(id).slice(0, 20)}" is not a token id.`);
    }
}

/** `days` as the upstream takes it: a whole number of days, 1 to 29, so 30 and 29 are the same question. */
export function clampDays(days: number): number {
    if (!Number.isFinite(days)) throw invalidInput('The number of days must be a number.');
    return Math.max(1, Math.min(MAX_RANGE_DAYS, Math.floor(days)));
}

const isoDate = (ms: number): string => new Date(ms).toISOString().slice(0, 10);

/** `startDate`/`endDate` covering the last `days` days before `now`, clamped to the upstream's 29-day window. */
export function lastDays(days: number, now: number): { startDate: string; endDate: string } {
    const span = clampDays(days);
    return { startDate: isoDate(now - span * 86_400_000), endDate: isoDate(now) };
}

/** "shiba inu" or "SHIBA INU" -> "Shiba Inu": how the upstream writes most names, in case its `token_name` filter is case-sensitive. */
export function titleCase(name: string): string {
    return name.replace(ASCII_ONLY.test(name) ? ASCII_WORD : WORD, word => word.charAt(0).toUpperCase() + word.slice(1).toLowerCase());
}

/** Comma-separated lists of at most one page's worth of values each: one request per list. */
export function chunk<T>(items: readonly T[], size = MAX_PAGE_SIZE): T[][] {
    const chunks: T[][] = [];
    for (let i = 0; i < items.length; i += size) chunks.push(items.slice(i, i + size));
    return chunks;
}

/**
 * A comma-separated filter's longest value, URL-encoded: a merged batch can carry hundreds of names, and a URL of tens
 * of kilobytes is refused by common proxies and servers (8 KiB is a usual limit for a whole request line).
 */
const MAX_FILTER_CHARS = 4_000;

/** Values of a `/tokens` filter as comma lists of at most one page's worth and `MAX_FILTER_CHARS` each: one request per list. */
export function filterLists(values: readonly string[]): string[][] {
    const lists: string[][] = [];
    let chars = 0;
    for (const value of values) {
        // Each value costs its encoded length and an encoded comma (3 characters) before it.
        const cost = encodeURIComponent(value).length + 3;
        const last = lists.at(-1);
        if (last === undefined || last.length >= MAX_PAGE_SIZE || chars + cost > MAX_FILTER_CHARS) {
            lists.push([value]);
            chars = cost;
        } else {
            last.push(value);
            chars += cost;
        }
    }
    return lists;
}

export const unique = <T>(values: readonly T[]): T[] => [...new Set(values)];
