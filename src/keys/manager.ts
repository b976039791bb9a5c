import type { Config } from '../config.js';
import { readFileSync, statSync, watch, type FSWatcher } from 'node:fs';
import { homedir } from 'node:os';
import { basename, dirname, join, resolve } from 'node:path';
import { noAudit, type AuditSink, type AuditValue } from '../audit/audit-log.js';
import type { Clock } from '../clock.js';
import type { Logger } from '../logger.js';
import { fingerprint, type Redactor } from '../redact.js';
import { isWithinWindow, KeyPool, type KeyChoice, type KeyOutcome, type KeyProvider, type KeyStats } from './pool.js';
import {
    checkEnvironmentKeys,
    combineEntries,
    keyWarningMessage,
    parseKeyFile,
    type KeyEntry,
    type KeyList,
    type KeyOrigin
} from './sources.js';

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
    /** `CRYPTO_INTEL_ALLOW_SHARED_KEY_FILE=1`: use a key file that group or others can read (with a warning) instead of refusing it. */
    allowSharedKeyFile?: boolean;
    /** Where key events go (the audit trail); none by default. */
    audit?: AuditSink;
}

/** A key's state for a person or a tool: its lifecycle first (validity window), then its health in this process. */
export type KeyState = 'active' | 'expiring' | 'not-yet-valid' | 'expired' | 'rejected' | 'quota-used' | 'rate-limited';

/** One key as `get_usage` and `crypto-intel-mcp keys` show it: fingerprint and metadata, never the key. */
export interface KeyDescription {
    fingerprint: string;
    label: string | null;
    source: KeyOrigin;
    state: KeyState;
    /** Whether a request could use it now (valid, not set aside, not cooling down). */
    usable: boolean;
    /** First instant of use (ISO), from `not-before`; `null`: no lower bound. */
    notBefore: string | null;
    /** First instant it is no longer used (ISO): the end of the `expires` day, UTC; `null`: no expiry. */
    expiresAt: string | null;
    /** Whole days until `expiresAt` (0 on its last day); `null` without an expiry or once expired. */
    daysLeft: number | null;
    /** The `expires=` and `not-before=` values as written in the key file. */
    written: { notBefore: string | null; expires: string | null };
}

/** What `noteQuotaWarning` records: the caller (usage accounting) decides when a quota is close. */
export interface QuotaWarning {
    /** The key the warning is about; omit for the monthly budget of all keys together. */
    fingerprint?: string;
    used: number;
    quota: number;
    /** Anything else worth keeping, e.g. `{ month: '2026-11', threshold: 0.8 }`. */
    [field: string]: AuditValue | undefined;
}

/** Refusal of the key file at start-up (POSIX permissions); the message says how to fix it. */
export class KeyFileRefusedError extends Error {
    override name = 'KeyFileRefusedError';
}

/** Where keys come from, per the configuration: the server, `doctor` and `keys` read them alike. */
export function keySources(
    config: Pick<Config, 'apiKeys' | 'apiKeyFile' | 'allowSharedKeyFile'>
): Pick<KeyManagerOptions, 'envKeys' | 'keyFile' | 'allowSharedKeyFile'> {
    return { envKeys: config.apiKeys, keyFile: config.apiKeyFile, allowSharedKeyFile: config.allowSharedKeyFile };
}

/** The key set at a glance, for a status resource or a startup line. Fingerprints only. */
export interface KeySummary {
    configured: number;
    /** Keys usable right now: inside their validity window, neither rejected nor cooling down. */
    usable: number;
    fingerprints: string[];
}

/** A key file larger than this is not a key file (a wrong path, a log): refuse it rather than scrub megabytes into the Redactor. */
const MAX_KEY_FILE_BYTES = 64 * 1024;
const DEFAULT_RECHECK_MS = 1_000;
const KEEPING = 'keeping the keys already loaded';
const DAY_MS = 86_400_000;
/** A key this close to its expiry is still used, and warned about (at start-up, then once a day). */
export const EXPIRY_WARNING_MS = 7 * DAY_MS;

