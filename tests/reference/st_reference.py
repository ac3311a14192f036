#!/usr/bin/python3
"""st_reference.py: an independent numpy reference for saecap's safetensors
reader/writer and its bf16/f16 conversions (tests/test_dtype.c and
tests/test_safetensors.c run it with /usr/bin/python3).

Written from the format description, not from the C code:
  file = u64 little-endian N | N bytes of UTF-8 JSON header | data section
  header = {"__metadata__": {str: str} (optional),
            name: {"dtype": "F32"|..., "shape": [int...], "data_offsets": [begin, end]}}
  offsets are relative to the data section; the reference library requires
  the ranges to tile the data section exactly (start at 0, no gaps, end at
  its end), little-endian element data, row-major.

Commands:
  convert IN OUT  IN holds little-endian uint32 f32 bit patterns. OUT gets
                  bf16[n] and f16[n] (uint16, round to nearest even, computed
                  as "nearest candidate, ties to even"), then f32 bits of
                  every f16 pattern (65536 uint32) and of every bf16 pattern.
  check FILE      validates FILE against the spec, then checks every tensor
                  against RECIPE (values from recipe_values); prints one line
                  per tensor; exit 1 on any mismatch.
  write FILE      writes the RECIPE tensors in its own layout: reverse name
                  order, metadata last, header NOT padded (so the data
                  section is unaligned).
  digest FILE     validates FILE and prints "name dtype [shape] fnv1a64" per
                  tensor (fnv1a64 of the raw data bytes, hex), sorted by name.
"""
import json
import struct
import sys

import numpy as np

DTYPES = {  # name -> (numpy dtype little-endian, element size)
    "F64": ("<f8", 8), "F32": ("<f4", 4), "F16": ("<f2", 2), "BF16": ("<u2", 2),
    "I64": ("<i8", 8), "I32": ("<i4", 4), "I16": ("<i2", 2), "I8": ("i1", 1),
    "U64": ("<u8", 8), "U32": ("<u4", 4), "U16": ("<u2", 2), "U8": ("u1", 1),
    "BOOL": ("u1", 1),
}

# The recipe both sides know (tests/test_safetensors.c has the same table).
RECIPE = [
    ("a.f32", "F32", [3, 4]), ("b.bf16", "BF16", [2, 3, 5]), ("c.f16", "F16", [7]),
    ("d.f64", "F64", [2, 2]), ("e.i8", "I8", [5]), ("f.i16", "I16", [3]),
    ("g.i32", "I32", [2, 2]), ("h.i64", "I64", [3]), ("i.u8", "U8", [4]),
    ("j.u16", "U16", [3]), ("k.u32", "U32", [2]), ("l.u64", "U64", [3]),
    ("m.bool", "BOOL", [3, 3]), ("n.scalar", "F32", []), ("o.empty", "F32", [0, 4]),
]
RECIPE_META = {"format": "pt", "recipe": "saecap-st-v1"}


def f32_to_bf16_bits(x32):
    """Round each f32 to the nearest bf16 (ties to even) by comparing the
    distances to the two candidates in float64 (exact here); NaN -> quiet
    NaN keeping the sign and top payload bits."""
    u = x32.view(np.uint32).astype(np.uint64)
    sign = (u >> 31) << 15
    mag = u & 0x7FFFFFFF
    lo = mag >> 16
    hi = lo + 1
    def value(b):
        v = (b << 16).astype(np.uint32).view(np.float32).astype(np.float64)
        return np.where(b >= 0x7F80, 2.0 ** 128, v)  # the step past max finite
    with np.errstate(all="ignore"):
        ax = mag.astype(np.uint32).view(np.float32).astype(np.float64)
        dlo = ax - value(lo)
        dhi = value(hi) - ax
    up = (dhi < dlo) | ((dhi == dlo) & ((lo & 1) == 1))
    up &= mag < 0x7F800000  # inf is exact; NaN below
    r = np.where(up, hi, lo) | sign
    nan = mag > 0x7F800000
    r = np.where(nan, (u >> 16) | 0x40, r)
    return r.astype(np.uint16)


def recipe_values(k, dtype, n):
    """Element i of recipe tensor k, as the numpy array stored in the file."""
    i = np.arange(n, dtype=np.int64)
    base = (i * 7 + k * 13) % 101 - 50
    if dtype == "F32":
        return (base / 8.0).astype("<f4")
    if dtype == "F64":
        return (base / 8.0 + 2.0 ** -40).astype("<f8")
    if dtype == "F16":
        return (base / 8.0).astype("<f2")
    if dtype == "BF16":
        return f32_to_bf16_bits((base / 8.0).astype(np.float32)).astype("<u2")
    if dtype == "BOOL":
        return ((i + k) % 3 == 0).astype("u1")
    if dtype == "I64":
        return (base * 2 ** 40).astype("<i8")
    if dtype == "U64":
        return (base + 50).astype(np.uint64) << np.uint64(56)
    if dtype.startswith("I"):
        return base.astype(DTYPES[dtype][0])
    return (base + 50).astype(DTYPES[dtype][0])


