import { upstreamOptions } from './app.js';
import { isUpstreamError } from './api/errors.js';
import { UpstreamHttp, type QueryValue, type UpstreamPage, type UpstreamRequest } from './api/http.js';
import { inspectRows, type RowReport } from './api/parse-rows.js';
import { ROW_SCHEMAS, type RowSchema } from './api/schemas.js';
import { systemClock, type Clock } from './clock.js';
import type { Config } from './config.js';
import { KeyManager, keySources } from './keys/manager.js';
import { StderrLogger } from './logger.js';
import { Redactor } from './redact.js';
import { VERSION } from './version.js';

/**
 * `crypto-intel-mcp doctor`: one request to every endpoint the tools use, with the user's own keys and settings,
 * and a report of how each answer compares with its row schema. Built to be pasted into a bug report: it prints
 * key fingerprints, the upstream host and endpoint paths, never a key, a query string or a full URL.
 *
 * `planProbes` + `runDoctor` (injected HTTP and clock) + `formatReport` (pure) are the testable parts;
 * `doctorCommand` wires them to the configuration and the terminal.
 */

/** Bitcoin, the one token every plan and every endpoint knows. */
const BTC = { id: 3375, symbol: 'BTC' } as const;
const DAY_MS = 86_400_000;
/** Days of history asked of the dated endpoints. */
const HISTORY_DAYS = 7;
/** The whole run's limit when each request's own deadline would allow more (eight requests at 25 s each). */
const RUN_CAP_MS = 120_000;

interface Window {
    /** `YYYY-MM-DD`, UTC. */
    startDate: string;
    endDate: string;
}

/**
 * The query of each endpoint's probe, by `RowSchema.endpoint`. Every schema in ROW_SCHEMAS needs one: a schema
 * added without it makes `planProbes` throw (and the doctor test fail), so no endpoint goes unchecked silently.
 */
export const DOCTOR_QUERIES: Readonly<Record<string, (window: Window) => Record<string, QueryValue>>> = {
    '/tokens': () => ({ symbol: BTC.symbol }),
    '/price': () => ({ token_id: BTC.id }),
    '/tm-grade': () => ({ token_id: BTC.id }),
    '/fundamental-grade': () => ({ token_id: BTC.id }),
    '/technology-grade': () => ({ token_id: BTC.id }),
    '/trading-signals': window => ({ token_id: BTC.id, ...window }),
    '/daily-ohlcv': window => ({ token_id: BTC.id, ...window }),
    '/moonshot-tokens': () => ({ type: 'active', limit: 10, page: 1 })
};

export interface Probe {
    endpoint: string;
    query: Record<string, QueryValue>;
    schema: RowSchema<unknown>;
}

const day = (ms: number): string => new Date(ms).toISOString().slice(0, 10);

/** One probe per row schema, in ROW_SCHEMAS order; throws when a schema and DOCTOR_QUERIES disagree. */
export function planProbes(nowMs: number, schemas: readonly RowSchema<unknown>[] = ROW_SCHEMAS, queries = DOCTOR_QUERIES): Probe[] {
    const endpoints = schemas.map(schema => schema.endpoint);
    const unplanned = endpoints.filter(endpoint => queries[endpoint] === undefined);
    if (unplanned.length > 0) throw new Error(`doctor has no query for ${unplanned.join(', ')}: add it to DOCTOR_QUERIES in src/doctor.ts`);
    const orphaned = Object.keys(queries).filter(endpoint => !endpoints.includes(endpoint));
    if (orphaned.length > 0)
        throw new Error(`DOCTOR_QUERIES names ${orphaned.join(', ')}, which no row schema reads: remove it from src/doctor.ts`);
    const window = { startDate: day(nowMs - HISTORY_DAYS * DAY_MS), endDate: day(nowMs) };
    return schemas.map(schema => ({ endpoint: schema.endpoint, query: queries[schema.endpoint]!(window), schema }));
}

export type ProbeResult =
    | { endpoint: string; ok: true; status: number; ms: number; servedBy: string; report: RowReport }
    | { endpoint: string; ok: false; status: number; code: string; message: string; hint: string; ms: number };

