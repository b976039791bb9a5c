import { describe, expect, it } from 'vitest';
import type { DailyOhlcv, SignalDirection, TradingSignal } from '../../src/api/schemas.js';
import { analyseSignal, currentRun, gradeBand } from '../../src/analysis/signal-checks.js';

const NOW = Date.parse('2026-11-25T12:00:00Z');
const day = (offset: number) => new Date(NOW - offset * 86_400_000).toISOString().slice(0, 10);

/** Daily rows, newest first: `signals[0]` is today. */
function history(signals: SignalDirection[], grade = (offset: number) => 60 - offset): TradingSignal[] {
    return signals.map((signal, offset) => ({
        tokenId: 1,
        date: day(offset),
        signal,
        trend: null,
        signalReturns: null,
        holdingReturns: null,
        traderGrade: grade(offset),
        investorGrade: null,
        link: null
    }));
}

function candles(closes: number[], volumes: number[]): DailyOhlcv[] {
    return closes.map((close, offset) => ({ tokenId: 1, date: day(offset), open: close, high: close, low: close, close, volume: volumes[offset] ?? null }));
}

const repeat = <T>(value: T, count: number): T[] => Array.from({ length: count }, () => value);

describe('grade bands', () => {
    it('follows the design thresholds', () => {
        expect([85, 80, 79.9, 60, 55, 49].map(gradeBand)).toEqual(['high conviction', 'high conviction', 'trend forming', 'trend forming', 'neutral', 'deteriorating']);
    });
});

describe('current run', () => {
    it('finds the flip day and counts flips', () => {
        const run = currentRun(history([...repeat<SignalDirection>('bullish', 3), ...repeat<SignalDirection>('bearish', 5), 'bullish']));
        expect(run).toEqual({ signal: 'bullish', since: day(2), lowerBound: false, flips: 2 });
    });

    it('marks a signal that held for the whole window as a lower bound', () => {
        expect(currentRun(history(repeat<SignalDirection>('bearish', 29)))).toMatchObject({ since: day(28), lowerBound: true, flips: 0 });
    });
});

describe('analyseSignal', () => {
    it('reads a bearish call shared by BTC and ETH as market-wide pressure', () => {
        const bearish = history([...repeat<SignalDirection>('bearish', 4), ...repeat<SignalDirection>('bullish', 25)], offset => 40 + offset);
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
        expect(status).toMatchObject({ volume_confirms_price: 'pass', btc_eth_alignment: 'pass', grade_momentum: 'pass', narrative_fit: 'unknown' });
        expect(analysis.summary).toMatch(/market-wide pressure/);
        expect(analysis.summary).toMatch(/not investment advice/);
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
