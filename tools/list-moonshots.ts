import * as z from 'zod';
import { MOONSHOTS } from '../src/endpoints/registry.js';
import { DatedFreshness, iso, staleAgeOf } from './common.js';
import { READ_ONLY_OPEN_WORLD, defineTool } from './define.js';
import { publishAs } from './published.js';
import { age, compactUsd, datedFreshnessLine, gradeColumn, pct, table } from './format.js';

export const ListMoonshotsInput = z.object({
    type: z.enum(['active', 'past']).default('active'),
    limit: z.number().int().min(1).max(50).default(10),
    max_market_cap_usd: publishAs(z.number().positive().max(1e13), { type: 'number', exclusiveMinimum: 0 })
        .optional()
        .describe('e.g. 50000000 for "under $50M"'),
    min_trader_grade: z.number().min(0).max(100).optional()
});

const Moonshot = z.object({
    symbol: z.string().nullable(),
    name: z.string().nullable(),
    /** Only when the upstream sends one (picks usually carry no id; the symbol names the token for the other tools). */
    token_id: z.number().optional(),
    trader_grade: z.number().nullable(),
    market_cap_usd: z.number().nullable(),
    volume_24h_usd: z.number().nullable(),
    moonshot_at: z.string().nullable(),
    /** Past picks only: when the pick was closed. */
    moonshot_end_at: z.string().nullable().optional(),
    /** Live for active picks, final for past ones. */
    roi_pct: z.number().nullable()
});

export const ListMoonshotsOutput = z.object({
    type: z.enum(['active', 'past']),
    moonshots: z.array(Moonshot),
    /** Picks matching the filters, before the limit. */
    matched: z.number(),
    total: z.number(),
    ...DatedFreshness
});

export const listMoonshots = defineTool({
    name: 'list_moonshots',
    title: 'Moonshot picks',
    description:
        'Token Metrics moonshots: small tokens its AI flags for outsized upside, active (live ROI) or past (final ROI). ' +
        '1 credit per type, cached 15 min for any filter. High risk; not advice.',
    inputSchema: ListMoonshotsInput,
    outputSchema: ListMoonshotsOutput,
    annotations: READ_ONLY_OPEN_WORLD,
    async handler({ type, limit, max_market_cap_usd, min_trader_grade }, { market, clock }, signal) {
        const picks = await market.get(MOONSHOTS, { type, limit: 50 }, signal);
        const matching = picks.data.filter(
            pick =>
                (max_market_cap_usd === undefined || (pick.marketCapUsd !== null && pick.marketCapUsd <= max_market_cap_usd)) &&
                (min_trader_grade === undefined || (pick.traderGrade !== null && pick.traderGrade >= min_trader_grade))
        );
        const moonshots = matching.slice(0, limit).map(pick => ({
            symbol: pick.symbol,
            name: pick.name,
            ...(pick.tokenId === null ? {} : { token_id: pick.tokenId }),
            trader_grade: pick.traderGrade,
            market_cap_usd: dollars(pick.marketCapUsd),
            volume_24h_usd: dollars(pick.volume24hUsd),
            moonshot_at: instant(pick.moonshotAt),
            ...(type === 'past' ? { moonshot_end_at: instant(pick.moonshotEndAt) } : {}),
            roi_pct: pick.roiPct
        }));
        const structured = {
            type,
            moonshots,
            matched: matching.length,
            total: picks.data.length,
            data_date: newestDay(picks.data.flatMap(pick => [pick.moonshotAt, pick.moonshotEndAt, pick.lastSignalAt])),
            fetched_at: iso(picks.fetchedAt),
            ...staleAgeOf([picks.staleAgeS])
        };
        const now = clock.now();
        const ago = (date: string | null) =>
            date && !Number.isNaN(Date.parse(date)) ? `${age(Math.max(0, (now - Date.parse(date)) / 1000))} ago` : 'n/a';
        const header = ['SYMBOL', 'TG', 'MCAP', 'VOL24H', 'PICKED', ...(type === 'past' ? ['ENDED'] : []), 'ROI'];
        const grades = gradeColumn(moonshots.map(pick => pick.trader_grade));
        const rows = moonshots.map((pick, i) => [
            pick.symbol ?? pick.name ?? '?',
            grades[i]!,
            compactUsd(pick.market_cap_usd),
            compactUsd(pick.volume_24h_usd),
            ago(pick.moonshot_at),
            ...(type === 'past' ? [pick.moonshot_end_at?.slice(0, 10) ?? 'n/a'] : []),
            pct(pick.roi_pct, 0)
        ]);
        const lines = [
            `${counted(moonshots.length, matching.length, picks.data.length, type)}, ${datedFreshnessLine(structured.data_date, structured.fetched_at, structured.stale_age_s)}`
        ];
        if (moonshots.length > 0) lines.push(table([header, ...rows]));
        else lines.push('No pick matches these filters; loosen max_market_cap_usd or min_trader_grade.');
        lines.push('High risk; not investment advice.');
        return { structured, text: lines.join('\n') };
    }
});

/** "7 past moonshots", "5 of 7 active moonshots match", "10 of 23 matching active moonshots (50 in all)". */
function counted(shown: number, matched: number, total: number, type: string): string {
    if (shown < matched) return `${shown} of ${matched} matching ${type} moonshots (${total} in all)`;
    return matched === total ? `${total} ${type} moonshots` : `${matched} of ${total} ${type} moonshots match`;
}

/** Whole dollars for market caps and volumes of $1,000 and up: their cents are noise a model pays for. */
function dollars(value: number | null): number | null {
    return value === null || Math.abs(value) < 1000 ? value : Math.round(value);
}

/**
 * An upstream time with a zone as ISO 8601 UTC to the second. Kept as sent without one: `Date.parse` would read it in
 * the machine's own zone, and the answer would then depend on where the server runs.
 */
function instant(date: string | null): string | null {
    if (date === null || !/(?:Z|[+-]\d\d:?\d\d)$/i.test(date)) return date;
    const ms = Date.parse(date);
    return Number.isNaN(ms) ? date : iso(ms);
}

/** The newest day among the rows' own dates: picks, closes and last signals. */
function newestDay(dates: ReadonlyArray<string | null>): string | null {
    const days = dates.flatMap(date =>
        date === null || Number.isNaN(Date.parse(date)) ? [] : [new Date(date).toISOString().slice(0, 10)]
    );
    return days.length === 0 ? null : days.reduce((a, b) => (a > b ? a : b));
}
