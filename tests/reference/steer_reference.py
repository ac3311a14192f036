#!/usr/bin/python3
"""steer_reference.py: an independent numpy reference for saecap's steering (issue 9).

Written from research/sae_anchors.md §3 and the issue text, never from src/:

  error-preserving edit   x' = x + decode(f') - decode(f)   with f = the SAE's dense activation
                          vector of x (ReLU / JumpReLU / TopK), f'_i = f_i outside S and
                          0 (ablate), A*f_i (scale), V (clamp) inside S; b_dec cancels.
                          Ablating every latent leaves x - x_hat + b_dec (the error term).
  additive                x' = x + C * sum_{i in S} W_dec[i]
  several layers          the hook runs after each decoder layer in order, on that layer's
                          output, which already carries the earlier layers' edits.

The model forward is g3_reference.Gemma3Reference.text_forward with its decoder_layer wrapped
(float64 arithmetic).

CLI:
  steer_reference.py make-sae OUT --d D --n N --layer L --arch relu|topk|jumprelu [--k K] [--seed S]
      a random SAELens v6 SAE (cfg.json, sae_weights.safetensors, sparsity.safetensors)
  steer_reference.py plant MODEL_DIR SAE_OUT --token ID --layer L [--n N] [--seed S]
      edits a tiny checkpoint in place so that SAE feature 0 (direction u) controls token ID:
      every embedding row gets +A*u (a uniform logit shift, so the head alone changes nothing),
      row ID gets +C*u more, the final norm weight is zeroed (y = x / rms(x)); writes an SAE at
      layer L whose latent 0 reads and writes u and whose latents 1..N-1 are random directions
      orthogonal to u (ReLU, b_enc = b_dec = 0; every log10 density -1)
  steer_reference.py check-dump --model DIR --dump F --ids "..." --edits JSON [--rtol R]
      recomputes the caption prompt's forward with the edits (image rows from the dump's
      image_embeds) and compares resid_post.* and logits with the dump; exit 1 on mismatch.
      JSON: [{"sae": DIR, "features": [..] | "all", "mode": "ablate|scale|clamp|add", "value": v}]
  steer_reference.py check-tf --model DIR --dump F --ids "..." --base-ids "..." --edits JSON --kl X --dll Y
      the steer stage's cost measures of one caption: mean over t of KL(P_steered || P_base) and
      sum_t log P_steered(b_t) - log P_base(b_t) along the baseline caption b (teacher forcing,
      softmax over ids below the image token id); exit 1 when saecap's X, Y differ
  steer_reference.py metrics OUT.json [--seed S]
      fixed chrF cases (sacrebleu CHRF defaults, written here from the chrF definition) and
      random logits with KL(P||Q) and log-softmax values
"""
import argparse
import json
import os
import sys
from collections import Counter

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import st_numpy  # noqa: E402


# ---------------------------------------------------------------------------------------------
# SAEs
# ---------------------------------------------------------------------------------------------

def save_sae(out, W_enc_dn, W_dec, b_enc, b_dec, arch, layer, k=None, threshold=None, logd=None):
    """SAELens v6 layout: W_enc [d_in, d_sae]."""
    os.makedirs(out, exist_ok=True)
    t = {"W_enc": W_enc_dn.astype(np.float32), "W_dec": W_dec.astype(np.float32),
         "b_enc": b_enc.astype(np.float32), "b_dec": b_dec.astype(np.float32)}
    if arch == "jumprelu":
        t["threshold"] = threshold.astype(np.float32)
    st_numpy.save_file(t, os.path.join(out, "sae_weights.safetensors"))
    n = W_dec.shape[0]
    if logd is None:
        logd = np.full(n, -1.0)
    st_numpy.save_file({"sparsity": np.asarray(logd, np.float32)}, os.path.join(out, "sparsity.safetensors"))
    cfg = {"d_in": int(W_dec.shape[1]), "d_sae": int(n), "dtype": "float32", "device": "cpu",
           "apply_b_dec_to_input": arch == "topk", "normalize_activations": "none",
           "reshape_activations": "none", "architecture": {"relu": "standard"}.get(arch, arch),
           "metadata": {"sae_lens_version": "6.0.0", "model_name": "tiny",
                        "hook_name": f"blocks.{layer}.hook_resid_post"}}
    if arch == "topk":
        cfg["k"] = int(k)
        cfg["rescale_acts_by_decoder_norm"] = False
    with open(os.path.join(out, "cfg.json"), "w") as f:
        json.dump(cfg, f)


