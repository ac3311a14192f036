/* bench_decoder.c: speed and memory of the Gemma-3 text decoder at 4B widths.
 *
 * Writes a random 2-layer checkpoint with Gemma-3-4B widths (hidden 2560,
 * 8 query heads and 4 KV heads of 256, MLP 10240, vocab 262208, tied
 * embedding; layer 0 sliding, layer 1 global; BF16, 1.7 GB) into a temporary
 * folder (deleted at the end), loads it with g3_model_load (mmapped) and
 * times, per decoder layer and in both precisions (f32: tensor/sgemm.h's
 * AVX2 GEMM, which widens the bf16 weights while packing them, or OpenBLAS
 * on panels of widened weights without AVX2; bf16: sc_gemm, see the backend
 * line):
 *   prefill  T = 512 tokens in one forward: tokens/s and GFLOP/s (the seven
 *            projections plus the causal q·kᵀ and P·v products);
 *   decode   one token after the 512-token prefill: tokens/s, and the bytes
 *            of that layer's weights read per second, next to the memory
 *            read bandwidth measured in the same run;
 * plus the sgemm peak on the gate/up shape (M 512, N 10240, K 2560, f32
 * weights) in the same run, of OpenBLAS and of sgemm.h, one full decode step with the LM head (which reads
 * the 1.3 GB embedding per token), and the anonymous memory of the process
 * (RssAnon: RSS minus file-mapped pages, i.e. what saecap allocated) next to
 * the weight bytes plus the KV cache. Layer times come from the edit hook,
 * which g3_forward calls after each layer. Every figure is the best and the
 * median of RUNS runs (decode: of every step of every run). Nothing is
 * asserted.
 *
 * Noise: on a 2-core machine every other runnable process stalls the
 * OpenMP barriers (a decode layer has ~15 parallel regions, each waiting
 * for a descheduled thread while its partner spins): decode then runs 4-5x
 * slower. The header prints the load average and OMP_WAIT_POLICY; run it on
 * an idle machine, or compare with THREADS 1. Like `saecap` (cli/main.c),
 * the bench re-executes itself with OMP_WAIT_POLICY=passive unless the
 * variable is set, so it measures what the CLI runs; the PyTorch baseline
 * runs with the variable as it was (unset: libgomp's default).
 *
 * PyTorch baseline: bench/reference/decoder_layer_torch.py runs the same
 * layer (same shapes, threads, T and decode length) in f32 and bf16 when
 * /usr/bin/python3 has torch; its figures are printed beside.
 *
 * Built by CMake (bench/bench_*.c); `make bench` runs it from the
 * repository root; by hand: ./build/bench_decoder [RUNS [THREADS]]
 * (defaults 3 and the OpenMP default, i.e. all cores). TMPDIR picks the
 * folder for the checkpoint (needs 1.8 GB).
 */
#include <cblas.h>
#include <immintrin.h>
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
#include "model/decoder.h"
#include "tensor/dtype.h"
#include "tensor/gemm.h"
#include "tensor/kernels.h"
#include "tensor/sgemm.h"

#define RUNS_DEFAULT 3
#define MAX_RUNS 64
#define T_PREFILL 512
#define N_DECODE 16
#define N_LAYERS 2
#define HIDDEN 2560
#define HEADS 8
#define KV_HEADS 4
#define HEAD_DIM 256
#define FF 10240
#define VOCAB 262208
#define BW_BYTES ((size_t)1 << 30)
#define TORCH_SCRIPT "bench/reference/decoder_layer_torch.py"

static const char CONFIG_JSON[] =
    "{\"model_type\": \"gemma3_text\", \"torch_dtype\": \"bfloat16\", \"vocab_size\": 262208,\n"
    " \"hidden_size\": 2560, \"intermediate_size\": 10240, \"num_hidden_layers\": 2,\n"
    " \"num_attention_heads\": 8, \"num_key_value_heads\": 4, \"head_dim\": 256,\n"
    " \"query_pre_attn_scalar\": 256, \"sliding_window\": 1024, \"rms_norm_eps\": 1e-6,\n"
    " \"layer_types\": [\"sliding_attention\", \"full_attention\"],\n"
    " \"rope_theta\": 1000000.0, \"rope_local_base_freq\": 10000.0,\n"
    " \"rope_scaling\": {\"rope_type\": \"linear\", \"factor\": 8.0}}\n";

