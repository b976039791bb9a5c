/**
 * Numbers as `Intl.NumberFormat('en-US')` writes them, without ICU: a process's first Intl formatter loads ICU's
 * number data (~15-40 ms), and the first answer that shows a number would wait for it.
 */

/** The shortest decimal form of a non-negative finite number (what `String` gives), with any exponent written out. */
function plainDigits(abs: number): string {
    const [mantissa = '', exponent] = String(abs).split('e');
    if (exponent === undefined) return mantissa;
    const [lead = '', rest = ''] = mantissa.split('.');
    const digits = lead + rest;
    const point = lead.length + Number(exponent);
    if (point <= 0) return `0.${'0'.repeat(-point)}${digits}`;
    return point >= digits.length ? digits + '0'.repeat(point - digits.length) : `${digits.slice(0, point)}.${digits.slice(point)}`;
}

/**
 * `value` with thousands separators and `minDigits` to `maxDigits` decimals, as `Intl.NumberFormat('en-US', {
 * minimumFractionDigits, maximumFractionDigits })` formats it: rounded half away from zero on the shortest decimal form,
 * so 1.005 reads 1.01 (`toFixed` reads the binary value, 1.00499..., and gives 1.00).
 */
export function decimal(value: number, maxDigits: number, minDigits = maxDigits): string {
    if (!Number.isFinite(value)) return Number.isNaN(value) ? 'NaN' : value > 0 ? '∞' : '-∞';
    const [whole = '', fraction = ''] = plainDigits(Math.abs(value)).split('.');
    let digits = whole + fraction.slice(0, maxDigits).padEnd(maxDigits, '0');
    if ((fraction[maxDigits] ?? '0') >= '5') digits = (BigInt(digits) + 1n).toString().padStart(digits.length, '0');
    const point = digits.length - maxDigits;
    let decimals = digits.slice(point);
    while (decimals.length > minDigits && decimals.endsWith('0')) decimals = decimals.slice(0, -1);
    const integer = digits.slice(0, point).replace(/^0+(?=\d)/, '') || '0';
    const sign = value < 0 || Object.is(value, -0) ? '-' : '';
    return `${sign}${integer.replace(/\B(?=(\d{3})+$)/g, ',')}${decimals ? `.${decimals}` : ''}`;
}
