import type * as z from 'zod';
import type { QueryValue } from '../api/http.js';
import type { RowSchema } from '../api/schemas.js';
import type { TtlEndpoint } from '../config.js';

/** One upstream request a question needs: its query, and whether it is a listing read page by page or a single page. */
export interface EndpointRequest {
    query: Record<string, QueryValue>;
    /** Read 100 rows a page until a short page (at most `MAX_PAGES`); otherwise the query is sent once as it is. */
    paged: boolean;
}

/**
 * An upstream endpoint as the client reads it. The members are methods, not function properties, so that records of
 * different parameter types fit in one list (method parameters are compared bivariantly).
 */
export interface Endpoint<P, Row, N extends string = string> {
    /** What counters and logs call it (the `CacheStats` and `get_usage` names). */
    readonly name: N;
    /** How its rows are parsed; `row.endpoint` is the path. */
    readonly row: RowSchema<Row>;
    /** Checks `params` (an `INVALID_INPUT` error for a bad one) and turns them into requests; `now` anchors date ranges. */
    requests(params: P, now: number): EndpointRequest[];
    /** How the rows of all the requests are ordered; as the upstream sent them when absent. */
    order?(a: Row, b: Row): number;
}

/** One cache entry a question is made of: its key, and the part of the question it answers. */
export interface Part<E> {
    readonly key: string;
    readonly part: E;
}

/**
 * An endpoint the cache answers: how a question splits into entries (keys), how the entries missing from the cache
 * are asked for in one upstream call, how that call's rows split back per entry, and how the entries make an answer.
 */
export interface CachedEndpoint<P, Row, E = unknown, V = unknown, N extends string = string> extends Endpoint<P, Row, N> {
    /** Every key starts with `<key>:`; unique per endpoint, and part of the cache file format (see `CACHE_FILE_VERSION`). */
    readonly key: string;
    readonly ttl: TtlEndpoint;
    /** What one entry's value must be when it is read back from disk or from the shared tier (never trusted blindly). */
    readonly entry: z.ZodType<V>;
    /**
     * The batch a part's missing entry joins, or null: it goes upstream in a call of its own question. Missing parts of
     * concurrent calls that join one batch share its upstream call (see `Batches`): several callers asking at once pay
     * once. Parts that cannot share one request (`/tokens` filters of different kinds, which the upstream ANDs) name
     * different batches.
     */
    batch(part: E): string | null;
    /** Checks `params` like `requests` does and lists the entries of the answer, in answer order, with distinct keys. */
    parts(params: P): Array<Part<E>>;
    /** The question that fetches these parts in one upstream call (parts of several callers in a batch). */
    ask(parts: readonly E[]): P;
    /**
     * The value of every asked part from that call's rows, "nothing" included (an empty list or `null`, which is
     * cached too, so an unknown token is not paid for twice). Keys beyond the asked parts are entries the rows answer
     * for free; the cache keeps them unless it already has them.
     */
    split(rows: readonly Row[], parts: ReadonlyArray<Part<E>>): Map<string, V>;
    /** The answer from the entries' values, in `parts` order. */
    answer(values: readonly V[], params: P): Row[];
}