def load_sae(d):
    cfg = json.load(open(os.path.join(d, "cfg.json")))
    f = st_numpy.SafeTensorsFile(os.path.join(d, "sae_weights.safetensors"))
    w = {k: f.get(k, widen=True).astype(np.float64) for k in f.keys()}
    layer = int(cfg["metadata"]["hook_name"].split(".")[1])
    return cfg, w, layer


def encode(cfg, w, x):
    """Dense activations [T, n] of rows x [T, d] (float64)."""
    xin = x - w["b_dec"] if cfg.get("apply_b_dec_to_input") else x
    h = xin @ w["W_enc"] + w["b_enc"]
    arch = cfg["architecture"]
    if arch == "standard":
        return np.maximum(h, 0.0)
    if arch == "jumprelu":
        return np.where((h > w["threshold"]) & (h > 0), h, 0.0)
    if arch == "topk":
        f = np.zeros_like(h)
        k = cfg["k"]
        for r in range(h.shape[0]):
            top = np.argsort(-h[r], kind="stable")[:k]
            f[r, top] = np.maximum(h[r, top], 0.0)
        return f
    raise ValueError(arch)


def decode(w, f):
    return f @ w["W_dec"] + w["b_dec"]


def edit_rows(e, x):
    cfg, w = e["cfg"], e["w"]
    n = w["W_dec"].shape[0]
    S = np.arange(n) if e["features"] == "all" else np.asarray(e["features"], dtype=np.int64)
    mode, v = e["mode"], float(e.get("value", 0.0))
    if mode == "add":
        return x + v * w["W_dec"][S].sum(axis=0)
    f = encode(cfg, w, x)
    f2 = f.copy()
    f2[:, S] = {"ablate": 0.0 * f[:, S], "scale": v * f[:, S], "clamp": np.full_like(f[:, S], v)}[mode]
    return x + decode(w, f2) - decode(w, f)


def cmd_make_sae(a):
    rng = np.random.default_rng(a.seed)
    d, n = a.d, a.n
    W_dec = rng.standard_normal((n, d))
    W_dec /= np.linalg.norm(W_dec, axis=1, keepdims=True)
    W_enc = W_dec.T * 0.5 + rng.standard_normal((d, n)) * 0.05
    b_enc = rng.standard_normal(n) * 0.05
    b_dec = rng.standard_normal(d) * 0.05
    thr = rng.uniform(0.0, 0.3, n)
    logd = rng.uniform(-4, -0.5, n)
    save_sae(a.out, W_enc, W_dec, b_enc, b_dec, a.arch, a.layer, k=a.k, threshold=thr, logd=logd)


# ---------------------------------------------------------------------------------------------
# Planted model
# ---------------------------------------------------------------------------------------------

def rewrite_tensor(model_dir, name_suffix, fn):
    ip = os.path.join(model_dir, "model.safetensors.index.json")
    idx = json.load(open(ip))
    name = [k for k in idx["weight_map"] if k.endswith(name_suffix)]
    name = min(name, key=len)
    p = os.path.join(model_dir, idx["weight_map"][name])
    f = st_numpy.SafeTensorsFile(p)
    t = {k: f.get(k, widen=True) for k in f.keys()}
    dt = {k: f.dtype(k) for k in f.keys()}
    t[name] = fn(t[name].astype(np.float64)).astype(np.float32)
    del f
    st_numpy.save_file(t, p + ".new", dtypes=dt, metadata={"format": "pt"})
    os.replace(p + ".new", p)


def cmd_plant(a):
    rng = np.random.default_rng(a.seed)
    cfg = json.load(open(os.path.join(a.model, "config.json")))
    d = cfg["text_config"]["hidden_size"]
    u = rng.standard_normal(d)
    u /= np.linalg.norm(u)
    # bf16 storage: keep u exactly representable so the planted direction stays clean
    u = st_numpy.round_to_bf16(u.astype(np.float32)).astype(np.float64)
    u /= np.linalg.norm(u)
    A, C = 4.0, 2.0

    def emb(E):
        E = E + A * u[None, :]
        E[a.token] += C * u
        return E
    rewrite_tensor(a.model, "embed_tokens.weight", emb)
    rewrite_tensor(a.model, ".norm.weight", lambda w: w * 0.0)
    n = a.n
    R = rng.standard_normal((n, d))
    R -= np.outer(R @ u, u)
    R /= np.linalg.norm(R, axis=1, keepdims=True)
    R[0] = u
    save_sae(a.sae_out, R.T.copy(), R, np.zeros(n), np.zeros(d), "relu", a.layer)


