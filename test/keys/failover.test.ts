import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { isUpstreamError } from '../../src/api/errors.js';
import { FakeUpstream } from '../fake-upstream/index.js';
import { managedClient, memoryLogger, rejection, tempKeyFile, type ManagedClient, type TempKeyFile } from './support.js';
import { PRICES, TM_GRADES, TOKENS } from '../../src/endpoints/registry.js';

const K1 = 'tm-failover-revoked-k001';
const K2 = 'tm-failover-limited-k002';
const K3 = 'tm-failover-good-k003';
const fp = (key: string) => `tm-…${key.slice(-4)}`;
const KEY_VARIABLES = ['TOKEN_METRICS_API_KEY', 'TOKEN_METRICS_API_KEYS', 'TOKEN_METRICS_API_KEY_FILE'];

let fake: FakeUpstream;
const open: Array<ManagedClient | TempKeyFile> = [];

beforeAll(async () => {
    fake = await FakeUpstream.start();
});
afterAll(async () => {
    await fake.close();
});
afterEach(async () => {
    for (const item of open.splice(0)) {
        if ('cleanup' in item) item.cleanup();
        else await item.close();
    }
    fake.reset();
});

function track<T extends ManagedClient | TempKeyFile>(item: T): T {
    open.push(item);
    return item;
}

describe('key failover through the real client', () => {
    it('moves past a revoked and a rate-limited key in one call, then goes straight to the good key', async () => {
        const { client } = track(managedClient(fake, { envKeys: [K1, K2, K3] }));
        fake.revoke(K1);
        fake.inject({ fault: { kind: 'rate-limit', retryAfter: '30' }, key: K2 });

        const prices = await client.get(PRICES, { ids: [3375] });
        expect(prices.map(price => price.tokenId)).toEqual([3375]);
        expect(fake.log()).toEqual([`/price ${fp(K1)} -> 401`, `/price ${fp(K2)} -> 429`, `/price ${fp(K3)} -> 200`]);

        await client.get(PRICES, { ids: [3306] });
        // K1 stays out (revoked) and K2 sits out its 30 s: one request, on K3.
        expect(fake.log().slice(3)).toEqual([`/price ${fp(K3)} -> 200`]);
    });

    it('rotates keys through the key file with no failed call, after which only the new key is used', async () => {
        const OLD = 'tm-rotation-old-0ld1';
        const NEW = 'tm-rotation-new-new2';
        const file = track(tempKeyFile([OLD]));
        const { client, clock } = track(managedClient(fake, { keyFile: file.path, recheckMs: 1_000 }));
        const failures: unknown[] = [];
        let rotatedAt = -1;

        // 20 rounds of 3 concurrent calls; the clock moves 250 ms a round, so the file is looked at every 4 rounds.
        for (let round = 0; round < 20; round++) {
            if (round === 5) file.write([OLD, NEW]);
            if (round === 10) {
                file.replace([NEW]);
                // Revoked before the manager has seen the new file: the 401 itself makes it look.
                fake.revoke(OLD);
                rotatedAt = fake.calls.length;
            }
            const results = await Promise.allSettled([
                client.get(PRICES, { ids: [3375] }),
                client.get(PRICES, { ids: [3306] }),
                client.get(PRICES, { ids: [3375, 3306] })
            ]);
            for (const result of results) if (result.status === 'rejected') failures.push(result.reason);
            clock.advance(250);
        }

        expect(failures).toEqual([]);
        const after = fake.calls.slice(rotatedAt);
        const settled = after.slice(after.findIndex(call => call.key === NEW && call.status === 200) + 3);
        expect(settled.length).toBeGreaterThan(20);
        expect(new Set(settled.map(call => call.key))).toEqual(new Set([NEW]));
        expect(after.filter(call => call.key === OLD).every(call => call.status === 401)).toBe(true);
        expect(fake.calls.slice(0, rotatedAt).some(call => call.key === NEW)).toBe(false); // OLD stays first until it is gone
    });

    it('says AUTH_REVOKED, naming every key variable and no key, when every key is revoked', async () => {
        const keys = ['tm-all-revoked-r001', 'tm-all-revoked-r002', 'tm-all-revoked-r003'];
        const file = track(tempKeyFile([keys[2]!]));
        const { client } = track(managedClient(fake, { envKeys: keys.slice(0, 2), keyFile: file.path }));
        for (const key of keys) fake.revoke(key);
        const error = await rejection(client.get(PRICES, { ids: [3375] }));
        expect(isUpstreamError(error) && error.code).toBe('AUTH_REVOKED');
        const text = isUpstreamError(error) ? error.userMessage : '';
        for (const variable of KEY_VARIABLES) expect(text).toContain(variable);
        for (const key of keys) expect(`${text} ${error.stack} ${JSON.stringify(error)}`).not.toContain(key);
        expect(error.message).toContain('tm-…r001, tm-…r002, tm-…r003');
        expect(fake.log()).toEqual(keys.map(key => `/price ${fp(key)} -> 401`));
    });

    it('says NO_API_KEY, naming every key variable, when no key is configured, without calling the upstream', async () => {
        const { client } = track(managedClient(fake, { keyFile: null }));
        const error = await rejection(client.get(PRICES, { ids: [3375] }));
        expect(isUpstreamError(error) && error.code).toBe('NO_API_KEY');
        const text = isUpstreamError(error) ? error.userMessage : '';
        for (const variable of KEY_VARIABLES) expect(text).toContain(variable);
        expect(fake.count()).toBe(0);
    });

    it('sends keys only in the x-api-key header, never in the URL', async () => {
        const log = memoryLogger('debug');
        const [A, B] = ['tm-header-only-h001', 'tm-header-only-h002'];
        const { client } = track(managedClient(fake, { envKeys: [A, B], logger: log.logger }));
        fake.inject({ fault: { kind: 'rate-limit', retryAfter: '5' }, key: A, times: 1 });
        await client.get(PRICES, { ids: [3375, 3306] });
        await client.get(TOKENS, { symbols: ['BTC'] });
        await client.get(TM_GRADES, { ids: [3375] });
        expect(fake.calls.length).toBeGreaterThanOrEqual(4);
        for (const call of fake.calls) {
            expect(call.key === A || call.key === B).toBe(true);
            for (const key of [A, B]) {
                expect(call.rawQuery).not.toContain(key);
                expect(call.rawQuery).not.toContain(key.slice(3));
                expect(Object.values(call.query).join(' ')).not.toContain(key);
            }
        }
        expect(log.text()).toContain('tm-…h001');
        expect(log.text()).not.toContain('header-only');
    });
});

describe('keys outside their dates', () => {
    it('says no key is valid today, naming the dates, instead of calling the keys rejected', async () => {
        const file = tempKeyFile(['tm-Xy7Kq2Wb9Lc4-e1e1 expires=2026-11-01', 'tm-Mn3Rt8Pv1Zd6-f1f1 not-before=2027-01-01']);
        try {
            const { client, close } = managedClient(fake, { keyFile: file.path });
            try {
                fake.reset();
                const error = await rejection(client.get(PRICES, { ids: [3375] }));
                expect(error).toMatchObject({
                    code: 'NO_API_KEY',
                    message: expect.stringContaining('No configured Token Metrics API key is valid today')
                });
                expect(String(error.message)).toContain('tm-…e1e1, tm-…f1f1');
                expect(String(error.hint)).toMatch(/crypto-intel-mcp keys/);
                expect(fake.count()).toBe(0);
            } finally {
                await close();
            }
        } finally {
            file.cleanup();
        }
    });
});
