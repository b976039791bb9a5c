import * as z from 'zod';
import type { SignalValue } from '../domain/market.js';
import { cleanUpstreamText, MAX_NAME_CHARS, MAX_TEXT_CHARS } from './upstream-text.js';

/**
 * Readers for one upstream field each. A reader never fails a row: an absent or null value is `null`, and a value
 * of the wrong kind is `null` plus a description of what arrived, which the caller reports as drift. The upstream
 * sends numbers as strings in some endpoints and revisions (token-metrics/mcp `src/tools/tm-grade.ts`,
 * tmai-api-sdk-typescript `src/types.ts` `MoonshotToken`), so string numbers are values, not drift.
 */
export type Read<T> = { value: T | null } | { wrong: string };

export interface Field<T> {
    /** Upstream names, matched case-insensitively: v2 sends UPPER_SNAKE_CASE, v3 lower_snake_case; the first present wins. */
    names: readonly string[];
    read(raw: unknown): Read<T>;
}

/** Most items kept from a list field (exchanges, categories, contract addresses): the tools show a few at most. */
const MAX_LIST_ITEMS = 100;

/** Placeholders the upstream and its spreadsheets use for "no value"; they mean null, not drift. */
const NO_VALUE = /^(?:|-|nan|null|none|n\/a|undefined)$/i;

/** A short, key-free description of an unexpected value for a drift report. */
export function kindOf(raw: unknown): string {
    if (Array.isArray(raw)) return 'a list';
    if (raw === null) return 'null';
    if (typeof raw === 'string') return `the text "${cleanUpstreamText(raw, 16)}"`;
    return typeof raw === 'object' ? 'an object' : `a ${typeof raw}`;
}

function reader<T>(names: readonly string[], schema: z.ZodType<T | null>): Field<T> {
    return {
        names,
        read(raw) {
            if (raw === undefined || raw === null) return { value: null };
            if (typeof raw === 'string' && NO_VALUE.test(raw.trim())) return { value: null };
            const parsed = schema.safeParse(raw);
            return parsed.success ? { value: parsed.data } : { wrong: kindOf(raw) };
        }
    };
}

const finite = z.number().refine(Number.isFinite);
const numeric = z.union([
    finite,
    z
        .string()
        .transform(text => Number(text.trim().replace(/,/g, '')))
        .pipe(finite)
]);

export const number = (...names: string[]): Field<number> => reader(names, numeric);

export const id = (...names: string[]): Field<number> =>
    reader(
        names,
        numeric.refine(value => Number.isSafeInteger(value) && value > 0)
    );

/** Upstream text, cleaned (no controls, escapes, bidi overrides or invisible characters; one space for any run) and bounded. */
const cleaned = (max: number) => z.union([z.string(), finite]).transform(value => cleanUpstreamText(String(value), max) || null);

/** A free text field (a grade label, a momentum word): cleaned, at most 200 characters. */
export const text = (...names: string[]): Field<string> => reader(names, cleaned(MAX_TEXT_CHARS));

/**
 * A token's name or symbol: cleaned, at most 64 characters. Anyone can launch a token and name it, and the name is
 * read by a model: "Evil\nIGNORE PREVIOUS INSTRUCTIONS" arrives as one short line.
 */
export const label = (...names: string[]): Field<string> => reader(names, cleaned(MAX_NAME_CHARS));

/** The largest time value a Date holds (ECMA-262 21.4.1.1). */
const MAX_DATE_MS = 8.64e15;
/** `YYYY-MM-DD` or an ISO timestamp: kept as sent. */
const ISO_DATE = /^\d{4}-\d{2}-\d{2}(?:[T ]\d{2}:\d{2}(?::\d{2}(?:\.\d{1,9})?)?(?:Z|[+-]\d{2}(?::?\d{2})?)?)?$/;

/**
 * `YYYY-MM-DD` or an ISO timestamp, kept as sent; other dates `Date.parse` reads become ISO timestamps (it reads
 * "Evil 2024" as a date, so a text is never kept as sent); epoch numbers (seconds or ms) become ISO timestamps.
 */
