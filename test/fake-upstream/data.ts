/**
 * The fake upstream's world: what each Token Metrics endpoint answers, in the row shapes the real API sends.
 *
 * Why fixtures: an earlier fake invented its own shapes (string lists where the API sends objects, fields the API
 * omits, DATE on /tm-grade), so the client was tested against an API that does not exist. The rows for the twelve
 * well-known tokens now come from `test/fixtures/upstream/*.json`, each copied from the shape of a public source
 * (token-metrics/mcp tool types, tmai-langchain-tools, tmai-api-sdk-typescript, the vendor's published example
 * row); `test/fixtures/upstream/README.md` lists the source of every file and the quirks it deliberately keeps.
 *
 * Fixture values are served verbatim. Only dates move: the fixtures are dated around 2025-04-10, and every date
 * field is shifted by whole days so the newest fixture day lands on `now() - FIXTURE_LAG_DAYS` (the upstream
 * publishes a day's signals after the day ends). `FakeWorld.shiftedDate` tells a test what a fixture date becomes.
 *
 * The 48 generated tokens (`Fake Token i` / `FK{i}`, ids 40000+i), and fixture tokens for endpoints their
 * fixtures do not cover, get generated rows in the same shapes, deterministic via mulberry32.
 */
import { existsSync, readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { Clock } from '../../src/clock.js';

export type Row = Record<string, unknown>;

export interface FakeToken {
    id: number;
    name: string;
    symbol: string;
    price: number;
    marketCap: number;
    volume24h: number;
    /** `category_name` of each CATEGORY_LIST item, as a client shows them. */
    categories: string[];
    /** `exchange_name` of each EXCHANGE_LIST item, as a client shows them. */
    exchanges: string[];
}

/** An inclusive range of days, `YYYY-MM-DD`. */
export interface DayRange {
    start: string;
    end: string;
}

export const FIXTURE_NAMES = [
    'tokens',
    'price',
    'tm-grade',
    'fundamental-grade',
    'technology-grade',
    'trading-signals',
    'daily-ohlcv',
    'moonshot-tokens-active',
    'moonshot-tokens-past',
    'market-metrics'
] as const;
export type FixtureName = (typeof FIXTURE_NAMES)[number];

/** The fake serves the newest fixture day as this many days before now. */
export const FIXTURE_LAG_DAYS = 1;
/** The newest day in the fixtures; it is served as `now() - FIXTURE_LAG_DAYS`. */
export const FIXTURE_NEWEST_DAY = '2025-04-10';
/** Fields holding a date or timestamp; the only fields whose fixture values are not served verbatim. */
export const DATE_FIELDS = ['DATE', 'TIMESTAMP', 'MOONSHOT_AT', 'MOONSHOT_END_AT', 'LAST_TRADING_SIGNAL_TIME'] as const;

const DAY_MS = 86_400_000;
/** How far back generated histories reach. */
const HISTORY_DAYS = 400;

let fixturesRoot: string | undefined;

/**
 * `test/fixtures/upstream`, found by walking up from this file: it runs from `test/fake-upstream/` (vitest) and
 * from `dist/test/fake-upstream/` (the bench), and tsc does not copy JSON into dist.
 */
export function fixturesDir(): string {
    if (fixturesRoot) return fixturesRoot;
    let dir = dirname(fileURLToPath(import.meta.url));
    for (;;) {
        const candidate = join(dir, 'test', 'fixtures', 'upstream');
        if (existsSync(join(candidate, 'tokens.json'))) return (fixturesRoot = candidate);
        const parent = dirname(dir);
        if (parent === dir) throw new Error('test/fixtures/upstream not found above ' + fileURLToPath(import.meta.url));
        dir = parent;
    }
}

const loaded = new Map<FixtureName, { source: string; rows: Row[] }>();

function load(name: FixtureName): { source: string; rows: Row[] } {
    let file = loaded.get(name);
    if (!file) {
        const parsed = JSON.parse(readFileSync(join(fixturesDir(), `${name}.json`), 'utf8')) as { source?: unknown; rows?: unknown };
        if (typeof parsed.source !== 'string' || !Array.isArray(parsed.rows)) throw new Error(`fixture ${name} lacks source or rows`);
        file = { source: parsed.source, rows: parsed.rows as Row[] };
        loaded.set(name, file);
    }
    return file;
}

/** A fixture's rows exactly as stored (unshifted dates), as a fresh copy. */
export function fixture(name: FixtureName): Row[] {
    return structuredClone(load(name).rows);
}

/** A fixture value as the server reads it: numbers and numeric strings are numbers, absent or null is null. */
export const fixtureNumber = (value: unknown): number | null => (value === undefined || value === null ? null : Number(value));

/** The public source(s) whose shape a fixture copies. */
export function fixtureSource(name: FixtureName): string {
    return load(name).source;
}

/** The day (`YYYY-MM-DD`) a dated row is for: its DATE, else its TIMESTAMP. */
export function rowDay(row: Row): string | null {
    const value = row.DATE ?? row.TIMESTAMP;
    return typeof value === 'string' && /^\d{4}-\d{2}-\d{2}/.test(value) ? value.slice(0, 10) : null;
}

/** Market caps of the fixture tokens (the fixtures' endpoints do not carry them). */
const MARKET_CAPS: Record<number, number> = {
    3375: 1.92e12,
    3306: 4.1e11,
    3988: 8.9e10,
    3369: 1.3e11,
    3408: 5.6e10,
    3387: 3.4e10,
    20211: 7.9e9,
    3386: 7.5e9,
    31007: 1.2e6,
    3427: 1.5e10,
    3590: 1.05e10,
    3600: 1.7e10
};

/** A small deterministic PRNG (mulberry32) so every run generates the same world. */
export function mulberry32(seed: number): () => number {
    let state = seed >>> 0;
    return () => {
        state = (state + 0x6d2b79f5) >>> 0;
        let t = state;
        t = Math.imul(t ^ (t >>> 15), t | 1);
        t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
        return ((t ^ (t >>> 14)) >>> 0) / 4_294_967_296;
    };
}

const round = (value: number, digits = 2): number => Number(value.toFixed(digits));
const clamp = (value: number, low: number, high: number): number => Math.min(high, Math.max(low, value));
const slug = (name: string): string =>
    name
        .toLowerCase()
        .replace(/[^a-z0-9]+/g, '-')
        .replace(/^-|-$/g, '');
const dayOf = (ms: number): string => new Date(ms).toISOString().slice(0, 10);

/** `TM_GRADE_SIGNAL` bins of the TM grade (five bins over 0-100). */
function gradeSignal(grade: number): string {
    if (grade >= 80) return 'Strong Buy';
    if (grade >= 60) return 'Buy';
    if (grade >= 40) return 'Neutral';
    if (grade >= 20) return 'Sell';
    return 'Strong Sell';
}

function momentum(change: number): string {
    return change > 1 ? 'Gaining Momentum' : change < -1 ? 'Losing Momentum' : 'Stable';
}

function names(list: unknown, key: string): string[] {
    return Array.isArray(list)
        ? list.flatMap(item => (item && typeof (item as Row)[key] === 'string' ? [(item as Row)[key] as string] : []))
        : [];
}

function byToken(rows: Row[]): Map<number, Row[]> {
    const map = new Map<number, Row[]>();
    for (const row of rows) {
        const id = Number(row.TOKEN_ID);
        map.set(id, [...(map.get(id) ?? []), row]);
    }
    return map;
}

interface SignalPlan {
    /** Days-ago offsets of flip days (the first day of a new trend). */
    flips: Set<number>;
    /** TOKEN_TREND by days ago. */
    trend: number[];
    /** TRADING_SIGNALS_RETURNS by days ago. */
    strategy: number[];
    /** The price HOLDING_RETURNS is measured from. */
    p0: number;
    traderBase: number;
    investorBase: number;
    phase: number;
}

const GENERATED_EXCHANGES = {
    binance: [{ exchange_id: 'binance', exchange_name: 'Binance' }],
    other: [
        { exchange_id: 'mxc', exchange_name: 'MEXC' },
        { exchange_id: 'gate', exchange_name: 'Gate' }
    ]
};
const GENERATED_CATEGORIES = [{ category_id: 3, category_name: 'DeFi', category_slug: 'defi' }];

export class FakeWorld {
    readonly tokens: FakeToken[];
    private readonly fixtureIds: Set<number>;
    private readonly tokenRows = new Map<number, Row>();
    private readonly priceRows = new Map<number, Row>();
    private readonly tmGrades = new Map<number, Row>();
    private readonly fundamentals = new Map<number, Row>();
    private readonly technologies = new Map<number, Row>();
    private readonly signals: Map<number, Row[]>;
    private readonly candles: Map<number, Row[]>;
    private readonly generatedRows = new Map<number, Row>();
    private readonly closeCache = new Map<number, number[]>();
    private readonly planCache = new Map<number, SignalPlan>();

    /**
     * @param now What "today" is for the data served. A server under test on a FakeClock must share it (see
     * `followClock`), or its date windows and the fake's days drift apart as the real date moves on.
     */
    constructor(
        public now: () => number = Date.now,
        readonly lagDays: number = FIXTURE_LAG_DAYS
    ) {
        for (const row of fixture('tokens')) this.tokenRows.set(Number(row.TOKEN_ID), row);
        for (const row of fixture('price')) this.priceRows.set(Number(row.TOKEN_ID), row);
        for (const row of fixture('tm-grade')) this.tmGrades.set(Number(row.TOKEN_ID), row);
        for (const row of fixture('fundamental-grade')) this.fundamentals.set(Number(row.TOKEN_ID), row);
        for (const row of fixture('technology-grade')) this.technologies.set(Number(row.TOKEN_ID), row);
        this.signals = byToken(fixture('trading-signals'));
        this.candles = byToken(fixture('daily-ohlcv'));

        const wellKnown: FakeToken[] = [...this.tokenRows.values()].map(row => {
            const id = Number(row.TOKEN_ID);
            const marketCap = MARKET_CAPS[id] ?? 0;
            return {
                id,
                name: String(row.TOKEN_NAME),
                symbol: String(row.TOKEN_SYMBOL),
                price: Number(this.priceRows.get(id)?.CURRENT_PRICE ?? 0),
                marketCap,
                volume24h: round(marketCap * 0.04, 0),
                categories: names(row.CATEGORY_LIST, 'category_name'),
                exchanges: names(row.EXCHANGE_LIST, 'exchange_name')
            };
        });
        this.fixtureIds = new Set(wellKnown.map(token => token.id));

        // The random sequence (price, market cap, volume, exchanges per token) is unchanged from earlier fakes, so
        // the generated tokens keep their prices.
        const random = mulberry32(42);
        const generated: FakeToken[] = [];
        for (let i = 0; i < 48; i++) {
            const price = round(0.001 + random() * 50, 6);
            const marketCap = round(5e6 + random() * 4e8, 0);
            const volume24h = round(1e5 + random() * 5e7, 0);
            const exchanges = random() > 0.5 ? GENERATED_EXCHANGES.binance : GENERATED_EXCHANGES.other;
            const id = 40_000 + i;
            const row: Row = {
                TOKEN_ID: id,
                TOKEN_NAME: `Fake Token ${i}`,
                TOKEN_SYMBOL: `FK${i}`,
                CATEGORY_LIST: GENERATED_CATEGORIES,
                EXCHANGE_LIST: exchanges
            };
            // Like the fixtures: some rows carry an address, some `{}`, some no CONTRACT_ADDRESS at all.
            if (i % 3 === 0) row.CONTRACT_ADDRESS = { ethereum: this.address(id) };
            else if (i % 3 === 1) row.CONTRACT_ADDRESS = {};
            this.generatedRows.set(id, row);
            generated.push({
                id,
                name: `Fake Token ${i}`,
                symbol: `FK${i}`,
                price,
                marketCap,
                volume24h,
                categories: names(GENERATED_CATEGORIES, 'category_name'),
                exchanges: names(exchanges, 'exchange_name')
            });
        }
        this.tokens = [...wellKnown, ...generated];
    }

    byId(id: number): FakeToken | undefined {
        return this.tokens.find(token => token.id === id);
    }

    /** Whether the token's rows come from the fixtures (the twelve well-known tokens). */
    isFixtureToken(token: FakeToken | number): boolean {
        return this.fixtureIds.has(typeof token === 'number' ? token : token.id);
    }

    /** Serves data dated by `clock` from now on: the clock of the server under test. */
    followClock(clock: Pick<Clock, 'now'>): void {
        this.now = () => clock.now();
    }

    /** The newest day the fake has data for: `now() - lagDays`, `YYYY-MM-DD`. */
    latestDay(): string {
        return dayOf(this.now() - this.lagDays * DAY_MS);
    }

    /** Whole days every fixture date is moved forward by. */
    shiftDays(): number {
        return Math.round((Date.parse(this.latestDay()) - Date.parse(FIXTURE_NEWEST_DAY)) / DAY_MS);
    }

    /**
     * What the fake serves for a fixture date: moved by `shiftDays()` whole days, in the same format
     * (`YYYY-MM-DD` stays a day, an ISO timestamp stays an ISO timestamp with its time of day, which is
     * 00:00:00.000Z for every signal and OHLCV fixture row). Anything unparseable is returned unchanged.
     */
    shiftedDate(fixtureDate: string): string {
        const delta = this.shiftDays() * DAY_MS;
        if (/^\d{4}-\d{2}-\d{2}$/.test(fixtureDate)) return dayOf(Date.parse(fixtureDate) + delta);
        const time = Date.parse(fixtureDate);
        return Number.isNaN(time) ? fixtureDate : new Date(time + delta).toISOString();
    }

    /** A fixture's rows as the fake serves them: values verbatim, date fields shifted. */
    servedFixture(name: FixtureName): Row[] {
        return load(name).rows.map(row => this.served(row));
    }

    private served(row: Row): Row {
        const copy = structuredClone(row);
        for (const field of DATE_FIELDS) {
            const value = copy[field];
            if (typeof value === 'string') copy[field] = this.shiftedDate(value);
        }
        return copy;
    }

    /** The day `offset` days before the newest day. */
    private day(offset: number): string {
        return dayOf(Date.parse(this.latestDay()) - offset * DAY_MS);
    }

    /** Days-ago offsets (0 = newest day) inside `range`, newest first; only the newest day without a range. */
    private offsets(range: DayRange | undefined, available: number): number[] {
        if (!range) return [0];
        const latest = Date.parse(this.latestDay());
        const from = Math.max(0, Math.round((latest - Date.parse(range.end)) / DAY_MS));
        const to = Math.min(available - 1, Math.round((latest - Date.parse(range.start)) / DAY_MS));
        const out: number[] = [];
        for (let offset = from; offset <= to; offset++) out.push(offset);
        return out;
    }

    /** Rows (already shifted) for the days of `range`; the newest row only without a range. Newest first. */
    private inRange(rows: Row[], range: DayRange | undefined): Row[] {
        const sorted = [...rows].sort((a, b) => (rowDay(b) ?? '').localeCompare(rowDay(a) ?? ''));
        if (!range) return sorted.slice(0, 1);
        return sorted.filter(row => {
            const day = rowDay(row);
            return day !== null && day >= range.start && day <= range.end;
        });
    }

    /** Per-token deterministic randomness, stable across calls. */
    private rng(id: number, salt: number): () => number {
        return mulberry32(id * 7919 + salt);
    }

    private address(id: number): string {
        const random = this.rng(id, 8);
        let hex = '0x';
        for (let i = 0; i < 40; i++) hex += Math.floor(random() * 16).toString(16);
        return hex;
    }

    tokenRow(token: FakeToken): Row {
        return structuredClone(
            this.tokenRows.get(token.id) ??
                this.generatedRows.get(token.id) ?? { TOKEN_ID: token.id, TOKEN_NAME: token.name, TOKEN_SYMBOL: token.symbol }
        );
    }

    /** Fixture prices verbatim (some are strings); generated ones are strings for even ids, as upstream sometimes does. */
    priceRow(token: FakeToken): Row {
        const row = this.priceRows.get(token.id);
        if (row) return structuredClone(row);
        return {
            TOKEN_ID: token.id,
            TOKEN_NAME: token.name,
            TOKEN_SYMBOL: token.symbol,
            CURRENT_PRICE: token.id % 2 === 0 ? String(token.price) : token.price
        };
    }

    /**
     * The latest TM grade: no DATE, numbers as strings. Generated rows alternate the two documented revisions:
     * even ids FUNDAMENTAL_GRADE + FUNDAMENTAL_GRADE_CLASS, odd ids QUANT_GRADE.
     */
    tmGradeRow(token: FakeToken): Row {
        const row = this.tmGrades.get(token.id);
        if (row) return structuredClone(row);
        const random = this.rng(token.id, 2);
        const grade = round(10 + random() * 85);
        const pct = round(random() * 20 - 10);
        const change = round(random() * 8 - 4);
        const fundamental = round(30 + random() * 60);
        const quant = round(20 + random() * 70);
        const head: Row = { TOKEN_ID: token.id, TOKEN_NAME: token.name, TOKEN_SYMBOL: token.symbol };
        if (token.id % 2 === 0) {
            return {
                ...head,
                FUNDAMENTAL_GRADE: String(fundamental),
                TM_GRADE: String(grade),
                TM_GRADE_24h_PCT_CHANGE: String(pct),
                TM_TRADER_GRADE_24H_CHANGE: String(change),
                FUNDAMENTAL_GRADE_CLASS: fundamental >= 75 ? 'Excellent' : fundamental >= 60 ? 'Good' : fundamental >= 45 ? 'Fair' : 'Poor',
                TM_GRADE_SIGNAL: gradeSignal(grade),
                MOMENTUM: momentum(change)
            };
        }
        return {
            ...head,
            TM_GRADE: String(grade),
            TM_GRADE_24h_PCT_CHANGE: String(pct),
            TM_TRADER_GRADE_24H_CHANGE: String(change),
            QUANT_GRADE: String(quant),
            TM_GRADE_SIGNAL: gradeSignal(grade),
            MOMENTUM: momentum(change)
        };
    }

    /**
     * `/tm-grade-history`: the /tm-grade row plus DATE (`YYYY-MM-DD`) for each day, newest first. The newest day is
     * exactly `tmGradeRow(token)`; earlier days drift around it deterministically, with the same fields.
     */
    tmGradeHistoryRows(token: FakeToken, range?: DayRange): Row[] {
        const latest = this.tmGradeRow(token);
        const base = Number(latest.TM_GRADE);
        return this.offsets(range, HISTORY_DAYS).map(offset => {
            if (offset === 0) return { ...latest, DATE: this.day(0) };
            const random = this.rng(token.id, 900 + offset);
            const grade = round(clamp(base + Math.sin(offset / 4) * 12 + (random() - 0.5) * 6, 0, 100));
            const previous = round(clamp(base + Math.sin((offset + 1) / 4) * 12, 0, 100));
            const change = round(grade - previous);
            const row: Row = {
                ...latest,
                TM_GRADE: String(grade),
                TM_GRADE_24h_PCT_CHANGE: String(round(previous ? (change / previous) * 100 : 0))
            };
            row.TM_TRADER_GRADE_24H_CHANGE = String(round((random() - 0.5) * 8));
            row.TM_GRADE_SIGNAL = gradeSignal(grade);
            if ('MOMENTUM' in latest) row.MOMENTUM = momentum(change);
            row.DATE = this.day(offset);
            return row;
        });
    }

    /** `/fundamental-grade`: the latest row per token (DATE `YYYY-MM-DD`). */
    fundamentalGradeRow(token: FakeToken): Row {
        const row = this.fundamentals.get(token.id);
        if (row) return this.served(row);
        const random = this.rng(token.id, 10);
        const grade = round(30 + random() * 60);
        const generated: Row = {
            TOKEN_ID: token.id,
            TOKEN_NAME: token.name,
            TOKEN_SYMBOL: token.symbol,
            DATE: this.day(0),
            FUNDAMENTAL_GRADE: grade,
            FUNDAMENTAL_GRADE_CLASS: grade >= 75 ? 'Excellent' : grade >= 60 ? 'Good' : grade >= 45 ? 'Fair' : 'Poor',
            COMMUNITY_SCORE: round(random() * 100, 8),
            EXCHANGE_SCORE: round(random() * 100),
            VC_SCORE: random() > 0.3 ? round(random() * 100) : null,
            TOKENOMICS_SCORE: round(random() * 100),
            DEFI_SCANNER_SCORE: round(50 + random() * 50)
        };
        return generated;
    }

    /** `/technology-grade`: the latest row per token (DATE an ISO timestamp). */
    technologyGradeRow(token: FakeToken): Row {
        const row = this.technologies.get(token.id);
        if (row) return this.served(row);
        const random = this.rng(token.id, 11);
        return {
            TOKEN_ID: token.id,
            TOKEN_NAME: token.name,
            TOKEN_SYMBOL: token.symbol,
            DATE: `${this.day(0)}T00:00:00.000Z`,
            TECHNOLOGY_GRADE: round(20 + random() * 70),
            ACTIVITY_SCORE: round(random() * 100),
            SECURITY_SCORE: random() > 0.3 ? round(random() * 100) : null,
            REPOSITORY_SCORE: round(random() * 100),
            COLLABORATION_SCORE: round(random() * 100),
            DEFI_SCANNER_SCORE: random() > 0.3 ? round(random() * 100) : null
        };
    }

    /** Generated closes, index = days ago, index 0 = the token's current price. */
    private closes(token: FakeToken): number[] {
        let closes = this.closeCache.get(token.id);
        if (!closes) {
            closes = [token.price];
            for (let offset = 0; offset < HISTORY_DAYS; offset++) {
                const change = (mulberry32(token.id * 7919 + 600 + offset)() - 0.5) * 0.06;
                closes.push(closes[offset]! / (1 + change));
            }
            this.closeCache.set(token.id, closes);
        }
        return closes;
    }

    /** A generated token's signal history (it depends on the token only, not on the clock), by days ago. */
    private signalPlan(token: FakeToken): SignalPlan {
        let plan = this.planCache.get(token.id);
        if (plan) return plan;
        const random = this.rng(token.id, 5);
        const current = random() > 0.5 ? 1 : -1;
        const flips = new Set<number>();
        for (let offset = 2 + Math.floor(random() * 10); offset < HISTORY_DAYS; offset += 8 + Math.floor(random() * 20)) flips.add(offset);
        // The trend on a flip day is the new trend; the day before a flip has the previous one.
        const trend: number[] = [];
        let state = current;
        for (let offset = 0; offset <= HISTORY_DAYS; offset++) {
            trend.push(state);
            if (flips.has(offset)) state = -state;
        }
        const closes = this.closes(token);
        const p0 = token.price / (1.5 + random() * 20);
        const strategy: number[] = [0.2 + random() * 5];
        for (let offset = 0; offset < HISTORY_DAYS; offset++) {
            const today = strategy[offset]!;
            strategy.push(trend[offset] === 1 ? ((today + 1) * closes[offset + 1]!) / closes[offset]! - 1 : today);
        }
        plan = { flips, trend, strategy, p0, traderBase: 20 + random() * 60, investorBase: 45 + random() * 30, phase: random() * 6 };
        this.planCache.set(token.id, plan);
        return plan;
    }

    /**
     * `/trading-signals` rows, newest first: the days of `range`, or the newest day only.
     *
     * TRADING_SIGNAL is an event (1 bullish / -1 bearish on the day the strategy flips, 0 on other days) and
     * TOKEN_TREND the state (the last non-zero signal). Generated returns follow the generated closes: holding
     * returns track price, strategy returns track price only on days the trend is bullish (in cash otherwise).
     */
    tradingSignalRows(token: FakeToken, range?: DayRange): Row[] {
        const rows = this.signals.get(token.id);
        if (rows)
            return this.inRange(
                rows.map(row => this.served(row)),
                range
            );

        const { flips, trend, strategy, p0, traderBase, investorBase, phase } = this.signalPlan(token);
        const closes = this.closes(token);
        const name = slug(token.name);
        return this.offsets(range, HISTORY_DAYS).map(offset => {
            const state = trend[offset]!;
            return {
                TOKEN_ID: token.id,
                TOKEN_NAME: token.name,
                TOKEN_SYMBOL: token.symbol,
                DATE: `${this.day(offset)}T00:00:00.000Z`,
                TRADING_SIGNAL: flips.has(offset) ? state : 0,
                TOKEN_TREND: state,
                TRADING_SIGNALS_RETURNS: round(strategy[offset]!, 4),
                HOLDING_RETURNS: round(closes[offset]! / p0 - 1, 4),
                tm_link: name,
                TM_TRADER_GRADE: round(clamp(traderBase + state * 10 + Math.sin(offset / 3 + phase) * 8, 0, 100)),
                TM_INVESTOR_GRADE: round(clamp(investorBase + Math.sin(offset / 20 + phase) * 3, 0, 100)),
                TM_LINK: `https://app.tokenmetrics.com/en/${name}`
            };
        });
    }

    /** `/daily-ohlcv` rows, newest first: the days of `range`, or the newest day only. Generated rows use DATE (ISO). */
    ohlcvRows(token: FakeToken, range?: DayRange): Row[] {
        const rows = this.candles.get(token.id);
        if (rows)
            return this.inRange(
                rows.map(row => this.served(row)),
                range
            );
        const closes = this.closes(token);
        return this.offsets(range, HISTORY_DAYS).map(offset => {
            const random = mulberry32(token.id * 7919 + 700 + offset);
            const close = closes[offset]!;
            const open = closes[offset + 1]!;
            return {
                TOKEN_ID: token.id,
                TOKEN_NAME: token.name,
                TOKEN_SYMBOL: token.symbol,
                DATE: `${this.day(offset)}T00:00:00.000Z`,
                OPEN: round(open, 8),
                HIGH: round(Math.max(open, close) * (1 + random() * 0.02), 8),
                LOW: round(Math.min(open, close) * (1 - random() * 0.02), 8),
                CLOSE: round(close, 8),
                VOLUME: round(token.volume24h * (0.7 + random() * 0.6))
            };
        });
    }

    /** `/moonshot-tokens`: the fixture picks (no TOKEN_ID), dates shifted. */
    moonshotRows(type: 'active' | 'past'): Row[] {
        return this.servedFixture(type === 'active' ? 'moonshot-tokens-active' : 'moonshot-tokens-past');
    }

    /** `/market-metrics`: the fixture days, newest first; all of them without a range. */
    marketMetricsRows(range?: DayRange): Row[] {
        const rows = this.servedFixture('market-metrics').sort((a, b) => (rowDay(b) ?? '').localeCompare(rowDay(a) ?? ''));
        return range ? rows.filter(row => (rowDay(row) ?? '') >= range.start && (rowDay(row) ?? '') <= range.end) : rows;
    }
}
