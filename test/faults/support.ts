import { readFileSync } from 'node:fs';
import { inspect } from 'node:util';
import type { Client } from '@modelcontextprotocol/sdk/client/index.js';
import type { CallToolResult, JSONRPCMessage } from '@modelcontextprotocol/sdk/types.js';
import { isValidFilterValue } from '../../src/endpoints/params.js';
import { ENDPOINTS, FakeUpstream, type FakeCall, type FaultRule } from '../fake-upstream/index.js';
import { startServer, type ServerProcess } from '../helpers/server-process.js';

/**
 * Shared machinery of the fault suite: distinctive keys and the leak check built on them, a tally for the
 * closing summary, spawned servers that are checked for crashes, stray stdout and leaks when they close,
 * and an audit of every query string the fake upstream received.
 */

/** Every key the suite configures anywhere. Distinctive, so any 8-character piece of one in an output is a leak. */
export const KEYS = {
    single: 'tm-FAULTSUITE-single-4f0c9a7e21d3',
    refused: 'tm-FAULTSUITE-refused-b7d1e09c3a58',
    storm: ['tm-FAULTSUITE-storm1-8b2e6d40c5f1', 'tm-FAULTSUITE-storm2-1a7f3c9e0b64', 'tm-FAULTSUITE-storm3-d95e2b1a7c08'],
    narrow: 'tm-FAULTSUITE-narrow-30e8f1b6a9d2',
    revoke: ['tm-FAULTSUITE-revokeA-c1f7a2e90d36', 'tm-FAULTSUITE-revokeB-5e9b0d4c7a21', 'tm-FAULTSUITE-revokeC-a8306f2d1e7b'],
    fileOld: 'tm-FAULTSUITE-fileold-e24c8b7019fa',
    fileNew: 'tm-FAULTSUITE-filenew-07b9d3e6f1c4',
    fileNewer: 'tm-FAULTSUITE-filenewer-96a1c05e3b8d',
    abuse: 'tm-FAULTSUITE-abuse-2d6f9e1b4c07',
    mixed: 'tm-FAULTSUITE-mixed-f3a05c8e7d19',
    inProcess: 'tm-FAULTSUITE-inproc-81c4e6a0f5b2'
} as const;

export const ALL_KEYS: readonly string[] = Object.values(KEYS).flat();

/** Every 8-character window of every key: a partial key is a leak too. */
const FRAGMENTS: readonly string[] = [
    ...new Set(ALL_KEYS.flatMap(key => Array.from({ length: key.length - 7 }, (_, i) => key.slice(i, i + 8))))
];

/** The key fragments found in `text`. */
export function findLeaks(text: string): string[] {
    return FRAGMENTS.filter(fragment => text.includes(fragment));
}

/** What the closing summary reports; one module instance per test file, so the suite lives in one file. */
export const tally = {
    /** Fault rules, revocations, removed endpoints, dead upstreams and rotations set up by the suite. */
    faultsInjected: 0,
    /** Upstream requests the fakes answered with an error status or a reset, or that timed out on the client side. */
    faultedResponses: 0,
    badInputs: 0,
    /** How the bad inputs were answered: isError results, JSON-RPC errors, valid answers (legal but unknown input). */
    badInputOutcomes: { toolErrors: 0, rpcErrors: 0, answers: 0 },
    /** Resident memory the hostile-input server grew by, in bytes. */
    rssGrowthBytes: 0,
    /** Tool calls (and raw tools/call requests) that got an answer: a result or a JSON-RPC error. */
    callsAnswered: 0,
    servers: 0,
    crashes: 0,
    leaks: 0,
    nonProtocolLines: 0,
    upstreamRequests: 0,
    upstreamProblems: 0
};

/** Text from in-process servers and the client side (results, thrown errors) that a leak check must also see. */
export const capturedOutput: string[] = [];

export function record(value: unknown): void {
    capturedOutput.push(typeof value === 'string' ? value : value instanceof Error ? errorText(value) : JSON.stringify(value));
}

/** Everything about an error that could be printed or shown to a model. */
export function errorText(error: unknown): string {
    if (!(error instanceof Error)) return String(error);
    return [error.message, error.stack ?? '', String(error.cause), JSON.stringify(error), inspect(error, { depth: 6 })].join('\n');
}

export const textOf = (result: CallToolResult): string => result.content.map(part => (part.type === 'text' ? part.text : '')).join('\n');

/** Inject a fault at the fake and count it. */
export function inject(fake: FakeUpstream, rule: FaultRule): void {
    tally.faultsInjected += 1;
    fake.inject(rule);
}

/** Count a fault the suite causes by other means (a revocation, a removed endpoint, a closed upstream). */
export function countFault(): void {
    tally.faultsInjected += 1;
}

// ---------------------------------------------------------------------------------------------------------------
// The upstream audit: what reached the fake's URLs must be only known parameters with safe, encoded values.

