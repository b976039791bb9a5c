import { describe, expect, it } from 'vitest';
import type { DailyOhlcv, SignalDirection, SignalValue, TradingSignal } from '../../src/domain/market.js';
import { analyseSignal, currentRun, gradeBand } from '../../src/analysis/signal-checks.js';

const NOW = Date.parse('2026-11-25T12:00:00Z');
const day = (offset: number) => new Date(NOW - offset * 86_400_000).toISOString().slice(0, 10);

const VALUE: Record<SignalDirection, SignalValue> = { bullish: 1, bearish: -1, neutral: 0 };

/**
 * Daily rows, newest first (`trends[0]` is today), as the upstream sends them: `TOKEN_TREND` is the state on every
 * row, and `TRADING_SIGNAL` fires only on the day the trend changed (the oldest row's flip is outside the window).
 */
function history(trends: SignalDirection[], grade = (offset: number) => 60 - offset): TradingSignal[] {
    return trends.map((trend, offset) => {
        const older = trends[offset + 1];
        return {
            tokenId: 1,
            date: day(offset),
            event: older !== undefined && older !== trend ? VALUE[trend] : 0,
            trend: VALUE[trend],
            signalReturns: null,
            holdingReturns: null,
            traderGrade: grade(offset),
            investorGrade: null
        };
    });
}

function candles(closes: number[], volumes: number[]): DailyOhlcv[] {
    return closes.map((close, offset) => ({
        tokenId: 1,
        date: day(offset),
        open: close,
        high: close,
        low: close,
        close,
        volume: volumes[offset] ?? null
    }));
}

const repeat = <T>(value: T, count: number): T[] => Array.from({ length: count }, () => value);

describe('grade bands', () => {
    it('follows the design thresholds', () => {
        expect([85, 80, 79.9, 60, 55, 49].map(gradeBand)).toEqual([
            'high conviction',
            'high conviction',
            'trend forming',
            'trend forming',
            'neutral',
            'deteriorating'
        ]);
    });
});

describe('current run', () => {
    it('finds the flip day and counts flips', () => {
        const run = currentRun(history([...repeat<SignalDirection>('bullish', 3), ...repeat<SignalDirection>('bearish', 5), 'bullish']));
        expect(run).toEqual({ signal: 'bullish', since: day(2), lowerBound: false, flips: 2, rows: 9, newest: day(0), oldest: day(8) });
    });

    it('marks a signal that held for the whole window as a lower bound', () => {
        expect(currentRun(history(repeat<SignalDirection>('bearish', 29)))).toMatchObject({ since: day(28), lowerBound: true, flips: 0 });
    });

    it('takes the direction from TOKEN_TREND when the latest TRADING_SIGNAL is 0 (the one published row: BTC, 2025-04-10)', () => {
        const row: TradingSignal = {
            tokenId: 3375,
            date: '2025-04-10T00:00:00.000Z',
            event: 0,
            trend: -1,
            signalReturns: null,
            holdingReturns: null,
            traderGrade: null,
            investorGrade: null
        };
        expect(currentRun([row])).toEqual({
            signal: 'bearish',
            since: '2025-04-10',
            lowerBound: true,
            flips: 0,
            rows: 1,
            newest: '2025-04-10',
            oldest: '2025-04-10'
        });
    });

    it('dates the run from the latest non-zero TRADING_SIGNAL, even when the trend is the same on both sides of the window', () => {
        const rows = history(repeat<SignalDirection>('bearish', 6)).map((row, offset) => ({
            ...row,
            event: offset === 3 ? (-1 as const) : (0 as const)
        }));
        expect(currentRun(rows)).toMatchObject({ signal: 'bearish', since: day(3), lowerBound: false, flips: 1 });
    });

    it('speaks for the rows it received, never for a window it did not see', () => {
        const analysis = analyseSignal({
            symbol: 'X',
            history: history(repeat<SignalDirection>('bullish', 3)),
            candles: [],
            peers: [],
            nowMs: NOW
        });
        const byName = Object.fromEntries(analysis.checks.map(check => [check.name, check]));
        expect(byName.signal_stability?.evidence).toBe(`0 flip(s) in 3 daily rows since ${day(2)}. Too few rows to judge stability.`);
        expect(byName.signal_stability?.status).toBe('unknown');
        expect(byName.flip_timing?.evidence).toMatch(/^No flip in 3 daily rows since /);
        expect(analysis.checks.map(check => check.evidence).join(' ')).not.toMatch(/29/);
        expect(analysis).toMatchObject({ dataDate: day(0), rows: 3, since: day(2), sinceIsLowerBound: true });
    });
});

describe('analyseSignal', () => {
    it('reads a bearish call shared by BTC and ETH as market-wide pressure', () => {
        const bearish = history(
            [...repeat<SignalDirection>('bearish', 4), ...repeat<SignalDirection>('bullish', 25)],
            offset => 40 + offset
        );
        const analysis = analyseSignal({
            symbol: 'SOL',
            history: bearish,
            candles: candles(
                Array.from({ length: 20 }, (_, offset) => 100 + offset),
                Array.from({ length: 20 }, (_, offset) => 1000 - offset * 10)
            ),
            peers: [
                { symbol: 'BTC', history: history(repeat<SignalDirection>('bearish', 10)) },
                { symbol: 'ETH', history: history(repeat<SignalDirection>('bearish', 10)) }
            ],
            nowMs: NOW
        });
        expect(analysis.signal).toBe('bearish');
        expect(analysis.gradeBand).toBe('deteriorating');
        const status = Object.fromEntries(analysis.checks.map(check => [check.name, check.status]));
        expect(status).toMatchObject({
            volume_confirms_price: 'pass',
            btc_eth_alignment: 'pass',
            grade_momentum: 'pass',
            narrative_fit: 'unknown'
        });
        expect(analysis.summary).toMatch(/market-wide pressure/);
        expect(analysis.summary).toMatch(/not investment advice/i);
    });

    it('fails stability for repeated flips and says what it could not check', () => {
        const choppy = history(['bullish', 'bearish', 'bullish', 'bearish', 'bullish', 'bearish', 'bullish']);
        const analysis = analyseSignal({ symbol: 'X', history: choppy, candles: [], peers: [], nowMs: NOW });
        const byName = Object.fromEntries(analysis.checks.map(check => [check.name, check]));
        expect(byName.signal_stability?.status).toBe('fail');
        expect(byName.volume_confirms_price?.status).toBe('unknown');
        expect(byName.btc_eth_alignment?.status).toBe('unknown');
        expect(analysis.summary).toMatch(/Not checked: volume_confirms_price, btc_eth_alignment/);
    });

    it('explains nothing when there is no signal', () => {
        const analysis = analyseSignal({ symbol: 'X', history: [], candles: [], peers: [], nowMs: NOW });
        expect(analysis).toMatchObject({ signal: null, checks: [] });
        expect(analysis.summary).toMatch(/No trading signal/);
    });
});
