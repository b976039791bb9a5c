import { isAscii } from 'node:buffer';
import { createHash } from 'node:crypto';
import { readdirSync, readFileSync, renameSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { basename, dirname, join } from 'node:path';
import { Script } from 'node:vm';
import type { Hooks } from './main.js';

/**
 * The server as one file (scripts/bundle.mjs) compiled with V8's code cache: the bytecode of every function the last
 * uncached run compiled, so that a start parses and compiles next to nothing. Most of a start was that work: some 300
 * modules (the MCP SDK, zod, undici, ours), each read, parsed and compiled, and their functions compiled again on
 * first call. Node 22 offers this as `module.enableCompileCache()`; Node 20, which this package supports, does not.
 */

/** The command line (cli/main.ts), told when the process has become a server (not --help, doctor or keys). */
export type Main = (hooks?: Hooks) => Promise<void>;

/** Bytes of the bundle's SHA-256 at the head of the cache file: a cache made from another build is never used. */
const HASH_BYTES = 32;

/**
 * What the process that wrote a cache had run, in the byte after the hash. A cache is only as good as that run: one
 * written by a process that only shook hands lacks the tool calls' code, which every later first call then compiles
 * (~10 ms), so the first process to answer a tool call from such a cache writes it again.
 */
const STARTED = 0;
const ANSWERED = 1;
type Coverage = typeof STARTED | typeof ANSWERED;

interface Cache {
    data: Buffer;
    coverage: Coverage;
}

/**
 * How long after a process starts serving its cache is taken and written, if it answers no call first: the handshake is
 * over by then. V8 drops the bytecode of functions that have not run for a few major collections, and start-up code
 * runs once: a cache taken when a busy session ends holds half of it (measured: 560 KB against 1.2 MB after a simulated
 * busy session's collections), and starts from it took ~40 ms longer, for good, since a cache that covers a call is
 * never rewritten. The cache of a process that answers a call is taken on the turn after its first answer: even a busy
 * second after it spoils the cache for first calls (see `keep`). Either costs one pause of ~13 ms (`createCachedData`),
 * in at most two processes per build.
 */
const TAKE_AFTER_SERVING_MS = 1_000;

/**
 * The cache sits beside the bundle, one file per Node version and architecture, since V8 rejects another's. V8 itself
 * checks only the source's length, hence the hash. The file is written where the bundle is writable (a clone, an
 * extension's folder) and simply not made where it is not (a global install by root): starts are then uncached.
 *
 * V8 also rejects a cache made under other V8 flags, and `NODE_OPTIONS=--max-old-space-size=…`, common in developers'
 * shells, is one. One file for all would then flip between two clients' servers (Claude Desktop, started without the
 * shell's variables, and an IDE started from the shell): each start rejecting the other's cache, compiling everything
 * and writing its own. So a process started with Node options has a file of its own, named by a digest of them (not
 * the options themselves: they can name paths); at most `MAX_OPTION_CACHES` such files are kept, the newest.
 */
function optionsTag(): string {
    const options = [...process.execArgv, process.env.NODE_OPTIONS ?? ''].join('\0');
    return options === '' ? '' : `-${createHash('sha256').update(options).digest('hex').slice(0, 12)}`;
}

const cacheFileFor = (bundle: string, tag: string): string => `${bundle}.${process.version}-${process.arch}${tag}.v8cache`;

const MAX_OPTION_CACHES = 4;

/** Removes the oldest caches made under Node options beyond `MAX_OPTION_CACHES`: options that change from run to run must not fill the folder. */
function pruneOptionCaches(bundle: string): void {
    const dir = dirname(bundle);
    const prefix = `${basename(bundle)}.${process.version}-${process.arch}-`;
    try {
        const caches = readdirSync(dir)
            .filter(name => name.startsWith(prefix) && name.endsWith('.v8cache'))
            .map(name => join(dir, name))
            .map(file => ({ file, written: statSync(file).mtimeMs }))
            .sort((a, b) => b.written - a.written);
        for (const { file } of caches.slice(MAX_OPTION_CACHES)) rmSync(file, { force: true });
    } catch {
        // Another process pruning at the same moment, or a folder that cannot be listed: the next write tries again.
    }
}

function readCache(file: string, hash: Buffer): Cache | undefined {
    try {
        const bytes = readFileSync(file);
        if (!bytes.subarray(0, HASH_BYTES).equals(hash)) return undefined;
        return { coverage: bytes[HASH_BYTES] === ANSWERED ? ANSWERED : STARTED, data: bytes.subarray(HASH_BYTES + 1) };
    } catch {
        return undefined;
    }
}

/** Written whole or not at all (a rename), so that processes starting meanwhile read the old file or the new one. */
function writeCache(file: string, hash: Buffer, coverage: Coverage, data: Buffer): void {
    const temporary = `${file}.${process.pid}.tmp`;
    try {
        writeFileSync(temporary, Buffer.concat([hash, Buffer.of(coverage), data]));
        renameSync(temporary, file);
    } catch {
        rmSync(temporary, { force: true });
    }
}

/**
 * Runs the bundle at `file` and returns its command line, or null when there is none (a build that ran tsc alone):
 * the caller then imports the modules one by one. Without a usable cache, the process writes one right after its first
 * answer to a tool call, or a second after it starts serving if none comes, or when it exits if that is sooner: by
 * then V8 has compiled what a start (and a call) needs. A cache from a process that answered no tool call is written
 * again by the first that answers one.
 */
export function loadBundle(file: string): Main | null {
    let bytes: Buffer;
    try {
        bytes = readFileSync(file);
    } catch {
        return null;
    }
    // Hashed as read, and decoded as Latin-1 where it is ASCII (esbuild escapes the rest): ~8 ms less per start than
    // a UTF-8 read hashed as a string, which decodes the text and encodes it again.
    const hash = createHash('sha256').update(bytes).digest();
    const source = bytes.toString(isAscii(bytes) ? 'latin1' : 'utf8');
    const tag = optionsTag();
    const cacheFile = cacheFileFor(file, tag);
    const cache = readCache(cacheFile, hash);
    const script = new Script(`(function (exports, require, module, __filename, __dirname) {${source}\n})`, {
        filename: file,
        cachedData: cache?.data
    });
    const module = { exports: {} as { main: Main } };
    const run = script.runInThisContext() as (...args: unknown[]) => void;
    run.call(module.exports, module.exports, createRequire(file), module, file, dirname(file));

    const codeCache = cache === undefined ? 'none' : script.cachedDataRejected === true ? 'rejected' : 'used';
    const { main } = module.exports;
    /** The best coverage this process has undertaken to write, and what of it is still to be written. */
    let undertaken: Coverage | undefined;
    let due: Coverage | undefined;
    let timer: NodeJS.Timeout | undefined;
    const write = (): void => {
        if (due === undefined) return;
        writeCache(cacheFile, hash, due, script.createCachedData());
        due = undefined;
        if (tag !== '') pruneOptionCaches(file);
    };
    const keep = (coverage: Coverage): void => {
        if (undertaken === undefined) process.once('exit', write);
        undertaken = due = coverage;
        clearTimeout(timer);
        // Unreferenced: a process that is done sooner writes at its exit instead, as fresh. After an answer, on the next
        // turn (the answer is out by then). A cache taken a second into a busy session (the bench's 14 questions) made
        // later first calls ~7 ms slower than one taken at once: server-side medians of 25 starts each, 135.3 against
        // 127.6 ms (128.7 from a process that answered one call and then idled). It was no smaller; why, I cannot tell.
        timer = setTimeout(write, coverage === ANSWERED ? 0 : TAKE_AFTER_SERVING_MS).unref();
    };
    return () =>
        main({
            codeCache,
            serving: () => {
                if (codeCache !== 'used') keep(STARTED);
            },
            answered: () => {
                if (undertaken !== ANSWERED && (codeCache !== 'used' || cache?.coverage === STARTED)) keep(ANSWERED);
            }
        });
}
