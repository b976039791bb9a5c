/** Number and date rendering for the compact text a model reads: short, unambiguous, no false precision. */
import { decimal } from '../src/decimal.js';

export function usd(value: number | null): string {
    if (value === null) return 'n/a';
    if (value === 0) return '$0';
    const abs = Math.abs(value);
    if (abs >= 1) return `$${decimal(value, 2)}`;
    return `$${value.toPrecision(4).replace(/0+$/, '').replace(/\.$/, '')}`;
}

/** $1.92T, $410B, $7.5M, $12.3K. */
export function compactUsd(value: number | null): string {
    if (value === null) return 'n/a';
    const abs = Math.abs(value);
    for (const [unit, size] of [
        ['T', 1e12],
        ['B', 1e9],
        ['M', 1e6],
        ['K', 1e3]
    ] as const) {
        if (abs >= size) return `$${trim(value / size)}${unit}`;
    }
    return `$${trim(value)}`;
}

function trim(value: number): string {
    return Math.abs(value) >= 100 ? value.toFixed(0) : Math.abs(value) >= 10 ? value.toFixed(1) : value.toFixed(2);
}

export function pct(value: number | null, digits = 1): string {
    if (value === null) return 'n/a';
    return `${signedNumber(value, digits)}%`;
}

/** `+1.2`, `-0.5`, `0.0`. */
export function signedNumber(value: number, digits = 1): string {
    return `${value > 0 ? '+' : ''}${value.toFixed(digits)}`;
}

export function grade(value: number | null): string {
    return value === null ? 'n/a' : value.toFixed(1);
}

/** A column of grades: whole numbers, or 1 decimal when two different grades would otherwise read the same. */
export function gradeColumn(values: ReadonlyArray<number | null>): string[] {
    const whole = new Map<string, string>();
    let digits = 0;
    for (const value of values) {
        if (value === null) continue;
        const seen = whole.get(value.toFixed(0));
        if (seen !== undefined && seen !== value.toFixed(1)) digits = 1;
        whole.set(value.toFixed(0), value.toFixed(1));
    }
    return values.map(value => (value === null ? 'n/a' : value.toFixed(digits)));
}

/** `2026-11-25 12:00 UTC` */
export function utc(isoOrMs: string | number): string {
    const date = new Date(isoOrMs);
    return Number.isNaN(date.getTime()) ? String(isoOrMs) : `${date.toISOString().slice(0, 16).replace('T', ' ')} UTC`;
}

/** "as of …", plus how stale when the upstream failed and the cache answered. */
export function freshnessLine(asOf: string, staleAgeS?: number): string {
    if (staleAgeS === undefined) return `as of ${utc(asOf)}`;
    return `as of ${utc(asOf)} (STALE: upstream unavailable, cached ${age(staleAgeS)} ago)`;
}

/** "data of 2025-04-10, fetched 2026-11-25 16:52 UTC": the day the rows describe comes first, since that is what "now" means here. */
export function datedFreshnessLine(dataDate: string | null, fetchedAt: string, staleAgeS?: number): string {
    const fetched = freshnessLine(fetchedAt, staleAgeS).replace(/^as of/, 'fetched');
    return dataDate === null ? `data undated, ${fetched}` : `data of ${dataDate}, ${fetched}`;
}

export function age(seconds: number): string {
    if (seconds < 90) return `${Math.round(seconds)}s`;
    if (seconds < 5400) return `${Math.round(seconds / 60)}m`;
    if (seconds < 172_800) return `${Math.round(seconds / 3600)}h`;
    return `${Math.round(seconds / 86_400)}d`;
}

/** Left-aligned columns separated by two spaces. */
export function table(rows: readonly string[][]): string {
    const widths: number[] = [];
    for (const row of rows) row.forEach((cell, i) => (widths[i] = Math.max(widths[i] ?? 0, cell.length)));
    return rows.map(row => row.map((cell, i) => (i === row.length - 1 ? cell : cell.padEnd(widths[i]!))).join('  ')).join('\n');
}