/* ==== The checkpoint ==================================================== */

/* Uniform bf16 values in [-amp, amp) from a counter hash (splitmix64), in
 * parallel: which thread fills which element does not change the values. */
static void fill_bf16(uint16_t *dst, size_t n, uint64_t seed, float amp) {
#pragma omp parallel for schedule(static)
  for (size_t i = 0; i < n; i++) {
    uint64_t z = seed + (uint64_t)i * 0x9E3779B97F4A7C15ull;
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    z ^= z >> 31;
    float u = (float)(z >> 40) * (1.0f / 16777216.0f); /* [0, 1) */
    dst[i] = sc_bf16_from_f32((2.0f * u - 1.0f) * amp);
  }
}

typedef struct ckpt_tensor {
  char name[96];
  int64_t shape[2];
  int n_dims;
  uint16_t *data;
} ckpt_tensor;

/* The 13 tensors of layer l: 7 matrices and 6 norm vectors (zero: the
 * norms multiply by 1 + w). Returns how many it filled in. */
static int layer_tensors(ckpt_tensor *t, int l) {
  static const struct { const char *suffix; int64_t rows, cols; } L[] = {
      {"input_layernorm.weight", HIDDEN, 0}, {"self_attn.q_proj.weight", HEADS * HEAD_DIM, HIDDEN},
      {"self_attn.k_proj.weight", KV_HEADS * HEAD_DIM, HIDDEN},
      {"self_attn.v_proj.weight", KV_HEADS * HEAD_DIM, HIDDEN},
      {"self_attn.o_proj.weight", HIDDEN, HEADS * HEAD_DIM}, {"self_attn.q_norm.weight", HEAD_DIM, 0},
      {"self_attn.k_norm.weight", HEAD_DIM, 0}, {"post_attention_layernorm.weight", HIDDEN, 0},
      {"pre_feedforward_layernorm.weight", HIDDEN, 0}, {"mlp.gate_proj.weight", FF, HIDDEN},
      {"mlp.up_proj.weight", FF, HIDDEN}, {"mlp.down_proj.weight", HIDDEN, FF},
      {"post_feedforward_layernorm.weight", HIDDEN, 0}};
  int n = (int)(sizeof L / sizeof L[0]);
  for (int i = 0; i < n; i++) {
    snprintf(t[i].name, sizeof t[i].name, "model.layers.%d.%s", l, L[i].suffix);
    t[i].shape[0] = L[i].rows;
    t[i].shape[1] = L[i].cols;
    t[i].n_dims = L[i].cols ? 2 : 1;
  }
  return n;
}

static size_t tensor_elems(const ckpt_tensor *t) {
  return (size_t)t->shape[0] * (size_t)(t->n_dims == 2 ? t->shape[1] : 1);
}

/* Fills the tensors (matrices: uniform with variance 1/cols, so activations
 * stay O(1); embedding: amplitude 0.05; vectors zero), writes them as one
 * model.safetensors and frees the buffers. */
static int write_weights(const char *dir, ckpt_tensor *t, int n) {
  st_writer *w = NULL;
  int rc = st_writer_create(&w);
  for (int i = 0; !rc && i < n; i++) {
    size_t e = tensor_elems(&t[i]);
    if (!(t[i].data = malloc(e * sizeof(uint16_t)))) rc = sc_error_setc(SC_ERR_NOMEM, "%s: out of memory", t[i].name);
    else if (t[i].n_dims == 1) memset(t[i].data, 0, e * sizeof(uint16_t));
    else fill_bf16(t[i].data, e, 1000 + (uint64_t)i, i == 0 ? 0.05f : 1.7320508f / sqrtf((float)t[i].shape[1]));
    if (!rc) rc = st_writer_add(w, t[i].name, SC_DTYPE_BF16, t[i].n_dims, t[i].shape, t[i].data, e * 2);
  }
  char *path = rc ? NULL : sc_path_join(dir, "model.safetensors");
  if (!rc) rc = path ? st_writer_write(w, path) : SC_ERR_NOMEM;
  free(path);
  st_writer_free(w);
  for (int i = 0; i < n; i++) free(t[i].data);
  return rc;
}

