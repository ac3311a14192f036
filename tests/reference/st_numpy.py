#!/usr/bin/python3
"""st_numpy.py: a minimal, dependency-free (numpy only) safetensors reader/writer.

Independent re-implementation written from the safetensors file-format description
(it is NOT derived from saecap's C code):

  file = u64 little-endian N | N bytes of UTF-8 JSON header | data bytes
  header = { name: {"dtype": D, "shape": [...], "data_offsets": [begin, end]}, ...,
             optional "__metadata__": {str: str} }
  offsets are relative to the first byte after the header, end is exclusive,
  data is little-endian, C order.

Supported dtypes: F32, F16, BF16, F64, I8, I16, I32, I64, U8, U16, U32, U64, BOOL.
BF16 is widened to float32 exactly by putting the 16 bits into the high half of a
uint32 (bf16 is the top half of an IEEE float32).

Sharded checkpoints: a folder with model.safetensors.index.json ({"weight_map": {name:
shard_file}}) is read shard by shard; a folder with a single model.safetensors, or any
*.safetensors files, also works.

CLI:  st_numpy.py list FILE_OR_DIR      (name, dtype, shape, first values)
"""
import json
import os
import struct
import sys

import numpy as np

# dtype name -> (numpy dtype of the raw storage, bytes per element)
_RAW = {
    "F64": np.dtype("<f8"), "F32": np.dtype("<f4"), "F16": np.dtype("<f2"),
    "BF16": np.dtype("<u2"),  # raw bits; widened by bf16_to_f32
    "I64": np.dtype("<i8"), "I32": np.dtype("<i4"), "I16": np.dtype("<i2"), "I8": np.dtype("i1"),
    "U64": np.dtype("<u8"), "U32": np.dtype("<u4"), "U16": np.dtype("<u2"), "U8": np.dtype("u1"),
    "BOOL": np.dtype("u1"),
}


def bf16_to_f32(bits):
    """uint16 bf16 bit patterns -> float32 (exact): bits << 16 reinterpreted as f32."""
    bits = np.asarray(bits, dtype=np.uint16)
    return (bits.astype(np.uint32) << np.uint32(16)).view(np.float32)


def f32_to_bf16_bits(x):
    """float32 -> bf16 bits, round to nearest even (NaN kept quiet). Used only by the writer."""
    x = np.ascontiguousarray(x, dtype=np.float32)
    u = x.view(np.uint32).astype(np.uint64)
    rounded = (u + 0x7FFF + ((u >> 16) & 1)) >> 16
    out = rounded.astype(np.uint16)
    nan = np.isnan(x)
    if nan.any():
        out[nan] = ((u[nan] >> 16) | 0x40).astype(np.uint16)
    return out


def round_to_bf16(x):
    """Round float32/float64 values to the nearest bf16 value (returned as float32)."""
    return bf16_to_f32(f32_to_bf16_bits(np.asarray(x, dtype=np.float32)))


class SafeTensorsFile:
    """One .safetensors file, memory-mapped. get(name) returns the stored array (BF16 as uint16
    bits unless widen=True, which returns float32 for every float dtype)."""

    def __init__(self, path):
        self.path = path
        with open(path, "rb") as f:
            head = f.read(8)
            if len(head) != 8:
                raise ValueError(f"{path}: shorter than 8 bytes")
            (n,) = struct.unpack("<Q", head)
            size = os.path.getsize(path)
            if n > size - 8:
                raise ValueError(f"{path}: header length {n} exceeds file size {size}")
            hdr = json.loads(f.read(n).decode("utf-8"))
        self.data_start = 8 + n
        self.metadata = hdr.pop("__metadata__", None)
        self.entries = hdr
        data_len = size - self.data_start
        for name, e in hdr.items():
            dt = e["dtype"]
            if dt not in _RAW:
                raise ValueError(f"{path}: tensor {name}: unsupported dtype {dt}")
            b, end = e["data_offsets"]
            count = int(np.prod(e["shape"], dtype=np.int64)) if e["shape"] else 1
            if not (0 <= b <= end <= data_len) or end - b != count * _RAW[dt].itemsize:
                raise ValueError(f"{path}: tensor {name}: bad data_offsets {b},{end} for "
                                 f"{dt}{e['shape']} (data section {data_len} bytes)")
        self._mm = np.memmap(path, dtype=np.uint8, mode="r") if size > 0 else None

    def keys(self):
        return list(self.entries.keys())

    def dtype(self, name):
        return self.entries[name]["dtype"]

    def shape(self, name):
        return tuple(self.entries[name]["shape"])

    def get(self, name, widen=False):
        e = self.entries[name]
        b, end = e["data_offsets"]
        raw = _RAW[e["dtype"]]
        buf = self._mm[self.data_start + b: self.data_start + end]
        arr = buf.view(raw).reshape(tuple(e["shape"]))
        if e["dtype"] == "BOOL":
            arr = arr.astype(bool)
        if widen:
            if e["dtype"] == "BF16":
                return bf16_to_f32(arr)
            if e["dtype"] in ("F16", "F32", "F64"):
                return np.array(arr, dtype=np.float32)
        return np.array(arr)


