import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import * as z from 'zod';
import { date, id, label, number, text } from '../../src/api/fields.js';
import { rowSchema } from '../../src/api/schemas.js';
import { CachedMarketService } from '../../src/cache/cached-market-service.js';
import { CACHE_FILE_NAME } from '../../src/cache/disk-format.js';
import type { MarketServiceOptions } from '../../src/cache/market-service.js';
import { DEFAULT_TTL_SECONDS } from '../../src/cache/ttl.js';
import type { CachedEndpoint } from '../../src/endpoints/endpoint.js';
import { CACHED_ENDPOINTS } from '../../src/endpoints/registry.js';
import { FakeUpstream, type Row } from '../fake-upstream/index.js';
import { clientFor } from '../helpers/client.js';
import { FakeClock } from '../helpers/clock.js';
import { RecordingLogger } from './fakes.js';

/**
 * Adding an endpoint is one record and one fixture. `/sentiment` exists neither upstream nor anywhere in `src/`: the
 * record below and `test/fixtures/made-up/sentiment.json` are all there is of it, and it is read through the real
 * client and the cache with in-flight joining, stale-if-error, counters and persistence, none of which names it.
 */

const Sentiment = z.object({
    tokenId: z.number().int().positive(),
    date: z.string().nullable(),
    score: z.number().nullable(),
    label: z.string().nullable()
});
type Sentiment = z.output<typeof Sentiment>;

/** The one record: path and row fields, parameters, entry keys and schema, TTL class, and how one answer splits per token. */
const SENTIMENT: CachedEndpoint<{ ids: readonly number[] }, Sentiment, number, Sentiment | null, 'sentiment'> = {
    name: 'sentiment',
    row: rowSchema(
        '/sentiment',
        {
            tokenId: id('TOKEN_ID'),
            symbol: label('TOKEN_SYMBOL'),
            date: date('DATE'),
            score: number('SENTIMENT_SCORE'),
            label: text('SENTIMENT_LABEL')
        },
        { all: ['tokenId'] },
        ({ tokenId, date, score, label }): Sentiment => ({ tokenId, date, score, label })
    ),
    key: 'sentiment',
    ttl: 'grades',
    entry: Sentiment.nullable(),
    batch: () => null,
    requests: ({ ids }) => [{ query: { token_id: ids.join(',') }, paged: false }],
    parts: ({ ids }) => [...new Set(ids)].map(tokenId => ({ key: `sentiment:${tokenId}`, part: tokenId })),
    ask: ids => ({ ids }),
    split: (rows, parts) => new Map(parts.map(({ key, part }) => [key, rows.find(row => row.tokenId === part) ?? null])),
    answer: values => values.filter(value => value !== null)
};

const FIXTURE = JSON.parse(readFileSync(new URL('../fixtures/made-up/sentiment.json', import.meta.url), 'utf8')) as { rows: Row[] };
const SECOND = 1000;
const BTC_ETH = { ids: [3375, 3306] };

let fake: FakeUpstream;
let dir: string;

beforeAll(async () => {
    fake = await FakeUpstream.start();
    fake.serve('/sentiment', FIXTURE.rows);
});
afterAll(() => fake.close());
beforeEach(() => {
    fake.reset();
    dir = mkdtempSync(join(tmpdir(), 'registry-test-'));
});
afterEach(() => rmSync(dir, { recursive: true, force: true }));

/** The real client (no retries, so one failure is one request) and a cache built from the registry plus the made-up record. */
function cache(clock: FakeClock, logger = new RecordingLogger(), options: Partial<MarketServiceOptions> = {}): CachedMarketService {
    const { client } = clientFor(fake, { clock, http: { retry: { maxRetries: 0 } } });
    return new CachedMarketService({
        inner: client,
        clock,
        logger,
        endpoints: [...CACHED_ENDPOINTS, SENTIMENT],
        staleMaxAgeSeconds: 24 * 3600,
        batchWindowMs: 0,
        maxEntries: 100,
        cacheDir: null,
        ...options
    });
}

describe('an endpoint added through the registry alone', () => {
    it('joins concurrent reads into one upstream request and serves the stale value when the upstream fails after the TTL', async () => {
        const clock = new FakeClock();
        const logger = new RecordingLogger();
        const service = cache(clock, logger);

        const answers = await Promise.all(Array.from({ length: 5 }, () => service.get(SENTIMENT, BTC_ETH)));
        expect(fake.log('/sentiment')).toEqual(['/sentiment tm-…0001 -> 200']);
        expect(fake.calls[0]!.query).toMatchObject({ token_id: '3375,3306' });
        for (const answer of answers) expect(answer).toEqual(answers[0]);
        expect(answers[0]!.data).toEqual([
            { tokenId: 3375, date: '2025-04-10', score: 61.5, label: 'Positive' },
            { tokenId: 3306, date: '2025-04-10', score: 48.25, label: 'Neutral' }
        ]);
        expect(answers[0]!.staleAgeS).toBeNull();
        expect(service.stats().endpoints.sentiment).toMatchObject({ misses: 2, coalesced: 8, upstreamCalls: 1 });

        clock.advance((DEFAULT_TTL_SECONDS.grades + 1) * SECOND);
        fake.inject({ path: '/sentiment', fault: { kind: 'status', status: 503 } });
        const stale = await service.get(SENTIMENT, BTC_ETH);
        expect(fake.log('/sentiment')).toEqual(['/sentiment tm-…0001 -> 200', '/sentiment tm-…0001 -> 503']);
        expect(stale.data).toEqual(answers[0]!.data);
        expect(stale.staleAgeS).toBe(DEFAULT_TTL_SECONDS.grades + 1);
        expect(service.stats().endpoints.sentiment).toMatchObject({ staleServed: 2, upstreamCalls: 2 });
        expect(logger.warnings.map(line => line.fields)).toEqual([
            expect.objectContaining({ endpoint: 'sentiment', code: 'UPSTREAM_UNAVAILABLE', entries: 2 })
        ]);
    });

    it("keeps its entries across a restart, each checked against the record's schema when read back", async () => {
        const clock = new FakeClock();
        const first = cache(clock, undefined, { cacheDir: dir });
        await first.get(SENTIMENT, BTC_ETH);
        await first.close();
        // A value of the wrong shape on disk (a file is not trusted blindly): that entry is dropped and fetched again.
        const snapshot = join(dir, CACHE_FILE_NAME);
        writeFileSync(snapshot, readFileSync(snapshot, 'utf8').replace('"score":48.25', '"score":"high"'));

        const logger = new RecordingLogger();
        const second = cache(clock, logger, { cacheDir: dir });
        const again = await second.get(SENTIMENT, BTC_ETH);
        expect(again.data.map(row => row.score)).toEqual([61.5, 48.25]);
        expect(fake.calls.map(call => call.query.token_id)).toEqual(['3375,3306', '3306']);
        expect(logger.warnings.map(line => [line.msg, line.fields.kind])).toEqual([
            ['cache file entry ignored: unexpected value shape', 'sentiment']
        ]);
        await second.close();
    });

    it('is refused by a cache that was not built with it', async () => {
        const service = new CachedMarketService({
            inner: clientFor(fake).client,
            clock: new FakeClock(),
            logger: new RecordingLogger(),
            staleMaxAgeSeconds: 0,
            batchWindowMs: 0,
            maxEntries: 10,
            cacheDir: null
        });
        await expect(service.get(SENTIMENT, BTC_ETH)).rejects.toThrow(/not built with the endpoint "sentiment"/);
        expect(fake.count()).toBe(0);
    });
});
