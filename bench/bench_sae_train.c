/* bench_sae_train.c: speed of SAE training steps (sae_train.h) at the
 * issue's shape: d = 2560, n = 16384, k = 64, batch 4096, on synthetic rows.
 *
 * Prints, all measured in this run:
 *   train-f32     tokens/s of full TopK and BatchTopK training steps (f32) on
 *                 synthetic rows made once and read from memory (as from the
 *                 activation store; the copy into the batch is timed),
 *                 and of TopK with AuxK running on every latent unfired in the
 *                 first step (its worst case; with no dead latents AuxK is free)
 *   enc-f32       GFLOP/s of the encoder GEMM as training runs it (tiles of
 *                 sae_tile_rows rows through sae_encode_tile, bias included)
 *   sgemm-peak    GFLOP/s of one big square product (M = N = K = 4096) through
 *                 sc_sgemm, i.e. the GEMM library the encoder runs on
 *                 (saecap's AVX2 kernel, tensor/sgemm.h, where the CPU has
 *                 it); enc-f32 is reported as a percentage of it. The same
 *                 product through OpenBLAS is printed beside, for scale.
 *   enc-bf16      GFLOP/s of the same encoder tiles through sc_gemm_bf16
 *                 (weights rounded to bf16 once per step, as the trainer's
 *                 bf16_encoder does), and
 *   train-bf16    tokens/s of full TopK training steps with bf16_encoder
 *                 (train.precision: bf16), measured, next to train-f32
 *   torch         the dense TopK step of bench/reference/sae_step_torch.py
 *                 (f32 and bf16 autocast, same shapes and threads) when
 *                 /usr/bin/python3 has torch; else "torch unavailable"
 * Every figure is given as best (fastest of RUNS timed runs after one warm-up)
 * and median; ratios are median over median (and best over best for the
 * GEMM's share of peak).
 *
 * Like `saecap` (cli/main.c) the bench re-executes itself with
 * OMP_WAIT_POLICY=passive unless the variable is set, so it measures what
 * `saecap train` runs: with libgomp's default spinning, the OpenMP threads
 * left spinning after each top-k / sparse loop fight the OpenBLAS threads of
 * the next encoder tile for the 2 cores (a training step measured 1.2-1.5x
 * slower that way on a loaded machine). The PyTorch baseline runs with the
 * variable as the caller had it. The header prints the load average.
 *
 * ./build/bench_sae_train [RUNS [THREADS [BATCH]]] (defaults 3, all cores, 4096).
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "base/error.h"
#include "base/log.h"
#include "bench_common.h"
#include "sae/sae.h"
#include "sae/sae_kernels.h"
#include "sae/sae_source.h"
#include "sae/sae_train.h"
#include "tensor/blas.h"
#include "tensor/dtype.h"
#include "tensor/gemm.h"
#include "tensor/kernels.h"
#include "tensor/sgemm.h"

#define D 2560
#define N 16384
#define K 64
#define RUNS_DEFAULT 3
#define PEAK_DIM 4096
#define TORCH_SCRIPT "bench/reference/sae_step_torch.py"

static int cmp_d(const void *a, const void *b) {
  double x = *(const double *)a, y = *(const double *)b;
  return (x > y) - (x < y);
}

/* Best (min) and median of n timings, in seconds. */
typedef struct {
  double best, med;
} timing;

static timing summarise(double *v, int n) {
  qsort(v, (size_t)n, sizeof *v, cmp_d);
  return (timing){v[0], v[n / 2]};
}

static void die(const char *what) {
  fprintf(stderr, "bench_sae_train: %s: %s\n", what, sc_error_get());
  exit(1);
}

/* Synthetic rows (x = Σ sparse codes × a random dictionary + noise), made
 * once: the steps read them from memory as they would read the activation
 * store, so a step's time is the trainer's, not the cost of synthesising
 * rows out of a 670 MB dictionary. */
static float *make_rows(int64_t rows) {
  sae_synth_cfg sc = {.d = D, .n_features = 4 * N, .active = 32, .amp_lo = 0.5f, .amp_hi = 2.0f,
                      .noise = 0.05f, .offset = 1.0f, .seed = 1};
  sae_source *src;
  if (sae_source_synthetic(&src, &sc)) die("source");
  float *x = malloc((size_t)(rows * D) * sizeof *x);
  if (!x) die("rows");
  if (sae_source_next(src, x, rows)) die("rows");
  sae_source_free(src);
  return x;
}

