/** The scripted session: what users of Claude Desktop ask, in order, with repeats and overlaps on purpose. */
export interface Question {
    ask: string;
    tool: string;
    args: Record<string, unknown>;
}

export const SESSION: readonly Question[] = [
    { ask: 'Price of BTC, ETH and PEPE', tool: 'get_price', args: { symbols: ['BTC', 'ETH', 'PEPE'] } },
    { ask: "What is SOL's trader grade?", tool: 'get_grades', args: { symbol: 'SOL' } },
    { ask: 'Is ETH bullish right now, and why?', tool: 'explain_signal', args: { symbol: 'ETH' } },
    { ask: "Today's moonshots under $50M market cap", tool: 'list_moonshots', args: { type: 'active', max_market_cap_usd: 50_000_000 } },
    {
        ask: 'Prices of SOL, DOGE, ADA, XRP, LINK, DOT, AVAX, UNI',
        tool: 'get_price',
        args: { symbols: ['SOL', 'DOGE', 'ADA', 'XRP', 'LINK', 'DOT', 'AVAX', 'UNI'] }
    },
    { ask: "ETH's grades", tool: 'get_grades', args: { symbol: 'ETH' } },
    { ask: 'Is BTC bullish, and why?', tool: 'explain_signal', args: { symbol: 'BTC' } },
    { ask: 'Price of BTC, ETH and PEPE (again)', tool: 'get_price', args: { symbols: ['BTC', 'ETH', 'PEPE'] } },
    { ask: 'Past moonshots and their ROI', tool: 'list_moonshots', args: { type: 'past', limit: 20 } },
    { ask: "Solana's grades (by name)", tool: 'get_grades', args: { symbol: 'solana' } },
    { ask: 'Why is SOL where it is?', tool: 'explain_signal', args: { symbol: 'SOL' } },
    { ask: 'Active moonshots with trader grade 80+', tool: 'list_moonshots', args: { type: 'active', min_trader_grade: 80 } },
    { ask: 'Price of ETH', tool: 'get_price', args: { symbols: ['ETH'] } },
    { ask: "DOGE's grades", tool: 'get_grades', args: { symbol: 'DOGE' } }
];
