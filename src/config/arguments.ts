import { parseArgs } from 'node:util';
import { ConfigError } from './env.js';

/** Subcommands: the first word of the command line, before any option. */
export const COMMANDS = ['doctor', 'keys'] as const;

/** The options after the subcommand, as given. */
export interface Flags {
    help: boolean;
    version: boolean;
    http: boolean;
    port?: string;
    host?: string;
}

const OPTIONS = {
    help: { type: 'boolean', short: 'h' },
    version: { type: 'boolean', short: 'v' },
    http: { type: 'boolean' },
    port: { type: 'string' },
    host: { type: 'string' }
} as const;

/**
 * `--port 3333` and `--port=3333` both work; a flag that takes no value refuses one. parseArgs runs without `strict`
 * so that every refusal below keeps this CLI's one-line message (`--help` lists the options).
 */
function parseFlags(argv: readonly string[]): Flags {
    const flags: Flags = { help: false, version: false, http: false };
    const { tokens } = parseArgs({ args: [...argv], options: OPTIONS, strict: false, allowPositionals: true, tokens: true });
    for (const token of tokens) {
        const word = argv[token.index]!;
        // Named as written, up to any `=`: a positional, `--`, an unknown option, several short flags in one word (`-hv`).
        const unknown = () => new ConfigError(`unknown option "${word.split('=')[0]}" (see --help)`);
        if (token.kind !== 'option') throw unknown();
        // parseArgs reads `-h=1` as the flags `-h`, `-=` and `-1`: here it is `-h` given a value.
        const inline = token.inlineValue === true || word.startsWith(`${token.rawName}=`);
        if (word !== token.rawName && !inline) throw unknown();
        if (token.name === 'port' || token.name === 'host') {
            if (token.value === undefined || token.value === '' || token.value.startsWith('--')) {
                throw new ConfigError(`option ${token.rawName} needs a value (see --help)`);
            }
            flags[token.name] = token.value;
        } else if (token.name === 'help' || token.name === 'version' || token.name === 'http') {
            if (inline) throw new ConfigError(`option ${token.rawName} takes no value`);
            flags[token.name] = true;
        } else {
            throw unknown();
        }
    }
    if (!flags.http && (flags.port !== undefined || flags.host !== undefined)) {
        throw new ConfigError('--port and --host apply to the HTTP transport: add --http');
    }
    return flags;
}

/** The subcommand (`run` without one) and the options after it; throws `ConfigError` on anything it does not know. */
export function parseCommandLine(argv: readonly string[]): { command: 'run' | (typeof COMMANDS)[number]; flags: Flags } {
    const [first, ...rest] = argv;
    const command = COMMANDS.find(name => name === first) ?? 'run';
    if (first !== undefined && command === 'run' && !first.startsWith('-')) {
        throw new ConfigError(`unknown command "${first}" (the commands are ${COMMANDS.join(', ')}; see --help)`);
    }
    const serverFlag = rest.some(arg => /^--(?:http|port|host)(?:=|$)/.test(arg));
    if (command === 'doctor' && serverFlag) {
        throw new ConfigError('doctor takes no --http, --port or --host: it calls the Token Metrics API directly');
    }
    if (command === 'keys' && serverFlag) {
        throw new ConfigError('keys takes no --http, --port or --host: it reads the key configuration and makes no call');
    }
    return { command, flags: parseFlags(command === 'run' ? argv : rest) };
}
