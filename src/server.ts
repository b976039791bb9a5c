import { McpServer } from '@modelcontextprotocol/sdk/server/mcp.js';
import { AjvJsonSchemaValidator } from '@modelcontextprotocol/sdk/validation/ajv';
import type { RequestHandlerExtra } from '@modelcontextprotocol/sdk/shared/protocol.js';
import type { JsonSchemaType, JsonSchemaValidator, jsonSchemaValidator } from '@modelcontextprotocol/sdk/validation';
import {
    ListToolsRequestSchema,
    SetLevelRequestSchema,
    type CallToolResult,
    type LoggingLevel,
    type ServerNotification,
    type ServerRequest
} from '@modelcontextprotocol/sdk/types.js';
import { NO_PROGRESS, TOOLS, TOOLS_LIST, type Progress, type ToolDefinition, type ToolDeps } from '../tools/index.js';
import { isUpstreamError, upstreamTimeout } from './api/errors.js';
import { inToolCall } from './api/call-scope.js';
import { refusalOf } from './api/refusals.js';
import type { LogLevel, StderrLogger } from './logger.js';
import { registerPrompts, type SymbolCompleter } from './prompts/index.js';
import type { Redactor } from './redact.js';
import { VERSION } from './version.js';

export interface ServerDeps extends ToolDeps {
    redactor: Redactor;
    /**
     * A whole tool call's limit. A call can make several upstream requests in turn (symbol lookup, name
     * lookup, data), each with its own deadline; the model is waiting for the sum, so the sum is bounded too.
     */
    callDeadlineMs: number;
    /** Completes symbol arguments of the prompts; shared by every server of the process, like the cache. */
    symbols?: SymbolCompleter;
    /**
     * Readies what the first tool call needs, once per process: a connection to the upstream, then undici's HTTP parser.
     * The stdio server asks for the connection alone once connected (`'connection'`); any server asks for all of it
     * shortly after it has answered the tool list (`WARM_UP_AFTER_LIST_MS`), so that the list a client waits for at
     * start-up waits for neither. Sends no request (no credit); never rejects.
     */
    warmUp?: (only?: 'connection') => Promise<void>;
    /** Told each time a tool call has its answer, failed or not. */
    answered?: () => void;
}

type Extra = RequestHandlerExtra<ServerRequest, ServerNotification>;

/**
 * How long after answering the tool list the warm-up waits. SDK clients that call a tool at once send the call ~1 ms
 * after the list; interleaved over 31 starts × 4, the first call took 129 ms with no wait, 125–126 with 15–25 ms.
 */
const WARM_UP_AFTER_LIST_MS = 15;

const INSTRUCTIONS =
    'Crypto market intelligence from the Token Metrics Data API. get_price: USD prices for up to 25 tokens at once. ' +
    "get_grades: a token's AI trader/investor/TM grades. list_moonshots: high-risk small-cap picks. " +
    'explain_signal: why a token is bullish or bearish, with evidence. Each upstream call costs the user one credit: ' +
    'ask for several prices in one get_price call rather than one call per token. get_usage (free): credits used, cache savings, key health. ' +
    'Nothing here is investment advice.';

/**
 * Any failure becomes a tool result with `isError: true` whose text says what happened and what to do.
 * Typed upstream errors carry that text; anything else is a bug, logged with its stack on stderr.
 */
export function toolErrorResult(tool: string, error: unknown, deps: Pick<ServerDeps, 'logger' | 'redactor'>): CallToolResult {
    let text: string;
    if (isUpstreamError(error)) {
        text = error.userMessage;
        // "Busy" is load shedding at work, one line per refused call in a flood: debug only (the HTTP layer sums them up).
        if (refusalOf(error) === 'busy') deps.logger.debug('tool call answered busy', { tool });
        else deps.logger.info('tool call failed', { tool, code: error.code, endpoint: error.endpoint ?? null });
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
        {
            title: tool.title,
            description: tool.description,
            inputSchema: tool.inputSchema,
            outputSchema: tool.outputSchema,
            annotations: tool.annotations
        },
        async (args: unknown, extra: Extra): Promise<CallToolResult> => {
            const deadline = deps.clock.timeout(deps.callDeadlineMs);
            const { progress, sent } = progressFor(extra);
            try {
                // In a call scope: the upstream limiter knows this call's deadline, and the caller's share it takes is given back at the end.
                const { structured, text } = await inToolCall(deps.clock, deps.callDeadlineMs, () =>
                    tool.handler(args as never, deps, AbortSignal.any([extra.signal, deadline]), progress)
                );
                // Progress goes out before the result it announces.
                await sent();
                // Both forms leave scrubbed: a key (or a piece of one) in an upstream string must reach neither.
                return {
                    content: [{ type: 'text', text: deps.redactor.scrub(text) }],
                    structuredContent: deps.redactor.scrubDeep(structured)
                };
            } catch (error) {
                const timedOut = deadline.aborted && !extra.signal.aborted;
                return toolErrorResult(tool.name, timedOut ? upstreamTimeout(deps.callDeadlineMs) : error, deps);
            } finally {
                deps.answered?.();
            }
        }
    );
}

