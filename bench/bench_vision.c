/* bench_vision.c: speed of the SigLIP vision tower at SigLIP-so400m widths.
 *
 * Writes a random BF16 checkpoint holding only a 2-layer vision tower and
 * the projector (hidden 1152, 16 heads of 72, MLP 4304, 896 px images in
 * 14 px patches = 4096 patches, 256 image tokens, projector to 2560) into a
 * temporary folder (removed once mapped), loads it with g3_vision_load
 * (mmapped) and times g3_vision_forward_hook of one image in both
 * precisions (f32: weights widened, OpenBLAS sgemm; bf16: sc_gemm, see the
 * backend line). The hook stamps the end of each layer: layer 1 is a pure
 * layer; layer 0 also holds the scratch allocation and the patch embedding;
 * "tail" is post-LayerNorm + pooling + RMSNorm + projector. images/s per
 * layer = 1 / layer time; GFLOP/s counts the six projections plus q·kᵀ
 * and P·v. Every figure is the best and the median of RUNS runs (after one
 * warm-up). Also in the same run: the OpenBLAS sgemm peak on the fc1 shape
 * (M 4096, N 4304, K 1152, f32). Nothing is asserted.
 *
 * Noise: a 2-core machine shared with other processes stalls the OpenMP
 * loops; the load average is printed at the start and after each part.
 *
 * PyTorch baseline: bench/reference/vision_layer_torch.py runs the same
 * layer (same widths, threads, 4096 patches) in f32 and bf16 when
 * /usr/bin/python3 has torch. On CPUs without AVX-512 bf16 (Zen 3: see
 * docs/notes.md) torch's bf16 runs at ~1 GFLOP/s, so the script caps each
 * run at TORCH_BUDGET_S seconds by timing fewer patches; the line then says
 * so and images/s is scaled from that rate by FLOPs (an estimate).
 *
 * Built by CMake (bench/bench_*.c); `make bench` runs it from the
 * repository root; by hand: ./build/bench_vision [RUNS [THREADS]]
 * (defaults 3 and the OpenMP default, i.e. all cores). TMPDIR picks the
 * folder for the checkpoint (~100 MB).
 */
#include <cblas.h>
#include <math.h>
#include <omp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "bench_common.h"
#include "base/error.h"
#include "base/fs.h"
#include "io/safetensors.h"
#include "model/g3_config.h"
#include "model/vision.h"
#include "tensor/dtype.h"
#include "tensor/gemm.h"
#include "tensor/kernels.h"

#define RUNS_DEFAULT 3
#define MAX_RUNS 64
#define HIDDEN 1152
#define HEADS 16
#define FF 4304
#define IMAGE 896
#define PATCH 14
#define GRID (IMAGE / PATCH)
#define N_PATCHES (GRID * GRID)
#define MM_TOKENS 256
#define TEXT_HIDDEN 2560
#define N_LAYERS 2
#define TORCH_SCRIPT "bench/reference/vision_layer_torch.py"
#define TORCH_BUDGET_S 8.0
#define PFX G3_PREFIX_VISION_NEW
#define PROJ G3_PREFIX_PROJ_NEW

static void print_load(const char *when) {
  char load[64] = "?";
  FILE *la = fopen("/proc/loadavg", "r");
  if (la && fgets(load, sizeof load, la)) load[strcspn(load, "\n")] = 0;
  if (la) fclose(la);
  printf("  (load average %s: %s)\n", when, load);
}

/* ==== The checkpoints ==================================================== */

/* Uniform bf16 values in [-amp, amp) from a counter hash (splitmix64);
 * amp 0 with base b gives the constant b (LayerNorm weights 1, biases). */
static void fill_bf16(uint16_t *dst, size_t n, uint64_t seed, float amp, float base) {
#pragma omp parallel for schedule(static)
  for (size_t i = 0; i < n; i++) {
    uint64_t z = seed + (uint64_t)i * 0x9E3779B97F4A7C15ull;
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    z ^= z >> 31;
    float u = (float)(z >> 40) * (1.0f / 16777216.0f); /* [0, 1) */
    dst[i] = sc_bf16_from_f32(base + (2.0f * u - 1.0f) * amp);
  }
}

/* Adds one BF16 tensor; matrices (cols > 0 in shape[n_dims-1] with
 * fan_in) get variance 1/fan_in, vectors the constant base. */
