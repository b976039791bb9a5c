import { isUpstreamError } from '../api/errors.js';
import type { QueryValue, UpstreamRequest } from '../api/http.js';
import type { UpstreamPage } from '../api/verdict.js';
import { inspectRows, type RowReport } from '../api/parse-rows.js';
import { ROW_SCHEMAS, type RowSchema } from '../api/schemas.js';
import type { Clock } from '../clock.js';

// doctor's requests: which query each endpoint gets, and what each answer (or failure) says.

/** Bitcoin, the one token every plan and every endpoint knows. */
const BTC = { id: 3375, symbol: 'BTC' } as const;
const DAY_MS = 86_400_000;
/** Days of history asked of the dated endpoints. */
const HISTORY_DAYS = 7;

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
    if (unplanned.length > 0)
        throw new Error(`doctor has no query for ${unplanned.join(', ')}: add it to DOCTOR_QUERIES in src/doctor/probes.ts`);
    const orphaned = Object.keys(queries).filter(endpoint => !endpoints.includes(endpoint));
    if (orphaned.length > 0)
        throw new Error(`DOCTOR_QUERIES names ${orphaned.join(', ')}, which no row schema reads: remove it from src/doctor/probes.ts`);
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
