// The one WebAssembly call the server makes (api/parser-warm-up.ts). TypeScript declares WebAssembly only in its DOM
// libraries, which would also declare a browser's globals for code that runs on Node.
declare namespace WebAssembly {
    function compile(bytes: Uint8Array): Promise<unknown>;
}
