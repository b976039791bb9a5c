/**
 * The fake upstream's world: tokens with prices, grades, signal histories, candles and moonshots,
 * generated deterministically so tests and the bench see the same numbers on every run.
 */
export interface FakeToken {
    id: number;
    name: string;
    symbol: string;
    price: number;
    marketCap: number;
    volume24h: number;
    categories: string[];
    exchanges: string[];
}

const DAY_MS = 86_400_000;

const WELL_KNOWN: Array<Omit<FakeToken, 'volume24h' | 'categories'> & { categories?: string[] }> = [
    { id: 3375, name: 'Bitcoin', symbol: 'BTC', price: 97_250.12, marketCap: 1.92e12, exchanges: ['binance', 'coinbase', 'kraken', 'okx'] },
    { id: 3306, name: 'Ethereum', symbol: 'ETH', price: 3_412.55, marketCap: 4.1e11, exchanges: ['binance', 'coinbase', 'kraken', 'okx'] },
    { id: 3988, name: 'Solana', symbol: 'SOL', price: 187.3, marketCap: 8.9e10, exchanges: ['binance', 'coinbase', 'kraken'] },
    { id: 3369, name: 'XRP', symbol: 'XRP', price: 2.31, marketCap: 1.3e11, exchanges: ['binance', 'kraken'] },
    { id: 3408, name: 'Dogecoin', symbol: 'DOGE', price: 0.3812, marketCap: 5.6e10, exchanges: ['binance', 'coinbase'] },
    { id: 3387, name: 'Cardano', symbol: 'ADA', price: 0.98, marketCap: 3.4e10, exchanges: ['binance', 'coinbase'] },
    { id: 20211, name: 'Pepe', symbol: 'PEPE', price: 0.00001874, marketCap: 7.9e9, exchanges: ['binance', 'okx'] },
    { id: 3386, name: 'Uniswap', symbol: 'UNI', price: 12.44, marketCap: 7.5e9, exchanges: ['binance', 'coinbase', 'kraken'] },
    { id: 31007, name: 'Universe Token', symbol: 'UNI', price: 0.0021, marketCap: 1.2e6, exchanges: ['mexc'] },
    { id: 3427, name: 'Chainlink', symbol: 'LINK', price: 23.9, marketCap: 1.5e10, exchanges: ['binance', 'coinbase'] },
    { id: 3590, name: 'Polkadot', symbol: 'DOT', price: 7.12, marketCap: 1.05e10, exchanges: ['binance', 'kraken'] },
    { id: 3600, name: 'Avalanche', symbol: 'AVAX', price: 41.8, marketCap: 1.7e10, exchanges: ['binance', 'coinbase'] }
];

/** A small deterministic PRNG (mulberry32) so every run generates the same world. */
export function mulberry32(seed: number): () => number {
    let state = seed >>> 0;
    return () => {
        state = (state + 0x6d2b79f5) >>> 0;
        let t = state;
        t = Math.imul(t ^ (t >>> 15), t | 1);
        t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
        return ((t ^ (t >>> 14)) >>> 0) / 4_294_967_296;
    };
}

const round = (value: number, digits = 2): number => Number(value.toFixed(digits));

export class FakeWorld {
    readonly tokens: FakeToken[];

    constructor(readonly now: () => number = Date.now) {
        const random = mulberry32(42);
        const generated: FakeToken[] = [];
        for (let i = 0; i < 48; i++) {
            const price = round(0.001 + random() * 50, 6);
            generated.push({
                id: 40_000 + i,
                name: `Fake Token ${i}`,
                symbol: `FK${i}`,
                price,
                marketCap: round(5e6 + random() * 4e8, 0),
                volume24h: round(1e5 + random() * 5e7, 0),
                categories: ['defi'],
                exchanges: random() > 0.5 ? ['binance'] : ['mexc', 'gate']
            });
        }
        this.tokens = [
            ...WELL_KNOWN.map(token => ({
                ...token,
                volume24h: round(token.marketCap * 0.04, 0),
                categories: token.categories ?? ['layer-1']
            })),
            ...generated
        ];
    }

