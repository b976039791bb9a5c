import * as z from 'zod';

/** A configuration mistake: the CLI prints `message` as one line and exits with code 2. */
export class ConfigError extends Error {
    override name = 'ConfigError';
}

/** A whole number within bounds; the messages name the variable (or flag) the value came from. */
export const intIn = (name: string, min: number, max: number) =>
    z.coerce
        .number({ error: `${name} must be a number` })
        .int(`${name} must be a whole number`)
        .min(min, `${name} must be at least ${min}`)
        .max(max, `${name} must be at most ${max}`);

/** `a, b,,c` as `['a', 'b', 'c']`. */
export const splitList = (value: string | undefined): string[] =>
    (value ?? '')
        .split(',')
        .map(item => item.trim())
        .filter(item => item.length > 0);

/** The trimmed value, or `undefined` when unset or blank. */
export const nonEmpty = (value: string | undefined): string | undefined =>
    value === undefined || value.trim() === '' ? undefined : value.trim();

/** `schema`'s result, or a `ConfigError` with its first message. */
export function parse<T>(schema: z.ZodType<T>, value: unknown): T {
    const result = schema.safeParse(value);
    if (!result.success) throw new ConfigError(result.error.issues[0]?.message ?? 'invalid configuration');
    return result.data;
}

/** `1`/`true`/`yes` or `0`/`false`/`no` (any case); unset is off. */
export function parseSwitch(name: string, raw: string | undefined): boolean {
    const value = nonEmpty(raw)?.toLowerCase();
    if (value === undefined || value === '0' || value === 'false' || value === 'no') return false;
    if (value === '1' || value === 'true' || value === 'yes') return true;
    throw new ConfigError(`${name} must be 1 or 0, got "${raw}"`);
}

/**
 * The Claude Desktop bundle maps optional settings to variables with `${user_config.name}`; some client versions pass
 * a setting the user left empty as that placeholder, unresolved (modelcontextprotocol/mcpb#250, #251). Such a value
 * means "not set": a literal placeholder must neither be read as an API key nor fail a number's check.
 */
export function withoutUnfilledPlaceholders(env: NodeJS.ProcessEnv): NodeJS.ProcessEnv {
    const placeholder = /^\$\{user_config\.[A-Za-z0-9_]+\}$/;
    if (!Object.values(env).some(value => value !== undefined && placeholder.test(value.trim()))) return env;
    return Object.fromEntries(Object.entries(env).filter(([, value]) => value === undefined || !placeholder.test(value.trim())));
}
