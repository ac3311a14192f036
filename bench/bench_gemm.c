/* bench_gemm.c: speed of the GEMMs of the Gemma-3-4B decoder.
 *
 * y[M,N] = x[M,K] · W[N,K]ᵀ for the q, k/v, o, gate/up and down projections
 * (hidden 2560, 8x256 q heads, 4x256 kv heads, MLP 10240), at M = 512
 * (prefill) and M = 1 (decode), through:
 *   sgemm-f32    OpenBLAS cblas_sgemm on f32 weights: the GEMM peak baseline
 *   dnnl-f32     oneDNN f32 matmul on the same f32 weights (sc_gemm_f32_onednn)
 *   saecap-bf16  sc_gemm_bf16 on bf16 weights, backend AUTO (see the header line)
 *   torch-f32/-bf16  torch.nn.functional.linear (bench/reference/gemm_torch.py,
 *                same shapes and threads) when /usr/bin/python3 has torch
 * M = 512 prints GFLOP/s; M = 1 prints the bytes of weights read per second,
 * next to the memory read and memcpy bandwidth measured in the same run, for
 * decode is bound by reading the weights. For M = 1 every timed run cycles
 * through copies of the weights totalling POOL_BYTES (8x the 32 MiB L3 of
 * the 2-core Zen machines) so they come from memory. Every figure is the
 * best and the median of RUNS runs; nothing is asserted.
 *
 * Built by CMake (bench/bench_*.c); `make bench` runs it from the repository
 * root; by hand: ./build/bench_gemm [RUNS [THREADS]] (defaults 5 and the
 * OpenMP default, i.e. all cores).
 */
#include <cblas.h>
#include <immintrin.h>
#include <omp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "bench_common.h"
#include "base/error.h"
#include "base/rng.h"
#include "tensor/dtype.h"
#include "tensor/gemm.h"

#define RUNS_DEFAULT 5
#define RUNS_TORCH 3
#define POOL_BYTES ((size_t)256 << 20)
#define BW_BYTES ((size_t)512 << 20)
#define TORCH_SCRIPT "bench/reference/gemm_torch.py"

typedef struct bshape {
  const char *name;
  int N, K;
} bshape;

static const bshape SHAPES[] = {
    {"q", 2048, 2560}, {"k/v", 1024, 2560}, {"o", 2560, 2048}, {"gate/up", 10240, 2560},
    {"down", 2560, 10240},
};
#define N_SHAPES (int)(sizeof SHAPES / sizeof SHAPES[0])
static const int MS[] = {512, 1};

enum { F_SGEMM, F_DNNL_F32, F_SC_BF16, F_TORCH_F32, F_TORCH_BF16, N_FIG };
static const char *FIG_NAMES[N_FIG] = {"sgemm-f32", "dnnl-f32", "saecap-bf16", "torch-f32",
                                       "torch-bf16"};

/* One shape's buffers: copies of W (bf16 and f32), x, y. */
typedef struct bcase {
  int M, N, K, copies;
  uint16_t *wb; /* (copies, N, K) */
  float *wf;    /* (copies, N, K) */
  float *x;     /* (M, K) */
  float *y;     /* (M, N) */
  sc_gemm *g;
} bcase;

/* ==== memory bandwidth =================================================== */

/* Sum of buf[lo, hi) in 4 AVX2 lanes x 4 registers: loads as fast as the
 * memory gives them (a scalar loop measured ~25% lower on Zen 3). */
__attribute__((target("avx2"))) static uint64_t read_avx2(const uint64_t *buf, size_t lo,
                                                           size_t hi) {
  __m256i a0 = _mm256_setzero_si256(), a1 = a0, a2 = a0, a3 = a0;
  size_t i = lo;
  for (; i + 16 <= hi; i += 16) {
    a0 = _mm256_add_epi64(a0, _mm256_loadu_si256((const __m256i *)(buf + i)));
    a1 = _mm256_add_epi64(a1, _mm256_loadu_si256((const __m256i *)(buf + i + 4)));
    a2 = _mm256_add_epi64(a2, _mm256_loadu_si256((const __m256i *)(buf + i + 8)));
    a3 = _mm256_add_epi64(a3, _mm256_loadu_si256((const __m256i *)(buf + i + 12)));
  }
  uint64_t lanes[4], acc = 0;
  _mm256_storeu_si256((__m256i *)lanes,
                      _mm256_add_epi64(_mm256_add_epi64(a0, a1), _mm256_add_epi64(a2, a3)));
  for (int j = 0; j < 4; j++) acc += lanes[j];
  for (; i < hi; i++) acc += buf[i];
  return acc;
}

/* Reads all of buf, split over the threads; the sum keeps the loads. */
static double read_once(const uint64_t *buf, size_t n) {
  uint64_t acc = 0;
  int avx2 = __builtin_cpu_supports("avx2");
#pragma omp parallel reduction(+ : acc)
  {
    size_t nt = (size_t)omp_get_num_threads(), t = (size_t)omp_get_thread_num();
    size_t lo = n * t / nt, hi = n * (t + 1) / nt;
    if (avx2) acc += read_avx2(buf, lo, hi);
    else
      for (size_t i = lo; i < hi; i++) acc += buf[i];
  }
  return (double)(acc & 1);
}