export interface DoctorDeps {
    http: { getRows(req: UpstreamRequest): Promise<UpstreamPage> };
    clock: Pick<Clock, 'now'>;
    /** The whole run's limit: once aborted, the request in flight is cancelled and the rest are not made. */
    signal?: AbortSignal;
    /** Each result as soon as it is in, to print while the next request runs. */
    onResult?: (result: ProbeResult) => void;
}

const timeLimitPassed = (endpoint: string, ms: number): ProbeResult => ({
    endpoint,
    ok: false,
    status: 0,
    code: 'NOT_CHECKED',
    message: "doctor's time limit for the whole run passed before this endpoint answered.",
    hint: 'Run doctor again; if it keeps happening, the Token Metrics API is slow from here (see CRYPTO_INTEL_TIMEOUT_MS).',
    ms
});

/** One request and what its answer (or failure) says. */
async function probeOnce(probe: Probe, deps: DoctorDeps): Promise<ProbeResult> {
    const { endpoint } = probe;
    const started = deps.clock.now();
    if (deps.signal?.aborted) return timeLimitPassed(endpoint, 0);
    try {
        const page = await deps.http.getRows({ path: endpoint, query: probe.query, ...(deps.signal ? { signal: deps.signal } : {}) });
        const ms = deps.clock.now() - started;
        return { endpoint, ok: true, status: 200, ms, servedBy: page.servedBy, report: inspectRows(probe.schema, page.rows) };
    } catch (error) {
        const ms = deps.clock.now() - started;
        if (deps.signal?.aborted) return timeLimitPassed(endpoint, ms);
        if (isUpstreamError(error))
            return { endpoint, ok: false, status: error.status, code: error.code, message: error.message, hint: error.hint, ms };
        const message = error instanceof Error ? error.message : String(error);
        return {
            endpoint,
            ok: false,
            status: 0,
            code: 'INTERNAL_ERROR',
            message,
            hint: 'Report this output to the crypto-intel-mcp maintainers.',
            ms
        };
    }
}

/** Calls the probes one after another (a latency is then the endpoint's own) and inspects each answer. */
export async function runDoctor(probes: readonly Probe[], deps: DoctorDeps): Promise<ProbeResult[]> {
    const results: ProbeResult[] = [];
    for (const probe of probes) {
        const result = await probeOnce(probe, deps);
        results.push(result);
        deps.onResult?.(result);
    }
    return results;
}

type Health = 'ok' | 'drift' | 'failed';

/** Drift is a wrong kind, a dropped row or an unreadable envelope; anything else that is not an answer is a failure. */
function health(result: ProbeResult): Health {
    if (!result.ok) return result.code === 'SCHEMA_DRIFT' ? 'drift' : 'failed';
    return result.report.dropped > 0 || result.report.wrongKinds.length > 0 ? 'drift' : 'ok';
}

/** 0 when every endpoint answered and every row parsed cleanly; 1 on drift or a failed endpoint. */
export function doctorExitCode(results: readonly ProbeResult[]): 0 | 1 {
    return results.every(result => health(result) === 'ok') ? 0 : 1;
}

export interface DoctorHeader {
    version: string;
    /** The upstream's host and base path, e.g. `api.tokenmetrics.com/v2`: never a query. */
    upstream: string;
    /** Fingerprints of the configured keys. */
    keys: readonly string[];
    endpoints: number;
}

const WIDTH = 100;
const TAG = { ok: 'OK', drift: 'DRIFT', failed: 'FAIL' } as const;
const INDENT = ' '.repeat(6);
const LABEL = 11;
const WRONG_KIND = `${INDENT}${'wrong kind'.padEnd(LABEL)} `;

/**
 * Text that reaches the report from outside (upstream messages, value descriptions): control characters out, and
 * a URL keeps its host and path but loses its query and fragment.
 */
