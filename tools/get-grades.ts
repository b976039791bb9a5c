import * as z from 'zod';
import { SIGNAL_HISTORY_DAYS, gradeBand } from '../src/analysis/signal-checks.js';
import { isUpstreamError, type UpstreamError } from '../src/api/errors.js';
import type { Sourced } from '../src/cache/market-service.js';
import { newestFirst } from '../src/domain/market.js';
import { FUNDAMENTAL_GRADES, TECHNOLOGY_GRADES, TM_GRADES, TRADING_SIGNALS } from '../src/endpoints/registry.js';
import { Alternatives, DatedFreshness, TokenRef, alternativesOf, ambiguityNote, iso, staleAgeOf, unresolvedLine } from './common.js';
import { READ_ONLY_OPEN_WORLD, defineTool } from './define.js';
import { unresolvedError } from './errors.js';
import { datedFreshnessLine, grade as gradeText, pct, signedNumber } from './format.js';

const EXTRA_SOURCES = ['fundamental', 'technology'] as const;

export const GetGradesInput = z.object({
    symbol: TokenRef.describe('Symbol, name or id, e.g. "SOL", "solana", 3988'),
    include: z.array(z.enum(EXTRA_SOURCES)).max(2).optional().describe('Extra grades, +1 credit each')
});

const grade = z.number().nullable();

export const GetGradesOutput = z.object({
    symbol: z.string(),
    name: z.string(),
    token_id: z.number(),
    tm_grade: grade,
    /** Strong Buy, Buy, Neutral, Sell or Strong Sell. */
    tm_grade_signal: z.string().nullable(),
    momentum: z.string().nullable(),
    tm_grade_change_24h_pts: z.number().nullable(),
    tm_grade_change_24h_pct: z.number().nullable(),
    /** Short-term, 0-100, from the newest daily signal row. */
    trader_grade: grade,
    trader_grade_band: z.string().nullable(),
    /** Long-term, 0-100. */
    investor_grade: grade,
    fundamental_grade: grade,
    fundamental_class: z.string().nullable(),
    /** With `include: ["technology"]` only. */
    technology_grade: grade.optional(),
    /** Sources not read, and why; their fields are null. Absent when every source answered. */
    unavailable: z.array(z.string()).optional(),
    alternatives: Alternatives,
    ...DatedFreshness
});

interface Unavailable {
    source: string;
    error: UpstreamError;
}

/**
 * A source that is not in the user's plan (or is gone) must not cost the whole answer: its fields are null and
 * `unavailable` says why. Outages and other failures still fail the call.
 */
async function optional<T>(source: string, read: () => Promise<Sourced<T[]>>, unavailable: Unavailable[]): Promise<Sourced<T[]> | null> {
    try {
        return await read();
    } catch (error) {
        if (isUpstreamError(error) && (error.code === 'NOT_IN_PLAN' || error.code === 'NOT_FOUND')) {
            unavailable.push({ source, error });
            return null;
        }
        throw error;
    }
}

