import type { Token } from '../domain/market.js';
import type { MarketService } from '../cache/market-service.js';
import { isValidFilterValue } from '../endpoints/params.js';
import { TOKENS } from '../endpoints/registry.js';
import { TokenDirectory } from './directory.js';

/** A user's token reference resolved to one upstream token. */
export interface ResolvedToken {
    input: string;
    token: Token;
    /** Other tokens sharing the symbol, ranked below the chosen one. */
    alternatives: Token[];
}

export interface UnresolvedToken {
    input: string;
    reason: string;
    suggestions: string[];
}

export interface Resolution {
    resolved: ResolvedToken[];
    unresolved: UnresolvedToken[];
    fetchedAt: number;
    staleAgeS: number | null;
}

const SYMBOL_LIKE = /^[A-Za-z0-9.$_-]{1,15}$/;
const NUMERIC_ID = /^\d{1,12}$/;

/**
 * The documented rule for symbols shared by several tokens: the token listed on the most exchanges
 * wins (a proxy for the one people mean), then the lowest token id (the earlier listing).
 */
export function rankCandidates(tokens: readonly Token[]): Token[] {
    return [...tokens].sort((a, b) => b.exchanges.length - a.exchanges.length || a.tokenId - b.tokenId);
}

/**
 * Symbol, name or numeric id -> token, through the cached `/tokens` data. Symbols and ids are tried
 * first (one comma-separated request per kind), then names for everything else, in one request.
 */
export class TokenResolver {
    constructor(
        private readonly market: MarketService,
        /** Every token seen, for names seen before and for suggestions; the `/tokens` answers themselves live in the cache. */
        private readonly directory = new TokenDirectory()
    ) {}

    async resolve(inputs: readonly string[], signal?: AbortSignal): Promise<Resolution> {
        const all = inputs.map(input => input.trim());
        // Inputs that cannot be a symbol, name or id never reach the upstream: they are answered here.
        const cleaned = all.filter(input => NUMERIC_ID.test(input) || isValidFilterValue(input));
        // A name seen earlier in this process ("solana" after "SOL") resolves without a lookup, unless it is
        // also a known symbol: the symbol-first rule still decides those.
        const seenByName = cleaned.filter(
            input => !NUMERIC_ID.test(input) && this.directory.withName(input).length > 0 && !this.directory.hasSymbol(input)
        );
        const toLookUp = cleaned.filter(input => !seenByName.includes(input));
        const ids = toLookUp.filter(input => NUMERIC_ID.test(input)).map(Number);
        const symbols = toLookUp.filter(input => !NUMERIC_ID.test(input) && SYMBOL_LIKE.test(input)).map(input => input.toUpperCase());
        const phrases = toLookUp.filter(input => !NUMERIC_ID.test(input) && !SYMBOL_LIKE.test(input));

        // Round one: symbols and ids. Round two: names, both the multi-word ones and the symbol-shaped
        // inputs that matched no symbol ("solana"), so all names share one request.
        const first = await this.market.get(TOKENS, { symbols: unique(symbols), ids: unique(ids) }, signal);
        this.directory.remember(first.data);
        let fetchedAt = first.fetchedAt;
        let staleAgeS = first.staleAgeS;
        const found = [...first.data, ...seenByName.flatMap(input => this.directory.withName(input))];

        // Names go upstream as the user typed them (the client adds the title-cased form), so the inputs, not the upper-cased symbols.
        const missedSymbols = toLookUp.filter(
            input => SYMBOL_LIKE.test(input) && !NUMERIC_ID.test(input) && !first.data.some(token => token.symbol === input.toUpperCase())
        );
        const names = uniqueIgnoringCase([...phrases, ...missedSymbols]);
        if (names.length > 0) {
            const second = await this.market.get(TOKENS, { names }, signal);
            this.directory.remember(second.data);
            found.push(...second.data);
            fetchedAt = Math.min(fetchedAt, second.fetchedAt);
            staleAgeS = maxAge(staleAgeS, second.staleAgeS);
        }

        const resolved: ResolvedToken[] = [];
        const unresolved: UnresolvedToken[] = [];
        for (const input of all) {
            if (!cleaned.includes(input)) {
                unresolved.push({
                    input: echo(input),
                    reason: "Not a valid token symbol, name or id (letters, digits, spaces and . _ - $ ( ) + ' only).",
                    suggestions: []
                });
                continue;
            }
            const candidates = this.match(input, found);
            const [token, ...alternatives] = rankCandidates(candidates);
            if (token) resolved.push({ input, token, alternatives });
            else unresolved.push(this.unknown(input));
        }
        return { resolved, unresolved, fetchedAt, staleAgeS };
    }

    /** Resolve exactly one input, or explain why not. */
    async resolveOne(
        input: string,
        signal?: AbortSignal
    ): Promise<{ token: ResolvedToken; fetchedAt: number; staleAgeS: number | null } | UnresolvedToken> {
        const resolution = await this.resolve([input], signal);
        const token = resolution.resolved[0];
        return token ? { token, fetchedAt: resolution.fetchedAt, staleAgeS: resolution.staleAgeS } : resolution.unresolved[0]!;
    }

    private match(input: string, tokens: readonly Token[]): Token[] {
        if (NUMERIC_ID.test(input)) return dedupe(tokens.filter(token => token.tokenId === Number(input)));
        const bySymbol = tokens.filter(token => token.symbol === input.toUpperCase());
        if (bySymbol.length > 0) return dedupe(bySymbol);
        return dedupe(tokens.filter(token => token.name.toLowerCase() === input.toLowerCase()));
    }

    private unknown(input: string): UnresolvedToken {
        const kind = NUMERIC_ID.test(input) ? 'token id' : SYMBOL_LIKE.test(input) ? 'symbol or name' : 'name';
        return {
            input: echo(input),
            reason: `No Token Metrics token has this ${kind}.`,
            suggestions: this.directory.suggestions(input, 3)
        };
    }
}

/**
 * A user's input as we quote it back to the model: control and bidirectional-override characters removed (they
 * can hide or reorder text), cut to 64 characters without splitting one.
 */
function echo(input: string): string {
    const visible = input.replace(/[\p{Cc}\u200e\u200f\u202a-\u202e\u2066-\u2069]/gu, '');
    const chars = Array.from(visible);
    return chars.length > 64 ? `${chars.slice(0, 63).join('')}…` : visible;
}

function unique<T>(values: readonly T[]): T[] {
    return [...new Set(values)];
}

function uniqueIgnoringCase(values: readonly string[]): string[] {
    return [...new Map(values.map(value => [value.toLowerCase(), value])).values()];
}

function dedupe(tokens: readonly Token[]): Token[] {
    return [...new Map(tokens.map(token => [token.tokenId, token])).values()];
}

function maxAge(a: number | null, b: number | null): number | null {
    if (a === null) return b;
    if (b === null) return a;
    return Math.max(a, b);
}
