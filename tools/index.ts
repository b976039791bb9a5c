import type { ListToolsResult } from '@modelcontextprotocol/sdk/types.js';
import type { ToolDefinition } from './define.js';
import { explainSignal } from './explain-signal.js';
import { getGrades } from './get-grades.js';
import { getPrice } from './get-price.js';
import { getUsage } from './get-usage.js';
import { listMoonshots } from './list-moonshots.js';
import { toolsListResult } from './published.js';

export { NO_PROGRESS } from './define.js';
export type { Progress, ToolDeps, ToolDefinition } from './define.js';

/** Every tool the server publishes, in the order clients list them. */
export const TOOLS: readonly ToolDefinition[] = [getPrice, getGrades, listMoonshots, explainSignal, getUsage];

/** The tool list as the build made it (scripts/bundle.mjs); absent where the modules run as tsc wrote them. */
declare const __BUILT_TOOLS_LIST__: ListToolsResult | undefined;

/**
 * What `tools/list` answers, built once: every server of the process (one per HTTP request) shares it. The bundle
 * carries it as the build made it from these same schemas, since converting them took ~8 ms of every start.
 */
export const TOOLS_LIST: ListToolsResult = typeof __BUILT_TOOLS_LIST__ === 'undefined' ? toolsListResult(TOOLS) : __BUILT_TOOLS_LIST__;
