import type { MarketData } from '../../src/api/client.js';
import { cancelled } from '../../src/api/errors.js';
import type {
    DailyOhlcv,
    FundamentalGrade,
    Moonshot,
    Price,
    TechnologyGrade,
    TmGrade,
    Token,
    TradingSignal
} from '../../src/domain/market.js';
import type { Endpoint } from '../../src/endpoints/endpoint.js';
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
    /** The endpoint's name, e.g. `prices`. */
    endpoint: string;
    /** The question as the cache asked it, e.g. `{ ids: [3375] }`. */
    params: unknown;
    signal: AbortSignal | undefined;
}

/** Every registry question's fields, as the fake reads them. */
interface Params {
    ids?: readonly number[];
    id?: number;
    symbols?: readonly string[];
    names?: readonly string[];
    limit?: number;
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

    /** Calls to the endpoint of that name (all calls when absent). */
    count(endpoint?: string): number {
        return endpoint === undefined ? this.calls.length : this.calls.filter(call => call.endpoint === endpoint).length;
    }

    async get<P, Row>(endpoint: Endpoint<P, Row>, params: P, signal?: AbortSignal): Promise<Row[]> {
        this.calls.push({ endpoint: endpoint.name, params, signal });
        await this.enter(signal);
        return this.rows(endpoint.name, params as Params) as Row[];
    }

    private rows(endpoint: string, params: Params): unknown[] {
        const ids = params.ids ?? [];
        switch (endpoint) {
            case 'tokens': {
                const symbols = new Set(params.symbols ?? []);
                const names = new Set((params.names ?? []).map(name => name.toLowerCase()));
                return this.tokensDb.filter(
                    row => symbols.has(row.symbol) || names.has(row.name.toLowerCase()) || ids.includes(row.tokenId)
                );
            }
            case 'prices':
                return ids
                    .filter(id => !this.missingPrices.has(id))
                    .map((id): Price => ({ tokenId: id, name: `Token ${id}`, symbol: `T${id}`, priceUsd: this.priceOf(id) }));
            case 'tmGrades':
                return ids.map((id): TmGrade => ({
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
            case 'fundamentalGrades':
                return ids.map((id): FundamentalGrade => ({
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
            case 'technologyGrades':
                return ids.map((id): TechnologyGrade => ({
                    tokenId: id,
                    date: '2026-01-15',
                    technologyGrade: 58,
                    activityScore: 40,
                    securityScore: 70,
                    repositoryScore: 55,
                    collaborationScore: null
                }));
            case 'tradingSignals':
                return ids.flatMap(id =>
                    [0, 1].map((offset): TradingSignal => ({
                        tokenId: id,
                        date: `2026-01-${String(15 - offset).padStart(2, '0')}`,
                        event: offset === 1 ? 1 : 0,
                        trend: 1,
                        signalReturns: 0.1,
                        holdingReturns: 0.05,
                        traderGrade: 70,
                        investorGrade: 60
                    }))
                );
            case 'moonshots':
                return Array.from({ length: params.limit ?? 0 }, (_, i) => moonshot(i));
            case 'dailyOhlcv':
                return [
                    { tokenId: params.id!, date: '2026-01-15', open: 1, high: 2, low: 0.5, close: 1.5, volume: 1000 } satisfies DailyOhlcv
                ];
            default:
                throw new Error(`FakeMarketData has no rows for ${endpoint}`);
        }
    }

    private async enter(signal: AbortSignal | undefined): Promise<void> {
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
