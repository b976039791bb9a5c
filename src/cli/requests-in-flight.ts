import type { JSONRPCMessage } from '@modelcontextprotocol/sdk/types.js';

/**
 * The ids of requests received and not yet answered, so the end of stdin can wait for their answers (a request
 * written just before EOF gets one), as the HTTP server drains its requests on SIGTERM.
 */
export function requestsInFlight() {
    const ids = new Set<string | number>();
    const idle: Array<() => void> = [];
    const settle = () => {
        if (ids.size === 0) for (const resolve of idle.splice(0)) resolve();
    };
    return {
        received(message: JSONRPCMessage): void {
            if ('method' in message && 'id' in message) ids.add(message.id);
            else if ('method' in message && message.method === 'notifications/cancelled') {
                const requestId = (message.params as { requestId?: unknown } | undefined)?.requestId;
                if (typeof requestId === 'string' || typeof requestId === 'number') ids.delete(requestId);
                settle();
            }
        },
        answered(message: JSONRPCMessage): void {
            if (!('method' in message) && 'id' in message && message.id !== undefined) {
                ids.delete(message.id);
                settle();
            }
        },
        /** Resolves when every request has its answer, or after `limitMs`. */
        drained(limitMs: number): Promise<void> {
            if (ids.size === 0) return Promise.resolve();
            return new Promise(resolve => {
                const timer = setTimeout(resolve, limitMs);
                idle.push(() => {
                    clearTimeout(timer);
                    resolve();
                });
            });
        }
    };
}
