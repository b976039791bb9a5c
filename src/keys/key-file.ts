import { readFileSync, statSync, watch, type FSWatcher } from 'node:fs';
import { homedir } from 'node:os';
import { basename, dirname, join, resolve } from 'node:path';
import type { Logger } from '../logger.js';

/** Refusal of the key file at start-up (POSIX permissions); the message says how to fix it. */
export class KeyFileRefusedError extends Error {
    override name = 'KeyFileRefusedError';
}

/** What one look at the key file found: its text, or what stands in the way (`refused`: its permissions). */
export type KeyFileRead = { ok: true; text: string } | { ok: false; problem: string; message: string; refused: boolean };

/** A key file larger than this is not a key file (a wrong path, a log): refuse it rather than scrub megabytes into the Redactor. */
const MAX_KEY_FILE_BYTES = 64 * 1024;

/** TOKEN_METRICS_API_KEY_FILE as an absolute path (a leading `~/` is the home directory); `null` when not set. */
export function keyFilePath(configured: string | null): string | null {
    if (configured === null || configured.trim() === '') return null;
    const path = configured.trim();
    return resolve(path === '~' || path.startsWith('~/') ? join(homedir(), path.slice(1)) : path);
}

/** A path as one shell word, so the `chmod 600 …` in a message can be pasted as is. */
function shellQuote(path: string): string {
    return /^[A-Za-z0-9_@%+=:,./~-]+$/.test(path) ? path : `'${path.replace(/'/g, `'\\''`)}'`;
}

/**
 * The key file on disk: when to look at it again, reading it (a regular file, small, private to its owner), and
 * saying once what is wrong with it. What its lines mean is `parseKeyFile`'s business, what to do with them the
 * KeyManager's.
 */
export class KeyFile {
    private lastCheckAt: number | null = null;
    private checkDue = false;
    /** The file problem last warned about, so a missing file warns once, not once per second. */
    private fileProblem: string | null = null;
    private sharedWarned = false;
    private watcher: FSWatcher | null = null;
    private closed = false;

    constructor(
        readonly path: string,
        private readonly logger: Logger,
        private readonly recheckMs: number,
        /** `CRYPTO_INTEL_ALLOW_SHARED_KEY_FILE=1`: use a file that group or others can read, with one warning. */
        private readonly allowShared: boolean
    ) {}

    /** Whether to look at the file now: at most once per `recheckMs`, sooner when forced or flagged. A `true` counts as the look. */
    takeCheck(nowMs: number, force: boolean): boolean {
        if (this.closed) return false;
        // `abs` so a wall clock stepped backwards does not stop the checks until it catches up.
        const due = force || this.checkDue || this.lastCheckAt === null || Math.abs(nowMs - this.lastCheckAt) >= this.recheckMs;
        if (!due) return false;
        this.lastCheckAt = nowMs;
        this.checkDue = false;
        return true;
    }

    /** Look at the file at the next `takeCheck`, whatever the interval says. */
    flagCheck(): void {
        this.checkDue = true;
    }

    read(): KeyFileRead {
        let text: string;
        let mode: number;
        try {
            const stat = statSync(this.path);
            if (!stat.isFile()) return this.unreadable('not-a-file', 'is not a regular file');
            if (stat.size > MAX_KEY_FILE_BYTES) return this.unreadable('too-large', `is over ${MAX_KEY_FILE_BYTES} bytes`);
            text = readFileSync(this.path, 'utf8');
            mode = stat.mode;
        } catch (error) {
            const code = (error as NodeJS.ErrnoException).code ?? 'unknown';
            if (code === 'ENOENT') return this.unreadable(code, 'does not exist');
            if (code === 'EACCES') return this.unreadable(code, 'is not readable (permission denied)');
            return this.unreadable(code, `cannot be read (${code})`);
        }
        // Checked on every read, not only the first: a secret manager or an editor may rewrite the file with a wider mode.
        const refusal = this.permissionProblem(mode);
        return refusal === null ? { ok: true, text } : { ok: false, problem: 'shared', message: refusal, refused: true };
    }

    noteProblem(problem: string, message: string): void {
        if (this.fileProblem === problem) return;
        this.fileProblem = problem;
        this.logger.warn(message, { keyFile: this.path });
    }

    clearProblem(): void {
        if (this.fileProblem === null) return;
        this.fileProblem = null;
        this.logger.info('API key file is usable again', { keyFile: this.path });
    }

    /**
     * Watch the directory, not the file: editors and secret managers replace a file by rename, which
     * leaves a watch on the old inode deaf. The handler only flags a check; the read stays in `takeCheck`'s caller.
     */
    watch(): void {
        const name = basename(this.path);
        try {
            this.watcher = watch(dirname(this.path), { persistent: false }, (_event, filename) => {
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

    /** Stop watching and checking; the keys already read keep working. */
    close(): void {
        this.closed = true;
        this.watcher?.close();
        this.watcher = null;
    }

    private unreadable(problem: string, detail: string): KeyFileRead {
        return { ok: false, problem, message: `API key file ${detail}`, refused: false };
    }

    /**
     * Like ssh with its private keys: a key file that group or others can read is refused, with the command that
     * fixes it, unless the user said a shared file is intended (then one warning). `null`: the file may be used.
     */
    private permissionProblem(mode: number): string | null {
        if (process.platform === 'win32' || (mode & 0o077) === 0) return null;
        const octal = (mode & 0o777).toString(8).padStart(3, '0');
        if (this.allowShared) {
            if (!this.sharedWarned) {
                this.sharedWarned = true;
                this.logger.warn('API key file is readable by other users; using it because CRYPTO_INTEL_ALLOW_SHARED_KEY_FILE=1', {
                    keyFile: this.path,
                    mode: octal
                });
            }
            return null;
        }
        return (
            `API key file ${this.path} is readable by other users (mode ${octal}): refused. Fix it with: chmod 600 ${shellQuote(this.path)} ` +
            '(or set CRYPTO_INTEL_ALLOW_SHARED_KEY_FILE=1 to use it anyway)'
        );
    }
}
