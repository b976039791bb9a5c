/**
 * Upstream text is untrusted: anyone can launch a token and name it, and the name goes into a model's context. A
 * newline, a right-to-left override, a terminal escape or an invisible tag character in a name is a prompt-injection
 * route (or a way to make a table lie), so every string read from the upstream is cleaned here before it is used.
 */

/** Longest token name or symbol kept; longer ones are cut with `…`. */
export const MAX_NAME_CHARS = 64;
/** Longest other text (a grade label, an upstream error message) kept. */
export const MAX_TEXT_CHARS = 200;

/** ANSI escape sequences: CSI (`ESC [ … final`), OSC (`ESC ] … BEL|ST`), and two-character escapes. */
const ANSI = /\u001b(?:\[[0-?]*[ -/]*[@-~]?|\][^\u0007\u001b]*(?:\u0007|\u001b\\)?|[@-Z\\-_])|\u009b[0-?]*[ -/]*[@-~]?/g;
/**
 * Removed outright: C0 and C1 controls (not tab/newline/CR, which become spaces), DEL, zero-width characters and
 * joiners, bidi marks, embeddings, overrides and isolates (U+200E/F, U+202A–202E, U+2066–2069, U+061C), the BOM,
 * interlinear annotation marks, lone surrogates and Unicode tag characters (invisible text).
 */
const INVISIBLE =
    /[\u0000-\u0008\u000b\u000c\u000e-\u001f\u007f-\u009f\u00ad\u061c\u180e\u200b-\u200f\u202a-\u202e\u2060-\u206f\ufeff\ufff9-\ufffb]|\p{Cs}|[\u{e0000}-\u{e007f}]/gu;
const SPACES = /\s+/g;

/**
 * `raw` without escapes, controls and invisible characters, whitespace (newlines included) collapsed to one space,
 * trimmed. No length bound: see `boundText`.
 */
export function cleanText(raw: string): string {
    return raw.replace(ANSI, '').replace(INVISIBLE, '').replace(SPACES, ' ').trim();
}

/** `text` cut to at most `max` characters (the last one `…` when cut), never inside a surrogate pair. */
export function boundText(text: string, max: number): string {
    if (text.length <= max) return text;
    let end = Math.max(0, max - 1);
    const last = text.charCodeAt(end - 1);
    if (last >= 0xd800 && last <= 0xdbff) end -= 1;
    return `${text.slice(0, end)}…`;
}

/** `cleanText`, then `boundText`. */
export function cleanUpstreamText(raw: string, max: number = MAX_TEXT_CHARS): string {
    return boundText(cleanText(raw), max);
}
