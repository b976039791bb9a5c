import type { Dispatcher } from 'undici';

/** The default cap on an upstream body: the largest real page (100 rows) is a few hundred kB. */
export const DEFAULT_MAX_BODY_BYTES = 8 * 1024 * 1024;

/** An upstream body past the cap; the HTTP layer turns it into `answerTooLarge`, which is not retried. */
export class BodyTooLarge extends Error {
    constructor(
        readonly limit: number,
        readonly status: number
    ) {
        super(`upstream body over ${limit} bytes`);
    }
}

/**
 * The body as text, counted while it streams: past `limit` bytes reading stops and the body is destroyed, so a
 * hostile or broken upstream cannot make the process buffer gigabytes (a Content-Length over the cap stops it at once).
 */
export async function readCapped(
    body: Dispatcher.ResponseData['body'],
    status: number,
    contentLength: string | string[] | undefined,
    limit: number
): Promise<string> {
    const declared = Number(Array.isArray(contentLength) ? contentLength[0] : contentLength);
    if (Number.isFinite(declared) && declared > limit) {
        body.destroy();
        throw new BodyTooLarge(limit, status);
    }
    const chunks: Buffer[] = [];
    let size = 0;
    for await (const chunk of body as AsyncIterable<Buffer>) {
        size += chunk.length;
        if (size > limit) {
            body.destroy();
            throw new BodyTooLarge(limit, status);
        }
        chunks.push(chunk);
    }
    // TextDecoder, as undici's text() does: UTF-8, a BOM dropped, bad bytes replaced rather than thrown.
    return new TextDecoder().decode(chunks.length === 1 ? chunks[0] : Buffer.concat(chunks, size));
}