static int add_tensor(st_writer *w, uint16_t **keep, int *n_keep, const char *name, int n_dims,
                      const int64_t *shape, int64_t fan_in, float base) {
  size_t e = 1;
  for (int i = 0; i < n_dims; i++) e *= (size_t)shape[i];
  uint16_t *d = malloc(e * sizeof *d);
  if (!d) return sc_error_setc(SC_ERR_NOMEM, "%s: out of memory", name);
  keep[(*n_keep)++] = d; /* st_writer keeps pointers until it writes */
  fill_bf16(d, e, 1000 + (uint64_t)*n_keep, fan_in ? 1.7320508f / sqrtf((float)fan_in) : 0.0f, base);
  return st_writer_add(w, name, SC_DTYPE_BF16, n_dims, shape, d, e * sizeof *d);
}

static int add_mat(st_writer *w, uint16_t **keep, int *nk, const char *pfx, const char *name,
                   int64_t rows, int64_t cols) {
  char full[160];
  snprintf(full, sizeof full, "%s%s", pfx, name);
  int64_t shape[2] = {rows, cols};
  return add_tensor(w, keep, nk, full, 2, shape, cols, 0.0f);
}

static int add_vec(st_writer *w, uint16_t **keep, int *nk, const char *pfx, const char *name,
                   int64_t n, float base) {
  char full[160];
  snprintf(full, sizeof full, "%s%s", pfx, name);
  return add_tensor(w, keep, nk, full, 1, &n, 0, base);
}

static int add_layer(st_writer *w, uint16_t **keep, int *nk, int l) {
  char p[96];
  snprintf(p, sizeof p, PFX "encoder.layers.%d.", l);
  static const char *const attn[] = {"q_proj", "k_proj", "v_proj", "out_proj"};
  int rc = add_vec(w, keep, nk, p, "layer_norm1.weight", HIDDEN, 1.0f);
  if (!rc) rc = add_vec(w, keep, nk, p, "layer_norm1.bias", HIDDEN, 0.0f);
  for (int i = 0; !rc && i < 4; i++) {
    char n[64];
    snprintf(n, sizeof n, "self_attn.%s.weight", attn[i]);
    rc = add_mat(w, keep, nk, p, n, HIDDEN, HIDDEN);
    snprintf(n, sizeof n, "self_attn.%s.bias", attn[i]);
    if (!rc) rc = add_vec(w, keep, nk, p, n, HIDDEN, 0.01f);
  }
  if (!rc) rc = add_vec(w, keep, nk, p, "layer_norm2.weight", HIDDEN, 1.0f);
  if (!rc) rc = add_vec(w, keep, nk, p, "layer_norm2.bias", HIDDEN, 0.0f);
  if (!rc) rc = add_mat(w, keep, nk, p, "mlp.fc1.weight", FF, HIDDEN);
  if (!rc) rc = add_vec(w, keep, nk, p, "mlp.fc1.bias", FF, 0.01f);
  if (!rc) rc = add_mat(w, keep, nk, p, "mlp.fc2.weight", HIDDEN, FF);
  if (!rc) rc = add_vec(w, keep, nk, p, "mlp.fc2.bias", HIDDEN, 0.01f);
  return rc;
}

/* Writes a vision + projector checkpoint with n_layers layers to path. */
static int write_checkpoint(const char *path, int n_layers) {
  uint16_t *keep[64] = {NULL};
  int nk = 0;
  st_writer *w = NULL;
  int64_t conv[4] = {HIDDEN, 3, PATCH, PATCH};
  int rc = st_writer_create(&w);
  if (!rc) rc = add_tensor(w, keep, &nk, PFX "embeddings.patch_embedding.weight", 4, conv, 3 * PATCH * PATCH, 0.0f);
  if (!rc) rc = add_vec(w, keep, &nk, PFX, "embeddings.patch_embedding.bias", HIDDEN, 0.0f);
  if (!rc) rc = add_mat(w, keep, &nk, PFX, "embeddings.position_embedding.weight", N_PATCHES, HIDDEN);
  for (int l = 0; !rc && l < n_layers; l++) rc = add_layer(w, keep, &nk, l);
  if (!rc) rc = add_vec(w, keep, &nk, PFX, "post_layernorm.weight", HIDDEN, 1.0f);
  if (!rc) rc = add_vec(w, keep, &nk, PFX, "post_layernorm.bias", HIDDEN, 0.0f);
  if (!rc) rc = add_mat(w, keep, &nk, PROJ, "mm_input_projection_weight", HIDDEN, TEXT_HIDDEN);
  if (!rc) rc = add_vec(w, keep, &nk, PROJ, "mm_soft_emb_norm.weight", HIDDEN, 0.0f);
  if (!rc) rc = st_writer_write(w, path);
  st_writer_free(w);
  for (int i = 0; i < nk; i++) free(keep[i]);
  return rc;
}

