import type { MarketData, TokenQuery } from '../../src/api/client.js';
import { cancelled } from '../../src/api/errors.js';
import type {
    DailyOhlcv,
    FundamentalGrade,
    Moonshot,
    MoonshotType,
    Price,
    TechnologyGrade,
    TmGrade,
    Token,
    TradingSignal
} from '../../src/domain/market.js';
import type { LogFields, Logger, LogLevel } from '../../src/logger.js';
import { FakeClock as SharedFakeClock } from '../helpers/clock.js';

/** The cache tests' clock: the shared test clock, started mid-January so that the fake rows' dates are recent. */
export class FakeClock extends SharedFakeClock {
    constructor(start = Date.UTC(2026, 0, 15, 12, 0, 0)) {
        super(start);
    }
}

export interface LogLine {
    level: LogLevel;
    msg: string;
    fields: LogFields;
}

export class RecordingLogger implements Logger {
    readonly lines: LogLine[] = [];
    error(msg: string, fields: LogFields = {}): void {
        this.lines.push({ level: 'error', msg, fields });
    }
    warn(msg: string, fields: LogFields = {}): void {
        this.lines.push({ level: 'warn', msg, fields });
    }
    info(msg: string, fields: LogFields = {}): void {
        this.lines.push({ level: 'info', msg, fields });
    }
    debug(msg: string, fields: LogFields = {}): void {
        this.lines.push({ level: 'debug', msg, fields });
    }
    get warnings(): LogLine[] {
        return this.lines.filter(line => line.level === 'warn');
    }
}

export interface InnerCall {
    method: keyof MarketData;
    args: unknown[];
    signal: AbortSignal | undefined;
}

export const token = (tokenId: number, symbol: string, name: string): Token => ({
    tokenId,
    symbol,
    name,
    categories: [],
    exchanges: [],
    contracts: {}
});

export const TOKENS: Token[] = [
    token(3375, 'BTC', 'Bitcoin'),
    token(3306, 'ETH', 'Ethereum'),
    token(3988, 'SOL', 'Solana'),
    token(9001, 'PEPE', 'Pepe')
];

const moonshot = (i: number): Moonshot => ({
    tokenId: 10_000 + i,
    name: `Moon ${i}`,
    symbol: `MOON${i}`,
    traderGrade: 80,
    traderGradeChange24hPct: 1,
    marketCapUsd: 1_000_000,
    volume24hUsd: 50_000,
    moonshotAt: '2026-01-14',
    moonshotEndAt: null,
    roiPct: 12,
    priceChange7dPct: 3,
    lastSignalAt: null
});

/**
 * An in-memory `MarketData` that records every call (each one is a credit) and can be made to fail or to hold its
 * answers until the test releases them, so concurrency is deterministic.
 */
export class FakeMarketData implements MarketData {
    readonly calls: InnerCall[] = [];
    tokensDb: Token[] = [...TOKENS];
    /** Ids the price endpoint leaves out of its answer. */
    missingPrices = new Set<number>();
    priceOf = (id: number): number => id / 100;
    /** Thrown by every call while set. */
    failure: Error | null = null;
    private gate: Promise<void> | null = null;

    /** Calls made from now on wait until the returned function is called (or their signal aborts). */
    hold(): () => void {
        let release!: () => void;
        this.gate = new Promise<void>(resolve => (release = resolve));
        return () => {
            this.gate = null;
            release();
        };
    }

    count(method?: keyof MarketData): number {
        return method === undefined ? this.calls.length : this.calls.filter(call => call.method === method).length;
    }

    async tokens(query: TokenQuery, signal?: AbortSignal): Promise<Token[]> {
        await this.enter('tokens', [query], signal);
        const symbols = new Set(query.symbols ?? []);
        const names = new Set((query.names ?? []).map(name => name.toLowerCase()));
        const ids = new Set(query.ids ?? []);
        return this.tokensDb.filter(row => symbols.has(row.symbol) || names.has(row.name.toLowerCase()) || ids.has(row.tokenId));
    }

    async prices(tokenIds: readonly number[], signal?: AbortSignal): Promise<Price[]> {
        await this.enter('prices', [[...tokenIds]], signal);
        return tokenIds
            .filter(id => !this.missingPrices.has(id))
            .map(id => ({ tokenId: id, name: `Token ${id}`, symbol: `T${id}`, priceUsd: this.priceOf(id) }));
    }

    async tmGrades(tokenIds: readonly number[], signal?: AbortSignal): Promise<TmGrade[]> {
        await this.enter('tmGrades', [[...tokenIds]], signal);
        return tokenIds.map(id => ({
            tokenId: id,
            tmGrade: 75,
            signalLabel: 'Buy',
            momentum: 'Gaining Momentum',
            change24hPts: 1.5,
            change24hPct: 2,
            fundamentalGrade: 60,
            fundamentalClass: 'B',
            quantGrade: null
        }));
    }

    async fundamentalGrades(tokenIds: readonly number[], signal?: AbortSignal): Promise<FundamentalGrade[]> {
        await this.enter('fundamentalGrades', [[...tokenIds]], signal);
        return tokenIds.map(id => ({
            tokenId: id,
            date: '2026-01-15',
            fundamentalGrade: 64,
            fundamentalClass: 'A',
            communityScore: 50,
            exchangeScore: 60,
            vcScore: null,
            tokenomicsScore: 70,
            defiScannerScore: null
        }));
    }

    async technologyGrades(tokenIds: readonly number[], signal?: AbortSignal): Promise<TechnologyGrade[]> {
        await this.enter('technologyGrades', [[...tokenIds]], signal);
        return tokenIds.map(id => ({
            tokenId: id,
            date: '2026-01-15',
            technologyGrade: 58,
            activityScore: 40,
            securityScore: 70,
            repositoryScore: 55,
            collaborationScore: null
        }));
    }

    async tradingSignals(tokenIds: readonly number[], days: number, signal?: AbortSignal): Promise<TradingSignal[]> {
        await this.enter('tradingSignals', [[...tokenIds], days], signal);
        return tokenIds.flatMap(id =>
            [0, 1].map(offset => ({
                tokenId: id,
                date: `2026-01-${String(15 - offset).padStart(2, '0')}`,
                event: offset === 1 ? (1 as const) : (0 as const),
                trend: 1 as const,
                signalReturns: 0.1,
                holdingReturns: 0.05,
                traderGrade: 70,
                investorGrade: 60
            }))
        );
    }

    async moonshots(type: MoonshotType, limit: number, signal?: AbortSignal): Promise<Moonshot[]> {
        await this.enter('moonshots', [type, limit], signal);
        return Array.from({ length: limit }, (_, i) => moonshot(i));
    }

    async dailyOhlcv(tokenId: number, days: number, signal?: AbortSignal): Promise<DailyOhlcv[]> {
        await this.enter('dailyOhlcv', [tokenId, days], signal);
        return [{ tokenId, date: '2026-01-15', open: 1, high: 2, low: 0.5, close: 1.5, volume: 1000 }];
    }

    private async enter(method: keyof MarketData, args: unknown[], signal: AbortSignal | undefined): Promise<void> {
        this.calls.push({ method, args, signal });
        const gate = this.gate;
        if (gate !== null) {
            await new Promise<void>((resolve, reject) => {
                const onAbort = (): void => reject(cancelled());
                if (signal?.aborted) return onAbort();
                signal?.addEventListener('abort', onAbort, { once: true });
                void gate.then(() => {
                    signal?.removeEventListener('abort', onAbort);
                    resolve();
                });
            });
        }
        if (this.failure !== null) throw this.failure;
    }
}
