/**
 * Last line of defence for secrets: every text we write (logs, errors, tool results) passes through
 * `scrub`, which replaces any registered secret with its fingerprint. Code should never hand a key to
 * a writer in the first place; this catches the case where an upstream echoes one back.
 */
export function fingerprint(secret: string): string {
    return `tm-…${secret.slice(-4)}`;
}

export class Redactor {
    private readonly secrets = new Set<string>();

    register(secret: string): void {
        if (secret.length > 0) this.secrets.add(secret);
    }

    scrub(text: string): string {
        let out = text;
        for (const secret of this.secrets) {
            if (out.includes(secret)) out = out.split(secret).join(fingerprint(secret));
        }
        return out;
    }
}
