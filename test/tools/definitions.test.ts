import { AjvJsonSchemaValidator } from '@modelcontextprotocol/sdk/validation/ajv';
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import * as z from 'zod';
import { TOOLS, TOOLS_LIST } from '../../tools/index.js';
import { FakeUpstream } from '../fake-upstream/index.js';
import { inProcessServer, textOf, type InProcessServer } from '../helpers/in-process.js';

/** Issue 15: every tool's definition together, as a client receives the `tools/list` answer. */
const TOOLS_LIST_BUDGET_BYTES = 6_000;

/** One call per tool, each answered with structured content. */
const CALLS: Record<string, Record<string, unknown>> = {
    get_price: { symbols: ['BTC', 'uni', 'ETHH'] },
    get_grades: { symbol: 'ETH', include: ['fundamental', 'technology'] },
    list_moonshots: { type: 'past' },
    explain_signal: { symbol: 'SOL' },
    get_usage: {}
};

type Schema = { properties?: Record<string, Schema>; items?: Schema; description?: string; anyOf?: Schema[] } & Record<string, unknown>;

/** Every node of a JSON Schema with the name of the property it describes, if any. */
function* nodes(schema: Schema, name: string | null = null): Generator<{ name: string | null; schema: Schema }> {
    yield { name, schema };
    for (const [property, child] of Object.entries(schema.properties ?? {})) yield* nodes(child, property);
    if (schema.items) yield* nodes(schema.items);
    for (const member of schema.anyOf ?? []) yield* nodes(member, name);
}

let fake: FakeUpstream;
let server: InProcessServer;

beforeAll(async () => {
    fake = await FakeUpstream.start();
});
afterAll(async () => {
    await fake.close();
});
beforeEach(async () => {
    fake.reset();
    server = await inProcessServer(fake);
});
afterEach(async () => {
    await server.close();
});

describe('tools/list', () => {
    it(`fits in ${TOOLS_LIST_BUDGET_BYTES} bytes, each tool with input and output schemas and both hints`, async () => {
        const listing = await server.client.listTools();
        expect(Buffer.byteLength(JSON.stringify(listing))).toBeLessThanOrEqual(TOOLS_LIST_BUDGET_BYTES);
        expect(listing.tools.map(tool => tool.name)).toEqual(Object.keys(CALLS));
        for (const tool of listing.tools) {
            expect(tool.inputSchema.type).toBe('object');
            expect(tool.outputSchema?.type).toBe('object');
            expect(tool.annotations).toEqual({ readOnlyHint: true, openWorldHint: tool.name !== 'get_usage' });
        }
    });

    it('is the answer built once for the process', async () => {
        expect(await server.client.listTools()).toEqual(TOOLS_LIST);
    });

    it('carries no noise: no safe-integer bounds, no description that only repeats its field name', () => {
        const text = JSON.stringify(TOOLS_LIST);
        expect(text).not.toContain(String(Number.MAX_SAFE_INTEGER));
        expect(text).not.toContain('$schema');
        for (const tool of TOOLS_LIST.tools) {
            for (const schema of [tool.inputSchema, tool.outputSchema!] as Schema[]) {
                for (const node of nodes(schema)) {
                    if (node.name === null || node.schema.description === undefined) continue;
                    const words = node.schema.description
                        .toLowerCase()
                        .replace(/[^a-z0-9]+/g, ' ')
                        .trim();
                    expect(words, `${tool.name}.${node.name}`).not.toBe(node.name.replace(/_/g, ' '));
                }
            }
        }
    });
});

describe('published output schemas', () => {
    it.each(Object.entries(CALLS))('%s: its answer matches the published schema, which names every field of it', async (name, args) => {
        const tool = TOOLS_LIST.tools.find(entry => entry.name === name)!;
        const result = await server.call(name, args);
        expect(result.isError, textOf(result)).toBeFalsy();
        const structured = result.structuredContent as Record<string, unknown>;
        const check = new AjvJsonSchemaValidator().getValidator(tool.outputSchema!)(structured);
        expect(check.valid, check.valid ? '' : check.errorMessage).toBe(true);
        // No field the schema does not name, and every field the tool's own schema requires is there (absent values are
        // null); only the fields documented as conditional (alternatives, stale_age_s...) may be left out.
        const published = Object.keys(tool.outputSchema!.properties ?? {});
        const required = z.toJSONSchema(TOOLS.find(entry => entry.name === name)!.outputSchema, { io: 'output' }).required ?? [];
        expect(published).toEqual(expect.arrayContaining(Object.keys(structured)));
        expect(Object.keys(structured)).toEqual(expect.arrayContaining(required));
        expect(required.length).toBeGreaterThanOrEqual(3);
    });
});

describe('inputs are still checked as strictly as the tools define them', () => {
    it.each([
        ['get_price', { symbols: ['x'.repeat(65)] }, /<=64 characters at symbols\[0\]/],
        ['get_price', { symbols: Array.from({ length: 26 }, (_, i) => `T${i}`) }, /<=25 items at symbols/],
        ['get_price', { symbols: [1.5] }, /Invalid input at symbols\[0\]/],
        ['get_grades', { symbol: 1e13 }, /<=1000000000000 at symbol/],
        ['get_grades', { symbol: '' }, />=1 characters at symbol/],
        ['list_moonshots', { max_market_cap_usd: 1e14 }, /<=10000000000000 at max_market_cap_usd/],
        ['list_moonshots', { limit: 0 }, />=1 at limit/]
    ])('%s %j is refused with a message naming what is wrong', async (name, args, message) => {
        const result = await server.call(name, args);
        expect(result.isError).toBe(true);
        expect(textOf(result)).toMatch(message);
        expect(fake.count()).toBe(0);
    });
});
