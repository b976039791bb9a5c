import * as z from 'zod';
import { invalidInput } from '../api/errors.js';
import {
    DailyOhlcvRow,
    FundamentalGradeRow,
    MoonshotRow,
    PriceRow,
    TechnologyGradeRow,
    TmGradeRow,
    TokenRow,
    TradingSignalRow
} from '../api/schemas.js';
import {
    DailyOhlcvSchema,
    FundamentalGradeSchema,
    MoonshotSchema,
    newestFirst,
    PriceSchema,
    TechnologyGradeSchema,
    TmGradeSchema,
    TokenSchema,
    TradingSignalSchema,
    type DailyOhlcv,
    type Moonshot,
    type MoonshotType,
    type Token,
    type TradingSignal
} from '../domain/market.js';
import type { CachedEndpoint, Endpoint, Part } from './endpoint.js';
import { perToken, type TokenIds } from './per-token.js';
import {
    checkFilterValues,
    checkIds,
    chunk,
    clampDays,
    filterLists,
    lastDays,
    MAX_PAGE_SIZE,
    MAX_PAGES,
    titleCase,
    unique
} from './params.js';

/**
 * The registry: one record per upstream endpoint, the only place that knows its path (through its row schema), its
 * parameters and their rules (ids, filter values, date ranges), its TTL class, the key of each cache entry, how one
 * answer for many tokens splits per entry, and how entries make an answer. The client and the cache are generic over
 * these records: adding an endpoint is adding a record here (and to `CACHED_ENDPOINTS`) and a fixture for the fake.
 */

export interface TokenQuery {
    symbols?: readonly string[];
    names?: readonly string[];
    ids?: readonly number[];
}

/** Rows over the last `days` days (at most 29), newest first. */
export interface TokenIdsOverDays extends TokenIds {
    days: number;
}

export interface TokenOverDays {
    id: number;
    days: number;
}

export interface MoonshotQuery {
    type: MoonshotType;
    /** 1..50; every limit shares one cached page of 50 per type. */
    limit: number;
}

/** Price requests of concurrent calls share one upstream call: several tools asking at once pay one credit. */
export const PRICES = perToken('prices', 'price', PriceRow, PriceSchema, 'price', true);
export const TM_GRADES = perToken('tmGrades', 'tmgrade', TmGradeRow, TmGradeSchema, 'grades');
export const FUNDAMENTAL_GRADES = perToken('fundamentalGrades', 'fundamental', FundamentalGradeRow, FundamentalGradeSchema, 'grades');
export const TECHNOLOGY_GRADES = perToken('technologyGrades', 'technology', TechnologyGradeRow, TechnologyGradeSchema, 'grades');

type TokenPart = { kind: 'symbol' | 'name'; value: string } | { kind: 'id'; value: number };

/** Symbols are upper case already; names are matched case-insensitively, so they are keyed in lower case. */
const tokenKey = (part: TokenPart): string => `tokens:${part.kind}:${part.kind === 'name' ? part.value.toLowerCase() : part.value}`;

function matches(part: TokenPart, row: Token): boolean {
    if (part.kind === 'symbol') return row.symbol === part.value;
    if (part.kind === 'name') return row.name.toLowerCase() === part.value.toLowerCase();
    return row.tokenId === part.value;
}

const trimmed = (values: readonly string[] | undefined): string[] => (values ?? []).map(value => value.trim());

/** The first row of each token id. */
const distinctTokens = (rows: readonly Token[]): Token[] => {
    const seen = new Set<number>();
    return rows.filter(row => !seen.has(row.tokenId) && seen.add(row.tokenId));
};

/**
 * `/tokens`: one entry per symbol, name and id asked (`tokens:symbol:BTC`, `tokens:name:bitcoin`, `tokens:id:3375`),
 * an empty list when the upstream knows nothing of it. Symbols and names missing from the cache join their kind's
 * batch, so the lookups of concurrent calls share one comma-separated filter per kind (the upstream ANDs filters of
 * different kinds, so each kind has its own request). Ids go upstream with their own call: the rows of symbol and
 * name lookups answer `tokens:id:` entries for free, so an id (usually one taken from an earlier answer) is rarely
 * asked cold.
 */