/* Seconds per training step. */
static timing time_steps(const float *rows, int64_t n_rows, sae_arch arch, int64_t batch, int runs,
                         int auxk, int bf16) {
  sae_source *src;
  if (sae_source_memory(&src, rows, n_rows, D)) die("source");
  sae_train_cfg c;
  sae_train_cfg_default(&c, arch, D, N, K);
  c.batch = batch, c.steps = runs + 1, c.norm_rows = 4096, c.median_rows = 1024;
  if (auxk) c.dead_tokens = batch; /* every latent unfired in step 1 is dead: AuxK's worst case */
  c.bf16_encoder = bf16;
  sae_trainer *t;
  if (sae_trainer_create(&t, &c, src)) die("trainer");
  double ts[64];
  for (int r = 0; r <= runs; r++) {
    double t0 = sc_time_now();
    if (sae_trainer_step(t, NULL)) die("step");
    if (r > 0) ts[r - 1] = sc_time_now() - t0;
  }
  sae_trainer_free(t);
  sae_source_free(src);
  return summarise(ts, runs);
}

/* Seconds of the encoder over a batch, f32 (g == NULL) or bf16. */
static timing time_encoder(const float *x, const float *W, const float *b, int64_t batch,
                           int runs, sc_gemm *g) {
  int64_t T = sae_tile_rows(N);
  float *h = malloc((size_t)(T * N) * sizeof *h);
  uint16_t *wb = g ? malloc((size_t)N * D * sizeof *wb) : NULL;
  double ts[64];
  for (int r = 0; r <= runs; r++) {
    double t0 = sc_time_now();
    if (g) sc_bf16_from_f32_n(wb, W, (size_t)N * D);
    for (int64_t r0 = 0; r0 < batch; r0 += T) {
      int64_t rows = batch - r0 < T ? batch - r0 : T;
      if (g) {
        if (sc_gemm_bf16(g, h, x + r0 * D, wb, b, (int)rows, N, D, 0)) die("bf16 gemm");
      } else {
        sae_encode_tile(h, NULL, x + r0 * D, NULL, W, b, rows, D, N);
      }
    }
    if (r > 0) ts[r - 1] = sc_time_now() - t0;
  }
  free(h), free(wb);
  return summarise(ts, runs);
}

/* ours_*: saecap's median tokens/s, for the script's same-run ratio. */
static void run_torch(int threads, int64_t batch, int runs, double ours_f32, double ours_bf16) {
  if (system("/usr/bin/python3 -c 'import torch' >/dev/null 2>&1") != 0) {
    printf("torch        unavailable (/usr/bin/python3 has no torch; scripts/install-deps.sh --bench)\n");
    return;
  }
  char cmd[512];
  /* PyTorch gets the caller's OpenMP wait policy, not the one set for us. */
  const char *own = getenv("SAECAP_BENCH_OWN_WAIT");
  snprintf(cmd, sizeof cmd,
           "%s/usr/bin/python3 %s --d %d --n %d --k %d --batch %lld --threads %d --runs %d"
           " --ours-f32 %.1f --ours-bf16 %.1f",
           own ? "env -u OMP_WAIT_POLICY " : "", TORCH_SCRIPT, D, N, K, (long long)batch, threads,
           runs, ours_f32, ours_bf16);
  fflush(stdout);
  if (system(cmd) != 0) printf("torch        the script failed\n");
}