export function safeText(text: string): string {
    return text.replace(/[\u0000-\u001f\u007f]+/g, ' ').replace(/(https?:\/\/[^\s?#"'<>]*)[?#][^\s"'<>]*/gi, '$1');
}

/** `items` after `label`, comma-separated and wrapped, continuation lines aligned under the first item. */
function listLines(label: string, items: readonly string[], emptyText = 'none', separator = ','): string[] {
    const head = `${INDENT}${label.padEnd(LABEL)} `;
    if (items.length === 0) return [head + emptyText];
    const lines: string[] = [];
    let line = head;
    for (const [index, item] of items.entries()) {
        const piece = item + (index < items.length - 1 ? separator : '');
        if (line !== head && line.length + 1 + piece.length > WIDTH) {
            lines.push(line);
            line = ' '.repeat(head.length) + piece;
        } else {
            line = line === head ? head + piece : `${line} ${piece}`;
        }
    }
    lines.push(line);
    return lines;
}

/** A sentence after `label`, wrapped at word boundaries. */
const proseLines = (label: string, text: string): string[] => listLines(label, safeText(text).split(/\s+/).filter(Boolean), '-', '');

/** `403 NOT_IN_PLAN`; just the code when no HTTP answer came (a timeout, a refused connection). */
const statusText = (result: Extract<ProbeResult, { ok: false }>): string =>
    result.status > 0 ? `${result.status} ${result.code}` : result.code;

const plural = (count: number, word: string): string => `${count} ${word}${count === 1 ? '' : 's'}`;

export function formatHeader(header: DoctorHeader): string[] {
    const keys = header.keys.length === 0 ? 'none' : header.keys.join(', ');
    return [
        `doctor calls ${header.endpoints} endpoints once each: this spends ${header.endpoints} credits of your Token Metrics quota.`,
        `crypto-intel-mcp ${header.version} doctor · upstream ${header.upstream} · ${header.keys.length === 1 ? 'key' : 'keys'} ${keys}`,
        ''
    ];
}

/** One endpoint's block: its status line, then what its rows looked like (or why there are none). */
export function formatProbe(result: ProbeResult, endpointWidth = 18): string[] {
    const tag = TAG[health(result)].padEnd(INDENT.length);
    const name = result.endpoint.padEnd(endpointWidth);
    if (!result.ok) {
        return [
            `${tag}${name} ${statusText(result).padEnd(20)} ${String(result.ms).padStart(6)} ms`,
            ...proseLines('error', result.message),
            ...proseLines('next step', result.hint),
            ''
        ];
    }
    const report = result.report;
    const noRows = report.rows === 0 && report.dropped === 0;
    return [
        `${tag}${name} ${String(result.status).padEnd(20)} ${String(result.ms).padStart(6)} ms   key ${result.servedBy}`,
        `${INDENT}${'rows'.padEnd(LABEL)} ${report.rows}, ${report.dropped > 0 ? `${report.dropped} dropped (no identity)` : 'none dropped'}`,
        ...listLines('missing', noRows ? [] : report.missing, noRows ? '(no rows to check)' : 'none'),
        ...listLines('unknown', report.unknown),
        // One line per field: a value description may itself hold a comma.
        ...report.wrongKinds.map(
            (wrong, index) => `${index === 0 ? WRONG_KIND : ' '.repeat(WRONG_KIND.length)}${wrong.field}: got ${safeText(wrong.got)}`
        ),
        ...(report.wrongKinds.length === 0 ? listLines('wrong kind', []) : []),
        ''
    ];
}

/** The last line: what is wrong, by endpoint, or that nothing is. */
export function formatVerdict(results: readonly ProbeResult[]): string {
    const failed = results.filter(result => health(result) === 'failed');
    const drifted = results.filter(result => health(result) === 'drift');
    if (failed.length === 0 && drifted.length === 0) {
        const empty = results.filter(result => result.ok && result.report.rows === 0).map(result => result.endpoint);
        const note = empty.length > 0 ? ` (no rows from ${empty.join(', ')})` : '';
        return `Verdict: OK: all ${results.length} endpoints answered and every row parsed${note}.`;
    }
    const parts: string[] = [];
    if (failed.length > 0) {
        const what = failed.map(result => (result.ok ? result.endpoint : `${result.endpoint} ${statusText(result)}`));
        parts.push(`${failed.length} of ${results.length} endpoints failed (${what.join(', ')})`);
    }
    if (drifted.length > 0) {
        const what = drifted.map(result => {
            if (!result.ok) return `${result.endpoint}: unreadable answer`;
            const fields = [...new Set(result.report.wrongKinds.map(wrong => wrong.field))];
            const details = [fields.join(', '), result.report.dropped > 0 ? `${plural(result.report.dropped, 'row')} dropped` : ''];
            return `${result.endpoint}: ${details.filter(Boolean).join('; ')}`;
        });
        parts.push(`schema drift on ${plural(drifted.length, 'endpoint')} (${what.join(', ')})`);
    }
    const word = [failed.length > 0 ? 'FAIL' : '', drifted.length > 0 ? 'DRIFT' : ''].filter(Boolean).join(' + ');
    const report = drifted.length > 0 ? ' Please report this output to the crypto-intel-mcp maintainers.' : '';
    return `Verdict: ${word}: ${parts.join('; ')}.${report}`;
}

/** The whole report as printed: header, one block per endpoint, verdict. */
export function formatReport(header: DoctorHeader, results: readonly ProbeResult[]): string[] {
    const width = Math.max(18, ...results.map(result => result.endpoint.length));
    return [...formatHeader(header), ...results.flatMap(result => formatProbe(result, width)), formatVerdict(results)];
}

const NO_KEY = `crypto-intel-mcp doctor: no Token Metrics API key is configured, so there is nothing to check.
Set one of these in the environment (the same variables the server reads), then run doctor again:
  TOKEN_METRICS_API_KEY=<your key>
  TOKEN_METRICS_API_KEYS=<key1>,<key2>             several keys, tried in order
  TOKEN_METRICS_API_KEY_FILE=<path>                a file with one key per line
Keys are created in the API section of your Token Metrics account.
`;

export interface DoctorIo {
    /** Where the report goes: the CLI passes its one writer for a person (stdout outside stdio mode). */
    write(text: string): void;
    clock?: Clock;
}

/**
 * The `doctor` command: the server's key and HTTP settings, no cache, no Redis. Returns the exit code: 0 healthy,
 * 1 drift or a failed endpoint, 2 no key configured.
 */
export async function doctorCommand(config: Config, io: DoctorIo): Promise<number> {
    const clock = io.clock ?? systemClock;
    const redactor = new Redactor();
    const logger = new StderrLogger(config.logLevel, redactor);
    const print = (lines: readonly string[]): void => io.write(redactor.scrub(lines.map(line => `${line}\n`).join('')));

    if (config.apiKeys.length === 0 && config.apiKeyFile === null) {
        io.write(NO_KEY);
        return 2;
    }
    const keys = new KeyManager({ ...keySources(config), redactor, logger, clock, watch: false });
    const http = new UpstreamHttp(upstreamOptions(config), keys, clock, logger);
    try {
        const summary = keys.describe();
        if (summary.configured === 0) {
            io.write(NO_KEY);
            return 2;
        }
        const probes = planProbes(clock.now());
        const base = new URL(config.baseUrl);
        const upstream = `${base.host}${base.pathname.replace(/\/+$/, '')}`;
        print(formatHeader({ version: VERSION, upstream, keys: summary.fingerprints, endpoints: probes.length }));
        const width = Math.max(18, ...probes.map(probe => probe.endpoint.length));
        const limitMs = Math.min(probes.length * config.upstream.deadlineMs, Math.max(config.upstream.deadlineMs, RUN_CAP_MS));
        const results = await runDoctor(probes, {
            http,
            clock,
            signal: AbortSignal.timeout(limitMs),
            onResult: result => print(formatProbe(result, width))
        });
        print([formatVerdict(results)]);
        return doctorExitCode(results);
    } finally {
        keys.close();
        await http.close();
    }
}
