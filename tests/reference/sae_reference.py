#!/usr/bin/python3
"""sae_reference.py: an independent numpy reference for saecap's SAE module.

Written from research/sae_anchors.md (formulas, file layouts), never from src/sae/:

  JumpReLU (Gemma Scope 2)   h = x @ w_enc + b_enc;  f = relu(h) * (h > threshold)
                             x_hat = f @ w_dec + b_dec   (b_dec not subtracted from x)
  TopK (SAELens "topk")      h = (x - b_dec) @ W_enc + b_enc (apply_b_dec_to_input true);
                             f = relu of the k largest h per row, 0 elsewhere
  metrics                    mse = sum ||x - x_hat||^2 / N; fvu about the mean of all N tokens;
                             legacy EV = mean over tokens of 1 - r^2 / ||x - mean_batch||^2;
                             L0, dead (never fired), dense (> 10% of tokens), cosine, l2 ratio

Everything is computed in float64 from the float32 (or bf16) values stored in the files.

CLI:
  sae_reference.py fixtures OUT_DIR [--seed N]
      OUT_DIR/gs2/{config.json, params.safetensors}          Gemma Scope 2 layout, JumpReLU
      OUT_DIR/topk/{cfg.json, sae_weights.safetensors}        SAELens v6 layout, TopK
      OUT_DIR/acts.safetensors        acts [N, d] F32
      OUT_DIR/acts_bf16.safetensors   acts [N, d] BF16 (same values rounded)
      OUT_DIR/expected.safetensors    per SAE s in {gs2, topk} and input a in {f32, bf16}:
                                      s.a.f [N, n], s.a.recon [N, d],
                                      s.a.top_indices [N, K] I32, s.a.top_values [N, K]
                                      (K = TOP_K; rows with fewer active latents are padded
                                      with index -1 and value 0)
  sae_reference.py metrics OUT_DIR [--seed N]
      OUT_DIR/metrics_case.safetensors  x [N, d], xhat [N, d], f [N, n]
      OUT_DIR/metrics_expected.json     {"batch": B, "dense_threshold": 0.1, "mse": ..., ...}
  sae_reference.py selftest
"""
import json
import os
import sys

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import st_numpy  # noqa: E402

TOP_K = 8
N_ROWS, D, N_LAT, K_TOPK = 48, 32, 96, 6
MARGIN = 1e-3  # keep every pre-activation this far from a decision boundary


def jumprelu_encode(x, w_enc, b_enc, threshold):
    h = x.astype(np.float64) @ w_enc.astype(np.float64) + b_enc
    return np.where((h > threshold) & (h > 0), h, 0.0), h


def topk_encode(x, W_enc, b_enc, b_dec, k):
    h = (x.astype(np.float64) - b_dec) @ W_enc.astype(np.float64) + b_enc
    f = np.zeros_like(h)
    order = np.argsort(-h, axis=1, kind="stable")[:, :k]
    for r in range(h.shape[0]):
        for i in order[r]:
            f[r, i] = max(h[r, i], 0.0)
    return f, h


def decode(f, w_dec, b_dec):
    return f @ w_dec.astype(np.float64) + b_dec


def top_of(f, K):
    """K largest activations per row, descending (ties: lower index), -1/0 padding."""
    n_rows = f.shape[0]
    idx = np.full((n_rows, K), -1, dtype=np.int32)
    val = np.zeros((n_rows, K), dtype=np.float32)
    for r in range(n_rows):
        act = [(-f[r, i], i) for i in np.nonzero(f[r] > 0)[0]]
        act.sort()
        for j, (v, i) in enumerate(act[:K]):
            idx[r, j], val[r, j] = i, -v
    return idx, val


def near_boundary_topk(h, k):
    s = -np.sort(-h, axis=1)
    return np.any(np.abs(s[:, k - 1] - s[:, k]) < MARGIN) or np.any(np.abs(s[:, :k + 1]) < MARGIN)


