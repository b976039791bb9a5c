import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, statSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { readUsageFile, USAGE_FILE_NAME } from '../../src/usage/file.js';
import { FakeUpstream } from '../fake-upstream/index.js';
import { FakeClock } from '../helpers/clock.js';
import { fakeCredits, session, textOf, type Session } from './support.js';

const KEY_A = 'tm-usage-aaaa-1111-7aaa';
const KEY_B = 'tm-usage-bbbb-2222-9f2c';
const KEYS = `${KEY_A},${KEY_B}`;

interface Usage {
    month: string;
    day: string;
    credits_today: number;
    credits_month: number;
    monthly_credits: number | null;
    quota_used_pct: number | null;
    quota_warnings: number[];
    keys: Array<{
        fingerprint: string;
        state: string;
        since: string | null;
        until: string | null;
        not_in_plan: string[];
        credits_today: number;
        credits_month: number;
        last_success: string | null;
    }>;
    cache: { answers_from_cache: number; shared_in_flight: number; credits_saved: number; stale_served: number };
    latency_last_hour: { answers: number; p50_ms: number | null; p95_ms: number | null };
    endpoints: Array<{ endpoint: string; last_answer_at: string; age_s: number }>;
    storage: 'file' | 'memory';
}

let fake: FakeUpstream;
let open: Session[] = [];
let dirs: string[] = [];

const start = async (env: Record<string, string> = {}, clock?: FakeClock): Promise<Session> => {
    const opened = await session(fake, {
        env: { TOKEN_METRICS_API_KEYS: KEYS, TOKEN_METRICS_API_KEY: '', ...env },
        ...(clock ? { clock } : {})
    });
    open.push(opened);
    return opened;
};
const tempDir = (): string => {
    const dir = mkdtempSync(join(tmpdir(), 'crypto-intel-usage-'));
    dirs.push(dir);
    return dir;
};
const usageOf = async (server: Session): Promise<Usage> => {
    const result = await server.call('get_usage', {});
    expect(result.isError, textOf(result)).toBeFalsy();
    return result.structuredContent as unknown as Usage;
};
const keyRow = (usage: Usage, key: string) => usage.keys.find(row => row.fingerprint === `tm-…${key.slice(-4)}`)!;

/** A session that spends credits on several endpoints with both keys, a retried 5xx and a connection reset among them. */
async function scriptedSession(server: Session): Promise<void> {
    await server.call('get_price', { symbols: ['BTC', 'ETH', 'SOL'] });
    fake.inject({ path: '/tm-grade', fault: { kind: 'status', status: 503 }, times: 1 });
    await server.call('get_grades', { symbol: 'SOL' });
    fake.inject({ path: '/daily-ohlcv', fault: { kind: 'reset' }, times: 1 });
    await server.call('explain_signal', { symbol: 'ETH' });
    fake.inject({ path: '/moonshot-tokens', fault: { kind: 'rate-limit', retryAfter: '0' }, key: KEY_A, times: 1 });
    await server.call('list_moonshots', {});
    await server.call('get_price', { symbols: ['BTC', 'ETH', 'SOL'] });
}

beforeAll(async () => {
    fake = await FakeUpstream.start();
});
afterAll(async () => {
    await fake.close();
});
beforeEach(() => fake.reset());
afterEach(async () => {
    for (const server of open) await server.close();
    open = [];
    for (const dir of dirs) rmSync(dir, { recursive: true, force: true });
    dirs = [];
});