/** What this process has seen of one key, for the audit trail's once-only events. */
interface KeyLife {
    firstUsed: boolean;
    /** Why the key was last set aside; cleared (with a `restored` event) when it serves again. */
    aside: 'revoked' | 'exhausted' | 'rate-limited' | null;
    /** UTC day number of the last expiry warning. */
    expiringWarnedDay: number | null;
    expiredNoted: boolean;
    /** Whether it was before its `not-before` when last looked at, to log the moment it takes over. */
    pending: boolean;
}

type FileRead = { ok: true; text: string; mode: number } | { ok: false; problem: string; detail: string };

const fingerprints = (entries: readonly KeyEntry[]): string => entries.map(entry => fingerprint(entry.key)).join(', ');
const iso = (ms: number | null): string | null => (ms === null ? null : new Date(ms).toISOString());
const sameWindow = (a: KeyEntry, b: KeyEntry): boolean => a.label === b.label && a.notBefore === b.notBefore && a.expiresAt === b.expiresAt;

function expandHome(path: string): string {
    return path === '~' || path.startsWith('~/') ? join(homedir(), path.slice(1)) : path;
}

/** A path as one shell word, so the `chmod 600 …` in a message can be pasted as is. */
export function shellQuote(path: string): string {
    return /^[A-Za-z0-9_@%+=:,./~-]+$/.test(path) ? path : `'${path.replace(/'/g, `'\\''`)}'`;
}

/**
 * The server's key provider: keys from the environment, then from the key file, in a KeyPool that
 * does failover. The key file is re-read when it changes, so keys rotate without a restart: `choose()`
 * looks at the file at most once per `recheckMs` (cheap: one stat and one small read), sooner after
 * a watch event or a revoked key (the user may already have put the replacement in). Each key's validity
 * window (`not-before`, `expires`) is checked against the clock at every choice, so a key takes over or
 * retires on its date with no reload at all. Keys are registered with the Redactor and only ever leave as
 * fingerprints; their events go to the audit trail.
 */
export class KeyManager implements KeyProvider {
    private readonly pool = new KeyPool();
    private readonly envEntries: KeyEntry[];
    private readonly keyFile: string | null;
    private readonly redactor: Redactor;
    private readonly logger: Logger;
    private readonly clock: Clock;
    private readonly recheckMs: number;
    private readonly allowShared: boolean;
    private readonly audit: AuditSink;
    private fileEntries: KeyEntry[] = [];
    private current: KeyEntry[] = [];
    private readonly life = new Map<string, KeyLife>();
    /** The file content whose keys are installed; `null` before the first good read. */
    private appliedText: string | null = null;
    private lastCheckAt: number | null = null;
    private checkDue = false;
    /** The file problem last warned about, so a missing file warns once, not once per second. */
    private fileProblem: string | null = null;
    private readonly warned = new Set<string>();
    private sharedWarned = false;
    private watcher: FSWatcher | null = null;
    private closed = false;

    constructor(options: KeyManagerOptions) {
        this.redactor = options.redactor;
        this.logger = options.logger;
        this.clock = options.clock;
        this.recheckMs = Math.max(0, options.recheckMs ?? DEFAULT_RECHECK_MS);
        this.allowShared = options.allowSharedKeyFile ?? false;
        this.audit = options.audit ?? noAudit;
        this.keyFile = options.keyFile === null || options.keyFile.trim() === '' ? null : resolve(expandHome(options.keyFile.trim()));

        const env = checkEnvironmentKeys(options.envKeys);
        this.absorb(env);
        this.envEntries = env.entries;
        if (this.keyFile !== null) {
            this.lastCheckAt = this.clock.now();
            this.reload(true);
            if (options.watch ?? true) this.startWatch(this.keyFile);
        }
        this.current = combineEntries(this.envEntries, this.fileEntries);
        this.pool.replace(this.current);
        for (const entry of this.current) this.record('loaded', entry, this.loadFacts(entry));

        if (this.current.length === 0) {
            this.logger.warn('No Token Metrics API key configured: tools that call the API will say how to set one', {
                keyFile: this.keyFile ?? undefined
            });
        } else {
            this.logger.info('API keys loaded', {
                keys: this.current.length,
                fromEnvironment: this.envEntries.length,
                fromFile: this.fileEntries.length,
                fingerprints: fingerprints(this.current),
                labels: this.current.some(entry => entry.label !== null)
                    ? this.current.map(entry => entry.label ?? '-').join(', ')
                    : undefined,
                keyFile: this.keyFile ?? undefined
            });
        }
        this.lifecycle(this.clock.now());
    }

    choose(nowMs: number): KeyChoice {
        const checked = this.maybeReload(nowMs, false);
        this.lifecycle(nowMs);
        let choice = this.pool.choose(nowMs);
        // Before telling the user there is no usable key, look at the file once more: they may just have fixed it.
        if (choice.kind === 'none' && !checked && this.maybeReload(nowMs, true)) {
            this.lifecycle(nowMs);
            choice = this.pool.choose(nowMs);
        }
        if (choice.kind === 'key') this.noteServing(choice.key, nowMs);
        return choice;
    }

    report(key: string, outcome: KeyOutcome, nowMs: number): void {
        this.pool.report(key, outcome, nowMs);
        // A revoked key is the moment a rotated file matters most; do not wait out the recheck interval.
        if (outcome.kind === 'revoked') this.checkDue = true;
        const entry = this.current.find(candidate => candidate.key === key);
        if (!entry) return; // rotated out while the request was in flight
        const life = this.lifeOf(key);
        const status = 'status' in outcome && outcome.status !== undefined ? outcome.status : null;
        if (outcome.kind === 'revoked' && life.aside !== 'revoked') {
            life.aside = 'revoked';
            this.record('set-aside', entry, { reason: 'rejected as invalid or revoked', status }, nowMs);
        } else if (outcome.kind === 'exhausted' && life.aside !== 'exhausted') {
            life.aside = 'exhausted';
            this.record('set-aside', entry, { reason: 'quota used up', status, until: iso(outcome.untilMs) }, nowMs);
        } else if (outcome.kind === 'rate-limited' && life.aside === null) {
            // Once per episode: a key hit by a burst of 429s is one event, until it serves again (`restored`).
            life.aside = 'rate-limited';
            this.record('rate-limited', entry, { status: status ?? 429, until: iso(outcome.untilMs) }, nowMs);
        }
    }

    /** Replace every key this manager has ever seen, rotated-out ones included, with its fingerprint. */
    scrub(text: string): string {
        return this.redactor.scrub(text);
    }

    /** Per-key usage counters and health, by fingerprint. */
    stats(): KeyStats[] {
        const now = this.clock.now();
        this.maybeReload(now, false);
        this.lifecycle(now);
        return this.pool.stats();
    }

    describe(): KeySummary {
        const keys = this.describeKeys();
        return {
            configured: keys.length,
            usable: keys.filter(key => key.usable).length,
            fingerprints: keys.map(key => key.fingerprint)
        };
    }

    /** Every configured key with its label, source, state and validity window; fingerprints only. For `get_usage` and `crypto-intel-mcp keys`. */
    describeKeys(): KeyDescription[] {
        const now = this.clock.now();
        this.maybeReload(now, false);
        this.lifecycle(now);
        const stats = new Map(this.pool.stats().map(stat => [stat.fingerprint, stat]));
        return this.current.map(entry => {
            const print = fingerprint(entry.key);
            const stat = stats.get(print);
            const cooling = stat !== undefined && stat.coolingUntil !== null && stat.coolingUntil > now;
            let state: KeyState;
            if (entry.expiresAt !== null && now >= entry.expiresAt) state = 'expired';
            else if (entry.notBefore !== null && now < entry.notBefore) state = 'not-yet-valid';
            else if (stat?.revoked) state = 'rejected';
            else if (cooling) state = stat.exhausted ? 'quota-used' : 'rate-limited';
            else if (entry.expiresAt !== null && entry.expiresAt - now <= EXPIRY_WARNING_MS) state = 'expiring';
            else state = 'active';
            const expiring = entry.expiresAt !== null && now < entry.expiresAt;
            return {
                fingerprint: print,
                label: entry.label,
                source: entry.origin,
                state,
                usable: state === 'active' || state === 'expiring',
                notBefore: iso(entry.notBefore),
                expiresAt: iso(entry.expiresAt),
                daysLeft: expiring ? Math.floor((entry.expiresAt! - now) / DAY_MS) : null,
                written: { ...entry.written }
            };
        });
    }

    /**
     * Record a quota warning in the audit trail (usage accounting calls this when a key or the monthly budget nears
     * its limit; logging it is the caller's business). The label is looked up from the fingerprint.
     */
    noteQuotaWarning(warning: QuotaWarning): void {
        const { fingerprint: print = null, ...facts } = warning;
        const entry = print === null ? undefined : this.current.find(candidate => fingerprint(candidate.key) === print);
        const values: Record<string, AuditValue> = {};
        for (const [name, value] of Object.entries(facts)) if (value !== undefined) values[name] = value;
        this.audit.record(
            {
                event: 'quota-warning',
                fingerprint: print,
                label: entry?.label ?? null,
                ...(entry ? { source: entry.origin } : {}),
                ...values
            },
            this.clock.now()
        );
    }

    /** Stop watching the key file. The keys in hand keep working; the file is no longer re-read. */
    close(): void {
        this.closed = true;
        this.watcher?.close();
        this.watcher = null;
    }

    /** The events of a key being handed out: its first use in this process, or its return after being set aside. */
    private noteServing(key: string, nowMs: number): void {
        const life = this.lifeOf(key);
        if (life.firstUsed && life.aside === null) return;
        const entry = this.current.find(candidate => candidate.key === key);
        if (!entry) return;
        if (!life.firstUsed) {
            life.firstUsed = true;
            this.record('first-used', entry, {}, nowMs);
        }
        if (life.aside !== null) {
            this.record('restored', entry, { after: life.aside }, nowMs);
            life.aside = null;
        }
    }

    /**
     * Validity windows against the clock: a key that just took over (its `not-before` passed) is logged, one within
     * EXPIRY_WARNING_MS of its expiry is warned about at start-up and once a UTC day after, one past it once.
     */
    private lifecycle(nowMs: number): void {
        const today = Math.floor(nowMs / DAY_MS);
        for (const entry of this.current) {
            if (entry.notBefore === null && entry.expiresAt === null) continue;
            const life = this.lifeOf(entry.key);
            const fields = { key: fingerprint(entry.key), label: entry.label ?? undefined };
            if (entry.expiresAt !== null && nowMs >= entry.expiresAt) {
                if (life.expiredNoted) continue;
                life.expiredNoted = true;
                this.logger.warn('API key expired: no longer used (remove it from the key file)', {
                    ...fields,
                    expiresAt: iso(entry.expiresAt)
                });
                this.record('expired', entry, { expiresAt: iso(entry.expiresAt) }, nowMs);
                continue;
            }
            if (entry.notBefore !== null && nowMs < entry.notBefore) {
                if (!life.pending)
                    this.logger.info('API key not valid yet: it will be used from its not-before date', {
                        ...fields,
                        notBefore: iso(entry.notBefore)
                    });
                life.pending = true;
                continue;
            }
            if (life.pending) {
                life.pending = false;
                this.logger.info('API key valid from now on (its not-before date passed)', { ...fields, notBefore: iso(entry.notBefore) });
            }
            if (entry.expiresAt !== null && entry.expiresAt - nowMs <= EXPIRY_WARNING_MS && life.expiringWarnedDay !== today) {
                life.expiringWarnedDay = today;
                const daysLeft = Math.floor((entry.expiresAt - nowMs) / DAY_MS);
                this.logger.warn(
                    `API key expires in ${daysLeft === 0 ? 'less than a day' : `${daysLeft} day(s)`}: add its successor to the key file`,
                    {
                        ...fields,
                        expiresAt: iso(entry.expiresAt),
                        daysLeft
                    }
                );
                this.record('expiring', entry, { expiresAt: iso(entry.expiresAt), daysLeft }, nowMs);
            }
        }
    }

    private lifeOf(key: string): KeyLife {
        let life = this.life.get(key);
        if (!life) {
            life = { firstUsed: false, aside: null, expiringWarnedDay: null, expiredNoted: false, pending: false };
            this.life.set(key, life);
        }
        return life;
    }

    private loadFacts(entry: KeyEntry): Record<string, AuditValue> {
        return {
            ...(entry.line === undefined ? {} : { line: entry.line }),
            notBefore: iso(entry.notBefore),
            expiresAt: iso(entry.expiresAt),
            validNow: isWithinWindow(entry, this.clock.now())
        };
    }

    private record(
        event: 'loaded' | 'removed' | 'first-used' | 'set-aside' | 'rate-limited' | 'restored' | 'expiring' | 'expired',
        entry: KeyEntry,
        facts: Record<string, AuditValue>,
        nowMs = this.clock.now()
    ): void {
        this.audit.record({ event, fingerprint: fingerprint(entry.key), label: entry.label, source: entry.origin, ...facts }, nowMs);
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
            this.noteProblem(read.problem, `API key file ${read.detail}; ${this.fileEntries.length > 0 ? KEEPING : 'no key read from it'}`);
            return;
        }
        // Checked on every read, not only the first: a secret manager or an editor may rewrite the file with a wider mode.
        const refusal = this.permissionProblem(read.mode);
        if (refusal !== null) {
            if (initial) throw new KeyFileRefusedError(refusal);
            this.noteProblem('shared', `${refusal}; ${this.fileEntries.length > 0 ? KEEPING : 'no key read from it'}`);
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
            this.noteProblem(
                'empty',
                `API key file has no key it can use; ${this.fileEntries.length > 0 ? KEEPING : 'add one key per line'}`
            );
            return;
        }
        this.clearProblem();
        this.appliedText = read.text;
        this.fileEntries = parsed.entries;
        if (!initial) this.install(combineEntries(this.envEntries, this.fileEntries));
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
    private install(next: KeyEntry[]): void {
        const previous = this.current;
        const same =
            next.length === previous.length &&
            next.every((entry, index) => entry.key === previous[index]!.key && sameWindow(entry, previous[index]!));
        if (same) return;
        this.pool.replace(next);
        this.current = next;
        const before = new Map(previous.map(entry => [entry.key, entry]));
        const after = new Set(next.map(entry => entry.key));
        const added = next.filter(entry => !before.has(entry.key));
        const removed = previous.filter(entry => !after.has(entry.key));
        const updated = next.filter(entry => before.has(entry.key) && !sameWindow(entry, before.get(entry.key)!));
        for (const entry of removed) {
            this.record('removed', entry, {});
            this.life.delete(entry.key);
        }
        for (const entry of added) this.record('loaded', entry, this.loadFacts(entry));
        for (const entry of updated) {
            this.record('loaded', entry, { ...this.loadFacts(entry), updated: true });
            // New dates: warn about them afresh.
            const life = this.lifeOf(entry.key);
            life.expiringWarnedDay = null;
            life.expiredNoted = false;
        }
        this.logger.info('API keys reloaded from the key file', {
            keys: next.length,
            added: fingerprints(added),
            removed: fingerprints(removed),
            ...(updated.length > 0 ? { updated: fingerprints(updated) } : {}),
            ...(added.length === 0 && removed.length === 0 && updated.length === 0 ? { reordered: true } : {})
        });
    }

    /** Register a source's secrets and warn about its odd keys, each once per process. */
    private absorb(list: KeyList): void {
        for (const secret of list.secrets) this.redactor.register(secret);
        for (const warning of list.warnings) {
            const id = `${warning.problem}:${warning.origin}:${warning.fingerprint}:${warning.detail ?? ''}`;
            if (this.warned.has(id)) continue;
            this.warned.add(id);
            const fields = {
                key: warning.fingerprint,
                source: warning.origin,
                line: warning.line,
                keyFile: warning.origin === 'key file' ? (this.keyFile ?? undefined) : undefined
            };
            // A refused key is one the user meant to use: say it as an error, not a warning.
            if (warning.problem === 'not-sendable' || warning.problem === 'bad-attribute')
                this.logger.error(keyWarningMessage(warning), fields);
            else this.logger.warn(keyWarningMessage(warning), fields);
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
                    keyFile: this.keyFile ?? undefined,
                    mode: octal
                });
            }
            return null;
        }
        return (
            `API key file ${this.keyFile} is readable by other users (mode ${octal}): refused. Fix it with: chmod 600 ${shellQuote(this.keyFile!)} ` +
            '(or set CRYPTO_INTEL_ALLOW_SHARED_KEY_FILE=1 to use it anyway)'
        );
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
