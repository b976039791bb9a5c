import { createHash, timingSafeEqual } from 'node:crypto';

const digest = (text: string): Buffer => createHash('sha256').update(text, 'utf8').digest();

/** The token of an `Authorization: Bearer <token>` header, or `null`. The scheme is case-insensitive (RFC 7235). */
export function bearerToken(header: string | undefined): string | null {
    const match = /^Bearer[ ]+([^\s]+)[ ]*$/i.exec(header ?? '');
    return match ? match[1]! : null;
}

/**
 * Checks bearer tokens in constant time. Both sides are hashed first, so the comparison always runs over 32 bytes
 * whatever the lengths, and every configured token is compared, so the time says nothing about which one matched.
 */
export class TokenVerifier {
    private readonly digests: Buffer[];

    constructor(tokens: readonly string[]) {
        this.digests = tokens.map(digest);
    }

    /** Whether any token is configured; without one every request is let through (loopback only, checked at start-up). */
    get required(): boolean {
        return this.digests.length > 0;
    }

    /** The matching token's position (an identity for rate limiting and logs that is not the token), or -1. */
    match(token: string | null): number {
        if (token === null) return -1;
        const candidate = digest(token);
        let found = -1;
        this.digests.forEach((known, index) => {
            if (timingSafeEqual(candidate, known) && found < 0) found = index;
        });
        return found;
    }
}