/* The config of the checkpoint: only the fields g3_vision reads. */
static g3_config make_config(int n_layers) {
  g3_config c;
  memset(&c, 0, sizeof c);
  snprintf(c.model_type, sizeof c.model_type, "gemma3");
  snprintf(c.dtype, sizeof c.dtype, "bfloat16");
  c.has_vision = 1;
  c.text.hidden_size = TEXT_HIDDEN;
  c.vision = (g3_vision_config){.hidden_size = HIDDEN, .intermediate_size = FF,
                                .num_hidden_layers = n_layers, .num_attention_heads = HEADS,
                                .num_channels = 3, .image_size = IMAGE, .patch_size = PATCH,
                                .layer_norm_eps = 1e-6, .patches_per_side = GRID};
  c.mm_tokens_per_image = MM_TOKENS;
  c.mm_tokens_per_side = 16;
  c.mm_pool_kernel = GRID / 16;
  return c;
}

/* ==== Figures ============================================================ */

/* FLOPs of one layer over n patches: six projections, q·kᵀ and P·v. */
static double layer_flop(double n) {
  return 2.0 * n * (4.0 * HIDDEN * HIDDEN + 2.0 * HIDDEN * FF) + 4.0 * n * n * HIDDEN;
}

/* OpenBLAS sgemm GFLOP/s on the fc1 shape, f32 weights [N, K]. */
static bench_stat bench_sgemm(int runs) { return bench_sgemm_peak(N_PATCHES, FF, HIDDEN, runs); }

typedef struct bench_ctx {
  st_checkpoint *ck;
  g3_vision *v;
  float *pixels, *out, *embeds;
  float *out_f32, *embeds_f32; /* the f32 results, for the bf16 NMSE */
  int runs;
} bench_ctx;

/* Hook: when each layer ended. */
static int stamp(void *user, int layer, const float *x, int64_t n, int hidden) {
  (void)x, (void)n, (void)hidden;
  ((double *)user)[layer] = bench_now();
  return 0;
}

typedef struct prec_figs {
  bench_stat layer[N_LAYERS]; /* seconds */
  bench_stat tail, total;
} prec_figs;

/* runs forwards (after one warm-up) in precision p, split by the hook. */
static int bench_precision(bench_ctx *c, sc_precision p, prec_figs *f) {
  double lt[N_LAYERS][MAX_RUNS], tail[MAX_RUNS], tot[MAX_RUNS], st[N_LAYERS];
  c->v->precision = p;
  int rc = 0;
  for (int r = -1; !rc && r < c->runs; r++) {
    double t0 = bench_now();
    rc = g3_vision_forward_hook(c->v, c->pixels, c->out, c->embeds, stamp, st);
    double t1 = bench_now();
    if (r < 0) continue;
    for (int l = 0; l < N_LAYERS; l++) lt[l][r] = st[l] - (l ? st[l - 1] : t0);
    tail[r] = t1 - st[N_LAYERS - 1];
    tot[r] = t1 - t0;
  }
  if (rc) return rc;
  for (int l = 0; l < N_LAYERS; l++) f->layer[l] = bench_summarize(lt[l], c->runs);
  f->tail = bench_summarize(tail, c->runs);
  f->total = bench_summarize(tot, c->runs);
  print_load(p == SC_PRECISION_F32 ? "after f32" : "after bf16");
  return 0;
}

static void print_row(const char *who, int n, double sec_min, double sec_med, const char *note) {
  printf("  %-30s %5d  %7.3f / %7.3f   %7.1f / %7.1f   %s\n", who, n, 1.0 / sec_min, 1.0 / sec_med,
         layer_flop(n) / sec_min * 1e-9, layer_flop(n) / sec_med * 1e-9, note);
}