/* Read and memcpy bandwidth (GB/s, best and median of runs) over BW_BYTES;
 * memcpy counts the bytes copied, split over the threads. */
static void bench_memory(int runs, bench_stat *rd, bench_stat *cp) {
  size_t n = BW_BYTES / 8;
  uint64_t *a = malloc(BW_BYTES), *b = malloc(BW_BYTES);
  double tr[64], tc[64], sink = 0;
  if (!a || !b) {
    printf("memory: out of memory\n");
    exit(1);
  }
  for (size_t i = 0; i < n; i++) a[i] = i, b[i] = 0;
  for (int r = 0; r < runs; r++) {
    double t0 = bench_now();
    sink += read_once(a, n);
    tr[r] = bench_now() - t0;
    int nt = omp_get_max_threads();
    t0 = bench_now();
#pragma omp parallel for schedule(static)
    for (int i = 0; i < nt; i++) {
      size_t lo = n * (size_t)i / (size_t)nt, hi = n * (size_t)(i + 1) / (size_t)nt;
      memcpy(b + lo, a + lo, (hi - lo) * 8);
    }
    tc[r] = bench_now() - t0;
  }
  *rd = bench_summarize(tr, runs);
  *cp = bench_summarize(tc, runs);
  if (sink < 0 || b[n / 2] != a[n / 2]) printf("memory: check failed\n");
  free(a);
  free(b);
}

/* ==== one shape ========================================================== */

static int case_make(bcase *c, int M, const bshape *s, sc_gemm *g) {
  size_t nk = (size_t)s->N * (size_t)s->K;
  *c = (bcase){.M = M, .N = s->N, .K = s->K, .g = g};
  c->copies = M > 1 ? 1 : (int)(POOL_BYTES / (nk * 4) > 0 ? POOL_BYTES / (nk * 4) : 1);
  c->wb = malloc(nk * 2 * (size_t)c->copies);
  c->wf = malloc(nk * 4 * (size_t)c->copies);
  c->x = malloc((size_t)M * (size_t)s->K * 4);
  c->y = malloc((size_t)M * (size_t)s->N * 4);
  if (!c->wb || !c->wf || !c->x || !c->y) return -1;
  sc_rng r;
  sc_rng_seed(&r, (uint64_t)s->N * 7 + (uint64_t)s->K);
  for (size_t i = 0; i < nk; i++)
    c->wb[i] = sc_bf16_from_f32((float)(0.1 * (sc_rng_uniform(&r) - 0.5)));
  sc_f32_from_bf16_n(c->wf, c->wb, nk);
  for (int i = 1; i < c->copies; i++) {
    memcpy(c->wb + nk * (size_t)i, c->wb, nk * 2);
    memcpy(c->wf + nk * (size_t)i, c->wf, nk * 4);
  }
  for (size_t i = 0; i < (size_t)M * (size_t)s->K; i++) c->x[i] = (float)sc_rng_normal(&r);
  return 0;
}

static void case_free(bcase *c) {
  free(c->wb);
  free(c->wf);
  free(c->x);
  free(c->y);
}

static int call(const bcase *c, int fig, int copy) {
  size_t off = (size_t)copy * (size_t)c->N * (size_t)c->K;
  switch (fig) {
  case F_SGEMM:
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, c->M, c->N, c->K, 1.0f, c->x, c->K,
                c->wf + off, c->K, 0.0f, c->y, c->N);
    return 0;
  case F_DNNL_F32:
    return sc_gemm_f32_onednn(c->g, c->y, c->x, c->wf + off, NULL, c->M, c->N, c->K, 0);
  default:
    return sc_gemm_bf16(c->g, c->y, c->x, c->wb + off, NULL, c->M, c->N, c->K, 0);
  }
}

/* Seconds per call of figure fig: one untimed pass, then runs passes over
 * every copy of the weights. */
static bench_stat time_fig(const bcase *c, int fig, int runs) {
  double t[64];
  for (int i = 0; i < c->copies; i++)
    if (call(c, fig, i)) {
      printf("%s: %s\n", FIG_NAMES[fig], sc_error_get());
      return (bench_stat){0, 0};
    }
  for (int r = 0; r < runs; r++) {
    double t0 = bench_now();
    for (int i = 0; i < c->copies; i++) call(c, fig, i);
    t[r] = (bench_now() - t0) / c->copies;
  }
  return bench_summarize(t, runs);
}

/* ==== PyTorch ============================================================ */

static int shape_index(int N, int K) {
  for (int i = 0; i < N_SHAPES; i++)
    if (SHAPES[i].N == N && SHAPES[i].K == K) return i;
  return -1;
}

