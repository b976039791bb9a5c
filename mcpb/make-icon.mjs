#!/usr/bin/env node
// Writes mcpb/icon.png: a 512x512 PNG (a rising green chart line on a dark rounded tile), with no dependency
// beyond node:zlib, so the icon can be regenerated anywhere: `node mcpb/make-icon.mjs`.
import { Buffer } from 'node:buffer';
import { writeFileSync } from 'node:fs';
import process from 'node:process';
import { URL } from 'node:url';
import { deflateSync } from 'node:zlib';

const SIZE = 512;
const RADIUS = 96;
const POINTS = [
    [80, 380],
    [170, 320],
    [240, 350],
    [320, 230],
    [380, 260],
    [440, 130]
];

function crc32(buffer) {
    let crc = ~0;
    for (const byte of buffer) {
        crc ^= byte;
        for (let k = 0; k < 8; k++) crc = (crc >>> 1) ^ (0xedb88320 & -(crc & 1));
    }
    return ~crc >>> 0;
}

function chunk(type, data) {
    const length = Buffer.alloc(4);
    length.writeUInt32BE(data.length);
    const body = Buffer.concat([Buffer.from(type, 'ascii'), data]);
    const crc = Buffer.alloc(4);
    crc.writeUInt32BE(crc32(body));
    return Buffer.concat([length, body, crc]);
}

function distanceToSegment(x, y, [ax, ay], [bx, by]) {
    const dx = bx - ax;
    const dy = by - ay;
    const t = Math.max(0, Math.min(1, ((x - ax) * dx + (y - ay) * dy) / (dx * dx + dy * dy)));
    return Math.hypot(x - (ax + t * dx), y - (ay + t * dy));
}

/** The chart line's height at x, for the filled area under it. */
function lineY(x) {
    for (let i = 1; i < POINTS.length; i++) {
        const [ax, ay] = POINTS[i - 1];
        const [bx, by] = POINTS[i];
        if (x >= ax && x <= bx) return ay + ((x - ax) / (bx - ax)) * (by - ay);
    }
    return null;
}

function insideTile(x, y) {
    const cx = Math.max(RADIUS, Math.min(SIZE - RADIUS, x));
    const cy = Math.max(RADIUS, Math.min(SIZE - RADIUS, y));
    return Math.hypot(x - cx, y - cy) <= RADIUS;
}

const rows = [];
for (let y = 0; y < SIZE; y++) {
    const row = Buffer.alloc(1 + SIZE * 4); // filter byte 0, then RGBA
    for (let x = 0; x < SIZE; x++) {
        let rgba = [0, 0, 0, 0];
        if (insideTile(x + 0.5, y + 0.5)) {
            const shade = Math.round(24 + (y / SIZE) * 16);
            rgba = [shade, shade + 8, shade + 30, 255];
            const top = lineY(x);
            if (top !== null && y > top && y < 420) rgba = [20, 120 - Math.round(((y - top) / 300) * 60), 80, 255];
            const near = Math.min(...POINTS.slice(1).map((point, i) => distanceToSegment(x, y, POINTS[i], point)));
            if (near < 14) rgba = [52, 211, 153, 255];
            const dot = Math.hypot(x - 440, y - 130);
            if (dot < 30) rgba = [167, 243, 208, 255];
        }
        row.set(rgba, 1 + x * 4);
    }
    rows.push(row);
}

const header = Buffer.alloc(13);
header.writeUInt32BE(SIZE, 0);
header.writeUInt32BE(SIZE, 4);
header[8] = 8; // bit depth
header[9] = 6; // RGBA
const png = Buffer.concat([
    Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]),
    chunk('IHDR', header),
    chunk('IDAT', deflateSync(Buffer.concat(rows), { level: 9 })),
    chunk('IEND', Buffer.alloc(0))
]);
writeFileSync(new URL('./icon.png', import.meta.url), png);
process.stdout.write(`wrote mcpb/icon.png (${SIZE}x${SIZE}, ${png.length} bytes)\n`);
