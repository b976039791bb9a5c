import type { RowSchema } from './schemas.js';

/** A field that arrived with a value of the wrong kind: its upstream name and what came instead. */
export interface WrongKind {
    field: string;
    got: string;
}

export interface ParsedRows<T> {
    rows: T[];
    /** Rows dropped because they lack their identity (or are not objects at all). */
    dropped: number;
    /** One entry per field and kind of value, across all rows. */
    wrongKinds: WrongKind[];
}

/** What `doctor` prints for one endpoint: how the rows compare with the schema. */
export interface RowReport {
    rows: number;
    dropped: number;
    wrongKinds: WrongKind[];
    /** Fields of the schema that no row carried. */
    missing: string[];
    /** Fields rows carried that the schema does not read. */
    unknown: string[];
}

const isRecord = (value: unknown): value is Record<string, unknown> => typeof value === 'object' && value !== null && !Array.isArray(value);

/** A row's fields by lower-case name, so `TOKEN_ID` and `token_id` (v2 and v3) are the same field. */
function byLowerName(row: Record<string, unknown>): Map<string, unknown> {
    const fields = new Map<string, unknown>();
    for (const [name, value] of Object.entries(row)) {
        const lower = name.toLowerCase();
        if (!fields.has(lower) || fields.get(lower) === undefined || fields.get(lower) === null) fields.set(lower, value);
    }
    return fields;
}

/**
 * Parses rows field by field. Never throws for a row's content: a wrong kind is `null` plus a `WrongKind`, and a row
 * is dropped only when it lacks its identity.
 */
export function parseRows<T>(schema: RowSchema<T>, raw: readonly unknown[]): ParsedRows<T> {
    return inspect(schema, raw).parsed;
}

/** `parseRows`, plus which schema fields never arrived and which arrived unread. */
export function inspectRows<T>(schema: RowSchema<T>, raw: readonly unknown[]): RowReport {
    return inspect(schema, raw).report;
}

function inspect<T>(schema: RowSchema<T>, raw: readonly unknown[]): { parsed: ParsedRows<T>; report: RowReport } {
    const rows: T[] = [];
    let dropped = 0;
    const wrong = new Map<string, WrongKind>();
    const seen = new Set<string>();
    const known = new Set<string>();
    for (const field of Object.values(schema.fields)) for (const name of field.names) known.add(name.toLowerCase());
    const unknown = new Set<string>();

    for (const item of raw) {
        if (!isRecord(item)) {
            dropped++;
            continue;
        }
        const fields = byLowerName(item);
        for (const [name, value] of Object.entries(item)) {
            const lower = name.toLowerCase();
            if (!known.has(lower)) unknown.add(name);
            else if (value !== undefined) seen.add(lower);
        }
        const values: Record<string, unknown> = {};
        for (const [key, field] of Object.entries(schema.fields)) {
            const name = field.names
                .map(candidate => candidate.toLowerCase())
                .find(candidate => fields.get(candidate) !== undefined && fields.get(candidate) !== null);
            const read = field.read(name === undefined ? undefined : fields.get(name));
            if ('wrong' in read) {
                const upstreamName = field.names[0]!;
                wrong.set(`${upstreamName}\u0000${read.wrong}`, { field: upstreamName, got: read.wrong });
                values[key] = null;
            } else {
                values[key] = read.value;
            }
        }
        const hasAll = schema.identity.every(key => values[key] !== null);
        const hasAny = schema.identityAny.length === 0 || schema.identityAny.some(key => values[key] !== null);
        if (!hasAll || !hasAny) {
            dropped++;
            continue;
        }
        rows.push(schema.build(values));
    }
    const missing = Object.values(schema.fields)
        .filter(field => !field.names.some(name => seen.has(name.toLowerCase())))
        .map(field => field.names[0]!);
    const wrongKinds = [...wrong.values()];
    return {
        parsed: { rows, dropped, wrongKinds },
        report: { rows: rows.length, dropped, wrongKinds, missing, unknown: [...unknown].sort() }
    };
}
