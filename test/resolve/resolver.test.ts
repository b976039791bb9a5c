import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import type { Token } from '../../src/domain/market.js';
import { createMarketService } from '../../src/cache/index.js';
import { silentLogger } from '../../src/logger.js';
import { closest, editDistance } from '../../src/resolve/distance.js';
import { TokenResolver, rankCandidates } from '../../src/resolve/resolver.js';
import { FakeUpstream } from '../fake-upstream/index.js';
import { FakeClock } from '../helpers/clock.js';
import { clientFor } from '../helpers/client.js';

const token = (tokenId: number, symbol: string, exchanges: number): Token => ({
    tokenId,
    symbol,
    name: `${symbol} ${tokenId}`,
    categories: [],
    exchanges: Array.from({ length: exchanges }, (_, i) => `ex${i}`),
    contracts: {}
});

describe('ranking shared symbols', () => {
    it('prefers the token on the most exchanges, then the lowest id, whatever the upstream order', () => {
        const ranked = rankCandidates([token(9, 'UNI', 1), token(7, 'UNI', 3), token(5, 'UNI', 3)]);
        expect(ranked.map(candidate => candidate.tokenId)).toEqual([5, 7, 9]);
    });
});

describe('suggestions', () => {
    it('counts a swap of neighbours as one edit', () => {
        expect(editDistance('ETH', 'EHT')).toBe(1);
        expect(editDistance('bitcoin', 'bitcon')).toBe(1);
    });

    it('suggests near matches only', () => {
        const pool = [
            { key: 'ETH', label: 'ETH' },
            { key: 'BTC', label: 'BTC' },
            { key: 'Ethereum', label: 'ETH' }
        ];
        expect(closest('ETHH', pool, 3)).toEqual(['ETH']);
        expect(closest('etherium', pool, 3)).toEqual(['ETH']);
        expect(closest('XRP', pool, 3)).toEqual([]);
    });
});

describe('TokenResolver against the fake upstream', () => {
    let fake: FakeUpstream;
    let resolver: TokenResolver;

    beforeAll(async () => {
        fake = await FakeUpstream.start();
    });
    afterAll(async () => {
        await fake.close();
    });
    beforeEach(() => {
        fake.reset();
        const clock = new FakeClock();
        const { client } = clientFor(fake, { clock });
        const market = createMarketService({
            inner: client,
            clock,
            logger: silentLogger,
            staleMaxAgeSeconds: 86_400,
            batchWindowMs: 0,
            maxEntries: 1000,
            cacheDir: null
        });
        resolver = new TokenResolver(market);
    });

    it('resolves symbols, names and ids with one request per kind', async () => {
        const resolution = await resolver.resolve(['btc', 'Solana', '3306', 'wrapped thing']);
        expect(resolution.resolved.map(entry => [entry.input, entry.token.symbol])).toEqual([
            ['btc', 'BTC'],
            ['Solana', 'SOL'],
            ['3306', 'ETH']
        ]);
        expect(resolution.unresolved.map(entry => entry.input)).toEqual(['wrapped thing']);
        expect(fake.calls.map(call => Object.keys(call.query).filter(name => name !== 'limit' && name !== 'page')[0]).sort()).toEqual([
            'symbol',
            'token_id',
            'token_name'
        ]);
        // As typed and title-cased: the fake, like the upstream may be, matches names case-sensitively.
        expect(fake.calls.find(call => call.query.token_name)?.query.token_name).toBe('wrapped thing,Wrapped Thing,Solana');
    });

    it('answers inputs that cannot be a symbol without asking the upstream', async () => {
        const resolution = await resolver.resolve(['../etc/passwd', "'; DROP TABLE tokens;--", '%00', 'a,b']);
        expect(resolution.resolved).toEqual([]);
        expect(resolution.unresolved).toHaveLength(4);
        expect(resolution.unresolved[0]?.reason).toMatch(/Not a valid token symbol/);
        expect(fake.count()).toBe(0);
    });

    it('quotes inputs back without control or direction-override characters, cut without splitting a character', async () => {
        const resolution = await resolver.resolve(['ab\u0000c\u202e\u001b[31m', '🚀'.repeat(80)]);
        expect(resolution.unresolved.map(entry => entry.input)).toEqual(['abc[31m', `${'🚀'.repeat(63)}…`]);
    });

    it('resolves a name seen earlier in the session without another lookup', async () => {
        await resolver.resolve(['SOL', 'UNI']);
        const calls = fake.count();
        const again = await resolver.resolve(['solana', 'Uniswap']);
        expect(again.resolved.map(entry => entry.token.tokenId)).toEqual([3988, 3386]);
        expect(fake.count()).toBe(calls);
    });
});