/* The torch script's figures per dtype: patches timed, seconds. */
typedef struct torch_figs {
  int ok, n[2];
  bench_stat s[2];
} torch_figs;

static void run_torch(int threads, int runs, torch_figs *tf) {
  memset(tf, 0, sizeof *tf);
  if (system("/usr/bin/python3 -c 'import torch' >/dev/null 2>&1") != 0) return;
  char cmd[512], line[256];
  snprintf(cmd, sizeof cmd, "/usr/bin/python3 %s --threads %d --runs %d --patches %d --budget-s %.1f",
           TORCH_SCRIPT, threads, runs, N_PATCHES, TORCH_BUDGET_S);
  FILE *p = popen(cmd, "r");
  while (p && fgets(line, sizeof line, p)) {
    char dt[8], kind[16];
    int n;
    double mn, md;
    if (sscanf(line, "%7s %15s %d %lf %lf", dt, kind, &n, &mn, &md) != 5) continue;
    int d = !strcmp(dt, "bf16");
    tf->s[d] = (bench_stat){mn, md};
    tf->n[d] = n;
    tf->ok = 1;
  }
  if (p) pclose(p);
}

static void print_torch(const torch_figs *tf) {
  for (int d = 0; d < 2; d++) {
    const char *who = d ? "torch layer bf16" : "torch layer f32";
    if (tf->n[d] == N_PATCHES) {
      print_row(who, N_PATCHES, tf->s[d].min, tf->s[d].med, "");
      continue;
    }
    /* Timed over fewer patches (budget): images/s scaled by FLOPs. */
    double k = layer_flop(N_PATCHES) / layer_flop(tf->n[d]);
    char note[96];
    snprintf(note, sizeof note, "(timed at %d patches, capped at %.0f s/run; images/s scaled)", tf->n[d],
             TORCH_BUDGET_S);
    printf("  %-30s %5d  %7.4f / %7.4f   %7.1f / %7.1f   %s\n", who, N_PATCHES, 1.0 / (tf->s[d].min * k),
           1.0 / (tf->s[d].med * k), layer_flop(tf->n[d]) / tf->s[d].min * 1e-9,
           layer_flop(tf->n[d]) / tf->s[d].med * 1e-9, note);
  }
}

static void print_tables(const prec_figs f[2], const torch_figs *tf) {
  printf("\nper layer, one image            patches  images/s (best / med)   GFLOP/s (best / med)\n");
  for (int p = 0; p < 2; p++) {
    print_row(p ? "layer 1 bf16" : "layer 1 f32", N_PATCHES, f[p].layer[1].min, f[p].layer[1].med, "");
    print_row(p ? "layer 0 bf16" : "layer 0 f32", N_PATCHES, f[p].layer[0].min, f[p].layer[0].med,
              "(+ scratch, patch embedding)");
  }
  if (tf->ok) print_torch(tf);
  else printf("\nPyTorch baseline: python3-torch not installed (scripts/install-deps.sh --bench installs it)\n");
  for (int p = 0; p < 2; p++)
    printf("  %s: whole forward (2 layers + projector) %.3f / %.3f s; tail (post-LN, pool, projector) "
           "%.4f / %.4f s\n", p ? "bf16" : "f32", f[p].total.min, f[p].total.med, f[p].tail.min, f[p].tail.med);
}

static int keep_f32(bench_ctx *c) {
  size_t no = (size_t)N_PATCHES * HIDDEN, ne = (size_t)MM_TOKENS * TEXT_HIDDEN;
  c->out_f32 = malloc(no * sizeof(float));
  c->embeds_f32 = malloc(ne * sizeof(float));
  if (!c->out_f32 || !c->embeds_f32) return sc_error_setc(SC_ERR_NOMEM, "bench: out of memory");
  memcpy(c->out_f32, c->out, no * sizeof(float));
  memcpy(c->embeds_f32, c->embeds, ne * sizeof(float));
  return 0;
}

static double nmse(const float *a, const float *ref, size_t n) {
  double num = 0, den = 0;
  for (size_t i = 0; i < n; i++) {
    double d = (double)a[i] - ref[i];
    num += d * d;
    den += (double)ref[i] * ref[i];
  }
  return den > 0 ? num / den : 0;
}

