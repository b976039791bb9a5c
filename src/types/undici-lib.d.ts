// The undici modules imported by path (src/api/transport.ts, parser-warm-up.ts): the package types only its index.
declare module 'undici/lib/dispatcher/agent.js' {
    import type { Agent } from 'undici';
    const AgentClass: typeof Agent;
    export default AgentClass;
}

declare module 'undici/lib/api/api-request.js' {
    import type { Dispatcher } from 'undici';
    /** `Dispatcher.prototype.request`, which undici's index installs; called here with the dispatcher as `this`. */
    const request: (this: Dispatcher, options: Dispatcher.RequestOptions) => Promise<Dispatcher.ResponseData>;
    export default request;
}

declare module 'undici/lib/core/connect.js' {
    import type { buildConnector } from 'undici';
    const build: typeof buildConnector;
    export default build;
}

declare module 'undici/lib/dispatcher/client.js' {
    import type { Client } from 'undici';
    const ClientClass: typeof Client;
    export default ClientClass;
}
