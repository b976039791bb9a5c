import * as z from 'zod';
import { Freshness, iso } from './common.js';
import { READ_ONLY_OPEN_WORLD, defineTool } from './define.js';
import { age, compactUsd, freshnessLine, pct, table } from './format.js';

export const ListMoonshotsInput = z.object({
    type: z.enum(['active', 'past']).default('active').describe('"active": current picks; "past": closed picks with their ROI.'),
    limit: z.number().int().min(1).max(50).default(10).describe('How many picks to return after filtering (1-50).'),
    max_market_cap_usd: z.number().positive().max(1e13).optional().describe('Only picks with a market cap at or below this, e.g. 50000000 for "under $50M".'),
    min_trader_grade: z.number().min(0).max(100).optional().describe('Only picks with a trader grade at or above this (0-100).')
});

const Moonshot = z.object({
    symbol: z.string().nullable(),
    name: z.string().nullable(),
    token_id: z.number().int().nullable(),
    trader_grade: z.number().nullable(),
    market_cap_usd: z.number().nullable(),
    volume_24h_usd: z.number().nullable(),
    moonshot_at: z.string().nullable().describe('When the token was picked (ISO 8601).'),
    roi_pct: z.number().nullable().describe('Return since the pick, for past picks; null while active.')
});

export const ListMoonshotsOutput = z.object({
    type: z.enum(['active', 'past']),
    moonshots: z.array(Moonshot),
    matched: z.number().int().describe('Picks matching the filters, before the limit.'),
    total: z.number().int().describe('Picks the upstream returned, before filters.'),
    ...Freshness
});

/** Symbols are cut so a 50-row table stays well inside the model's budget. */
const SYMBOL_WIDTH = 8;

export const listMoonshots = defineTool({
    name: 'list_moonshots',
    title: 'Moonshot picks',
    description:
        'Token Metrics "moonshot" picks: small tokens its AI flags for outsized upside (active), or closed picks with their ROI (past). ' +
        'Filter by max market cap and min trader grade. Costs 1 upstream credit per type, cached 15 min (any limit or filter reuses it). ' +
        'High risk by nature; informational, not investment advice.',
    inputSchema: ListMoonshotsInput,
    outputSchema: ListMoonshotsOutput,
    annotations: { title: 'Moonshot picks', ...READ_ONLY_OPEN_WORLD },
    async handler({ type, limit, max_market_cap_usd, min_trader_grade }, { market, clock }, signal) {
        const picks = await market.moonshots(type, 50, signal);
        const matching = picks.data.filter(
            pick =>
                (max_market_cap_usd === undefined || (pick.marketCapUsd !== null && pick.marketCapUsd <= max_market_cap_usd)) &&
                (min_trader_grade === undefined || (pick.traderGrade !== null && pick.traderGrade >= min_trader_grade))
        );
        const moonshots = matching.slice(0, limit).map(pick => ({
            symbol: pick.symbol,
            name: pick.name,
            token_id: pick.tokenId,
            trader_grade: pick.traderGrade,
            market_cap_usd: pick.marketCapUsd,
            volume_24h_usd: pick.volume24hUsd,
            moonshot_at: pick.moonshotAt,
            roi_pct: pick.roiPct
        }));
        const structured = { type, moonshots, matched: matching.length, total: picks.data.length, as_of: iso(picks.fetchedAt), stale_age_s: picks.staleAgeS };
        const now = clock.now();
        const header = type === 'past' ? ['SYMBOL', 'TG', 'MCAP', 'VOL24H', 'PICKED', 'ROI'] : ['SYMBOL', 'TG', 'MCAP', 'VOL24H', 'PICKED'];
        const rows = moonshots.map(pick => {
            const picked = pick.moonshot_at ? `${age(Math.max(0, (now - Date.parse(pick.moonshot_at)) / 1000))} ago` : 'n/a';
            const cells = [
                (pick.symbol ?? '?').slice(0, SYMBOL_WIDTH),
                pick.trader_grade === null ? 'n/a' : pick.trader_grade.toFixed(0),
                compactUsd(pick.market_cap_usd),
                compactUsd(pick.volume_24h_usd),
                picked
            ];
            return type === 'past' ? [...cells, pct(pick.roi_pct, 0)] : cells;
        });
        const lines = [
            `${moonshots.length} of ${matching.length} matching ${type} moonshots (${picks.data.length} total), ${freshnessLine(structured.as_of, structured.stale_age_s)}`
        ];
        if (moonshots.length > 0) lines.push(table([header, ...rows]));
        else lines.push('No pick matches these filters; loosen max_market_cap_usd or min_trader_grade.');
        lines.push('High risk; not investment advice.');
        return { structured, text: lines.join('\n') };
    }
});
