#!/usr/bin/python3
"""tiny_check.py: independent check of a Gemma-3 checkpoint folder in the
Hugging Face layout (written from research/gemma3_spec.md §1-2, numpy only).

usage: tiny_check.py MODEL_DIR

Reads config.json (transformers defaults for missing keys), parses
model.safetensors.index.json and every shard itself (8-byte little-endian
header length, JSON header, data section), and checks that the tensor set is
exactly the one spec §2 lists for that config (text decoder, SigLIP tower,
projector, no lm_head), each with its shape and dtype BF16, data ranges
contiguous inside the file, index and shards consistent, total_size right,
and every value finite. Prints "OK" and exits 0, or prints the first
problem and exits 1.
"""
import json
import os
import struct
import sys

import numpy as np

TEXT_PREFIXES = ("language_model.model.", "model.language_model.")
VISION_PREFIXES = ("vision_tower.vision_model.", "model.vision_tower.vision_model.")
PROJ_PREFIXES = ("multi_modal_projector.", "model.multi_modal_projector.")


class CheckError(Exception):
    pass


def need(cond, msg):
    if not cond:
        raise CheckError(msg)


def text_dims(cfg):
    # Gemma3TextConfig keyword defaults (spec §1.1).
    t = cfg.get("text_config") or {}
    return {
        "V": t.get("vocab_size", 262208),
        "H": t.get("hidden_size", 2304),
        "F": t.get("intermediate_size", 9216),
        "L": t.get("num_hidden_layers", 26),
        "NH": t.get("num_attention_heads", 8),
        "KV": t.get("num_key_value_heads", 4),
        "HD": t.get("head_dim", 256),
    }


