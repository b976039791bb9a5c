import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { isValidFilterValue, titleCase } from '../../src/endpoints/params.js';

/**
 * The filter rules and title case run ASCII text through ASCII forms of their regexes (cheaper to build); these are
 * the rules as written for all of Unicode, which any text must meet alike.
 */
const unicodeRule = (value: string): boolean =>
    /^[\p{L}\p{N} ._\-$()+']{1,64}$/u.test(value) && !/--|(?<![\p{L}\p{N}])'|'(?![\p{L}\p{N}])/u.test(value);
const unicodeTitleCase = (name: string): string =>
    name.replace(/[\p{L}\p{N}']+/gu, word => word.charAt(0).toUpperCase() + word.slice(1).toLowerCase());

/** Mostly the characters the rules are about, so that valid values and edge cases both come up often. */
const asciiText = fc.string({
    unit: fc.oneof(
        fc.constantFrom('a', 'Z', '7', ' ', "'", '-', '.', '_', '$', '(', ')', '+', ',', ';'),
        fc.integer({ min: 0, max: 127 }).map(code => String.fromCharCode(code))
    ),
    maxLength: 70
});

describe('token filter values', () => {
    it('judges ASCII text as the Unicode rule does', () => {
        fc.assert(
            fc.property(asciiText, value => isValidFilterValue(value) === unicodeRule(value)),
            { seed: 1_125, numRuns: 5_000 }
        );
    });

    it('judges text beyond ASCII by the Unicode rule', () => {
        for (const value of ['Ünïcörn', 'ポケモン', "Pepe's Ünïcörn", "Ü'", 'Ü--x', 'naïve\u0000', '\u{1F680} rocket']) {
            expect(isValidFilterValue(value), value).toBe(unicodeRule(value));
        }
        expect(isValidFilterValue('Ünïcörn')).toBe(true);
        expect(isValidFilterValue("Ü'")).toBe(false);
    });

    it('title-cases ASCII names as the Unicode rule does, and other names by it', () => {
        fc.assert(
            fc.property(asciiText, name => titleCase(name) === unicodeTitleCase(name)),
            { seed: 2_511, numRuns: 2_000 }
        );
        expect(titleCase('shiba inu')).toBe('Shiba Inu');
        expect(titleCase('ÉLAN vital')).toBe('Élan Vital');
    });
});
