import type { Logger } from '../logger.js';
import type { ParsedRows } from './parse-rows.js';

/** Drift seen since start-up, per endpoint: what `doctor` checks once, counted here for every answer. */
export interface DriftStats {
    /** Field values of the wrong kind, by `<endpoint> <FIELD>`. */
    wrongKinds: Record<string, number>;
    /** Rows dropped for lack of identity, by endpoint. */
    droppedRows: Record<string, number>;
}

/**
 * Counts drift and logs each kind once per process: a changed upstream field would otherwise log on every call,
 * and one warning says all there is to say (the field, what came instead, and where to report it).
 */
export class DriftMonitor {
    private readonly warned = new Set<string>();
    private readonly wrongKinds = new Map<string, number>();
    private readonly droppedRows = new Map<string, number>();

    constructor(private readonly logger: Logger) {}

    record(endpoint: string, parsed: ParsedRows<unknown>): void {
        for (const { field, got } of parsed.wrongKinds) {
            const key = `${endpoint} ${field}`;
            this.wrongKinds.set(key, (this.wrongKinds.get(key) ?? 0) + 1);
            if (this.warned.has(key)) continue;
            this.warned.add(key);
            this.logger.warn('upstream field drifted: read as null', { endpoint, field, got, check: 'run `crypto-intel-mcp doctor`' });
        }
        if (parsed.dropped > 0) {
            this.droppedRows.set(endpoint, (this.droppedRows.get(endpoint) ?? 0) + parsed.dropped);
            const key = `${endpoint} rows`;
            if (!this.warned.has(key)) {
                this.warned.add(key);
                this.logger.warn('upstream rows without identity dropped', { endpoint, rows: parsed.dropped });
            }
        }
    }

    stats(): DriftStats {
        return { wrongKinds: Object.fromEntries(this.wrongKinds), droppedRows: Object.fromEntries(this.droppedRows) };
    }
}
