import * as z from 'zod';
import { isUpstreamError } from '../src/api/errors.js';
import { Alternative, Freshness, TokenRef, alternativesOf, ambiguityNote, iso, unresolvedLine } from './common.js';
import { READ_ONLY_OPEN_WORLD, defineTool, type ToolDeps } from './define.js';
import { freshnessLine, grade, pct } from './format.js';
import { SIGNAL_HISTORY_DAYS, gradeBand } from '../src/analysis/signal-checks.js';
import { unresolvedError } from './errors.js';

export const GetGradesInput = z.object({
    symbol: TokenRef.describe('One token: symbol, name or numeric Token Metrics id, e.g. "SOL", "solana" or 3988.')
});

const nullableGrade = (what: string) => z.number().nullable().describe(`${what}; null when the upstream does not provide it.`);

export const GetGradesOutput = z.object({
    symbol: z.string(),
    name: z.string(),
    token_id: z.number().int(),
    trader_grade: nullableGrade('Short-term AI trader grade, 0-100'),
    trader_grade_band: z.string().nullable().describe('What the trader grade means: high conviction (>= 80), trend forming (60-79), neutral (50-59), deteriorating (< 50).'),
    investor_grade: nullableGrade('Long-term AI investor grade, 0-100'),
    tm_grade: nullableGrade('Token Metrics overall TM grade, 0-100'),
    fundamental_grade: nullableGrade('Fundamental grade, 0-100'),
    signal_label: z.string().nullable().describe('The TM grade signal, e.g. bullish, bearish or neutral.'),
    trader_grade_change_24h_pct: z.number().nullable(),
    not_available: z.array(z.string()).describe('Grade sources the upstream does not serve any more, so their fields are null.'),
    alternatives: z.array(Alternative),
    ...Freshness
});

async function latestSignalRow({ market }: ToolDeps, tokenId: number, signal: AbortSignal) {
    try {
        const history = await market.tradingSignals([tokenId], SIGNAL_HISTORY_DAYS, signal);
        return { row: history.data.find(row => row.tokenId === tokenId) ?? null, fetchedAt: history.fetchedAt, staleAgeS: history.staleAgeS };
    } catch (error) {
        if (isUpstreamError(error) && error.code === 'NOT_FOUND') return null;
        throw error;
    }
}

export const getGrades = defineTool({
    name: 'get_grades',
    title: 'AI grades for a token',
    description:
        "Token Metrics AI grades for one token: trader grade (short-term, 0-100), investor grade (long-term), TM grade, fundamental grade, the grade's signal label and the 24 h trader-grade change. " +
        'Costs 2 upstream credits on a cache miss (grades and the signal history, shared with explain_signal); cached 1 h. ' +
        'Use for "what is SOL\'s trader grade?"; use explain_signal to ask why a token is bullish or bearish.',
    inputSchema: GetGradesInput,
    outputSchema: GetGradesOutput,
    annotations: { title: 'AI grades for a token', ...READ_ONLY_OPEN_WORLD },
    async handler({ symbol }, deps, signal) {
        const resolved = await deps.resolver.resolveOne(symbol, signal);
        if (!('token' in resolved)) throw unresolvedError(unresolvedLine(resolved));
        const { token, alternatives, input } = resolved.token;
        const [grades, latest] = await Promise.all([deps.market.grades([token.tokenId], signal), latestSignalRow(deps, token.tokenId, signal)]);
        const tm = grades.data.tm?.find(row => row.tokenId === token.tokenId) ?? null;
        const trader = grades.data.trader?.find(row => row.tokenId === token.tokenId) ?? null;
        const investor = grades.data.investor?.find(row => row.tokenId === token.tokenId) ?? null;
        const notAvailable: string[] = [];
        if (grades.data.tm === null) notAvailable.push('tm-grade');
        if (grades.data.tm === null && grades.data.trader === null) notAvailable.push('trader-grades');
        if (grades.data.tm === null && grades.data.investor === null) notAvailable.push('investor-grades');
        if (latest === null) notAvailable.push('trading-signals');

        const traderGrade = latest?.row?.traderGrade ?? trader?.traderGrade ?? null;
        const fetchedAt = Math.min(grades.fetchedAt, latest?.fetchedAt ?? Infinity);
        const staleAges = [grades.staleAgeS, latest?.staleAgeS ?? null].filter((age): age is number => age !== null);
        const structured = {
            symbol: token.symbol,
            name: token.name,
            token_id: token.tokenId,
            trader_grade: traderGrade,
            trader_grade_band: traderGrade === null ? null : gradeBand(traderGrade),
            investor_grade: latest?.row?.investorGrade ?? investor?.investorGrade ?? null,
            tm_grade: tm?.tmGrade ?? null,
            fundamental_grade: tm?.fundamentalGrade ?? investor?.fundamentalGrade ?? null,
            signal_label: tm?.signal ?? latest?.row?.signal ?? null,
            trader_grade_change_24h_pct: tm?.traderGradeChange24hPct ?? trader?.traderGradeChange24hPct ?? null,
            not_available: notAvailable,
            alternatives: alternativesOf(alternatives),
            as_of: iso(fetchedAt),
            stale_age_s: staleAges.length > 0 ? Math.max(...staleAges) : null
        };
        const lines = [
            `${structured.symbol} (${structured.name}, id ${structured.token_id})`,
            `Trader grade ${grade(structured.trader_grade)}${structured.trader_grade_band ? ` (${structured.trader_grade_band})` : ''}, 24h ${pct(structured.trader_grade_change_24h_pct)}`,
            `Investor grade ${grade(structured.investor_grade)} | TM grade ${grade(structured.tm_grade)} | fundamental ${grade(structured.fundamental_grade)}`,
            `Signal: ${structured.signal_label ?? 'n/a'}`,
            freshnessLine(structured.as_of, structured.stale_age_s)
        ];
        if (notAvailable.length > 0) lines.push(`Not available upstream: ${notAvailable.join(', ')}.`);
        const note = ambiguityNote(input, token, alternatives);
        if (note) lines.push(note);
        return { structured, text: lines.join('\n') };
    }
});
