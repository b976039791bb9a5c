import * as z from 'zod';
import type { Clock } from '../clock.js';
import type { Logger } from '../logger.js';
import { invalidInput, isUpstreamError, schemaDrift } from './errors.js';
import type { QueryValue, UpstreamHttp } from './http.js';
import {
    DailyOhlcvRow,
    HourlySignalRow,
    InvestorGradeRow,
    MoonshotRow,
    PriceRow,
    TmGradeRow,
    TokenRow,
    TraderGradeRow,
    TradingSignalRow,
    type DailyOhlcv,
    type HourlySignal,
    type InvestorGrade,
    type Moonshot,
    type Price,
    type TmGrade,
    type Token,
    type TraderGrade,
    type TradingSignal
} from './schemas.js';

/** The upstream caps `limit` at 100 rows per page. */
export const MAX_PAGE_SIZE = 100;
/** Date ranges are limited to 29 days per request. */
export const MAX_RANGE_DAYS = 29;

export interface TokenQuery {
    symbols?: readonly string[];
    names?: readonly string[];
    ids?: readonly number[];
}

export type MoonshotType = 'active' | 'past';

/**
 * Grades with the legacy fallback: `tm` is null when `/tm-grade` is gone (404), and then `trader` and
 * `investor` come from the older endpoints, each null when that endpoint is gone as well.
 */
export interface GradeSources {
    tm: TmGrade[] | null;
    trader: TraderGrade[] | null;
    investor: InvestorGrade[] | null;
}

/** What the tools need from the upstream, as domain types. The cache implements the same interface. */
export interface MarketData {
    tokens(query: TokenQuery, signal?: AbortSignal): Promise<Token[]>;
    prices(tokenIds: readonly number[], signal?: AbortSignal): Promise<Price[]>;
    grades(tokenIds: readonly number[], signal?: AbortSignal): Promise<GradeSources>;
    /** Daily signal rows over the last `days` days (at most 29), newest first. */
    tradingSignals(tokenIds: readonly number[], days: number, signal?: AbortSignal): Promise<TradingSignal[]>;
    hourlySignals(tokenId: number, signal?: AbortSignal): Promise<HourlySignal[]>;
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
/** How long a missing `/tm-grade` sends calls straight to the legacy endpoints before it is tried again. */
const TM_GRADE_RETRY_MS = 3_600_000;

const isoDate = (ms: number): string => new Date(ms).toISOString().slice(0, 10);

function checkIds(ids: readonly number[]): void {
    for (const id of ids) {
        if (!Number.isSafeInteger(id) || id <= 0) throw invalidInput(`"${String(id).slice(0, 20)}" is not a token id.`);
    }
}

function checkFilterValues(kind: string, values: readonly string[]): void {
    for (const value of values) {
        if (!isValidFilterValue(value)) {
            throw invalidInput(`${JSON.stringify(value.slice(0, 40))} is not a valid token ${kind}.`, 'Use letters, digits, spaces or . _ - only.');
        }
    }
}

function chunk<T>(items: readonly T[], size: number): T[][] {
    const chunks: T[][] = [];
    for (let i = 0; i < items.length; i += size) chunks.push(items.slice(i, i + size));
    return chunks;
}

/**
 * Typed Token Metrics client: one method per endpoint the tools need, rows parsed into domain types,
 * paging and id batching handled here. Knows HTTP shapes, nothing of MCP.
 */
export class TokenMetricsClient implements MarketData {
    private tmGradeMissingUntil = 0;

    constructor(
        private readonly http: UpstreamHttp,
        private readonly clock: Clock,
        private readonly logger: Logger
    ) {}

    async tokens(query: TokenQuery, signal?: AbortSignal): Promise<Token[]> {
        const symbols = query.symbols ?? [];
        const names = query.names ?? [];
        const ids = query.ids ?? [];
        checkFilterValues('symbol', symbols);
        checkFilterValues('name', names);
        checkIds(ids);
        const requests: Array<Record<string, QueryValue>> = [
            ...chunk(symbols, MAX_PAGE_SIZE).map(part => ({ symbol: part.join(',') })),
            ...chunk(names, MAX_PAGE_SIZE).map(part => ({ token_name: part.join(',') })),
            ...chunk(ids, MAX_PAGE_SIZE).map(part => ({ token_id: part.join(',') }))
        ];
        const pages = await Promise.all(requests.map(params => this.pages('/tokens', params, TokenRow, signal)));
        return pages.flat();
    }

    async prices(tokenIds: readonly number[], signal?: AbortSignal): Promise<Price[]> {
        checkIds(tokenIds);
        const ids = [...new Set(tokenIds)];
        const parts = await Promise.all(chunk(ids, MAX_PAGE_SIZE).map(part => this.page('/price', { token_id: part.join(','), limit: MAX_PAGE_SIZE }, PriceRow, signal)));
        return parts.flat();
    }

