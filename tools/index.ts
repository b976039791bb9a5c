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

/** What `tools/list` answers, built once: every server of the process (one per HTTP request) shares it. */
export const TOOLS_LIST = toolsListResult(TOOLS);