    byId(id: number): FakeToken | undefined {
        return this.tokens.find(token => token.id === id);
    }

    /** Per-token deterministic randomness, stable across calls. */
    private rng(id: number, salt: number): () => number {
        return mulberry32(id * 7919 + salt);
    }

    private day(offset: number): string {
        return new Date(this.now() - offset * DAY_MS).toISOString().slice(0, 10);
    }

    tokenRow(token: FakeToken): Record<string, unknown> {
        return {
            TOKEN_ID: token.id,
            TOKEN_NAME: token.name,
            TOKEN_SYMBOL: token.symbol,
            CATEGORY_LIST: token.categories,
            EXCHANGE_LIST: token.exchanges,
            CONTRACT_ADDRESS: null
        };
    }

    /** Prices arrive as strings for some tokens, as upstream sometimes does. */
    priceRow(token: FakeToken): Record<string, unknown> {
        return {
            TOKEN_ID: token.id,
            TOKEN_NAME: token.name,
            TOKEN_SYMBOL: token.symbol,
            CURRENT_PRICE: token.id % 2 === 0 ? String(token.price) : token.price
        };
    }

    traderGrade(token: FakeToken): number {
        if (token.symbol === 'ETH') return 84.2;
        if (token.symbol === 'BTC') return 71.5;
        return round(20 + this.rng(token.id, 1)() * 75);
    }

    tmGradeRow(token: FakeToken): Record<string, unknown> {
        const random = this.rng(token.id, 2);
        const tmGrade = round(30 + random() * 60);
        return {
            TOKEN_ID: token.id,
            TOKEN_NAME: token.name,
            TOKEN_SYMBOL: token.symbol,
            DATE: this.day(0),
            TM_GRADE: tmGrade,
            TM_GRADE_SIGNAL: tmGrade >= 60 ? 'bullish' : tmGrade < 45 ? 'bearish' : 'neutral',
            TM_GRADE_24h_PCT_CHANGE: String(round(random() * 10 - 5)),
            TM_TRADER_GRADE_24H_CHANGE: round(random() * 8 - 4),
            FUNDAMENTAL_GRADE: token.symbol === 'PEPE' ? null : round(40 + random() * 50),
            FUNDAMENTAL_GRADE_CLASS: 'B',
            MOMENTUM: random() > 0.5 ? 'positive' : 'negative',
            QUANT_GRADE: round(random() * 100)
        };
    }

    traderGradeRow(token: FakeToken): Record<string, unknown> {
        const random = this.rng(token.id, 3);
        return {
            TOKEN_ID: token.id,
            TOKEN_NAME: token.name,
            TOKEN_SYMBOL: token.symbol,
            DATE: this.day(0),
            TA_GRADE: round(random() * 100),
            QUANT_GRADE: round(random() * 100),
            TM_TRADER_GRADE: this.traderGrade(token),
            TM_TRADER_GRADE_24H_PCT_CHANGE: round(random() * 10 - 5)
        };
    }

    investorGradeRow(token: FakeToken): Record<string, unknown> {
        const random = this.rng(token.id, 4);
        return {
            TOKEN_ID: token.id,
            TOKEN_NAME: token.name,
            TOKEN_SYMBOL: token.symbol,
            DATE: this.day(0),
            TM_INVESTOR_GRADE: round(30 + random() * 60),
            FUNDAMENTAL_GRADE: round(random() * 100),
            TECHNOLOGY_GRADE: null,
            VALUATION_GRADE: String(round(random() * 100))
        };
    }

