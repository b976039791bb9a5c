import type { IncomingMessage } from 'node:http';

export type BodyResult = { ok: true; text: string } | { ok: false; status: 413 };

/**
 * Reads a request body up to `limit` bytes. A declared `Content-Length` over the limit is refused before a byte is
 * read; a body that grows past it while streaming is refused as soon as it does. The rest is then read and dropped
 * rather than the socket destroyed, so the client gets to read the 413 (the server's `requestTimeout` bounds a
 * client that never stops sending). Rejects when the client goes away mid-body.
 */
export function readBody(req: IncomingMessage, limit: number): Promise<BodyResult> {
    const declared = Number(req.headers['content-length']);
    if (Number.isFinite(declared) && declared > limit) {
        req.resume();
        return Promise.resolve({ ok: false, status: 413 });
    }
    return new Promise((resolve, reject) => {
        const chunks: Buffer[] = [];
        let size = 0;
        const finish = (outcome: () => void): void => {
            req.off('data', onData);
            req.off('end', onEnd);
            req.off('error', onError);
            req.off('close', onClose);
            outcome();
        };
        const onData = (chunk: Buffer): void => {
            size += chunk.length;
            if (size <= limit) return void chunks.push(chunk);
            finish(() => resolve({ ok: false, status: 413 }));
            // Still flowing with no 'data' listener: what is left is read and dropped.
            req.resume();
        };
        const onEnd = (): void => finish(() => resolve({ ok: true, text: Buffer.concat(chunks).toString('utf8') }));
        const onError = (error: Error): void => finish(() => reject(error));
        const onClose = (): void => finish(() => reject(new Error('the client closed the connection before sending the whole body')));
        req.on('data', onData);
        req.on('end', onEnd);
        req.on('error', onError);
        req.on('close', onClose);
    });
}
