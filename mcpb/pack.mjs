#!/usr/bin/env node
// `npm run pack:mcpb`: builds crypto-intel-mcp.mcpb, the Claude Desktop bundle, with the official mcpb tool.
//
// A staging directory gets the manifest (its version taken from package.json), the icon, the built server
// (dist/src, dist/tools, dist/bundle), package.json and package-lock.json; `npm ci --omit=dev --ignore-scripts` there
// installs the production dependencies only, exactly as locked; `mcpb validate` and `mcpb pack` then make the bundle.
// The build itself (`tsc`, then scripts/bundle.mjs) is the npm script's first step. Options: --out <file> (default ./crypto-intel-mcp.mcpb),
// --keep-stage (print the staging directory instead of deleting it).
import { spawnSync } from 'node:child_process';
import process from 'node:process';
import { cpSync, existsSync, mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = resolve(dirname(fileURLToPath(import.meta.url)), '..');
const args = process.argv.slice(2);
const option = name => {
    const index = args.indexOf(name);
    return index < 0 ? undefined : args[index + 1];
};
const out = resolve(option('--out') ?? join(root, 'crypto-intel-mcp.mcpb'));
const keepStage = args.includes('--keep-stage');

function fail(message) {
    process.stderr.write(`pack:mcpb: ${message}\n`);
    process.exit(1);
}

function run(command, commandArgs, cwd) {
    process.stderr.write(`pack:mcpb: ${[command, ...commandArgs].join(' ')}\n`);
    const result = spawnSync(command, commandArgs, { cwd, stdio: ['ignore', 'inherit', 'inherit'], shell: process.platform === 'win32' });
    if (result.error) fail(`${command} could not run: ${result.error.message}`);
    if (result.status !== 0) fail(`${command} ${commandArgs[0]} failed (exit ${result.status})`);
}

if (!existsSync(join(root, 'dist', 'src', 'cli.js')))
    fail('dist/src/cli.js is missing: run `npm run build` first (npm run pack:mcpb does)');
// The package's bin (dist/cli/cli.js), found from its main entry (dist/index.js): its package.json is not exported.
const mcpbCli = join(dirname(createRequire(import.meta.url).resolve('@anthropic-ai/mcpb')), 'cli', 'cli.js');
const pkg = JSON.parse(readFileSync(join(root, 'package.json'), 'utf8'));
const manifest = JSON.parse(readFileSync(join(root, 'mcpb', 'manifest.json'), 'utf8'));
manifest.version = pkg.version;

const stage = mkdtempSync(join(tmpdir(), 'crypto-intel-mcpb-'));
try {
    writeFileSync(join(stage, 'manifest.json'), `${JSON.stringify(manifest, null, 4)}\n`);
    cpSync(join(root, 'mcpb', 'icon.png'), join(stage, 'icon.png'));
    for (const part of ['dist/src', 'dist/tools', 'dist/bundle']) {
        // Source maps point at files the extension does not carry; a code cache is this machine's, made again there.
        cpSync(join(root, part), join(stage, part), {
            recursive: true,
            filter: source => !source.endsWith('.map') && !source.endsWith('.v8cache')
        });
    }
    for (const file of ['package.json', 'package-lock.json', 'README.md']) cpSync(join(root, file), join(stage, file));
    // Production dependencies only, exactly as locked; no install scripts run (none of them needs one).
    run('npm', ['ci', '--omit=dev', '--ignore-scripts', '--no-audit', '--no-fund', '--prefer-offline'], stage);
    run(process.execPath, [mcpbCli, 'validate', join(stage, 'manifest.json')], stage);
    rmSync(out, { force: true });
    run(process.execPath, [mcpbCli, 'pack', stage, out], stage);
    process.stderr.write(`pack:mcpb: wrote ${out} (${(statSync(out).size / 1024 / 1024).toFixed(1)} MB)\n`);
} finally {
    if (keepStage) process.stderr.write(`pack:mcpb: staging directory kept: ${stage}\n`);
    else rmSync(stage, { recursive: true, force: true });
}
