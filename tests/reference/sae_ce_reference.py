#!/usr/bin/python3
"""sae_ce_reference.py: an independent numpy reference of `saecap sae-eval`'s CE loss recovered,
built on g3_reference.py (the numpy Gemma 3 written from the spec) and sae_eval_reference.py;
not derived from src/.

  sae_ce_reference.py OUT_DIR MODEL_DIR LAYER LANG SPLIT

For every line of OUT_DIR/captions/<LANG>.jsonl whose split is SPLIT: the model input is the
sample's prompt ids (read from the activation store: the rows of the sample whose segment is not
"caption", by position) followed by its caption_ids, without the last one (teacher forcing); its
image is the sample's image_path in samples.jsonl. Three forwards (float64): clean; resid_post at
LAYER replaced by the SAE's reconstruction (OUT_DIR/saes/layer_<LAYER>, encoded in float64) on
every row that is not a special token (sae_eval_reference.special_ids); those rows zeroed.
Loss = mean over all caption tokens of -log softmax(logits)[token]. Prints
{"samples", "tokens", "clean", "sae", "zero"} as JSON.
"""
import json
import os
import sys

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import g3_reference  # noqa: E402
import sae_eval_reference  # noqa: E402
import st_numpy  # noqa: E402


def prompt_ids(out, lang, layer):
    """sample_index -> prompt ids by position (non-caption rows of the store)."""
    d = os.path.join(out, "activations", lang, f"layer_{layer}")
    man = json.load(open(os.path.join(d, "manifest.json")))
    res = {}
    for sh in man["shards"]:
        f = st_numpy.SafeTensorsFile(os.path.join(d, sh["file"]))
        for s, p, t, g in zip(f.get("sample_index"), f.get("position"), f.get("token_id"), f.get("segment")):
            if int(g) != 2:
                res.setdefault(int(s), {})[int(p)] = int(t)
    return {s: [v[p] for p in range(len(v))] for s, v in res.items()}


def nll(logits, targets):
    lg = logits.astype(np.float64)
    mx = lg.max(axis=1, keepdims=True)
    lse = np.log(np.exp(lg - mx).sum(axis=1)) + mx[:, 0]
    return float(np.sum(lse - lg[np.arange(len(targets)), targets]))


def main(argv):
    out, model_dir, layer, lang, split = argv[1], argv[2], int(argv[3]), argv[4], argv[5]
    special = sae_eval_reference.special_ids(model_dir)
    sae_dir = os.path.join(out, "saes", f"layer_{layer}")
    prompts = prompt_ids(out, lang, layer)
    paths = {}
    for line in open(os.path.join(out, "data/processed/samples.jsonl")):
        if line.strip():
            o = json.loads(line)
            paths[o["sample_index"]] = o["image_path"]
    m = g3_reference.load(model_dir)
    base_layer = m.decoder_layer
    state = {"mode": "clean", "keep": None}

    def layer_hook(L, x, mask, cos, sin, trace=None):
        h = base_layer(L, x, mask, cos, sin, trace)
        if L != layer or state["mode"] == "clean":
            return h
        h = h.copy()
        rows = state["splice"]
        if state["mode"] == "zero":
            h[rows] = 0.0
        else:
            _, rec = sae_eval_reference.encode(sae_dir, h[rows].astype(np.float64))
            h[rows] = rec.astype(h.dtype)
        return h

    m.decoder_layer = layer_hook
    tot = {"clean": 0.0, "sae": 0.0, "zero": 0.0}
    tokens = samples = 0
    for line in open(os.path.join(out, "captions", f"{lang}.jsonl")):
        if not line.strip():
            continue
        c = json.loads(line)
        if split != "all" and c["split"] != split or not c["caption_ids"]:
            continue
        p, cap = prompts[c["sample_index"]], c["caption_ids"]
        ids = p + cap[:-1]
        state["splice"] = np.array([i for i, t in enumerate(ids) if t not in special], dtype=np.int64)
        img = g3_reference.load_image_rgb(paths[c["sample_index"]])
        for mode in ("clean", "sae", "zero"):
            state["mode"] = mode
            res = g3_reference.forward(m, ids, [img])
            tot[mode] += nll(res["logits"][len(p) - 1:], np.array(cap))
        tokens += len(cap)
        samples += 1
    print(json.dumps({"samples": samples, "tokens": tokens, **{k: v / tokens for k, v in tot.items()}}))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
