import { readdirSync, readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';
import type { CallToolResult } from '@modelcontextprotocol/sdk/types.js';

/**
 * Shared by the hardening tests: the leak check for every spelling of a key (any case, URL-encoded, any 8-character
 * run), the check for characters upstream text must not carry into an answer, and a reader for a cache directory.
 */

/** `fragmentsOf` by secret: the fuzz suite checks some 40,000 texts against the same key. */
const fragmentCache = new Map<string, readonly string[]>();

/** Every 8-character window of `secret`, as typed and URL-encoded, lower-cased. */
export function fragmentsOf(secret: string): readonly string[] {
    let fragments = fragmentCache.get(secret);
    if (fragments === undefined) {
        const forms = [secret, encodeURIComponent(secret)].map(form => form.toLowerCase());
        fragments = [
            ...new Set(forms.flatMap(form => Array.from({ length: Math.max(0, form.length - 7) }, (_, i) => form.slice(i, i + 8))))
        ];
        fragmentCache.set(secret, fragments);
    }
    return fragments;
}

/** The pieces of any of `secrets` found in `text`, case-insensitively. */
export function keyLeaks(text: string, secrets: readonly string[]): string[] {
    const folded = text.toLowerCase();
    return secrets.flatMap(fragmentsOf).filter(piece => folded.includes(piece));
}

/** Controls (tab/newline/CR included), DEL and C1, bidi controls, zero-width characters and ANSI escapes. */
export const UNSAFE_TEXT = /[\u0000-\u001f\u007f-\u009f\u061c\u200b-\u200f\u202a-\u202e\u2060-\u2069\ufeff]/u;

/** Every string inside a value, keys included. */
export function stringsOf(value: unknown): string[] {
    if (typeof value === 'string') return [value];
    if (value === null || typeof value !== 'object') return [];
    if (Array.isArray(value)) return value.flatMap(stringsOf);
    return Object.entries(value).flatMap(([key, entry]) => [key, ...stringsOf(entry)]);
}

/** Every string a model could read from a tool result: its text parts and every string of its structuredContent. */
export function resultStrings(result: CallToolResult): string[] {
    return [...result.content.map(part => (part.type === 'text' ? part.text : '')), ...stringsOf(result.structuredContent ?? null)];
}

/** The text of every file under `dir` (a cache directory), recursively. */
export function readTree(dir: string): string {
    const parts: string[] = [];
    for (const name of readdirSync(dir)) {
        const path = join(dir, name);
        const stat = statSync(path);
        if (stat.isDirectory()) parts.push(readTree(path));
        else if (stat.isFile()) parts.push(readFileSync(path, 'utf8'));
    }
    return parts.join('\n');
}