describe('get_usage', () => {
    it('counts exactly the requests the upstream answered, per key, today and this month; a connection failure costs nothing', async () => {
        const server = await start();
        await scriptedSession(server);
        const before = fake.calls.length;
        const usage = await usageOf(server);
        expect(fake.calls.length).toBe(before); // get_usage itself costs nothing
        for (const key of [KEY_A, KEY_B]) {
            expect(keyRow(usage, key).credits_month, key).toBe(fakeCredits(fake.calls, key));
            expect(keyRow(usage, key).credits_today, key).toBe(fakeCredits(fake.calls, key));
        }
        expect(fakeCredits(fake.calls, KEY_B)).toBeGreaterThan(0); // the 429 moved a request to the second key
        expect(usage.credits_month).toBe(fake.calls.filter(call => call.status > 0).length);
        expect(fake.calls.some(call => call.status <= 0)).toBe(true); // the reset: seen by the fake, not a credit
        expect(usage).toMatchObject({
            month: '2026-11',
            day: '2026-11-25',
            storage: 'memory',
            monthly_credits: null,
            quota_used_pct: null
        });
        expect(usage.latency_last_hour.answers).toBe(usage.credits_month);
        expect(usage.latency_last_hour.p50_ms).toEqual(expect.any(Number));
        expect(usage.endpoints.map(row => row.endpoint)).toEqual(expect.arrayContaining(['/price', '/tokens', '/trading-signals']));
    });

    it('says what the cache saved: a repeated question is answered without a credit', async () => {
        const server = await start();
        await server.call('get_price', { symbols: ['BTC', 'ETH'] });
        const paid = fake.calls.length;
        await server.call('get_price', { symbols: ['BTC', 'ETH'] });
        expect(fake.calls.length).toBe(paid);
        const usage = await usageOf(server);
        expect(usage.cache.answers_from_cache).toBeGreaterThanOrEqual(4); // 2 symbols + 2 prices
        expect(usage.cache.credits_saved).toBeGreaterThanOrEqual(2); // one lookup, one price call
        expect(usage.cache.credits_saved).toBeLessThanOrEqual(usage.cache.answers_from_cache);
        const text = textOf(await server.call('get_usage', {}));
        expect(text).toMatch(/^This month \(2026-11, UTC\): \d+ credits spent through this server, \d+ today\.$/m);
        expect(text).toMatch(/Cache: \d+ answers without a new upstream request saved \d+ credits; 0 stale answers served/);
        expect(text).toMatch(/Key tm-…7aaa: serving; \d+ credits this month \(\d+ today\), last success 0s ago\./);
        expect(text).toContain('Key tm-…9f2c: serving; 0 credits this month (0 today), no success yet.');
        expect(text.split('\n').length).toBeLessThanOrEqual(8);
    });

    it('counts stale answers served when the upstream fails', async () => {
        const clock = new FakeClock();
        const server = await start({ CRYPTO_INTEL_MAX_RETRIES: '0' }, clock);
        await server.call('get_price', { symbols: ['BTC'] });
        clock.advance(120_000);
        fake.inject({ path: '/price', fault: { kind: 'status', status: 503 } });
        const stale = await server.call('get_price', { symbols: ['BTC'] });
        expect(textOf(stale)).toMatch(/STALE/);
        expect((await usageOf(server)).cache.stale_served).toBe(1);
    });

    it('shows a key the upstream rejected as set aside since then, and the key serving instead', async () => {
        const clock = new FakeClock();
        const server = await start({}, clock);
        fake.revoke(KEY_A);
        clock.advance(60_000);
        const rejectedAt = new Date(clock.now()).toISOString().replace('.000Z', 'Z');
        await server.call('get_price', { symbols: ['BTC'] });
        clock.advance(60_000);
        const usage = await usageOf(server);
        expect(keyRow(usage, KEY_A)).toMatchObject({ state: 'rejected', since: rejectedAt, credits_month: 1, last_success: null });
        expect(keyRow(usage, KEY_B)).toMatchObject({ state: 'serving', since: null, credits_month: fakeCredits(fake.calls, KEY_B) });
        const text = textOf(await server.call('get_usage', {}));
        expect(text).toContain(
            'Key tm-…7aaa: set aside since 2026-11-25 12:01 UTC: the upstream rejected it; 1 credit this month (1 today), no success yet.'
        );
        expect(text).toMatch(/Key tm-…9f2c: serving; \d+ credits this month \(\d+ today\), last success 60s ago\./);
        expect(text).not.toContain(KEY_A);
    });

    it('shows a rate-limited key until when, and an endpoint outside a key plan', async () => {
        const clock = new FakeClock();
        const server = await start({}, clock);
        fake.inject({ path: '/tokens', fault: { kind: 'rate-limit', retryAfter: '120' }, key: KEY_A, times: 1 });
        fake.inject({ path: '/technology-grade', fault: { kind: 'forbidden', message: 'Not available on your plan' }, key: KEY_B });
        await server.call('get_grades', { symbol: 'BTC', include: ['technology'] });
        const usage = await usageOf(server);
        expect(keyRow(usage, KEY_A)).toMatchObject({
            state: 'rate_limited',
            until: new Date(Date.parse('2026-11-25T12:00:00Z') + 120_000).toISOString().replace('.000Z', 'Z')
        });
        expect(keyRow(usage, KEY_B)).toMatchObject({ state: 'serving', not_in_plan: ['/technology-grade'] });
        expect(textOf(await server.call('get_usage', {}))).toContain('Key tm-…7aaa: rate-limited until 2026-11-25 12:02 UTC;');
    });

    it('keeps the figures in the cache directory across a restart, in an owner-only file', async () => {
        const dir = tempDir();
        const first = await start({ CRYPTO_INTEL_CACHE_DIR: dir });
        await scriptedSession(first);
        const afterFirst = await usageOf(first);
        await first.close();
        open = open.filter(server => server !== first);
        expect(statSync(join(dir, USAGE_FILE_NAME)).mode & 0o777).toBe(0o600);
        expect(readFileSync(join(dir, USAGE_FILE_NAME), 'utf8')).not.toContain(KEY_A.slice(0, 12));

        const second = await start({ CRYPTO_INTEL_CACHE_DIR: dir });
        const restarted = await usageOf(second);
        expect(restarted.storage).toBe('file');
        for (const key of [KEY_A, KEY_B]) expect(keyRow(restarted, key).credits_month).toBe(keyRow(afterFirst, key).credits_month);
        // Spending goes on from there, and the cache restored from disk answers for free.
        await second.call('get_grades', { symbol: 'ETH' });
        const more = await usageOf(second);
        for (const key of [KEY_A, KEY_B]) expect(keyRow(more, key).credits_month).toBe(fakeCredits(fake.calls, key));
        expect(more.cache.answers_from_cache).toBeGreaterThan(afterFirst.cache.answers_from_cache);
    });

    it('adds up what two servers sharing one cache directory spent, instead of one overwriting the other', async () => {
        const dir = tempDir();
        const one = await start({ CRYPTO_INTEL_CACHE_DIR: dir, CRYPTO_INTEL_CACHE_TTLS: 'price=0' });
        const two = await start({ CRYPTO_INTEL_CACHE_DIR: dir, CRYPTO_INTEL_CACHE_TTLS: 'price=0' });
        await one.call('get_price', { symbols: ['BTC'] });
        await two.call('get_price', { symbols: ['ETH'] });
        await one.runtime.usage.flush();
        await two.runtime.usage.flush();
        await one.runtime.usage.flush();
        const total = fake.calls.filter(call => call.status > 0).length;
        expect((await usageOf(one)).credits_month).toBe(total);
        expect((await usageOf(two)).credits_month).toBe(total);
    });

    it('starts a new month at zero, keyed by the UTC calendar', async () => {
        const clock = new FakeClock(Date.parse('2026-11-30T23:59:00Z'));
        const server = await start({}, clock);
        await server.call('get_price', { symbols: ['BTC'] });
        expect((await usageOf(server)).credits_month).toBeGreaterThan(0);
        clock.advance(120_000);
        const december = await usageOf(server);
        expect(december).toMatchObject({ month: '2026-12', day: '2026-12-01', credits_month: 0, credits_today: 0 });
        expect(december.latency_last_hour.answers).toBeGreaterThan(0);
        clock.advance(3_600_000);
        expect((await usageOf(server)).latency_last_hour).toEqual({ answers: 0, p50_ms: null, p95_ms: null });
    });

    it('ignores a corrupt, oversized or linked usage file with a warning, and replaces it', async () => {
        for (const plant of [
            (path: string) => writeFileSync(path, '{"version":1,"months":'),
            (path: string) => writeFileSync(path, ' '.repeat(300 * 1024)),
            (path: string) => {
                const elsewhere = join(dirs[dirs.length - 1]!, 'elsewhere.json');
                writeFileSync(elsewhere, JSON.stringify({ version: 1, months: {}, days: {}, lastSuccess: {} }));
                symlinkSync(elsewhere, path);
            }
        ]) {
            const dir = tempDir();
            plant(join(dir, USAGE_FILE_NAME));
            const server = await start({ CRYPTO_INTEL_CACHE_DIR: dir });
            expect(server.logs.join('')).toMatch(
                /"level":"warn","msg":"usage file (is not valid JSON|is over \d+ bytes|is a symbolic link)/
            );
            await server.call('get_price', { symbols: ['BTC'] });
            await server.runtime.usage.flush();
            expect(statSync(join(dir, USAGE_FILE_NAME)).isFile()).toBe(true);
            expect(JSON.parse(readFileSync(join(dir, USAGE_FILE_NAME), 'utf8'))).toMatchObject({ version: 1 });
        }
    });

    it("refuses a FIFO in the usage file's place without blocking start-up", async () => {
        const dir = tempDir();
        execFileSync('mkfifo', [join(dir, USAGE_FILE_NAME)]);
        expect(readUsageFile(dir)).toEqual({ kind: 'bad', problem: 'is not a regular file' });
        const server = await start({ CRYPTO_INTEL_CACHE_DIR: dir });
        expect(server.logs.join('')).toMatch(/"level":"warn","msg":"usage file is not a regular file/);
    });

    it('warns once at 80% and once at 95% of CRYPTO_INTEL_MONTHLY_CREDITS, in the log and in the answer', async () => {
        const dir = tempDir();
        const clock = new FakeClock();
        const server = await start(
            { CRYPTO_INTEL_MONTHLY_CREDITS: '10', CRYPTO_INTEL_CACHE_DIR: dir, CRYPTO_INTEL_CACHE_TTLS: 'price=0' },
            clock
        );
        const warnings = (threshold: number) =>
            server.logs.filter(line => line.includes(`"msg":"${threshold}% of this month's Token Metrics credits used"`));
        await server.call('get_price', { symbols: ['BTC'] }); // lookup + price
        for (let i = 0; fake.calls.length < 7; i++) await server.call('get_price', { symbols: ['BTC'] });
        expect(warnings(80)).toHaveLength(0);
        await server.call('get_price', { symbols: ['BTC'] });
        expect(fake.calls.length).toBe(8);
        expect(warnings(80)).toHaveLength(1);
        expect(warnings(80)[0]).toMatch(/"used":8,"monthlyCredits":10,"month":"2026-11"/);
        expect(await usageOf(server)).toMatchObject({ monthly_credits: 10, quota_used_pct: 80, quota_warnings: [80] });
        expect(textOf(await server.call('get_usage', {}))).toMatch(
            /^This month \(2026-11, UTC\): 8 of 10 credits \(80%\) spent through this server, 8 today\.\nWARNING: over 80% of the monthly credits are used\./
        );
        await server.call('get_price', { symbols: ['BTC'] });
        await server.call('get_price', { symbols: ['BTC'] });
        await server.call('get_price', { symbols: ['BTC'] });
        expect(warnings(80)).toHaveLength(1);
        expect(warnings(95)).toHaveLength(1);
        expect((await usageOf(server)).quota_warnings).toEqual([80, 95]);

        // Remembered across a restart: the same month does not warn again.
        await server.close();
        open = [];
        const again = await start(
            { CRYPTO_INTEL_MONTHLY_CREDITS: '10', CRYPTO_INTEL_CACHE_DIR: dir, CRYPTO_INTEL_CACHE_TTLS: 'price=0' },
            clock
        );
        await again.call('get_price', { symbols: ['BTC'] });
        expect(again.logs.filter(line => line.includes("of this month's Token Metrics credits used"))).toEqual([]);
    });

    it('shows labels and key-file dates, and records a quota warning in the audit trail', async () => {
        const dir = tempDir();
        const clock = new FakeClock();
        const day = (offset: number) => new Date(clock.now() + offset * 86_400_000).toISOString().slice(0, 10);
        const keyFile = join(dir, 'keys.txt');
        const upcoming = 'tm-usage-cccc-3333-0c0c';
        const expired = 'tm-usage-dddd-4444-0d0d';
        writeFileSync(
            keyFile,
            [
                `${upcoming} label=next not-before=${day(2)}`,
                `${KEY_A} label=prod-1 expires=${day(3)}`,
                `${expired} label=old expires=${day(-1)}`
            ].join('\n'),
            { mode: 0o600 }
        );
        const server = await start(
            {
                TOKEN_METRICS_API_KEYS: '',
                TOKEN_METRICS_API_KEY_FILE: keyFile,
                CRYPTO_INTEL_CACHE_DIR: dir,
                CRYPTO_INTEL_MONTHLY_CREDITS: '2'
            },
            clock
        );
        await server.call('get_price', { symbols: ['BTC'] });
        const usage = await usageOf(server);
        const rows = usage.keys as Array<Usage['keys'][number] & { label: string | null; expires_at: string | null }>;
        expect(rows.map(row => [row.fingerprint, row.label, row.state])).toEqual([
            ['tm-…0c0c', 'next', 'not_yet_valid'],
            ['tm-…7aaa', 'prod-1', 'serving'],
            ['tm-…0d0d', 'old', 'expired']
        ]);
        expect(rows[0]!.until).toBe(`${day(2)}T00:00:00Z`);
        expect(rows[1]!.expires_at).toMatch(new RegExp(`^${day(4)}T00:00:00`));
        const text = textOf(await server.call('get_usage', {}));
        expect(text).toMatch(/Key tm-…7aaa \(prod-1\): serving; expires in \d day\(s\)/);
        expect(text).toMatch(/Key tm-…0d0d \(old\): expired: no longer used/);
        await server.close();
        open = open.filter(opened => opened !== server);
        const audit = readFileSync(join(dir, 'audit.log'), 'utf8');
        expect(audit).toMatch(/"event":"quota-warning"/);
        for (const key of [KEY_A, upcoming, expired]) expect(audit).not.toContain(key.slice(-8));
    });

    it('is published as free and read-only', async () => {
        const server = await start();
        const tool = (await server.client.listTools()).tools.find(entry => entry.name === 'get_usage')!;
        expect(tool.annotations).toMatchObject({ readOnlyHint: true, openWorldHint: false });
        expect(tool.description).toMatch(/Free: reads local counters/);
        await server.call('get_usage', {});
        expect(fake.calls).toEqual([]);
    });
});
