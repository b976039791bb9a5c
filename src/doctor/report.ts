import type { ProbeResult } from './probes.js';

// doctor's report for a person: a block per endpoint, a verdict, and the exit code that goes with it.

type Health = 'ok' | 'drift' | 'failed';

/** Drift is a wrong kind, a dropped row or an unreadable envelope; anything else that is not an answer is a failure. */
function health(result: ProbeResult): Health {
    if (!result.ok) return result.code === 'SCHEMA_DRIFT' ? 'drift' : 'failed';
    return result.report.dropped > 0 || result.report.wrongKinds.length > 0 ? 'drift' : 'ok';
}

/** 0 when every endpoint answered and every row parsed cleanly; 1 on drift or a failed endpoint. */
export function doctorExitCode(results: readonly ProbeResult[]): 0 | 1 {
    return results.every(result => health(result) === 'ok') ? 0 : 1;
}

export interface DoctorHeader {
    version: string;
    /** The upstream's host and base path, e.g. `api.tokenmetrics.com/v2`: never a query. */
    upstream: string;
    /** Fingerprints of the configured keys. */
    keys: readonly string[];
    endpoints: number;
}

const WIDTH = 100;
const TAG = { ok: 'OK', drift: 'DRIFT', failed: 'FAIL' } as const;
const INDENT = ' '.repeat(6);
const LABEL = 11;
const WRONG_KIND = `${INDENT}${'wrong kind'.padEnd(LABEL)} `;

/**
 * Text that reaches the report from outside (upstream messages, value descriptions): control characters out, and
 * a URL keeps its host and path but loses its query and fragment.
 */
export function safeText(text: string): string {
    return text.replace(/[\u0000-\u001f\u007f]+/g, ' ').replace(/(https?:\/\/[^\s?#"'<>]*)[?#][^\s"'<>]*/gi, '$1');
}

/** `items` after `label`, comma-separated and wrapped, continuation lines aligned under the first item. */
function listLines(label: string, items: readonly string[], emptyText = 'none', separator = ','): string[] {
    const head = `${INDENT}${label.padEnd(LABEL)} `;
    if (items.length === 0) return [head + emptyText];
    const lines: string[] = [];
    let line = head;
    for (const [index, item] of items.entries()) {
        const piece = item + (index < items.length - 1 ? separator : '');
        if (line !== head && line.length + 1 + piece.length > WIDTH) {
            lines.push(line);
            line = ' '.repeat(head.length) + piece;
        } else {
            line = line === head ? head + piece : `${line} ${piece}`;
        }
    }
    lines.push(line);
    return lines;
}

/** A sentence after `label`, wrapped at word boundaries. */
const proseLines = (label: string, text: string): string[] => listLines(label, safeText(text).split(/\s+/).filter(Boolean), '-', '');

/** `403 NOT_IN_PLAN`; just the code when no HTTP answer came (a timeout, a refused connection). */
const statusText = (result: Extract<ProbeResult, { ok: false }>): string =>
    result.status > 0 ? `${result.status} ${result.code}` : result.code;

const plural = (count: number, word: string): string => `${count} ${word}${count === 1 ? '' : 's'}`;

export function formatHeader(header: DoctorHeader): string[] {
    const keys = header.keys.length === 0 ? 'none' : header.keys.join(', ');
    return [
        `doctor calls ${header.endpoints} endpoints once each: this spends ${header.endpoints} credits of your Token Metrics quota.`,
        `crypto-intel-mcp ${header.version} doctor · upstream ${header.upstream} · ${header.keys.length === 1 ? 'key' : 'keys'} ${keys}`,
        ''
    ];
}

/** One endpoint's block: its status line, then what its rows looked like (or why there are none). */
export function formatProbe(result: ProbeResult, endpointWidth = 18): string[] {
    const tag = TAG[health(result)].padEnd(INDENT.length);
    const name = result.endpoint.padEnd(endpointWidth);
    if (!result.ok) {
        return [
            `${tag}${name} ${statusText(result).padEnd(20)} ${String(result.ms).padStart(6)} ms`,
            ...proseLines('error', result.message),
            ...proseLines('next step', result.hint),
            ''
        ];
    }
    const report = result.report;
    const noRows = report.rows === 0 && report.dropped === 0;
    return [
        `${tag}${name} ${String(result.status).padEnd(20)} ${String(result.ms).padStart(6)} ms   key ${result.servedBy}`,
        `${INDENT}${'rows'.padEnd(LABEL)} ${report.rows}, ${report.dropped > 0 ? `${report.dropped} dropped (no identity)` : 'none dropped'}`,
        ...listLines('missing', noRows ? [] : report.missing, noRows ? '(no rows to check)' : 'none'),
        ...listLines('unknown', report.unknown),
        // One line per field: a value description may itself hold a comma.
        ...report.wrongKinds.map(
            (wrong, index) => `${index === 0 ? WRONG_KIND : ' '.repeat(WRONG_KIND.length)}${wrong.field}: got ${safeText(wrong.got)}`
        ),
        ...(report.wrongKinds.length === 0 ? listLines('wrong kind', []) : []),
        ''
    ];
}

/** The last line: what is wrong, by endpoint, or that nothing is. */
export function formatVerdict(results: readonly ProbeResult[]): string {
    const failed = results.filter(result => health(result) === 'failed');
    const drifted = results.filter(result => health(result) === 'drift');
    if (failed.length === 0 && drifted.length === 0) {
        const empty = results.filter(result => result.ok && result.report.rows === 0).map(result => result.endpoint);
        const note = empty.length > 0 ? ` (no rows from ${empty.join(', ')})` : '';
        return `Verdict: OK: all ${results.length} endpoints answered and every row parsed${note}.`;
    }
    const parts: string[] = [];
    if (failed.length > 0) {
        const what = failed.map(result => (result.ok ? result.endpoint : `${result.endpoint} ${statusText(result)}`));
        parts.push(`${failed.length} of ${results.length} endpoints failed (${what.join(', ')})`);
    }
    if (drifted.length > 0) {
        const what = drifted.map(result => {
            if (!result.ok) return `${result.endpoint}: unreadable answer`;
            const fields = [...new Set(result.report.wrongKinds.map(wrong => wrong.field))];
            const details = [fields.join(', '), result.report.dropped > 0 ? `${plural(result.report.dropped, 'row')} dropped` : ''];
            return `${result.endpoint}: ${details.filter(Boolean).join('; ')}`;
        });
        parts.push(`schema drift on ${plural(drifted.length, 'endpoint')} (${what.join(', ')})`);
    }
    const word = [failed.length > 0 ? 'FAIL' : '', drifted.length > 0 ? 'DRIFT' : ''].filter(Boolean).join(' + ');
    const report = drifted.length > 0 ? ' Please report this output to the crypto-intel-mcp maintainers.' : '';
    return `Verdict: ${word}: ${parts.join('; ')}.${report}`;
}

/** The whole report as printed: header, one block per endpoint, verdict. */
export function formatReport(header: DoctorHeader, results: readonly ProbeResult[]): string[] {
    const width = Math.max(18, ...results.map(result => result.endpoint.length));
    return [...formatHeader(header), ...results.flatMap(result => formatProbe(result, width)), formatVerdict(results)];
}
