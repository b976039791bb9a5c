import type { McpServer } from '@modelcontextprotocol/sdk/server/mcp.js';
import { completable } from '@modelcontextprotocol/sdk/server/completable.js';
import { ErrorCode, McpError, type GetPromptResult } from '@modelcontextprotocol/sdk/types.js';
import * as z from 'zod';
import { SIGNAL_HISTORY_DAYS, currentRun, gradeBand } from '../analysis/signal-checks.js';
import { isUpstreamError } from '../api/errors.js';
import { inToolCall } from '../api/call-scope.js';
import { newestFirst } from '../domain/market.js';
import { PRICES, TM_GRADES, TRADING_SIGNALS } from '../endpoints/registry.js';
import type { Redactor } from '../redact.js';
import type { ToolDeps } from '../../tools/define.js';
import { explainSignal } from '../../tools/explain-signal.js';
import { compactUsd, grade, table, usd, utc } from '../../tools/format.js';
import { getGrades } from '../../tools/get-grades.js';
import { getPrice } from '../../tools/get-price.js';
import { unresolvedLine } from '../../tools/common.js';
import { ListMoonshotsInput, listMoonshots } from '../../tools/list-moonshots.js';
import { completeListItem, type SymbolCompleter } from './symbols.js';

export { SymbolCompleter, completeListItem, type DirectoryPage } from './symbols.js';

/** What the prompts read: the tools' own dependencies (the same cache and resolver), and the symbol completer. */
export interface PromptDeps extends ToolDeps {
    redactor: Redactor;
    callDeadlineMs: number;
    /** Absent: symbol arguments complete from nothing (no upstream call). */
    symbols?: SymbolCompleter;
}

const NOT_ADVICE = 'Keep it informational: this is not investment advice.';
const MARKET_CAPS = ['10000000', '25000000', '50000000', '100000000', '250000000', '500000000', '1000000000'];
const TRADER_GRADES = ['50', '60', '70', '80', '90'];
const COMPARE_MIN = 2;
const COMPARE_MAX = 5;

const invalid = (message: string): McpError => new McpError(ErrorCode.InvalidParams, message);

/** A user's prompt argument: "50M", "$1.5B", "250000" -> a number; undefined when empty. */
export function parseAmount(raw: string | undefined, what: string): number | undefined {
    if (raw === undefined || raw.trim() === '') return undefined;
    const match = /^\$?\s*(\d+(?:\.\d+)?)\s*([kmbt])?$/i.exec(raw.trim().replace(/[,_]/g, ''));
    if (!match) throw invalid(`${what} must be a number such as 50000000 or 50M, got "${raw.slice(0, 32)}".`);
    const unit = { k: 1e3, m: 1e6, b: 1e9, t: 1e12 }[(match[2] ?? '').toLowerCase() as 'k' | 'm' | 'b' | 't'] ?? 1;
    return Number(match[1]) * unit;
}

/** "BTC, eth ,SOL" -> ["BTC", "ETH", "SOL"], 2 to 5 distinct tokens. */
export function parseSymbolList(raw: string): string[] {
    const items = [
        ...new Map(
            raw
                .split(/[,\s]+/)
                .map(item => item.trim())
                .filter(Boolean)
                .map(item => [item.toUpperCase(), item])
        ).values()
    ];
    if (items.length < COMPARE_MIN || items.length > COMPARE_MAX) {
        throw invalid(
            `compare_tokens takes ${COMPARE_MIN} to ${COMPARE_MAX} different tokens, comma-separated (e.g. "BTC,ETH,SOL"); got ${items.length}.`
        );
    }
    if (items.some(item => item.length > 64)) throw invalid('A token symbol or name is at most 64 characters.');
    return items;
}

/** The prompt's own deadline and the client's cancellation together, as a tool call has. */
function callSignal(deps: PromptDeps, signal: AbortSignal): AbortSignal {
    return AbortSignal.any([signal, deps.clock.timeout(deps.callDeadlineMs)]);
}

/** A part that failed is named in the message (its user-facing reason), so the rest still helps. */
async function section(title: string, run: () => Promise<string>, redactor: Redactor): Promise<{ text: string; failed: unknown }> {
    try {
        return { text: `## ${title}\n${redactor.scrub(await run())}`, failed: null };
    } catch (error) {
        const reason = isUpstreamError(error) ? error.userMessage : error instanceof Error ? error.message : String(error);
        return { text: `## ${title}\n(unavailable: ${redactor.scrub(reason)})`, failed: error };
    }
}

function userMessage(description: string, text: string): GetPromptResult {
    return { description, messages: [{ role: 'user', content: { type: 'text', text } }] };
}

function symbolArgument(deps: PromptDeps, description: string) {
    return completable(z.string().min(1).max(64).describe(description), async value => (deps.symbols ? deps.symbols.complete(value) : []));
}