/* How far bf16 lands from f32 at these widths (random weights). */
static void print_nmse(const bench_ctx *c) {
  printf("bf16 vs f32 NMSE at these widths: vision_out %.3g, image_embeds %.3g\n",
         nmse(c->out, c->out_f32, (size_t)N_PATCHES * HIDDEN),
         nmse(c->embeds, c->embeds_f32, (size_t)MM_TOKENS * TEXT_HIDDEN));
}

/* ==== Main =============================================================== */

static int setup(bench_ctx *c, const char *dir) {
  double t0 = bench_now();
  char *path = sc_path_join(dir, "vision.safetensors");
  g3_config cfg = make_config(N_LAYERS);
  int rc = path ? write_checkpoint(path, N_LAYERS) : sc_error_setc(SC_ERR_NOMEM, "out of memory");
  if (!rc) rc = st_checkpoint_open(&c->ck, path);
  if (!rc) rc = g3_vision_load(&c->v, c->ck, &cfg, dir);
  if (path) unlink(path); /* the mapping stays valid */
  free(path);
  if (!rc) printf("checkpoint: 2 layers, SigLIP-so400m widths, bf16, written in %.1f s\n", bench_now() - t0);
  size_t np = (size_t)3 * IMAGE * IMAGE;
  c->pixels = malloc(np * sizeof(float));
  c->out = malloc((size_t)N_PATCHES * HIDDEN * sizeof(float));
  c->embeds = malloc((size_t)MM_TOKENS * TEXT_HIDDEN * sizeof(float));
  if (!rc && (!c->pixels || !c->out || !c->embeds)) rc = sc_error_setc(SC_ERR_NOMEM, "bench: out of memory");
  for (size_t i = 0; !rc && i < np; i++) c->pixels[i] = (float)((i * 7919) % 255) / 127.5f - 1.0f;
  return rc;
}

int main(int argc, char **argv) {
  bench_ctx c = {0};
  setvbuf(stdout, NULL, _IOLBF, 0); /* figures appear as they are measured */
  c.runs = argc > 1 ? atoi(argv[1]) : RUNS_DEFAULT;
  if (c.runs < 1 || c.runs > MAX_RUNS) c.runs = RUNS_DEFAULT;
  sc_kernels_set_threads(argc > 2 ? atoi(argv[2]) : 0);
  int threads = sc_kernels_threads();
  const char *wait = getenv("OMP_WAIT_POLICY");
  printf("bench_vision: %d threads, %d runs, OMP_WAIT_POLICY=%s\n", threads, c.runs, wait ? wait : "(unset)");
  print_load("at start");
  bench_stat sg = bench_sgemm(c.runs);
  printf("OpenBLAS sgemm peak (M %d, N %d, K %d, f32): %.1f / %.1f GFLOP/s\n", N_PATCHES, FF, HIDDEN, sg.min, sg.med);
  const char *tmp = getenv("TMPDIR");
  char dir[512];
  snprintf(dir, sizeof dir, "%s/saecap-bench-vision-XXXXXX", tmp && *tmp ? tmp : "/tmp");
  if (!mkdtemp(dir)) {
    fprintf(stderr, "bench_vision: cannot create a folder under %s\n", tmp ? tmp : "/tmp");
    return 1;
  }
  prec_figs f[2];
  int rc = setup(&c, dir);
  rmdir(dir);
  if (!rc) rc = bench_precision(&c, SC_PRECISION_F32, &f[0]);
  if (!rc) rc = keep_f32(&c);
  if (!rc) rc = bench_precision(&c, SC_PRECISION_BF16, &f[1]);
  if (!rc) print_nmse(&c);
  if (!rc) {
    sc_gemm *g = NULL;
    if (!sc_gemm_create(&g, SC_GEMM_BACKEND_AUTO, 0)) printf("bf16 GEMM backend: %s\n", sc_gemm_describe(g));
    sc_gemm_free(g);
    torch_figs tf;
    run_torch(threads, c.runs, &tf);
    if (tf.ok) print_load("after torch");
    print_tables(f, &tf);
  } else {
    fprintf(stderr, "bench_vision: %s\n", sc_error_get());
  }
  g3_vision_free(c.v);
  st_checkpoint_free(c.ck);
  free(c.pixels);
  free(c.out);
  free(c.embeds);
  free(c.out_f32);
  free(c.embeds_f32);
  return rc ? 1 : 0;
}
