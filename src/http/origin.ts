import { isLoopbackHost } from '../config.js';

/** Binding to these means "every interface": they name no host a client would send. */
const WILDCARDS = new Set(['0.0.0.0', '::', '[::]']);

/** The host name of a `Host` header value (`name`, `name:port`, `[v6]:port`), lower-case, without brackets. */
function hostName(value: string): string {
    const trimmed = value.trim().toLowerCase();
    if (trimmed.startsWith('[')) {
        const end = trimmed.indexOf(']');
        return end < 0 ? trimmed.slice(1) : trimmed.slice(1, end);
    }
    const colon = trimmed.indexOf(':');
    return colon < 0 ? trimmed : trimmed.slice(0, colon);
}

export interface HostGuardOptions {
    /** The host the server is bound to. */
    host: string;
    /** More accepted names, e.g. the public name a reverse proxy forwards. */
    allowedHosts: readonly string[];
    allowAnyHost: boolean;
}

/**
 * DNS rebinding defence (MCP transport spec: servers MUST validate Origin). A web page can make a browser send
 * requests to 127.0.0.1 under a name the attacker controls; such a request carries that name in `Host` and the
 * page's `Origin`. Requests are accepted only for loopback names, the configured host and the allowed names;
 * a request without `Origin` (every non-browser MCP client) is judged by its `Host` alone.
 */
export class HostGuard {
    private readonly names: Set<string>;

    constructor(private readonly options: HostGuardOptions) {
        const bound = hostName(options.host);
        this.names = new Set(options.allowedHosts.map(hostName));
        if (!WILDCARDS.has(options.host) && bound !== '') this.names.add(bound);
    }

    private accepts(name: string): boolean {
        return this.options.allowAnyHost || isLoopbackHost(name) || this.names.has(name);
    }

    /** Why the request is refused, or `null` when it may go on. */
    check(host: string | undefined, origin: string | undefined): string | null {
        if (host === undefined || !this.accepts(hostName(host))) return 'Host header not allowed';
        if (origin === undefined) return null;
        let name: string;
        try {
            name = new URL(origin).hostname.toLowerCase().replace(/^\[(.*)\]$/, '$1');
        } catch {
            // `Origin: null` (a sandboxed page, a file: URL) and garbage alike: no origin we can vouch for.
            return 'Origin not allowed';
        }
        return this.accepts(name) ? null : 'Origin not allowed';
    }
}