# ---------------------------------------------------------------------------------------------
# Forward with edits, compared with a saecap --dump
# ---------------------------------------------------------------------------------------------

def cmd_check_dump(a):
    import g3_reference as g3
    m = g3.Gemma3Reference(a.model)
    dump = st_numpy.SafeTensorsFile(a.dump)
    ids = [int(x) for x in a.ids.split()]
    ie = dump.get("image_embeds", widen=True).astype(np.float64)
    edits = json.load(open(a.edits))
    for e in edits:
        e["cfg"], e["w"], e["layer"] = load_sae(e["sae"])
    orig = m.decoder_layer

    def layer(L, x, *args, **kw):
        y = orig(L, x, *args, **kw)
        for e in edits:
            if e["layer"] == L:
                y = edit_rows(e, y)
        return y
    m.decoder_layer = layer
    out = m.text_forward(ids, image_embeds=ie)
    worst = 0.0
    names = [k for k in dump.keys() if k.startswith("resid_post.")] + ["logits"]
    for k in names:
        got = dump.get(k, widen=True).astype(np.float64)
        ref = out[k]
        err = np.max(np.abs(got - ref)) / max(1e-6, np.max(np.abs(ref)))
        worst = max(worst, err)
        print(f"{k}: max |diff| / max |ref| = {err:.3g}")
    # the error-term property, independently of the edit code above
    for e in edits:
        if e["features"] == "all" and e["mode"] == "ablate" and len(edits) == 1:
            L = e["layer"]
            x = out[f"resid_post.{L - 1}"] if L > 0 else None
            if x is not None:
                m.decoder_layer = orig
                clean = m.text_forward(ids, image_embeds=ie)[f"resid_post.{L}"]
                f = encode(e["cfg"], e["w"], clean)
                err_term = clean - decode(e["w"], f) + e["w"]["b_dec"]
                got = dump.get(f"resid_post.{L}", widen=True).astype(np.float64)
                rel = np.max(np.abs(got - err_term)) / max(1e-6, np.max(np.abs(err_term)))
                print(f"resid_post.{L} vs error term + b_dec: {rel:.3g}")
                worst = max(worst, rel)
    print(f"worst {worst:.3g} (rtol {a.rtol})")
    return 0 if worst <= a.rtol else 1


def cmd_check_tf(a):
    """KL and log-likelihood change along a baseline caption (teacher forcing), as the steer
    stage defines them: row t of the forward over prompt + b[:-1] predicts b[t]."""
    import g3_reference as g3
    m = g3.Gemma3Reference(a.model)
    ie = st_numpy.SafeTensorsFile(a.dump).get("image_embeds", widen=True).astype(np.float64)
    prompt = [int(x) for x in a.ids.split()]
    b = [int(x) for x in a.base_ids.split()]
    edits = json.load(open(a.edits))
    for e in edits:
        e["cfg"], e["w"], e["layer"] = load_sae(e["sae"])
    itok = m.cfg["top"]["image_token_index"]
    V = m.cfg["text"]["vocab_size"]
    lim = itok if 0 < itok < V else V
    ids = prompt + b[:-1]
    rows = slice(len(prompt) - 1, len(prompt) - 1 + len(b))
    base = m.text_forward(ids, image_embeds=ie)["logits"][rows, :lim]
    orig = m.decoder_layer

    def layer(L, x, *args, **kw):
        y = orig(L, x, *args, **kw)
        for e in edits:
            if e["layer"] == L:
                y = edit_rows(e, y)
        return y
    m.decoder_layer = layer
    steer = m.text_forward(ids, image_embeds=ie)["logits"][rows, :lim]
    kl, dll = 0.0, 0.0
    for t in range(len(b)):
        ls, lb = log_softmax(steer[t]), log_softmax(base[t])
        kl += float(np.sum(np.exp(ls) * (ls - lb))) / len(b)
        dll += float(ls[b[t]] - lb[b[t]])
    ok = abs(kl - a.kl) <= 1e-3 * (1 + abs(kl)) and abs(dll - a.dll) <= 1e-3 * (1 + abs(dll))
    print(f"kl reference {kl:.9g} saecap {a.kl:.9g}; delta_loglik reference {dll:.9g} saecap {a.dll:.9g}")
    return 0 if ok else 1


# ---------------------------------------------------------------------------------------------
# Metrics
# ---------------------------------------------------------------------------------------------

def char_ngrams(s, n):
    s = "".join(s.split())  # whitespace removed, as sacrebleu CHRF(whitespace=False)
    return Counter(s[i:i + n] for i in range(len(s) - n + 1))


