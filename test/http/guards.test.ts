import { describe, expect, it } from 'vitest';
import { isLoopbackHost } from '../../src/config.js';
import { bearerToken, TokenVerifier } from '../../src/http/auth.js';
import { HostGuard } from '../../src/http/origin.js';
import { RateLimiter } from '../../src/http/rate-limit.js';
import { FakeClock } from '../helpers/clock.js';

describe('bearer tokens', () => {
    it('reads the token of a Bearer header, any case, and nothing else', () => {
        expect(bearerToken('Bearer abc.def-123')).toBe('abc.def-123');
        expect(bearerToken('bearer   abc ')).toBe('abc');
        expect(bearerToken('Basic abc')).toBeNull();
        expect(bearerToken('Bearer a b')).toBeNull();
        expect(bearerToken(undefined)).toBeNull();
    });

    it('matches any configured token by position, and nothing when none match', () => {
        const verifier = new TokenVerifier(['first-token-0123456789', 'second-token-0123456789']);
        expect(verifier.required).toBe(true);
        expect(verifier.match('second-token-0123456789')).toBe(1);
        expect(verifier.match('first-token-0123456789')).toBe(0);
        expect(verifier.match('first-token-012345678')).toBe(-1);
        expect(verifier.match('')).toBe(-1);
        expect(verifier.match(null)).toBe(-1);
        expect(new TokenVerifier([]).required).toBe(false);
    });
});

describe('Host and Origin checks', () => {
    it('accepts loopback names and the bound host, with or without a port', () => {
        const guard = new HostGuard({ host: '127.0.0.1', allowedHosts: [], allowAnyHost: false });
        for (const host of ['127.0.0.1:3333', 'localhost:3333', 'LOCALHOST', '[::1]:3333']) expect(guard.check(host, undefined)).toBeNull();
        expect(guard.check('127.0.0.1:3333', 'http://localhost:6274')).toBeNull();
        expect(guard.check('127.0.0.1:3333', 'http://[::1]:6274')).toBeNull();
    });

    it('refuses foreign hosts, foreign origins and a missing Host', () => {
        const guard = new HostGuard({ host: '127.0.0.1', allowedHosts: [], allowAnyHost: false });
        expect(guard.check('attacker.example:3333', undefined)).toBe('Host header not allowed');
        expect(guard.check(undefined, undefined)).toBe('Host header not allowed');
        expect(guard.check('127.0.0.1:3333', 'https://attacker.example')).toBe('Origin not allowed');
        expect(guard.check('127.0.0.1:3333', 'null')).toBe('Origin not allowed');
    });

    it('accepts the configured names, and any with *, never the wildcard bind address as a name', () => {
        const named = new HostGuard({ host: '0.0.0.0', allowedHosts: ['mcp.example.com'], allowAnyHost: false });
        expect(named.check('mcp.example.com', 'https://mcp.example.com')).toBeNull();
        expect(named.check('0.0.0.0:3333', undefined)).toBe('Host header not allowed');
        expect(new HostGuard({ host: '10.1.2.3', allowedHosts: [], allowAnyHost: false }).check('10.1.2.3:3333', undefined)).toBeNull();
        expect(new HostGuard({ host: '0.0.0.0', allowedHosts: [], allowAnyHost: true }).check('anything', 'https://elsewhere')).toBeNull();
    });

    it('knows loopback addresses from the others', () => {
        for (const host of ['localhost', '127.0.0.1', '127.1.2.3', '::1', '[::1]']) expect(isLoopbackHost(host)).toBe(true);
        for (const host of ['0.0.0.0', '::', '10.0.0.1', 'example.com', '127.0.0.1.example.com']) expect(isLoopbackHost(host)).toBe(false);
    });
});

describe('rate limit', () => {
    it('lets a minute of requests through, then refuses with the seconds until the next one', () => {
        const clock = new FakeClock();
        const limiter = new RateLimiter(6, clock);
        for (let i = 0; i < 6; i++) expect(limiter.take('token#1')).toEqual({ ok: true });
        expect(limiter.take('token#1')).toEqual({ ok: false, retryAfterS: 10 });
        expect(limiter.take('token#2')).toEqual({ ok: true });
        clock.advance(4_000);
        expect(limiter.take('token#1')).toEqual({ ok: false, retryAfterS: 6 });
        clock.advance(6_000);
        expect(limiter.take('token#1')).toEqual({ ok: true });
        expect(limiter.take('token#1')).toEqual({ ok: false, retryAfterS: 10 });
    });

    it('tracks only callers that spent: checks alone remember nobody, and a refilled allowance is forgotten', () => {
        // Failed bearer attempts are checked per address on every request: a public server sees many addresses.
        const clock = new FakeClock();
        const limiter = new RateLimiter(6, clock);
        for (let i = 0; i < 100; i++) expect(limiter.check(`10.0.0.${i}`)).toEqual({ ok: true });
        expect(limiter.tracked).toBe(0);
        for (let i = 0; i < 6; i++) limiter.take('10.0.0.1');
        expect(limiter.tracked).toBe(1);
        expect(limiter.check('10.0.0.1')).toEqual({ ok: false, retryAfterS: 10 });
        clock.advance(30_000);
        expect(limiter.check('10.0.0.1')).toEqual({ ok: true });
        expect(limiter.tracked).toBe(1);
        clock.advance(30_000);
        expect(limiter.check('10.0.0.1')).toEqual({ ok: true });
        expect(limiter.tracked).toBe(0);
        // Forgotten is the same as full: a minute's burst again, then refusals.
        for (let i = 0; i < 6; i++) expect(limiter.take('10.0.0.1')).toEqual({ ok: true });
        expect(limiter.take('10.0.0.1')).toEqual({ ok: false, retryAfterS: 10 });
    });

    it('is off at 0', () => {
        const limiter = new RateLimiter(0, new FakeClock());
        for (let i = 0; i < 1000; i++) expect(limiter.take('x').ok).toBe(true);
    });
});