static int write_checkpoint(const char *dir) {
  ckpt_tensor t[2 + 13 * N_LAYERS];
  memset(t, 0, sizeof t);
  snprintf(t[0].name, sizeof t[0].name, "model.embed_tokens.weight");
  t[0].shape[0] = VOCAB, t[0].shape[1] = HIDDEN, t[0].n_dims = 2;
  snprintf(t[1].name, sizeof t[1].name, "model.norm.weight");
  t[1].shape[0] = HIDDEN, t[1].n_dims = 1;
  int n = 2;
  for (int l = 0; l < N_LAYERS; l++) n += layer_tensors(t + n, l);
  char *cfg = sc_path_join(dir, "config.json");
  int rc = cfg ? sc_write_file_atomic(cfg, CONFIG_JSON, sizeof CONFIG_JSON - 1) : SC_ERR_NOMEM;
  free(cfg);
  return rc ? rc : write_weights(dir, t, n);
}

/* ==== Baselines: memory read bandwidth, sgemm peak ======================= */

/* XOR of every 32-byte block of buf[lo, hi): the loads, nothing else. */
__attribute__((target("avx2"))) static uint64_t read_range(const uint64_t *buf, size_t lo, size_t hi) {
  __m256i a = _mm256_setzero_si256(), b = a, c = a, d = a;
  size_t i = lo;
  for (; i + 16 <= hi; i += 16) {
    a = _mm256_xor_si256(a, _mm256_loadu_si256((const __m256i *)(buf + i)));
    b = _mm256_xor_si256(b, _mm256_loadu_si256((const __m256i *)(buf + i + 4)));
    c = _mm256_xor_si256(c, _mm256_loadu_si256((const __m256i *)(buf + i + 8)));
    d = _mm256_xor_si256(d, _mm256_loadu_si256((const __m256i *)(buf + i + 12)));
  }
  uint64_t v[4], r = 0;
  _mm256_storeu_si256((__m256i *)v, _mm256_xor_si256(_mm256_xor_si256(a, b), _mm256_xor_si256(c, d)));
  for (; i < hi; i++) r ^= buf[i];
  return r ^ v[0] ^ v[1] ^ v[2] ^ v[3];
}

/* Read bandwidth in GB/s over BW_BYTES (32x the L3), all threads. */
static bench_stat bench_read_bw(int runs) {
  size_t n = BW_BYTES / 8;
  uint64_t *buf = malloc(BW_BYTES), sink = 0;
  double t[MAX_RUNS];
  if (!buf || !__builtin_cpu_supports("avx2")) {
    free(buf);
    return (bench_stat){0, 0};
  }
  for (size_t i = 0; i < n; i++) buf[i] = i;
  for (int r = 0; r < runs; r++) {
    double t0 = bench_now();
#pragma omp parallel reduction(^ : sink)
    {
      size_t nt = (size_t)omp_get_num_threads(), k = (size_t)omp_get_thread_num();
      sink ^= read_range(buf, n * k / nt, n * (k + 1) / nt);
    }
    t[r] = bench_now() - t0;
  }
  free(buf);
  if (sink == 42) puts("");
  bench_stat s = bench_summarize(t, runs);
  return (bench_stat){BW_BYTES / s.min * 1e-9, BW_BYTES / s.med * 1e-9};
}

/* OpenBLAS sgemm GFLOP/s on the gate/up shape, f32 weights [N, K]. */
static bench_stat bench_sgemm(int runs) { return bench_sgemm_peak(T_PREFILL, FF, HIDDEN, runs); }

/* ==== The decoder ======================================================== */

/* Edit hook that only records when each layer ended. */
typedef struct stamps {
  double t[N_LAYERS];
} stamps;

static int stamp(void *user, int layer, float *resid, const int32_t *pos, int64_t n, int hidden) {
  (void)resid, (void)pos, (void)n, (void)hidden;
  ((stamps *)user)->t[layer] = bench_now();
  return 0;
}

typedef struct bench_ctx {
  g3_model *m;
  g3_state *s;
  int32_t ids[T_PREFILL + N_DECODE];
  float *resid;  /* (T_PREFILL, hidden): the last layer's output (no logits, no head GEMM) */
  float *logits; /* (vocab) */
  int runs;
} bench_ctx;

/* One forward of n tokens; per-layer seconds into dt[N_LAYERS] (layer 0
 * includes the embedding lookup and RoPE tables). */
