import type { Config } from '../config.js';
import { noAudit, type AuditSink } from '../audit/audit-log.js';
import type { Clock } from '../clock.js';
import type { Logger } from '../logger.js';
import { fingerprint, type Redactor } from '../redact.js';
import { KeyEvents, type QuotaWarning } from './key-events.js';
import { KeyFile, KeyFileRefusedError, keyFilePath } from './key-file.js';
import { describeKey, type KeyDescription, type KeySummary } from './key-state.js';
import { KeyPool, type KeyChoice, type KeyOutcome, type KeyProvider, type KeyStats } from './pool.js';
import { checkEnvironmentKeys, combineEntries, keyWarningMessage, parseKeyFile, type KeyEntry, type KeyList } from './sources.js';

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

/** Where keys come from, per the configuration: the server, `doctor` and `keys` read them alike. */
export function keySources(
    config: Pick<Config, 'apiKeys' | 'apiKeyFile' | 'allowSharedKeyFile'>
): Pick<KeyManagerOptions, 'envKeys' | 'keyFile' | 'allowSharedKeyFile'> {
    return { envKeys: config.apiKeys, keyFile: config.apiKeyFile, allowSharedKeyFile: config.allowSharedKeyFile };
}

const DEFAULT_RECHECK_MS = 1_000;
const KEEPING = 'keeping the keys already loaded';

const fingerprints = (entries: readonly KeyEntry[]): string => entries.map(entry => fingerprint(entry.key)).join(', ');
const sameWindow = (a: KeyEntry, b: KeyEntry): boolean => a.label === b.label && a.notBefore === b.notBefore && a.expiresAt === b.expiresAt;

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
    private readonly file: KeyFile | null;
    private readonly redactor: Redactor;
    private readonly logger: Logger;
    private readonly clock: Clock;
    private readonly events: KeyEvents;
    private fileEntries: KeyEntry[] = [];
    private current: KeyEntry[] = [];
    /** The file content whose keys are installed; `null` before the first good read. */
    private appliedText: string | null = null;
    private readonly warned = new Set<string>();

    constructor(options: KeyManagerOptions) {
        this.redactor = options.redactor;
        this.logger = options.logger;
        this.clock = options.clock;
        this.events = new KeyEvents(options.audit ?? noAudit, this.logger, this.clock, () => this.current);
        const path = keyFilePath(options.keyFile);
        const recheckMs = Math.max(0, options.recheckMs ?? DEFAULT_RECHECK_MS);
        this.file = path === null ? null : new KeyFile(path, this.logger, recheckMs, options.allowSharedKeyFile ?? false);

        const env = checkEnvironmentKeys(options.envKeys);
        this.absorb(env);
        this.envEntries = env.entries;
        if (this.file !== null) {
            this.file.takeCheck(this.clock.now(), true);
            this.reload(this.file, true);
            if (options.watch ?? true) this.file.watch();
        }
        this.current = combineEntries(this.envEntries, this.fileEntries);
        this.pool.replace(this.current);
        for (const entry of this.current) this.events.loaded(entry);

        if (this.current.length === 0) {
            this.logger.warn('No Token Metrics API key configured: tools that call the API will say how to set one', {
                keyFile: this.file?.path
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
                keyFile: this.file?.path
            });
        }
        this.events.checkWindows(this.clock.now());
    }

    choose(nowMs: number): KeyChoice {
        const checked = this.maybeReload(nowMs, false);
        this.events.checkWindows(nowMs);
        let choice = this.pool.choose(nowMs);
        // Before telling the user there is no usable key, look at the file once more: they may just have fixed it.
        if (choice.kind === 'none' && !checked && this.maybeReload(nowMs, true)) {
            this.events.checkWindows(nowMs);
            choice = this.pool.choose(nowMs);
        }
        if (choice.kind === 'key') this.events.serving(choice.key, nowMs);
        return choice;
    }

    report(key: string, outcome: KeyOutcome, nowMs: number): void {
        this.pool.report(key, outcome, nowMs);
        // A revoked key is the moment a rotated file matters most; do not wait out the recheck interval.
        if (outcome.kind === 'revoked') this.file?.flagCheck();
        this.events.outcome(key, outcome, nowMs);
    }

    /** Replace every key this manager has ever seen, rotated-out ones included, with its fingerprint. */
    scrub(text: string): string {
        return this.redactor.scrub(text);
    }

    /** Per-key usage counters and health, by fingerprint. */
    stats(): KeyStats[] {
        const now = this.clock.now();
        this.maybeReload(now, false);
        this.events.checkWindows(now);
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
        this.events.checkWindows(now);
        const stats = new Map(this.pool.stats().map(stat => [stat.fingerprint, stat]));
        return this.current.map(entry => describeKey(entry, stats, now));
    }

    /**
     * Record a quota warning in the audit trail (usage accounting calls this when a key or the monthly budget nears
     * its limit; logging it is the caller's business). The label is looked up from the fingerprint.
     */
    noteQuotaWarning(warning: QuotaWarning): void {
        this.events.quotaWarning(warning);
    }

    /** Stop watching the key file. The keys in hand keep working; the file is no longer re-read. */
    close(): void {
        this.file?.close();
    }

    /** Re-read the key file if a check is due; returns whether it looked. */
    private maybeReload(nowMs: number, force: boolean): boolean {
        if (this.file === null || !this.file.takeCheck(nowMs, force)) return false;
        this.reload(this.file, false);
        return true;
    }

    private reload(file: KeyFile, initial: boolean): void {
        const read = file.read();
        if (!read.ok) {
            if (read.refused && initial) throw new KeyFileRefusedError(read.message);
            file.noteProblem(read.problem, `${read.message}; ${this.fileEntries.length > 0 ? KEEPING : 'no key read from it'}`);
            return;
        }
        if (read.text === this.appliedText) {
            file.clearProblem();
            return;
        }
        const parsed = parseKeyFile(read.text);
        this.absorb(parsed);
        if (parsed.keys.length === 0) {
            // An editor that truncates then rewrites in place can be caught in between, and an emptied file is
            // more likely a slip than a wish to stop every call: keep the keys in hand and look again next time.
            file.noteProblem(
                'empty',
                `API key file has no key it can use; ${this.fileEntries.length > 0 ? KEEPING : 'add one key per line'}`
            );
            return;
        }
        file.clearProblem();
        this.appliedText = read.text;
        this.fileEntries = parsed.entries;
        if (!initial) this.install(combineEntries(this.envEntries, this.fileEntries));
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
        for (const entry of removed) this.events.removed(entry);
        for (const entry of added) this.events.loaded(entry);
        for (const entry of updated) this.events.updated(entry);
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
                keyFile: warning.origin === 'key file' ? this.file?.path : undefined
            };
            // A refused key is one the user meant to use: say it as an error, not a warning.
            if (warning.problem === 'not-sendable' || warning.problem === 'bad-attribute')
                this.logger.error(keyWarningMessage(warning), fields);
            else this.logger.warn(keyWarningMessage(warning), fields);
        }
    }
}
