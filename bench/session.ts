/** The scripted session: what users of Claude Desktop ask, in order, with repeats and overlaps on purpose. */

/** Upstream data kinds an answer can need, whatever server gives it. `tokens`: turning a symbol or name into an id. */
export type DataKind = 'tokens' | 'price' | 'tm-grade' | 'trading-signals' | 'daily-ohlcv' | 'moonshots';

export interface Question {
    ask: string;
    tool: string;
    args: Record<string, unknown>;
    /**
     * The data its answer needs, by kind: tokens by symbol (a name counts as its token), or a moonshot type. Written
     * from the question, not from the calls any server makes: the floor of credits is computed from these alone.
     */
    needs: Partial<Record<DataKind, readonly string[]>>;
}

const price = (ask: string, symbols: string[]): Question => ({
    ask,
    tool: 'get_price',
    args: { symbols },
    needs: { tokens: symbols, price: symbols }
});
/** The TM grade, and the trader and investor grades that come with the daily signal rows. */
const grades = (ask: string, input: string, token: string): Question => ({
    ask,
    tool: 'get_grades',
    args: { symbol: input },
    needs: { tokens: [token], 'tm-grade': [token], 'trading-signals': [token] }
});
/** The token's signal history with BTC's and ETH's beside it (their ids are known), and its daily candles. */
const why = (ask: string, token: string): Question => ({
    ask,
    tool: 'explain_signal',
    args: { symbol: token },
    needs: { tokens: [token], 'trading-signals': [...new Set([token, 'BTC', 'ETH'])], 'daily-ohlcv': [token] }
});
const moonshots = (ask: string, args: { type: 'active' | 'past' } & Record<string, unknown>): Question => ({
    ask,
    tool: 'list_moonshots',
    args,
    needs: { moonshots: [args.type] }
});

export const SESSION: readonly Question[] = [
    price('Price of BTC, ETH and PEPE', ['BTC', 'ETH', 'PEPE']),
    grades("What is SOL's trader grade?", 'SOL', 'SOL'),
    why('Is ETH bullish right now, and why?', 'ETH'),
    moonshots("Today's moonshots under $50M market cap", { type: 'active', max_market_cap_usd: 50_000_000 }),
    price('Prices of SOL, DOGE, ADA, XRP, LINK, DOT, AVAX, UNI', ['SOL', 'DOGE', 'ADA', 'XRP', 'LINK', 'DOT', 'AVAX', 'UNI']),
    grades("ETH's grades", 'ETH', 'ETH'),
    why('Is BTC bullish, and why?', 'BTC'),
    price('Price of BTC, ETH and PEPE (again)', ['BTC', 'ETH', 'PEPE']),
    moonshots('Past moonshots and their ROI', { type: 'past', limit: 20 }),
    grades("Solana's grades (by name)", 'solana', 'SOL'),
    why('Why is SOL where it is?', 'SOL'),
    moonshots('Active moonshots with trader grade 80+', { type: 'active', min_trader_grade: 80 }),
    price('Price of ETH', ['ETH']),
    grades("DOGE's grades", 'DOGE', 'DOGE')
];

export interface QuestionFloor {
    /** Credits if every symbol's id were known for free. */
    idsFree: number;
    /** Plus one `/tokens` request when the question names a token not looked up earlier in the session. */
    withLookups: number;
}

/**
 * The fewest credits any server could spend on each question, asking them one at a time within the cache lifetimes:
 * a need met earlier in the session costs nothing, and a question's new needs of one kind share one request (the
 * upstream takes comma-separated lists).
 */
export function floors(session: readonly Question[]): QuestionFloor[] {
    const met = new Set<string>();
    return session.map(question => {
        const newKinds = new Set<DataKind>();
        for (const [kind, items] of Object.entries(question.needs) as Array<[DataKind, readonly string[]]>) {
            for (const item of items) {
                if (!met.has(`${kind}:${item}`)) newKinds.add(kind);
                met.add(`${kind}:${item}`);
            }
        }
        const lookup = newKinds.delete('tokens') ? 1 : 0;
        return { idsFree: newKinds.size, withLookups: newKinds.size + lookup };
    });
}
