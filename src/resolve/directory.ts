import { LRUCache } from 'lru-cache';
import type { Token } from '../domain/market.js';
import { closest } from './distance.js';

/** Tokens remembered per process; the upstream lists tens of thousands, and a session sees far fewer. */
const DEFAULT_MAX_TOKENS = 50_000;

const describeToken = (token: Token): string => `${token.symbol} (${token.name}, id ${token.tokenId})`;

/** The buckets a key is filed under for suggestions: its first two characters, and its first character with its length. */
function buckets(key: string): string[] {
    const lower = key.toLowerCase();
    return lower.length === 0 ? [] : [`p:${lower.slice(0, 2)}`, `l:${lower[0]}:${lower.length}`];
}

/** Adds `id` to the set under `key`. */
function add(index: Map<string, Set<number>>, key: string, id: number): void {
    let ids = index.get(key);
    if (ids === undefined) index.set(key, (ids = new Set()));
    ids.add(id);
}

function remove(index: Map<string, Set<number>>, key: string, id: number): void {
    const ids = index.get(key);
    if (ids === undefined) return;
    ids.delete(id);
    if (ids.size === 0) index.delete(key);
}

/**
 * Every token this process has seen, by id, symbol and lower-case name, with O(1) lookups, so a warm call costs the
 * same with 20,000 tokens known as with none. Bounded: the least recently seen tokens go first. Suggestions for an
 * unknown input look only at the tokens filed under the same first two characters, or the same first character and
 * length (a typo in the second character), never at the whole directory.
 */
export class TokenDirectory {
    private readonly byId: LRUCache<number, Token>;
    private readonly bySymbol = new Map<string, Set<number>>();
    private readonly byName = new Map<string, Set<number>>();
    private readonly byBucket = new Map<string, Set<number>>();

    constructor(maxTokens = DEFAULT_MAX_TOKENS) {
        this.byId = new LRUCache<number, Token>({
            // Bounded by count through maxSize, each token counting 1: with `max`, lru-cache allocates all its slots up
            // front (~6 ms for 50,000, in every runtime's construction), where a session fills a few hundred.
            maxSize: Math.max(1, maxTokens),
            sizeCalculation: () => 1,
            dispose: (token, id, reason) => {
                // A token replaced by a newer row of itself is re-indexed by `remember`; one evicted or deleted leaves the indexes.
                if (reason !== 'set') this.unindex(id, token);
            }
        });
    }

    get size(): number {
        return this.byId.size;
    }

    remember(tokens: readonly Token[]): void {
        for (const token of tokens) {
            const previous = this.byId.peek(token.tokenId);
            if (previous !== undefined) this.unindex(token.tokenId, previous);
            this.byId.set(token.tokenId, token);
            add(this.bySymbol, token.symbol, token.tokenId);
            add(this.byName, token.name.toLowerCase(), token.tokenId);
            for (const key of [...buckets(token.symbol), ...buckets(token.name)]) add(this.byBucket, key, token.tokenId);
        }
    }

    /** Every token known, most recently seen first (what completion searches before it asks the upstream). */
    all(): Token[] {
        return [...this.byId.values()];
    }

    /** Tokens whose name is `name`, case-insensitively. */
    withName(name: string): Token[] {
        return this.tokens(this.byName.get(name.toLowerCase()));
    }

    hasSymbol(symbol: string): boolean {
        return (this.bySymbol.get(symbol.toUpperCase())?.size ?? 0) > 0;
    }

    /** Up to `limit` labels like "UNI (Uniswap, id 3386)" for known tokens whose symbol or name is close to `input`. */
    suggestions(input: string, limit: number): string[] {
        const ids = new Set<number>();
        for (const key of buckets(input)) for (const id of this.byBucket.get(key) ?? []) ids.add(id);
        const candidates = this.tokens(ids).flatMap(token => [
            { key: token.symbol, label: describeToken(token) },
            { key: token.name, label: describeToken(token) }
        ]);
        return closest(input, candidates, limit);
    }

    private tokens(ids: Iterable<number> | undefined): Token[] {
        const found: Token[] = [];
        for (const id of ids ?? []) {
            const token = this.byId.get(id);
            if (token !== undefined) found.push(token);
        }
        return found;
    }

    private unindex(id: number, token: Token): void {
        remove(this.bySymbol, token.symbol, id);
        remove(this.byName, token.name.toLowerCase(), id);
        for (const key of [...buckets(token.symbol), ...buckets(token.name)]) remove(this.byBucket, key, id);
    }
}
