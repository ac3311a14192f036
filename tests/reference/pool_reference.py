#!/usr/bin/python3
"""pool_reference.py: independent numpy reference for src/analysis/pool.c.

usage: pool_reference.py LAYER_DIR SAMPLES_JSONL SAE_DIR OUT.safetensors MEAN_SEGS SAE_SEGS
  MEAN_SEGS / SAE_SEGS: comma-separated segment numbers (0 image, 1 prompt, 2 caption).

Reads the activation store folder (manifest.json + shards, docs/store.md) with st_numpy.py, and
the SAELens SAE folder (cfg.json + sae_weights.safetensors; 'standard' = ReLU only), and writes,
per sample of samples.jsonl in file order (N samples):
  mean_<s>   F64 [N, d]  mean of the sample's rows of segment s (zeros when none)
  count_<s>  I64 [N]     rows of segment s
  f_mean     F64 [N, F]  mean over the sample's SAE_SEGS rows of ReLU((x - b_dec) W_enc + b_enc)
  f_max      F64 [N, F]  largest value over those rows (0 when it never fired)
  f_pos      I64 [N, F]  position of the first row reaching it (-1 when it never fired)
  f_tok      I64 [N, F]  that row's token id (-1 likewise)
  f_count    I64 [N]     SAE rows of the sample
  first_pos  I64 [N]     smallest position among them (-1 when none)
Integers are I64 and floats F64, so every tensor stays 8-byte aligned in the file.
Everything is computed in float64 from the stored values (bf16 widened exactly).
"""
import json
import os
import sys

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import st_numpy  # noqa: E402


def read_store(layer_dir):
    with open(os.path.join(layer_dir, "manifest.json")) as f:
        man = json.load(f)
    parts = {k: [] for k in ("acts", "sample_index", "position", "token_id", "segment")}
    for sh in man["shards"]:
        st = st_numpy.SafeTensorsFile(os.path.join(layer_dir, sh["file"]))
        for k in parts:
            parts[k].append(st.get(k, widen=(k == "acts")))
    return {k: np.concatenate(v) if v else np.zeros(0) for k, v in parts.items()}


def read_sae(sae_dir):
    with open(os.path.join(sae_dir, "cfg.json")) as f:
        cfg = json.load(f)
    assert cfg["architecture"] == "standard", "the reference knows ReLU SAEs only"
    st = st_numpy.SafeTensorsFile(os.path.join(sae_dir, "sae_weights.safetensors"))
    w = {k: st.get(k, widen=True).astype(np.float64) for k in ("W_enc", "b_enc", "b_dec")}
    w["apply_b_dec"] = bool(cfg.get("apply_b_dec_to_input", True))
    return w


def main(argv):
    layer_dir, samples_path, sae_dir, out = argv[1:5]
    mean_segs = [int(s) for s in argv[5].split(",") if s]
    sae_segs = [int(s) for s in argv[6].split(",") if s]
    with open(samples_path) as f:
        order = [json.loads(l)["sample_index"] for l in f if l.strip()]
    row_of = {s: i for i, s in enumerate(order)}
    st = read_store(layer_dir)
    sae = read_sae(sae_dir)
    N, d = len(order), st["acts"].shape[1]
    F = sae["W_enc"].shape[1]
    x = st["acts"].astype(np.float64)
    sample_rows = np.array([row_of[int(s)] for s in st["sample_index"]], dtype=np.int64)
    res = {}
    for s in mean_segs:
        m = np.zeros((N, d))
        c = np.zeros(N, dtype=np.int64)
        for i in range(N):
            sel = (sample_rows == i) & (st["segment"] == s)
            c[i] = sel.sum()
            if c[i]:
                m[i] = x[sel].mean(axis=0)
        res[f"mean_{s}"] = m
        res[f"count_{s}"] = c
    xin = x - sae["b_dec"] if sae["apply_b_dec"] else x
    f_all = np.maximum(xin @ sae["W_enc"] + sae["b_enc"], 0.0)
    fm = np.zeros((N, F))
    fx = np.zeros((N, F))
    fp = -np.ones((N, F), dtype=np.int64)
    ft = -np.ones((N, F), dtype=np.int64)
    fc = np.zeros(N, dtype=np.int64)
    fpos = -np.ones(N, dtype=np.int64)
    in_sae = np.isin(st["segment"], sae_segs)
    for i in range(N):
        idx = np.nonzero((sample_rows == i) & in_sae)[0]
        fc[i] = len(idx)
        if not len(idx):
            continue
        fpos[i] = st["position"][idx].min()
        f = f_all[idx]
        fm[i] = f.mean(axis=0)
        fx[i] = f.max(axis=0)
        arg = f.argmax(axis=0)  # first row reaching the max
        fired = fx[i] > 0
        fp[i, fired] = st["position"][idx][arg][fired]
        ft[i, fired] = st["token_id"][idx][arg][fired]
    res.update(f_mean=fm, f_max=fx, f_pos=fp, f_tok=ft, f_count=fc, first_pos=fpos)
    st_numpy.save_file(res, out)


if __name__ == "__main__":
    main(sys.argv)
