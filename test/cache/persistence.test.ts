import { mkdtempSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { upstreamUnavailable } from '../../src/api/errors.js';
import { CACHE_FILE_NAME, CACHE_FILE_VERSION } from '../../src/cache/persistence.js';
import { FakeClock, FakeMarketData, RecordingLogger } from './fakes.js';
import { harness } from './helpers.js';

const SECOND = 1000;
/** Key-like strings the test puts within reach of the cache: none may reach the file. */
const API_KEYS = ['tm-live-9f2c1111aaaa', 'tm-live-7e3d2222bbbb'];

let root: string;
let dir: string;

beforeEach(() => {
    root = mkdtempSync(join(tmpdir(), 'cache-test-'));
    dir = join(root, 'nested', 'crypto-intel-mcp');
});

afterEach(() => {
    rmSync(root, { recursive: true, force: true });
});

describe('persistent cache', () => {
    it('answers a repeated question after a restart without calling the upstream', async () => {
        const first = harness({ cacheDir: dir });
        await first.service.prices([3375, 3306]);
        await first.service.tokens({ symbols: ['BTC', 'NOPE'] });
        await first.service.tmGrades([3375]);
        await first.service.close();

        const second = harness({ cacheDir: dir }, { clock: first.clock });
        const prices = await second.service.prices([3306, 3375]);
        const tokens = await second.service.tokens({ symbols: ['btc', 'nope'] });
        const grades = await second.service.tmGrades([3375]);
        expect(second.inner.count()).toBe(0);
        expect(prices.data.map(row => row.tokenId)).toEqual([3306, 3375]);
        expect(prices.fetchedAt).toBe(first.clock.now());
        expect(tokens.data.map(row => row.symbol)).toEqual(['BTC']);
        expect(grades.data).toHaveLength(1);
        expect(second.logger.warnings).toEqual([]);
    });

    it('creates an owner-only directory and file, written atomically', async () => {
        const { service } = harness({ cacheDir: dir });
        await service.prices([3375]);
        await service.flush();
        expect(statSync(dir).mode & 0o777).toBe(0o700);
        expect(statSync(join(dir, CACHE_FILE_NAME)).mode & 0o777).toBe(0o600);
        expect(readdirSync(dir)).toEqual([CACHE_FILE_NAME]);
        await service.close();
        await service.close();
    });

    it('does not resurrect expired entries as fresh after a restart, but keeps them as stale candidates', async () => {
        const first = harness({ cacheDir: dir });
        await first.service.prices([3375]);
        await first.service.close();

        const clock = new FakeClock(first.clock.now() + 120 * SECOND);
        const second = harness({ cacheDir: dir }, { clock });
        const refreshed = await second.service.prices([3375]);
        expect(second.inner.count('prices')).toBe(1);
        expect(refreshed.staleAgeS).toBeNull();
        expect(refreshed.fetchedAt).toBe(clock.now());

        const down = new FakeMarketData();
        down.failure = upstreamUnavailable('HTTP 503');
        const fourth = harness({ cacheDir: dir }, { clock: new FakeClock(first.clock.now() + 120 * SECOND), inner: down });
        const stale = await fourth.service.prices([3375]);
        expect(down.count('prices')).toBe(1);
        expect(stale.staleAgeS).toBe(120);
        await Promise.all([second.service.close(), fourth.service.close()]);
    });

    it('writes the file by itself shortly after a change', async () => {
        const { service } = harness({ cacheDir: dir, persistDebounceMs: 1 });
        await service.prices([3375]);
        await vi.waitFor(() => expect(readdirSync(dir)).toEqual([CACHE_FILE_NAME]));
        const second = harness({ cacheDir: dir });
        await second.service.prices([3375]);
        expect(second.inner.count()).toBe(0);
        await service.close();
    });

    it('applies a shortened TTL to entries loaded from disk', async () => {
        const first = harness({ cacheDir: dir });
        await first.service.tmGrades([3375]);
        await first.service.close();
        first.clock.advance(20 * SECOND);
        const second = harness({ cacheDir: dir, ttlSeconds: { grades: 10 } }, { clock: first.clock });
        await second.service.tmGrades([3375]);
        expect(second.inner.count('tmGrades')).toBe(1);
    });

    it('starts empty and logs a warning when the file is corrupt', async () => {
        const first = harness({ cacheDir: dir });
        await first.service.prices([3375]);
        await first.service.close();
        writeFileSync(join(dir, CACHE_FILE_NAME), `{"version":${CACHE_FILE_VERSION},"entries":[{"key":"price:1"`);

        const logger = new RecordingLogger();
        const second = harness({ cacheDir: dir }, { logger });
        expect(logger.warnings.map(line => line.msg)).toEqual([expect.stringContaining('not valid JSON')]);
        expect((await second.service.prices([3375])).data).toHaveLength(1);
        expect(second.inner.count('prices')).toBe(1);
        await second.service.close();
        expect(JSON.parse(readFileSync(join(dir, CACHE_FILE_NAME), 'utf8'))).toMatchObject({ version: CACHE_FILE_VERSION });
    });

    it('ignores a file of another version, and discards each entry whose value fails the domain schema', async () => {
        const path = join(dir, CACHE_FILE_NAME);
        const now = new FakeClock().now();
        const first = harness({ cacheDir: dir });
        await first.service.close();

        writeFileSync(path, JSON.stringify({ version: CACHE_FILE_VERSION - 1, savedAt: now, entries: [] }));
        const wrongVersion = harness({ cacheDir: dir });
        expect(wrongVersion.logger.warnings).toHaveLength(1);

        const times = { fetchedAt: now, expiresAt: now + 60_000 };
        const entries = [
            { key: 'price:1', ...times, value: 'not a price' },
            { key: 'unknown:1', ...times, value: [] },
            // The right outer shape (a list) with the wrong rows inside: it used to fail every later lookup of BTC.
            { key: 'tokens:symbol:BTC', ...times, value: [42] },
            { key: 'price:3', ...times, value: { tokenId: 'three', name: null, symbol: null, priceUsd: 3 } },
            { key: 'price:2', ...times, value: { tokenId: 2, name: 'Two', symbol: 'TWO', priceUsd: 2 } }
        ];
        writeFileSync(path, JSON.stringify({ version: CACHE_FILE_VERSION, savedAt: now, entries }));
        const badValues = harness({ cacheDir: dir });
        expect(badValues.logger.warnings.map(line => line.fields.rejected)).toEqual([4]);
        expect((await badValues.service.prices([2])).data[0]?.priceUsd).toBe(2);
        expect(badValues.inner.count()).toBe(0);
        const btc = await badValues.service.tokens({ symbols: ['BTC'] });
        expect(btc.data.map(row => row.tokenId)).toEqual([3375]);
        expect(badValues.inner.count('tokens')).toBe(1);
    });

    it('writes only domain data: key-like strings near the cache never reach the file', async () => {
        const { service, inner } = harness({ cacheDir: dir });
        await service.prices([3375]);
        await service.tokens({ symbols: ['BTC'] });
        // An upstream error that echoes a key must not be persisted either: errors are never cached.
        inner.failure = upstreamUnavailable(`proxy said: bad key ${API_KEYS[0]}`);
        await expect(service.moonshots('active', 10)).rejects.toMatchObject({ code: 'UPSTREAM_UNAVAILABLE' });
        inner.failure = null;
        await service.dailyOhlcv(3375, 7);
        await service.close();

        const text = readFileSync(join(dir, CACHE_FILE_NAME), 'utf8');
        expect(text).toContain('"price:3375"');
        for (const key of API_KEYS) expect(text).not.toContain(key);
        expect(text).not.toMatch(/tm-live-/);
    });

    it('keeps working in memory when the cache directory cannot be created', async () => {
        const file = join(root, 'a-file');
        writeFileSync(file, 'x');
        const { service, inner, logger } = harness({ cacheDir: join(file, 'sub') });
        expect(logger.warnings).toHaveLength(1);
        await service.prices([1]);
        await service.prices([1]);
        expect(inner.count()).toBe(1);
        await service.close();
    });
});