def fail(msg):
    print("st_reference: " + msg)
    sys.exit(1)


def read_file(path):
    """Returns (metadata, {name: (dtype, shape, raw bytes)}) after checking
    the file against the spec."""
    blob = open(path, "rb").read()
    if len(blob) < 8:
        fail("%s: shorter than 8 bytes" % path)
    (n,) = struct.unpack("<Q", blob[:8])
    if n > len(blob) - 8:
        fail("%s: header length %d past the end" % (path, n))
    text = blob[8:8 + n].decode("utf-8")
    if not text.startswith("{"):
        fail("%s: header does not start with '{'" % path)
    header = json.loads(text)
    data = blob[8 + n:]
    meta = header.pop("__metadata__", {})
    if not all(isinstance(k, str) and isinstance(v, str) for k, v in meta.items()):
        fail("%s: metadata is not str -> str" % path)
    spans = sorted((tuple(v["data_offsets"]), k) for k, v in header.items())
    pos = 0
    for (b, e), name in spans:
        if b != pos:
            fail("%s: tensor %s starts at %d, expected %d (gap or overlap)" % (path, name, b, pos))
        pos = e
    if pos != len(data):
        fail("%s: tensors end at %d but the data section is %d bytes" % (path, pos, len(data)))
    out = {}
    for name, info in header.items():
        np_dtype, size = DTYPES[info["dtype"]]
        shape = info["shape"]
        b, e = info["data_offsets"]
        if int(np.prod(shape, dtype=np.int64)) * size != e - b:
            fail("%s: tensor %s size does not match its shape" % (path, name))
        out[name] = (info["dtype"], shape, data[b:e])
    return meta, out


def cmd_check(path):
    meta, tensors = read_file(path)
    if meta != RECIPE_META:
        fail("%s: metadata %r, expected %r" % (path, meta, RECIPE_META))
    if sorted(tensors) != sorted(r[0] for r in RECIPE):
        fail("%s: tensor names %r" % (path, sorted(tensors)))
    for k, (name, dtype, shape) in enumerate(RECIPE):
        got_dtype, got_shape, raw = tensors[name]
        if got_dtype != dtype or got_shape != shape:
            fail("%s: %s is %s %r, expected %s %r" % (path, name, got_dtype, got_shape, dtype, shape))
        n = int(np.prod(shape, dtype=np.int64))
        got = np.frombuffer(raw, dtype=DTYPES[dtype][0])
        want = recipe_values(k, dtype, n)
        if got.tobytes() != want.tobytes():
            bad = int(np.nonzero(got.view(np.uint8) != want.view(np.uint8))[0][0])
            fail("%s: %s differs from the recipe (first bad byte %d)" % (path, name, bad))
        print("ok %s %s %r" % (name, dtype, shape))


def cmd_write(path):
    header, chunks, pos = {}, [], 0
    for k, (name, dtype, shape) in sorted(enumerate(RECIPE), key=lambda r: r[1][0], reverse=True):
        raw = recipe_values(k, dtype, int(np.prod(shape, dtype=np.int64))).tobytes()
        header[name] = {"data_offsets": [pos, pos + len(raw)], "shape": shape, "dtype": dtype}
        chunks.append(raw)
        pos += len(raw)
    header["__metadata__"] = RECIPE_META
    text = json.dumps(header).encode("utf-8")
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(text)) + text + b"".join(chunks))


def fnv1a64(raw):
    h = 0xCBF29CE484222325
    for byte in raw:
        h = ((h ^ byte) * 0x100000001B3) & 0xFFFFFFFFFFFFFFFF
    return h


def cmd_digest(path):
    _, tensors = read_file(path)
    for name in sorted(tensors):
        dtype, shape, raw = tensors[name]
        print("%s %s [%s] %016x" % (name, dtype, ",".join(str(d) for d in shape), fnv1a64(raw)))


def cmd_convert(src, dst):
    x = np.fromfile(src, dtype="<u4").view(np.float32)
    bf = f32_to_bf16_bits(x)
    with np.errstate(all="ignore"):
        f16 = x.astype(np.float16).view(np.uint16)
        all16 = np.arange(65536, dtype=np.uint32).astype(np.uint16)
        from_f16 = all16.view(np.float16).astype(np.float32).view(np.uint32)
    from_bf16 = (all16.astype(np.uint32) << 16).astype(np.uint32)
    with open(dst, "wb") as f:
        for arr in (bf.astype("<u2"), f16.astype("<u2"), from_f16.astype("<u4"), from_bf16.astype("<u4")):
            f.write(arr.tobytes())


def main(argv):
    if len(argv) == 4 and argv[1] == "convert":
        cmd_convert(argv[2], argv[3])
    elif len(argv) == 3 and argv[1] in ("check", "write", "digest"):
        {"check": cmd_check, "write": cmd_write, "digest": cmd_digest}[argv[1]](argv[2])
    else:
        sys.stderr.write(__doc__)
        sys.exit(2)


if __name__ == "__main__":
    main(sys.argv)
