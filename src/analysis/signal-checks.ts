import { decimal } from '../decimal.js';
import { directionOf, type DailyOhlcv, type SignalDirection, type TradingSignal } from '../domain/market.js';

/**
 * The domain rules of DESIGN.md section 6, as pure functions: what a signal is, since when, and which
 * confirming checks pass, each with the numbers and dates behind it.
 */

/** Days of daily signal history read per token (the upstream's 29-day window): one cache entry serves every tool. */
export const SIGNAL_HISTORY_DAYS = 29;
/** Days of daily candles read for the volume/price check and the move since the flip. */
export const CANDLE_DAYS = 29;

export type CheckStatus = 'pass' | 'fail' | 'unknown';

/** Short names for the checks in the text a model reads; `checks[].name` keeps the full ones. */
const CHECK_LABELS: Readonly<Record<string, string>> = {
    volume_confirms_price: 'volume',
    btc_eth_alignment: 'BTC/ETH',
    flip_timing: 'flip',
    signal_stability: 'stability',
    grade_momentum: 'grade trend',
    narrative_fit: 'narrative'
};

export const checkLabel = (check: SignalCheck): string => CHECK_LABELS[check.name] ?? check.name;

export interface SignalCheck {
    name: string;
    status: CheckStatus;
    evidence: string;
}

export interface SignalAnalysis {
    signal: SignalDirection | null;
    /** First day of the current signal run; a lower bound when `sinceIsLowerBound`. */
    since: string | null;
    sinceIsLowerBound: boolean;
    /** The newest signal row's own day: what "current" means for this answer. */
    dataDate: string | null;
    /** Daily signal rows the analysis had, which is what its history checks can speak for. */
    rows: number;
    traderGrade: number | null;
    gradeBand: string | null;
    checks: SignalCheck[];
    summary: string;
    /** The summary without what the checks and the headline already say: the verdict alone, for a compact text. */
    verdict: string;
}

export interface PeerSignal {
    symbol: string;
    history: readonly TradingSignal[];
}

const DISCLAIMER = 'Not investment advice.';

export function gradeBand(value: number): string {
    if (value >= 80) return 'high conviction';
    if (value >= 60) return 'trend forming';
    if (value >= 50) return 'neutral';
    return 'deteriorating';
}

const fmt = (value: number, digits = 2): string => decimal(value, digits, 0);
const signed = (value: number) => `${value > 0 ? '+' : ''}${value.toFixed(1)}%`;
const change = (from: number, to: number) => ((to - from) / Math.abs(from)) * 100;

/** Rows with a known direction and date, newest first. */
function known(history: readonly TradingSignal[]): TradingSignal[] {
    return history.filter(row => row.trend !== null && row.date !== null).sort((a, b) => b.date!.localeCompare(a.date!));
}

/** A flip day: the strategy fired (non-zero `TRADING_SIGNAL`), or the trend differs from the day before. */
function isFlip(rows: readonly TradingSignal[], i: number): boolean {
    const row = rows[i]!;
    const before = rows[i + 1];
    return (row.event !== null && row.event !== 0) || (before !== undefined && before.trend !== row.trend);
}

export interface SignalRun {
    signal: SignalDirection | null;
    /** The latest flip day, or the oldest row when the window holds no flip (then `lowerBound`). */
    since: string | null;
    lowerBound: boolean;
    flips: number;
    /** Rows with a direction, and the days they span. */
    rows: number;
    newest: string | null;
    oldest: string | null;
}

/**
 * The current direction is the newest row's `TOKEN_TREND` (the state); the day it began is the latest flip day, where
 * `TRADING_SIGNAL` fired or the trend changed. A row's `TRADING_SIGNAL` of 0 says "no new signal today", not "neutral".
 */
export function currentRun(history: readonly TradingSignal[]): SignalRun {
    const rows = known(history);
    const first = rows[0];
    if (!first) return { signal: null, since: null, lowerBound: false, flips: 0, rows: 0, newest: null, oldest: null };
    const flipAt = rows.findIndex((_, i) => isFlip(rows, i));
    const flips = rows.filter((_, i) => isFlip(rows, i)).length;
    const oldest = rows[rows.length - 1]!.date!;
    return {
        signal: directionOf(first.trend!),
        since: day(flipAt >= 0 ? rows[flipAt]!.date! : oldest),
        lowerBound: flipAt < 0,
        flips,
        rows: rows.length,
        newest: day(first.date!),
        oldest: day(oldest)
    };
}

/** "3 daily rows since 2025-04-08": what a history check actually saw (the newest is the answer's data_date). */
function coverage(run: Pick<SignalRun, 'rows' | 'newest' | 'oldest'>): string {
    const span = run.rows > 1 ? ` since ${run.oldest}` : run.newest ? ` (${run.newest})` : '';
    return `${run.rows} daily row${run.rows === 1 ? '' : 's'}${span}`;
}

