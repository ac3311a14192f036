#!/usr/bin/python3
"""sae_step_torch.py: the PyTorch baseline for bench_sae_train: a dense TopK SAE training
step as the Python anchors run it (research/sae_anchors.md §1.2, §2.2): encoder GEMM, top-k,
scatter into a dense [B, n] latent matrix, dense decoder, MSE loss, autograd backward through
everything (10·d·n FLOPs per token), Adam step. f32, then bf16 autocast. Prints one line per
precision with tokens/s, best and median of --runs steps after one warm-up, and, when
--ours-f32/--ours-bf16 give saecap's median tokens/s of the same run, the ratio saecap/torch
(median over median).

bf16 autocast runs on --bf16-batch rows (default 64): on a CPU without AVX-512 bf16 (Zen 3)
PyTorch's bf16 GEMMs run at ~1.5 GFLOP/s, i.e. ~5 tokens/s, so a 4096-row step would take
~15 minutes. The step's cost is linear in the rows (every product has the batch as M), so
tokens/s on fewer rows is the same figure; the line says which batch ran.

  sae_step_torch.py --d 2560 --n 16384 --k 64 --batch 4096 --threads 2 [--runs 3]
                    [--bf16-batch 64] [--ours-f32 TOK_S] [--ours-bf16 TOK_S]
"""
import argparse
import statistics
import time

import torch


def step_fn(params, opt, x, k, autocast):
    W_enc, b_enc, W_dec, b_dec = params
    with torch.autocast("cpu", dtype=torch.bfloat16, enabled=autocast):
        h = (x - b_dec) @ W_enc + b_enc
        top = torch.topk(h, k, dim=-1)
        f = torch.zeros_like(h).scatter_(-1, top.indices, torch.relu(top.values))
        x_hat = f @ W_dec + b_dec
        loss = (x_hat.float() - x).pow(2).sum(-1).mean()
    opt.zero_grad(set_to_none=True)
    loss.backward()
    opt.step()


def bench(a, autocast, batch):
    torch.manual_seed(0)
    W_dec = torch.randn(a.n, a.d)
    W_dec /= W_dec.norm(dim=1, keepdim=True)
    params = [W_dec.T.clone().requires_grad_(), torch.zeros(a.n, requires_grad=True),
              W_dec.requires_grad_(), torch.zeros(a.d, requires_grad=True)]
    opt = torch.optim.Adam(params, lr=2e-4)
    x = torch.randn(batch, a.d)
    times = []
    for r in range(a.runs + 1):
        t0 = time.perf_counter()
        step_fn(params, opt, x, a.k, autocast)
        if r:
            times.append(time.perf_counter() - t0)
    return batch / min(times), batch / statistics.median(times)


def main():
    p = argparse.ArgumentParser()
    for name, val in (("d", 2560), ("n", 16384), ("k", 64), ("batch", 4096), ("threads", 0), ("runs", 3),
                      ("bf16-batch", 64)):
        p.add_argument("--" + name, type=int, default=val)
    p.add_argument("--ours-f32", type=float, default=0.0)
    p.add_argument("--ours-bf16", type=float, default=0.0)
    a = p.parse_args()
    if a.threads > 0:
        torch.set_num_threads(a.threads)

    def ratio(ours, med):
        return f"   saecap/torch {ours / med:.2f}x (median/median)" if ours > 0 else ""

    best, med = bench(a, False, a.batch)
    print(f"torch-f32    topk best {best:8.0f} median {med:8.0f} tokens/s (dense step, torch "
          f"{torch.__version__}, {torch.get_num_threads()} threads){ratio(a.ours_f32, med)}", flush=True)
    best, med = bench(a, True, a.bf16_batch)
    print(f"torch-bf16   topk best {best:8.1f} median {med:8.1f} tokens/s (bf16 autocast, batch "
          f"{a.bf16_batch})"
          f"{ratio(a.ours_bf16, med)}", flush=True)

if __name__ == "__main__":
    main()
