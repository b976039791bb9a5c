import { describe, expect, it } from 'vitest';
import type { Token } from '../../src/domain/market.js';
import { TokenDirectory } from '../../src/resolve/directory.js';

const token = (tokenId: number, symbol: string, name: string): Token => ({
    tokenId,
    symbol,
    name,
    categories: [],
    exchanges: [],
    contracts: {}
});

/** Many made-up tokens, as a long session or a team deployment accumulates. */
const crowd = (count: number): Token[] =>
    Array.from({ length: count }, (_, i) => token(100_000 + i, `Q${i.toString(36).toUpperCase()}`, `Crowd Token ${i}`));

describe('TokenDirectory', () => {
    it('finds tokens by name and symbol in any case', () => {
        const directory = new TokenDirectory();
        directory.remember([token(3306, 'ETH', 'Ethereum'), token(3988, 'SOL', 'Solana')]);
        expect(directory.withName('ETHEREUM').map(found => found.tokenId)).toEqual([3306]);
        expect(directory.hasSymbol('sol')).toBe(true);
        expect(directory.hasSymbol('ADA')).toBe(false);
    });

    it('suggests close symbols and names among thousands of tokens', () => {
        const directory = new TokenDirectory();
        directory.remember([...crowd(20_000), token(3306, 'ETH', 'Ethereum'), token(3386, 'UNI', 'Uniswap'), token(3988, 'SOL', 'Solana')]);
        expect(directory.suggestions('ETHH', 3)).toEqual(['ETH (Ethereum, id 3306)']);
        expect(directory.suggestions('etherium', 3)).toEqual(['ETH (Ethereum, id 3306)']);
        // A typo in the second character is still found, through the first-character-and-length bucket.
        expect(directory.suggestions('sxlana', 3)).toEqual(['SOL (Solana, id 3988)']);
        expect(directory.suggestions('no such coin', 3)).toEqual([]);
    });

    it('re-indexes a token whose row changed, and forgets the least recently seen beyond its bound', () => {
        const directory = new TokenDirectory(3);
        directory.remember([token(1, 'OLD', 'First'), token(2, 'TWO', 'Second'), token(3, 'THREE', 'Third')]);
        directory.remember([token(1, 'NEW', 'First Renamed')]);
        expect(directory.hasSymbol('OLD')).toBe(false);
        expect(directory.withName('first renamed').map(found => found.symbol)).toEqual(['NEW']);
        directory.remember([token(4, 'FOUR', 'Fourth')]);
        expect(directory.size).toBe(3);
        expect(directory.hasSymbol('TWO')).toBe(false);
        expect(directory.withName('Second')).toEqual([]);
        expect(directory.suggestions('TWO', 3)).toEqual([]);
    });
});
