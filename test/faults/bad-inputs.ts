import { mulberry32 } from '../fake-upstream/data.js';

/**
 * Deterministic generator of hostile `tools/call` params: wrong types, huge arrays, 10 kB strings, unicode
 * (RTL, emoji, NUL, lone surrogates), injection-looking text, unknown tools, extra fields, odd numbers,
 * null and nested objects. The same seed gives the same inputs on every run, so a failure can be replayed.
 */

/** What a correct server may answer. */
export type Expectation =
    /** An isError result or a JSON-RPC error. */
    | 'error'
    /** An error, or a valid answer (the input is a legal string the upstream may not know: `unresolved[]`). */
    | 'error-or-answer';

export interface BadInput {
    kind: string;
    params: { name?: unknown; arguments?: unknown } & Record<string, unknown>;
    expect: Expectation;
}

const TEN_KB = 10 * 1024;

/** Strings that try to escape a parameter, a path, a filter list or a log line, or are merely strange. */
export const EVIL_STRINGS: readonly string[] = [
    '',
    ' ',
    '\t\n',
    'x'.repeat(TEN_KB),
    'BTC'.repeat(Math.ceil(TEN_KB / 3)),
    '../../etc/passwd',
    '..\\..\\windows\\win.ini',
    '..%2f..%2fadmin',
    '/v2/price',
    '%00',
    'BTC%00',
    'BTC\u0000',
    '\u0000',
    '?token_id=1&x=',
    '&token_id=3375',
    'BTC&symbol=ETH',
    'a=b',
    '#fragment',
    'BTC#',
    ',',
    'BTC,ETH',
    ',,,',
    'BTC,',
    "'; DROP TABLE tokens;--",
    "' OR '1'='1",
    "' OR 1 --",
    "admin'--",
    '1 UNION SELECT api_key FROM keys',
    '") OR ("a"="a',
    '1; SELECT pg_sleep(10)',
    '/* comment */',
    '<script>alert(1)</script>',
    '${7*7}',
    '{{7*7}}',
    '$(cat /etc/passwd)',
    '`id`',
    '\r\nx-api-key: tm-evil',
    'BTC\r\n',
    '\u202Eetc\u202C',
    'BTC\u200B',
    '\u200F\u200E',
    'مرحبا',
    'שלום',
    'بيتكوين',
    '😀',
    '🚀🌕💎🙌',
    '👨‍👩‍👧‍👦',
    'ＢＴＣ',
    'e\u0301\u0301\u0301',
    '\uD800',
    '\uDFFF\uD800',
    '\uFFFF',
    '\\',
    '/',
    '%',
    '%25',
    '+',
    'null',
    'undefined',
    'NaN',
    'Infinity',
    '-1',
    '0',
    '-0',
    '1.5',
    '1e300',
    '0x1F',
    '00003375',
    '9'.repeat(13),
    '9'.repeat(400),
    'tm-',
    'x-api-key',
    'constructor',
    '__proto__',
    'hasOwnProperty',
    'NOPE404',
    'definitely not a token',
    'Bitcoin Cash Classic Gold',
    "Pepe's",
    '$WIF',
    'Wrapped (WBTC)'
];

const UNKNOWN_TOOLS: readonly string[] = [
    'get_prices',
    'GET_PRICE',
    ' get_price',
    'get_price ',
    'get_price\u0000',
    '',
    '../get_price',
    'tools/call',
    'get_price;rm -rf /',
    '\u202Eecirp_teg',
    '😀',
    'x'.repeat(TEN_KB),
    '__proto__',
    'constructor',
    'explain-signal'
];

/** Non-string values: null, booleans, odd numbers, objects, arrays. JSON has no NaN or Infinity: they arrive as null. */
const EVIL_VALUES: readonly unknown[] = [
    null,
    true,
    false,
    0,
    -0,
    -1,
    -3375,
    0.5,
    3375.5,
    1e12 + 1,
    1e21,
    1e308,
    -1e308,
    Number.MAX_SAFE_INTEGER + 2,
    Number.MIN_SAFE_INTEGER,
    Number.NaN,
    Number.POSITIVE_INFINITY,
    {},
    { symbol: 'BTC' },
    { $ne: null },
    { toString: 'BTC' },
    [],
    ['BTC'],
    [[['BTC']]],
    [null]
];

/** Alphabet of generated strings: controls, bidi marks, zero-width, surrogates, emoji, URL and SQL punctuation, letters. */
const ODD_CHARACTERS: readonly string[] = [
    '\u0000',
    '\u0007',
    '\u001b',
    '\u202E',
    '\u2066',
    '\u200B',
    '\uD83D\uDE00',
    '\uD800',
    '/',
    '?',
    '&',
    '=',
    '%',
    ',',
    "'",
    '"',
    ';',
    '-',
    '#',
    '\\',
    'a',
    'Z',
    '9',
    ' ',
    'é',
    'ß',
    'ж',
    '中'
];

/** Values each list_moonshots field must refuse. */
const BAD_MOONSHOT_FIELDS: Record<string, readonly unknown[]> = {
    type: ['ACTIVE', 'all', '', 'active ', 'active,past', 'active&type=past', '../past', null, 1, true, ['active'], {}],
    limit: [0, -1, 1.5, 51, 1e308, -1e308, '10', null, true, {}, [], Number.NaN],
    max_market_cap_usd: [0, -1, -1e308, 1e14, 1e308, '5e7', '50M', null, {}, [], false],
    min_trader_grade: [-1, -0.001, 100.5, 101, 1e308, '50', null, [], { $gt: 0 }, true]
};