class SafeTensorsDir:
    """All tensors of a checkpoint folder (sharded via model.safetensors.index.json, or every
    *.safetensors file in it), or of a single file."""

    def __init__(self, path):
        self.files = {}
        self.where = {}
        if os.path.isfile(path):
            shards = [path]
        else:
            idx = os.path.join(path, "model.safetensors.index.json")
            if os.path.exists(idx):
                with open(idx) as f:
                    wm = json.load(f)["weight_map"]
                shards = sorted(set(os.path.join(path, v) for v in wm.values()))
            else:
                shards = sorted(os.path.join(path, x) for x in os.listdir(path)
                                if x.endswith(".safetensors"))
            if not shards:
                raise FileNotFoundError(f"no safetensors files in {path}")
        for s in shards:
            st = SafeTensorsFile(s)
            self.files[s] = st
            for k in st.keys():
                if k in self.where:
                    raise ValueError(f"tensor {k} appears in {self.where[k]} and {s}")
                self.where[k] = s
        if not os.path.isfile(path) and os.path.exists(os.path.join(path, "model.safetensors.index.json")):
            missing = [k for k, v in wm.items() if k not in self.where]
            if missing:
                raise ValueError(f"index names tensors absent from the shards: {missing[:5]}")

    def keys(self):
        return list(self.where.keys())

    def __contains__(self, k):
        return k in self.where

    def dtype(self, k):
        return self.files[self.where[k]].dtype(k)

    def shape(self, k):
        return self.files[self.where[k]].shape(k)

    def get(self, k, widen=False):
        return self.files[self.where[k]].get(k, widen=widen)


def save_file(tensors, path, dtypes=None, metadata=None):
    """Write {name: np.ndarray} to a .safetensors file. dtypes maps name -> 'BF16'/'F32'/...;
    default: from the array (float32 -> F32). Used by the tiny-checkpoint generator/tests only."""
    dtypes = dtypes or {}
    rev = {np.dtype("<f8"): "F64", np.dtype("<f4"): "F32", np.dtype("<f2"): "F16",
           np.dtype("<i8"): "I64", np.dtype("<i4"): "I32", np.dtype("<i2"): "I16",
           np.dtype("i1"): "I8", np.dtype("u1"): "U8", np.dtype("bool"): "BOOL"}
    header, blobs, off = {}, [], 0
    for name in sorted(tensors):
        a = np.asarray(tensors[name])
        dt = dtypes.get(name) or rev[a.dtype.newbyteorder("<") if a.dtype.byteorder == ">" else a.dtype]
        if dt == "BF16":
            raw = f32_to_bf16_bits(a).astype("<u2").tobytes()
        elif dt == "BOOL":
            raw = a.astype(np.uint8).tobytes()
        else:
            raw = np.ascontiguousarray(a, dtype=_RAW[dt]).tobytes()
        header[name] = {"dtype": dt, "shape": list(a.shape), "data_offsets": [off, off + len(raw)]}
        blobs.append(raw)
        off += len(raw)
    if metadata:
        header["__metadata__"] = metadata
    hj = json.dumps(header, separators=(",", ":")).encode("utf-8")
    hj += b" " * ((8 - len(hj) % 8) % 8)  # pad header to 8-byte alignment (allowed by the format)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(hj)))
        f.write(hj)
        for b in blobs:
            f.write(b)


def _main(argv):
    if len(argv) != 2 or argv[0] != "list":
        print(__doc__)
        return 2
    st = SafeTensorsDir(argv[1])
    for k in sorted(st.keys()):
        a = st.get(k, widen=True)
        flat = np.asarray(a).reshape(-1)[:4]
        print(f"{k}\t{st.dtype(k)}\t{list(st.shape(k))}\t{flat.tolist()}")
    return 0


if __name__ == "__main__":
    sys.exit(_main(sys.argv[1:]))
