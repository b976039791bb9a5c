import type { Clock } from '../clock.js';
import {
    newestFirst,
    type DailyOhlcv,
    type FundamentalGrade,
    type Moonshot,
    type MoonshotType,
    type Price,
    type TechnologyGrade,
    type TmGrade,
    type Token,
    type TradingSignal
} from '../domain/market.js';
import type { Logger } from '../logger.js';
import { DriftMonitor } from './drift.js';
import { invalidInput, schemaDrift } from './errors.js';
import type { QueryValue, UpstreamHttp } from './http.js';
import { parseRows } from './parse-rows.js';
import {
    DailyOhlcvRow,
    FundamentalGradeRow,
    MoonshotRow,
    PriceRow,
    TechnologyGradeRow,
    TmGradeRow,
    TokenRow,
    TradingSignalRow,
    type RowSchema
} from './schemas.js';

/** The upstream caps `limit` at 100 rows per page. */
export const MAX_PAGE_SIZE = 100;
/** Date ranges are limited to 29 days per request. */
export const MAX_RANGE_DAYS = 29;
/** A listing is read at most this many pages deep: a filter that matches more is not a lookup any more. */
const MAX_PAGES = 20;

export interface TokenQuery {
    symbols?: readonly string[];
    names?: readonly string[];
    ids?: readonly number[];
}

/** What the tools need from the upstream, as domain types. The cache offers the same methods, with freshness. */
export interface MarketData {
    tokens(query: TokenQuery, signal?: AbortSignal): Promise<Token[]>;
    prices(tokenIds: readonly number[], signal?: AbortSignal): Promise<Price[]>;
    tmGrades(tokenIds: readonly number[], signal?: AbortSignal): Promise<TmGrade[]>;
    fundamentalGrades(tokenIds: readonly number[], signal?: AbortSignal): Promise<FundamentalGrade[]>;
    technologyGrades(tokenIds: readonly number[], signal?: AbortSignal): Promise<TechnologyGrade[]>;
    /** Daily signal rows over the last `days` days (at most 29), newest first. */
    tradingSignals(tokenIds: readonly number[], days: number, signal?: AbortSignal): Promise<TradingSignal[]>;
    moonshots(type: MoonshotType, limit: number, signal?: AbortSignal): Promise<Moonshot[]>;
    /** Daily candles over the last `days` days (at most 29), newest first. */
    dailyOhlcv(tokenId: number, days: number, signal?: AbortSignal): Promise<DailyOhlcv[]>;
}