def chrf(hyp, ref, order=6, beta=2.0):
    """Sentence chrF: per order precision/recall from clipped char n-gram matches, averaged
    over the orders where both sides have n-grams, then F_beta, x100."""
    ps, rs = [], []
    for n in range(1, order + 1):
        h, r = char_ngrams(hyp, n), char_ngrams(ref, n)
        nh, nr = sum(h.values()), sum(r.values())
        if nh == 0 or nr == 0:
            continue
        match = sum(min(c, r[g]) for g, c in h.items())
        ps.append(match / nh)
        rs.append(match / nr)
    if not ps:
        return 0.0
    P, R = sum(ps) / len(ps), sum(rs) / len(rs)
    if P + R == 0:
        return 0.0
    b2 = beta * beta
    return 100.0 * (1 + b2) * P * R / (b2 * P + R)


def log_softmax(x):
    x = np.asarray(x, np.float64)
    m = x.max()
    return x - (m + np.log(np.exp(x - m).sum()))


def cmd_metrics(a):
    rng = np.random.default_rng(a.seed)
    pairs = [
        ("a man is riding a horse", "a man is riding a horse"),
        ("a woman is riding a horse", "a man is riding a horse"),
        ("A person rides a horse on the beach.", "a man is riding a horse"),
        ("", "a man is riding a horse"),
        ("", ""),
        ("abc", ""),
        ("the the the the", "the cat"),
        ("x", "x"),
        ("  spaced\tout \n text ", "spacedouttext"),
        ("رجل يركب حصانا على الشاطئ", "امرأة تركب حصانا على الشاطئ"),
        ("صورة لرجل", "صورة لامرأة في الحديقة"),
        ("aaaaaaa", "aaa"),
        ("Ünïcödé café", "unicode cafe"),
    ]
    out = {"chrf": [{"hyp": h, "ref": r, "score": chrf(h, r)} for h, r in pairs], "logits": []}
    for V, scale in ((7, 1.0), (50, 3.0), (300, 10.0), (5, 0.0)):
        p = rng.standard_normal(V) * scale
        q = p + rng.standard_normal(V) * 0.7 if scale else p.copy()
        p32, q32 = p.astype(np.float32), q.astype(np.float32)
        lp, lq = log_softmax(p32), log_softmax(q32)
        kl = float(np.sum(np.exp(lp) * (lp - lq)))
        tok = int(rng.integers(0, V))
        out["logits"].append({"p": p32.tolist(), "q": q32.tolist(), "kl": kl, "id": tok,
                              "logprob_p": float(lp[tok])})
    with open(a.out, "w", encoding="utf-8") as f:
        json.dump(out, f, ensure_ascii=False)


def main(argv):
    ap = argparse.ArgumentParser()
    sub = ap.add_subparsers(dest="cmd", required=True)
    s = sub.add_parser("make-sae")
    s.add_argument("out")
    s.add_argument("--d", type=int, required=True)
    s.add_argument("--n", type=int, required=True)
    s.add_argument("--layer", type=int, required=True)
    s.add_argument("--arch", choices=["relu", "topk", "jumprelu"], required=True)
    s.add_argument("--k", type=int, default=4)
    s.add_argument("--seed", type=int, default=0)
    s = sub.add_parser("plant")
    s.add_argument("model")
    s.add_argument("sae_out")
    s.add_argument("--token", type=int, required=True)
    s.add_argument("--layer", type=int, required=True)
    s.add_argument("--n", type=int, default=16)
    s.add_argument("--seed", type=int, default=0)
    s = sub.add_parser("check-dump")
    s.add_argument("--model", required=True)
    s.add_argument("--dump", required=True)
    s.add_argument("--ids", required=True)
    s.add_argument("--edits", required=True)
    s.add_argument("--rtol", type=float, default=2e-4)
    s = sub.add_parser("check-tf")
    s.add_argument("--model", required=True)
    s.add_argument("--dump", required=True)
    s.add_argument("--ids", required=True)
    s.add_argument("--base-ids", required=True)
    s.add_argument("--edits", required=True)
    s.add_argument("--kl", type=float, required=True)
    s.add_argument("--dll", type=float, required=True)
    s = sub.add_parser("metrics")
    s.add_argument("out")
    s.add_argument("--seed", type=int, default=0)
    a = ap.parse_args(argv)
    return {"make-sae": cmd_make_sae, "plant": cmd_plant, "check-dump": cmd_check_dump,
            "check-tf": cmd_check_tf, "metrics": cmd_metrics}[a.cmd](a) or 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
