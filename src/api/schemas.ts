import type { DailyOhlcv, FundamentalGrade, Moonshot, Price, TechnologyGrade, TmGrade, Token, TradingSignal } from '../domain/market.js';
import { addresses, date, id, label, names, number, signal, text, type Field } from './fields.js';

/**
 * The only module that knows upstream field names: one row schema per endpoint, parsed per field into the domain
 * types of `src/domain/market.ts`. Shapes follow the vendor's own code (cited per endpoint; `test/fixtures/upstream`
 * holds a sample of each). A field of the wrong kind is `null` and reported, never a failed answer; only a row that
 * lacks its identity is dropped (and counted).
 */

type Fields = Record<string, Field<unknown>>;
type Values<F extends Fields> = { [K in keyof F]: F[K] extends Field<infer T> ? T | null : never };
type Present<V, K extends keyof V> = V & { [P in K]: NonNullable<V[P]> };

export interface RowSchema<T> {
    endpoint: string;
    fields: Fields;
    /** Names of `fields` that must be present for a row to count; empty when any row counts. */
    identity: readonly string[];
    /** For rows whose identity is "one of": the row is kept when any of these is present. */
    identityAny: readonly string[];
    build(values: Record<string, unknown>): T;
}

/** A row schema: `fields` read per field, rows kept when they carry `identity`, then built into the domain type. */
export function rowSchema<F extends Fields, K extends keyof F & string, T>(
    endpoint: string,
    fields: F,
    identity: { all?: readonly K[]; any?: readonly K[] },
    build: (values: Present<Values<F>, K>) => T
): RowSchema<T> {
    return {
        endpoint,
        fields,
        identity: identity.all ?? [],
        identityAny: identity.any ?? [],
        build
    };
}

/** Names and symbols are anyone's to choose (a token launch): `label` cleans and bounds them at 64 characters. */
const identityFields = { tokenId: id('TOKEN_ID'), name: label('TOKEN_NAME'), symbol: label('TOKEN_SYMBOL') };

/** `/tokens`: tmai-langchain-tools `tools/tokens.py`; eliza-tmai-agent `sqlQueryTemplate.ts`. */
export const TokenRow = rowSchema(
    '/tokens',
    {
        ...identityFields,
        categories: names(['category_name', 'category_slug', 'category_id'], 'CATEGORY_LIST'),
        exchanges: names(['exchange_name', 'exchange_id'], 'EXCHANGE_LIST'),
        contracts: addresses('CONTRACT_ADDRESS')
    },
    { all: ['tokenId'] },
    (row): Token => ({
        tokenId: row.tokenId,
        name: row.name ?? row.symbol ?? `#${row.tokenId}`,
        symbol: (row.symbol ?? '').toUpperCase(),
        categories: row.categories ?? [],
        exchanges: row.exchanges ?? [],
        contracts: row.contracts ?? {}
    })
);

/** `/price`: token-metrics/mcp `src/tools/price.ts`. */
export const PriceRow = rowSchema(
    '/price',
    { ...identityFields, price: number('CURRENT_PRICE', 'PRICE') },
    { all: ['tokenId'] },
    (row): Price => ({ tokenId: row.tokenId, name: row.name, symbol: row.symbol?.toUpperCase() ?? null, priceUsd: row.price })
);

/**
 * `/tm-grade`: token-metrics/mcp `src/tools/tm-grade.ts` (no `DATE`; numbers as strings). Its docs in two revisions
 * disagree: `FUNDAMENTAL_GRADE` + `FUNDAMENTAL_GRADE_CLASS` in one, `QUANT_GRADE` in the other, so both are read.
 */
export const TmGradeRow = rowSchema(
    '/tm-grade',
    {
        tokenId: identityFields.tokenId,
        tmGrade: number('TM_GRADE'),
        signalLabel: text('TM_GRADE_SIGNAL'),
        momentum: text('MOMENTUM'),
        change24hPts: number('TM_TRADER_GRADE_24H_CHANGE'),
        change24hPct: number('TM_GRADE_24H_PCT_CHANGE'),
        fundamentalGrade: number('FUNDAMENTAL_GRADE'),
        fundamentalClass: text('FUNDAMENTAL_GRADE_CLASS'),
        quantGrade: number('QUANT_GRADE')
    },
    { all: ['tokenId'] },
    (row): TmGrade => ({
        tokenId: row.tokenId,
        tmGrade: row.tmGrade,
        signalLabel: row.signalLabel,
        momentum: row.momentum,
        change24hPts: row.change24hPts,
        change24hPct: row.change24hPct,
        fundamentalGrade: row.fundamentalGrade,
        fundamentalClass: row.fundamentalClass,
        quantGrade: row.quantGrade
    })
);

