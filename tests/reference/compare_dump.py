#!/usr/bin/python3
"""compare_dump.py: compare a `saecap forward --dump` file with a g3_reference.py .npz.

usage: compare_dump.py DUMP.safetensors REF.npz --tol 1e-4 [--keys k1,k2,...] [--nmse]

For every tensor of the dump that the reference also has (or only --keys), prints one line
    <name> shape max|a-b|=... max|ref|=... rel=... [first bad index]
with rel = max|a-b| / max|ref| (or, with --nmse, mean((a-b)^2) / var(ref)), and exits 1 when any
rel exceeds --tol, when shapes differ, or when a dump tensor named in --keys is missing; 0
otherwise. Also checks that every dump tensor has dtype F32. Needs only numpy.
"""
import argparse
import os
import sys

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from st_numpy import SafeTensorsFile  # noqa: E402


def measure(a, r, nmse):
    d = np.abs(a.astype(np.float64) - r.astype(np.float64))
    if nmse:
        v = float(np.var(r.astype(np.float64)))
        return float(np.mean(d * d)) / (v if v > 0 else 1.0), d
    m = float(np.max(np.abs(r))) if r.size else 0.0
    return (float(np.max(d)) if d.size else 0.0) / (m if m > 0 else 1.0), d


def compare(dump, ref, keys, tol, nmse):
    bad = 0
    for k in keys:
        if k not in dump.keys():
            print(f"{k}: missing from the dump")
            bad += 1
            continue
        if k not in ref:
            print(f"{k}: missing from the reference")
            bad += 1
            continue
        if dump.dtype(k) != "F32":
            print(f"{k}: dtype {dump.dtype(k)}, expected F32")
            bad += 1
            continue
        a, r = dump.get(k), ref[k]
        if tuple(a.shape) != tuple(r.shape):
            print(f"{k}: shape {tuple(a.shape)} != reference {tuple(r.shape)}")
            bad += 1
            continue
        rel, d = measure(a, r, nmse)
        line = (f"{k} {tuple(a.shape)} max|a-b|={float(np.max(d)) if d.size else 0.0:.3e} "
                f"max|ref|={float(np.max(np.abs(r))) if r.size else 0.0:.3e} "
                f"{'nmse' if nmse else 'rel'}={rel:.3e}")
        if not np.isfinite(a).all():
            line += " NON-FINITE"
            bad += 1
        elif rel > tol:
            idx = np.unravel_index(int(np.argmax(d)), d.shape)
            line += f" OVER {tol:g} at {tuple(int(i) for i in idx)}"
            bad += 1
        print(line)
    return bad


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("dump")
    ap.add_argument("ref")
    ap.add_argument("--tol", type=float, required=True)
    ap.add_argument("--keys", help="comma-separated tensor names (default: all in both files)")
    ap.add_argument("--nmse", action="store_true", help="mean((a-b)^2)/var(ref) instead of max ratio")
    a = ap.parse_args(argv)
    dump = SafeTensorsFile(a.dump)
    ref = dict(np.load(a.ref))
    keys = a.keys.split(",") if a.keys else [k for k in dump.keys() if k in ref]
    if not keys:
        print("no tensors in common")
        return 1
    bad = compare(dump, ref, keys, a.tol, a.nmse)
    print(f"{len(keys)} tensors, {bad} failing (tol {a.tol:g})")
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