async function tokenBriefing(symbol: string, deps: PromptDeps, signal: AbortSignal): Promise<GetPromptResult> {
    // Resolved once here (the parts below find it in the cache): an unknown token is the user's to fix, not a briefing.
    const resolved = await deps.resolver.resolveOne(symbol, signal);
    if (!('token' in resolved)) throw invalid(deps.redactor.scrub(unresolvedLine(resolved)));
    const parts = await Promise.all([
        section('Price', async () => (await getPrice.handler({ symbols: [symbol] }, deps, signal)).text, deps.redactor),
        section('Grades', async () => (await getGrades.handler({ symbol }, deps, signal)).text, deps.redactor),
        section('Signal and its evidence', async () => (await explainSignal.handler({ symbol }, deps, signal)).text, deps.redactor)
    ]);
    // Nothing at all: the token is unknown or the upstream is down. Say so rather than send an empty briefing.
    if (parts.every(part => part.failed !== null)) {
        const error = parts[1].failed;
        throw invalid(deps.redactor.scrub(isUpstreamError(error) ? error.userMessage : String(error)));
    }
    const text = [
        `Brief me on ${resolved.token.token.symbol} (${resolved.token.token.name}) using only the Token Metrics data below, fetched just now by crypto-intel-mcp.`,
        'Cover the price; what the grades say (TM grade and its signal, trader versus investor grade); and the current trend ' +
            'with the evidence that confirms or contradicts it. Name what the data does not show. ' +
            NOT_ADVICE,
        '',
        ...parts.map(part => part.text)
    ].join('\n');
    return userMessage(`Briefing on ${resolved.token.token.symbol} (${resolved.token.token.name}) with live Token Metrics data`, text);
}

async function moonshotScan(
    maxCap: string | undefined,
    minGrade: string | undefined,
    deps: PromptDeps,
    signal: AbortSignal
): Promise<GetPromptResult> {
    const max_market_cap_usd = parseAmount(maxCap, 'max_market_cap');
    const min_trader_grade = parseAmount(minGrade, 'min_trader_grade');
    if (min_trader_grade !== undefined && min_trader_grade > 100) throw invalid('min_trader_grade is 0 to 100.');
    const args = ListMoonshotsInput.parse({ type: 'active', limit: 10, max_market_cap_usd, min_trader_grade });
    const result = await listMoonshots.handler(args, deps, signal);
    const filters = [
        max_market_cap_usd === undefined ? null : `market cap at most ${compactUsd(max_market_cap_usd)}`,
        min_trader_grade === undefined ? null : `trader grade at least ${min_trader_grade}`
    ].filter(Boolean);
    const text = [
        `Here are today's active Token Metrics moonshots${filters.length > 0 ? ` (${filters.join(', ')})` : ''}, fetched just now by crypto-intel-mcp.`,
        'Pick the three most interesting; for each, explain its trader grade, market cap, volume and return since it was picked, ' +
            'and the risks (these are high-risk small caps). If none match, say so. ' +
            NOT_ADVICE,
        '',
        deps.redactor.scrub(result.text)
    ].join('\n');
    return userMessage(`Moonshot scan${filters.length > 0 ? `: ${filters.join(', ')}` : ''}`, text);
}

async function compareTokens(raw: string, deps: PromptDeps, signal: AbortSignal): Promise<GetPromptResult> {
    const inputs = parseSymbolList(raw);
    const resolution = await deps.resolver.resolve(inputs, signal);
    const tokens = [...new Map(resolution.resolved.map(entry => [entry.token.tokenId, entry.token])).values()];
    if (tokens.length < COMPARE_MIN) {
        const missing = resolution.unresolved.map(entry => `"${entry.input}"`).join(', ');
        throw invalid(`compare_tokens needs at least ${COMPARE_MIN} known tokens; not found: ${missing || 'none'}.`);
    }
    const ids = tokens.map(token => token.tokenId);
    // One request per kind for all the tokens together, in the cache entries get_price and get_grades use too.
    const [prices, grades, signals] = await Promise.all([
        deps.market.get(PRICES, { ids }, signal),
        deps.market.get(TM_GRADES, { ids }, signal).catch(() => null),
        deps.market.get(TRADING_SIGNALS, { ids, days: SIGNAL_HISTORY_DAYS }, signal).catch(() => null)
    ]);
    const rows = [['token', 'price', 'TM grade', 'trader grade', 'investor', 'trend']];
    for (const token of tokens) {
        const price = prices.data.find(row => row.tokenId === token.tokenId)?.priceUsd ?? null;
        const tm = grades?.data.find(row => row.tokenId === token.tokenId) ?? null;
        const history = (signals?.data ?? []).filter(row => row.tokenId === token.tokenId).sort(newestFirst);
        const latest = history.find(row => row.traderGrade !== null || row.investorGrade !== null) ?? null;
        const run = currentRun(history);
        const trader = latest?.traderGrade ?? null;
        rows.push([
            `${token.symbol} (${token.name.slice(0, 20)})`,
            usd(price),
            `${grade(tm?.tmGrade ?? null)}${tm?.signalLabel ? ` ${tm.signalLabel}` : ''}`,
            `${grade(trader)}${trader === null ? '' : ` (${gradeBand(trader)})`}`,
            grade(latest?.investorGrade ?? null),
            run.signal === null ? 'n/a' : `${run.signal} since ${run.lowerBound ? 'at least ' : ''}${run.since}`
        ]);
    }
    const notes = [
        `Prices as of ${utc(prices.fetchedAt)}; grades and trends from the newest daily signal rows.`,
        ...(grades === null ? ['TM grades unavailable right now.'] : []),
        ...(signals === null ? ['Trader and investor grades and trends unavailable right now.'] : []),
        ...resolution.unresolved.map(entry => `Not found: "${entry.input}".`)
    ];
    const text = [
        `Compare ${tokens.map(token => token.symbol).join(', ')} using only the Token Metrics data below, fetched just now by crypto-intel-mcp.`,
        'Which looks strongest short-term (trader grade, trend) and long-term (investor grade, TM grade), where do the signals disagree, ' +
            'and what would you check next (explain_signal gives the evidence for one token). ' +
            NOT_ADVICE,
        '',
        table(rows),
        ...notes
    ].join('\n');
    return userMessage(`Comparison of ${tokens.map(token => token.symbol).join(', ')}`, deps.redactor.scrub(text));
}

