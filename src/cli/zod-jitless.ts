import { config } from 'zod';

/**
 * zod compiles a parser per object schema (`new Function`) the first time it parses one: a few milliseconds per
 * schema, on the first call of every tool, that a server parsing small messages never earns back, and that the
 * bundle's code cache cannot hold (evaluated code is not part of it). Each schema decides when it is made, so this
 * runs before any module makes one: cli/main.ts imports it first.
 */
config({ jitless: true });
