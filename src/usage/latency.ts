import type { UsageReport } from './report.js';

/** Latency is reported over this window. */
const LATENCY_WINDOW_MS = 3_600_000;
/** Bound on the latency samples kept (one per upstream answer): an hour of a busy team server fits. */
const MAX_LATENCY_SAMPLES = 10_000;

/** Nearest-rank percentile; null without samples. */
function percentile(values: readonly number[], p: number): number | null {
    if (values.length === 0) return null;
    const sorted = [...values].sort((a, b) => a - b);
    return sorted[Math.min(sorted.length - 1, Math.max(0, Math.ceil((p / 100) * sorted.length) - 1))]!;
}

/** Upstream answer times over the last hour, bounded in number, as the report's median and 95th percentile. */
export class LatencyWindow {
    private readonly samples: Array<{ at: number; ms: number }> = [];

    add(at: number, ms: number): void {
        this.samples.push({ at, ms: Math.max(0, ms) });
        if (this.samples.length > MAX_LATENCY_SAMPLES) this.samples.splice(0, this.samples.length - MAX_LATENCY_SAMPLES);
    }

    summary(now: number): UsageReport['latency'] {
        while (this.samples.length > 0 && this.samples[0]!.at <= now - LATENCY_WINDOW_MS) this.samples.shift();
        const recent = this.samples.map(sample => sample.ms);
        return { samples: recent.length, p50Ms: percentile(recent, 50), p95Ms: percentile(recent, 95) };
    }
}
