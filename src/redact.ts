/**
 * Last line of defence for secrets: every text that leaves the process (logs, errors, tool results and their
 * structuredContent, upstream strings before they are parsed, and so cached) passes through `scrub`, which replaces
 * any registered secret with its fingerprint. Code should never hand a key to a writer in the first place; this
 * catches the case where an upstream echoes one back, in any of the forms a hostile or careless upstream could use:
 * the key in another case, URL-encoded, JSON-escaped, or any piece of it 8 characters long (a prefix cut off by a
 * truncation, a suffix, a run in the middle).
 */
export function fingerprint(secret: string): string {
    return `tm-…${secret.slice(-4)}`;
}

/** The length of the shortest piece of a secret that counts as a leak: 8 characters, as the leak checks count. */
export const FRAGMENT_LENGTH = 8;

/** Lower-cases ASCII letters only: unlike `toLowerCase()`, it never changes the length, so indexes map back. */
function foldAscii(text: string): string {
    return /[A-Z]/.test(text) ? text.replace(/[A-Z]+/g, run => run.toLowerCase()) : text;
}

/** The spellings of a secret that can reach a text: as is, URL-encoded (a key echoed in a URL), JSON-escaped (a log line). */
function spellings(secret: string): string[] {
    const forms = new Set([
        secret,
        encodeURIComponent(secret),
        encodeURIComponent(secret).replace(/%20/g, '+'),
        JSON.stringify(secret).slice(1, -1)
    ]);
    return [...forms];
}

const BASE = 0x01000193;
/** BASE^(FRAGMENT_LENGTH - 1), modulo 2^32, for the rolling hash. */
const TOP = (() => {
    let power = 1;
    for (let i = 1; i < FRAGMENT_LENGTH; i++) power = Math.imul(power, BASE);
    return power;
})();

function hashOf(text: string, start: number): number {
    let hash = 0;
    for (let i = start; i < start + FRAGMENT_LENGTH; i++) hash = (Math.imul(hash, BASE) + text.charCodeAt(i)) | 0;
    return hash;
}

export class Redactor {
    private readonly secrets = new Set<string>();
    /** Secrets too short to cut into fragments: matched exactly, as they are (a short Redis password). */
    private readonly short: string[] = [];
    /** Every 8-character window of every spelling of every secret, ASCII-folded, to the fingerprint it stands for. */
    private readonly windows = new Map<string, string>();
    /** Rolling hashes of `windows`' keys: a text is scanned once, and only a hash hit costs a string comparison. */
    private readonly hashes = new Set<number>();

    register(secret: string): void {
        if (secret.length === 0 || this.secrets.has(secret)) return;
        this.secrets.add(secret);
        if (secret.length < FRAGMENT_LENGTH) {
            this.short.push(secret);
            return;
        }
        const print = fingerprint(secret);
        for (const form of spellings(secret)) {
            const folded = foldAscii(form);
            for (let i = 0; i + FRAGMENT_LENGTH <= folded.length; i++) {
                const window = folded.slice(i, i + FRAGMENT_LENGTH);
                if (!this.windows.has(window)) this.windows.set(window, print);
                this.hashes.add(hashOf(folded, i));
            }
        }
    }

    /**
     * `text` with every registered secret, and every run of 8 or more characters of one (any case, URL-encoded or
     * JSON-escaped), replaced by the secret's fingerprint.
     */
    scrub(text: string): string {
        let out = text;
        for (const secret of this.short) if (out.includes(secret)) out = out.split(secret).join(fingerprint(secret));
        if (this.windows.size === 0 || out.length < FRAGMENT_LENGTH) return out;
        const folded = foldAscii(out);
        let result = '';
        let copied = 0;
        let start = -1;
        let end = -1;
        let print = '';
        let hash = hashOf(folded, 0);
        for (let i = 0; ; i++) {
            if (this.hashes.has(hash)) {
                const found = this.windows.get(folded.slice(i, i + FRAGMENT_LENGTH));
                if (found !== undefined) {
                    if (i <= end) {
                        end = i + FRAGMENT_LENGTH;
                    } else {
                        if (start >= 0) {
                            result += out.slice(copied, start) + print;
                            copied = end;
                        }
                        start = i;
                        end = i + FRAGMENT_LENGTH;
                        print = found;
                    }
                }
            }
            if (i + FRAGMENT_LENGTH >= folded.length) break;
            hash = (Math.imul(hash - Math.imul(folded.charCodeAt(i), TOP), BASE) + folded.charCodeAt(i + FRAGMENT_LENGTH)) | 0;
        }
        if (start < 0) return out;
        return result + out.slice(copied, start) + print + out.slice(end);
    }

    /** `value` with `scrub` applied to every string in it, object keys included (e.g. a tool's structuredContent). */
    scrubDeep<T>(value: T): T {
        return scrubStrings(value, text => this.scrub(text));
    }
}

/** A copy of a JSON-like value with `map` applied to every string (values and object keys); other values as they are. */
export function scrubStrings<T>(value: T, map: (text: string) => string): T {
    const walk = (item: unknown, depth: number): unknown => {
        if (typeof item === 'string') return map(item);
        if (item === null || typeof item !== 'object' || depth > 64) return item;
        if (Array.isArray(item)) return item.map(entry => walk(entry, depth + 1));
        const out: Record<string, unknown> = {};
        // defineProperty, not assignment: a `__proto__` key from JSON.parse must stay a key, not become a prototype.
        for (const [name, entry] of Object.entries(item)) {
            Object.defineProperty(out, map(name), { value: walk(entry, depth + 1), enumerable: true, writable: true, configurable: true });
        }
        return out;
    };
    return walk(value, 0) as T;
}
