import { readFileSync, statSync, watch, type FSWatcher } from 'node:fs';
import { homedir } from 'node:os';
import { basename, dirname, join, resolve } from 'node:path';
import type { Clock } from '../clock.js';
import type { Logger } from '../logger.js';
import { fingerprint, type Redactor } from '../redact.js';
import { KeyPool, type KeyChoice, type KeyOutcome, type KeyProvider, type KeyStats } from './pool.js';
import { checkEnvironmentKeys, combineKeys, keyWarningMessage, parseKeyFile, type KeyList } from './sources.js';

export interface KeyManagerOptions {
    /** Keys from TOKEN_METRICS_API_KEY then TOKEN_METRICS_API_KEYS (`config.apiKeys`). */
    envKeys: readonly string[];
    /** TOKEN_METRICS_API_KEY_FILE (`config.apiKeyFile`); a leading `~/` means the home directory. */
    keyFile: string | null;
    /** Every key (and every rejected key-like line) is registered here. */
    redactor: Redactor;
    logger: Logger;
    clock: Clock;
    /** Least time between two checks of the key file from `choose()`; 1000 ms by default. */
    recheckMs?: number;
    /** Also watch the key file's directory so an edit is seen at the next call; on by default. */
    watch?: boolean;
}

/** The key set at a glance, for a status resource or a startup line. Fingerprints only. */
export interface KeySummary {
    configured: number;
    /** Keys neither revoked nor cooling down right now. */
    usable: number;
    fingerprints: string[];
}

/** A key file larger than this is not a key file (a wrong path, a log): refuse it rather than scrub megabytes into the Redactor. */
const MAX_KEY_FILE_BYTES = 64 * 1024;
const DEFAULT_RECHECK_MS = 1_000;
const KEEPING = 'keeping the keys already loaded';

type FileRead = { ok: true; text: string; mode: number } | { ok: false; problem: string; detail: string };

const fingerprints = (keys: readonly string[]): string => keys.map(fingerprint).join(', ');

function expandHome(path: string): string {
    return path === '~' || path.startsWith('~/') ? join(homedir(), path.slice(1)) : path;
}

/**
 * The server's key provider: keys from the environment, then from the key file, in a KeyPool that
 * does failover. The key file is re-read when it changes, so keys rotate without a restart: `choose()`
 * looks at the file at most once per `recheckMs` (cheap: one stat and one small read), sooner after
 * a watch event or a revoked key (the user may already have put the replacement in). Keys are
 * registered with the Redactor and only ever leave as fingerprints.
 */
export class KeyManager implements KeyProvider {
    private readonly pool = new KeyPool();
    private readonly envKeys: string[];
    private readonly keyFile: string | null;
    private readonly redactor: Redactor;
    private readonly logger: Logger;
    private readonly clock: Clock;
    private readonly recheckMs: number;
    private fileKeys: string[] = [];
    private current: string[] = [];
    /** The file content whose keys are installed; `null` before the first good read. */
    private appliedText: string | null = null;
    private lastCheckAt: number | null = null;
    private checkDue = false;
    /** The file problem last warned about, so a missing file warns once, not once per second. */
    private fileProblem: string | null = null;
    private readonly warned = new Set<string>();
    private permissionsChecked = false;
    private watcher: FSWatcher | null = null;
    private closed = false;