def make_gs2(rng, x):
    w_enc = (rng.standard_normal((D, N_LAT)) * 0.3).astype(np.float32)
    w_dec = (rng.standard_normal((N_LAT, D)) * 0.3).astype(np.float32)
    b_enc = (rng.standard_normal(N_LAT) * 0.1).astype(np.float32)
    b_dec = (rng.standard_normal(D) * 0.1).astype(np.float32)
    thr = rng.uniform(0.5, 1.5, N_LAT).astype(np.float32)
    for xv in (x, st_numpy.round_to_bf16(x)):
        h = xv.astype(np.float64) @ w_enc.astype(np.float64) + b_enc
        for i in range(N_LAT):  # move thresholds off the values actually seen
            while np.any(np.abs(h[:, i] - thr[i]) < MARGIN):
                thr[i] = np.float32(thr[i] + 3 * MARGIN)
    return dict(w_enc=w_enc, w_dec=w_dec, b_enc=b_enc, b_dec=b_dec, threshold=thr)


def make_topk(rng):
    W_dec = rng.standard_normal((N_LAT, D))
    W_dec = (W_dec / np.linalg.norm(W_dec, axis=1, keepdims=True)).astype(np.float32)
    W_enc = (W_dec.T * 0.8 + rng.standard_normal((D, N_LAT)) * 0.05).astype(np.float32)
    b_enc = (rng.standard_normal(N_LAT) * 0.05).astype(np.float32)
    b_dec = (rng.standard_normal(D) * 0.1).astype(np.float32)
    return dict(W_enc=W_enc, W_dec=W_dec, b_enc=b_enc, b_dec=b_dec)


def make_acts(rng, topk):
    """Rows resampled until no TopK decision is within MARGIN (for f32 and bf16 inputs)."""
    x = np.zeros((N_ROWS, D), dtype=np.float32)
    for r in range(N_ROWS):
        while True:
            row = (rng.standard_normal((1, D)) * 1.5).astype(np.float32)
            ok = True
            for xv in (row, st_numpy.round_to_bf16(row)):
                _, h = topk_encode(xv, topk["W_enc"], topk["b_enc"], topk["b_dec"], K_TOPK)
                ok &= not near_boundary_topk(h, K_TOPK)
            if ok:
                x[r] = row[0]
                break
    return x


def write_fixtures(out, seed):
    rng = np.random.default_rng(seed)
    topk = make_topk(rng)
    x = make_acts(rng, topk)
    gs2 = make_gs2(rng, x)
    os.makedirs(os.path.join(out, "gs2"), exist_ok=True)
    os.makedirs(os.path.join(out, "topk"), exist_ok=True)
    st_numpy.save_file(gs2, os.path.join(out, "gs2", "params.safetensors"))
    gs2_cfg = {"architecture": "jump_relu", "type": "sae", "width": N_LAT, "l0": 20,
               "hf_hook_point_in": "model.layers.17.output", "model_name": "google/gemma-3-4b-it",
               "affine_connection": False}
    with open(os.path.join(out, "gs2", "config.json"), "w") as f:
        json.dump(gs2_cfg, f)
    st_numpy.save_file(topk, os.path.join(out, "topk", "sae_weights.safetensors"))
    topk_cfg = {"d_in": D, "d_sae": N_LAT, "dtype": "float32", "device": "cpu",
                "apply_b_dec_to_input": True, "normalize_activations": "none",
                "reshape_activations": "none", "architecture": "topk", "k": K_TOPK,
                "rescale_acts_by_decoder_norm": False,
                "metadata": {"sae_lens_version": "6.18.0", "hook_name": "blocks.3.hook_resid_post"}}
    with open(os.path.join(out, "topk", "cfg.json"), "w") as f:
        json.dump(topk_cfg, f)
    st_numpy.save_file({"acts": x}, os.path.join(out, "acts.safetensors"))
    st_numpy.save_file({"acts": x}, os.path.join(out, "acts_bf16.safetensors"), dtypes={"acts": "BF16"})
    expected = {}
    for a, xv in (("f32", x), ("bf16", st_numpy.round_to_bf16(x))):
        f, _ = jumprelu_encode(xv, gs2["w_enc"], gs2["b_enc"], gs2["threshold"])
        add_expected(expected, "gs2." + a, f, decode(f, gs2["w_dec"], gs2["b_dec"]))
        f, _ = topk_encode(xv, topk["W_enc"], topk["b_enc"], topk["b_dec"], K_TOPK)
        add_expected(expected, "topk." + a, f, decode(f, topk["W_dec"], topk["b_dec"]))
    st_numpy.save_file(expected, os.path.join(out, "expected.safetensors"))


