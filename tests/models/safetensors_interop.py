#!/usr/bin/env python3
"""Reads edgefl safetensors files with nothing but struct + json, as any other reader would.

Usage: safetensors_interop.py FP32.safetensors Q8.safetensors Q4.safetensors
(the output of `edgefl quantize` on an mlp checkpoint). Prints the max |w - dequantized w| of
fc1.weight for q8 and q4, which must equal what `edgefl quantize` printed, and exits non-zero
when a file does not follow the format (tensors not tiling the data buffer, bad padding).
"""
import array
import json
import struct
import sys


def load(path):
    blob = open(path, 'rb').read()
    (n,) = struct.unpack('<Q', blob[:8])
    assert n % 8 == 0, 'header not padded to 8 bytes'
    header = json.loads(blob[8:8 + n])
    data = blob[8 + n:]
    meta = header.pop('__metadata__', {})
    spans = sorted(tuple(v['data_offsets']) for v in header.values())
    end = 0
    for begin, stop in spans:
        assert begin == end, 'gap or overlap'
        end = stop
    assert end == len(data), 'trailing bytes'
    return meta, {k: (v['dtype'], v['shape'], data[slice(*v['data_offsets'])])
                  for k, v in header.items()}


def main(fp32_path, q8_path, q4_path):
    _, fp32 = load(fp32_path)
    _, rows_cols, raw = fp32['fc1.weight']
    rows, cols = rows_cols
    w = array.array('f', raw)
    meta8, q8 = load(q8_path)
    assert meta8['format'] == 'edgefl-q8'
    q = array.array('b', q8['fc1.weight.q8'][2])
    s = array.array('f', q8['fc1.weight.scale'][2])
    err8 = max(abs(q[r * cols + c] * s[r] - w[r * cols + c])
               for r in range(rows) for c in range(cols))
    meta4, q4 = load(q4_path)
    assert meta4['format'] == 'edgefl-q4'
    groups = (cols + 31) // 32
    nibbles = q4['fc1.weight.q4'][2]
    s4 = array.array('f', q4['fc1.weight.scale'][2])

    def dequantize(r, c):
        g, j = divmod(c, 32)
        byte = nibbles[r * 16 * groups + g * 16 + j % 16]
        return (((byte & 15) if j < 16 else (byte >> 4)) - 8) * s4[r * groups + g]

    err4 = max(abs(dequantize(r, c) - w[r * cols + c]) for r in range(rows) for c in range(cols))
    print(f'fc1.weight max |err|: q8 {err8:.3e}, q4 {err4:.3e}')


if __name__ == '__main__':
    main(*sys.argv[1:4])