static int timed_forward(bench_ctx *c, const int32_t *ids, int64_t n, int with_logits, double *dt,
                         double *total) {
  stamps st = {{0}};
  float *slots[N_LAYERS] = {NULL};
  slots[N_LAYERS - 1] = c->resid;
  g3_forward_io io = {.ids = ids, .n = n, .resid_post = slots, .edit = stamp, .edit_user = &st};
  if (with_logits) io.logits = c->logits, io.logits_last = 1;
  double t0 = bench_now();
  int rc = g3_forward(c->m, c->s, &io);
  double t1 = bench_now();
  for (int l = 0; l < N_LAYERS; l++) dt[l] = st.t[l] - (l ? st.t[l - 1] : t0);
  *total = t1 - t0;
  return rc;
}

typedef struct layer_figs {
  bench_stat prefill[N_LAYERS]; /* seconds */
  bench_stat decode[N_LAYERS];  /* seconds per token */
  bench_stat step;              /* a whole decode step with the LM head */
} layer_figs;

/* runs x (reset, prefill T, N_DECODE decode steps); the last step of each
 * run also computes the logits (the LM head). */
static int bench_precision(bench_ctx *c, sc_precision p, layer_figs *f) {
  double pre[N_LAYERS][MAX_RUNS], dec[N_LAYERS][MAX_RUNS * N_DECODE], step[MAX_RUNS], dt[N_LAYERS], tot;
  int rc = g3_state_set_precision(c->s, p), nd = 0;
  for (int r = -1; !rc && r < c->runs; r++) { /* r = -1 warms up (builds primitives, faults pages) */
    g3_state_reset(c->s);
    rc = timed_forward(c, c->ids, T_PREFILL, 0, dt, &tot);
    for (int l = 0; r >= 0 && l < N_LAYERS; l++) pre[l][r] = dt[l];
    for (int k = 0; !rc && k < N_DECODE; k++) {
      int last = k == N_DECODE - 1;
      rc = timed_forward(c, c->ids + T_PREFILL + k, 1, last, dt, &tot);
      if (r < 0) continue;
      if (last) step[r] = tot;
      else
        for (int l = 0; l < N_LAYERS; l++) dec[l][nd] = dt[l];
      nd += !last;
    }
  }
  for (int l = 0; !rc && l < N_LAYERS; l++) {
    f->prefill[l] = bench_summarize(pre[l], c->runs);
    f->decode[l] = bench_summarize(dec[l], nd);
  }
  if (!rc) f->step = bench_summarize(step, c->runs);
  return rc;
}

/* ==== Figures ============================================================ */

/* Weights of one layer's seven projections (elements). */
static double layer_params(void) {
  return (double)HIDDEN * (HEADS + 2 * KV_HEADS) * HEAD_DIM + (double)HEADS * HEAD_DIM * HIDDEN +
         3.0 * HIDDEN * FF;
}

/* FLOPs of one layer over a T-token prefill from position 0: the
 * projections plus causal q·kᵀ and P·v (query t sees t + 1 keys). */
static double prefill_flop(int T) {
  return 2.0 * T * layer_params() + 4.0 * HEADS * HEAD_DIM * (double)T * (T + 1) / 2.0;
}

static void print_prefill(const char *who, int T, bench_stat s) {
  printf("  %-22s %4d  %8.1f / %8.1f   %7.1f / %7.1f\n", who, T, T / s.min, T / s.med,
         prefill_flop(T) / s.min * 1e-9, prefill_flop(T) / s.med * 1e-9);
}

static void print_decode(const char *who, bench_stat s, double read_gbs) {
  double bytes = 2.0 * layer_params(), bw = bytes / s.min * 1e-9;
  printf("  %-22s %8.2f / %8.2f   %6.2f / %6.2f   %4.0f%%\n", who, 1.0 / s.min, 1.0 / s.med, bw,
         bytes / s.med * 1e-9, read_gbs > 0 ? 100.0 * bw / read_gbs : 0.0);
}

/* The torch script's figures: [dtype][0 prefill, 1 decode], with prefill's T. */
typedef struct torch_figs {
  int ok, T[2];
  bench_stat s[2][2];
} torch_figs;

