#!/usr/bin/python3
"""sae_eval_reference.py: an independent numpy reference for `saecap sae-eval`'s
reconstruction metrics (results/sae_metrics.json), written from docs/store.md,
research/sae_anchors.md and the SAELens v6 layout, not from src/.

  sae_eval_reference.py OUT_DIR MODEL_DIR SPLIT LAYER[,LAYER...] [LANG,...]

For each layer and language: every shard of OUT_DIR/activations/<lang>/layer_<L>/ in manifest
order, BF16 widened exactly; rows kept when the sample's split (samples.jsonl) is SPLIT and the
token id is not special. Special ids are decided here from MODEL_DIR: config.json's bos, pad and
eos ids, boi/eoi token indices, and the ids of <start_of_turn> / <end_of_turn> in tokenizer.json.
The SAE of OUT_DIR/saes/layer_<L> (SAELens topk or jumprelu) encodes them in float64, metrics as
sae_reference.metrics with batch 4096. Prints {"<L>": {"<lang>": {metric: value}}} as JSON.
"""
import json
import os
import sys

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import sae_reference  # noqa: E402
import st_numpy  # noqa: E402


def special_ids(model_dir):
    cfg = json.load(open(os.path.join(model_dir, "config.json")))
    text = cfg.get("text_config", {})
    ids = set()
    for key in ("bos_token_id", "pad_token_id"):
        v = text.get(key, cfg.get(key))
        if v is not None:
            ids.add(int(v))
    eos = cfg.get("eos_token_id", text.get("eos_token_id"))
    for v in (eos if isinstance(eos, list) else [eos]):
        if v is not None:
            ids.add(int(v))
    for key in ("boi_token_index", "eoi_token_index", "boi_token_id", "eoi_token_id"):
        if key in cfg:
            ids.add(int(cfg[key]))
    tok = json.load(open(os.path.join(model_dir, "tokenizer.json")))
    for t in tok.get("added_tokens", []):
        if t["content"] in ("<start_of_turn>", "<end_of_turn>"):
            ids.add(int(t["id"]))
    return ids


def rows(out, lang, layer, split, special):
    splits = {}
    for line in open(os.path.join(out, "data/processed/samples.jsonl")):
        if line.strip():
            o = json.loads(line)
            splits[o["sample_index"]] = o["split"]
    d = os.path.join(out, "activations", lang, f"layer_{layer}")
    man = json.load(open(os.path.join(d, "manifest.json")))
    xs = []
    for sh in man["shards"]:
        f = st_numpy.SafeTensorsFile(os.path.join(d, sh["file"]))
        acts = f.get("acts", widen=True).astype(np.float64)
        si, tid = f.get("sample_index"), f.get("token_id")
        keep = np.array([splits[int(s)] == split and int(t) not in special for s, t in zip(si, tid)], dtype=bool)
        xs.append(acts[keep])
    return np.concatenate(xs, axis=0)


def encode(sae_dir, x):
    cfg = json.load(open(os.path.join(sae_dir, "cfg.json")))
    w = st_numpy.SafeTensorsFile(os.path.join(sae_dir, "sae_weights.safetensors"))
    W_enc, W_dec = w.get("W_enc", widen=True).astype(np.float64), w.get("W_dec", widen=True).astype(np.float64)
    b_enc, b_dec = w.get("b_enc", widen=True).astype(np.float64), w.get("b_dec", widen=True).astype(np.float64)
    xin = x - b_dec if cfg.get("apply_b_dec_to_input", True) else x
    if cfg["architecture"] == "topk":
        f, _ = sae_reference.topk_encode(xin, W_enc, b_enc, np.zeros_like(b_dec), cfg["k"])
    else:
        thr = w.get("threshold", widen=True).astype(np.float64)
        f, _ = sae_reference.jumprelu_encode(xin, W_enc, b_enc, thr)
    return f, f @ W_dec + b_dec


def main(argv):
    out, model, split = argv[1], argv[2], argv[3]
    layers = [int(v) for v in argv[4].split(",")]
    langs = argv[5].split(",") if len(argv) > 5 else ["en", "ar"]
    special = special_ids(model)
    res = {}
    for layer in layers:
        res[str(layer)] = {}
        for lang in langs:
            x = rows(out, lang, layer, split, special)
            f, xhat = encode(os.path.join(out, "saes", f"layer_{layer}"), x)
            m = sae_reference.metrics(x, xhat, f, 4096)
            res[str(layer)][lang] = {k: float(v) for k, v in m.items()}
    print(json.dumps(res))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