/** `/fundamental-grade`: plugin-tokenmetrics `src/types.ts`; the vendor's examples read community/exchange/VC/tokenomics scores. */
export const FundamentalGradeRow = rowSchema(
    '/fundamental-grade',
    {
        tokenId: identityFields.tokenId,
        date: date('DATE'),
        fundamentalGrade: number('FUNDAMENTAL_GRADE'),
        fundamentalClass: text('FUNDAMENTAL_GRADE_CLASS'),
        communityScore: number('COMMUNITY_SCORE'),
        exchangeScore: number('EXCHANGE_SCORE'),
        vcScore: number('VC_SCORE'),
        tokenomicsScore: number('TOKENOMICS_SCORE'),
        defiScannerScore: number('DEFI_SCANNER_SCORE')
    },
    { all: ['tokenId'] },
    (row): FundamentalGrade => ({ ...row })
);

/** `/technology-grade`: token-metrics/mcp `src/tools/technology-grade.ts`. */
export const TechnologyGradeRow = rowSchema(
    '/technology-grade',
    {
        tokenId: identityFields.tokenId,
        date: date('DATE'),
        technologyGrade: number('TECHNOLOGY_GRADE'),
        activityScore: number('ACTIVITY_SCORE'),
        securityScore: number('SECURITY_SCORE'),
        repositoryScore: number('REPOSITORY_SCORE'),
        collaborationScore: number('COLLABORATION_SCORE')
    },
    { all: ['tokenId'] },
    (row): TechnologyGrade => ({ ...row })
);

/**
 * `/trading-signals`: token-metrics/mcp `src/tools/trading-signal.ts`. `TRADING_SIGNAL` is the strategy's signal of
 * that day (an event: 1 or -1 on a flip day, 0 otherwise); `TOKEN_TREND` is "the value of the last bullish or bearish
 * signal", the state. A row without a trend falls back to its event.
 */
export const TradingSignalRow = rowSchema(
    '/trading-signals',
    {
        tokenId: identityFields.tokenId,
        date: date('DATE', 'TIMESTAMP'),
        event: signal('TRADING_SIGNAL'),
        trend: signal('TOKEN_TREND'),
        signalReturns: number('TRADING_SIGNALS_RETURNS'),
        holdingReturns: number('HOLDING_RETURNS'),
        traderGrade: number('TM_TRADER_GRADE'),
        investorGrade: number('TM_INVESTOR_GRADE')
    },
    { all: ['tokenId'] },
    (row): TradingSignal => ({ ...row, trend: row.trend ?? row.event })
);

/** `/moonshot-tokens`: token-metrics/mcp `src/tools/moonshot-tokens.ts`, tmai-api-sdk-typescript `MoonshotToken`: no `TOKEN_ID`. */
export const MoonshotRow = rowSchema(
    '/moonshot-tokens',
    {
        tokenId: identityFields.tokenId,
        name: identityFields.name,
        symbol: identityFields.symbol,
        traderGrade: number('TM_TRADER_GRADE'),
        traderGradeChange24hPct: number('TM_TRADER_GRADE_24H_PCT_CHANGE'),
        marketCapUsd: number('MARKET_CAP'),
        volume24hUsd: number('VOLUME_24H'),
        moonshotAt: date('MOONSHOT_AT'),
        moonshotEndAt: date('MOONSHOT_END_AT'),
        roiPct: number('MOONSHOT_ROI'),
        priceChange7dPct: number('PRICE_CHANGE_PERCENTAGE_7D_IN_CURRENCY'),
        lastSignalAt: date('LAST_TRADING_SIGNAL_TIME')
    },
    { any: ['symbol', 'name'] },
    (row): Moonshot => ({ ...row, symbol: row.symbol?.toUpperCase() ?? null })
);

/** `/daily-ohlcv`: the docs name the day `DATE`; token-metrics/mcp `src/tools/daily-ohlcv.ts` types it `TIMESTAMP`. */
export const DailyOhlcvRow = rowSchema(
    '/daily-ohlcv',
    {
        tokenId: identityFields.tokenId,
        date: date('DATE', 'TIMESTAMP'),
        open: number('OPEN'),
        high: number('HIGH'),
        low: number('LOW'),
        close: number('CLOSE'),
        volume: number('VOLUME')
    },
    { all: ['tokenId'] },
    (row): DailyOhlcv => ({ ...row })
);

/** Every row schema, for `doctor` and the property tests. */
export const ROW_SCHEMAS = [
    TokenRow,
    PriceRow,
    TmGradeRow,
    FundamentalGradeRow,
    TechnologyGradeRow,
    TradingSignalRow,
    MoonshotRow,
    DailyOhlcvRow
] as const;
