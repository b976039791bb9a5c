import { McpServer } from '@modelcontextprotocol/sdk/server/mcp.js';
import type { CallToolResult } from '@modelcontextprotocol/sdk/types.js';
import { TOOLS, type ToolDefinition, type ToolDeps } from '../tools/index.js';
import { isUpstreamError, upstreamTimeout } from './api/errors.js';
import type { Redactor } from './redact.js';
import { VERSION } from './version.js';

export interface ServerDeps extends ToolDeps {
    redactor: Redactor;
    /**
     * A whole tool call's limit. A call can make several upstream requests in turn (symbol lookup, name
     * lookup, data), each with its own deadline; the model is waiting for the sum, so the sum is bounded too.
     */
    callDeadlineMs: number;
}

const INSTRUCTIONS =
    'Crypto market intelligence from the Token Metrics Data API. get_price: USD prices for up to 25 tokens at once. ' +
    "get_grades: a token's AI trader/investor/TM grades. list_moonshots: high-risk small-cap picks. " +
    'explain_signal: why a token is bullish or bearish, with evidence. Each upstream call costs the user one credit: ' +
    'ask for several prices in one get_price call rather than one call per token. Nothing here is investment advice.';

/**
 * Any failure becomes a tool result with `isError: true` whose text says what happened and what to do.
 * Typed upstream errors carry that text; anything else is a bug, logged with its stack on stderr.
 */
export function toolErrorResult(tool: string, error: unknown, deps: Pick<ServerDeps, 'logger' | 'redactor'>): CallToolResult {
    let text: string;
    if (isUpstreamError(error)) {
        text = error.userMessage;
        deps.logger.info('tool call failed', { tool, code: error.code, endpoint: error.endpoint ?? null });
    } else {
        const message = error instanceof Error ? error.message : String(error);
        deps.logger.error('tool call crashed', { tool, error: message, stack: error instanceof Error ? (error.stack ?? null) : null });
        text = `crypto-intel-mcp hit an internal error while running ${tool}: ${message}. The server is still running; try again, and report this if it repeats.`;
    }
    return { isError: true, content: [{ type: 'text', text: deps.redactor.scrub(text) }] };
}

function register(server: McpServer, tool: ToolDefinition, deps: ServerDeps): void {
    server.registerTool(
        tool.name,
        { title: tool.title, description: tool.description, inputSchema: tool.inputSchema, outputSchema: tool.outputSchema, annotations: tool.annotations },
        async (args: unknown, extra: { signal: AbortSignal }): Promise<CallToolResult> => {
            const deadline = AbortSignal.timeout(deps.callDeadlineMs);
            try {
                const { structured, text } = await tool.handler(args as never, deps, AbortSignal.any([extra.signal, deadline]));
                return { content: [{ type: 'text', text: deps.redactor.scrub(text) }], structuredContent: structured as Record<string, unknown> };
            } catch (error) {
                const timedOut = deadline.aborted && !extra.signal.aborted;
                return toolErrorResult(tool.name, timedOut ? upstreamTimeout(deps.callDeadlineMs) : error, deps);
            }
        }
    );
}

/** Builds the MCP server with every tool; the stdio and HTTP transports both call this. */
export function createServer(deps: ServerDeps): McpServer {
    const server = new McpServer(
        { name: 'crypto-intel-mcp', title: 'Crypto Intel (Token Metrics)', version: VERSION },
        { capabilities: { logging: {} }, instructions: INSTRUCTIONS }
    );
    for (const tool of TOOLS) register(server, tool, deps);
    return server;
}
