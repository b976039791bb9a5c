import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { ConfigError, loadConfig, type Config } from '../../src/config.js';

const TOKEN = 'config-token-0123456789abcdef';
const dir = mkdtempSync(join(tmpdir(), 'crypto-intel-config-'));

afterAll(() => rmSync(dir, { recursive: true, force: true }));

function run(env: Record<string, string>, argv: string[]): Config {
    const command = loadConfig(env, argv);
    if (command.kind !== 'run') throw new Error(`expected a run command, got ${command.kind}`);
    return command.config;
}

const refusal = (env: Record<string, string>, argv: string[]): string => {
    try {
        loadConfig(env, argv);
    } catch (error) {
        if (error instanceof ConfigError) return error.message;
        throw error;
    }
    throw new Error('expected a ConfigError');
};

describe('HTTP and Redis configuration', () => {
    it('keeps stdio and everything in process by default', () => {
        const config = run({}, []);
        expect(config.transport).toBe('stdio');
        expect(config.redisUrl).toBeNull();
    });

    it('does not check HTTP variables on stdio', () => {
        expect(run({ CRYPTO_INTEL_HTTP_HOST: '0.0.0.0', CRYPTO_INTEL_HTTP_PORT: 'nope' }, []).transport).toBe('stdio');
    });

    it('serves HTTP on 127.0.0.1:3333 unless told otherwise, flags before variables', () => {
        expect(run({}, ['--http']).http).toMatchObject({ host: '127.0.0.1', port: 3333, tokens: [], ratePerMin: 600, allowAnyHost: false });
        expect(run({ CRYPTO_INTEL_HTTP_PORT: '4000', CRYPTO_INTEL_HTTP_HOST: 'localhost' }, ['--http']).http).toMatchObject({
            host: 'localhost',
            port: 4000
        });
        expect(run({ CRYPTO_INTEL_HTTP_PORT: '4000' }, ['--http', '--port', '0', '--host=::1']).http).toMatchObject({
            host: '::1',
            port: 0
        });
    });

    it('needs tokens to bind beyond loopback, and takes them from the variable and the file', () => {
        expect(refusal({}, ['--http', '--host', '0.0.0.0'])).toMatch(
            /^refusing to serve on non-loopback host 0\.0\.0\.0 without access tokens/
        );
        const file = join(dir, 'tokens');
        writeFileSync(file, `# team tokens\n${TOKEN}-file\n\n`, { mode: 0o600 });
        const config = run({ CRYPTO_INTEL_HTTP_TOKENS: TOKEN, CRYPTO_INTEL_HTTP_TOKENS_FILE: file }, ['--http', '--host', '0.0.0.0']);
        expect(config.http.tokens).toEqual([TOKEN, `${TOKEN}-file`]);
    });

    it('refuses short tokens without quoting them, and a tokens file it cannot read', () => {
        const message = refusal({ CRYPTO_INTEL_HTTP_TOKENS: 'short-secret' }, ['--http']);
        expect(message).toMatch(/token #1 is shorter than 16 characters/);
        expect(message).not.toContain('short-secret');
        expect(refusal({ CRYPTO_INTEL_HTTP_TOKENS_FILE: join(dir, 'missing') }, ['--http'])).toMatch(
            /CRYPTO_INTEL_HTTP_TOKENS_FILE cannot be read.*ENOENT/
        );
    });

    it('reads allowed hosts, the rate and the Redis URL', () => {
        const config = run(
            {
                CRYPTO_INTEL_HTTP_ALLOWED_HOSTS: 'MCP.example.com, *',
                CRYPTO_INTEL_HTTP_RATE_PER_MIN: '0',
                CRYPTO_INTEL_REDIS_URL: 'redis://:pw@10.0.0.5:6379/2',
                CRYPTO_INTEL_REDIS_TIMEOUT_MS: '400'
            },
            ['--http']
        );
        expect(config.http).toMatchObject({ allowedHosts: ['mcp.example.com'], allowAnyHost: true, ratePerMin: 0 });
        expect(config.redisUrl).toBe('redis://:pw@10.0.0.5:6379/2');
        expect(config.redisTimeoutMs).toBe(400);
        expect(run({}, []).redisTimeoutMs).toBe(150);
    });

    it('explains bad values in one line', () => {
        expect(refusal({}, ['--port', '3000'])).toBe('--port and --host apply to the HTTP transport: add --http');
        expect(refusal({}, ['--http', '--port'])).toBe('option --port needs a value (see --help)');
        expect(refusal({}, ['--http', '--port', '70000'])).toBe('--port must be at most 65535');
        expect(refusal({}, ['--http=yes'])).toBe('option --http takes no value');
        expect(refusal({ CRYPTO_INTEL_HTTP_RATE_PER_MIN: '-1' }, ['--http'])).toBe('CRYPTO_INTEL_HTTP_RATE_PER_MIN must be at least 0');
        expect(refusal({ CRYPTO_INTEL_REDIS_TIMEOUT_MS: '5' }, [])).toBe('CRYPTO_INTEL_REDIS_TIMEOUT_MS must be at least 10');
        expect(refusal({ CRYPTO_INTEL_REDIS_URL: 'http://cache:6379' }, [])).toMatch(/must start with redis:\/\/ or rediss:\/\//);
        const garbled = refusal({ CRYPTO_INTEL_REDIS_URL: 'redis://:secret-pw@cache:port' }, []);
        expect(garbled).toMatch(/^CRYPTO_INTEL_REDIS_URL is not a URL/);
        expect(garbled).not.toContain('secret-pw');
    });
});