export const getGrades = defineTool({
    name: 'get_grades',
    title: 'AI grades for a token',
    description:
        "A token's TM grade (signal, momentum), trader (short-term) and investor (long-term) grades. " +
        '2 credits (1 after explain_signal), +1 per include; cached 1 h.',
    inputSchema: GetGradesInput,
    outputSchema: GetGradesOutput,
    annotations: READ_ONLY_OPEN_WORLD,
    async handler({ symbol, include }, { resolver, market }, signal) {
        const resolved = await resolver.resolveOne(symbol, signal);
        if (!('token' in resolved)) throw unresolvedError(unresolvedLine(resolved));
        const { token, alternatives, input } = resolved.token;
        const ids = [token.tokenId];
        const extras = new Set(include ?? []);
        const unavailable: Unavailable[] = [];
        const [tm, signals, fundamental, technology] = await Promise.all([
            optional('tm-grade', () => market.get(TM_GRADES, { ids }, signal), unavailable),
            optional('trading-signals', () => market.get(TRADING_SIGNALS, { ids, days: SIGNAL_HISTORY_DAYS }, signal), unavailable),
            extras.has('fundamental')
                ? optional('fundamental-grade', () => market.get(FUNDAMENTAL_GRADES, { ids }, signal), unavailable)
                : null,
            extras.has('technology')
                ? optional('technology-grade', () => market.get(TECHNOLOGY_GRADES, { ids }, signal), unavailable)
                : null
        ]);
        // With neither main source there is nothing to answer: say why, rather than a row of nulls.
        if (tm === null && signals === null) throw unavailable[0]!.error;
        const tmRow = tm?.data[0] ?? null;
        // The trader and investor grades of today's API come with the daily signal rows; the newest row is the current one.
        const latest =
            [...(signals?.data ?? [])].filter(row => row.traderGrade !== null || row.investorGrade !== null).sort(newestFirst)[0] ?? null;
        const fundamentalRow = fundamental?.data[0] ?? null;
        const technologyRow = technology?.data[0] ?? null;
        const sources = [tm, signals, fundamental, technology].filter((source): source is Sourced<never[]> => source !== null);
        const traderGrade = latest?.traderGrade ?? null;
        const reasons = unavailable.map(
            ({ source, error }) => `${source}: ${error.code === 'NOT_IN_PLAN' ? 'not in your plan' : 'not served upstream'}`
        );

        const structured = {
            symbol: token.symbol,
            name: token.name,
            token_id: token.tokenId,
            tm_grade: tmRow?.tmGrade ?? null,
            tm_grade_signal: tmRow?.signalLabel ?? null,
            momentum: tmRow?.momentum ?? null,
            tm_grade_change_24h_pts: tmRow?.change24hPts ?? null,
            tm_grade_change_24h_pct: tmRow?.change24hPct ?? null,
            trader_grade: traderGrade,
            trader_grade_band: traderGrade === null ? null : gradeBand(traderGrade),
            investor_grade: latest?.investorGrade ?? null,
            fundamental_grade: fundamentalRow?.fundamentalGrade ?? tmRow?.fundamentalGrade ?? null,
            fundamental_class: fundamentalRow?.fundamentalClass ?? tmRow?.fundamentalClass ?? null,
            ...(extras.has('technology') ? { technology_grade: technologyRow?.technologyGrade ?? null } : {}),
            ...(reasons.length > 0 ? { unavailable: reasons } : {}),
            ...alternativesOf(alternatives),
            data_date: latest?.date?.slice(0, 10) ?? null,
            fetched_at: iso(Math.min(...sources.map(source => source.fetchedAt))),
            ...staleAgeOf(sources.map(source => source.staleAgeS))
        };
        return { structured, text: render(structured, extras, ambiguityNote(input, token, alternatives)) };
    }
});

function render(grades: z.output<typeof GetGradesOutput>, extras: ReadonlySet<string>, note: string | null): string {
    const label = [grades.tm_grade_signal, grades.momentum].filter(Boolean).join(', ');
    const change =
        grades.tm_grade_change_24h_pts === null && grades.tm_grade_change_24h_pct === null
            ? ''
            : `, 24h ${grades.tm_grade_change_24h_pts === null ? 'n/a' : `${signedNumber(grades.tm_grade_change_24h_pts)} pts`} (${pct(grades.tm_grade_change_24h_pct)})`;
    const lines = [
        `${grades.symbol} (${grades.name}, id ${grades.token_id})`,
        `TM grade ${gradeText(grades.tm_grade)}${label ? ` (${label})` : ''}${change}`
    ];
    // Their day is the answer's data_date, which the freshness line gives.
    const long = [
        `Trader grade ${gradeText(grades.trader_grade)}${grades.trader_grade_band ? ` (${grades.trader_grade_band})` : ''}`,
        `investor ${gradeText(grades.investor_grade)}`
    ];
    if (grades.fundamental_grade !== null || extras.has('fundamental')) {
        long.push(`fundamental ${gradeText(grades.fundamental_grade)}${grades.fundamental_class ? ` (${grades.fundamental_class})` : ''}`);
    }
    if (extras.has('technology')) long.push(`technology ${gradeText(grades.technology_grade ?? null)}`);
    lines.push(long.join(' | '), datedFreshnessLine(grades.data_date, grades.fetched_at, grades.stale_age_s));
    if (grades.unavailable) lines.push(`Unavailable: ${grades.unavailable.join('; ')}.`);
    if (note) lines.push(note);
    return lines.join('\n');
}
