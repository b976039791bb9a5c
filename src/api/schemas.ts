import * as z from 'zod';

/**
 * Upstream rows (UPPER_SNAKE_CASE, numbers sometimes as strings, fields sometimes null or absent)
 * parsed into camelCase domain types. This is the only module that knows upstream field names.
 * Unknown fields are ignored; a value of the wrong kind (an object where a number belongs) is drift.
 */

/** A number that may arrive as a numeric string; null, absent or "" mean "no value". */
const num = z
    .union([z.number(), z.string(), z.null(), z.undefined()])
    .transform((value, ctx) => {
        if (value === null || value === undefined) return null;
        if (typeof value === 'number') return Number.isFinite(value) ? value : null;
        const trimmed = value.trim();
        if (trimmed === '' || /^(nan|null|none|n\/a)$/i.test(trimmed)) return null;
        const parsed = Number(trimmed.replace(/,/g, ''));
        if (Number.isNaN(parsed)) {
            ctx.addIssue({ code: 'custom', message: `expected a number, got "${trimmed.slice(0, 20)}"` });
            return z.NEVER;
        }
        return parsed;
    });

const requiredId = num.refine((value): value is number => value !== null && Number.isInteger(value), 'expected a token id');

const text = z
    .union([z.string(), z.number(), z.null(), z.undefined()])
    .transform(value => (value === null || value === undefined ? null : String(value).trim() || null));

/** Lists arrive as arrays, comma-separated strings or null. */
const list = z
    .union([z.array(z.union([z.string(), z.number()])), z.string(), z.null(), z.undefined()])
    .transform(value => {
        if (value === null || value === undefined) return [];
        const items = Array.isArray(value) ? value.map(String) : value.split(',');
        return items.map(item => item.trim()).filter(item => item.length > 0);
    });

/** `YYYY-MM-DD` or an ISO timestamp, kept as the upstream sent it (trimmed), or null. */
const date = text;

const identity = {
    TOKEN_ID: requiredId,
    TOKEN_NAME: text,
    TOKEN_SYMBOL: text
};

export const TokenRow = z.object({ ...identity, CATEGORY_LIST: list, EXCHANGE_LIST: list }).transform(row => ({
    tokenId: row.TOKEN_ID,
    name: row.TOKEN_NAME ?? row.TOKEN_SYMBOL ?? `#${row.TOKEN_ID}`,
    symbol: (row.TOKEN_SYMBOL ?? '').toUpperCase(),
    categories: row.CATEGORY_LIST,
    exchanges: row.EXCHANGE_LIST
}));
export type Token = z.output<typeof TokenRow>;

export const PriceRow = z.object({ ...identity, CURRENT_PRICE: num }).transform(row => ({
    tokenId: row.TOKEN_ID,
    name: row.TOKEN_NAME,
    symbol: row.TOKEN_SYMBOL?.toUpperCase() ?? null,
    priceUsd: row.CURRENT_PRICE
}));
export type Price = z.output<typeof PriceRow>;

export const TmGradeRow = z
    .object({
        ...identity,
        DATE: date,
        TM_GRADE: num,
        TM_GRADE_SIGNAL: text,
        TM_GRADE_24h_PCT_CHANGE: num,
        TM_TRADER_GRADE_24H_CHANGE: num,
        FUNDAMENTAL_GRADE: num,
        MOMENTUM: text,
        QUANT_GRADE: num
    })
    .transform(row => ({
        tokenId: row.TOKEN_ID,
        date: row.DATE,
        tmGrade: row.TM_GRADE,
        signal: row.TM_GRADE_SIGNAL?.toLowerCase() ?? null,
        tmGradeChange24hPct: row.TM_GRADE_24h_PCT_CHANGE,
        traderGradeChange24hPct: row.TM_TRADER_GRADE_24H_CHANGE,
        fundamentalGrade: row.FUNDAMENTAL_GRADE,
        momentum: row.MOMENTUM,
        quantGrade: row.QUANT_GRADE
    }));
export type TmGrade = z.output<typeof TmGradeRow>;

export const TraderGradeRow = z
    .object({ ...identity, DATE: date, TA_GRADE: num, QUANT_GRADE: num, TM_TRADER_GRADE: num, TM_TRADER_GRADE_24H_PCT_CHANGE: num })
    .transform(row => ({
        tokenId: row.TOKEN_ID,
        date: row.DATE,
        traderGrade: row.TM_TRADER_GRADE,
        traderGradeChange24hPct: row.TM_TRADER_GRADE_24H_PCT_CHANGE,
        taGrade: row.TA_GRADE,
        quantGrade: row.QUANT_GRADE
    }));
