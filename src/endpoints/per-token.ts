import type * as z from 'zod';
import type { RowSchema } from '../api/schemas.js';
import type { TtlEndpoint } from '../config.js';
import type { CachedEndpoint } from './endpoint.js';
import { checkIds, chunk, MAX_PAGE_SIZE, unique } from './params.js';

export interface TokenIds {
    ids: readonly number[];
}

/**
 * An endpoint answering per token: one entry per id (`<key>:<id>`), the missing ones fetched in one call. A token the
 * upstream has no row for is cached as `null` for the endpoint's TTL: asking again would cost a credit for the same
 * "nothing", and it must not fail the other callers of a merged batch.
 */
export function perToken<Row extends { tokenId: number }, N extends string>(
    name: N,
    key: string,
    row: RowSchema<Row>,
    entry: z.ZodType<Row>,
    ttl: TtlEndpoint,
    batched = false
): CachedEndpoint<TokenIds, Row, number, Row | null, N> {
    return {
        name,
        row,
        key,
        ttl,
        entry: entry.nullable(),
        batch: () => (batched ? 'ids' : null),
        requests({ ids }) {
            checkIds(ids);
            // One page of up to 100 ids per request.
            return chunk(unique(ids)).map(part => ({ query: { token_id: part.join(','), limit: MAX_PAGE_SIZE }, paged: false }));
        },
        parts({ ids }) {
            checkIds(ids);
            return unique(ids).map(id => ({ key: `${key}:${id}`, part: id }));
        },
        ask: ids => ({ ids }),
        split(rows, parts) {
            const byId = new Map<number, Row>();
            for (const row of rows) if (!byId.has(row.tokenId)) byId.set(row.tokenId, row);
            return new Map(parts.map(({ key, part }) => [key, byId.get(part) ?? null]));
        },
        answer: values => values.filter(value => value !== null)
    };
}
