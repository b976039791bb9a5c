import type * as z from 'zod';
import type { MarketService } from '../src/cache/market-service.js';
import type { Clock } from '../src/clock.js';
import type { Logger } from '../src/logger.js';
import type { TokenResolver } from '../src/resolve/resolver.js';
import type { UsageSource } from '../src/usage/tracker.js';

/** What a tool handler may use; injected so tests can give fakes. */
export interface ToolDeps {
    market: MarketService;
    resolver: TokenResolver;
    clock: Clock;
    logger: Logger;
    /** Credits, cache savings and key health for `get_usage`; absent where nothing counts them. */
    usage?: UsageSource;
}

/**
 * Tells the client how far a call has got (MCP progress notifications), when it asked to be told; a no-op otherwise.
 * `done` of `total` parts, e.g. (1, 2, 'symbols resolved'). Never throws, never waits.
 */
export type Progress = (done: number, total: number, message: string) => void;

export const NO_PROGRESS: Progress = () => {};

export interface ToolOutput<O> {
    structured: O;
    /** The compact text the model reads: a short table or a few lines, built from `structured`. */
    text: string;
}

export interface ToolHints {
    readOnlyHint: boolean;
    openWorldHint: boolean;
}

export interface ToolDefinition<I extends z.ZodObject = z.ZodObject, O extends z.ZodObject = z.ZodObject> {
    name: string;
    title: string;
    description: string;
    inputSchema: I;
    outputSchema: O;
    /** What `tools/list` publishes as the tool's annotations: both hints, which every client reads. */
    annotations: ToolHints;
    handler(args: z.output<I>, deps: ToolDeps, signal: AbortSignal, progress?: Progress): Promise<ToolOutput<z.output<O>>>;
}

/**
 * Every market tool only reads data from an external API. `destructiveHint` and `idempotentHint` are left out: they
 * mean something only when `readOnlyHint` is false (MCP spec, ToolAnnotations); the title is the tool's own.
 */
export const READ_ONLY_OPEN_WORLD: ToolHints = { readOnlyHint: true, openWorldHint: true };

/** Identity function that lets TypeScript infer a tool's argument and result types from its schemas. */
export function defineTool<I extends z.ZodObject, O extends z.ZodObject>(definition: ToolDefinition<I, O>): ToolDefinition<I, O> {
    return definition;
}
