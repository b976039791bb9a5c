import { describe, expect, it } from 'vitest';
import { emptyRecord, readRecord, serialize, toRecord } from '../../src/cache/disk-format.js';

const NOW = Date.UTC(2026, 0, 15, 12, 0, 0);

/** The line as a file holds it, with bytes before and after it in the read buffer, as `readLines` hands it over. */
function inBuffer(line: string): { buffer: Buffer; start: number; end: number } {
    const before = 'x\n';
    const buffer = Buffer.from(`${before}${line}\nnext line\t{}`);
    return { buffer, start: Buffer.byteLength(before), end: Buffer.byteLength(before) + Buffer.byteLength(line) };
}

const decoded = (record: { key: string; fetchedAt: number; expiresAt: number; negative: boolean; valueStart: number }): unknown => ({
    key: record.key,
    fetchedAt: record.fetchedAt,
    expiresAt: record.expiresAt,
    negative: record.negative,
    valueStart: record.valueStart
});

describe('entry lines read without allocating a record per line', () => {
    const lines = {
        'as the cache writes it': serialize('price:3375', { value: { priceUsd: 1 }, fetchedAt: NOW, expiresAt: NOW + 60_000 }),
        'a negative answer, null': serialize('price:1', { value: null, fetchedAt: NOW, expiresAt: NOW + 60_000 }),
        'a negative answer, an empty list': serialize('tokens:symbol:UNII', { value: [], fetchedAt: NOW, expiresAt: NOW + 1 }),
        'a key with escapes': serialize('tokens:name:say "hi"\\\n', { value: [1], fetchedAt: NOW, expiresAt: NOW + 1 }),
        'a key beyond ASCII': serialize('tokens:name:日本円', { value: [1], fetchedAt: NOW, expiresAt: NOW + 1 }),
        'a negative time': serialize('price:2', { value: 2, fetchedAt: -5, expiresAt: 0 }),
        'a time with a fraction': '{"key":"price:2","fetchedAt":1.5,"expiresAt":2}\t2',
        'a time with an exponent': '{"key":"price:2","fetchedAt":1e3,"expiresAt":2}\t2',
        'a time of 16 digits': '{"key":"price:2","fetchedAt":1234567890123456,"expiresAt":2}\t2',
        'fields in another order': '{"fetchedAt":1,"key":"price:2","expiresAt":2}\t2',
        'spaces between fields': '{"key": "price:2", "fetchedAt": 1, "expiresAt": 2}\t2',
        'an extra field': '{"key":"price:2","fetchedAt":1,"expiresAt":2,"x":0}\t2',
        'a leading zero': '{"key":"price:2","fetchedAt":01,"expiresAt":2}\t2',
        'a raw control character in the key': '{"key":"price:\u0001","fetchedAt":1,"expiresAt":2}\t2',
        'an empty key': '{"key":"","fetchedAt":1,"expiresAt":2}\t2',
        'a key too long': serialize(`price:${'9'.repeat(600)}`, { value: 1, fetchedAt: 1, expiresAt: 2 }),
        'a time that is a string': '{"key":"price:2","fetchedAt":"1","expiresAt":2}\t2',
        'metadata cut short': '{"key":"price:2","fetchedAt":1,"expiresAt":\t2',
        'no value': '{"key":"price:2","fetchedAt":1,"expiresAt":2}\t',
        'no tab': '{"key":"price:2","fetchedAt":1,"expiresAt":2}'
    };

    for (const [what, line] of Object.entries(lines)) {
        it(`reads ${what} as the JSON parse does`, () => {
            const { buffer, start, end } = inBuffer(line);
            const expected = toRecord(buffer, start, end);
            const record = emptyRecord();
            expect(readRecord(buffer, start, end, record)).toBe(expected !== null);
            if (expected !== null) expect(decoded(record)).toEqual(decoded(expected));
        });
    }

    it('fills one record line after line, each time with that line alone', () => {
        const record = emptyRecord();
        const first = inBuffer(lines['a key beyond ASCII']);
        const second = inBuffer(lines['as the cache writes it']);
        expect(readRecord(first.buffer, first.start, first.end, record)).toBe(true);
        expect(readRecord(second.buffer, second.start, second.end, record)).toBe(true);
        expect(decoded(record)).toEqual(decoded(toRecord(second.buffer, second.start, second.end)!));
        expect(record.buffer.toString('utf8', record.valueStart, record.end)).toBe('{"priceUsd":1}');
    });
});
