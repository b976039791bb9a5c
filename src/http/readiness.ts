import { connect } from 'node:net';
import type { Runtime } from '../app.js';

const PROBE_TIMEOUT_MS = 1_000;
/** Load balancers probe every few seconds; the upstream host is dialled at most this often whatever they do. */
const PROBE_REUSE_MS = 5_000;

/** The body of `/readyz`: states and counts only, never a key, a token, a fingerprint or a URL. */
export interface Readiness {
    status: 'ok' | 'degraded' | 'unavailable' | 'stopping';
    checks: {
        upstream: 'reachable' | 'unreachable';
        keys: { configured: number; usable: number };
        cache: { entries: number };
        redis: 'ok' | 'unavailable' | 'not configured';
        /** Upstream values of the wrong kind read as null, and rows dropped for lack of identity, since start-up. */
        upstreamFormat: { driftedValues: number; droppedRows: number };
    };
}

const sum = (counts: Record<string, number>): number => Object.values(counts).reduce((total, count) => total + count, 0);

/** Whether a TCP connection to the upstream opens. It sends nothing, so it costs no credit and carries no key. */
function dial(host: string, port: number): Promise<boolean> {
    return new Promise(resolve => {
        const socket = connect({ host, port, timeout: PROBE_TIMEOUT_MS });
        const done = (reachable: boolean): void => {
            socket.destroy();
            resolve(reachable);
        };
        socket.once('connect', () => done(true));
        socket.once('timeout', () => done(false));
        socket.once('error', () => done(false));
    });
}

/**
 * Readiness of a replica. `ok`: the upstream answers TCP, keys are usable and Redis (when configured) is up.
 * `degraded` (still 200, the replica answers): one of those is not so, but the upstream or some cache can serve.
 * `unavailable` (503): the upstream is unreachable and there is nothing cached to serve. `stopping` (503): draining.
 */
export class ReadinessProbe {
    private readonly host: string;
    private readonly port: number;
    private last: { at: number; reachable: Promise<boolean> } | null = null;

    constructor(
        baseUrl: string,
        private readonly runtime: Pick<Runtime, 'keys' | 'market' | 'redis' | 'drift'>
    ) {
        const url = new URL(baseUrl);
        this.host = url.hostname.replace(/^\[(.*)\]$/, '$1');
        this.port = Number(url.port || (url.protocol === 'https:' ? 443 : 80));
    }

    async check(stopping: boolean): Promise<Readiness> {
        const now = Date.now();
        if (this.last === null || now - this.last.at >= PROBE_REUSE_MS) this.last = { at: now, reachable: dial(this.host, this.port) };
        const reachable = await this.last.reachable;
        const keys = this.runtime.keys.describe();
        const entries = this.runtime.market.stats().entries;
        const redis = this.runtime.redis();
        const drift = this.runtime.drift();
        const checks: Readiness['checks'] = {
            upstream: reachable ? 'reachable' : 'unreachable',
            keys: { configured: keys.configured, usable: keys.usable },
            cache: { entries },
            redis: redis === null ? 'not configured' : redis.up ? 'ok' : 'unavailable',
            upstreamFormat: { driftedValues: sum(drift.wrongKinds), droppedRows: sum(drift.droppedRows) }
        };
        let status: Readiness['status'];
        if (stopping) status = 'stopping';
        else if (!reachable && entries === 0 && checks.redis !== 'ok') status = 'unavailable';
        else if (!reachable || keys.usable === 0 || checks.redis === 'unavailable') status = 'degraded';
        else status = 'ok';
        return { status, checks };
    }
}
