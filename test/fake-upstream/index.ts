/**
 * A local fake of the Token Metrics Data API (v2) on 127.0.0.1 with an ephemeral port: the `{ success, message,
 * length, data }` envelope around rows shaped like the real API's (see data.ts and
 * `test/fixtures/upstream/README.md` for where each shape comes from), a record of every call, and faults on
 * demand (latency, statuses, 429s, truncated bodies, `success: false`, type drift, one field given another value,
 * 403 "not in your plan", connection resets, requests held until the test lets them go).
 *
 * Time is the test's to drive: latency runs on `fake.clock` (a FakeClock makes a slow upstream that costs no real
 * time), `until()` waits for what the fake has seen, and `runClock` (clocked.ts) moves a FakeClock for it.
 *
 * Filters follow the documented parameters: `token_id`, `symbol` (case-insensitive) and `token_name` (comma
 * lists). `token_name` is matched case-sensitively: whether the real API folds case is unconfirmed, so the fake
 * takes the strict side and a client has to send names as the user typed them and title-cased.
 */
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo, Socket } from 'node:net';
import { systemClock, type Clock } from '../../src/clock.js';
import { FakeWorld, rowDay, type DayRange, type FakeToken, type Row } from './data.js';

export {
    DATE_FIELDS,
    FakeWorld,
    FIXTURE_LAG_DAYS,
    FIXTURE_NAMES,
    FIXTURE_NEWEST_DAY,
    fixture,
    fixtureNumber,
    fixtureSource,
    fixturesDir,
    mulberry32,
    rowDay,
    type DayRange,
    type FakeToken,
    type FixtureName,
    type Row
} from './data.js';

/** One request as the fake saw it. The key is kept so tests can assert which key served a call. */
export interface FakeCall {
    path: string;
    query: Record<string, string>;
    /** The raw query string as received, to prove what reached the upstream URL. */
    rawQuery: string;
    key: string | null;
    status: number;
    at: number;
    /** The client went away before the answer was sent (a cancelled request). */
    aborted: boolean;
    /** Bytes of the response body: what a pass-through server would have handed the model. */
    bytes: number;
    /** The fake is done with it: answered, reset, or the client went away. */
    done: boolean;
}

/** A request the fake has not answered yet: held back by latency (due at `dueAt`) or by a hold (`dueAt` Infinity). */
export interface PendingCall {
    call: FakeCall;
    /** When it started waiting, by `fake.clock.monotonic()`. */
    since: number;
    dueAt: number;
}

export type Fault =
    /** The answer comes `ms` later, by `fake.clock`. */
    | { kind: 'latency'; ms: number }
    /** Held until the test calls `release()` (or the client goes away), then answered as the other faults say. */
    | { kind: 'hold' }
    | { kind: 'status'; status: number; retryAfter?: string; message?: string }
    | { kind: 'rate-limit'; retryAfter?: string }
    | { kind: 'truncated' }
    | { kind: 'success-false'; message: string }
    /** Every number in every row becomes `{ value }`, as a changed upstream serializer might send. */
    | { kind: 'drift' }
    /** That field (matched case-insensitively, wherever present) becomes `value` in every served row. */
    | { kind: 'drift-field'; field: string; value: unknown }
    /** 403 with `{ success: false, message }`: the key is valid but the endpoint is not in its plan. */
    | { kind: 'forbidden'; message: string }
    | { kind: 'reset' }
    /**
     * A 200 whose body is `bytes` long (a JSON envelope opening, then filler), streamed in 64 KiB chunks without a
     * Content-Length (or with it, when `declareLength`); stops when the client goes away. Keep it bounded in tests.
     */
    | { kind: 'huge-body'; bytes: number; declareLength?: boolean }
    /** This exact body (any text, JSON or not) with this status (200 when absent): a hostile or broken upstream. */
    | { kind: 'body'; body: string; status?: number; headers?: Record<string, string> };

export interface FaultRule {
    fault: Fault;
    /** Only requests to this path (e.g. `/price`); all paths when absent. */
    path?: string;
    /** Only requests made with this key. */
    key?: string;
    /** How many matching requests it affects; unlimited when absent. */
    times?: number;
}

