import { describe, expect, it } from 'vitest';
import { busyReplies, CallerGates } from '../../src/http/fairness.js';

describe('the door of the HTTP transport', () => {
    it('lets in four calls per uncached slot of a caller, counting a batch by its calls, and no more until some are answered', () => {
        const gates = new CallerGates(2);
        const first = gates.letIn('token#1', 5);
        const second = gates.letIn('token#1', 3);
        expect(first).toBeDefined();
        expect(second).toBeDefined();
        // 8 inside: the ninth waits at the door, another caller does not.
        expect(gates.letIn('token#1', 1)).toBeUndefined();
        expect(gates.letIn('token#2', 1)).toBeDefined();
        first!();
        first!();
        expect(gates.letIn('token#1', 1)).toBeDefined();
    });

    it('refuses at the door while the caller holds all its uncached slots, and never without a cap', () => {
        const gates = new CallerGates(1);
        const context = gates.context('token#1');
        expect(context.enter!()).toBe(true);
        expect(gates.letIn('token#1', 1)).toBeUndefined();
        context.leave!();
        expect(gates.letIn('token#1', 1)).toBeDefined();
        const open = new CallerGates(0);
        for (let i = 0; i < 100; i++) expect(open.letIn('token#1', 10)).toBeDefined();
    });

    it('answers a refused message with the same busy text each time', () => {
        const call = { jsonrpc: '2.0', id: 1, method: 'tools/call', params: { name: 'get_price', arguments: {} } };
        const text = (reply: unknown): string => (reply as { result: { content: Array<{ text: string }> } }).result.content[0]!.text;
        expect(text(busyReplies(call, 2))).toMatch(/busy.*Retry in 2 s/s);
        expect(text(busyReplies(call, 2))).toBe(text(busyReplies(call, 2)));
        expect(text(busyReplies(call, 1))).toMatch(/Retry in 1 s/);
    });
});
