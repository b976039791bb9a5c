import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { parseRows } from '../../src/api/parse-rows.js';
import { ROW_SCHEMAS, type RowSchema } from '../../src/api/schemas.js';

/**
 * Properties every endpoint's row schema must have, checked on the fixture rows (shaped as the vendor's own code shows
 * them, see test/fixtures/upstream/README.md): one odd field never costs the row, let alone the answer.
 */

const schemaFor = (endpoint: string): RowSchema<unknown> => ROW_SCHEMAS.find(schema => schema.endpoint === endpoint)!;

const FIXTURE_OF: Record<string, string> = {
    '/tokens': 'tokens',
    '/price': 'price',
    '/tm-grade': 'tm-grade',
    '/fundamental-grade': 'fundamental-grade',
    '/technology-grade': 'technology-grade',
    '/trading-signals': 'trading-signals',
    '/moonshot-tokens': 'moonshot-tokens-active',
    '/daily-ohlcv': 'daily-ohlcv'
};

function fixtureRows(endpoint: string): Array<Record<string, unknown>> {
    const name = FIXTURE_OF[endpoint];
    if (name === undefined) throw new Error(`no fixture for ${endpoint}: add one to test/fixtures/upstream`);
    const file = new URL(`../fixtures/upstream/${name}.json`, import.meta.url);
    return (JSON.parse(readFileSync(file, 'utf8')) as { rows: Array<Record<string, unknown>> }).rows;
}

/** The upstream names of the fields a row cannot do without. */
function identityNames(schema: RowSchema<unknown>): { all: string[]; any: string[] } {
    const upstream = (key: string) => schema.fields[key]!.names.map(name => name.toLowerCase());
    return { all: schema.identity.flatMap(upstream), any: schema.identityAny.flatMap(upstream) };
}

/** Whether a row without `field` (or with it unreadable) still has its identity. */
function keepsIdentity(schema: RowSchema<unknown>, row: Record<string, unknown>, field: string): boolean {
    const { all, any } = identityNames(schema);
    const lower = field.toLowerCase();
    if (all.includes(lower)) return false;
    if (any.length === 0) return true;
    return Object.keys(row).some(
        name => name.toLowerCase() !== lower && any.includes(name.toLowerCase()) && row[name] !== null && row[name] !== ''
    );
}

/** Fields whose own kind is a list or a map: the "wrong kinds" below that they legitimately take. */
const ACCEPTS: Record<string, string[]> = { EXCHANGE_LIST: ['a list'], CATEGORY_LIST: ['a list'], CONTRACT_ADDRESS: ['an object'] };

const known = (schema: RowSchema<unknown>): Set<string> =>
    new Set(Object.values(schema.fields).flatMap(field => field.names.map(name => name.toLowerCase())));

const WRONG_KINDS: Array<[string, unknown]> = [
    ['an object', { unexpected: true }],
    ['a list', [1, 2]],
    ['"n/a"', 'n/a']
];

