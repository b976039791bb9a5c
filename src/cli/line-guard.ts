import { Transform, type Readable } from 'node:stream';

/**
 * Passes `source` on a whole line at a time until a line grows past `maxLineBytes`; then gives on the lines before
 * it, drops the rest, and calls `onOverflow` once. The SDK's stdio reader copies its whole buffer at every chunk it
 * gets, which for a long line is quadratic (seconds of CPU for one of 10 MiB, far more on a busy machine): whole
 * lines reach it in one piece instead, and a line it would refuse never reaches it.
 */
export function lineGuard(source: Readable, maxLineBytes: number, onOverflow: () => void): Transform {
    let partial: Buffer[] = [];
    let partialBytes = 0;
    let tripped = false;
    const guard = new Transform({
        transform(chunk: Buffer | string, _encoding, done) {
            if (tripped) return done();
            const bytes = typeof chunk === 'string' ? Buffer.from(chunk) : chunk;
            const lines: Buffer[] = [];
            let start = 0;
            let newline: number;
            while ((newline = bytes.indexOf(10, start)) >= 0) {
                if (partialBytes + newline - start > maxLineBytes) break;
                lines.push(...partial, bytes.subarray(start, newline + 1));
                partial = [];
                partialBytes = 0;
                start = newline + 1;
            }
            if (newline < 0) {
                partialBytes += bytes.length - start;
                if (start < bytes.length) partial.push(bytes.subarray(start));
            }
            if (newline >= 0 || partialBytes > maxLineBytes) {
                tripped = true;
                partial = [];
                onOverflow();
            }
            done(null, lines.length > 0 ? Buffer.concat(lines) : undefined);
        },
        flush(done) {
            // A last line without its newline, as the source ended it.
            done(null, tripped || partial.length === 0 ? undefined : Buffer.concat(partial));
        }
    });
    return source.pipe(guard);
}
