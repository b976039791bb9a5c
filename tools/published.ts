import * as z from 'zod';
import type { ListToolsResult, Tool } from '@modelcontextprotocol/sdk/types.js';
import type { ToolDefinition } from './define.js';

type JsonSchema = z.core.JSONSchema.BaseSchema;

const PUBLISHED_AS = new WeakMap<z.core.$ZodType, JsonSchema>();

/**
 * Publishes `schema` as `json` in `tools/list`: for an input whose sanity bounds say nothing to a model or a client
 * (a 64-character cap on a symbol), and for the parts of an answer whose members the README lists rather than every
 * listing. Calls are still checked against `schema` itself, and results against the whole output schema.
 */
export function publishAs<T extends z.ZodType>(schema: T, json: JsonSchema): T {
    PUBLISHED_AS.set(schema, json);
    return schema;
}

/** How an answer's part is published when the README, not each listing, names its members. */
export const LIST_OF_OBJECTS: JsonSchema = { type: 'array', items: { type: 'object' } };
export const OBJECT: JsonSchema = { type: 'object' };

/** Drops the keywords of a JSON Schema node that a client gains nothing from. */
function dropNoise(node: JsonSchema, io: 'input' | 'output'): void {
    // Zod's bounds for a bare `.int()`: the safe-integer range, which every JSON number a client sends already fits.
    if (node.minimum === Number.MIN_SAFE_INTEGER) delete node.minimum;
    if (node.maximum === Number.MAX_SAFE_INTEGER) delete node.maximum;
    if (io === 'output') {
        // The SDK checks each result against the zod schema itself, where every field is required and no other field is
        // allowed; repeating each object's field names in `required` would double the schema for nothing a client uses.
        delete node.required;
        delete node.additionalProperties;
    }
}

function jsonSchemaOf(schema: z.ZodObject, io: 'input' | 'output'): Tool['inputSchema'] {
    const json = z.toJSONSchema(schema, {
        io,
        target: 'draft-07',
        override: ({ zodSchema, jsonSchema }) => {
            const replacement = PUBLISHED_AS.get(zodSchema);
            if (replacement) {
                for (const key of Object.keys(jsonSchema)) delete jsonSchema[key];
                Object.assign(jsonSchema, replacement);
            }
            dropNoise(jsonSchema, io);
        }
    });
    delete json.$schema;
    return json as Tool['inputSchema'];
}

/** A tool as `tools/list` publishes it. */
function published(tool: ToolDefinition): Tool {
    return {
        name: tool.name,
        title: tool.title,
        description: tool.description,
        inputSchema: jsonSchemaOf(tool.inputSchema, 'input'),
        outputSchema: jsonSchemaOf(tool.outputSchema, 'output'),
        annotations: { ...tool.annotations }
    };
}

/**
 * The `tools/list` answer, built once for the process: the SDK would otherwise convert every zod schema again on
 * every listing, and the HTTP transport builds a server per request.
 */
export function toolsListResult(tools: readonly ToolDefinition[]): ListToolsResult {
    return { tools: tools.map(published) };
}