const KNOWN_PATHS: ReadonlySet<string> = new Set(ENDPOINTS);
const PARAMS = new Set(['token_id', 'symbol', 'token_name', 'limit', 'page', 'type', 'startDate', 'endDate']);
/** What URLSearchParams leaves unescaped, plus `%` escapes and `+` for a space. */
const ENCODED = /^[A-Za-z0-9%+*._-]*$/;
/**
 * The structural pieces of SQL injection: a quote at a word's edge (opening or closing a string literal), comment
 * markers, statement separators, comparisons. Words alone ("union select") cannot break out of a parameter and
 * are legal, if unknown, token names.
 */
const SQL_FRAGMENT = /--|;|\/\*|\*\/|=|(?<![\p{L}\p{N}])'|'(?![\p{L}\p{N}])/u;
const UNSAFE_IN_VALUE = /[/?&=%#\\\u0000-\u001f\u007f]/;

/** Why a recorded upstream request is not what the client may send; empty when it is fine. */
export function auditCall(call: FakeCall): string[] {
    const problems: string[] = [];
    const where = `${call.path}${call.rawQuery.slice(0, 200)}`;
    if (!KNOWN_PATHS.has(call.path)) problems.push(`unknown path: ${where}`);
    const raw = call.rawQuery.replace(/^\?/, '');
    if (raw === '') return problems;
    const seen = new Set<string>();
    for (const part of raw.split('&')) {
        const eq = part.indexOf('=');
        const name = eq < 0 ? part : part.slice(0, eq);
        const value = eq < 0 ? '' : part.slice(eq + 1);
        if (eq < 0 || !PARAMS.has(name)) {
            problems.push(`unknown parameter "${name.slice(0, 40)}": ${where}`);
            continue;
        }
        if (seen.has(name)) problems.push(`repeated parameter ${name}: ${where}`);
        seen.add(name);
        if (!ENCODED.test(value)) {
            problems.push(`value of ${name} not URL-encoded: ${where}`);
            continue;
        }
        let decoded: string;
        try {
            decoded = decodeURIComponent(value.replace(/\+/g, ' '));
        } catch {
            problems.push(`value of ${name} is not valid percent-encoding: ${where}`);
            continue;
        }
        const bad = (why: string) => problems.push(`${name} ${why}: ${where}`);
        switch (name) {
            case 'token_id':
                if (!/^\d{1,15}(,\d{1,15})*$/.test(decoded)) bad('is not digits and commas');
                break;
            case 'symbol':
            case 'token_name':
                for (const item of decoded.split(',')) {
                    if (!isValidFilterValue(item)) bad(`item ${JSON.stringify(item.slice(0, 40))} fails the client's filter pattern`);
                    else if (UNSAFE_IN_VALUE.test(item)) bad(`item ${JSON.stringify(item.slice(0, 40))} holds a URL or control character`);
                    else if (SQL_FRAGMENT.test(item)) bad(`item ${JSON.stringify(item.slice(0, 40))} holds a SQL fragment`);
                }
                break;
            case 'limit':
            case 'page':
                if (!/^\d{1,3}$/.test(decoded) || Number(decoded) < 1) bad('is not a small positive integer');
                break;
            case 'type':
                if (decoded !== 'active' && decoded !== 'past') bad('is not active or past');
                break;
            default:
                if (!/^\d{4}-\d{2}-\d{2}$/.test(decoded)) bad('is not YYYY-MM-DD');
        }
    }
    return problems;
}

const fakes = new Set<FakeUpstream>();

/** A fake upstream the suite audits when it closes. */
export async function startFake(): Promise<FakeUpstream> {
    const fake = await FakeUpstream.start();
    fakes.add(fake);
    return fake;
}

/** Every audit problem in the calls the fake has seen since its last reset. */
function auditFake(fake: FakeUpstream): string[] {
    return fake.calls.flatMap(auditCall);
}

/** Audit what the fake saw since its last reset, count it, and close it. */
export async function closeFake(fake: FakeUpstream): Promise<string[]> {
    const problems = settleFake(fake);
    fakes.delete(fake);
    await fake.close();
    return problems;
}

/** Close every fake a test left open (a failed test may skip its own cleanup); returns their audit problems. */
export async function closeAllFakes(): Promise<string[]> {
    const problems: string[] = [];
    for (const fake of [...fakes]) problems.push(...(await closeFake(fake)));
    return problems;
}

/**
 * Count and audit the calls a fake has recorded, then `reset()` it (calls, faults, revocations, removed endpoints).
 * Tests call this instead of `reset()`, so nothing any fake saw escapes the audit.
 */
export function settleFake(fake: FakeUpstream): string[] {
    const problems = auditFake(fake);
    tally.upstreamRequests += fake.calls.length;
    tally.upstreamProblems += problems.length;
    tally.faultedResponses += fake.calls.filter(call => call.status !== 200 || call.aborted).length;
    fake.reset();
    return problems;
}

// ---------------------------------------------------------------------------------------------------------------
// Spawned servers.

export interface SessionReport {
    label: string;
    /** Exited before the suite closed it, or did not exit cleanly (code 0) when it did. */
    crashed: boolean;
    nonProtocolLines: string[];
    leaks: string[];
}

/** A JSON-RPC response as it came, not validated: a bad server could send any shape. */
export interface RawResponse {
    jsonrpc: '2.0';
    id: string | number;
    result?: Record<string, unknown>;
    error?: { code: unknown; message: unknown; data?: unknown };
}

/**
 * A built server over stdio with the SDK Client, plus a raw JSON-RPC channel (string ids starting with `raw:`)
 * for requests the Client would never send, answered without the Client seeing them.
 */
export class Session {
    private closed: SessionReport | undefined;
    private readonly waiting = new Map<string, (message: RawResponse) => void>();

    constructor(
        readonly label: string,
        readonly client: Client,
        readonly proc: ServerProcess
    ) {
        const forward = proc.onmessage;
        proc.onmessage = (message: JSONRPCMessage) => {
            const id = (message as { id?: unknown }).id;
            if (typeof id === 'string' && id.startsWith('raw:') && !('method' in message)) {
                const resolve = this.waiting.get(id);
                this.waiting.delete(id);
                resolve?.(message as RawResponse);
                return;
            }
            forward?.(message);
        };
    }

    get alive(): boolean {
        return this.proc.exitCode === null;
    }

    /** A tool call through the SDK Client; results and thrown errors go to the leak check. */
    async call(name: string, args: Record<string, unknown>): Promise<CallToolResult> {
        try {
            const result = (await this.client.callTool({ name, arguments: args })) as CallToolResult;
            tally.callsAnswered += 1;
            return result;
        } catch (error) {
            record(error);
            throw error;
        }
    }

    /** A raw `tools/call` with any params; resolves with the JSON-RPC response. */
    async raw(id: string, params: unknown): Promise<RawResponse> {
        if (!id.startsWith('raw:')) throw new Error('raw ids start with "raw:"');
        const answered = new Promise<RawResponse>(resolve => this.waiting.set(id, resolve));
        // A server that dies fails the call at once rather than leaving it to the test timeout.
        const died = this.proc.waitForExit().then(code => Promise.reject(new Error(`server exited (${code}) before answering ${id}`)));
        await this.proc.send({ jsonrpc: '2.0', id, method: 'tools/call', params } as JSONRPCMessage);
        const response = await Promise.race([answered, died]);
        tally.callsAnswered += 1;
        return response;
    }

    /** Resident memory of the child, from /proc (Linux). */
    rssBytes(): number {
        const status = readFileSync(`/proc/${this.proc.pid}/status`, 'utf8');
        const match = /^VmRSS:\s+(\d+)\s+kB/m.exec(status);
        if (!match) throw new Error('no VmRSS in /proc status');
        return Number(match[1]) * 1024;
    }

    /** JSON-RPC responses on stdout per id, counted from the raw lines. */
    responsesById(): Map<string, number> {
        const counts = new Map<string, number>();
        for (const line of this.proc.stdoutLines) {
            let message: { id?: unknown; method?: unknown };
            try {
                message = JSON.parse(line) as typeof message;
            } catch {
                continue;
            }
            if (message.id === undefined || message.method !== undefined) continue;
            const id = typeof message.id === 'string' || typeof message.id === 'number' ? String(message.id) : JSON.stringify(message.id);
            counts.set(id, (counts.get(id) ?? 0) + 1);
        }
        return counts;
    }

    /** Close stdin, wait for the exit, and check everything the process wrote. Idempotent. */
    async close(): Promise<SessionReport> {
        if (this.closed) return this.closed;
        const diedEarly = this.proc.exitCode !== null;
        await this.proc.close();
        const crashed = diedEarly || this.proc.exitCode !== 0;
        const nonProtocolLines = this.proc.nonProtocolLines();
        const leaks = findLeaks([...this.proc.stdoutLines, this.proc.stderr].join('\n'));
        this.closed = { label: this.label, crashed, nonProtocolLines, leaks };
        if (crashed) tally.crashes += 1;
        tally.nonProtocolLines += nonProtocolLines.length;
        tally.leaks += leaks.length;
        return this.closed;
    }
}

export const sessions: Session[] = [];

/** Spawn the built CLI with the suite's defaults (no disk cache, debug logs so there is more to check for leaks). */
export async function spawnServer(label: string, env: Record<string, string>): Promise<Session> {
    const { client, server } = await startServer({ CRYPTO_INTEL_CACHE_DIR: 'off', CRYPTO_INTEL_LOG_LEVEL: 'debug', ...env });
    const session = new Session(label, client, server);
    sessions.push(session);
    tally.servers += 1;
    return session;
}

/** The number of requests the fake saw for `path` since `from` (an index into `fake.calls`). */
export function attempts(fake: FakeUpstream, path: string, from = 0): number {
    return fake.calls.slice(from).filter(call => call.path === path).length;
}

/** Poll `check` until it holds, up to `limitMs` of real time (a key file re-read is on the child's own clock). */
export async function eventually(check: () => boolean | Promise<boolean>, limitMs: number, stepMs = 50): Promise<boolean> {
    const until = Date.now() + limitMs;
    while (Date.now() < until) {
        if (await check()) return true;
        await sleep(stepMs);
    }
    return check();
}

const sleep = (ms: number): Promise<void> => new Promise(resolve => setTimeout(resolve, ms));