/* Runs gemm_torch.py and fills res[m][shape][F_TORCH_*]; 0 when it ran. */
static int bench_torch(int threads, bench_stat res[2][N_SHAPES][N_FIG]) {
  if (system("/usr/bin/python3 -c 'import torch' >/dev/null 2>&1") != 0) {
    printf("torch: python3-torch not installed, reference skipped (scripts/install-deps.sh --bench)\n");
    return -1;
  }
  char cmd[256], line[256];
  snprintf(cmd, sizeof cmd, "/usr/bin/python3 %s --threads %d --runs %d --pool-mib %zu", TORCH_SCRIPT,
           threads, RUNS_TORCH, POOL_BYTES >> 20);
  FILE *p = popen(cmd, "r");
  if (!p) return -1;
  while (fgets(line, sizeof line, p)) {
    int M, N, K, si;
    char dt[8];
    double lo, med;
    if (line[0] == '#') printf("%s", line + 2);
    else if (sscanf(line, "%d %d %d %7s %lf %lf", &M, &N, &K, dt, &lo, &med) == 6 &&
             (si = shape_index(N, K)) >= 0)
      res[M == 1][si][strcmp(dt, "bf16") ? F_TORCH_F32 : F_TORCH_BF16] = (bench_stat){lo, med};
  }
  int st = pclose(p);
  if (st != 0) printf("torch: %s exited with status %d\n", TORCH_SCRIPT, st);
  return st;
}

/* ==== report ============================================================= */

static void print_cell(bench_stat s, double work) {
  if (s.min > 0) printf(" %6.1f/%-6.1f", work / s.min * 1e-9, work / s.med * 1e-9);
  else printf(" %13s", "-");
}

/* One table: GFLOP/s (M > 1) or GB/s of weights read (M = 1). */
static void print_table(int mi, bench_stat res[2][N_SHAPES][N_FIG], double read_gbs) {
  int M = MS[mi];
  printf("\nM = %d: %s (best/median)\n%-8s %5s %5s", M,
         M > 1 ? "GFLOP/s" : "GB/s of weights read (bf16: 2 B, f32: 4 B per weight)", "proj",
         "N", "K");
  for (int f = 0; f < N_FIG; f++) printf(" %13s", FIG_NAMES[f]);
  printf(M > 1 ? "\n" : "  bf16/read-bw\n");
  for (int s = 0; s < N_SHAPES; s++) {
    double nk = (double)SHAPES[s].N * SHAPES[s].K;
    printf("%-8s %5d %5d", SHAPES[s].name, SHAPES[s].N, SHAPES[s].K);
    for (int f = 0; f < N_FIG; f++) {
      int bf16 = f == F_SC_BF16 || f == F_TORCH_BF16;
      print_cell(res[mi][s][f], M > 1 ? 2.0 * M * nk : nk * (bf16 ? 2 : 4));
    }
    if (M == 1 && res[mi][s][F_SC_BF16].min > 0)
      printf("  %5.0f%%", 100.0 * nk * 2 / res[mi][s][F_SC_BF16].min * 1e-9 / read_gbs);
    printf("\n");
  }
}

int main(int argc, char **argv) {
  int runs = argc > 1 ? atoi(argv[1]) : RUNS_DEFAULT;
  int threads = argc > 2 ? atoi(argv[2]) : omp_get_max_threads();
  if (runs < 3 || runs > 64 || threads < 1) {
    fprintf(stderr, "usage: bench_gemm [RUNS (3..64) [THREADS]]\n");
    return 2;
  }
  omp_set_num_threads(threads);
  openblas_set_num_threads(threads);
  static bench_stat res[2][N_SHAPES][N_FIG];
  sc_gemm *g;
  if (sc_gemm_create(&g, SC_GEMM_BACKEND_AUTO, threads) != 0) {
    fprintf(stderr, "bench_gemm: %s\n", sc_error_get());
    return 1;
  }
  printf("bench_gemm: %d threads, %d runs (torch %d)\n", threads, runs, RUNS_TORCH);
  bench_stat rd, cp;
  bench_memory(runs, &rd, &cp);
  double read_gbs = BW_BYTES / rd.min * 1e-9;
  printf("memory: read %.1f/%.1f GB/s, memcpy %.1f/%.1f GB/s copied (best/median, %zu MiB)\n",
         read_gbs, BW_BYTES / rd.med * 1e-9, BW_BYTES / cp.min * 1e-9, BW_BYTES / cp.med * 1e-9,
         BW_BYTES >> 20);
  bench_torch(threads, res);
  for (int mi = 0; mi < 2; mi++)
    for (int s = 0; s < N_SHAPES; s++) {
      bcase c;
      if (case_make(&c, MS[mi], &SHAPES[s], g)) {
        fprintf(stderr, "bench_gemm: out of memory\n");
        return 1;
      }
      for (int f = F_SGEMM; f <= F_SC_BF16; f++) res[mi][s][f] = time_fig(&c, f, runs);
      case_free(&c);
    }
  printf("saecap-bf16 backend: %s\n", sc_gemm_describe(g));
  for (int mi = 0; mi < 2; mi++) print_table(mi, res, read_gbs);
  sc_gemm_free(g);
  return 0;
}
