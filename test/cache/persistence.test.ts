import { execFileSync } from 'node:child_process';
import { mkdtempSync, readdirSync, readFileSync, rmSync, statSync, symlinkSync, truncateSync, utimesSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { upstreamUnavailable } from '../../src/api/errors.js';
import { MAX_CACHE_FILE_BYTES } from '../../src/cache/files.js';
import { processAlive } from '../../src/cache/lock.js';
import { CACHE_FILE_NAME, CACHE_FILE_VERSION, JOURNAL_PREFIX, LOCK_FILE_NAME } from '../../src/cache/disk-format.js';
import { DEFAULT_PERSIST_DELAY_MS } from '../../src/cache/persistence.js';
import { FakeClock, FakeMarketData, RecordingLogger } from './fakes.js';
import { harness as openHarness } from './helpers.js';
import { DAILY_OHLCV, MOONSHOTS, PRICES, TM_GRADES, TOKENS } from '../../src/endpoints/registry.js';

const SECOND = 1000;
/** Key-like strings the test puts within reach of the cache: none may reach the file. */
const API_KEYS = ['tm-live-9f2c1111aaaa', 'tm-live-7e3d2222bbbb'];
const SNAPSHOT_HEADER = JSON.stringify({ version: CACHE_FILE_VERSION, kind: 'snapshot' });

let root: string;
let dir: string;
/** Every service a test opens is closed after it (as a process would be), so no journal is left open. */
let opened: Array<{ close(): Promise<void> }> = [];
const harness = (...args: Parameters<typeof openHarness>): ReturnType<typeof openHarness> => {
    const made = openHarness(...args);
    opened.push(made.service);
    return made;
};

beforeEach(() => {
    root = mkdtempSync(join(tmpdir(), 'cache-test-'));
    dir = join(root, 'nested', 'crypto-intel-mcp');
});

afterEach(async () => {
    await Promise.all(opened.map(service => service.close()));
    opened = [];
    rmSync(root, { recursive: true, force: true });
});

const journals = (): string[] => readdirSync(dir).filter(name => name.startsWith(JOURNAL_PREFIX));
const snapshotLines = (): string[] =>
    readFileSync(join(dir, CACHE_FILE_NAME), 'utf8')
        .split('\n')
        .filter(line => line.length > 0);
/** The key of an entry line (`<meta JSON>\t<value JSON>`). */
const keyOf = (line: string): string => (JSON.parse(line.slice(0, line.indexOf('\t'))) as { key: string }).key;
const ids = (from: number, count: number): number[] => Array.from({ length: count }, (_, i) => from + i);
/** A pid no process runs under, for journals and locks "left by a process that died". */
function deadPid(): number {
    for (let pid = 4_194_000; ; pid--) if (!processAlive(pid)) return pid;
}
const raceWithTimer = <T>(promise: Promise<T>, ms: number): Promise<T | 'still waiting'> =>
    Promise.race([promise, new Promise<'still waiting'>(resolve => setTimeout(() => resolve('still waiting'), ms).unref())]);

describe('persistent cache', () => {
    it('answers a repeated question after a restart without calling the upstream', async () => {
        const first = harness({ cacheDir: dir });
        await first.service.get(PRICES, { ids: [3375, 3306] });
        await first.service.get(TOKENS, { symbols: ['BTC', 'NOPE'] });
        await first.service.get(TM_GRADES, { ids: [3375] });
        await first.service.close();

        const second = harness({ cacheDir: dir }, { clock: first.clock });
        const prices = await second.service.get(PRICES, { ids: [3306, 3375] });
        const tokens = await second.service.get(TOKENS, { symbols: ['btc', 'nope'] });
        const grades = await second.service.get(TM_GRADES, { ids: [3375] });
        expect(second.inner.count()).toBe(0);
        expect(prices.data.map(row => row.tokenId)).toEqual([3306, 3375]);
        expect(prices.fetchedAt).toBe(first.clock.now());
        expect(tokens.data.map(row => row.symbol)).toEqual(['BTC']);
        expect(grades.data).toHaveLength(1);
        expect(second.logger.warnings).toEqual([]);
    });

    it('creates an owner-only directory and journal, and leaves one owner-only snapshot after close', async () => {
        const { service } = harness({ cacheDir: dir });
        await service.get(PRICES, { ids: [3375] });
        await service.flush();
        expect(statSync(dir).mode & 0o777).toBe(0o700);
        expect(journals()).toHaveLength(1);
        expect(statSync(join(dir, journals()[0]!)).mode & 0o777).toBe(0o600);
        await service.close();
        await service.close();
        expect(readdirSync(dir)).toEqual([CACHE_FILE_NAME]);
        expect(statSync(join(dir, CACHE_FILE_NAME)).mode & 0o777).toBe(0o600);
        expect(JSON.parse(snapshotLines()[0]!)).toMatchObject({ version: CACHE_FILE_VERSION, kind: 'snapshot' });
    });

    it('does not resurrect expired entries as fresh after a restart, but keeps them as stale candidates', async () => {
        const first = harness({ cacheDir: dir });
        await first.service.get(PRICES, { ids: [3375] });
        await first.service.close();

        const clock = new FakeClock(first.clock.now() + 120 * SECOND);
        const second = harness({ cacheDir: dir }, { clock });
        const refreshed = await second.service.get(PRICES, { ids: [3375] });
        expect(second.inner.count('prices')).toBe(1);
        expect(refreshed.staleAgeS).toBeNull();
        expect(refreshed.fetchedAt).toBe(clock.now());

        const down = new FakeMarketData();
        down.failure = upstreamUnavailable('HTTP 503');
        const fourth = harness({ cacheDir: dir }, { clock: new FakeClock(first.clock.now() + 120 * SECOND), inner: down });
        const stale = await fourth.service.get(PRICES, { ids: [3375] });
        expect(down.count('prices')).toBe(1);
        expect(stale.staleAgeS).toBe(120);
        await Promise.all([second.service.close(), fourth.service.close()]);
    });

    it('appends a change by itself within the persist delay: a new instance reads it without close() (a crash loses nothing older)', async () => {
        expect(DEFAULT_PERSIST_DELAY_MS).toBeLessThanOrEqual(1000);
        const { service } = harness({ cacheDir: dir, persistDebounceMs: 1 });
        await service.get(PRICES, { ids: [3375] });
        await vi.waitFor(() => expect(journals().some(name => readFileSync(join(dir, name), 'utf8').includes('"price:3375"'))).toBe(true));
        // No flush, no close: as after a crash.
        const second = harness({ cacheDir: dir });
        await second.service.get(PRICES, { ids: [3375] });
        expect(second.inner.count()).toBe(0);
        await Promise.all([service.close(), second.service.close()]);
    });

    it('appends only what changed, never rewriting what is on disk', async () => {
        const { service } = harness({ cacheDir: dir });
        await service.get(PRICES, { ids: ids(1, 50) });
        await service.flush();
        const [journal] = journals();
        const before = readFileSync(join(dir, journal!), 'utf8');
        await service.get(PRICES, { ids: [3375] });
        await service.flush();
        const after = readFileSync(join(dir, journal!), 'utf8');
        expect(after.startsWith(before)).toBe(true);
        expect(after.slice(before.length).trim().split('\n').map(keyOf)).toEqual(['price:3375']);
        await service.close();
    });

    it('applies a shortened TTL to entries loaded from disk', async () => {
        const first = harness({ cacheDir: dir });
        await first.service.get(TM_GRADES, { ids: [3375] });
        await first.service.close();
        first.clock.advance(20 * SECOND);
        const second = harness({ cacheDir: dir, ttlSeconds: { grades: 10 } }, { clock: first.clock });
        await second.service.get(TM_GRADES, { ids: [3375] });
        expect(second.inner.count('tmGrades')).toBe(1);
    });

    it('starts empty and logs a warning when the file is corrupt', async () => {
        const first = harness({ cacheDir: dir });
        await first.service.get(PRICES, { ids: [3375] });
        await first.service.close();
        writeFileSync(join(dir, CACHE_FILE_NAME), `{"version":${CACHE_FILE_VERSION},"entries":[{"key":"price:1"`);

        const logger = new RecordingLogger();
        const second = harness({ cacheDir: dir }, { logger });
        await second.service.restore();
        expect(logger.warnings.map(line => line.msg)).toEqual([expect.stringContaining('not valid JSON')]);
        expect((await second.service.get(PRICES, { ids: [3375] })).data).toHaveLength(1);
        expect(second.inner.count('prices')).toBe(1);
        await second.service.close();
        expect(JSON.parse(snapshotLines()[0]!)).toMatchObject({ version: CACHE_FILE_VERSION });
    });

    it('skips a line cut short by a crash, keeping every line before it', async () => {
        const first = harness({ cacheDir: dir });
        await first.service.get(PRICES, { ids: [1, 2] });
        await first.service.flush();
        const [journal] = journals();
        writeFileSync(join(dir, journal!), `${readFileSync(join(dir, journal!), 'utf8')}{"key":"price:3","fetchedAt":`);
        const second = harness({ cacheDir: dir }, { clock: first.clock });
        await second.service.get(PRICES, { ids: [1, 2] });
        expect(second.inner.count()).toBe(0);
        expect(second.logger.warnings).toEqual([]);
        await Promise.all([first.service.close(), second.service.close()]);
    });

    it('ignores a file of another version, and discards each entry whose value fails the domain schema', async () => {
        const path = join(dir, CACHE_FILE_NAME);
        const now = new FakeClock().now();
        const first = harness({ cacheDir: dir });
        // The restore makes the directory.
        await first.service.restore();
        await first.service.close();

        writeFileSync(path, `${JSON.stringify({ version: CACHE_FILE_VERSION - 1, kind: 'snapshot' })}\n`);
        const wrongVersion = harness({ cacheDir: dir });
        await wrongVersion.service.restore();
        expect(wrongVersion.logger.warnings.map(line => line.msg)).toEqual([expect.stringContaining('unknown version')]);

        const times = { fetchedAt: now, expiresAt: now + 60_000 };
        const entries = [
            { key: 'price:1', ...times, value: 'not a price' },
            { key: 'unknown:1', ...times, value: [] },
            // The right outer shape (a list) with the wrong rows inside: it used to fail every later lookup of BTC.
            { key: 'tokens:symbol:BTC', ...times, value: [42] },
            { key: 'price:3', ...times, value: { tokenId: 'three', name: null, symbol: null, priceUsd: 3 } },
            { key: 'price:2', ...times, value: { tokenId: 2, name: 'Two', symbol: 'TWO', priceUsd: 2 } }
        ];
        const line = ({ value, ...meta }: (typeof entries)[number]): string => `${JSON.stringify(meta)}\t${JSON.stringify(value)}`;
        writeFileSync(path, [SNAPSHOT_HEADER, ...entries.map(line), '{"key":"price:4"}\tnot json', 'no tab at all'].join('\n') + '\n');
        const badValues = harness({ cacheDir: dir });
        await badValues.service.restore();
        // Lines that are not entries, and keys of no known kind, are dropped as the file is read.
        expect(badValues.logger.warnings.map(line => line.fields)).toEqual([
            expect.objectContaining({ lines: 2 }),
            expect.objectContaining({ rejected: 1 })
        ]);
        expect((await badValues.service.get(PRICES, { ids: [2] })).data[0]?.priceUsd).toBe(2);
        expect(badValues.inner.count()).toBe(0);
        // Values are checked against the domain schema when first used: those that fail are dropped and refetched.
        const btc = await badValues.service.get(TOKENS, { symbols: ['BTC'] });
        expect(btc.data.map(row => row.tokenId)).toEqual([3375]);
        expect(badValues.inner.count('tokens')).toBe(1);
        expect((await badValues.service.get(PRICES, { ids: [1, 3] })).data.map(row => row.priceUsd)).toEqual([0.01, 0.03]);
        expect(badValues.inner.count('prices')).toBe(1);
        expect(badValues.logger.warnings.slice(2).map(line => [line.msg, line.fields.kind])).toEqual([
            [expect.stringContaining('unexpected value shape'), 'tokens'],
            [expect.stringContaining('unexpected value shape'), 'price'],
            [expect.stringContaining('unexpected value shape'), 'price']
        ]);
    });

    it('writes only domain data: key-like strings near the cache never reach the files', async () => {
        const { service, inner } = harness({ cacheDir: dir });
        await service.get(PRICES, { ids: [3375] });
        await service.get(TOKENS, { symbols: ['BTC'] });
        // An upstream error that echoes a key must not be persisted either: errors are never cached.
        inner.failure = upstreamUnavailable(`proxy said: bad key ${API_KEYS[0]}`);
        await expect(service.get(MOONSHOTS, { type: 'active', limit: 10 })).rejects.toMatchObject({ code: 'UPSTREAM_UNAVAILABLE' });
        inner.failure = null;
        await service.get(DAILY_OHLCV, { id: 3375, days: 7 });
        await service.flush();
        const journalText = readFileSync(join(dir, journals()[0]!), 'utf8');
        await service.close();

        for (const text of [journalText, readFileSync(join(dir, CACHE_FILE_NAME), 'utf8')]) {
            expect(text).toContain('"price:3375"');
            for (const key of API_KEYS) expect(text).not.toContain(key);
            expect(text).not.toMatch(/tm-live-/);
        }
    });

    it('keeps working in memory when the cache directory cannot be created', async () => {
        const file = join(root, 'a-file');
        writeFileSync(file, 'x');
        const { service, inner, logger } = harness({ cacheDir: join(file, 'sub') });
        await service.restore();
        expect(logger.warnings).toHaveLength(1);
        await service.get(PRICES, { ids: [1] });
        await service.get(PRICES, { ids: [1] });
        expect(inner.count()).toBe(1);
        await service.close();
        expect(logger.warnings).toHaveLength(1);
    });
});

describe('start-up', () => {
    it('reads nothing at construction: a call waits for the restore and is answered from disk', async () => {
        const first = harness({ cacheDir: dir });
        await first.service.get(PRICES, { ids: ids(1, 200) });
        await first.service.close();

        const second = harness({ cacheDir: dir }, { clock: first.clock });
        // Construction returned before anything was read: the store is still empty.
        expect(second.service.stats().entries).toBe(0);
        const answer = await second.service.get(PRICES, { ids: [7, 150] });
        expect(answer.data.map(row => row.tokenId)).toEqual([7, 150]);
        expect(second.inner.count()).toBe(0);
        expect(second.service.stats().entries).toBe(200);
    });

    it('reads nothing until asked: not while the client shakes hands, and not at all for a process that gets no call', async () => {
        const first = harness({ cacheDir: dir });
        await first.service.get(PRICES, { ids: ids(1, 200) });
        await first.service.close();
        const files = (): Array<[string, number]> => readdirSync(dir).map(name => [name, statSync(join(dir, name)).mtimeMs]);
        const before = files();

        // A server that closes without a call (or a restore asked for) reads nothing and rewrites nothing.
        const idle = harness({ cacheDir: dir }, { clock: first.clock });
        for (let turn = 0; turn < 20; turn++) await new Promise(resolve => setImmediate(resolve));
        expect(idle.service.stats().entries).toBe(0);
        await idle.service.close();
        expect(files()).toEqual(before);

        // The server asks when the client has initialized (server.ts): then the files are read.
        const second = harness({ cacheDir: dir }, { clock: first.clock });
        for (let turn = 0; turn < 20; turn++) await new Promise(resolve => setImmediate(resolve));
        expect(second.service.stats().entries).toBe(0);
        await second.service.restore();
        expect(second.service.stats().entries).toBe(200);
        expect((await second.service.get(PRICES, { ids: [7] })).data[0]?.tokenId).toBe(7);
        expect(second.inner.count()).toBe(0);
    });

    it.skipIf(process.platform === 'win32')(
        'skips a link to /dev/zero and a FIFO in place of cache files with a warning, without blocking',
        async () => {
            const first = harness({ cacheDir: dir });
            await first.service.get(PRICES, { ids: [3375] });
            await first.service.flush();
            const [journal] = journals();
            rmSync(join(dir, journal!));
            symlinkSync('/dev/zero', join(dir, CACHE_FILE_NAME));
            execFileSync('mkfifo', [join(dir, journal!)]);

            const second = harness({ cacheDir: dir }, { clock: first.clock });
            expect(await raceWithTimer(second.service.restore(), 5_000)).toBeUndefined();
            expect(second.logger.warnings.map(line => line.msg)).toEqual([
                expect.stringContaining('not a regular file'),
                expect.stringContaining('not a regular file')
            ]);
            expect((await second.service.get(PRICES, { ids: [3375] })).data).toHaveLength(1);
            expect(second.inner.count()).toBe(1);
            // The compaction at close replaces the link with a snapshot and leaves the FIFO (a live process's name) alone.
            await Promise.all([first.service.close(), second.service.close()]);
            expect(statSync(join(dir, CACHE_FILE_NAME)).isFile()).toBe(true);
        }
    );

    it('ignores a cache file larger than the cap with a warning', async () => {
        const first = harness({ cacheDir: dir });
        await first.service.get(PRICES, { ids: [3375] });
        await first.service.close();
        // Sparse: takes no disk space, reads as zeros.
        truncateSync(join(dir, CACHE_FILE_NAME), MAX_CACHE_FILE_BYTES + 1);

        const second = harness({ cacheDir: dir }, { clock: first.clock });
        await second.service.get(PRICES, { ids: [3375] });
        expect(second.inner.count()).toBe(1);
        expect(second.logger.warnings).toEqual([
            expect.objectContaining({
                msg: expect.stringContaining('larger than the cap'),
                fields: expect.objectContaining({ bytes: MAX_CACHE_FILE_BYTES + 1 })
            })
        ]);
    });
});

/** Two servers on one cache directory and one clock (Claude Desktop's and Cursor's), by default both restored. */
async function twoServers({ ready = true } = {}): Promise<{
    clock: FakeClock;
    a: ReturnType<typeof harness>;
    b: ReturnType<typeof harness>;
}> {
    const clock = new FakeClock();
    const a = harness({ cacheDir: dir }, { clock });
    const b = harness({ cacheDir: dir }, { clock });
    if (ready) await Promise.all([a.service.restore(), b.service.restore()]);
    return { clock, a, b };
}

describe('several processes on one cache directory', () => {
    it("loses neither process's entries when two write different keys at once: a third sees both sets", async () => {
        const { clock, a, b } = await twoServers({ ready: false });
        for (let round = 0; round < 5; round++) {
            await Promise.all([
                a.service.get(PRICES, { ids: ids(1000 + round * 20, 20) }),
                b.service.get(PRICES, { ids: ids(2000 + round * 20, 20) }),
                a.service.flush(),
                b.service.flush()
            ]);
        }
        await Promise.all([a.service.get(TM_GRADES, { ids: ids(1, 10) }), b.service.get(TM_GRADES, { ids: ids(11, 10) })]);
        // Both close at once: one compacts, the other finds the lock taken and leaves its journal.
        await Promise.all([a.service.close(), b.service.close()]);

        const c = harness({ cacheDir: dir }, { clock });
        await c.service.get(PRICES, { ids: [...ids(1000, 100), ...ids(2000, 100)] });
        await c.service.get(TM_GRADES, { ids: ids(1, 20) });
        expect(c.inner.count()).toBe(0);
        expect(c.logger.warnings).toEqual([]);
        expect(readdirSync(dir)).not.toContain(LOCK_FILE_NAME);
    });

    it("answers from what another live process fetched after its own start: it reads that process's journal first", async () => {
        const { clock, a, b } = await twoServers();
        const first = await a.service.get(PRICES, { ids: [1, 2] });
        await a.service.flush();
        const again = await b.service.get(PRICES, { ids: [1, 2] });
        expect(b.inner.count()).toBe(0);
        expect(again.data).toEqual(first.data);

        // Read on from where it stopped: only what is new, and only once it is a whole line.
        clock.advance(SECOND);
        await a.service.get(PRICES, { ids: [3] });
        await a.service.flush();
        const [journal] = readdirSync(dir).filter(name => name.startsWith(JOURNAL_PREFIX));
        const path = join(dir, journal!);
        const whole = readFileSync(path, 'utf8');
        const cut = whole.lastIndexOf('\n', whole.length - 2) + 20;
        // The last line as another process is writing it: half of it on disk so far.
        writeFileSync(path, whole.slice(0, cut));
        clock.advance(SECOND);
        await b.service.get(PRICES, { ids: [4] });
        expect(b.inner.calls.map(call => call.params)).toEqual([{ ids: [4] }]);
        // Now whole: the line is read then, not lost for having been seen in part.
        writeFileSync(path, whole);
        clock.advance(SECOND);
        await b.service.get(PRICES, { ids: [3] });
        expect(b.inner.count()).toBe(1);
        expect(b.service.stats().entries).toBe(4);
        expect(b.logger.warnings).toEqual([]);
    });

    it('answers from what another process folded into the snapshot when it closed, though its journal is gone', async () => {
        const { a, b } = await twoServers();
        const first = await a.service.get(PRICES, { ids: [1, 2] });
        await a.service.close();
        // a's compaction folded its journal into the snapshot and deleted it: no journal holds these entries.
        expect(journals()).toEqual([]);
        expect(snapshotLines().slice(1).map(keyOf).sort()).toEqual(['price:1', 'price:2']);

        const again = await b.service.get(PRICES, { ids: [1, 2] });
        expect(b.inner.count()).toBe(0);
        expect(again.data).toEqual(first.data);
        expect(b.logger.warnings).toEqual([]);
    });

    it("ignores a journal-named file that is not a journal, and never writes another process's entries to its own", async () => {
        const { a, b } = await twoServers();
        writeFileSync(
            join(dir, `${JOURNAL_PREFIX}1-abcdef.jsonl`),
            'not a journal\n{"key":"price:9","fetchedAt":1,"expiresAt":9e15}\t{}\n'
        );
        await a.service.get(PRICES, { ids: [1] });
        await a.service.flush();
        await b.service.get(PRICES, { ids: [1, 9] });
        expect(b.inner.calls.map(call => call.params)).toEqual([{ ids: [9] }]);
        await b.service.flush();
        const ownLines = journals()
            .filter(name => name !== `${JOURNAL_PREFIX}1-abcdef.jsonl`)
            .map(name => readFileSync(join(dir, name), 'utf8'))
            .filter(text => text.includes('price:9'));
        // b's journal holds what b fetched (9), not what it read from a's (1).
        expect(ownLines).toHaveLength(1);
        expect(ownLines[0]).not.toContain('"price:1"');
    });

    it('keeps what another live process appends after a compaction folded its journal', async () => {
        const { clock, a, b } = await twoServers({ ready: false });
        await b.service.get(PRICES, { ids: [1] });
        await b.service.flush();
        await a.service.get(PRICES, { ids: [2] });
        await a.service.close();
        // b's process is alive: its journal is folded but not deleted, and it goes on appending to it.
        expect(journals()).toHaveLength(1);
        await b.service.get(PRICES, { ids: [3] });
        await b.service.flush();

        const c = harness({ cacheDir: dir }, { clock });
        await c.service.get(PRICES, { ids: [1, 2, 3] });
        expect(c.inner.count()).toBe(0);
        await b.service.close();
        expect(readdirSync(dir)).toEqual([CACHE_FILE_NAME]);
    });

    it('folds and removes the journals of processes that are gone, older layouts, and a lock left by a dead process', async () => {
        const first = harness({ cacheDir: dir });
        await first.service.get(PRICES, { ids: [1, 2] });
        await first.service.flush();
        // Pretend the journal's process died without closing: rename it to a pid nobody runs.
        const [journal] = journals();
        const orphan = `${JOURNAL_PREFIX}${deadPid()}-abcdef.jsonl`;
        const text = readFileSync(join(dir, journal!), 'utf8');
        writeFileSync(join(dir, orphan), text.replace(/"pid":\d+/, `"pid":${deadPid()}`), { mode: 0o600 });
        rmSync(join(dir, journal!));
        writeFileSync(join(dir, 'cache-v2.json'), '{"version":2,"savedAt":0,"entries":[]}');
        writeFileSync(
            join(dir, LOCK_FILE_NAME),
            JSON.stringify({ pid: deadPid(), host: (await import('node:os')).hostname(), token: 'x' })
        );

        const second = harness({ cacheDir: dir }, { clock: first.clock });
        await second.service.get(PRICES, { ids: [1, 2] });
        expect(second.inner.count()).toBe(0);
        await second.service.close();
        expect(readdirSync(dir)).toEqual([CACHE_FILE_NAME]);
        const third = harness({ cacheDir: dir }, { clock: first.clock });
        await third.service.get(PRICES, { ids: [1, 2] });
        expect(third.inner.count()).toBe(0);
    });

    it('takes over a lock nobody has touched for a long time, and leaves a fresh one alone', async () => {
        const lock = join(dir, LOCK_FILE_NAME);
        const a = harness({ cacheDir: dir });
        await a.service.get(PRICES, { ids: [1] });
        await a.service.flush();
        writeFileSync(lock, JSON.stringify({ pid: process.pid, host: 'another-host', token: 'x' }));
        await a.service.close();
        // Held by a live process elsewhere: no compaction, the journal stays for a later one.
        expect(journals()).toHaveLength(1);
        expect(readdirSync(dir)).toContain(LOCK_FILE_NAME);

        const old = (Date.now() - 3600 * SECOND) / 1000;
        utimesSync(lock, old, old);
        const b = harness({ cacheDir: dir }, { clock: a.clock });
        await b.service.get(PRICES, { ids: [1] });
        expect(b.inner.count()).toBe(0);
        await b.service.get(PRICES, { ids: [2] });
        await b.service.close();
        expect(readdirSync(dir)).not.toContain(LOCK_FILE_NAME);
    });

    it('bounds the snapshot: entries too old to serve are dropped, and at most maxEntries are kept, the newest', async () => {
        const clock = new FakeClock();
        const a = harness({ cacheDir: dir, maxEntries: 100, staleMaxAgeSeconds: 3600 }, { clock });
        await a.service.get(PRICES, { ids: ids(1, 50) });
        clock.advance(2 * 3600 * SECOND);
        await a.service.get(PRICES, { ids: ids(101, 150) });
        await a.service.close();
        const keys = snapshotLines().slice(1).map(keyOf);
        expect(keys).toHaveLength(100);
        expect(keys).toEqual(ids(151, 100).map(id => `price:${id}`));
    });
});
