import { readFileSync } from 'node:fs';

/** The package version from package.json: one level up from src/, two from dist/src/. */
export const VERSION: string = (() => {
    for (const relative of ['../package.json', '../../package.json']) {
        try {
            const pkg = JSON.parse(readFileSync(new URL(relative, import.meta.url), 'utf8')) as { name?: string; version?: string };
            if (pkg.name === 'crypto-intel-mcp' && pkg.version) return pkg.version;
        } catch {
            // Not at this level; try the next.
        }
    }
    return '0.0.0';
})();
