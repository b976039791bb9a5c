import { spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { upstreamTimeout } from '../../src/api/errors.js';
import type { UpstreamRequest } from '../../src/api/http.js';
import { ROW_SCHEMAS, PriceRow } from '../../src/api/schemas.js';
import { ConfigError, loadConfig } from '../../src/config.js';
import { DOCTOR_QUERIES, planProbes, runDoctor, type ProbeResult } from '../../src/doctor/probes.js';
import { doctorExitCode, formatReport, safeText } from '../../src/doctor/report.js';
import { Redactor } from '../../src/redact.js';
import { FakeUpstream, type FakeCall } from '../fake-upstream/index.js';

const KEY = 'tm-doctor-test-key-0123456789abcdef';
const ENDPOINTS = ROW_SCHEMAS.map(schema => schema.endpoint);

/** The built CLI, found from test/doctor and from its build in dist/test/doctor. */
const CLI = ['../../dist/src/cli.js', '../../src/cli.js']
    .map(relative => fileURLToPath(new URL(relative, import.meta.url)))
    .find(path => existsSync(path))!;

/** Every 8-character piece of the key found in `text`. */
const keyPieces = (text: string): string[] => {
    const found: string[] = [];
    for (let start = 0; start + 8 <= KEY.length; start++)
        if (text.includes(KEY.slice(start, start + 8))) found.push(KEY.slice(start, start + 8));
    return found;
};

interface Run {
    code: number | null;
    stdout: string;
    stderr: string;
    lines: string[];
}

/** Runs `crypto-intel-mcp <args>` as a user would, and checks that nothing it wrote carries any piece of the key. */
async function cli(args: string[], env: Record<string, string>): Promise<Run> {
    const child = spawn(process.execPath, [CLI, ...args], {
        env: { PATH: process.env.PATH ?? '', HOME: process.env.HOME ?? '/tmp', CRYPTO_INTEL_CACHE_DIR: 'off', ...env },
        stdio: ['ignore', 'pipe', 'pipe']
    });
    let stdout = '';
    let stderr = '';
    child.stdout.setEncoding('utf8').on('data', (chunk: string) => (stdout += chunk));
    child.stderr.setEncoding('utf8').on('data', (chunk: string) => (stderr += chunk));
    const code = await new Promise<number | null>((resolve, reject) => {
        child.on('error', reject);
        child.on('close', resolve);
    });
    expect(keyPieces(stdout + stderr)).toEqual([]);
    return { code, stdout, stderr, lines: stdout.split('\n') };
}

/** The block of one endpoint: its status line up to the blank line after it. */
function block(run: Run, endpoint: string): string {
    const start = run.lines.findIndex(line => line.split(/\s+/)[1] === endpoint);
    if (start < 0) throw new Error(`no block for ${endpoint} in:\n${run.stdout}`);
    const end = run.lines.indexOf('', start);
    return run.lines.slice(start, end < 0 ? undefined : end).join('\n');
}

describe('crypto-intel-mcp doctor (built CLI against the fake upstream)', () => {
    let fake: FakeUpstream;
    const doctor = (env: Record<string, string> = {}) =>
        cli(['doctor'], { TOKEN_METRICS_BASE_URL: fake.baseUrl, TOKEN_METRICS_API_KEY: KEY, ...env });

    beforeAll(async () => {
        fake = await FakeUpstream.start();
    });
    afterEach(() => fake.reset());
    afterAll(async () => {
        await fake.close();
    });

    /** One run against a healthy upstream and the calls it made, read by the two tests after this (one process, not two). */
    let healthy: Promise<{ run: Run; calls: FakeCall[] }> | undefined;
    const healthyRun = () => (healthy ??= doctor().then(run => ({ run, calls: [...fake.calls] })));

    it('calls every endpoint once, says the credit cost first, reports each and exits 0', async () => {
        const { run, calls } = await healthyRun();
        expect(run.code, run.stdout + run.stderr).toBe(0);

        const cost = `doctor calls ${ENDPOINTS.length} endpoints once each: this spends ${ENDPOINTS.length} credits of your Token Metrics quota.`;
        const credit = run.lines.indexOf(cost);
        const first = run.lines.findIndex(line => ENDPOINTS.some(endpoint => line.split(/\s+/)[1] === endpoint));
        expect(credit).toBe(0);
        expect(first).toBeGreaterThan(credit);

        for (const endpoint of ENDPOINTS) {
            const text = block(run, endpoint);
            expect(text).toMatch(new RegExp(`^OK +${endpoint} +200 +\\d+ ms +key tm-…cdef$`, 'm'));
            expect(text).toMatch(/^ +rows +[1-9]\d*, none dropped$/m);
            expect(text).toMatch(/^ +missing +/m);
            expect(text).toMatch(/^ +unknown +/m);
            expect(text).toMatch(/^ +wrong kind +none$/m);
            expect(calls.filter(call => call.path === endpoint)).toHaveLength(1);
        }
        expect(calls).toHaveLength(ENDPOINTS.length);
        expect(run.lines.filter(Boolean).at(-1)).toMatch(/^Verdict: OK: all 8 endpoints answered and every row parsed/);
        expect(run.stdout).toContain(`upstream 127.0.0.1:${fake.port}/v2`);
        expect(run.stdout).not.toMatch(/https?:\/\/|[?&](?:token_id|symbol|startDate)=/);
    });

    it('asks for BTC, the last 7 days where there are dates, and active moonshots', async () => {
        const { calls } = await healthyRun();
        const query = (path: string) => calls.find(call => call.path === path)!.query;
        expect(query('/tokens')).toEqual({ symbol: 'BTC' });
        for (const path of ['/price', '/tm-grade', '/fundamental-grade', '/technology-grade'])
            expect(query(path)).toEqual({ token_id: '3375' });
        expect(query('/moonshot-tokens')).toEqual({ type: 'active', limit: '10', page: '1' });
        for (const path of ['/trading-signals', '/daily-ohlcv']) {
            const { token_id, startDate, endDate } = query(path);
            expect(token_id).toBe('3375');
            expect(startDate).toMatch(/^\d{4}-\d{2}-\d{2}$/);
            expect(endDate).toMatch(/^\d{4}-\d{2}-\d{2}$/);
            expect(Date.parse(endDate!) - Date.parse(startDate!)).toBe(7 * 86_400_000);
        }
    });

    it('exits 1 and names the field when a field drifts', async () => {
        fake.inject({ path: '/price', fault: { kind: 'drift-field', field: 'CURRENT_PRICE', value: { usd: 1 } } });
        const run = await doctor({ CRYPTO_INTEL_LOG_LEVEL: 'debug' });
        expect(run.code, run.stdout).toBe(1);
        const price = block(run, '/price');
        expect(price).toMatch(/^DRIFT +\/price +200 /);
        expect(price).toContain('CURRENT_PRICE: got an object');
        expect(run.lines.filter(Boolean).at(-1)).toMatch(/^Verdict: DRIFT: .*\/price: CURRENT_PRICE/);
        for (const endpoint of ENDPOINTS.filter(endpoint => endpoint !== '/price')) expect(block(run, endpoint)).toMatch(/^OK /);
    });

    it('reports an endpoint outside the plan as 403 NOT_IN_PLAN for that endpoint only, and exits 1', async () => {
        fake.inject({ path: '/technology-grade', fault: { kind: 'forbidden', message: 'This endpoint is not available in your plan' } });
        const run = await doctor();
        expect(run.code, run.stdout).toBe(1);
        expect(block(run, '/technology-grade')).toMatch(/^FAIL +\/technology-grade +403 NOT_IN_PLAN +\d+ ms$/m);
        expect(block(run, '/technology-grade')).toContain('plan');
        for (const endpoint of ENDPOINTS.filter(endpoint => endpoint !== '/technology-grade')) expect(block(run, endpoint)).toMatch(/^OK /);
        expect(run.lines.filter(Boolean).at(-1)).toMatch(
            /^Verdict: FAIL: 1 of 8 endpoints failed \(\/technology-grade 403 NOT_IN_PLAN\)\.$/
        );
    });

    it('never prints the key, not even when the upstream echoes it or a piece of it', async () => {
        fake.inject({ path: '/price', fault: { kind: 'status', status: 400, message: `bad key ${KEY}, or ${KEY.slice(0, 14)}…?` } });
        fake.inject({
            path: '/tm-grade',
            fault: { kind: 'status', status: 400, message: `see https://api.example/v2/tm-grade?api_key=${KEY}&token_id=3375` }
        });
        const run = await doctor({ CRYPTO_INTEL_LOG_LEVEL: 'debug' });
        expect(run.code).toBe(1);
        expect(block(run, '/price')).toMatch(/400 UPSTREAM_REJECTED/);
        expect(block(run, '/tm-grade')).toContain('https://api.example/v2/tm-grade');
        expect(run.stdout).not.toContain('api_key=');
        // `cli` has checked stdout and stderr for every 8-character piece of the key.
    });

    it('without a key says what to set, calls nothing and exits 2', async () => {
        const run = await cli(['doctor'], { TOKEN_METRICS_BASE_URL: fake.baseUrl });
        expect(run.code).toBe(2);
        expect(run.stdout).toContain('TOKEN_METRICS_API_KEY=');
        expect(run.stdout).toContain('TOKEN_METRICS_API_KEY_FILE=');
        expect(fake.count()).toBe(0);
    });

    it('is listed in --help', async () => {
        const run = await cli(['--help'], {});
        expect(run.code).toBe(0);
        expect(run.stdout).toMatch(/crypto-intel-mcp doctor/);
        expect(run.stdout).toMatch(/^ {2}doctor +/m);
    });
});

describe('doctor command line', () => {
    it('is the first word; it reads the same configuration as the server and logs warnings only by default', () => {
        const command = loadConfig({ TOKEN_METRICS_API_KEY: KEY, CRYPTO_INTEL_DEADLINE_MS: '30000' }, ['doctor']);
        expect(command.kind).toBe('doctor');
        if (command.kind !== 'doctor') return;
        expect(command.config.apiKeys).toEqual([KEY]);
        expect(command.config.upstream.deadlineMs).toBe(30_000);
        expect(command.config.logLevel).toBe('warn');
        const debug = loadConfig({ CRYPTO_INTEL_LOG_LEVEL: 'debug' }, ['doctor']);
        expect(debug.kind === 'doctor' && debug.config.logLevel).toBe('debug');
        expect(loadConfig({}, ['doctor', '--help']).kind).toBe('help');
    });

    it('refuses server flags and unknown commands', () => {
        expect(() => loadConfig({}, ['doctor', '--http'])).toThrow(ConfigError);
        expect(() => loadConfig({}, ['doctor', '--port=1'])).toThrow(/doctor takes no --http/);
        expect(() => loadConfig({}, ['doctr'])).toThrow(/unknown command "doctr"/);
        expect(loadConfig({}, []).kind).toBe('run');
    });
});

describe('doctor plan', () => {
    const NOW = Date.parse('2025-03-10T23:30:00Z');

    it('has a query for every row schema, and no query without one', () => {
        expect(Object.keys(DOCTOR_QUERIES).sort()).toEqual([...ENDPOINTS].sort());
        const probes = planProbes(NOW);
        expect(probes.map(probe => probe.endpoint)).toEqual(ENDPOINTS);
        expect(probes.find(probe => probe.endpoint === '/daily-ohlcv')!.query).toEqual({
            token_id: 3375,
            startDate: '2025-03-03',
            endDate: '2025-03-10'
        });
        expect(probes.find(probe => probe.endpoint === '/trading-signals')!.query).toEqual({
            token_id: 3375,
            startDate: '2025-03-03',
            endDate: '2025-03-10'
        });
    });

    it('fails loudly when a schema has no query, or a query no schema', () => {
        const added = { ...PriceRow, endpoint: '/sentiment' };
        expect(() => planProbes(NOW, [...ROW_SCHEMAS, added])).toThrow(/no query for \/sentiment/);
        expect(() =>
            planProbes(
                NOW,
                ROW_SCHEMAS.filter(schema => schema.endpoint !== '/price')
            )
        ).toThrow(/DOCTOR_QUERIES names \/price/);
    });
});

describe('doctor runner', () => {
    it('calls each probe once in order with its query, timing it by the injected clock', async () => {
        let now = 1_000;
        const requests: UpstreamRequest[] = [];
        const http = {
            async getRows(req: UpstreamRequest) {
                requests.push(req);
                now += 25;
                if (req.path === '/tm-grade') throw upstreamTimeout(10_000, { endpoint: req.path });
                if (req.path === '/price')
                    return { rows: [{ TOKEN_ID: 3375, CURRENT_PRICE: 'soon' }, { CURRENT_PRICE: 1 }], servedBy: 'tm-…beef' };
                return { rows: [], servedBy: 'tm-…beef' };
            }
        };
        const seen: string[] = [];
        const probes = planProbes(Date.parse('2025-03-10T00:00:00Z'));
        const results = await runDoctor(probes, { http, clock: { now: () => now }, onResult: result => seen.push(result.endpoint) });
        expect(requests.map(req => req.path)).toEqual(ENDPOINTS);
        expect(requests[1]!.query).toEqual({ token_id: 3375 });
        expect(seen).toEqual(ENDPOINTS);
        expect(results.every(result => result.ms === 25)).toBe(true);
        expect(results[1]).toMatchObject({
            ok: true,
            servedBy: 'tm-…beef',
            report: { rows: 1, dropped: 1, wrongKinds: [{ field: 'CURRENT_PRICE', got: 'the text "soon"' }] }
        });
        expect(results[2]).toMatchObject({ ok: false, status: 0, code: 'UPSTREAM_TIMEOUT' });
        expect(doctorExitCode(results)).toBe(1);
    });

    it('stops at the run limit: the rest are reported as not checked', async () => {
        const controller = new AbortController();
        const http = {
            async getRows(req: UpstreamRequest) {
                if (req.path === '/price') controller.abort();
                if (req.signal?.aborted) throw new Error('aborted');
                return { rows: [{ TOKEN_ID: 3375 }], servedBy: 'tm-…beef' };
            }
        };
        const results = await runDoctor(planProbes(0), { http, clock: { now: () => 0 }, signal: controller.signal });
        expect(results.map(result => (result.ok ? 'ok' : result.code))).toEqual(['ok', ...ENDPOINTS.slice(1).map(() => 'NOT_CHECKED')]);
    });
});

describe('doctor report', () => {
    const report = (rows: number, extra: Partial<Extract<ProbeResult, { ok: true }>['report']> = {}) => ({
        rows,
        dropped: 0,
        wrongKinds: [],
        missing: [],
        unknown: [],
        ...extra
    });
    const header = { version: '9.9.9', upstream: 'api.tokenmetrics.com/v2', keys: ['tm-…beef'], endpoints: 3 };

    it('prints the cost, one block per endpoint and a verdict', () => {
        const results: ProbeResult[] = [
            { endpoint: '/tokens', ok: true, status: 200, ms: 41, servedBy: 'tm-…beef', report: report(1, { unknown: ['tm_link'] }) },
            {
                endpoint: '/price',
                ok: true,
                status: 200,
                ms: 7,
                servedBy: 'tm-…beef',
                report: report(1, { wrongKinds: [{ field: 'CURRENT_PRICE', got: 'an object' }], missing: ['TOKEN_NAME', 'TOKEN_SYMBOL'] })
            },
            {
                endpoint: '/technology-grade',
                ok: false,
                status: 403,
                code: 'NOT_IN_PLAN',
                message: 'Your Token Metrics plan does not include /technology-grade.',
                hint: 'Upgrade the plan.',
                ms: 12
            }
        ];
        expect(formatReport(header, results)).toEqual([
            'doctor calls 3 endpoints once each: this spends 3 credits of your Token Metrics quota.',
            'crypto-intel-mcp 9.9.9 doctor · upstream api.tokenmetrics.com/v2 · key tm-…beef',
            '',
            'OK    /tokens            200                      41 ms   key tm-…beef',
            '      rows        1, none dropped',
            '      missing     none',
            '      unknown     tm_link',
            '      wrong kind  none',
            '',
            'DRIFT /price             200                       7 ms   key tm-…beef',
            '      rows        1, none dropped',
            '      missing     TOKEN_NAME, TOKEN_SYMBOL',
            '      unknown     none',
            '      wrong kind  CURRENT_PRICE: got an object',
            '',
            'FAIL  /technology-grade  403 NOT_IN_PLAN          12 ms',
            '      error       Your Token Metrics plan does not include /technology-grade.',
            '      next step   Upgrade the plan.',
            '',
            'Verdict: FAIL + DRIFT: 1 of 3 endpoints failed (/technology-grade 403 NOT_IN_PLAN); schema drift on 1 endpoint (/price: CURRENT_PRICE).' +
                ' Please report this output to the crypto-intel-mcp maintainers.'
        ]);
        expect(doctorExitCode(results)).toBe(1);
    });

    it('is OK, exit 0, when every endpoint answered and parsed, noting endpoints without rows', () => {
        const results: ProbeResult[] = [
            {
                endpoint: '/tokens',
                ok: true,
                status: 200,
                ms: 1,
                servedBy: 'tm-…beef',
                report: report(1, { missing: ['CONTRACT_ADDRESS'] })
            },
            {
                endpoint: '/moonshot-tokens',
                ok: true,
                status: 200,
                ms: 1,
                servedBy: 'tm-…beef',
                report: report(0, { missing: ['TOKEN_ID', 'TOKEN_NAME'] })
            }
        ];
        const lines = formatReport({ ...header, endpoints: 2 }, results);
        expect(lines).toContain('      missing     (no rows to check)');
        expect(lines.at(-1)).toBe('Verdict: OK: all 2 endpoints answered and every row parsed (no rows from /moonshot-tokens).');
        expect(doctorExitCode(results)).toBe(0);
    });

    it('counts dropped rows and an unreadable answer as drift', () => {
        const dropped: ProbeResult = {
            endpoint: '/price',
            ok: true,
            status: 200,
            ms: 1,
            servedBy: 'tm-…beef',
            report: report(0, { dropped: 2 })
        };
        const unreadable: ProbeResult = {
            endpoint: '/tokens',
            ok: false,
            status: 200,
            code: 'SCHEMA_DRIFT',
            message: 'bad JSON',
            hint: 'report it',
            ms: 1
        };
        const lines = formatReport(header, [dropped, unreadable]);
        expect(lines).toContain('      rows        0, 2 dropped (no identity)');
        expect(lines.at(-1)).toMatch(
            /^Verdict: DRIFT: schema drift on 2 endpoints \(\/price: 2 rows dropped, \/tokens: unreadable answer\)/
        );
        expect(doctorExitCode([dropped])).toBe(1);
        expect(doctorExitCode([unreadable])).toBe(1);
    });

    it('wraps long lists and sentences under their label', () => {
        const missing = Array.from({ length: 12 }, (_, index) => `A_RATHER_LONG_FIELD_NAME_${index}`);
        const lines = formatReport(header, [
            { endpoint: '/tokens', ok: true, status: 200, ms: 1, servedBy: 'tm-…beef', report: report(1, { missing }) }
        ]);
        const block = lines.slice(
            lines.findIndex(line => line.includes('missing')),
            lines.findIndex(line => line.includes('unknown'))
        );
        expect(block.length).toBeGreaterThan(1);
        for (const line of block) expect(line.length).toBeLessThanOrEqual(100);
        expect(block.slice(1).every(line => line.startsWith(' '.repeat(18)))).toBe(true);
        expect(block.join(' ').replace(/\s+/g, ' ')).toContain(missing.join(', '));
    });

    it('keeps secrets and queries out of text from outside', () => {
        expect(safeText('see https://h.example/v2/price?token_id=1&api_key=abc#x now\u0007')).toBe('see https://h.example/v2/price now ');
        // The report goes through the server's Redactor, which knows every 8-character piece of a registered key.
        const redactor = new Redactor();
        redactor.register(KEY);
        const scrubbed = redactor.scrub(`a ${KEY.slice(3, 20)} b ${KEY}`);
        expect(keyPieces(scrubbed)).toEqual([]);
        expect(scrubbed).toMatch(/^a \S+ b \S+$/);
        expect(redactor.scrub('nothing secret here')).toBe('nothing secret here');
    });
});