    /**
     * Daily signal rows, newest first, for the last `days` days. The signal flips a few days back so
     * "since when" has an answer: ETH turned bullish 3 days ago, BTC 5 days ago; others vary.
     */
    tradingSignalRows(token: FakeToken, days: number): Array<Record<string, unknown>> {
        const random = this.rng(token.id, 5);
        const flipDaysAgo = token.symbol === 'ETH' ? 3 : token.symbol === 'BTC' ? 5 : 2 + Math.floor(random() * 10);
        const current = token.symbol === 'ETH' || token.symbol === 'BTC' ? 1 : random() > 0.5 ? 1 : -1;
        const grade = this.traderGrade(token);
        const rows: Array<Record<string, unknown>> = [];
        for (let offset = 0; offset < days; offset++) {
            const signal = offset < flipDaysAgo ? current : -current;
            rows.push({
                TOKEN_ID: token.id,
                TOKEN_NAME: token.name,
                TOKEN_SYMBOL: token.symbol,
                DATE: this.day(offset),
                TRADING_SIGNAL: signal,
                TOKEN_TREND: signal,
                TRADING_SIGNALS_RETURNS: round(random() * 2 - 0.5, 4),
                HOLDING_RETURNS: round(random() * 2 - 0.5, 4),
                TM_TRADER_GRADE: round(grade - offset * 0.8),
                TM_INVESTOR_GRADE: offset % 3 === 0 ? String(round(55 + random() * 20)) : round(55 + random() * 20),
                tm_link: `https://app.tokenmetrics.com/en/${token.name.toLowerCase().replace(/\s+/g, '-')}`,
                TM_LINK: `https://app.tokenmetrics.com/en/${token.name.toLowerCase().replace(/\s+/g, '-')}`
            });
        }
        return rows;
    }

    hourlySignalRows(token: FakeToken): Array<Record<string, unknown>> {
        const rows: Array<Record<string, unknown>> = [];
        for (let hour = 0; hour < 24; hour++) {
            rows.push({
                TOKEN_ID: token.id,
                TOKEN_NAME: token.name,
                TOKEN_SYMBOL: token.symbol,
                TIMESTAMP: new Date(this.now() - hour * 3_600_000).toISOString(),
                CLOSE: round(token.price * (1 - hour * 0.001), 8),
                SIGNAL: hour < 6 ? 1 : 0,
                POSITION: hour < 6 ? 1 : 0
            });
        }
        return rows;
    }

    /** Candles newest first; for ETH, volume rises with price over the last week (a confirming sign). */
    ohlcvRows(token: FakeToken, days: number): Array<Record<string, unknown>> {
        const random = this.rng(token.id, 6);
        const rows: Array<Record<string, unknown>> = [];
        for (let offset = 0; offset < days; offset++) {
            const drift = token.symbol === 'ETH' ? 1 - offset * 0.01 : 1 + (random() - 0.5) * 0.05;
            const close = round(token.price * drift, 8);
            const volume = token.symbol === 'ETH' ? round(token.volume24h * (1 - offset * 0.03), 0) : round(token.volume24h * (0.7 + random() * 0.6), 0);
            rows.push({
                TOKEN_ID: token.id,
                TOKEN_NAME: token.name,
                TOKEN_SYMBOL: token.symbol,
                DATE: this.day(offset),
                OPEN: round(close * 0.99, 8),
                HIGH: round(close * 1.02, 8),
                LOW: round(close * 0.97, 8),
                CLOSE: close,
                VOLUME: offset === 4 ? null : volume
            });
        }
        return rows;
    }

    moonshotRows(type: 'active' | 'past'): Array<Record<string, unknown>> {
        const candidates = this.tokens.filter(token => token.id >= 40_000);
        const picked = type === 'active' ? candidates.slice(0, 14) : candidates.slice(14, 40);
        return picked.map((token, index) => {
            const random = this.rng(token.id, 7);
            return {
                TOKEN_ID: token.id,
                TOKEN_NAME: token.name,
                TOKEN_SYMBOL: token.symbol,
                TM_TRADER_GRADE: round(60 + random() * 35),
                TM_TRADER_GRADE_24H_PCT_CHANGE: round(random() * 20 - 5),
                MARKET_CAP: index % 4 === 0 ? String(token.marketCap) : token.marketCap,
                VOLUME_24H: token.volume24h,
                MOONSHOT_AT: new Date(this.now() - (index + 1) * 5 * 3_600_000).toISOString(),
                MOONSHOT_END_AT: type === 'past' ? new Date(this.now() - index * 3_600_000).toISOString() : null,
                MOONSHOT_ROI: type === 'past' ? round(random() * 300 - 50) : null,
                PRICE_CHANGE_PERCENTAGE_7D_IN_CURRENCY: round(random() * 60 - 10)
            };
        });
    }
}