    async grades(tokenIds: readonly number[], signal?: AbortSignal): Promise<GradeSources> {
        checkIds(tokenIds);
        const ids = [...new Set(tokenIds)];
        if (this.clock.now() >= this.tmGradeMissingUntil) {
            const tm = await this.orMissing(this.batched('/tm-grade', ids, TmGradeRow, signal));
            if (tm) return { tm, trader: null, investor: null };
            this.tmGradeMissingUntil = this.clock.now() + TM_GRADE_RETRY_MS;
            this.logger.warn('/tm-grade is missing upstream; using /trader-grades and /investor-grades');
        }
        const [trader, investor] = await Promise.all([
            this.orMissing(this.batched('/trader-grades', ids, TraderGradeRow, signal)),
            this.orMissing(this.batched('/investor-grades', ids, InvestorGradeRow, signal))
        ]);
        return { tm: null, trader, investor };
    }

    async tradingSignals(tokenIds: readonly number[], days: number, signal?: AbortSignal): Promise<TradingSignal[]> {
        checkIds(tokenIds);
        const rows = await Promise.all(
            chunk([...new Set(tokenIds)], MAX_PAGE_SIZE).map(part =>
                this.pages('/trading-signals', { token_id: part.join(','), ...this.range(days) }, TradingSignalRow, signal)
            )
        );
        return rows.flat().sort(newestFirst);
    }

    async hourlySignals(tokenId: number, signal?: AbortSignal): Promise<HourlySignal[]> {
        checkIds([tokenId]);
        return this.page('/hourly-trading-signals', { token_id: tokenId }, HourlySignalRow, signal);
    }

    async moonshots(type: MoonshotType, limit: number, signal?: AbortSignal): Promise<Moonshot[]> {
        if (type !== 'active' && type !== 'past') throw invalidInput(`Moonshot type must be "active" or "past".`);
        const bounded = Math.max(1, Math.min(MAX_PAGE_SIZE, Math.floor(limit)));
        return this.page('/moonshot-tokens', { type, limit: bounded, page: 1 }, MoonshotRow, signal);
    }

    async dailyOhlcv(tokenId: number, days: number, signal?: AbortSignal): Promise<DailyOhlcv[]> {
        checkIds([tokenId]);
        const rows = await this.pages('/daily-ohlcv', { token_id: tokenId, ...this.range(days) }, DailyOhlcvRow, signal);
        return rows.sort(newestFirst);
    }

    /** `startDate`/`endDate` covering the last `days` days, clamped to the upstream's 29-day window. */
    private range(days: number): { startDate: string; endDate: string } {
        const span = Math.max(1, Math.min(MAX_RANGE_DAYS, Math.floor(days)));
        const now = this.clock.now();
        return { startDate: isoDate(now - span * 86_400_000), endDate: isoDate(now) };
    }

    private async batched<T>(path: string, ids: readonly number[], schema: z.ZodType<T>, signal?: AbortSignal): Promise<T[]> {
        const parts = await Promise.all(chunk(ids, MAX_PAGE_SIZE).map(part => this.page(path, { token_id: part.join(','), limit: MAX_PAGE_SIZE }, schema, signal)));
        return parts.flat();
    }

    /** A 404 on an endpoint means it is gone: `null`, so the caller can say "not available". */
    private async orMissing<T>(call: Promise<T>): Promise<T | null> {
        try {
            return await call;
        } catch (error) {
            if (isUpstreamError(error) && error.code === 'NOT_FOUND') return null;
            throw error;
        }
    }

    /** Every page of a filtered listing, one request per 100 rows. */
    private async pages<T>(path: string, query: Record<string, QueryValue>, schema: z.ZodType<T>, signal?: AbortSignal): Promise<T[]> {
        const rows: T[] = [];
        for (let page = 1; page <= 20; page++) {
            const batch = await this.page(path, { ...query, limit: MAX_PAGE_SIZE, page }, schema, signal);
            rows.push(...batch);
            if (batch.length < MAX_PAGE_SIZE) break;
        }
        return rows;
    }

    private async page<T>(path: string, query: Record<string, QueryValue>, schema: z.ZodType<T>, signal?: AbortSignal): Promise<T[]> {
        const { rows } = await this.http.getRows({ path, query, ...(signal ? { signal } : {}) });
        const parsed = z.array(schema).safeParse(rows);
        if (!parsed.success) {
            const issue = parsed.error.issues[0];
            const where = issue ? `${issue.path.slice(1).join('.') || 'row'}: ${issue.message}` : 'rows';
            throw schemaDrift(`${path} ${where}`, { endpoint: path, status: 200, cause: parsed.error });
        }
        return parsed.data;
    }
}

function newestFirst<T extends { date: string | null }>(a: T, b: T): number {
    return (b.date ?? '').localeCompare(a.date ?? '');
}