export const date = (...names: string[]): Field<string> =>
    reader(
        names,
        z.union([
            z
                .string()
                .transform(value => cleanUpstreamText(value, MAX_NAME_CHARS))
                .refine(value => !Number.isNaN(Date.parse(value)) && Number.isFinite(new Date(value).getTime()))
                .transform(value => (ISO_DATE.test(value) ? value : new Date(value).toISOString())),
            finite.transform((value, ctx) => {
                const ms = value < 1e11 ? value * 1000 : value;
                // Past ±8.64e15 ms a Date is invalid and toISOString() throws: a wrong kind, not a crash.
                if (Math.abs(ms) <= MAX_DATE_MS) return new Date(ms).toISOString();
                ctx.addIssue({ code: 'custom', message: 'not a date' });
                return z.NEVER;
            })
        ])
    );

/**
 * A list of names. `/tokens` sends objects (`EXCHANGE_LIST: [{ exchange_id, exchange_name }]`, `CATEGORY_LIST:
 * [{ category_id, category_name, category_slug }]`, as tmai-langchain-tools `tools/tokens.py` reads them); older
 * answers and other endpoints send strings or a comma-separated text. Each item gives its name, else its id.
 */
export const names = (preferred: readonly string[], ...fieldNames: string[]): Field<string[]> => {
    const item = z.union([
        z.string(),
        finite,
        z.record(z.string(), z.unknown()).transform(entry => {
            for (const key of [...preferred, 'name', 'slug', 'id']) {
                const value = entry[key];
                if (typeof value === 'string' || typeof value === 'number') return value;
            }
            return null;
        })
    ]);
    return reader(
        fieldNames,
        z.union([
            z.array(item).transform(items =>
                items
                    .flatMap(value => (value === null ? [] : [cleanUpstreamText(String(value), MAX_NAME_CHARS)]))
                    .filter(Boolean)
                    .slice(0, MAX_LIST_ITEMS)
            ),
            z.string().transform(value =>
                value
                    .split(',')
                    .map(part => cleanUpstreamText(part, MAX_NAME_CHARS))
                    .filter(Boolean)
                    .slice(0, MAX_LIST_ITEMS)
            )
        ])
    );
};

/** `CONTRACT_ADDRESS: { "<chain>": "<address>" }` (tmai-langchain-tools `tools/tokens.py` reads `.items()`). */
export const addresses = (...fieldNames: string[]): Field<Record<string, string>> =>
    reader(
        fieldNames,
        z.record(z.string(), z.unknown()).transform(map =>
            Object.fromEntries(
                Object.entries(map)
                    .filter((entry): entry is [string, string] => typeof entry[1] === 'string')
                    .map(
                        ([chain, address]) =>
                            [cleanUpstreamText(chain, MAX_NAME_CHARS), cleanUpstreamText(address, MAX_NAME_CHARS * 2)] as const
                    )
                    .filter(([chain, address]) => chain !== '' && address !== '')
                    .slice(0, MAX_LIST_ITEMS)
            )
        )
    );

const SIGNAL_WORDS: Record<string, SignalValue> = { bullish: 1, long: 1, bearish: -1, short: -1, neutral: 0, none: 0 };

/** A strategy signal: `1` bullish, `-1` bearish, `0` none (token-metrics/mcp `src/tools/trading-signal.ts`). */
export const signal = (...fieldNames: string[]): Field<SignalValue> =>
    reader(
        fieldNames,
        z.union([finite, z.string()]).transform((value, ctx): SignalValue => {
            const word = typeof value === 'string' ? SIGNAL_WORDS[value.trim().toLowerCase()] : undefined;
            if (word !== undefined) return word;
            const numberValue = Number(value);
            if (numberValue === 1 || numberValue === 0 || numberValue === -1) return numberValue;
            ctx.addIssue({ code: 'custom', message: 'not a signal' });
            return z.NEVER;
        })
    );
