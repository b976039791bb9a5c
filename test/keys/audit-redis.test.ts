import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { MemoryAudit } from '../../src/audit/audit-log.js';
import { AUDIT_STREAM_KEY, RedisStreamAudit, teeAudit } from '../../src/audit/redis-stream.js';
import { RedisLink } from '../../src/redis/link.js';
import { RedisServer, redisTestsEnabled } from '../helpers/redis-server.js';
import { memoryLogger } from './support.js';

const enabled = redisTestsEnabled();
let redis: RedisServer;
let link: RedisLink;

describe.runIf(enabled)('audit trail in a Redis stream (team deployment)', () => {
    beforeAll(async () => {
        redis = await RedisServer.start();
        link = new RedisLink(redis.url, memoryLogger().logger, {}, 5_000);
        await vi.waitFor(() => expect(link.up).toBe(true), { timeout: 10_000, interval: 20 });
    });
    afterAll(async () => {
        await link?.close();
        await redis?.stop();
    });

    it('appends one capped entry per event, with fingerprints and labels only', async () => {
        const memory = new MemoryAudit();
        const stream = new RedisStreamAudit(link, { maxLen: 3, replica: 'replica-a' });
        const audit = teeAudit(memory, stream, null);
        const at = Date.parse('2026-11-25T12:00:00Z');
        for (let i = 0; i < 5; i++)
            audit.record({ event: 'first-used', fingerprint: `tm-…000${i}`, label: `k${i}`, source: 'key file' }, at + i);
        audit.record({ event: 'quota-warning', fingerprint: null, label: null, used: 80, quota: 100 }, at + 10);
        expect(memory.events).toHaveLength(6);
        const entries = await vi.waitFor(
            async () => {
                const read = (await link.client.xrange(AUDIT_STREAM_KEY, '-', '+')) as Array<[string, string[]]>;
                expect(read.at(-1)?.[1]).toContain('quota-warning');
                return read;
            },
            { timeout: 5_000, interval: 20 }
        );
        expect(entries).toHaveLength(3);
        const fields = entries.map(([, flat]) =>
            Object.fromEntries(flat.flatMap((value, i) => (i % 2 === 0 ? [[value, flat[i + 1]]] : [])))
        );
        expect(fields.map(entry => [entry.event, entry.fingerprint, entry.label])).toEqual([
            ['first-used', 'tm-…0003', 'k3'],
            ['first-used', 'tm-…0004', 'k4'],
            ['quota-warning', '', '']
        ]);
        expect(fields[0]).toMatchObject({ time: '2026-11-25T12:00:00.003Z', replica: 'replica-a', facts: '{"source":"key file"}' });
        expect(JSON.parse(fields[2]!.facts!)).toEqual({ used: 80, quota: 100 });
    });

    it('drops an event quietly while Redis is down', async () => {
        const down = new RedisStreamAudit({ run: async (_command, fallback) => fallback });
        expect(() => down.record({ event: 'loaded', fingerprint: 'tm-…abcd', label: null }, 0)).not.toThrow();
    });
});