export type TraderGrade = z.output<typeof TraderGradeRow>;

export const InvestorGradeRow = z
    .object({ ...identity, DATE: date, TM_INVESTOR_GRADE: num, FUNDAMENTAL_GRADE: num, TECHNOLOGY_GRADE: num, VALUATION_GRADE: num })
    .transform(row => ({
        tokenId: row.TOKEN_ID,
        date: row.DATE,
        investorGrade: row.TM_INVESTOR_GRADE,
        fundamentalGrade: row.FUNDAMENTAL_GRADE,
        technologyGrade: row.TECHNOLOGY_GRADE,
        valuationGrade: row.VALUATION_GRADE
    }));
export type InvestorGrade = z.output<typeof InvestorGradeRow>;

/** `1` bullish, `-1` bearish, `0` neutral; anything else is treated as unknown. */
export type SignalDirection = 'bullish' | 'bearish' | 'neutral';
const signalValue = num.transform((value): SignalDirection | null => (value === 1 ? 'bullish' : value === -1 ? 'bearish' : value === 0 ? 'neutral' : null));

export const TradingSignalRow = z
    .object({
        ...identity,
        DATE: date,
        TRADING_SIGNAL: signalValue,
        TOKEN_TREND: num,
        TRADING_SIGNALS_RETURNS: num,
        HOLDING_RETURNS: num,
        TM_TRADER_GRADE: num,
        TM_INVESTOR_GRADE: num,
        TM_LINK: text,
        tm_link: text
    })
    .transform(row => ({
        tokenId: row.TOKEN_ID,
        date: row.DATE,
        signal: row.TRADING_SIGNAL,
        trend: row.TOKEN_TREND,
        signalReturns: row.TRADING_SIGNALS_RETURNS,
        holdingReturns: row.HOLDING_RETURNS,
        traderGrade: row.TM_TRADER_GRADE,
        investorGrade: row.TM_INVESTOR_GRADE,
        link: row.TM_LINK ?? row.tm_link
    }));
export type TradingSignal = z.output<typeof TradingSignalRow>;

export const HourlySignalRow = z
    .object({ TOKEN_ID: num, TIMESTAMP: date, CLOSE: num, SIGNAL: signalValue, POSITION: num })
    .transform(row => ({ tokenId: row.TOKEN_ID, timestamp: row.TIMESTAMP, close: row.CLOSE, signal: row.SIGNAL, position: row.POSITION }));
export type HourlySignal = z.output<typeof HourlySignalRow>;

export const MoonshotRow = z
    .object({
        TOKEN_ID: num,
        TOKEN_NAME: text,
        TOKEN_SYMBOL: text,
        TM_TRADER_GRADE: num,
        TM_TRADER_GRADE_24H_PCT_CHANGE: num,
        MARKET_CAP: num,
        VOLUME_24H: num,
        MOONSHOT_AT: date,
        MOONSHOT_END_AT: date,
        MOONSHOT_ROI: num,
        PRICE_CHANGE_PERCENTAGE_7D_IN_CURRENCY: num
    })
    .transform(row => ({
        tokenId: row.TOKEN_ID,
        name: row.TOKEN_NAME,
        symbol: row.TOKEN_SYMBOL?.toUpperCase() ?? null,
        traderGrade: row.TM_TRADER_GRADE,
        traderGradeChange24hPct: row.TM_TRADER_GRADE_24H_PCT_CHANGE,
        marketCapUsd: row.MARKET_CAP,
        volume24hUsd: row.VOLUME_24H,
        moonshotAt: row.MOONSHOT_AT,
        moonshotEndAt: row.MOONSHOT_END_AT,
        roiPct: row.MOONSHOT_ROI,
        priceChange7dPct: row.PRICE_CHANGE_PERCENTAGE_7D_IN_CURRENCY
    }));
export type Moonshot = z.output<typeof MoonshotRow>;

export const DailyOhlcvRow = z
    .object({ TOKEN_ID: num, DATE: date, OPEN: num, HIGH: num, LOW: num, CLOSE: num, VOLUME: num })
    .transform(row => ({ tokenId: row.TOKEN_ID, date: row.DATE, open: row.OPEN, high: row.HIGH, low: row.LOW, close: row.CLOSE, volume: row.VOLUME }));
export type DailyOhlcv = z.output<typeof DailyOhlcvRow>;
