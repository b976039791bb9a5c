import * as z from 'zod';
import type { Token } from '../src/domain/market.js';
import { LIST_OF_OBJECTS, publishAs } from './published.js';

/** A token reference as users type it: symbol, name or numeric id. */
export const TokenRef = publishAs(z.union([z.string().trim().min(1).max(64), z.number().int().positive().max(1e12)]), {
    type: ['string', 'integer']
}).transform(value => String(value));

/**
 * Seconds of age when a cached answer was served because the upstream failed. Absent otherwise: fields that only
 * say something now and then are left out when they say nothing, since every byte of an answer is context a model
 * pays for on every turn.
 */
const staleAge = z.number().optional();

/** For answers with no date of their own (prices): when they were fetched (ISO 8601 UTC). */
export const Freshness = {
    as_of: z.string(),
    stale_age_s: staleAge
};

/**
 * For answers whose rows carry their own date: the data's day and the fetch time are different things (a row
 * fetched now may describe a day four days ago), and a model must not present old rows as "now".
 */
export const DatedFreshness = {
    data_date: z.string().nullable(),
    fetched_at: z.string(),
    stale_age_s: staleAge
};

const Alternative = z.object({
    symbol: z.string(),
    name: z.string(),
    token_id: z.number()
});

/** Other tokens sharing the chosen one's symbol (`symbol, name, token_id`); an id picks one. Absent when none does. */
export const Alternatives = publishAs(z.array(Alternative), LIST_OF_OBJECTS).optional();

export const Unresolved = z.object({
    input: z.string(),
    reason: z.string(),
    suggestions: z.array(z.string())
});

/** `{ alternatives }` when other tokens share the symbol, else nothing. */
export const alternativesOf = (tokens: readonly Token[]) =>
    tokens.length === 0 ? {} : { alternatives: tokens.map(token => ({ symbol: token.symbol, name: token.name, token_id: token.tokenId })) };

/** `{ stale_age_s }` when a stale answer was served, else nothing. */
export const staleAgeOf = (ages: ReadonlyArray<number | null>): { stale_age_s?: number } => {
    const known = ages.filter((age): age is number => age !== null);
    return known.length === 0 ? {} : { stale_age_s: Math.max(...known) };
};

/** ISO 8601 UTC to the second: the milliseconds of a fetch time tell a reader nothing. */
export const iso = (ms: number): string => new Date(Math.floor(ms / 1000) * 1000).toISOString().replace('.000Z', 'Z');

/** "UNI is shared: chose Uniswap (id 3386); also Universe Token (id 31007)." */
export function ambiguityNote(input: string, chosen: Token, alternatives: readonly Token[]): string | null {
    if (alternatives.length === 0) return null;
    const others = alternatives
        .slice(0, 3)
        .map(token => `${token.name} (id ${token.tokenId})`)
        .join(', ');
    const more = alternatives.length > 3 ? ` and ${alternatives.length - 3} more` : '';
    return `"${input}" is shared: chose ${chosen.name} (id ${chosen.tokenId}); also ${others}${more}. Pass a token id to pick another.`;
}

export function unresolvedLine(entry: z.output<typeof Unresolved>): string {
    const hint =
        entry.suggestions.length > 0 ? ` Did you mean ${entry.suggestions.join(' or ')}?` : ' Try the full name or the numeric token id.';
    return `"${entry.input}": ${entry.reason}${hint}`;
}