export interface FakeUpstreamOptions {
    /** When set, only these keys are accepted (others get 401). Otherwise any key not revoked works. */
    validKeys?: string[];
    world?: FakeWorld;
    /** Latency added to every request, e.g. for the bench's cold numbers. */
    latencyMs?: number;
}

/**
 * The endpoints the fake serves, as the upstream names them. The retired `/trader-grades`, `/investor-grades`
 * and `/hourly-trading-signals` are not here, so they answer 404.
 */
export const ENDPOINTS = [
    '/tokens',
    '/price',
    '/tm-grade',
    '/tm-grade-history',
    '/fundamental-grade',
    '/technology-grade',
    '/trading-signals',
    '/daily-ohlcv',
    '/moonshot-tokens',
    '/market-metrics'
] as const;

const DAY_MS = 86_400_000;

/** The fake upstream server. Start it with `FakeUpstream.start()`; `baseUrl` is what TOKEN_METRICS_BASE_URL should be. */
export class FakeUpstream {
    readonly calls: FakeCall[] = [];
    /** Highest number of requests in flight at once since the last reset. */
    maxInFlight = 0;
    latencyMs: number;
    /** What latency is measured by: set a FakeClock to make the fake slow without taking real time. */
    clock: Pick<Clock, 'monotonic' | 'timeout'> = systemClock;
    readonly world: FakeWorld;

    private inFlight = 0;
    private readonly waiting: Array<PendingCall & { release(): void }> = [];
    private watchers: Array<{ check: () => boolean; resolve: () => void }> = [];
    private rules: FaultRule[] = [];
    private readonly revoked = new Set<string>();
    private readonly removed = new Set<string>();
    /** Paths a test added (`serve`), with their rows. */
    private readonly extra = new Map<string, Row[]>();
    private readonly sockets = new Set<Socket>();
    private validKeys: Set<string> | null;

    private constructor(
        private readonly server: Server,
        options: FakeUpstreamOptions
    ) {
        this.world = options.world ?? new FakeWorld();
        this.latencyMs = options.latencyMs ?? 0;
        this.validKeys = options.validKeys ? new Set(options.validKeys) : null;
    }

    static async start(options: FakeUpstreamOptions = {}): Promise<FakeUpstream> {
        // The handler runs only once the server listens, by when `fake` is set.
        const server = createServer((req, res) => void fake.handle(req, res));
        const fake = new FakeUpstream(server, options);
        server.on('connection', socket => {
            fake.sockets.add(socket);
            fake.changed();
            socket.on('close', () => {
                fake.sockets.delete(socket);
                fake.changed();
            });
        });
        await new Promise<void>(resolve => server.listen(0, '127.0.0.1', resolve));
        return fake;
    }

    get port(): number {
        return (this.server.address() as AddressInfo).port;
    }

    /** What TOKEN_METRICS_BASE_URL should be set to. */
    get baseUrl(): string {
        return `http://127.0.0.1:${this.port}/v2`;
    }

    /** Calls to a path (all paths when absent). */
    count(path?: string): number {
        return path ? this.calls.filter(call => call.path === path).length : this.calls.length;
    }

    /** Connections open now, whether or not a request came on them (`until` is told when one opens or closes). */
    connections(): number {
        return this.sockets.size;
    }

    /** Closes every connection open now, as an upstream does with idle ones. */
    dropConnections(): void {
        for (const socket of this.sockets) socket.destroy();
    }

    /** Calls as `'/price tm-…1111 -> 200'` lines, for asserting exact sequences. */
    log(path?: string): string[] {
        return this.calls
            .filter(call => !path || call.path === path)
            .map(call => `${call.path} ${call.key ? `tm-…${call.key.slice(-4)}` : 'no-key'} -> ${call.status}`);
    }

    /** Requests not answered yet (latency, holds), oldest first. */
    pending(): PendingCall[] {
        return this.waiting.map(({ call, since, dueAt }) => ({ call, since, dueAt }));
    }

    /** Lets held requests (those `filter` picks, all by default) go on to their answers; returns how many. */
    release(filter: (call: FakeCall) => boolean = () => true): number {
        const held = this.waiting.filter(pending => pending.dueAt === Infinity && filter(pending.call));
        for (const pending of held) pending.release();
        return held.length;
    }