const day = (date: string): string => date.slice(0, 10);

function daysBetween(from: string, toMs: number): number {
    return Math.max(0, Math.floor((toMs - Date.parse(`${from.slice(0, 10)}T00:00:00Z`)) / 86_400_000));
}

function volumeCheck(signal: SignalDirection, candles: readonly DailyOhlcv[]): SignalCheck {
    const name = 'volume_confirms_price';
    const rows = candles.filter(candle => candle.date !== null && candle.close !== null);
    const recent = rows.slice(0, 7).filter(candle => candle.volume !== null);
    const prior = rows.slice(7, 14).filter(candle => candle.volume !== null);
    const latest = rows[0];
    const weekAgo = rows[7];
    if (!latest || !weekAgo || recent.length < 4 || prior.length < 4) {
        return {
            name,
            status: 'unknown',
            evidence: `Only ${rows.length} daily candle(s) with a close: too few to compare 7-day volumes.`
        };
    }
    const avg = (list: readonly DailyOhlcv[]) => list.reduce((sum, candle) => sum + candle.volume!, 0) / list.length;
    const priceMove = change(weekAgo.close!, latest.close!);
    const volumeMove = change(avg(prior), avg(recent));
    const evidence = `7d price ${signed(priceMove)} (${fmt(weekAgo.close!, 6)} on ${day(weekAgo.date!)} -> ${fmt(latest.close!, 6)} on ${day(latest.date!)}); avg daily volume ${signed(volumeMove)} vs prior 7d.`;
    if (signal === 'neutral') return { name, status: 'unknown', evidence };
    const priceWithSignal = signal === 'bullish' ? priceMove > 0 : priceMove < 0;
    return { name, status: priceWithSignal && volumeMove > 0 ? 'pass' : 'fail', evidence };
}

function marketCheck(signal: SignalDirection, peers: readonly PeerSignal[]): SignalCheck {
    const name = 'btc_eth_alignment';
    const described = peers.map(peer => ({ symbol: peer.symbol, run: currentRun(peer.history) }));
    const withSignal = described.filter(peer => peer.run.signal !== null);
    if (withSignal.length === 0) return { name, status: 'unknown', evidence: 'No current BTC/ETH signal was available.' };
    const evidence =
        withSignal
            .map(peer => `${peer.symbol} ${peer.run.signal} since ${peer.run.lowerBound ? 'at least ' : ''}${peer.run.since}`)
            .join('; ') + '.';
    if (signal === 'neutral') return { name, status: 'unknown', evidence };
    const agree = withSignal.filter(peer => peer.run.signal === signal).length;
    return { name, status: agree === withSignal.length ? 'pass' : 'fail', evidence };
}

function timingCheck(signal: SignalDirection, run: SignalRun, candles: readonly DailyOhlcv[], nowMs: number): SignalCheck {
    const name = 'flip_timing';
    const since = run.since;
    if (!since) return { name, status: 'unknown', evidence: 'No signal history.' };
    if (run.lowerBound) {
        return { name, status: 'unknown', evidence: `No flip in ${coverage(run)}: began on or before ${since}.` };
    }
    const age = daysBetween(since, nowMs);
    const atFlip = candles.find(candle => candle.date?.slice(0, 10) === since && candle.close !== null);
    const latest = candles.find(candle => candle.close !== null);
    if (!atFlip || !latest)
        return {
            name,
            status: 'unknown',
            evidence: `Flipped ${since} (${age}d ago); no candle that day to measure the move since.`
        };
    const move = change(atFlip.close!, latest.close!);
    const evidence = `Flipped ${since} (${age}d ago); price ${signed(move)} since (${fmt(atFlip.close!, 6)} -> ${fmt(latest.close!, 6)}).`;
    if (signal === 'neutral') return { name, status: 'unknown', evidence };
    const moveWithSignal = signal === 'bullish' ? move : -move;
    // Early in the move is the useful part of a signal; after a 15% run most of it is usually priced in.
    return { name, status: age <= 14 && moveWithSignal < 15 ? 'pass' : 'fail', evidence };
}

function stabilityCheck(signal: SignalDirection, run: SignalRun): SignalCheck {
    const name = 'signal_stability';
    const evidence = `${run.flips} flip(s) in ${coverage(run)}.`;
    if (signal === 'neutral') return { name, status: 'unknown', evidence };
    // Fewer than a week of rows cannot show choppiness either way.
    if (run.rows < 7) return { name, status: 'unknown', evidence: `${evidence} Too few rows to judge stability.` };
    return {
        name,
        status: run.flips <= 2 ? 'pass' : 'fail',
        evidence: run.flips > 2 ? `${evidence} Choppy, low-conviction trend.` : evidence
    };
}