export const TOKENS: CachedEndpoint<TokenQuery, Token, TokenPart, Token[], 'tokens'> = {
    name: 'tokens',
    row: TokenRow,
    key: 'tokens',
    ttl: 'tokens',
    entry: z.array(TokenSchema),
    batch: part => (part.kind === 'id' ? null : part.kind),
    requests(query) {
        const symbols = query.symbols ?? [];
        // The name filter may be case-sensitive upstream (unconfirmed): send each name as typed and title-cased, in one list.
        const names = unique((query.names ?? []).flatMap(name => [name.trim(), titleCase(name.trim())]));
        const ids = query.ids ?? [];
        checkFilterValues('symbol', symbols);
        checkFilterValues('name', names);
        checkIds(ids);
        return [
            ...filterLists(symbols).map(part => ({ symbol: part.join(',') })),
            ...filterLists(names).map(part => ({ token_name: part.join(',') })),
            ...chunk(ids).map(part => ({ token_id: part.join(',') }))
        ].map(filter => ({ query: filter, paged: true }));
    },
    parts(query) {
        // Checked here, before a value can join a batch: a bad one must fail its own call, not the batch's other callers.
        checkFilterValues('symbol', trimmed(query.symbols));
        checkFilterValues('name', trimmed(query.names));
        checkIds(query.ids ?? []);
        const parts = new Map<string, Part<TokenPart>>();
        for (const part of [
            ...(query.symbols ?? []).map(symbol => ({ kind: 'symbol' as const, value: symbol.trim().toUpperCase() })),
            // Sent upstream as typed (the name filter may be case-sensitive), keyed case-insensitively.
            ...(query.names ?? []).map(name => ({ kind: 'name' as const, value: name.trim() })),
            ...(query.ids ?? []).map(id => ({ kind: 'id' as const, value: id }))
        ]) {
            if (!parts.has(tokenKey(part))) parts.set(tokenKey(part), { key: tokenKey(part), part });
        }
        return [...parts.values()];
    },
    ask(parts) {
        const symbols = parts.flatMap(part => (part.kind === 'symbol' ? [part.value] : []));
        const names = parts.flatMap(part => (part.kind === 'name' ? [part.value] : []));
        const ids = parts.flatMap(part => (part.kind === 'id' ? [part.value] : []));
        return {
            ...(symbols.length > 0 ? { symbols } : {}),
            ...(names.length > 0 ? { names } : {}),
            ...(ids.length > 0 ? { ids } : {})
        };
    },
    split(rows, parts) {
        // Rows also answer `tokens:id:<id>` for free: an id names exactly one token, so asking for it later would return the same row.
        const values = new Map<string, Token[]>();
        for (const row of distinctTokens(rows)) values.set(`tokens:id:${row.tokenId}`, [row]);
        for (const { key, part } of parts) values.set(key, distinctTokens(rows.filter(row => matches(part, row))));
        return values;
    },
    answer: values => distinctTokens(values.flat())
};

/**
 * One page (100 rows) of the unfiltered token list, one credit: the directory symbol completion searches by prefix,
 * since the upstream's filters match whole symbols and names only. Not cached: completion keeps what it reads.
 */
export const TOKEN_DIRECTORY: Endpoint<{ page: number }, Token, 'tokenDirectory'> = {
    name: 'tokenDirectory',
    row: TokenRow,
    requests({ page }) {
        if (!Number.isSafeInteger(page) || page < 1 || page > MAX_PAGES)
            throw invalidInput(`The directory page must be 1 to ${MAX_PAGES}.`);
        return [{ query: { limit: MAX_PAGE_SIZE, page }, paged: false }];
    }
};