    /**
     * Resolves once `check` holds, asked now and after every change the fake sees (a request arriving, starting or
     * stopping to wait, its response closing): e.g. `until(() => fake.count() >= 3)`.
     */
    until(check: () => boolean): Promise<void> {
        if (check()) return Promise.resolve();
        return new Promise(resolve => this.watchers.push({ check, resolve }));
    }

    inject(rule: FaultRule): void {
        this.rules.push({ ...rule });
    }

    clearFaults(): void {
        this.rules = [];
    }

    /** From now on, this key gets 401. */
    revoke(key: string): void {
        this.revoked.add(key);
    }

    setValidKeys(keys: string[] | null): void {
        this.validKeys = keys ? new Set(keys) : null;
    }

    /** The endpoint answers 404 from now on, as a retired upstream endpoint would. */
    removeEndpoint(path: string): void {
        this.removed.add(path);
    }

    restoreEndpoint(path: string): void {
        this.removed.delete(path);
    }

    /** Serves `rows` verbatim at `path` too, filtered by `token_id` and paginated: an endpoint only a test knows. */
    serve(path: string, rows: Row[]): void {
        this.extra.set(path, rows);
    }

    /** Forget calls, faults, revocations and removed endpoints; held requests go on to their answers. */
    reset(): void {
        this.release();
        this.calls.length = 0;
        this.rules = [];
        this.maxInFlight = 0;
        this.revoked.clear();
        this.removed.clear();
    }

    async close(): Promise<void> {
        this.dropConnections();
        await new Promise<void>(resolve => this.server.close(() => resolve()));
    }

    private takeFaults(path: string, key: string | null): Fault[] {
        const faults: Fault[] = [];
        for (const rule of this.rules) {
            if (rule.path && rule.path !== path) continue;
            if (rule.key && rule.key !== key) continue;
            if (rule.times !== undefined) {
                if (rule.times <= 0) continue;
                rule.times -= 1;
            }
            faults.push(rule.fault);
        }
        return faults;
    }

