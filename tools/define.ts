import type * as z from 'zod';
import type { ToolAnnotations } from '@modelcontextprotocol/sdk/types.js';
import type { MarketService } from '../src/cache/market-service.js';
import type { Clock } from '../src/clock.js';
import type { Logger } from '../src/logger.js';
import type { TokenResolver } from '../src/resolve/resolver.js';

/** What a tool handler may use; injected so tests can give fakes. */
export interface ToolDeps {
    market: MarketService;
    resolver: TokenResolver;
    clock: Clock;
    logger: Logger;
}

export interface ToolOutput<O> {
    structured: O;
    /** The compact text the model reads: a short table or a few lines, built from `structured`. */
    text: string;
}

export interface ToolDefinition<I extends z.ZodObject = z.ZodObject, O extends z.ZodObject = z.ZodObject> {
    name: string;
    title: string;
    description: string;
    inputSchema: I;
    outputSchema: O;
    annotations: ToolAnnotations;
    handler(args: z.output<I>, deps: ToolDeps, signal: AbortSignal): Promise<ToolOutput<z.output<O>>>;
}

/** Every tool here only reads market data from an external API. */
export const READ_ONLY_OPEN_WORLD: ToolAnnotations = { readOnlyHint: true, destructiveHint: false, idempotentHint: true, openWorldHint: true };

/** Identity function that lets TypeScript infer a tool's argument and result types from its schemas. */
export function defineTool<I extends z.ZodObject, O extends z.ZodObject>(definition: ToolDefinition<I, O>): ToolDefinition<I, O> {
    return definition;
}