describe.each(ROW_SCHEMAS.map(schema => [schema.endpoint, schema as RowSchema<unknown>] as const))('%s row schema', (endpoint, schema) => {
    const rows = fixtureRows(endpoint).slice(0, 3);

    it('has fixture rows that parse whole, with no drift', () => {
        expect(rows.length).toBeGreaterThan(0);
        const parsed = parseRows(schema, rows);
        expect(parsed).toMatchObject({ dropped: 0, wrongKinds: [] });
        expect(parsed.rows).toHaveLength(rows.length);
    });

    it('parses a row missing any one field, or drops it and counts it when that field is its identity', () => {
        for (const row of rows) {
            for (const field of Object.keys(row)) {
                const { [field]: _dropped, ...rest } = row;
                const parsed = parseRows(schema, [rest]);
                const kept = keepsIdentity(schema, row, field);
                expect({ field, rows: parsed.rows.length, dropped: parsed.dropped }).toEqual({
                    field,
                    rows: kept ? 1 : 0,
                    dropped: kept ? 0 : 1
                });
                expect(parsed.wrongKinds).toEqual([]);
            }
        }
    });

    it('parses a row with every optional field missing at once', () => {
        const { all, any } = identityNames(schema);
        for (const row of rows) {
            const identityOnly = Object.fromEntries(Object.entries(row).filter(([name]) => [...all, ...any].includes(name.toLowerCase())));
            const parsed = parseRows(schema, [identityOnly]);
            expect(parsed.rows).toHaveLength(1);
            expect(parsed.dropped).toBe(0);
        }
    });

    it('reads a field of the wrong kind as null plus one drift report, never as a failed row', () => {
        for (const row of rows) {
            for (const field of Object.keys(row)) {
                for (const [kind, value] of WRONG_KINDS) {
                    const parsed = parseRows(schema, [{ ...row, [field]: value }]);
                    const kept = keepsIdentity(schema, row, field);
                    expect({ field, kind, rows: parsed.rows.length, dropped: parsed.dropped }).toEqual({
                        field,
                        kind,
                        rows: kept ? 1 : 0,
                        dropped: kept ? 0 : 1
                    });
                    // "n/a" is the upstream's own word for "no value"; an object or a list where a scalar belongs is drift,
                    // reported once under the field's name. Lists and maps take their own kind; unread fields are no one's concern.
                    const accepts = ACCEPTS[field.toUpperCase()] ?? [];
                    const drift = known(schema).has(field.toLowerCase()) && kind !== '"n/a"' && !accepts.includes(kind);
                    expect({ field, kind, reports: parsed.wrongKinds.map(report => report.field.toLowerCase()) }).toEqual({
                        field,
                        kind,
                        reports: drift ? [field.toLowerCase()] : []
                    });
                }
            }
        }
    });

    it('reads v3 lower_snake_case rows exactly as v2 UPPER_SNAKE_CASE rows', () => {
        const lower = rows.map(row => Object.fromEntries(Object.entries(row).map(([name, value]) => [name.toLowerCase(), value])));
        expect(parseRows(schema, lower)).toEqual(parseRows(schema, rows));
    });

    it('drops rows that are not objects and counts them', () => {
        const parsed = parseRows(schema, [null, 'row', 42, [], ...rows]);
        expect(parsed.dropped).toBe(4);
        expect(parsed.rows).toHaveLength(rows.length);
    });
});

describe('drift reports', () => {
    it('names the field and what came instead', () => {
        const parsed = parseRows(schemaFor('/tm-grade'), [{ TOKEN_ID: 3375, TM_GRADE: { value: 71 }, MOMENTUM: ['up'] }]);
        expect(parsed.rows).toHaveLength(1);
        expect(parsed.rows[0]).toMatchObject({ tokenId: 3375, tmGrade: null, momentum: null });
        expect(parsed.wrongKinds).toEqual([
            { field: 'TM_GRADE', got: 'an object' },
            { field: 'MOMENTUM', got: 'a list' }
        ]);
    });

    it('accepts exchange and category lists as objects or strings, and contract addresses as a map', () => {
        const parsed = parseRows(schemaFor('/tokens'), [
            {
                TOKEN_ID: 1,
                TOKEN_SYMBOL: 'ONE',
                EXCHANGE_LIST: [{ exchange_id: 'binance', exchange_name: 'Binance' }, 'gate', { exchange_id: 'mexc' }],
                CATEGORY_LIST: 'layer-1, defi',
                CONTRACT_ADDRESS: { ethereum: '0xabc', solana: 42 }
            }
        ]);
        expect(parsed.rows[0]).toEqual({
            tokenId: 1,
            name: 'ONE',
            symbol: 'ONE',
            exchanges: ['Binance', 'gate', 'mexc'],
            categories: ['layer-1', 'defi'],
            contracts: { ethereum: '0xabc' }
        });
    });

    it('takes the trend from TRADING_SIGNAL when a row has no TOKEN_TREND', () => {
        const parsed = parseRows(schemaFor('/trading-signals'), [
            { TOKEN_ID: 3375, DATE: '2025-04-10T00:00:00.000Z', TRADING_SIGNAL: '-1' }
        ]);
        expect(parsed.rows[0]).toMatchObject({ event: -1, trend: -1, date: '2025-04-10T00:00:00.000Z' });
    });
});
