import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { decimal } from '../src/decimal.js';

describe('decimal', () => {
    it('writes any number as Intl.NumberFormat en-US does, for any number of decimals', () => {
        fc.assert(
            fc.property(fc.double(), fc.integer({ min: 0, max: 8 }), fc.boolean(), (value, maxDigits, fixed) => {
                const minDigits = fixed ? maxDigits : 0;
                const intl = new Intl.NumberFormat('en-US', { minimumFractionDigits: minDigits, maximumFractionDigits: maxDigits });
                expect(decimal(value, maxDigits, minDigits)).toBe(intl.format(value));
            }),
            { numRuns: 5_000 }
        );
    });

    it('rounds half away from zero on the decimal form, not on the binary value', () => {
        expect(decimal(1.005, 2)).toBe('1.01');
        expect(decimal(-2.675, 2)).toBe('-2.68');
        expect(decimal(999.995, 2)).toBe('1,000.00');
        expect(decimal(97250.12, 2)).toBe('97,250.12');
        expect(decimal(1234.5, 2, 0)).toBe('1,234.5');
        expect(decimal(-0.001, 2, 0)).toBe('-0');
        expect(decimal(1e21, 0)).toBe('1,000,000,000,000,000,000,000');
    });
});