int main(int argc, char **argv) {
  if (!getenv("OMP_WAIT_POLICY") && !setenv("OMP_WAIT_POLICY", "passive", 1) &&
      !setenv("SAECAP_BENCH_OWN_WAIT", "1", 1))
    execv("/proc/self/exe", argv); /* libgomp reads it before main; on failure carry on */
  int runs = argc > 1 ? atoi(argv[1]) : RUNS_DEFAULT;
  int threads = argc > 2 ? atoi(argv[2]) : 0;
  int64_t batch = argc > 3 ? atoll(argv[3]) : 4096;
  if (runs < 1 || runs > 60 || batch < 1) return fprintf(stderr, "usage: bench_sae_train [RUNS [THREADS [BATCH]]]\n"), 2;
  sc_kernels_set_threads(threads);
  threads = sc_kernels_threads();
  char load[64] = "?";
  FILE *la = fopen("/proc/loadavg", "r");
  if (la) {
    if (!fgets(load, sizeof load, la)) strcpy(load, "?");
    fclose(la);
    load[strcspn(load, "\n")] = 0;
  }
  printf("sae train: d %d, n %d, k %d, batch %lld, threads %d, best and median of %d\n"
         "blas: %s\nOMP_WAIT_POLICY %s, load average %s\n",
         D, N, K, (long long)batch, threads, runs, sc_blas_describe(),
         getenv("OMP_WAIT_POLICY") ? getenv("OMP_WAIT_POLICY") : "unset", load);
  double flop = 2.0 * (double)batch * D * N;
  bench_stat peak = bench_gemm_peak(PEAK_DIM, PEAK_DIM, PEAK_DIM, runs, 1);
  float *x = malloc((size_t)batch * D * 4), *W = malloc((size_t)N * D * 4), *b = calloc(N, 4);
  for (int64_t i = 0; i < batch * D; i++) x[i] = (float)((i * 2654435761u) % 1000) * 1e-3f - 0.5f;
  for (int64_t i = 0; i < (int64_t)N * D; i++) W[i] = (float)((i * 40503u) % 997) * 1e-4f - 0.05f;
  timing enc = time_encoder(x, W, b, batch, runs, NULL);
  sc_gemm *g = NULL;
  timing enc_bf = {0, 0};
  if (sc_gemm_create(&g, SC_GEMM_BACKEND_AUTO, threads) == 0) enc_bf = time_encoder(x, W, b, batch, runs, g);
  free(x), free(W), free(b);
  /* the initial sample (norm_rows + median_rows) and runs + 1 steps, wrapping after 4 batches */
  int64_t n_rows = 4096 + 1024 + (runs + 1 < 4 ? runs + 1 : 4) * batch;
  float *rows = make_rows(n_rows);
  bench_stat ob = bench_sgemm_peak(PEAK_DIM, PEAK_DIM, PEAK_DIM, runs);
  printf("sgemm-peak   best %8.1f median %8.1f GFLOP/s (%dx%dx%d, sc_sgemm: %s; OpenBLAS %.1f / %.1f)\n",
         peak.min, peak.med, PEAK_DIM, PEAK_DIM, PEAK_DIM,
         sc_sg_available() ? "saecap AVX2 kernel" : "OpenBLAS", ob.min, ob.med);
  printf("enc-f32      best %8.1f median %8.1f GFLOP/s  %.0f%% (best) %.0f%% (median) of sgemm peak\n",
         flop / enc.best / 1e9, flop / enc.med / 1e9, 100.0 * flop / enc.best / 1e9 / peak.min,
         100.0 * flop / enc.med / 1e9 / peak.med);
  timing topk = time_steps(rows, n_rows, SAE_ARCH_TOPK, batch, runs, 0, 0);
  printf("train-f32    topk best %8.0f median %8.0f tokens/s (median %.2f s/step, encoder GEMM %.0f%% of it)\n",
         (double)batch / topk.best, (double)batch / topk.med, topk.med, 100.0 * enc.med / topk.med);
  fflush(stdout);
  timing btk = time_steps(rows, n_rows, SAE_ARCH_BATCHTOPK, batch, runs, 0, 0);
  printf("train-f32    batchtopk best %8.0f median %8.0f tokens/s\n", (double)batch / btk.best,
         (double)batch / btk.med);
  fflush(stdout);
  timing aux = time_steps(rows, n_rows, SAE_ARCH_TOPK, batch, runs, 1, 0);
  printf("train-f32    topk+AuxK(all dead, k_aux %d) best %8.0f median %8.0f tokens/s\n", D / 2,
         (double)batch / aux.best, (double)batch / aux.med);
  double ours_bf = 0.0;
  if (g) {
    printf("enc-bf16     best %8.1f median %8.1f GFLOP/s  [%s]\n", flop / enc_bf.best / 1e9,
           flop / enc_bf.med / 1e9, sc_gemm_describe(g));
    fflush(stdout);
    timing bf = time_steps(rows, n_rows, SAE_ARCH_TOPK, batch, runs, 0, 1);
    ours_bf = (double)batch / bf.med;
    printf("train-bf16   topk best %8.0f median %8.0f tokens/s (median %.2f s/step; bf16 encoder GEMM,"
           " f32 master weights)   vs train-f32 %.2fx\n",
           (double)batch / bf.best, ours_bf, bf.med, topk.med / bf.med);
  }
  sc_gemm_free(g);
  free(rows);
  run_torch(threads, batch, runs, (double)batch / topk.med, ours_bf);
  return 0;
}