function nested(depth: number, leaf: unknown): unknown {
    let value = leaf;
    for (let i = 0; i < depth; i++) value = i % 2 === 0 ? { symbol: value } : [value];
    return value;
}

/**
 * `count` hostile params, cycling through the kinds so each is well represented, choosing within a kind at random
 * (seeded). Every string a real token could be (a legal but unknown name) is marked `error-or-answer`.
 */
export function badInputs(count: number, seed = 0x5eed): BadInput[] {
    const random = mulberry32(seed);
    const pick = <T>(items: readonly T[]): T => items[Math.floor(random() * items.length)]!;
    const int = (min: number, max: number) => min + Math.floor(random() * (max - min + 1));
    /** A random string of odd code points: controls, bidi marks, surrogates, emoji, URL and SQL punctuation. */
    const randomString = (): string => {
        const length = random() < 0.05 ? TEN_KB : int(1, 80);
        let out = '';
        for (let i = 0; i < length; i++) out += pick(ODD_CHARACTERS);
        return out;
    };
    const evilString = () => (random() < 0.3 ? randomString() : pick(EVIL_STRINGS));
    const anyTool = () => pick(['get_price', 'get_grades', 'list_moonshots', 'explain_signal']);
    const singleTool = () => pick(['get_grades', 'explain_signal']);
    const notAList = EVIL_VALUES.filter(value => !Array.isArray(value) || typeof value[0] !== 'string');

    const kinds: Array<() => BadInput> = [
        () => ({
            kind: 'get_price symbols not a list',
            params: { name: 'get_price', arguments: { symbols: random() < 0.5 ? evilString() : pick(notAList) } },
            expect: 'error'
        }),
        () => ({
            kind: 'get_price odd strings',
            params: { name: 'get_price', arguments: { symbols: Array.from({ length: int(1, 4) }, evilString) } },
            expect: 'error-or-answer'
        }),
        () => {
            const length = pick([26, 100, 1000, 10_000]);
            const symbols = Array.from({ length }, (_, i) => (i % 3 === 0 ? 'BTC' : evilString().slice(0, 64)));
            return { kind: 'get_price huge list', params: { name: 'get_price', arguments: { symbols } }, expect: 'error' };
        },
        () => {
            const item = pick([null, true, -1, 0, 1.5, 1e13, 1e308, {}, [], ['ETH'], { symbol: 'ETH' }]);
            return { kind: 'non-string item', params: { name: 'get_price', arguments: { symbols: ['BTC', item] } }, expect: 'error' };
        },
        () => ({ kind: 'odd symbol', params: { name: singleTool(), arguments: { symbol: evilString() } }, expect: 'error-or-answer' }),
        () => ({ kind: 'wrong-type symbol', params: { name: singleTool(), arguments: { symbol: pick(EVIL_VALUES) } }, expect: 'error' }),
        () => {
            const field = pick(Object.keys(BAD_MOONSHOT_FIELDS));
            return {
                kind: `list_moonshots bad ${field}`,
                params: { name: 'list_moonshots', arguments: { [field]: pick(BAD_MOONSHOT_FIELDS[field]!) } },
                expect: 'error'
            };
        },
        () => ({
            kind: 'unknown tool',
            params: { name: random() < 0.7 ? pick(UNKNOWN_TOOLS) : randomString(), arguments: { symbols: ['BTC'], symbol: 'BTC' } },
            expect: 'error'
        }),
        () => {
            // Extra fields next to valid arguments may be ignored (zod strips them), so an answer is acceptable;
            // what is checked is that the extra text never reaches the upstream.
            const extra = { token_id: '1&x=', symbol_list: 'BTC,ETH', limit: pick(EVIL_VALUES), note: evilString(), deep: nested(20, '.') };
            const base = pick([
                { name: 'get_price', arguments: { symbols: ['ETH'] } },
                { name: 'get_grades', arguments: { symbol: 'SOL' } },
                { name: 'explain_signal', arguments: { symbol: 'BTC' } },
                { name: 'list_moonshots', arguments: { type: 'active' } }
            ]);
            const args: Record<string, unknown> = { ...base.arguments, ...extra };
            if (base.name === 'list_moonshots') delete args.limit;
            const params = { name: base.name, arguments: args, _meta: { progressToken: evilString() } };
            return { kind: 'extra fields', params, expect: 'error-or-answer' };
        },
        () => ({
            kind: 'arguments not an object',
            params: { name: anyTool(), arguments: pick(['BTC', ['BTC'], 42, true, evilString()]) },
            expect: 'error'
        }),
        () => ({
            kind: 'name not a string',
            params: { name: pick([null, 42, true, {}, ['get_price'], { name: 'get_price' }]), arguments: { symbols: ['BTC'] } },
            expect: 'error'
        }),
        () => ({
            kind: 'missing fields',
            params: pick([
                { name: 'get_price' },
                { name: 'get_price', arguments: {} },
                { name: 'get_grades', arguments: {} },
                { arguments: { symbol: 'BTC' } },
                {}
            ]),
            expect: 'error'
        }),
        () => ({
            kind: 'deeply nested',
            params: {
                name: anyTool(),
                arguments: { symbols: nested(int(10, 200), 'BTC'), symbol: nested(int(10, 200), 'ETH'), type: nested(int(9, 50), 'past') }
            },
            expect: 'error'
        })
    ];

    return Array.from({ length: count }, (_, i) => kinds[i % kinds.length]!());
}