    private async handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
        this.inFlight += 1;
        this.maxInFlight = Math.max(this.maxInFlight, this.inFlight);
        const url = new URL(req.url ?? '/', 'http://127.0.0.1');
        const path = url.pathname.replace(/^\/v2/, '') || '/';
        const rawKey = req.headers['x-api-key'];
        const key = typeof rawKey === 'string' ? rawKey : null;
        const call: FakeCall = {
            path,
            query: Object.fromEntries(url.searchParams),
            rawQuery: url.search,
            key,
            status: 0,
            at: Date.now(),
            aborted: false,
            bytes: 0,
            done: false
        };
        this.calls.push(call);
        res.on('close', () => {
            if (!res.writableFinished) call.aborted = true;
            call.done = true;
            this.changed();
        });
        this.changed();
        const send = (status: number, body: string, headers: Record<string, string> = {}) => {
            call.status = status;
            call.bytes = Buffer.byteLength(body);
            res.writeHead(status, { 'content-type': 'application/json', ...headers });
            res.end(body);
        };
        try {
            const faults = this.takeFaults(path, key);
            const latency = this.latencyMs + faults.reduce((sum, fault) => sum + (fault.kind === 'latency' ? fault.ms : 0), 0);
            if (faults.some(fault => fault.kind === 'hold')) await this.wait(call, res, Infinity);
            if (latency > 0) await this.wait(call, res, latency);
            if (res.destroyed) return;

            if (!key || this.revoked.has(key) || (this.validKeys && !this.validKeys.has(key))) {
                return send(401, JSON.stringify({ success: false, message: 'Invalid API key' }));
            }
            for (const fault of faults) {
                switch (fault.kind) {
                    case 'reset':
                        call.status = -1;
                        req.socket.destroy();
                        return;
                    case 'status':
                        return send(
                            fault.status,
                            JSON.stringify({ success: false, message: fault.message ?? `fake error ${fault.status}` }),
                            {
                                ...(fault.retryAfter ? { 'retry-after': fault.retryAfter } : {})
                            }
                        );
                    case 'rate-limit':
                        return send(429, JSON.stringify({ success: false, message: 'Too many requests' }), {
                            ...(fault.retryAfter !== undefined ? { 'retry-after': fault.retryAfter } : {})
                        });
                    case 'success-false':
                        return send(200, JSON.stringify({ success: false, message: fault.message, length: 0, data: [] }));
                    case 'forbidden':
                        return send(403, JSON.stringify({ success: false, message: fault.message }));
                    case 'body':
                        return send(fault.status ?? 200, fault.body, fault.headers);
                    case 'huge-body':
                        return await streamHugeBody(res, call, fault.bytes, fault.declareLength === true);
                    default:
                        break;
                }
            }
            if (this.removed.has(path) || !((ENDPOINTS as readonly string[]).includes(path) || this.extra.has(path))) {
                return send(404, JSON.stringify({ success: false, message: 'Not Found' }));
            }
            const result = this.route(path, url.searchParams);
            if ('error' in result) return send(400, JSON.stringify({ success: false, message: result.error }));
            let rows = result.rows;
            if (faults.some(fault => fault.kind === 'drift')) rows = rows.map(drift);
            for (const fault of faults) if (fault.kind === 'drift-field') rows = rows.map(row => driftField(row, fault.field, fault.value));
            const body = JSON.stringify({ success: true, message: 'Data fetched successfully', length: rows.length, data: rows });
            if (faults.some(fault => fault.kind === 'truncated')) return send(200, body.slice(0, Math.floor(body.length / 2)));
            send(200, body);
        } catch (error) {
            send(500, JSON.stringify({ success: false, message: `fake crashed: ${(error as Error).message}` }));
        } finally {
            this.inFlight -= 1;
        }
    }

    /** Holds a request back for `ms` by `clock` (Infinity: until released), or until the client goes away. */
    private wait(call: FakeCall, res: ServerResponse, ms: number): Promise<void> {
        return new Promise(resolve => {
            const timer = Number.isFinite(ms) ? this.clock.timeout(ms) : undefined;
            const since = this.clock.monotonic();
            const pending = { call, since, dueAt: since + ms, release: () => end() };
            // Synchronous, so whoever moved the clock sees at once that the request is no longer waiting.
            const end = (): void => {
                const index = this.waiting.indexOf(pending);
                if (index < 0) return;
                this.waiting.splice(index, 1);
                timer?.removeEventListener('abort', end);
                res.off('close', end);
                resolve();
                this.changed();
            };
            timer?.addEventListener('abort', end, { once: true });
            res.once('close', end);
            this.waiting.push(pending);
            this.changed();
        });
    }

    /** Tells the `until()` watchers something changed. */
    private changed(): void {
        const ready = this.watchers.filter(watcher => watcher.check());
        if (ready.length === 0) return;
        this.watchers = this.watchers.filter(watcher => !ready.includes(watcher));
        for (const watcher of ready) watcher.resolve();
    }

    private route(path: string, params: URLSearchParams): { rows: Row[] } | { error: string } {
        const world = this.world;
        const limit = Number(params.get('limit') ?? 50);
        const page = Number(params.get('page') ?? 1);
        if (!Number.isInteger(limit) || limit < 1 || limit > 100) return { error: 'limit must be between 1 and 100' };
        if (!Number.isInteger(page) || page < 1) return { error: 'page must be a positive integer' };
        const paginate = (rows: Row[]) => ({ rows: rows.slice((page - 1) * limit, page * limit) });
        const list = (name: string) =>
            (params.get(name) ?? '')
                .split(',')
                .map(item => item.trim())
                .filter(Boolean);

        const ids = list('token_id');
        if (ids.some(id => !/^\d+$/.test(id))) return { error: 'token_id must be a comma-separated list of integers' };
        const symbols = list('symbol').map(symbol => symbol.toUpperCase());
        // Case-sensitive on purpose: see the note at the top of this file.
        const names = list('token_name');
        const filtered = (): FakeToken[] =>
            world.tokens.filter(
                token =>
                    (ids.length === 0 || ids.includes(String(token.id))) &&
                    (symbols.length === 0 || symbols.includes(token.symbol.toUpperCase())) &&
                    (names.length === 0 || names.includes(token.name))
            );
        /** `startDate`/`endDate` (both, YYYY-MM-DD, at most 29 days apart) or neither (null: the latest day). */
        const range = (): DayRange | null | { error: string } => {
            const start = params.get('startDate');
            const end = params.get('endDate');
            if (!start && !end) return null;
            const valid = (day: string | null): day is string => !!day && /^\d{4}-\d{2}-\d{2}$/.test(day) && !Number.isNaN(Date.parse(day));
            if (!valid(start) || !valid(end)) return { error: 'startDate and endDate must be YYYY-MM-DD' };
            const span = (Date.parse(end) - Date.parse(start)) / DAY_MS;
            if (span < 0 || span > 29) return { error: 'date range must be at most 29 days' };
            return { start, end };
        };
        /** Rows of several tokens, newest day first (stable within a day, in token order). */
        const newestFirst = (rows: Row[]) => rows.sort((a, b) => (rowDay(b) ?? '').localeCompare(rowDay(a) ?? ''));
        const dated = (rowsOf: (token: FakeToken, days: DayRange | undefined) => Row[]) => {
            const days = range();
            if (days && 'error' in days) return days;
            return paginate(newestFirst(filtered().flatMap(token => rowsOf(token, days ?? undefined))));
        };

        switch (path) {
            case '/tokens':
                return paginate(filtered().map(token => world.tokenRow(token)));
            case '/price':
                if (ids.length === 0) return { error: 'token_id is required' };
                return paginate(filtered().map(token => world.priceRow(token)));
            case '/tm-grade':
                return paginate(filtered().map(token => world.tmGradeRow(token)));
            case '/tm-grade-history':
                return dated((token, days) => world.tmGradeHistoryRows(token, days));
            case '/fundamental-grade':
                return paginate(filtered().map(token => world.fundamentalGradeRow(token)));
            case '/technology-grade':
                return paginate(filtered().map(token => world.technologyGradeRow(token)));
            case '/trading-signals':
                return dated((token, days) => world.tradingSignalRows(token, days));
            case '/daily-ohlcv':
                return dated((token, days) => world.ohlcvRows(token, days));
            case '/moonshot-tokens': {
                const type = params.get('type') ?? 'active';
                if (type !== 'active' && type !== 'past') return { error: 'type must be active or past' };
                return paginate(world.moonshotRows(type));
            }
            case '/market-metrics': {
                const days = range();
                if (days && 'error' in days) return days;
                return paginate(world.marketMetricsRows(days ?? undefined));
            }
            default:
                // A path a test added with `serve`: any other was answered 404 above.
                return paginate((this.extra.get(path) ?? []).filter(row => ids.length === 0 || ids.includes(String(row.TOKEN_ID))));
        }
    }
}