def vision_dims(cfg):
    # SiglipVisionConfig keyword defaults (spec §1.2).
    v = cfg.get("vision_config") or {}
    d = {
        "H": v.get("hidden_size", 768),
        "F": v.get("intermediate_size", 3072),
        "L": v.get("num_hidden_layers", 12),
        "C": v.get("num_channels", 3),
        "S": v.get("image_size", 224),
        "P": v.get("patch_size", 16),
    }
    d["N"] = (d["S"] // d["P"]) ** 2
    return d


def expected_tensors(cfg, tp, vp, pp):
    """name -> shape, straight from the tables of spec §2."""
    t, v = text_dims(cfg), vision_dims(cfg)
    H, q, kv = t["H"], t["NH"] * t["HD"], t["KV"] * t["HD"]
    exp = {tp + "embed_tokens.weight": (t["V"], H), tp + "norm.weight": (H,)}
    for i in range(t["L"]):
        b = "%slayers.%d." % (tp, i)
        exp.update({
            b + "input_layernorm.weight": (H,),
            b + "self_attn.q_proj.weight": (q, H),
            b + "self_attn.k_proj.weight": (kv, H),
            b + "self_attn.v_proj.weight": (kv, H),
            b + "self_attn.o_proj.weight": (H, q),
            b + "self_attn.q_norm.weight": (t["HD"],),
            b + "self_attn.k_norm.weight": (t["HD"],),
            b + "post_attention_layernorm.weight": (H,),
            b + "pre_feedforward_layernorm.weight": (H,),
            b + "mlp.gate_proj.weight": (t["F"], H),
            b + "mlp.up_proj.weight": (t["F"], H),
            b + "mlp.down_proj.weight": (H, t["F"]),
            b + "post_feedforward_layernorm.weight": (H,),
        })
    VH = v["H"]
    exp[vp + "embeddings.patch_embedding.weight"] = (VH, v["C"], v["P"], v["P"])
    exp[vp + "embeddings.patch_embedding.bias"] = (VH,)
    exp[vp + "embeddings.position_embedding.weight"] = (v["N"], VH)
    for i in range(v["L"]):
        b = "%sencoder.layers.%d." % (vp, i)
        for ln in ("layer_norm1", "layer_norm2"):
            exp[b + ln + ".weight"] = (VH,)
            exp[b + ln + ".bias"] = (VH,)
        for proj in ("q_proj", "k_proj", "v_proj", "out_proj"):
            exp[b + "self_attn." + proj + ".weight"] = (VH, VH)
            exp[b + "self_attn." + proj + ".bias"] = (VH,)
        exp[b + "mlp.fc1.weight"] = (v["F"], VH)
        exp[b + "mlp.fc1.bias"] = (v["F"],)
        exp[b + "mlp.fc2.weight"] = (VH, v["F"])
        exp[b + "mlp.fc2.bias"] = (VH,)
    exp[vp + "post_layernorm.weight"] = (VH,)
    exp[vp + "post_layernorm.bias"] = (VH,)
    # [in = vision hidden, out = text hidden], used as x @ W (no transpose).
    exp[pp + "mm_input_projection_weight"] = (VH, H)
    exp[pp + "mm_soft_emb_norm.weight"] = (VH,)
    return exp


def read_shard(path):
    """header dict (without __metadata__), metadata, raw data bytes."""
    with open(path, "rb") as f:
        blob = f.read()
    need(len(blob) >= 8, "%s: shorter than 8 bytes" % path)
    (n,) = struct.unpack("<Q", blob[:8])
    need(8 + n <= len(blob), "%s: header length %d past the end" % (path, n))
    header = json.loads(blob[8:8 + n].decode("utf-8"))
    meta = header.pop("__metadata__", {})
    return header, meta, blob[8 + n:]


def check_shard(path, header, data, exp):
    ends = []
    for name, info in header.items():
        need(name in exp, "%s: unexpected tensor %s" % (path, name))
        need(info["dtype"] == "BF16", "%s: %s has dtype %s, expected BF16" % (path, name, info["dtype"]))
        shape = tuple(info["shape"])
        need(shape == exp[name], "%s: %s has shape %s, expected %s" % (path, name, shape, exp[name]))
        b, e = info["data_offsets"]
        need(e - b == 2 * int(np.prod(shape)), "%s: %s byte range does not match its shape" % (path, name))
        need(0 <= b <= e <= len(data), "%s: %s outside the data section" % (path, name))
        vals = (np.frombuffer(data[b:e], dtype="<u2").astype(np.uint32) << 16).view(np.float32)
        need(np.all(np.isfinite(vals)), "%s: %s has non-finite values" % (path, name))
        need(np.any(vals != 0), "%s: %s is all zeros" % (path, name))
        ends.append((b, e))
    ends.sort()
    pos = 0
    for b, e in ends:
        need(b == pos, "%s: data ranges are not contiguous at byte %d" % (path, b))
        pos = e
    need(pos == len(data), "%s: %d stray bytes after the last tensor" % (path, len(data) - pos))


def detect_prefixes(names):
    new = any(n.startswith("model.language_model.") for n in names)
    i = 1 if new else 0
    return TEXT_PREFIXES[i], VISION_PREFIXES[i], PROJ_PREFIXES[i]


def check(model_dir):
    with open(os.path.join(model_dir, "config.json")) as f:
        cfg = json.load(f)
    need(cfg.get("model_type") == "gemma3", "config.json: model_type is not gemma3")
    with open(os.path.join(model_dir, "model.safetensors.index.json")) as f:
        index = json.load(f)
    wmap = index["weight_map"]
    exp = expected_tensors(cfg, *detect_prefixes(wmap))
    need(set(wmap) == set(exp), "index: tensor set differs from spec §2: missing %s, extra %s"
         % (sorted(set(exp) - set(wmap))[:3], sorted(set(wmap) - set(exp))[:3]))
    shards = sorted(set(wmap.values()))
    need(len(shards) >= 2, "index: only %d shard(s)" % len(shards))
    seen, total = set(), 0
    for shard in shards:
        header, meta, data = read_shard(os.path.join(model_dir, shard))
        need(meta.get("format") == "pt", "%s: metadata format is not 'pt'" % shard)
        check_shard(shard, header, data, exp)
        for name, info in header.items():
            need(wmap[name] == shard, "%s: holds %s, which the index puts in %s" % (shard, name, wmap[name]))
            total += info["data_offsets"][1] - info["data_offsets"][0]
        seen.update(header)
    need(seen == set(exp), "shards: tensors listed in the index are missing from their shard")
    need(index["metadata"]["total_size"] == total,
         "index: total_size %s, tensors hold %d bytes" % (index["metadata"]["total_size"], total))


def main():
    if len(sys.argv) != 2:
        print(__doc__.strip().splitlines()[2])
        return 2
    try:
        check(sys.argv[1])
    except (CheckError, OSError, ValueError, KeyError) as e:
        print("FAIL: %s" % e)
        return 1
    print("OK")
    return 0


if __name__ == "__main__":
    sys.exit(main())
