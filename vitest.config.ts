import { readFileSync, statfsSync } from 'node:fs';
import { availableParallelism } from 'node:os';
import { relative } from 'node:path';
import { defineConfig } from 'vitest/config';
import { BaseSequencer, type TestSpecification } from 'vitest/node';

/**
 * Where the tests' temporary files go: a RAM-backed /dev/shm when the machine has one with room to spare, unless
 * TMPDIR is set. The packaging tests write some 20,000 files (two npm installs, the bundle's staging directory and
 * its unpacked copy); on a VM's disk that cost some 8 s of the suite's CPU, in the kernel. Programs run from there
 * (the installed bin), so a noexec mount will not do.
 */
function scratchDir(): string | undefined {
    if (process.env.TMPDIR !== undefined || process.platform !== 'linux') return undefined;
    try {
        const shm = readFileSync('/proc/mounts', 'utf8')
            .split('\n')
            .map(line => line.split(' '))
            .find(([, dir]) => dir === '/dev/shm');
        if (shm?.[2] !== 'tmpfs' || (shm[3] ?? '').split(',').includes('noexec')) return undefined;
        const { bavail, bsize } = statfsSync('/dev/shm');
        return bavail * bsize >= 2 ** 30 ? '/dev/shm' : undefined;
    } catch {
        return undefined;
    }
}

const scratch = scratchDir();

/**
 * The files that take longest on any machine (npm installs, fuzzing, thousands of calls, Redis outages waited out).
 * Vitest orders files by their last run's duration, or by size when it has none (a fresh checkout, as in CI), which
 * put the packaging tests last: one worker was left installing packages after all the others had finished. These go
 * first whatever the cache says, the two that mostly wait on Redis early enough to overlap the busy ones; the rest
 * follow in Vitest's own order.
 */
const SLOW_FIRST = [
    'test/packaging/npm-pack.test.ts',
    'test/fuzz/fuzz.test.ts',
    'test/faults/faults.test.ts',
    'test/packaging/bundle.test.ts',
    'test/redis/stall.test.ts',
    'test/http/replicas.test.ts',
    'test/tools/tools.test.ts',
    'test/hardening/pipes.test.ts',
    'test/e2e/stdio.test.ts',
    'test/http/fairness.test.ts'
];

class SlowFirstSequencer extends BaseSequencer {
    override async sort(files: TestSpecification[]): Promise<TestSpecification[]> {
        const rank = (spec: TestSpecification): number => {
            const index = SLOW_FIRST.indexOf(relative(spec.project.config.root, spec.moduleId).split('\\').join('/'));
            return index < 0 ? SLOW_FIRST.length : index;
        };
        // Array.prototype.sort is stable: files outside the list keep Vitest's order.
        return (await super.sort(files)).sort((a, b) => rank(a) - rank(b));
    }
}

export default defineConfig({
    test: {
        include: ['test/**/*.test.ts'],
        testTimeout: 30_000,
        hookTimeout: 30_000,
        env: scratch === undefined ? {} : { TMPDIR: scratch },
        // One worker process runs file after file and keeps the modules it imported (the SDK, zod, undici, src/):
        // a fresh process per file paid that import 45 times, some 13 s of the suite's CPU. No test mocks modules
        // or globals, and each file closes what it opens, so files do not need a process each.
        pool: 'forks',
        isolate: false,
        // Vitest's default is one worker fewer than the cores: one worker on a 2-core machine. Many files spend
        // their time waiting on child processes (the built server, npm, redis-server) or on Redis probes, so two
        // workers more than the cores keep every core busy while such files wait.
        maxWorkers: availableParallelism() + 2,
        sequence: { sequencer: SlowFirstSequencer }
    }
});