/**
 * The prompts' argument schemas, built once per set of dependencies (one per process): zod builds schemas slowly, and
 * the HTTP server registers the prompts on a fresh McpServer for every request, where building these was four fifths
 * of building the server. The schemas are only read, so every server of the process can share them.
 */
const argumentSchemas = new WeakMap<PromptDeps, ReturnType<typeof buildArgumentSchemas>>();

function buildArgumentSchemas(deps: PromptDeps) {
    return {
        briefing: { symbol: symbolArgument(deps, 'A token symbol, name or Token Metrics id, e.g. "SOL".') },
        scan: {
            max_market_cap: completable(z.string().max(32).optional().describe('Largest market cap in USD, e.g. 50000000 or 50M.'), value =>
                MARKET_CAPS.filter(cap => cap.startsWith((value ?? '').trim()))
            ),
            min_trader_grade: completable(z.string().max(8).optional().describe('Lowest trader grade, 0 to 100, e.g. 70.'), value =>
                TRADER_GRADES.filter(option => option.startsWith((value ?? '').trim()))
            )
        },
        compare: {
            symbols: completable(z.string().min(1).max(200).describe('2 to 5 tokens, comma-separated, e.g. "BTC,ETH,SOL".'), async value =>
                deps.symbols ? completeListItem(value, prefix => deps.symbols!.complete(prefix)) : []
            )
        }
    };
}

/**
 * The three prompts a client offers in its menu, with completing arguments; data comes through the tools' own cache,
 * within a tool call's deadline and upstream share (`inToolCall`), as a tool call's does.
 */
export function registerPrompts(server: McpServer, deps: PromptDeps): void {
    let schemas = argumentSchemas.get(deps);
    if (schemas === undefined) argumentSchemas.set(deps, (schemas = buildArgumentSchemas(deps)));
    server.registerPrompt(
        'token_briefing',
        {
            title: 'Token briefing',
            description:
                "One token's price, AI grades and current signal with its evidence, in one message to answer from (up to 6 credits cold, cached after).",
            argsSchema: schemas.briefing
        },
        async ({ symbol }, extra) =>
            inToolCall(deps.clock, deps.callDeadlineMs, () => tokenBriefing(symbol.trim(), deps, callSignal(deps, extra.signal)))
    );
    server.registerPrompt(
        'moonshot_scan',
        {
            title: 'Moonshot scan',
            description: "Today's active Token Metrics moonshots, filtered, for the model to pick from (1 credit, cached 15 min).",
            argsSchema: schemas.scan
        },
        async ({ max_market_cap, min_trader_grade }, extra) =>
            inToolCall(deps.clock, deps.callDeadlineMs, () =>
                moonshotScan(max_market_cap, min_trader_grade, deps, callSignal(deps, extra.signal))
            )
    );
    server.registerPrompt(
        'compare_tokens',
        {
            title: 'Compare tokens',
            description:
                '2 to 5 tokens side by side: price, TM, trader and investor grades, current trend (about 4 credits cold, cached after).',
            argsSchema: schemas.compare
        },
        async ({ symbols }, extra) =>
            inToolCall(deps.clock, deps.callDeadlineMs, () => compareTokens(symbols, deps, callSignal(deps, extra.signal)))
    );
}
