#!/usr/bin/python3
"""decoder_layer_torch.py: one Gemma-3 decoder layer in PyTorch, timed.

The baseline of bench/bench_decoder.c: the same layer shapes (hidden 2560,
8 query heads and 4 KV heads of 256, MLP 10240), the same thread count, a
prefill of T tokens and decode steps after it, in float32 and in bfloat16
(weights and activations in that dtype, as a Hugging Face run with
torch_dtype=bfloat16; softmax in float32 as HF's eager attention). Written
from the Gemma 3 formulas (research/gemma3_spec.md §3): (1 + w) RMSNorm,
q/k norm, rotate-half RoPE, grouped-query attention with a causal mask,
gated tanh-GELU MLP, pre/post norms around both blocks. torch 1.13 (Debian
12) has no scaled_dot_product_attention, so attention is two matmuls.

Prints one line per figure, seconds per layer call:
    <dtype> prefill T <min_s> <median_s>
    <dtype> decode 1 <min_s> <median_s>
Where a dtype's prefill at T would take longer than --budget-s per run
(bfloat16 on a CPU without AVX-512 bf16 runs ~100x slower than float32),
the prefill is timed at a smaller T, which the line says, and only two
decode steps are timed per run.
"""
import argparse
import math
import statistics
import sys
import time

import torch
import torch.nn.functional as F

HIDDEN, HEADS, KV_HEADS, HEAD_DIM, FF = 2560, 8, 4, 256, 10240
EPS = 1e-6


def rms_norm(x, w):
    xf = x.float()
    y = xf * torch.rsqrt(xf.pow(2).mean(-1, keepdim=True) + EPS)
    return (y * (1.0 + w.float())).to(x.dtype)


def rotate_half(x):
    h = x.shape[-1] // 2
    return torch.cat((-x[..., h:], x[..., :h]), dim=-1)


class Layer:
    def __init__(self, dtype, max_tokens, gen):
        def mat(rows, cols):
            a = math.sqrt(3.0 / cols)
            return ((torch.rand(rows, cols, generator=gen) * 2 - 1) * a).to(dtype)

        self.dtype = dtype
        self.wq = mat(HEADS * HEAD_DIM, HIDDEN)
        self.wk = mat(KV_HEADS * HEAD_DIM, HIDDEN)
        self.wv = mat(KV_HEADS * HEAD_DIM, HIDDEN)
        self.wo = mat(HIDDEN, HEADS * HEAD_DIM)
        self.wg = mat(FF, HIDDEN)
        self.wu = mat(FF, HIDDEN)
        self.wd = mat(HIDDEN, FF)
        self.norm_h = torch.zeros(HIDDEN, dtype=dtype)
        self.norm_d = torch.zeros(HEAD_DIM, dtype=dtype)
        self.k_cache = torch.zeros(KV_HEADS, max_tokens, HEAD_DIM, dtype=dtype)
        self.v_cache = torch.zeros(KV_HEADS, max_tokens, HEAD_DIM, dtype=dtype)
        inv = 1.0 / (10000.0 ** (torch.arange(0, HEAD_DIM, 2).float() / HEAD_DIM))
        ang = torch.outer(torch.arange(max_tokens).float(), inv)
        ang = torch.cat((ang, ang), dim=-1)
        self.cos, self.sin = ang.cos().to(dtype), ang.sin().to(dtype)
        self.n_pos = 0

    def attention(self, x, n):
        p0 = self.n_pos
        h = rms_norm(x, self.norm_h)
        q = F.linear(h, self.wq).view(n, HEADS, HEAD_DIM).transpose(0, 1)
        k = F.linear(h, self.wk).view(n, KV_HEADS, HEAD_DIM).transpose(0, 1)
        v = F.linear(h, self.wv).view(n, KV_HEADS, HEAD_DIM).transpose(0, 1)
        q, k = rms_norm(q, self.norm_d), rms_norm(k, self.norm_d)
        cos, sin = self.cos[p0:p0 + n], self.sin[p0:p0 + n]
        q = q * cos + rotate_half(q) * sin
        k = k * cos + rotate_half(k) * sin
        self.k_cache[:, p0:p0 + n] = k
        self.v_cache[:, p0:p0 + n] = v
        keys = self.k_cache[:, :p0 + n].repeat_interleave(HEADS // KV_HEADS, dim=0)
        vals = self.v_cache[:, :p0 + n].repeat_interleave(HEADS // KV_HEADS, dim=0)
        s = torch.matmul(q, keys.transpose(1, 2)) * (HEAD_DIM ** -0.5)
        if n > 1:
            mask = torch.ones(n, p0 + n, dtype=torch.bool).triu(p0 + 1)
            s = s.masked_fill(mask, float("-inf"))
        pr = torch.softmax(s, dim=-1, dtype=torch.float32).to(self.dtype)
        o = torch.matmul(pr, vals).transpose(0, 1).reshape(n, HEADS * HEAD_DIM)
        return x + rms_norm(F.linear(o, self.wo), self.norm_h)

    def forward(self, x):
        n = x.shape[0]
        x = self.attention(x, n)
        h = rms_norm(x, self.norm_h)
        a = F.gelu(F.linear(h, self.wg), approximate="tanh") * F.linear(h, self.wu)
        x = x + rms_norm(F.linear(a, self.wd), self.norm_h)
        self.n_pos += n
        return x


def timed(fn):
    t0 = time.perf_counter()
    fn()
    return time.perf_counter() - t0


def bench_dtype(dtype, args, gen):
    name = "f32" if dtype == torch.float32 else "bf16"
    layer = Layer(dtype, args.T + args.decode + 1, gen)
    x_all = torch.randn(args.T + args.decode, HIDDEN, generator=gen).to(dtype)
    # Estimate the prefill from the rate of one q-projection-sized product
    # (64 rows); shrink T while a prefill would exceed the per-run budget.
    x64 = x_all[:64]
    F.linear(x64, layer.wq)
    rate = 2.0 * 64 * HIDDEN * HEADS * HEAD_DIM / timed(lambda: F.linear(x64, layer.wq))
    layer_flop = 2.0 * (HIDDEN * (HEADS + 2 * KV_HEADS) * HEAD_DIM + HEADS * HEAD_DIM * HIDDEN + 3 * HIDDEN * FF)
    T = args.T
    while T > 16 and T * layer_flop / rate > args.budget_s:
        T //= 2
    n_dec = args.decode if T == args.T else min(args.decode, 2)
    pre, dec = [], []
    for r in range(args.runs + 1):
        layer.n_pos = 0
        tp = timed(lambda: layer.forward(x_all[:T]))
        steps = [timed(lambda i=i: layer.forward(x_all[T + i:T + i + 1])) for i in range(n_dec)]
        if r:  # run 0 warms up
            pre.append(tp)
            dec.extend(steps)
    print(f"{name} prefill {T} {min(pre):.6f} {statistics.median(pre):.6f}")
    print(f"{name} decode 1 {min(dec):.6f} {statistics.median(dec):.6f}")
    sys.stdout.flush()


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--threads", type=int, default=0)
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--T", type=int, default=512)
    ap.add_argument("--decode", type=int, default=8)
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
