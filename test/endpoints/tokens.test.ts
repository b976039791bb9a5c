import { describe, expect, it } from 'vitest';
import { filterLists } from '../../src/endpoints/params.js';
import { TOKENS } from '../../src/endpoints/registry.js';

/** The `/tokens` record's side of batching: which parts batch together, and how a merged batch goes upstream. */

const NOW = Date.UTC(2026, 10, 25);

describe('/tokens lookups in batches', () => {
    it('batches symbols and names by kind, and sends ids in their own call', () => {
        const parts = TOKENS.parts({ symbols: ['btc'], names: ['Solana'], ids: [3306] });
        expect(parts.map(part => [part.key, TOKENS.batch(part.part)])).toEqual([
            ['tokens:symbol:BTC', 'symbol'],
            ['tokens:name:solana', 'name'],
            ['tokens:id:3306', null]
        ]);
    });

    it('refuses a value that cannot go into a comma list when the question is split, before it joins a batch', () => {
        expect(() => TOKENS.parts({ symbols: ['BTC,ETH'] })).toThrow(expect.objectContaining({ code: 'INVALID_INPUT' }));
        expect(() => TOKENS.parts({ names: ["admin'--"] })).toThrow(expect.objectContaining({ code: 'INVALID_INPUT' }));
    });

    it('sends a merged batch as comma lists of at most 100 values, one paged request per list', () => {
        const symbols = Array.from({ length: 250 }, (_, i) => `S${i}`);
        const requests = TOKENS.requests(TOKENS.ask(TOKENS.parts({ symbols }).map(part => part.part)), NOW);
        expect(requests.map(request => request.query.symbol!.toString().split(',').length)).toEqual([100, 100, 50]);
        expect(requests.every(request => request.paged)).toBe(true);
        expect(requests.flatMap(request => request.query.symbol!.toString().split(','))).toEqual(symbols);
    });

    it('keeps a list of long names to a URL a proxy accepts', () => {
        // 60 names of 60 characters, each sent as typed and title-cased: 120 values, over 7,000 characters in one list.
        const names = Array.from({ length: 60 }, (_, i) => `${'long name '.repeat(6).trim()} ${i}`.slice(-60));
        const requests = TOKENS.requests({ names }, NOW);
        const lists = requests.map(request => String(request.query.token_name));
        expect(lists.length).toBeGreaterThan(1);
        for (const list of lists) expect(encodeURIComponent(list).length).toBeLessThanOrEqual(4_000);
        expect(new Set(lists.flatMap(list => list.split(','))).size).toBe(120);
    });

    it('cuts filter lists at 100 values or 4,000 encoded characters, whichever comes first, in order', () => {
        expect(filterLists(['a', 'b', 'c'])).toEqual([['a', 'b', 'c']]);
        expect(filterLists(Array.from({ length: 101 }, () => 'x')).map(list => list.length)).toEqual([100, 1]);
        const wide = Array.from({ length: 10 }, (_, i) => `${'é'.repeat(60)}${i}`);
        const lists = filterLists(wide);
        expect(lists.flat()).toEqual(wide);
        for (const list of lists) expect(encodeURIComponent(list.join(',')).length).toBeLessThanOrEqual(4_000);
    });
});