/**
 * One JSON Schema validator for every server, made the first time a schema needs one. The SDK otherwise builds a fresh
 * Ajv for each McpServer, which the stateless HTTP transport makes for every request (a large share of a request's
 * CPU), and the stdio server would build one at start-up (~6 ms and its garbage) for nothing: it only serves
 * elicitation schemas, which these tools never send. Sharing it shares no state between callers.
 */
let ajv: AjvJsonSchemaValidator | undefined;
const sharedValidator: jsonSchemaValidator = {
    getValidator<T>(schema: JsonSchemaType): JsonSchemaValidator<T> {
        ajv ??= new AjvJsonSchemaValidator();
        return ajv.getValidator<T>(schema);
    }
};

/** Builds the MCP server with every tool; the stdio and HTTP transports both call this. */
export function createServer(deps: ServerDeps): McpServer {
    const server = new McpServer(
        { name: 'crypto-intel-mcp', title: 'Crypto Intel (Token Metrics)', version: VERSION },
        {
            capabilities: { logging: {} },
            instructions: INSTRUCTIONS,
            jsonSchemaValidator: sharedValidator
        }
    );
    for (const tool of TOOLS) register(server, tool, deps);
    // The SDK would convert every zod schema to JSON Schema again for each listing; this answer is built once, lean.
    // Calls are still checked against the zod schemas the tools registered.
    server.server.setRequestHandler(ListToolsRequestSchema, () => {
        // After the answer, and after a call the client sends the moment it has the list: the list waits for nothing,
        // and that call's first request goes out first, so the warm-up runs while it waits for the upstream.
        void deps.clock.sleep(WARM_UP_AFTER_LIST_MS).then(() => deps.warmUp?.());
        return TOOLS_LIST;
    });
    registerPrompts(server, deps);
    // The persistent cache is read once the client has shaken hands: the restore's first reads come after the tool list,
    // which follows `initialized` at once, and before a client's first call.
    const previous = server.server.oninitialized;
    server.server.oninitialized = () => {
        previous?.();
        void deps.market.restore();
    };
    return server;
}

/**
 * MCP progress notifications for a call whose request carried `_meta.progressToken`; a no-op otherwise. Each
 * notification is sent as the part completes; `sent()` waits for them, so none arrives after the result.
 */
function progressFor(extra: Extra): { progress: Progress; sent: () => Promise<void> } {
    const token = extra._meta?.progressToken;
    if (token === undefined) return { progress: NO_PROGRESS, sent: async () => {} };
    const pending: Array<Promise<void>> = [];
    let last = 0;
    const progress: Progress = (done, total, message) => {
        // Progress must increase; a cancelled call sends nothing more.
        if (done <= last || extra.signal.aborted) return;
        last = done;
        const notification = {
            method: 'notifications/progress' as const,
            params: { progressToken: token, progress: done, total, message }
        };
        pending.push(extra.sendNotification(notification).catch(() => undefined));
    };
    return { progress, sent: async () => void (await Promise.all(pending)) };
}

const MCP_LEVEL: Record<LogLevel, LoggingLevel> = { error: 'error', warn: 'warning', info: 'info', debug: 'debug' };
const SEVERITY: readonly LoggingLevel[] = ['debug', 'info', 'notice', 'warning', 'error', 'critical', 'alert', 'emergency'];
/** Log lines held back until the client's `initialized`; more are counted, not kept. */
const MAX_EARLY_LOGS = 20;

/**
 * Sends the server's log lines to the client as `notifications/message`: warnings and errors by default, down to the
 * level the client sets with `logging/setLevel` (per session: each server instance is one session). Nothing goes out
 * before the client's `initialized` notification: lines logged earlier wait, and follow it. `gate` can refuse a line
 * (stdout closed, a rate cap).
 */
export function forwardLogsToClient(server: McpServer, logger: Pick<StderrLogger, 'addSink'>, gate: () => boolean = () => true): void {
    let threshold: LoggingLevel = 'warning';
    let initialized = false;
    const early: Array<{ level: LoggingLevel; data: Record<string, unknown> }> = [];
    const send = (level: LoggingLevel, data: Record<string, unknown>): void => {
        if (!server.isConnected() || SEVERITY.indexOf(level) < SEVERITY.indexOf(threshold) || !gate()) return;
        server.sendLoggingMessage({ level, logger: 'crypto-intel-mcp', data }).catch(() => {});
    };
    server.server.setRequestHandler(SetLevelRequestSchema, request => {
        threshold = request.params.level;
        return {};
    });
    const previous = server.server.oninitialized;
    server.server.oninitialized = () => {
        previous?.();
        initialized = true;
        for (const entry of early.splice(0)) send(entry.level, entry.data);
    };
    logger.addSink((level, msg, fields) => {
        const data = { msg, ...fields };
        if (initialized) send(MCP_LEVEL[level], data);
        // Only what the default level would send: a burst of debug lines must not crowd out a warning.
        else if (early.length < MAX_EARLY_LOGS && SEVERITY.indexOf(MCP_LEVEL[level]) >= SEVERITY.indexOf(threshold)) {
            early.push({ level: MCP_LEVEL[level], data });
        }
    });
}
