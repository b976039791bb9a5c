/** Optimal-string-alignment distance (Levenshtein plus adjacent swaps), case-insensitive. */
export function editDistance(a: string, b: string): number {
    const s = a.toLowerCase();
    const t = b.toLowerCase();
    const rows = s.length + 1;
    const cols = t.length + 1;
    const d: number[][] = Array.from({ length: rows }, (_, i) => Array.from({ length: cols }, (_, j) => (i === 0 ? j : j === 0 ? i : 0)));
    for (let i = 1; i < rows; i++) {
        for (let j = 1; j < cols; j++) {
            const cost = s[i - 1] === t[j - 1] ? 0 : 1;
            let best = Math.min(d[i - 1]![j]! + 1, d[i]![j - 1]! + 1, d[i - 1]![j - 1]! + cost);
            if (i > 1 && j > 1 && s[i - 1] === t[j - 2] && s[i - 2] === t[j - 1]) best = Math.min(best, d[i - 2]![j - 2]! + 1);
            d[i]![j] = best;
        }
    }
    return d[s.length]![t.length]!;
}

/**
 * Up to `limit` labels whose key is close to `input`: within 1 edit for short inputs, 2 for longer
 * ones, so "ETHH" suggests ETH but "A" does not suggest every two-letter symbol.
 */
export function closest(input: string, candidates: ReadonlyArray<{ key: string; label: string }>, limit: number): string[] {
    const needle = input.slice(0, 64);
    const budget = needle.length <= 4 ? 1 : 2;
    const scored = new Map<string, number>();
    for (const { key, label } of candidates) {
        if (Math.abs(key.length - needle.length) > budget) continue;
        const distance = editDistance(needle, key);
        if (distance <= budget && distance < (scored.get(label) ?? Infinity)) scored.set(label, distance);
    }
    return [...scored.entries()]
        .sort((a, b) => a[1] - b[1] || a[0].localeCompare(b[0]))
        .slice(0, limit)
        .map(([label]) => label);
}
