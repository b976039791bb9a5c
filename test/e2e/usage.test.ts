import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { CallToolResultSchema, LoggingMessageNotificationSchema, type CallToolResult } from '@modelcontextprotocol/sdk/types.js';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { FakeUpstream } from '../fake-upstream/index.js';
import { startServer } from '../helpers/server-process.js';

const KEY_A = 'tm-e2e-usage-aaaa-7aaa';
const KEY_B = 'tm-e2e-usage-bbbb-9f2c';

interface Usage {
    credits_month: number;
    credits_today: number;
    quota_warnings: number[];
    keys: Array<{ fingerprint: string; state: string; since: string | null; credits_month: number; credits_today: number }>;
}

let fake: FakeUpstream;
let dir: string;

const credits = (key: string): number => fake.calls.filter(call => call.key === key && call.status > 0).length;
const keyRow = (usage: Usage, key: string) => usage.keys.find(row => row.fingerprint === `tm-…${key.slice(-4)}`)!;

beforeAll(async () => {
    fake = await FakeUpstream.start();
    dir = mkdtempSync(join(tmpdir(), 'crypto-intel-e2e-usage-'));
});
afterAll(async () => {
    await fake?.close();
    rmSync(dir, { recursive: true, force: true });
});

describe('usage, prompts, progress and logging over stdio (the built server)', () => {
    it('counts what the upstream saw per key across a restart, shows the revoked key, warns at 80%, and serves prompts', async () => {
        const env = {
            TOKEN_METRICS_API_KEYS: `${KEY_A},${KEY_B}`,
            TOKEN_METRICS_BASE_URL: fake.baseUrl,
            CRYPTO_INTEL_CACHE_DIR: dir,
            CRYPTO_INTEL_MONTHLY_CREDITS: '6'
        };
        const first = await startServer(env);
        const notices: Array<{ level: string; msg: string }> = [];
        first.client.setNotificationHandler(LoggingMessageNotificationSchema, notification => {
            notices.push({ level: notification.params.level, msg: String((notification.params.data as { msg?: unknown }).msg) });
        });
        try {
            fake.revoke(KEY_A);
            const events: string[] = [];
            const symbols = fake.world.tokens.slice(0, 10).map(token => token.symbol);
            const prices = await first.client.callTool({ name: 'get_price', arguments: { symbols } }, CallToolResultSchema, {
                onprogress: progress => events.push(`progress ${progress.progress}/${progress.total}`)
            });
            events.push('result');
            expect(prices.isError).toBeFalsy();
            // What the server wrote, in order: both parts' progress, then the result they announce.
            const wire = first.server.stdoutLines.map(
                line => JSON.parse(line) as { id?: unknown; method?: string; params?: Record<string, unknown> }
            );
            const progressToken = wire.find(message => message.method === 'notifications/progress')?.params?.progressToken;
            expect(
                wire
                    .filter(message => message.params?.progressToken === progressToken || message.id === progressToken)
                    .map(message =>
                        message.method ? `progress ${String(message.params?.progress)}/${String(message.params?.total)}` : 'result'
                    )
            ).toEqual(['progress 1/2', 'progress 2/2', 'result']);
            // The SDK's client runs notification handlers a microtask late and forgets a request's progress handler as
            // its result arrives: a notification read in the same chunk as the result is dropped there. So the client
            // is only sure to have seen the first.
            expect(events[0]).toBe('progress 1/2');
            expect(events.at(-1)).toBe('result');

            expect((await first.client.callTool({ name: 'explain_signal', arguments: { symbol: 'ETH' } })).isError).toBeFalsy();

            const { prompts } = await first.client.listPrompts();
            expect(prompts.map(prompt => prompt.name)).toEqual(['token_briefing', 'moonshot_scan', 'compare_tokens']);
            const completion = await first.client.complete({
                ref: { type: 'ref/prompt', name: 'token_briefing' },
                argument: { name: 'symbol', value: 'SO' }
            });
            expect(completion.completion.values).toContain('SOL');
            const briefing = await first.client.getPrompt({ name: 'token_briefing', arguments: { symbol: 'SOL' } });
            const sol = fake.world.tokens.find(token => token.symbol === 'SOL')!;
            expect(JSON.stringify(briefing.messages)).toContain(
                `$${sol.price.toLocaleString('en-US', { minimumFractionDigits: 2, maximumFractionDigits: 2 })}`
            );

            const usage = (await first.client.callTool({ name: 'get_usage', arguments: {} })) as CallToolResult;
            const figures = usage.structuredContent as unknown as Usage;
            expect(fake.calls.length).toBeGreaterThanOrEqual(6); // past 95% of the quota of 6
            expect(keyRow(figures, KEY_A)).toMatchObject({
                state: 'rejected',
                since: expect.any(String),
                credits_month: credits(KEY_A),
                credits_today: credits(KEY_A)
            });
            expect(keyRow(figures, KEY_B)).toMatchObject({
                state: 'serving',
                credits_month: credits(KEY_B),
                credits_today: credits(KEY_B)
            });
            expect(credits(KEY_A)).toBe(1);
            expect(figures.quota_warnings).toEqual([80, 95]);
            const text = usage.content.map(part => (part.type === 'text' ? part.text : '')).join('\n');
            expect(text).toMatch(/^This month \(\d{4}-\d{2}, UTC\): \d+ of 6 credits/);
            expect(text).toMatch(/Key tm-…7aaa: set aside since .* UTC: the upstream rejected it/);

            // The 80% warning: once on stderr, and to the client as a logging notification.
            expect(first.server.stderr.match(/"msg":"80% of this month's Token Metrics credits used"/g)).toHaveLength(1);
            expect(notices).toContainEqual({ level: 'warning', msg: "80% of this month's Token Metrics credits used" });
        } finally {
            await first.server.close();
        }
        expect(first.server.nonProtocolLines()).toEqual([]);
        for (const key of [KEY_A, KEY_B]) expect(first.server.stderr).not.toContain(key);

        const paid = fake.calls.length;
        const second = await startServer(env);
        try {
            const figures = ((await second.client.callTool({ name: 'get_usage', arguments: {} })) as CallToolResult)
                .structuredContent as unknown as Usage;
            expect(fake.calls.length).toBe(paid);
            expect(keyRow(figures, KEY_A).credits_month).toBe(credits(KEY_A));
            expect(keyRow(figures, KEY_B).credits_month).toBe(credits(KEY_B));
            expect(figures.credits_month).toBe(fake.calls.filter(call => call.status > 0).length);
            // Already warned this month: a restart does not warn again.
            expect(second.server.stderr).not.toMatch(/of this month's Token Metrics credits used/);
        } finally {
            await second.server.close();
        }
    });

    it('sends no logging notification before the client initialized, even for the start-up warning', async () => {
        const keyless = await startServer({ TOKEN_METRICS_BASE_URL: fake.baseUrl, CRYPTO_INTEL_CACHE_DIR: 'off' });
        try {
            await keyless.client.listTools();
            // The warning is logged once the server is up, and forwarded only after the client's `initialized`.
            await keyless.client.ping();
            for (let i = 0; i < 400 && !/no Token Metrics API key configured/i.test(keyless.server.stderr); i++) {
                await new Promise(resolve => setTimeout(resolve, 25));
            }
            expect(keyless.server.stderr).toMatch(/no Token Metrics API key configured/i);
            const first = JSON.parse(keyless.server.stdoutLines[0]!) as { id?: unknown; result?: { protocolVersion?: string } };
            expect(first.result?.protocolVersion).toEqual(expect.any(String));
        } finally {
            await keyless.server.close();
        }
    });
});
