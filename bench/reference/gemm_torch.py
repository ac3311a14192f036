#!/usr/bin/env python3
"""gemm_torch.py: PyTorch's torch.nn.functional.linear on the shapes of
bench/bench_gemm.c, in f32 and in bf16, for comparison in the same run.

Usage: gemm_torch.py --threads T --runs R [--pool-mib P]

Prints one header line "# torch <version> mkldnn=<bool> threads=<T>" and one
line per figure:  <M> <N> <K> <f32|bf16> <min_s> <median_s>
(seconds per call). For M = 1 each timed run goes through enough copies of
the weights (at least P MiB of them) that they come from memory, not cache,
as in bench_gemm.c. bf16 rounds x and W to bf16 once, outside the timing;
the product is what a bf16 Hugging Face run calls (bf16 in, bf16 out).
"""
import argparse
import statistics
import time

import torch
import torch.nn.functional as F

SHAPES = [(2048, 2560), (1024, 2560), (2560, 2048), (10240, 2560), (2560, 10240)]
MS = [512, 1]


def time_runs(fn, warm, n_calls, runs):
    """Seconds per call (min, median) over runs passes of n_calls calls."""
    warm()  # lazy initialisation, not timed (one row: bf16 can be very slow)
    per_call = []
    for _ in range(runs):
        t0 = time.perf_counter()
        for i in range(n_calls):
            fn(i)
        per_call.append((time.perf_counter() - t0) / n_calls)
    return min(per_call), statistics.median(per_call)


def bench_shape(m, n, k, runs, pool_bytes):
    gen = torch.Generator().manual_seed(n * 7 + k)
    copies = 1 if m > 1 else max(1, pool_bytes // (n * k * 4))
    base = (torch.rand(n, k, generator=gen) - 0.5) * 0.1
    x = torch.randn(m, k, generator=gen)
    for name, dt in (("f32", torch.float32), ("bf16", torch.bfloat16)):
        ws = [base.to(dt).clone() for _ in range(copies)]
        xd = x.to(dt)
        with torch.no_grad():
            lo, med = time_runs(lambda i: F.linear(xd, ws[i % copies]),
                                lambda: F.linear(xd[:1], ws[0]), copies, runs)
        print(f"{m} {n} {k} {name} {lo:.9g} {med:.9g}", flush=True)
        del ws


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--threads", type=int, required=True)
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--pool-mib", type=int, default=256)
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    print(f"# torch {torch.__version__} mkldnn={torch.backends.mkldnn.is_available()} "
          f"threads={torch.get_num_threads()}", flush=True)
    for m in MS:
        for n, k in SHAPES:
            bench_shape(m, n, k, a.runs, a.pool_mib << 20)


if __name__ == "__main__":
    main()
