import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { connect } from 'node:net';
import { freePort } from './ports.js';

/** Whether `redis-server` is on the PATH (`.ci/run` installs it; a developer may not have it). */
export const HAS_REDIS = spawnSync('redis-server', ['--version'], { stdio: 'ignore' }).status === 0;

/**
 * Redis tests run when redis-server is installed; in CI they must, so a missing binary fails there instead of
 * skipping quietly.
 */
export function redisTestsEnabled(): boolean {
    if (HAS_REDIS) return true;
    if (process.env.CI === 'true')
        throw new Error('redis-server is not installed: .ci/run installs it with apt-get install -y redis-server');
    process.stderr.write('redis-server not found: skipping the Redis tests (apt-get install redis-server to run them)\n');
    return false;
}

/** Resolves once a TCP connection to the port opens, polling for up to `timeoutMs`. */
async function waitForPort(port: number, timeoutMs: number, exited: () => boolean): Promise<void> {
    const giveUp = Date.now() + timeoutMs;
    for (;;) {
        const open = await new Promise<boolean>(resolve => {
            const socket = connect({ host: '127.0.0.1', port });
            socket.once('connect', () => {
                socket.destroy();
                resolve(true);
            });
            socket.once('error', () => resolve(false));
        });
        if (open) return;
        if (exited()) throw new Error(`redis-server on port ${port} exited before it listened`);
        if (Date.now() > giveUp) throw new Error(`redis-server did not listen on port ${port} within ${timeoutMs} ms`);
        await new Promise(resolve => setTimeout(resolve, 20));
    }
}

/**
 * A throwaway redis-server on 127.0.0.1 with nothing saved to disk. `stop()` kills it (SIGKILL, like a crash);
 * `start()` brings it back on the same port, empty.
 */
export class RedisServer {
    private child: ChildProcess | null = null;
    private exited = true;

    private constructor(readonly port: number) {}

    static async start(): Promise<RedisServer> {
        const server = new RedisServer(await freePort());
        await server.start();
        return server;
    }

    get url(): string {
        return `redis://127.0.0.1:${this.port}`;
    }

    async start(): Promise<void> {
        if (this.child !== null) return;
        const child = spawn('redis-server', ['--port', String(this.port), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no'], {
            stdio: 'ignore'
        });
        this.child = child;
        this.exited = false;
        child.once('exit', () => (this.exited = true));
        await waitForPort(this.port, 10_000, () => this.exited);
    }

    /** Sends a signal to the server, e.g. SIGSTOP to stall it (connections stay open, nothing answers) and SIGCONT. */
    signal(name: NodeJS.Signals): void {
        if (this.child !== null && !this.exited) this.child.kill(name);
    }

    /** Kills the server and waits until it is gone. */
    async stop(): Promise<void> {
        const child = this.child;
        if (child === null) return;
        this.child = null;
        if (!this.exited) {
            const gone = new Promise(resolve => child.once('exit', resolve));
            child.kill('SIGKILL');
            await gone;
        }
    }
}