def add_expected(d, prefix, f, recon):
    idx, val = top_of(f, TOP_K)
    d[prefix + ".f"] = f.astype(np.float32)
    d[prefix + ".recon"] = recon.astype(np.float32)
    d[prefix + ".top_indices"] = idx
    d[prefix + ".top_values"] = val


def metrics(x, xhat, f, batch, dense_threshold=0.1):
    x, xhat = x.astype(np.float64), xhat.astype(np.float64)
    n_tok = x.shape[0]
    sse = np.sum((x - xhat) ** 2)
    total = np.sum((x - x.mean(axis=0)) ** 2)
    legacy = []
    for b0 in range(0, n_tok, batch):
        xb, yb = x[b0:b0 + batch], xhat[b0:b0 + batch]
        tt = np.sum((xb - xb.mean(axis=0)) ** 2, axis=1)
        ee = np.sum((xb - yb) ** 2, axis=1)
        legacy.extend(list(1 - ee[tt > 0] / tt[tt > 0]))
    nx, ny = np.linalg.norm(x, axis=1), np.linalg.norm(xhat, axis=1)
    ok = (nx > 0) & (ny > 0)
    cos = np.sum(x * xhat, axis=1)[ok] / (nx[ok] * ny[ok])
    fired = np.sum(f > 0, axis=0)
    return {"batch": batch, "dense_threshold": dense_threshold, "tokens": n_tok,
            "mse": sse / n_tok, "fvu": sse / total, "explained_variance": 1 - sse / total,
            "explained_variance_legacy": float(np.mean(legacy)),
            "l0": float(np.sum(f > 0) / n_tok), "dead_fraction": float(np.mean(fired == 0)),
            "dense_fraction": float(np.mean(fired / n_tok > dense_threshold)),
            "cosine": float(np.mean(cos)), "l2_ratio": float(np.mean(ny[nx > 0] / nx[nx > 0]))}


def write_metrics(out, seed):
    rng = np.random.default_rng(seed)
    n_tok, d, n, batch = 50, 12, 40, 16
    x = (rng.standard_normal((n_tok, d)) * 2 + 3).astype(np.float32)
    xhat = (x + rng.standard_normal((n_tok, d)) * 0.7).astype(np.float32)
    f = np.where(rng.random((n_tok, n)) < 0.08, rng.uniform(0.1, 2.0, (n_tok, n)), 0.0)
    f[:, :3] = 0.0  # three dead latents
    f[:, 3] = np.where(rng.random(n_tok) < 0.9, 1.0, 0.0)  # a dense one
    f = f.astype(np.float32)
    os.makedirs(out, exist_ok=True)
    st_numpy.save_file({"x": x, "xhat": xhat, "f": f}, os.path.join(out, "metrics_case.safetensors"))
    with open(os.path.join(out, "metrics_expected.json"), "w") as fh:
        json.dump(metrics(x, xhat, f, batch), fh)


def selftest():
    rng = np.random.default_rng(1)
    f = np.array([[0, 2.0, 0, 1.0, 2.0]])
    idx, val = top_of(f, 4)
    assert list(idx[0]) == [1, 4, 3, -1] and list(val[0]) == [2, 2, 1, 0]
    x = rng.standard_normal((10, 4))
    m = metrics(x, x, np.ones((10, 3)), 4)
    assert abs(m["fvu"]) < 1e-12 and abs(m["cosine"] - 1) < 1e-12 and m["dense_fraction"] == 1
    print("ok")


def main(argv):
    seed = int(argv[argv.index("--seed") + 1]) if "--seed" in argv else 0
    if len(argv) >= 3 and argv[1] == "fixtures":
        write_fixtures(argv[2], seed)
    elif len(argv) >= 3 and argv[1] == "metrics":
        write_metrics(argv[2], seed)
    elif len(argv) >= 2 and argv[1] == "selftest":
        selftest()
    else:
        sys.stderr.write(__doc__)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