/** Symbols and names go into a comma-separated filter: a comma or control character would change its meaning. */
const FILTER_VALUE = /^[\p{L}\p{N} ._\-$()+']{1,64}$/u;
/**
 * An apostrophe belongs to a name only inside a word ("Pepe's"). At a word's edge it opens or closes a string literal,
 * and `--` starts a SQL comment: "' OR 1 --" and "admin'--" are injection probes, not token names, so they never go upstream.
 */
const SQL_FRAGMENT = /--|(?<![\p{L}\p{N}])'|'(?![\p{L}\p{N}])/u;

/** Whether a symbol or name can be sent as a `/tokens` filter value. */
export const isValidFilterValue = (value: string): boolean => FILTER_VALUE.test(value) && !SQL_FRAGMENT.test(value);

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

/** "shiba inu" or "SHIBA INU" -> "Shiba Inu": how the upstream writes most names, in case its `token_name` filter is case-sensitive. */
function titleCase(name: string): string {
    return name.replace(/[\p{L}\p{N}']+/gu, word => word.charAt(0).toUpperCase() + word.slice(1).toLowerCase());
}

function checkFilterValues(kind: string, values: readonly string[]): void {
    for (const value of values) {
        if (!isValidFilterValue(value)) {
            throw invalidInput(
                `${JSON.stringify(value.slice(0, 40))} is not a valid token ${kind}.`,
                'Use letters, digits, spaces or . _ - only.'
            );
        }
    }
}

function chunk<T>(items: readonly T[], size: number): T[][] {
    const chunks: T[][] = [];
    for (let i = 0; i < items.length; i += size) chunks.push(items.slice(i, i + size));
    return chunks;
}

const isoDate = (ms: number): string => new Date(ms).toISOString().slice(0, 10);
const unique = <T>(values: readonly T[]): T[] => [...new Set(values)];

/**
 * Typed Token Metrics client: one method per endpoint the tools need, rows parsed field by field into domain types,
 * paging and id batching handled here. Knows HTTP shapes, nothing of MCP.
 */
export class TokenMetricsClient implements MarketData {
    readonly drift: DriftMonitor;

    constructor(
        private readonly http: UpstreamHttp,
        private readonly clock: Clock,
        logger: Logger
    ) {
        this.drift = new DriftMonitor(logger);
    }

    async tokens(query: TokenQuery, signal?: AbortSignal): Promise<Token[]> {
        const symbols = query.symbols ?? [];
        // The name filter may be case-sensitive upstream (unconfirmed): send each name as typed and title-cased, in one list.
        const names = unique((query.names ?? []).flatMap(name => [name.trim(), titleCase(name.trim())]));
        const ids = query.ids ?? [];
        checkFilterValues('symbol', symbols);
        checkFilterValues('name', names);
        checkIds(ids);
        const requests: Array<Record<string, QueryValue>> = [
            ...chunk(symbols, MAX_PAGE_SIZE).map(part => ({ symbol: part.join(',') })),
            ...chunk(names, MAX_PAGE_SIZE).map(part => ({ token_name: part.join(',') })),
            ...chunk(ids, MAX_PAGE_SIZE).map(part => ({ token_id: part.join(',') }))
        ];
        const pages = await Promise.all(requests.map(params => this.pages(TokenRow, params, signal)));
        return pages.flat();
    }

    /**
     * One page (100 rows) of the unfiltered token list, one credit: the directory symbol completion searches by prefix,
     * since the upstream's filters match whole symbols and names only.
     */
    async tokenDirectory(page: number, signal?: AbortSignal): Promise<Token[]> {
        if (!Number.isSafeInteger(page) || page < 1 || page > MAX_PAGES)
            throw invalidInput(`The directory page must be 1 to ${MAX_PAGES}.`);
        return this.page(TokenRow, { limit: MAX_PAGE_SIZE, page }, signal);
    }

    prices(tokenIds: readonly number[], signal?: AbortSignal): Promise<Price[]> {
        return this.byIds(PriceRow, tokenIds, signal);
    }

    tmGrades(tokenIds: readonly number[], signal?: AbortSignal): Promise<TmGrade[]> {
        return this.byIds(TmGradeRow, tokenIds, signal);
    }

    fundamentalGrades(tokenIds: readonly number[], signal?: AbortSignal): Promise<FundamentalGrade[]> {
        return this.byIds(FundamentalGradeRow, tokenIds, signal);
    }

    technologyGrades(tokenIds: readonly number[], signal?: AbortSignal): Promise<TechnologyGrade[]> {
        return this.byIds(TechnologyGradeRow, tokenIds, signal);
    }

    async tradingSignals(tokenIds: readonly number[], days: number, signal?: AbortSignal): Promise<TradingSignal[]> {
        checkIds(tokenIds);
        const range = this.range(days);
        const rows = await Promise.all(
            chunk(unique(tokenIds), MAX_PAGE_SIZE).map(part => this.pages(TradingSignalRow, { token_id: part.join(','), ...range }, signal))
        );
        return rows.flat().sort(newestFirst);
    }

    async moonshots(type: MoonshotType, limit: number, signal?: AbortSignal): Promise<Moonshot[]> {
        if (type !== 'active' && type !== 'past') throw invalidInput(`Moonshot type must be "active" or "past".`);
        const bounded = Math.max(1, Math.min(MAX_PAGE_SIZE, Math.floor(limit)));
        return this.page(MoonshotRow, { type, limit: bounded, page: 1 }, signal);
    }

    async dailyOhlcv(tokenId: number, days: number, signal?: AbortSignal): Promise<DailyOhlcv[]> {
        checkIds([tokenId]);
        const rows = await this.pages(DailyOhlcvRow, { token_id: tokenId, ...this.range(days) }, signal);
        return rows.sort(newestFirst);
    }

    /** `startDate`/`endDate` covering the last `days` days, clamped to the upstream's 29-day window. */
    private range(days: number): { startDate: string; endDate: string } {
        const span = clampDays(days);
        const now = this.clock.now();
        return { startDate: isoDate(now - span * 86_400_000), endDate: isoDate(now) };
    }

    private async byIds<T>(schema: RowSchema<T>, tokenIds: readonly number[], signal?: AbortSignal): Promise<T[]> {
        checkIds(tokenIds);
        const parts = await Promise.all(
            chunk(unique(tokenIds), MAX_PAGE_SIZE).map(part =>
                this.page(schema, { token_id: part.join(','), limit: MAX_PAGE_SIZE }, signal)
            )
        );
        return parts.flat();
    }

    /** Every page of a filtered listing, one request per 100 rows. */
    private async pages<T>(schema: RowSchema<T>, query: Record<string, QueryValue>, signal?: AbortSignal): Promise<T[]> {
        const rows: T[] = [];
        for (let page = 1; page <= MAX_PAGES; page++) {
            const { parsed, received } = await this.fetch(schema, { ...query, limit: MAX_PAGE_SIZE, page }, signal);
            rows.push(...parsed);
            if (received < MAX_PAGE_SIZE) break;
        }
        return rows;
    }

    private async page<T>(schema: RowSchema<T>, query: Record<string, QueryValue>, signal?: AbortSignal): Promise<T[]> {
        return (await this.fetch(schema, query, signal)).parsed;
    }

    /**
     * One request, parsed per field. Odd fields are reported and become null; rows without their identity are dropped
     * and counted. Only an answer whose every row had to be dropped is drift as a whole: it answered nothing usable.
     */
    private async fetch<T>(
        schema: RowSchema<T>,
        query: Record<string, QueryValue>,
        signal?: AbortSignal
    ): Promise<{ parsed: T[]; received: number }> {
        const { rows } = await this.http.getRows({ path: schema.endpoint, query, ...(signal ? { signal } : {}) });
        const parsed = parseRows(schema, rows);
        this.drift.record(schema.endpoint, parsed);
        if (parsed.rows.length === 0 && parsed.dropped > 0) {
            const identity = [...schema.identity, ...schema.identityAny].map(key => schema.fields[key]!.names[0]).join(' or ');
            throw schemaDrift(`${schema.endpoint}: none of its ${parsed.dropped} rows has ${identity}`, {
                endpoint: schema.endpoint,
                status: 200
            });
        }
        return { parsed: parsed.rows, received: rows.length };
    }
}
