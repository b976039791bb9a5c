import type { Token } from '../domain/market.js';
import type { Logger } from '../logger.js';
import { rankCandidates } from '../resolve/resolver.js';

/** MCP caps a completion at 100 values. */
export const MAX_COMPLETIONS = 100;
/** Rows per directory page (the upstream's page limit). */
const DIRECTORY_PAGE_SIZE = 100;
/** Completion reads at most this many directory pages per process: typing must not run through a quota. */
const DEFAULT_MAX_DIRECTORY_PAGES = 5;
/** Prefixes already asked about, remembered so asking again costs nothing. */
const MAX_ASKED_PREFIXES = 5_000;
const DIRECTORY_TIMEOUT_MS = 10_000;
const PREFIX = /^[\p{L}\p{N} ._\-$]{0,32}$/u;

/** One page of the unfiltered `/tokens` list (one credit). */
export type DirectoryPage = (page: number, signal: AbortSignal) => Promise<Token[]>;

export interface SymbolCompleterOptions {
    /** Tokens the tools have seen (through the cache): searched first, and free. */
    known: () => readonly Token[];
    /** Absent: completion answers from known tokens only. */
    page?: DirectoryPage;
    logger: Logger;
    maxPages?: number;
}

/**
 * Completes a token symbol from a prefix ("SO" -> SOL, SOLO, ...). The upstream's `/tokens` filters match whole
 * symbols and names only, so a prefix the known tokens do not answer reads the next page of the unfiltered token list:
 * at most one `/tokens` request per new prefix, none for a prefix asked before or one the known tokens answer, and at
 * most `maxPages` pages per process.
 */
export class SymbolCompleter {
    private readonly listed: Token[] = [];
    private readonly asked = new Set<string>();
    private pagesRead = 0;
    private exhausted = false;
    private reading: Promise<void> | null = null;
    private readonly maxPages: number;

    constructor(private readonly options: SymbolCompleterOptions) {
        this.maxPages = options.maxPages ?? DEFAULT_MAX_DIRECTORY_PAGES;
    }

    /** Upstream requests this completer has made (directory pages). */
    get pages(): number {
        return this.pagesRead;
    }

    async complete(prefix: string): Promise<string[]> {
        const wanted = prefix.trim();
        if (!PREFIX.test(wanted)) return [];
        const found = this.matches(wanted);
        const key = wanted.toUpperCase();
        if (found.length > 0 || this.asked.has(key) || this.exhausted || this.pagesRead >= this.maxPages || !this.options.page)
            return found;
        this.remember(key);
        await this.readNextPage();
        return this.matches(wanted);
    }

    private remember(key: string): void {
        if (this.asked.size >= MAX_ASKED_PREFIXES) this.asked.delete(this.asked.values().next().value!);
        this.asked.add(key);
    }

    /** One page; callers arriving while it is in flight wait for it instead of reading another. */
    private async readNextPage(): Promise<void> {
        if (this.reading !== null) return this.reading;
        const page = this.pagesRead + 1;
        this.pagesRead = page;
        this.reading = (async () => {
            try {
                const rows = await this.options.page!(page, AbortSignal.timeout(DIRECTORY_TIMEOUT_MS));
                this.listed.push(...rows);
                if (rows.length < DIRECTORY_PAGE_SIZE) this.exhausted = true;
            } catch (error) {
                // The page was not read: a later new prefix may try it again (this prefix stays asked, so no retry loop).
                this.pagesRead = page - 1;
                // Completion is a convenience: a failure leaves the known tokens' answer, never an error in the user's face.
                this.options.logger.debug('symbol completion: token directory unavailable', {
                    error: (error as { code?: string }).code ?? String(error)
                });
            } finally {
                this.reading = null;
            }
        })();
        return this.reading;
    }

    /** Symbols first that are the prefix, then that start with it, then tokens whose name starts with it; known tokens first. */
    private matches(prefix: string): string[] {
        const upper = prefix.toUpperCase();
        const lower = prefix.toLowerCase();
        const groups: Token[][] = [[], [], []];
        for (const source of [this.options.known(), this.listed]) {
            const exact: Token[] = [];
            const bySymbol: Token[] = [];
            const byName: Token[] = [];
            for (const token of source) {
                if (token.symbol.toUpperCase() === upper) exact.push(token);
                else if (token.symbol.toUpperCase().startsWith(upper)) bySymbol.push(token);
                else if (token.name.toLowerCase().startsWith(lower)) byName.push(token);
            }
            groups[0]!.push(...rankCandidates(exact));
            groups[1]!.push(...rankCandidates(bySymbol));
            groups[2]!.push(...rankCandidates(byName));
        }
        const symbols: string[] = [];
        const seen = new Set<string>();
        for (const token of groups.flat()) {
            if (seen.has(token.symbol)) continue;
            seen.add(token.symbol);
            symbols.push(token.symbol);
            if (symbols.length >= MAX_COMPLETIONS) break;
        }
        return symbols;
    }
}

/** For a comma-separated list ("BTC, ETH, SO"): completes the last item and keeps the others as typed. */
export async function completeListItem(value: string, complete: (prefix: string) => Promise<string[]>): Promise<string[]> {
    const cut = value.lastIndexOf(',');
    const head = cut < 0 ? '' : value.slice(0, cut + 1);
    const done = head
        .split(',')
        .map(item => item.trim().toUpperCase())
        .filter(Boolean);
    const values = await complete(value.slice(cut + 1));
    return values.filter(symbol => !done.includes(symbol)).map(symbol => `${head}${symbol}`);
}
