import { upstreamOptions } from './app.js';
import { UpstreamHttp } from './api/http.js';
import { systemClock, type Clock } from './clock.js';
import type { Config } from './config.js';
import { planProbes, runDoctor } from './doctor/probes.js';
import { doctorExitCode, formatHeader, formatProbe, formatVerdict } from './doctor/report.js';
import { KeyManager, keySources } from './keys/manager.js';
import { StderrLogger } from './logger.js';
import { Redactor } from './redact.js';
import { VERSION } from './version.js';

/**
 * `crypto-intel-mcp doctor`: one request to every endpoint the tools use, with the user's own keys and settings,
 * and a report of how each answer compares with its row schema. Built to be pasted into a bug report: it prints
 * key fingerprints, the upstream host and endpoint paths, never a key, a query string or a full URL.
 *
 * `planProbes` + `runDoctor` (doctor/probes.ts: injected HTTP and clock) + `formatReport` (doctor/report.ts: pure) are
 * the testable parts; `doctorCommand` wires them to the configuration and the terminal.
 */

/** The whole run's limit when each request's own deadline would allow more (eight requests at 25 s each). */
const RUN_CAP_MS = 120_000;

const NO_KEY = `crypto-intel-mcp doctor: no Token Metrics API key is configured, so there is nothing to check.
Set one of these in the environment (the same variables the server reads), then run doctor again:
  TOKEN_METRICS_API_KEY=<your key>
  TOKEN_METRICS_API_KEYS=<key1>,<key2>             several keys, tried in order
  TOKEN_METRICS_API_KEY_FILE=<path>                a file with one key per line
Keys are created in the API section of your Token Metrics account.
`;

export interface DoctorIo {
    /** Where the report goes: the CLI passes its one writer for a person (stdout outside stdio mode). */
    write(text: string): void;
    clock?: Clock;
}

/**
 * The `doctor` command: the server's key and HTTP settings, no cache, no Redis. Returns the exit code: 0 healthy,
 * 1 drift or a failed endpoint, 2 no key configured.
 */
export async function doctorCommand(config: Config, io: DoctorIo): Promise<number> {
    const clock = io.clock ?? systemClock;
    const redactor = new Redactor();
    const logger = new StderrLogger(config.logLevel, redactor);
    const print = (lines: readonly string[]): void => io.write(redactor.scrub(lines.map(line => `${line}\n`).join('')));

    if (config.apiKeys.length === 0 && config.apiKeyFile === null) {
        io.write(NO_KEY);
        return 2;
    }
    const keys = new KeyManager({ ...keySources(config), redactor, logger, clock, watch: false });
    const http = new UpstreamHttp(upstreamOptions(config), keys, clock, logger);
    try {
        const summary = keys.describe();
        if (summary.configured === 0) {
            io.write(NO_KEY);
            return 2;
        }
        const probes = planProbes(clock.now());
        const base = new URL(config.baseUrl);
        const upstream = `${base.host}${base.pathname.replace(/\/+$/, '')}`;
        print(formatHeader({ version: VERSION, upstream, keys: summary.fingerprints, endpoints: probes.length }));
        const width = Math.max(18, ...probes.map(probe => probe.endpoint.length));
        const limitMs = Math.min(probes.length * config.upstream.deadlineMs, Math.max(config.upstream.deadlineMs, RUN_CAP_MS));
        const results = await runDoctor(probes, {
            http,
            clock,
            signal: AbortSignal.timeout(limitMs),
            onResult: result => print(formatProbe(result, width))
        });
        print([formatVerdict(results)]);
        return doctorExitCode(results);
    } finally {
        keys.close();
        await http.close();
    }
}