static void run_torch(int threads, int runs, torch_figs *tf) {
  memset(tf, 0, sizeof *tf);
  if (system("/usr/bin/python3 -c 'import torch' >/dev/null 2>&1") != 0) return;
  char cmd[512], line[256];
  /* PyTorch gets the caller's OpenMP wait policy, not the one set for us. */
  const char *own = getenv("SAECAP_BENCH_OWN_WAIT");
  snprintf(cmd, sizeof cmd, "%s/usr/bin/python3 %s --threads %d --runs %d --T %d --decode %d",
           own ? "env -u OMP_WAIT_POLICY " : "", TORCH_SCRIPT, threads, runs, T_PREFILL, N_DECODE / 2);
  FILE *p = popen(cmd, "r");
  while (p && fgets(line, sizeof line, p)) {
    char dt[8], kind[16];
    int T;
    double mn, md;
    if (sscanf(line, "%7s %15s %d %lf %lf", dt, kind, &T, &mn, &md) != 5) continue;
    int d = !strcmp(dt, "bf16"), k = !strcmp(kind, "decode");
    tf->s[d][k] = (bench_stat){mn, md};
    if (!k) tf->T[d] = T;
    tf->ok = 1;
  }
  if (p) pclose(p);
}

/* kB value of a "Key:" line of /proc/self/status (0 if absent). */
static double status_mib(const char *key) {
  FILE *f = fopen("/proc/self/status", "r");
  char line[256];
  double v = 0;
  size_t n = strlen(key);
  while (f && fgets(line, sizeof line, f))
    if (!strncmp(line, key, n)) v = atof(line + n) / 1024.0;
  if (f) fclose(f);
  return v;
}

static void print_memory(void) {
  double weights = ((double)VOCAB * HIDDEN + N_LAYERS * layer_params()) * 2.0 / 1048576.0;
  /* The state caches T + N_DECODE positions per layer (window 1024 > that). */
  double kv = 2.0 * N_LAYERS * (T_PREFILL + N_DECODE) * KV_HEADS * HEAD_DIM * 4.0 / 1048576.0;
  double anon = status_mib("RssAnon:");
  printf("\nmemory: RssAnon (RSS minus mapped weights) %.1f MiB; RssFile %.1f MiB; peak RSS %.1f MiB\n",
         anon, status_mib("RssFile:"), status_mib("VmHWM:"));
  printf("  weights %.1f MiB + KV cache %.1f MiB (f32) = %.1f MiB; anonymous = %.1f%% of that "
         "(goal <= 10%%)\n", weights, kv, weights + kv, 100.0 * anon / (weights + kv));
}

/* ==== Main =============================================================== */

static void remove_checkpoint(const char *dir) {
  const char *names[] = {"config.json", "model.safetensors"};
  for (int i = 0; i < 2; i++) {
    char *p = sc_path_join(dir, names[i]);
    if (p) unlink(p);
    free(p);
  }
  rmdir(dir);
}

static void print_tables(const layer_figs f[2], const torch_figs *tf, bench_stat bw) {
  static const char *kinds[N_LAYERS] = {"sliding", "global"};
  char who[64];
  printf("\nprefill, per layer (best / median)    T    tokens/s (best / med)   GFLOP/s (best / med)\n");
  for (int l = 0; l < N_LAYERS; l++)
    for (int p = 0; p < 2; p++) {
      snprintf(who, sizeof who, "layer %d %s %s", l, kinds[l], p ? "bf16" : "f32");
      print_prefill(who, T_PREFILL, f[p].prefill[l]);
    }
  for (int d = 0; tf->ok && d < 2; d++)
    print_prefill(d ? "torch layer bf16" : "torch layer f32", tf->T[d], tf->s[d][0]);
  printf("\ndecode at position %d, per layer        tokens/s (best / med)   weights GB/s (best / med)  "
         "of read bw %.1f GB/s\n", T_PREFILL, bw.min);
  for (int l = 0; l < N_LAYERS; l++)
    for (int p = 0; p < 2; p++) {
      snprintf(who, sizeof who, "layer %d %s %s", l, kinds[l], p ? "bf16" : "f32");
      print_decode(who, f[p].decode[l], bw.min);
    }
  for (int d = 0; tf->ok && d < 2; d++) /* torch reads f32 weights in f32: twice the bytes */
    print_decode(d ? "torch layer bf16" : "torch layer f32 (x2 B)", tf->s[d][1], bw.min);
  for (int p = 0; p < 2; p++)
    printf("  whole decode step, %s, 2 layers + LM head (1.34 GB): %.2f / %.2f tokens/s\n",
           p ? "bf16" : "f32", 1.0 / f[p].step.min, 1.0 / f[p].step.med);
  if (!tf->ok)
    printf("\nPyTorch baseline: python3-torch not installed (scripts/install-deps.sh --bench installs it)\n");
}