    constructor(options: KeyManagerOptions) {
        this.redactor = options.redactor;
        this.logger = options.logger;
        this.clock = options.clock;
        this.recheckMs = Math.max(0, options.recheckMs ?? DEFAULT_RECHECK_MS);
        this.keyFile = options.keyFile === null || options.keyFile.trim() === '' ? null : resolve(expandHome(options.keyFile.trim()));

        const env = checkEnvironmentKeys(options.envKeys);
        this.absorb(env);
        this.envKeys = env.keys;
        if (this.keyFile !== null) {
            this.lastCheckAt = this.clock.now();
            this.reload(true);
            if (options.watch ?? true) this.startWatch(this.keyFile);
        }
        this.current = combineKeys(this.envKeys, this.fileKeys);
        this.pool.replace(this.current);

        if (this.current.length === 0) {
            this.logger.warn('No Token Metrics API key configured: tools that call the API will say how to set one', {
                keyFile: this.keyFile ?? undefined
            });
        } else {
            this.logger.info('API keys loaded', {
                keys: this.current.length,
                fromEnvironment: this.envKeys.length,
                fromFile: this.fileKeys.length,
                fingerprints: fingerprints(this.current),
                keyFile: this.keyFile ?? undefined
            });
        }
    }

    choose(nowMs: number): KeyChoice {
        const checked = this.maybeReload(nowMs, false);
        const choice = this.pool.choose(nowMs);
        // Before telling the user there is no usable key, look at the file once more: they may just have fixed it.
        if (choice.kind === 'none' && !checked && this.maybeReload(nowMs, true)) return this.pool.choose(nowMs);
        return choice;
    }

    report(key: string, outcome: KeyOutcome, nowMs: number): void {
        this.pool.report(key, outcome, nowMs);
        // A revoked key is the moment a rotated file matters most; do not wait out the recheck interval.
        if (outcome.kind === 'revoked') this.checkDue = true;
    }

    /** Replace every key this manager has ever seen, rotated-out ones included, with its fingerprint. */
    scrub(text: string): string {
        return this.redactor.scrub(text);
    }

    /** Per-key usage counters and health, by fingerprint. */
    stats(): KeyStats[] {
        this.maybeReload(this.clock.now(), false);
        return this.pool.stats();
    }

    describe(): KeySummary {
        const now = this.clock.now();
        this.maybeReload(now, false);
        const stats = this.pool.stats();
        return {
            configured: stats.length,
            usable: stats.filter(stat => !stat.revoked && (stat.coolingUntil === null || stat.coolingUntil <= now)).length,
            fingerprints: stats.map(stat => stat.fingerprint)
        };
    }

    /** Stop watching the key file. The keys in hand keep working; the file is no longer re-read. */
    close(): void {
        this.closed = true;
        this.watcher?.close();
        this.watcher = null;
    }

    /** Re-read the key file if a check is due; returns whether it looked. */
    private maybeReload(nowMs: number, force: boolean): boolean {
        if (this.keyFile === null || this.closed) return false;
        // `abs` so a wall clock stepped backwards does not stop the checks until it catches up.
        const due = force || this.checkDue || this.lastCheckAt === null || Math.abs(nowMs - this.lastCheckAt) >= this.recheckMs;
        if (!due) return false;
        this.lastCheckAt = nowMs;
        this.checkDue = false;
        this.reload(false);
        return true;
    }

    private reload(initial: boolean): void {
        const read = this.read(this.keyFile!);
        if (!read.ok) {
            this.noteProblem(read.problem, `API key file ${read.detail}; ${this.fileKeys.length > 0 ? KEEPING : 'no key read from it'}`);
            return;
        }
        if (read.text === this.appliedText) {
            this.clearProblem();
            return;
        }
        const parsed = parseKeyFile(read.text);
        this.absorb(parsed);
        if (parsed.keys.length === 0) {
            // An editor that truncates then rewrites in place can be caught in between, and an emptied file is
            // more likely a slip than a wish to stop every call: keep the keys in hand and look again next time.
            this.noteProblem('empty', `API key file has no key; ${this.fileKeys.length > 0 ? KEEPING : 'add one key per line'}`);
            return;
        }
        this.clearProblem();
        this.checkPermissions(read.mode);
        this.appliedText = read.text;
        this.fileKeys = parsed.keys;
        if (!initial) this.install(combineKeys(this.envKeys, this.fileKeys));
    }

