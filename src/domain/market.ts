import * as z from 'zod';

/**
 * The market data the tools work with, in types this project owns. Upstream rows are mapped into these at the
 * edge (`src/api/schemas.ts`); the cache stores them, and a value read back from disk or from a shared tier is
 * checked against the same schemas before anyone uses it, since a file or a Redis entry is not trusted blindly.
 * Every field but a row's identity may be `null`: the upstream omits fields, and an absent value is never invented.
 */

const tokenId = z.number().int().positive();
const maybeNumber = z.number().nullable();
const maybeText = z.string().nullable();

export const TokenSchema = z.object({
    tokenId,
    name: z.string(),
    symbol: z.string(),
    categories: z.array(z.string()),
    exchanges: z.array(z.string()),
    /** Chain name -> contract address. */
    contracts: z.record(z.string(), z.string())
});
export type Token = z.output<typeof TokenSchema>;

export const PriceSchema = z.object({ tokenId, name: maybeText, symbol: maybeText, priceUsd: maybeNumber });
export type Price = z.output<typeof PriceSchema>;

/** The latest TM grade. The upstream row has no date of its own. */
export const TmGradeSchema = z.object({
    tokenId,
    tmGrade: maybeNumber,
    /** Strong Buy, Buy, Neutral, Sell or Strong Sell, as the upstream writes it. */
    signalLabel: maybeText,
    /** Text such as "Gaining Momentum". */
    momentum: maybeText,
    /** Absolute change of the TM grade over 24 h, in grade points (`TM_TRADER_GRADE_24H_CHANGE`). */
    change24hPts: maybeNumber,
    /** The same change in percent (`TM_GRADE_24h_PCT_CHANGE`). */
    change24hPct: maybeNumber,
    /** One revision of the endpoint carries the fundamental grade, another a quant grade instead. */
    fundamentalGrade: maybeNumber,
    fundamentalClass: maybeText,
    quantGrade: maybeNumber
});
export type TmGrade = z.output<typeof TmGradeSchema>;

export const FundamentalGradeSchema = z.object({
    tokenId,
    date: maybeText,
    fundamentalGrade: maybeNumber,
    fundamentalClass: maybeText,
    communityScore: maybeNumber,
    exchangeScore: maybeNumber,
    vcScore: maybeNumber,
    tokenomicsScore: maybeNumber,
    defiScannerScore: maybeNumber
});
export type FundamentalGrade = z.output<typeof FundamentalGradeSchema>;

export const TechnologyGradeSchema = z.object({
    tokenId,
    date: maybeText,
    technologyGrade: maybeNumber,
    activityScore: maybeNumber,
    securityScore: maybeNumber,
    repositoryScore: maybeNumber,
    collaborationScore: maybeNumber
});
export type TechnologyGrade = z.output<typeof TechnologyGradeSchema>;

/** `1` bullish, `-1` bearish, `0` none. */
const SignalValueSchema = z.union([z.literal(1), z.literal(0), z.literal(-1)]);
export type SignalValue = z.output<typeof SignalValueSchema>;
export type SignalDirection = 'bullish' | 'bearish' | 'neutral';

export const directionOf = (value: SignalValue): SignalDirection => (value === 1 ? 'bullish' : value === -1 ? 'bearish' : 'neutral');

/**
 * One day of a token's trading-signal strategy. `event` is `TRADING_SIGNAL`: non-zero only on the day the strategy
 * flips. `trend` is `TOKEN_TREND`, the last non-zero signal, i.e. the state that holds (or `event` when a row has no
 * trend). Both are needed: the direction is the trend, the day it started is the latest non-zero event.
 */
export const TradingSignalSchema = z.object({
    tokenId,
    date: maybeText,
    event: SignalValueSchema.nullable(),
    trend: SignalValueSchema.nullable(),
    signalReturns: maybeNumber,
    holdingReturns: maybeNumber,
    traderGrade: maybeNumber,
    investorGrade: maybeNumber
});
export type TradingSignal = z.output<typeof TradingSignalSchema>;

/** A moonshot pick. The upstream rows carry no token id, so `tokenId` is null unless a row happens to have one. */
export const MoonshotSchema = z.object({
    tokenId: tokenId.nullable(),
    name: maybeText,
    symbol: maybeText,
    traderGrade: maybeNumber,
    traderGradeChange24hPct: maybeNumber,
    marketCapUsd: maybeNumber,
    volume24hUsd: maybeNumber,
    moonshotAt: maybeText,
    moonshotEndAt: maybeText,
    /** Live return of an active pick, final return of a past one, in percent. */
    roiPct: maybeNumber,
    priceChange7dPct: maybeNumber,
    lastSignalAt: maybeText
});
export type Moonshot = z.output<typeof MoonshotSchema>;

export const DailyOhlcvSchema = z.object({
    tokenId,
    date: maybeText,
    open: maybeNumber,
    high: maybeNumber,
    low: maybeNumber,
    close: maybeNumber,
    volume: maybeNumber
});
export type DailyOhlcv = z.output<typeof DailyOhlcvSchema>;

export type MoonshotType = 'active' | 'past';

/** Rows newest first by their own date; rows without a date go last. */
export function newestFirst<T extends { date: string | null }>(a: T, b: T): number {
    return (b.date ?? '').localeCompare(a.date ?? '');
}
