import { PassThrough } from 'node:stream';
import { describe, expect, it } from 'vitest';
import { lineGuard } from '../../src/cli/line-guard.js';

async function through(chunks: string[], maxLineBytes: number): Promise<{ out: string; overflows: number }> {
    const source = new PassThrough();
    let overflows = 0;
    const guard = lineGuard(source, maxLineBytes, () => overflows++);
    let out = '';
    guard.on('data', (chunk: Buffer) => (out += chunk.toString()));
    const ended = new Promise(resolve => guard.once('end', resolve));
    for (const chunk of chunks) source.write(chunk);
    source.end();
    await ended;
    return { out, overflows };
}

describe('the stdin line guard', () => {
    it('passes lines on as they came, however the chunks cut them, up to a line of exactly the limit', async () => {
        const text = `${'a'.repeat(10)}\n${'b'.repeat(3)}\n\n${'c'.repeat(10)}\n${'d'.repeat(7)}`;
        for (let cut = 1; cut < text.length; cut++) {
            expect(await through([text.slice(0, cut), text.slice(cut)], 10)).toEqual({ out: text, overflows: 0 });
        }
    });

    it('gives on the lines before a longer one, then nothing of it or after it, and says so once', async () => {
        for (const chunks of [
            ['ok\nalso ok\n', 'x'.repeat(6), 'x'.repeat(6), '\nnever\n'],
            [`ok\nalso ok\n${'x'.repeat(12)}\nnever\n`],
            ['ok\nalso ok\nxxxx', 'xxxxxxxx', 'xxx\nnever\n']
        ]) {
            expect(await through(chunks, 10)).toEqual({ out: 'ok\nalso ok\n', overflows: 1 });
        }
    });
});