    private read(path: string): FileRead {
        try {
            const stat = statSync(path);
            if (!stat.isFile()) return { ok: false, problem: 'not-a-file', detail: 'is not a regular file' };
            if (stat.size > MAX_KEY_FILE_BYTES) return { ok: false, problem: 'too-large', detail: `is over ${MAX_KEY_FILE_BYTES} bytes` };
            return { ok: true, text: readFileSync(path, 'utf8'), mode: stat.mode };
        } catch (error) {
            const code = (error as NodeJS.ErrnoException).code ?? 'unknown';
            if (code === 'ENOENT') return { ok: false, problem: code, detail: 'does not exist' };
            if (code === 'EACCES') return { ok: false, problem: code, detail: 'is not readable (permission denied)' };
            return { ok: false, problem: code, detail: `cannot be read (${code})` };
        }
    }

    /** Install a new key set in the pool and say what changed, by fingerprint. */
    private install(next: string[]): void {
        const previous = this.current;
        if (next.length === previous.length && next.every((key, index) => key === previous[index])) return;
        this.pool.replace(next);
        this.current = next;
        const added = next.filter(key => !previous.includes(key));
        const removed = previous.filter(key => !next.includes(key));
        this.logger.info('API keys reloaded from the key file', {
            keys: next.length,
            added: fingerprints(added),
            removed: fingerprints(removed),
            ...(added.length === 0 && removed.length === 0 ? { reordered: true } : {})
        });
    }

    /** Register a source's secrets and warn about its odd keys, each once per process. */
    private absorb(list: KeyList): void {
        for (const secret of list.secrets) this.redactor.register(secret);
        for (const warning of list.warnings) {
            const id = `${warning.problem}:${warning.origin}:${warning.fingerprint}`;
            if (this.warned.has(id)) continue;
            this.warned.add(id);
            this.logger.warn(keyWarningMessage(warning), {
                key: warning.fingerprint,
                source: warning.origin,
                line: warning.line,
                keyFile: warning.origin === 'key file' ? (this.keyFile ?? undefined) : undefined
            });
        }
    }

    private noteProblem(problem: string, message: string): void {
        if (this.fileProblem === problem) return;
        this.fileProblem = problem;
        this.logger.warn(message, { keyFile: this.keyFile ?? undefined });
    }

    private clearProblem(): void {
        if (this.fileProblem === null) return;
        this.fileProblem = null;
        this.logger.info('API key file is usable again', { keyFile: this.keyFile ?? undefined });
    }

    /** Like ssh with its private keys: say so once when a key file is readable by other users. */
    private checkPermissions(mode: number): void {
        if (this.permissionsChecked || process.platform === 'win32') return;
        this.permissionsChecked = true;
        if ((mode & 0o077) !== 0) {
            this.logger.warn('API key file is readable by other users; restrict it (chmod 600)', {
                keyFile: this.keyFile ?? undefined,
                mode: (mode & 0o777).toString(8)
            });
        }
    }

    /**
     * Watch the directory, not the file: editors and secret managers replace a file by rename, which
     * leaves a watch on the old inode deaf. The handler only flags a check; the read stays in `choose()`.
     */
    private startWatch(path: string): void {
        const name = basename(path);
        try {
            this.watcher = watch(dirname(path), { persistent: false }, (_event, filename) => {
                if (filename === null || filename === name) this.checkDue = true;
            });
            this.watcher.on('error', error => {
                this.logger.debug('key file watch stopped; relying on periodic checks', {
                    error: (error as NodeJS.ErrnoException).code ?? error.name
                });
                this.watcher?.close();
                this.watcher = null;
            });
        } catch (error) {
            // A missing directory or an exhausted inotify budget: the periodic check still covers correctness.
            this.logger.debug('key file not watched; relying on periodic checks', {
                error: (error as NodeJS.ErrnoException).code ?? (error as Error).name
            });
            this.watcher = null;
        }
    }
}
