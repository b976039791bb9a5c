import type { Clock } from '../clock.js';
import type { Endpoint } from '../endpoints/endpoint.js';
import { MAX_PAGE_SIZE, MAX_PAGES } from '../endpoints/params.js';
import type { Logger } from '../logger.js';
import { DriftMonitor } from './drift.js';
import { schemaDrift } from './errors.js';
import type { QueryValue, UpstreamHttp } from './http.js';
import { parseRows } from './parse-rows.js';
import type { RowSchema } from './schemas.js';

/** What the cache needs from the upstream: any endpoint's rows for a question, as domain types. */
export interface MarketData {
    get<P, Row>(endpoint: Endpoint<P, Row>, params: NoInfer<P>, signal?: AbortSignal): Promise<Row[]>;
}

/**
 * Typed Token Metrics client, generic over the endpoint records of `src/endpoints/registry.ts`: rows parsed field by
 * field into domain types, paging handled here. Knows HTTP shapes, nothing of MCP.
 */
export class TokenMetricsClient implements MarketData {
    readonly drift: DriftMonitor;

    constructor(
        private readonly http: UpstreamHttp,
        private readonly clock: Clock,
        logger: Logger
    ) {
        this.drift = new DriftMonitor(logger);
    }

    /** The rows `endpoint` answers for `params`: its requests sent together, their rows in the endpoint's order. */
    async get<P, Row>(endpoint: Endpoint<P, Row>, params: NoInfer<P>, signal?: AbortSignal): Promise<Row[]> {
        const requests = endpoint.requests(params, this.clock.now());
        const parts = await Promise.all(
            requests.map(({ query, paged }) =>
                paged ? this.pages(endpoint.row, query, signal) : this.fetch(endpoint.row, query, signal).then(page => page.parsed)
            )
        );
        const rows = parts.flat();
        return endpoint.order === undefined ? rows : rows.sort((a, b) => endpoint.order!(a, b));
    }

    /** Every page of a filtered listing, one request per 100 rows. */
    private async pages<T>(schema: RowSchema<T>, query: Record<string, QueryValue>, signal?: AbortSignal): Promise<T[]> {
        const rows: T[] = [];
        for (let page = 1; page <= MAX_PAGES; page++) {
            const { parsed, received } = await this.fetch(schema, { ...query, limit: MAX_PAGE_SIZE, page }, signal);
            rows.push(...parsed);
            if (received < MAX_PAGE_SIZE) break;
        }
        return rows;
    }

    /**
     * One request, parsed per field. Odd fields are reported and become null; rows without their identity are dropped
     * and counted. Only an answer whose every row had to be dropped is drift as a whole: it answered nothing usable.
     */
    private async fetch<T>(
        schema: RowSchema<T>,
        query: Record<string, QueryValue>,
        signal?: AbortSignal
    ): Promise<{ parsed: T[]; received: number }> {
        const { rows } = await this.http.getRows({ path: schema.endpoint, query, ...(signal ? { signal } : {}) });
        const parsed = parseRows(schema, rows);
        this.drift.record(schema.endpoint, parsed);
        if (parsed.rows.length === 0 && parsed.dropped > 0) {
            const identity = [...schema.identity, ...schema.identityAny].map(key => schema.fields[key]!.names[0]).join(' or ');
            throw schemaDrift(`${schema.endpoint}: none of its ${parsed.dropped} rows has ${identity}`, {
                endpoint: schema.endpoint,
                status: 200
            });
        }
        return { parsed: parsed.rows, received: rows.length };
    }
}
