#!/usr/bin/python3
"""vision_layer_torch.py: one SigLIP encoder layer in PyTorch, timed.

The baseline of bench/bench_vision.c: SigLIP-so400m widths (hidden 1152,
16 heads of 72, MLP 4304) over N patches (4096 = (896/14)^2 for Gemma 3),
the same thread count, in float32 and in bfloat16 (weights and activations
in that dtype, as a Hugging Face run with torch_dtype=bfloat16; softmax in
float32 and cast back, as HF's eager SiglipAttention). Written from the
SigLIP formulas (research/gemma3_spec.md §4.3): pre-LayerNorm with bias,
multi-head attention with biases and no mask, tanh-GELU MLP, two residuals.
torch 1.13 (Debian 12) has no scaled_dot_product_attention, so attention is
two matmuls.

Prints one line per dtype, seconds per layer call:
    <dtype> layer N <min_s> <median_s>
Where a dtype's layer at N patches would take longer than --budget-s per
run (bfloat16 on a CPU without AVX-512 bf16 runs ~100x slower than float32:
oneDNN has no bf16 kernel there), the layer is timed over fewer patches,
which the line's N says; the caller scales by FLOPs.
"""
import argparse
import math
import statistics
import sys
import time

import torch
import torch.nn.functional as F

HIDDEN, HEADS, FF = 1152, 16, 4304
HEAD_DIM = HIDDEN // HEADS
EPS = 1e-6


def layer_flop(n):
    """Projections (q, k, v, out, fc1, fc2) plus q.k^T and P.v."""
    return 2.0 * n * (4 * HIDDEN * HIDDEN + 2 * HIDDEN * FF) + 4.0 * n * n * HIDDEN


class Layer:
    def __init__(self, dtype, gen):
        def mat(rows, cols):
            a = math.sqrt(3.0 / cols)
            return ((torch.rand(rows, cols, generator=gen) * 2 - 1) * a).to(dtype)

        def vec(n, v):
            return torch.full((n,), v, dtype=dtype)

        self.dtype = dtype
        self.wq, self.wk, self.wv, self.wo = (mat(HIDDEN, HIDDEN) for _ in range(4))
        self.bq, self.bk, self.bv, self.bo = (vec(HIDDEN, 0.01) for _ in range(4))
        self.w1, self.b1 = mat(FF, HIDDEN), vec(FF, 0.01)
        self.w2, self.b2 = mat(HIDDEN, FF), vec(HIDDEN, 0.01)
        self.ln1 = (vec(HIDDEN, 1.0), vec(HIDDEN, 0.0))
        self.ln2 = (vec(HIDDEN, 1.0), vec(HIDDEN, 0.0))

    def forward(self, x):
        n = x.shape[0]
        h = F.layer_norm(x, (HIDDEN,), *self.ln1, EPS)
        q = F.linear(h, self.wq, self.bq).view(n, HEADS, HEAD_DIM).transpose(0, 1)
        k = F.linear(h, self.wk, self.bk).view(n, HEADS, HEAD_DIM).transpose(0, 1)
        v = F.linear(h, self.wv, self.bv).view(n, HEADS, HEAD_DIM).transpose(0, 1)
        s = torch.matmul(q, k.transpose(1, 2)) * (HEAD_DIM ** -0.5)
        p = torch.softmax(s, dim=-1, dtype=torch.float32).to(self.dtype)
        o = torch.matmul(p, v).transpose(0, 1).reshape(n, HIDDEN)
        x = x + F.linear(o, self.wo, self.bo)
        h = F.layer_norm(x, (HIDDEN,), *self.ln2, EPS)
        a = F.gelu(F.linear(h, self.w1, self.b1), approximate="tanh")
        return x + F.linear(a, self.w2, self.b2)


def timed(fn):
    t0 = time.perf_counter()
    fn()
    return time.perf_counter() - t0


def bench_dtype(dtype, args, gen):
    name = "f32" if dtype == torch.float32 else "bf16"
    layer = Layer(dtype, gen)
    x_all = torch.randn(args.patches, HIDDEN, generator=gen).to(dtype)
    # Estimate the layer time from the rate of one fc1-sized product over
    # 64 rows; shrink N while a layer call would exceed the per-run budget.
    x64 = x_all[:64]
    F.linear(x64, layer.w1)
    rate = 2.0 * 64 * HIDDEN * FF / timed(lambda: F.linear(x64, layer.w1))
    n = args.patches
    while n > 64 and layer_flop(n) / rate > args.budget_s:
        n //= 2
    t = []
    for r in range(args.runs + 1):
        dt = timed(lambda: layer.forward(x_all[:n]))
        if r:  # run 0 warms up
            t.append(dt)
    print(f"{name} layer {n} {min(t):.6f} {statistics.median(t):.6f}")
    sys.stdout.flush()


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--threads", type=int, default=0)
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--patches", type=int, default=4096)
    ap.add_argument("--budget-s", type=float, default=8.0)
    args = ap.parse_args()
    if args.threads > 0:
        torch.set_num_threads(args.threads)
    gen = torch.Generator().manual_seed(0)
    with torch.inference_mode():
        for dtype in (torch.float32, torch.bfloat16):
            bench_dtype(dtype, args, gen)


if __name__ == "__main__":
    main()
