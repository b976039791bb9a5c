import { mkdtempSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { TokenMetricsClient } from '../../src/api/client.js';
import { UpstreamHttp, type HttpOptions } from '../../src/api/http.js';
import { KeyManager, type KeyManagerOptions } from '../../src/keys/manager.js';
import { StderrLogger, type LogLevel, type Logger } from '../../src/logger.js';
import { Redactor } from '../../src/redact.js';
import type { FakeUpstream } from '../fake-upstream/index.js';
import { FakeClock } from '../helpers/clock.js';

/** A logger that keeps its lines in memory, to assert on what would reach stderr. */
export interface MemoryLog {
    logger: StderrLogger;
    lines: string[];
    text(): string;
    /** Parsed lines whose `msg` contains `fragment`. */
    find(fragment: string): Array<Record<string, unknown>>;
}

export function memoryLogger(level: LogLevel = 'debug', redactor = new Redactor()): MemoryLog {
    const lines: string[] = [];
    const logger = new StderrLogger(level, redactor, line => lines.push(line));
    return {
        logger,
        lines,
        text: () => lines.join(''),
        find: fragment =>
            lines.map(line => JSON.parse(line) as Record<string, unknown>).filter(entry => String(entry.msg).includes(fragment))
    };
}

/** A key file in its own temporary directory, written in place or replaced by rename as editors do. */
export interface TempKeyFile {
    path: string;
    write(lines: readonly string[]): void;
    replace(lines: readonly string[]): void;
    remove(): void;
    cleanup(): void;
}

export function tempKeyFile(lines?: readonly string[]): TempKeyFile {
    const dir = mkdtempSync(join(tmpdir(), 'cim-keys-'));
    const path = join(dir, 'keys.txt');
    const body = (content: readonly string[]) => content.map(line => `${line}\n`).join('');
    const file: TempKeyFile = {
        path,
        write(content) {
            writeFileSync(path, body(content), { mode: 0o600 });
        },
        replace(content) {
            const staging = join(dir, `.keys.txt.${Math.random().toString(36).slice(2)}`);
            writeFileSync(staging, body(content), { mode: 0o600 });
            renameSync(staging, path);
        },
        remove() {
            rmSync(path, { force: true });
        },
        cleanup() {
            rmSync(dir, { recursive: true, force: true });
        }
    };
    if (lines) file.write(lines);
    return file;
}

export interface ManagedClient {
    client: TokenMetricsClient;
    http: UpstreamHttp;
    keys: KeyManager;
    clock: FakeClock;
    redactor: Redactor;
    close(): Promise<void>;
}

/** The real client and HTTP stack against the fake, with a KeyManager (instead of a bare KeyPool), a fake clock and no jitter. */
export function managedClient(
    fake: FakeUpstream,
    options: Partial<Omit<KeyManagerOptions, 'clock'>> & { clock?: FakeClock; logger?: Logger; http?: Partial<HttpOptions> } = {}
): ManagedClient {
    const clock = options.clock ?? new FakeClock();
    const redactor = options.redactor ?? new Redactor();
    const logger = options.logger ?? memoryLogger('debug', redactor).logger;
    const keys = new KeyManager({
        envKeys: options.envKeys ?? [],
        keyFile: options.keyFile ?? null,
        redactor,
        logger,
        clock,
        watch: options.watch ?? false,
        ...(options.recheckMs === undefined ? {} : { recheckMs: options.recheckMs }),
        ...(options.audit === undefined ? {} : { audit: options.audit }),
        ...(options.allowSharedKeyFile === undefined ? {} : { allowSharedKeyFile: options.allowSharedKeyFile })
    });
    const http = new UpstreamHttp(
        { baseUrl: fake.baseUrl, attemptTimeoutMs: 2_000, deadlineMs: 20_000, concurrency: 4, random: () => 1, ...options.http },
        keys,
        clock,
        logger
    );
    return {
        client: new TokenMetricsClient(http, clock, logger),
        http,
        keys,
        clock,
        redactor,
        async close() {
            keys.close();
            await http.close();
        }
    };
}

/** Every 8-character window of each secret: a partial key in a text is a leak too. */
export function keyWindows(...secrets: string[]): string[] {
    return secrets.flatMap(secret => Array.from({ length: Math.max(0, secret.length - 7) }, (_, i) => secret.slice(i, i + 8)));
}

/** The error a promise rejects with (fails the test if it resolves). */
export async function rejection(promise: Promise<unknown>): Promise<Error & Record<string, unknown>> {
    try {
        await promise;
    } catch (error) {
        return error as Error & Record<string, unknown>;
    }
    throw new Error('expected the call to fail');
}
