import * as z from 'zod';
import { CANDLE_DAYS, SIGNAL_HISTORY_DAYS, analyseSignal, checkLabel } from '../src/analysis/signal-checks.js';
import { DAILY_OHLCV, TRADING_SIGNALS } from '../src/endpoints/registry.js';
import { Alternatives, DatedFreshness, TokenRef, alternativesOf, ambiguityNote, iso, staleAgeOf, unresolvedLine } from './common.js';
import { NO_PROGRESS, READ_ONLY_OPEN_WORLD, defineTool } from './define.js';
import { unresolvedError } from './errors.js';
import { datedFreshnessLine } from './format.js';

/** The market bellwethers a signal is compared with (DESIGN.md section 6): macro move or token-specific? */
const BELLWETHERS = [
    { symbol: 'BTC', tokenId: 3375 },
    { symbol: 'ETH', tokenId: 3306 }
] as const;

export const ExplainSignalInput = z.object({
    symbol: TokenRef.describe('Symbol, name or id, e.g. "ETH"')
});

const Check = z.object({
    name: z.string(),
    /** pass supports the signal, fail argues against it. */
    status: z.enum(['pass', 'fail', 'unknown']),
    evidence: z.string()
});

export const ExplainSignalOutput = z.object({
    symbol: z.string(),
    name: z.string(),
    token_id: z.number(),
    /** The current trend; null without signal history. */
    signal: z.enum(['bullish', 'bearish', 'neutral']).nullable(),
    /** Day the trend began (its latest flip). */
    since: z.string().nullable(),
    /** True when no flip is among the rows: the trend began on or before `since`. Absent otherwise. */
    since_is_lower_bound: z.literal(true).optional(),
    signal_rows: z.number(),
    trader_grade: z.number().nullable(),
    grade_band: z.string().nullable(),
    checks: z.array(Check),
    summary: z.string(),
    alternatives: Alternatives,
    ...DatedFreshness
});

export const explainSignal = defineTool({
    name: 'explain_signal',
    title: 'Explain a bullish/bearish signal',
    description:
        'Why a token is bullish, bearish or neutral, since when, with dated checks (volume, BTC/ETH, flip, grade). ' +
        '2 credits, cached 1 h. Not advice.',
    inputSchema: ExplainSignalInput,
    outputSchema: ExplainSignalOutput,
    annotations: READ_ONLY_OPEN_WORLD,
    async handler({ symbol }, { resolver, market, clock }, signal, progress = NO_PROGRESS) {
        const resolved = await resolver.resolveOne(symbol, signal);
        if (!('token' in resolved)) throw unresolvedError(unresolvedLine(resolved));
        const { token, alternatives, input } = resolved.token;
        let done = 1;
        progress(done, 3, `resolved ${token.symbol} (id ${token.tokenId})`);
        const part = <T>(pending: Promise<T>, what: string): Promise<T> =>
            pending.then(value => {
                progress(++done, 3, what);
                return value;
            });
        const peers = BELLWETHERS.filter(peer => peer.tokenId !== token.tokenId);
        const [signals, candles] = await Promise.all([
            part(
                market.get(
                    TRADING_SIGNALS,
                    { ids: [token.tokenId, ...peers.map(peer => peer.tokenId)], days: SIGNAL_HISTORY_DAYS },
                    signal
                ),
                'signal history in hand'
            ),
            part(market.get(DAILY_OHLCV, { id: token.tokenId, days: CANDLE_DAYS }, signal), 'daily candles in hand')
        ]);
        const analysis = analyseSignal({
            symbol: token.symbol,
            history: signals.data.filter(row => row.tokenId === token.tokenId),
            candles: candles.data,
            peers: peers.map(peer => ({ symbol: peer.symbol, history: signals.data.filter(row => row.tokenId === peer.tokenId) })),
            nowMs: clock.now()
        });
        const structured = {
            symbol: token.symbol,
            name: token.name,
            token_id: token.tokenId,
            signal: analysis.signal,
            since: analysis.since,
            ...(analysis.sinceIsLowerBound ? { since_is_lower_bound: true as const } : {}),
            signal_rows: analysis.rows,
            trader_grade: analysis.traderGrade,
            grade_band: analysis.gradeBand,
            checks: analysis.checks,
            summary: analysis.summary,
            ...alternativesOf(alternatives),
            data_date: analysis.dataDate,
            fetched_at: iso(Math.min(signals.fetchedAt, candles.fetchedAt)),
            ...staleAgeOf([signals.staleAgeS, candles.staleAgeS])
        };
        const mark = { pass: '+', fail: '-', unknown: '?' } as const;
        const since = analysis.since ? ` since ${analysis.sinceIsLowerBound ? 'at least ' : ''}${analysis.since}` : '';
        const traderGrade =
            analysis.traderGrade === null ? '' : `, trader grade ${analysis.traderGrade.toFixed(1)} (${analysis.gradeBand})`;
        const lines = [
            `${token.symbol} (${token.name}) ${analysis.signal ?? 'no signal'}${since}${traderGrade}`,
            ...analysis.checks.map(check => `[${mark[check.status]}] ${checkLabel(check)}: ${check.evidence}`),
            analysis.signal === null ? analysis.summary : analysis.verdict,
            datedFreshnessLine(structured.data_date, structured.fetched_at, structured.stale_age_s)
        ];
        const note = ambiguityNote(input, token, alternatives);
        if (note) lines.push(note);
        return { structured, text: lines.join('\n') };
    }
});
