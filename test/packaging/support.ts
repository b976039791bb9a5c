import { execFile, spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

/** The repository root, from test/packaging and from its build in dist/test/packaging. */
export const ROOT = ['../..', '../../..']
    .map(relative => fileURLToPath(new URL(relative, import.meta.url)))
    .find(dir => existsSync(join(dir, 'mcpb', 'manifest.json')))!;

/** The mcpb CLI from the dev dependencies, run with this Node. */
export const MCPB_CLI = join(ROOT, 'node_modules', '@anthropic-ai', 'mcpb', 'dist', 'cli', 'cli.js');

const NPM = process.platform === 'win32' ? 'npm.cmd' : 'npm';
const NPX = process.platform === 'win32' ? 'npx.cmd' : 'npx';

/** Why the packaging tests cannot run here (npm missing), or `null`. Only npm's absence skips them. */
export function npmMissing(): string | null {
    const probe = spawnSync(NPM, ['--version'], { encoding: 'utf8', shell: process.platform === 'win32' });
    return probe.status === 0 ? null : `npm is not on PATH (${probe.error?.message ?? `exit ${probe.status}`}): packaging tests skipped`;
}

/**
 * The environment for a child npm: the caller's, minus what `npm test` sets for its own scripts (the package's
 * fields, the lifecycle, its prefixes and omit/include choices), which would otherwise steer the nested install.
 */
export function childEnv(extra: Record<string, string> = {}): NodeJS.ProcessEnv {
    const env: NodeJS.ProcessEnv = {};
    for (const [name, value] of Object.entries(process.env)) {
        if (
            /^npm_(package|lifecycle)_|^npm_config_(local_prefix|prefix|global_prefix|global|omit|include|production|dev|ignore_scripts|dry_run)$/i.test(
                name
            )
        )
            continue;
        if (name === 'INIT_CWD' || name === 'npm_command') continue;
        env[name] = value;
    }
    return { ...env, ...extra };
}

export interface Ran {
    code: number;
    stdout: string;
    stderr: string;
}

/** Run a command to its end, without a shell (except for npm on Windows), collecting its output. */
export function run(
    command: string,
    args: readonly string[],
    options: { cwd?: string; env?: NodeJS.ProcessEnv; timeoutMs?: number } = {}
): Promise<Ran> {
    const npm = command === 'npm' || command === 'npx';
    return new Promise(resolve => {
        execFile(
            command === 'npm' ? NPM : command === 'npx' ? NPX : command,
            args,
            {
                cwd: options.cwd ?? ROOT,
                env: options.env ?? childEnv(),
                timeout: options.timeoutMs ?? 240_000,
                maxBuffer: 64 * 1024 * 1024,
                shell: npm && process.platform === 'win32'
            },
            (error, stdout, stderr) => {
                const code = error ? (typeof error.code === 'number' ? error.code : 1) : 0;
                resolve({
                    code,
                    stdout: String(stdout),
                    stderr: String(stderr) + (error && typeof error.code !== 'number' ? `\n${error.message}` : '')
                });
            }
        );
    });
}

/** A failure message with the command's output, so a CI log says what npm or mcpb complained about. */
export const explain = (what: string, ran: Ran): string =>
    `${what} exited ${ran.code}\n--- stdout\n${ran.stdout.slice(-4000)}\n--- stderr\n${ran.stderr.slice(-4000)}`;

export const builtCli = (root: string): string => join(root, 'dist', 'src', 'cli.js');
export const here = dirname(fileURLToPath(import.meta.url));
