import * as z from 'zod';
import { PRICES } from '../src/endpoints/registry.js';
import { Alternatives, Freshness, TokenRef, Unresolved, alternativesOf, ambiguityNote, iso, staleAgeOf, unresolvedLine } from './common.js';
import { NO_PROGRESS, READ_ONLY_OPEN_WORLD, defineTool } from './define.js';
import { freshnessLine, table, usd } from './format.js';
import { LIST_OF_OBJECTS, publishAs } from './published.js';

export const GetPriceInput = z.object({
    symbols: z.array(TokenRef).min(1).max(25).describe('Symbols, names or ids, e.g. ["BTC", "solana", 3306]')
});

const PriceRow = z.object({
    symbol: z.string(),
    name: z.string(),
    token_id: z.number(),
    price_usd: z.number().nullable(),
    // The same as the answer's own as_of, kept on each row: DESIGN.md lists it, and agents read rows on their own.
    as_of: z.string(),
    alternatives: Alternatives
});

export const GetPriceOutput = z.object({
    prices: z.array(PriceRow),
    /** Inputs that matched no token (`input, reason, suggestions`). */
    unresolved: publishAs(z.array(Unresolved), LIST_OF_OBJECTS),
    ...Freshness
});

export const getPrice = defineTool({
    name: 'get_price',
    title: 'Token prices',
    description: 'USD prices of up to 25 tokens: ask for all in one call. 1 credit, +1-2 for tokens new in 24 h; cached 60 s.',
    inputSchema: GetPriceInput,
    outputSchema: GetPriceOutput,
    annotations: READ_ONLY_OPEN_WORLD,
    async handler({ symbols }, { resolver, market }, signal, progress = NO_PROGRESS) {
        const resolution = await resolver.resolve(symbols, signal);
        progress(1, 2, `resolved ${resolution.resolved.length} of ${symbols.length} token(s)`);
        const ids = [...new Set(resolution.resolved.map(entry => entry.token.tokenId))];
        const quotes =
            ids.length > 0 ? await market.get(PRICES, { ids }, signal) : { data: [], fetchedAt: resolution.fetchedAt, staleAgeS: null };
        progress(2, 2, `prices of ${ids.length} token(s) in hand`);
        const byId = new Map(quotes.data.map(quote => [quote.tokenId, quote]));
        const asOf = iso(quotes.fetchedAt);
        const unresolved = [...resolution.unresolved];
        const prices: Array<z.output<typeof PriceRow>> = [];
        const notes: string[] = [];
        const seen = new Set<number>();
        for (const { input, token, alternatives } of resolution.resolved) {
            if (seen.has(token.tokenId)) continue;
            seen.add(token.tokenId);
            const quote = byId.get(token.tokenId);
            if (!quote) {
                unresolved.push({
                    input,
                    reason: `Token Metrics has no current price for ${token.name} (id ${token.tokenId}).`,
                    suggestions: []
                });
                continue;
            }
            prices.push({
                symbol: token.symbol,
                name: token.name,
                token_id: token.tokenId,
                price_usd: quote.priceUsd,
                as_of: asOf,
                ...alternativesOf(alternatives)
            });
            const note = ambiguityNote(input, token, alternatives);
            if (note) notes.push(note);
        }
        const structured = { prices, unresolved, as_of: asOf, ...staleAgeOf([quotes.staleAgeS]) };
        const lines: string[] = [];
        if (prices.length > 0) {
            lines.push(table(prices.map(row => [row.symbol, row.name.slice(0, 24), usd(row.price_usd)])));
            lines.push(freshnessLine(asOf, structured.stale_age_s));
        }
        lines.push(...notes, ...unresolved.map(unresolvedLine));
        return { structured, text: lines.join('\n') };
    }
});