static int setup(bench_ctx *c, const char *dir) {
  double t0 = bench_now();
  int rc = write_checkpoint(dir);
  if (!rc) printf("checkpoint: 2 layers, 4B widths, bf16, written in %.1f s\n", bench_now() - t0);
  if (!rc) rc = g3_model_load(&c->m, dir);
  if (!rc) rc = g3_state_create(&c->s, c->m, T_PREFILL + N_DECODE);
  for (int i = 0; i < T_PREFILL + N_DECODE; i++) c->ids[i] = i ? (int32_t)((i * 7919) % 262144) : 2;
  c->resid = malloc((size_t)T_PREFILL * HIDDEN * sizeof(float));
  c->logits = malloc((size_t)VOCAB * sizeof(float));
  if (!rc && (!c->resid || !c->logits)) rc = sc_error_setc(SC_ERR_NOMEM, "bench: out of memory");
  return rc;
}

int main(int argc, char **argv) {
  bench_ctx c = {0};
  if (!getenv("OMP_WAIT_POLICY") && !setenv("OMP_WAIT_POLICY", "passive", 1) &&
      !setenv("SAECAP_BENCH_OWN_WAIT", "1", 1))
    execv("/proc/self/exe", argv); /* libgomp reads it before main; on failure carry on */
  setvbuf(stdout, NULL, _IOLBF, 0); /* figures appear as they are measured */
  c.runs = argc > 1 ? atoi(argv[1]) : RUNS_DEFAULT;
  if (c.runs < 1 || c.runs > MAX_RUNS) c.runs = RUNS_DEFAULT;
  sc_kernels_set_threads(argc > 2 ? atoi(argv[2]) : 0);
  int threads = sc_kernels_threads();
  char load[64] = "?", dir[512];
  FILE *la = fopen("/proc/loadavg", "r");
  if (la && fgets(load, sizeof load, la)) load[strcspn(load, "\n")] = 0;
  if (la) fclose(la);
  const char *wait = getenv("OMP_WAIT_POLICY");
  printf("bench_decoder: %d threads, %d runs, OMP_WAIT_POLICY=%s%s; load average at start: %s\n", threads,
         c.runs, wait ? wait : "(unset)", getenv("SAECAP_BENCH_OWN_WAIT") ? " (set by the bench, as saecap does; "
         "PyTorch runs with it unset)" : "", load);
  bench_stat bw = bench_read_bw(c.runs), sg = bench_sgemm(c.runs), own = bench_gemm_peak(T_PREFILL, FF, HIDDEN, c.runs, 1);
  printf("memory read bandwidth: %.1f / %.1f GB/s (best / median, %zu MiB)\n", bw.min, bw.med, BW_BYTES >> 20);
  printf("OpenBLAS sgemm peak (M %d, N %d, K %d, f32): %.1f / %.1f GFLOP/s; saecap sc_sgemm (%s): %.1f / %.1f\n",
         T_PREFILL, FF, HIDDEN, sg.min, sg.med, sc_sg_available() ? "sgemm.h" : "OpenBLAS", own.min,
         own.med);
  const char *tmp = getenv("TMPDIR");
  snprintf(dir, sizeof dir, "%s/saecap-bench-decoder-XXXXXX", tmp && *tmp ? tmp : "/tmp");
  if (!mkdtemp(dir)) {
    fprintf(stderr, "bench_decoder: cannot create a folder under %s\n", tmp ? tmp : "/tmp");
    return 1;
  }
  layer_figs f[2];
  int rc = setup(&c, dir);
  if (!rc) rc = bench_precision(&c, SC_PRECISION_F32, &f[0]);
  if (!rc) rc = bench_precision(&c, SC_PRECISION_BF16, &f[1]);
  if (!rc) {
    printf("bf16 GEMM: %s\n", sc_gemm_describe(g3_state_gemm(c.s)));
    print_memory();
    torch_figs tf;
    run_torch(threads, c.runs, &tf);
    print_tables(f, &tf, bw);
  } else {
    fprintf(stderr, "bench_decoder: %s\n", sc_error_get());
  }
  g3_state_free(c.s);
  g3_model_free(c.m);
  free(c.resid);
  free(c.logits);
  remove_checkpoint(dir);
  return rc ? 1 : 0;
}