/** `bytes` of a 200 answer that opens like an envelope and never gets to the point, written as fast as the client reads. */
async function streamHugeBody(res: ServerResponse, call: FakeCall, bytes: number, declareLength: boolean): Promise<void> {
    call.status = 200;
    res.writeHead(200, { 'content-type': 'application/json', ...(declareLength ? { 'content-length': String(bytes) } : {}) });
    const head = Buffer.from('{"success":true,"message":"ok","data":[{"TOKEN_ID":1,"TOKEN_NAME":"');
    const filler = Buffer.alloc(64 * 1024, 'x');
    let sent = 0;
    const write = (chunk: Buffer) =>
        new Promise<void>(resolve => {
            if (res.write(chunk)) resolve();
            else {
                const done = () => {
                    res.off('drain', done);
                    res.off('close', done);
                    resolve();
                };
                res.once('drain', done);
                res.once('close', done);
            }
        });
    await write(head.subarray(0, Math.min(head.length, bytes)));
    sent = Math.min(head.length, bytes);
    while (sent < bytes && !res.destroyed) {
        const chunk = filler.subarray(0, Math.min(filler.length, bytes - sent));
        await write(chunk);
        sent += chunk.length;
    }
    call.bytes = sent;
    if (!res.destroyed) res.end();
}

/** Drifted types: numbers become objects, as a changed upstream serializer might send. */
function drift(row: Row): Row {
    return Object.fromEntries(Object.entries(row).map(([name, value]) => [name, typeof value === 'number' ? { value } : value]));
}

/** One field (any case) replaced by `value`, where the row has it. */
function driftField(row: Row, field: string, value: unknown): Row {
    const wanted = field.toLowerCase();
    return Object.fromEntries(Object.entries(row).map(([name, current]) => [name, name.toLowerCase() === wanted ? value : current]));
}