/** Daily signal rows per token and span: `signals:<id>:<days>`, days clamped to 1..29 (so 30 and 29 share an entry). */
export const TRADING_SIGNALS: CachedEndpoint<TokenIdsOverDays, TradingSignal, TokenOverDays, TradingSignal[], 'tradingSignals'> = {
    name: 'tradingSignals',
    row: TradingSignalRow,
    key: 'signals',
    ttl: 'signals',
    entry: z.array(TradingSignalSchema),
    batch: () => null,
    requests({ ids, days }, now) {
        checkIds(ids);
        const range = lastDays(days, now);
        return chunk(unique(ids)).map(part => ({ query: { token_id: part.join(','), ...range }, paged: true }));
    },
    order: newestFirst,
    parts({ ids, days }) {
        checkIds(ids);
        const span = clampDays(days);
        return unique(ids).map(id => ({ key: `signals:${id}:${span}`, part: { id, days: span } }));
    },
    // The parts of one call come from one question, so they share its span.
    ask: parts => ({ ids: parts.map(part => part.id), days: parts[0]!.days }),
    split: (rows, parts) => new Map(parts.map(({ key, part }) => [key, rows.filter(row => row.tokenId === part.id)])),
    answer: values => values.flat().sort(newestFirst)
};

/**
 * The upstream serves one page of up to 100 moonshots for one credit whatever the limit, and the tools offer 1..50:
 * fetching 50 every time lets every limit share one entry (`moonshots:<type>`).
 */
const MOONSHOT_FETCH_LIMIT = 50;

function checkMoonshotType(type: MoonshotType): void {
    if (type !== 'active' && type !== 'past') throw invalidInput('Moonshot type must be "active" or "past".');
}

export const MOONSHOTS: CachedEndpoint<MoonshotQuery, Moonshot, MoonshotType, Moonshot[], 'moonshots'> = {
    name: 'moonshots',
    row: MoonshotRow,
    key: 'moonshots',
    ttl: 'moonshots',
    entry: z.array(MoonshotSchema),
    batch: () => null,
    requests({ type, limit }) {
        checkMoonshotType(type);
        return [{ query: { type, limit: Math.max(1, Math.min(MAX_PAGE_SIZE, Math.floor(limit))), page: 1 }, paged: false }];
    },
    parts({ type, limit }) {
        checkMoonshotType(type);
        if (!Number.isFinite(limit)) throw invalidInput('The moonshot limit must be a number.');
        return [{ key: `moonshots:${type}`, part: type }];
    },
    ask: ([type]) => ({ type: type!, limit: MOONSHOT_FETCH_LIMIT }),
    split: (rows, [part]) => new Map([[part!.key, [...rows]]]),
    answer: ([rows], { limit }) => (rows ?? []).slice(0, Math.max(1, Math.min(MOONSHOT_FETCH_LIMIT, Math.floor(limit))))
};

/** Daily candles of one token over the last `days` days: `ohlcv:<id>:<days>`, days clamped to 1..29. */
export const DAILY_OHLCV: CachedEndpoint<TokenOverDays, DailyOhlcv, TokenOverDays, DailyOhlcv[], 'dailyOhlcv'> = {
    name: 'dailyOhlcv',
    row: DailyOhlcvRow,
    key: 'ohlcv',
    ttl: 'ohlcv',
    entry: z.array(DailyOhlcvSchema),
    batch: () => null,
    requests({ id, days }, now) {
        checkIds([id]);
        return [{ query: { token_id: id, ...lastDays(days, now) }, paged: true }];
    },
    order: newestFirst,
    parts({ id, days }) {
        checkIds([id]);
        const span = clampDays(days);
        return [{ key: `ohlcv:${id}:${span}`, part: { id, days: span } }];
    },
    ask: ([part]) => part!,
    split: (rows, [part]) => new Map([[part!.key, [...rows]]]),
    answer: ([rows]) => [...(rows ?? [])]
};

/** Every endpoint the cache answers, in the order of `CacheStats` and `get_usage`. */
export const CACHED_ENDPOINTS = [
    TOKENS,
    PRICES,
    TM_GRADES,
    FUNDAMENTAL_GRADES,
    TECHNOLOGY_GRADES,
    TRADING_SIGNALS,
    MOONSHOTS,
    DAILY_OHLCV
] as const;

/** The cached endpoints' names: the counters' names in `CacheStats` and `get_usage`. */
export type CacheEndpoint = (typeof CACHED_ENDPOINTS)[number]['name'];
export const CACHE_ENDPOINTS: readonly CacheEndpoint[] = CACHED_ENDPOINTS.map(endpoint => endpoint.name);