function momentumCheck(signal: SignalDirection, history: readonly TradingSignal[]): SignalCheck {
    const name = 'grade_momentum';
    const rows = known(history).filter(row => row.traderGrade !== null);
    const latest = rows[0];
    const weekAgo = rows.find(row => latest && daysBetween(row.date!, Date.parse(`${latest.date!.slice(0, 10)}T00:00:00Z`)) >= 7);
    if (!latest || !weekAgo) {
        return {
            name,
            status: 'unknown',
            evidence: `Trader grades in ${rows.length} daily row(s) only: too few for a 7-day change.`
        };
    }
    const delta = latest.traderGrade! - weekAgo.traderGrade!;
    const evidence = `Trader grade ${fmt(weekAgo.traderGrade!, 1)} on ${day(weekAgo.date!)} -> ${fmt(latest.traderGrade!, 1)} (${delta >= 0 ? '+' : ''}${delta.toFixed(1)} pts).`;
    if (signal === 'neutral' || Math.abs(delta) < 1) return { name, status: 'unknown', evidence: `${evidence} Flat or no active call.` };
    return { name, status: (signal === 'bullish' ? delta > 0 : delta < 0) ? 'pass' : 'fail', evidence };
}

/** Apply the confirming checks for the token's current signal. `peers` are BTC and ETH (minus the token itself). */
export function analyseSignal(input: {
    symbol: string;
    history: readonly TradingSignal[];
    candles: readonly DailyOhlcv[];
    peers: readonly PeerSignal[];
    nowMs: number;
}): SignalAnalysis {
    const run = currentRun(input.history);
    const latestGrade = known(input.history).find(row => row.traderGrade !== null)?.traderGrade ?? null;
    const band = latestGrade === null ? null : gradeBand(latestGrade);
    if (run.signal === null) {
        return {
            signal: null,
            since: null,
            sinceIsLowerBound: false,
            dataDate: null,
            rows: 0,
            traderGrade: latestGrade,
            gradeBand: band,
            checks: [],
            summary: `No trading signal rows for ${input.symbol} in the last ${SIGNAL_HISTORY_DAYS} days: nothing to explain. ${DISCLAIMER}`,
            verdict: DISCLAIMER
        };
    }
    const checks: SignalCheck[] = [
        volumeCheck(run.signal, input.candles),
        marketCheck(run.signal, input.peers),
        timingCheck(run.signal, run, input.candles, input.nowMs),
        stabilityCheck(run.signal, run),
        momentumCheck(run.signal, input.history),
        {
            name: 'narrative_fit',
            status: 'unknown',
            evidence: "Not in this server's data: check news and sector peers."
        }
    ];
    return {
        signal: run.signal,
        since: run.since,
        sinceIsLowerBound: run.lowerBound,
        dataDate: run.newest,
        rows: run.rows,
        traderGrade: latestGrade,
        gradeBand: band,
        checks,
        ...summarise(input.symbol, run.signal, run.since, run.lowerBound, checks)
    };
}

function summarise(
    symbol: string,
    signal: SignalDirection,
    since: string | null,
    lowerBound: boolean,
    checks: readonly SignalCheck[]
): { summary: string; verdict: string } {
    // The headline repeats the answer's own fields so that the summary reads alone; the text's first line has them.
    const headline = `${symbol} ${signal} since ${lowerBound ? 'at least ' : ''}${since}:`;
    const unknown = checks.filter(check => check.status === 'unknown');
    const notChecked = unknown.length > 0 ? [`Not checked: ${unknown.map(check => check.name).join(', ')}.`] : [];
    if (signal === 'neutral') {
        return {
            summary: [headline, 'no active bullish or bearish call.', ...notChecked, DISCLAIMER].join(' '),
            verdict: `No active bullish or bearish call. ${DISCLAIMER}`
        };
    }
    const passed = checks.filter(check => check.status === 'pass').length;
    const failed = checks.filter(check => check.status === 'fail');
    const tally = (name: (check: SignalCheck) => string) =>
        `${passed} of ${checks.length - unknown.length} checks hold${failed.length ? `; against: ${failed.map(name).join(', ')}` : ''}.`;
    const market = checks.find(check => check.name === 'btc_eth_alignment');
    const advice =
        signal === 'bullish'
            ? 'A prompt to investigate, not a buy order.'
            : market?.status === 'pass'
              ? 'BTC/ETH bearish too: market-wide pressure more than token weakness. Tighten risk.'
              : 'BTC and ETH not both bearish: the weakness looks token-specific. Tighten risk.';
    return {
        summary: [headline, tally(check => check.name), advice, ...notChecked, DISCLAIMER].join(' '),
        verdict: [tally(checkLabel), advice, DISCLAIMER].join(' ')
    };
}
