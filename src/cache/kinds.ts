import type { TtlEndpoint } from '../config.js';
import type { CachedEndpoint } from '../endpoints/endpoint.js';

/** Any cached endpoint, whatever its parameters and rows. */
export type AnyEndpoint = CachedEndpoint<unknown, unknown>;

/** A key's kind (its prefix), for logs: the rest may be what someone typed. */
export const kindOfKey = (key: string): string => key.slice(0, key.indexOf(':'));

/**
 * The endpoints one cache answers, by the prefix of their keys (`<key>:<canonical parts>`): which TTL a key has, and
 * the check a value read from disk or from the shared tier must pass before a tool can see it (its endpoint's `entry`
 * schema, the shape the client's parsing produces).
 */
export class EntryKinds {
    private readonly byKey = new Map<string, AnyEndpoint>();

    constructor(
        readonly endpoints: readonly AnyEndpoint[],
        private readonly ttls: Readonly<Record<TtlEndpoint, number>>
    ) {
        const names = new Set<string>();
        for (const endpoint of endpoints) {
            // Two endpoints on one key prefix would read each other's entries; on one name, share counters and batches.
            if (this.byKey.has(endpoint.key) || names.has(endpoint.name) || endpoint.key.includes(':')) {
                throw new Error(`Endpoint "${endpoint.name}": its name or key prefix "${endpoint.key}" is taken or malformed.`);
            }
            names.add(endpoint.name);
            this.byKey.set(endpoint.key, endpoint);
        }
    }

    /** The endpoint a key belongs to, if this cache answers it. */
    of(key: string): AnyEndpoint | undefined {
        return this.byKey.get(kindOfKey(key));
    }

    includes(endpoint: AnyEndpoint): boolean {
        return this.byKey.get(endpoint.key) === endpoint;
    }

    /** How long an entry of the endpoint (or of the key's endpoint) is fresh, in ms. */
    ttlMs(of: AnyEndpoint | string): number {
        const endpoint = typeof of === 'string' ? this.of(of) : of;
        return endpoint === undefined ? 0 : this.ttls[endpoint.ttl];
    }

    valid(key: string, value: unknown): boolean {
        return this.of(key)?.entry.safeParse(value).success === true;
    }
}
