import { EventEmitter } from 'node:events';
import { describe, expect, it } from 'vitest';
import { StderrLogger, stderrWriter } from '../../src/logger.js';
import { Redactor } from '../../src/redact.js';

/** A stand-in for process.stderr whose pipe breaks on demand, as `2> >(head -c 1)` does. */
class BrokenPipe extends EventEmitter {
    writes: string[] = [];
    writableLength = 0;
    destroyed = false;
    broken = false;

    write(line: string, callback?: (error?: Error | null) => void): boolean {
        if (this.broken) {
            const error = Object.assign(new Error('write EPIPE'), { code: 'EPIPE' });
            // As a pipe does: the callback and an `error` event, asynchronously.
            queueMicrotask(() => {
                callback?.(error);
                this.emit('error', error);
            });
            return false;
        }
        this.writes.push(line);
        callback?.(null);
        return true;
    }
}

describe('finding 2: a logger that survives its pipe', () => {
    it('stops writing to stderr after EPIPE instead of raising an uncaught exception', async () => {
        const pipe = new BrokenPipe();
        const logger = new StderrLogger('debug', new Redactor(), stderrWriter(pipe as unknown as NodeJS.WritableStream));
        logger.info('first');
        pipe.broken = true;
        logger.info('second');
        await Promise.resolve();
        await new Promise(resolve => setImmediate(resolve));
        // The `error` event found a listener (an EventEmitter without one would have thrown here).
        const attempted = pipe.listenerCount('error');
        expect(attempted).toBe(1);
        pipe.broken = false;
        for (let i = 0; i < 1000; i++) logger.error('after the break');
        expect(pipe.writes).toHaveLength(1);
    });

    it('drops lines while a slow reader has over 1 MiB waiting, rather than buffering without bound', () => {
        const pipe = new BrokenPipe();
        const write = stderrWriter(pipe as unknown as NodeJS.WritableStream);
        write('a\n');
        pipe.writableLength = 2 * 1024 * 1024;
        write('b\n');
        pipe.writableLength = 0;
        write('c\n');
        expect(pipe.writes).toEqual(['a\n', 'c\n']);
    });

    it('does not recurse when a sink logs (a failing transport that reports its failure)', () => {
        const lines: string[] = [];
        const logger = new StderrLogger('debug', new Redactor(), line => lines.push(line));
        let sinkCalls = 0;
        logger.addSink(() => {
            sinkCalls += 1;
            logger.error('the sink failed');
        });
        logger.warn('something');
        expect(sinkCalls).toBe(1);
        expect(lines).toHaveLength(1);
    });

    it('survives a writer that throws', () => {
        const logger = new StderrLogger('debug', new Redactor(), () => {
            throw new Error('EPIPE');
        });
        expect(() => logger.error('still fine')).not.toThrow();
    });
});
