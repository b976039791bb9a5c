import { invalidInput, type UpstreamError } from '../src/api/errors.js';

/** A token reference that matched nothing: the message already says what to try next. */
export function unresolvedError(line: string): UpstreamError {
    return invalidInput(line, 'Pass a symbol (e.g. "ETH"), a full name ("ethereum") or a numeric Token Metrics id.');
}
