import { createHash } from 'node:crypto';
import { readFileSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname } from 'node:path';
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
 * The cache sits beside the bundle, one file per Node version and architecture, since V8 rejects another's. V8 itself
 * checks only the source's length, hence the hash. The file is written where the bundle is writable (a clone, an
 * extension's folder) and simply not made where it is not (a global install by root): starts are then uncached.
 */
const cacheFileFor = (bundle: string): string => `${bundle}.${process.version}-${process.arch}.v8cache`;

function readCache(file: string, hash: Buffer): Buffer | undefined {
    try {
        const data = readFileSync(file);
        return data.subarray(0, HASH_BYTES).equals(hash) ? data.subarray(HASH_BYTES) : undefined;
    } catch {
        return undefined;
    }
}

/** Written whole or not at all (a rename), so that processes starting meanwhile read the old file or the new one. */
function writeCache(file: string, hash: Buffer, data: Buffer): void {
    const temporary = `${file}.${process.pid}.tmp`;
    try {
        writeFileSync(temporary, Buffer.concat([hash, data]));
        renameSync(temporary, file);
    } catch {
        rmSync(temporary, { force: true });
    }
}

/**
 * Runs the bundle at `file` and returns its command line, or null when there is none (a build that ran tsc alone):
 * the caller then imports the modules one by one. Without a usable cache, the process writes one when it exits, once it
 * has served: by then V8 has compiled what a session needs, and the cache holds all of it.
 */
export function loadBundle(file: string): Main | null {
    let source: string;
    try {
        source = readFileSync(file, 'utf8');
    } catch {
        return null;
    }
    const hash = createHash('sha256').update(source).digest();
    const cacheFile = cacheFileFor(file);
    const cachedData = readCache(cacheFile, hash);
    const script = new Script(`(function (exports, require, module, __filename, __dirname) {${source}\n})`, {
        filename: file,
        cachedData
    });
    const module = { exports: {} as { main: Main } };
    const run = script.runInThisContext() as (...args: unknown[]) => void;
    run.call(module.exports, module.exports, createRequire(file), module, file, dirname(file));

    const codeCache = cachedData === undefined ? 'none' : script.cachedDataRejected === true ? 'rejected' : 'used';
    const { main } = module.exports;
    return () =>
        main({
            codeCache,
            serving: () => {
                if (codeCache !== 'used') process.once('exit', () => writeCache(cacheFile, hash, script.createCachedData()));
            }
        });
}
