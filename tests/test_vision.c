/* test_vision.c: the Gemma-3 vision path (vision tower, projector, image
 * prompts, merged forward, caption).
 *
 * Parity: `saecap caption --dump` on tiny checkpoints (two seeds, both
 * name prefixes, BF16 and F32 weights; 64x64 images in 8x8 patches -> 16
 * soft tokens; a 39-token prompt against a sliding window of 8, so the
 * image block crosses the window) is compared with the independent numpy
 * reference (tests/reference/g3_reference.py forward --image, float64) by
 * compare_dump.py: pixel_values, vision_out, image_embeds, embeds, every
 * resid_post, final_norm and logits. The same dump must FAIL against the
 * reference run with a causal image mask and with the windowed one, so the
 * test notices a wrong mask. Then, through the library: mask properties,
 * prompt structure (spec §5.1), the new kernels against naive loops, and
 * every bad-input path with its one-line message. */
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "base/error.h"
#include "base/rng.h"
#include "io/safetensors.h"
#include "model/caption.h"
#include "model/decoder.h"
#include "model/tokenizer.h"
#include "model/vision.h"
#include "tensor/vkernels.h"
#include "tu.h"

/* max|a-b| / max|ref| against the float64 reference (issue acceptance). */
#define PARITY_TOL 1e-4
/* New kernels against float64 loops, relative to max|ref|. */
#define KERNEL_TOL 1e-5
/* The tiny model: 16 soft tokens per image. */
#define TINY_MM 16

typedef struct fixture {
  char *root, *tok;
  char *m7_old; /* seed 7, old prefix, BF16, 4 layers */
  char *m8_new; /* seed 8, new prefix, BF16, 5 layers */
  char *m9_f32; /* seed 9, new prefix, F32, 3 layers */
  char *img;    /* 70x50 RGB PNG (resized up/down to 64x64) */
} fixture;

static fixture F;

static const char *PROMPT = "Describe this image in detail please, with many words.";

static int setup(void **state) {
  (void)state;
  F.root = tu_tmpdir("vision");
  F.tok = tu_tokenizer_json();
  F.m7_old = tu_join(F.root, "m7_old");
  F.m8_new = tu_join(F.root, "m8_new");
  F.m9_f32 = tu_join(F.root, "m9_f32");
  tu_tiny_model(F.m7_old, "--seed 7 --prefix old");
  tu_tiny_model(F.m8_new, "--seed 8 --prefix new --layers 5");
  tu_tiny_model(F.m9_f32, "--seed 9 --prefix new --layers 3 --dtype f32");
  F.img = tu_join(F.root, "img.png");
  int rc = tu_run(NULL, NULL,
                  "/usr/bin/python3 -c \"import numpy as np; from PIL import Image; "
                  "r = np.random.default_rng(1); "
                  "Image.fromarray((r.random((50, 70, 3)) * 255).astype(np.uint8)).save('%s')\"",
                  F.img);
  assert_int_equal(rc, 0);
  return 0;
}

static int teardown(void **state) {
  (void)state;
  tu_run(NULL, NULL, "rm -rf '%s'", F.root);
  free(F.root);
  free(F.tok);
  free(F.m7_old);
  free(F.m8_new);
  free(F.m9_f32);
  free(F.img);
  return 0;
}

/* ==== Parity with the numpy reference ==== */

/* The "prompt_ids" array of caption --json output as a space-separated
 * string (malloc'd). */
static char *prompt_ids(const char *json) {
  const char *p = strstr(json, "\"prompt_ids\":[");
  assert_non_null(p);
  p += strlen("\"prompt_ids\":[");
  const char *e = strchr(p, ']');
  assert_non_null(e);
  char *s = malloc((size_t)(e - p) + 1);
  for (size_t i = 0; i < (size_t)(e - p); i++) s[i] = p[i] == ',' ? ' ' : p[i];
  s[e - p] = 0;
  return s;
}

/* compare_dump exit status of dump vs the reference with --image-mask mask. */
static int compare(const char *model, const char *tag, const char *ids, const char *dump,
                   const char *mask, char **out) {
  char ref[512];
  char *err = NULL;
  snprintf(ref, sizeof ref, "%s/%s.%s.npz", F.root, tag, mask);
  int rc = tu_run(NULL, &err,
                  "/usr/bin/python3 '%s/tests/reference/g3_reference.py' forward --model '%s' "
                  "--ids '%s' --image '%s' --image-mask %s --out '%s'",
                  tu_src(), model, ids, F.img, mask, ref);
  if (rc) print_error("reference: %s\n", err);
  assert_int_equal(rc, 0);
  free(err);
  return tu_run(out, NULL, "/usr/bin/python3 '%s/tests/reference/compare_dump.py' '%s' '%s' --tol %g",
                tu_src(), dump, ref, PARITY_TOL);
}

static void parity(const char *model, const char *tag) {
  char dump[512];
  char *out = NULL, *err = NULL;
  snprintf(dump, sizeof dump, "%s/%s.safetensors", F.root, tag);
  int rc = tu_run(&out, &err, "'%s' caption --model '%s' --image '%s' --prompt '%s' --json "
                  "--max-new-tokens 3 --dump '%s'", tu_bin(), model, F.img, PROMPT, dump);
  if (rc) print_error("caption: %s\n", err);
  assert_int_equal(rc, 0);
  char *ids = prompt_ids(out);
  free(out);
  free(err);
  rc = compare(model, tag, ids, dump, "or", &out);
  print_message("%s:\n%s", tag, out);
  assert_int_equal(rc, 0);
  const char *keys[] = {"pixel_values ", "vision_out ", "image_embeds ", "embeds ", "resid_post.0 ",
                        "resid_post.2 ", "final_norm ", "logits "};
  for (size_t i = 0; i < sizeof keys / sizeof keys[0]; i++) assert_non_null(strstr(out, keys[i]));
  free(out);
  /* A causal image block or a windowed one must be caught. */
  assert_int_not_equal(compare(model, tag, ids, dump, "causal", NULL), 0);
  assert_int_not_equal(compare(model, tag, ids, dump, "window", NULL), 0);
  free(ids);
}

static void test_parity_seed7_old_bf16(void **state) {
  (void)state;
  parity(F.m7_old, "p7");
}

static void test_parity_seed8_new_bf16(void **state) {
  (void)state;
  parity(F.m8_new, "p8");
}

static void test_parity_seed9_new_f32(void **state) {
  (void)state;
  parity(F.m9_f32, "p9");
}

/* ==== Prompt structure ==== */

static tok_tokenizer *load_tok(void) {
  tok_tokenizer *t = NULL;
  assert_int_equal(tok_load(&t, F.tok), 0);
  return t;
}

/* Spec §5.1: the real 256-token expansion of "Describe this image." */
static void test_prompt_structure_real(void **state) {
  (void)state;
  tok_tokenizer *tok = load_tok();
  g3_config c = {0};
  c.has_vision = 1;
  c.mm_tokens_per_image = 256;
  c.boi_token_id = 255999;
  c.eoi_token_id = 256000;
  c.image_token_id = 262144;
  int32_t *ids = NULL;
  int64_t n = 0;
  assert_int_equal(g3_caption_prompt(tok, &c, "Describe this image.", &ids, &n), 0);
  const int32_t head[] = {2, 105, 2364, 109, 255999};
  const int32_t tail[] = {256000, 108, 82858, 672, 2471, 236761, 106, 107, 105, 4368, 107};
  assert_int_equal(n, 5 + 256 + 11);
  for (int i = 0; i < 5; i++) assert_int_equal(ids[i], head[i]);
  for (int i = 0; i < 256; i++) assert_int_equal(ids[5 + i], 262144);
  for (int i = 0; i < 11; i++) assert_int_equal(ids[261 + i], tail[i]);
  int32_t *group = malloc((size_t)n * sizeof *group);
  assert_int_equal(g3_image_groups(group, ids, n, 262144), 1);
  for (int64_t t = 0; t < n; t++) assert_int_equal(group[t], t >= 5 && t < 261 ? 0 : -1);
  free(group);
  free(ids);
  tok_free(tok);
}

static void test_image_groups_and_check(void **state) {
  (void)state;
  g3_config c = {0};
  c.mm_tokens_per_image = 2;
  c.boi_token_id = 8;
  c.eoi_token_id = 9;
  c.image_token_id = 7;
  int32_t ok[] = {2, 8, 7, 7, 9, 5, 8, 7, 7, 9};
  int32_t g[10];
  const int32_t want[] = {-1, -1, 0, 0, -1, -1, -1, 1, 1, -1};
  assert_int_equal(g3_image_groups(g, ok, 10, 7), 2);
  for (int i = 0; i < 10; i++) assert_int_equal(g[i], want[i]);
  int n_img = -1;
  assert_int_equal(g3_image_prompt_check(&c, ok, 10, &n_img), 0);
  assert_int_equal(n_img, 2);
  int32_t short_run[] = {2, 8, 7, 9};
  assert_int_equal(g3_image_prompt_check(&c, short_run, 4, &n_img), SC_ERR_FORMAT);
  assert_string_equal(sc_error_get(), "prompt: image block 0 has 1 soft tokens, expected 2");
  int32_t no_eoi[] = {2, 8, 7, 7, 5};
  assert_int_equal(g3_image_prompt_check(&c, no_eoi, 5, &n_img), SC_ERR_FORMAT);
  assert_non_null(strstr(sc_error_get(), "image block 0 is not enclosed by <start_of_image> (id 8)"));
  int32_t at_start[] = {7, 7, 9};
  assert_int_equal(g3_image_prompt_check(&c, at_start, 3, &n_img), SC_ERR_FORMAT);
}

/* ==== Mask properties through the library ==== */

typedef struct lib {
  g3_model *m;
  g3_vision *v;
  float *emb; /* (TINY_MM, hidden) */
  int32_t *ids;
  int64_t n;
} lib;

static void lib_open(lib *l, const char *model) {
  memset(l, 0, sizeof *l);
  assert_int_equal(g3_model_load(&l->m, model), 0);
  assert_int_equal(g3_vision_load(&l->v, l->m->ckpt, &l->m->cfg, model), 0);
  size_t np = g3_vision_pixels_floats(l->v);
  float *px = malloc(np * sizeof *px);
  sc_rng r;
  sc_rng_seed(&r, 5);
  for (size_t i = 0; i < np; i++) px[i] = (float)(sc_rng_below(&r, 2001)) / 1000.0f - 1.0f;
  l->emb = malloc(g3_vision_embeds_floats(l->v) * sizeof *l->emb);
  assert_int_equal(g3_vision_forward(l->v, px, NULL, l->emb), 0);
  free(px);
  tok_tokenizer *tok = load_tok();
  assert_int_equal(g3_caption_prompt(tok, &l->m->cfg, PROMPT, &l->ids, &l->n), 0);
  tok_free(tok);
}

static void lib_close(lib *l) {
  g3_vision_free(l->v);
  g3_model_free(l->m);
  free(l->emb);
  free(l->ids);
}

/* resid_post of the last layer for ids with emb (n x hidden, malloc'd). */
static float *last_resid(const lib *l, const int32_t *ids, const float *emb) {
  int last = l->m->cfg.text.num_hidden_layers - 1;
  size_t d = (size_t)l->m->cfg.text.hidden_size;
  float *res[G3_MAX_LAYERS] = {0};
  res[last] = malloc((size_t)l->n * d * sizeof(float));
  g3_state *s = NULL;
  assert_int_equal(g3_state_create(&s, l->m, l->n), 0);
  g3_forward_io io = {.ids = ids, .n = l->n, .resid_post = res};
  assert_int_equal(g3_forward_image(l->m, s, &io, emb, 1), 0);
  g3_state_free(s);
  return res[last];
}

/* Image rows are positions 5 .. 5+TINY_MM-1 (spec §5.1 layout). */
static void test_mask_properties(void **state) {
  (void)state;
  lib l;
  lib_open(&l, F.m7_old);
  size_t d = (size_t)l.m->cfg.text.hidden_size;
  assert_int_equal(l.ids[4], 255999);
  assert_int_equal(l.ids[5 + TINY_MM], 256000);
  float *base = last_resid(&l, l.ids, l.emb);
  /* A text token after the image never changes image-token states. */
  int32_t *ids2 = malloc((size_t)l.n * sizeof *ids2);
  memcpy(ids2, l.ids, (size_t)l.n * sizeof *ids2);
  ids2[5 + TINY_MM + 3] = 1000;
  float *other = last_resid(&l, ids2, l.emb);
  assert_memory_equal(base, other, (5 + TINY_MM) * d * sizeof(float));
  assert_memory_not_equal(base + (5 + TINY_MM + 3) * d, other + (5 + TINY_MM + 3) * d, d * sizeof(float));
  /* Bidirectional: the LAST soft token's embedding changes the FIRST
   * soft token's state (a causal block would not), but not the boi before. */
  float *emb2 = malloc((size_t)TINY_MM * d * sizeof *emb2);
  memcpy(emb2, l.emb, (size_t)TINY_MM * d * sizeof *emb2);
  for (size_t i = 0; i < d; i++) emb2[(TINY_MM - 1) * d + i] += 1.0f;
  float *bi = last_resid(&l, l.ids, emb2);
  assert_memory_equal(base, bi, 5 * d * sizeof(float));
  assert_memory_not_equal(base + 5 * d, bi + 5 * d, d * sizeof(float));
  free(base);
  free(other);
  free(bi);
  free(emb2);
  free(ids2);
  lib_close(&l);
}

static void test_forward_image_count_mismatch(void **state) {
  (void)state;
  lib l;
  lib_open(&l, F.m8_new);
  g3_state *s = NULL;
  assert_int_equal(g3_state_create(&s, l.m, l.n), 0);
  g3_forward_io io = {.ids = l.ids, .n = l.n};
  assert_int_equal(g3_forward_image(l.m, s, &io, l.emb, 2), SC_ERR_ARG);
  assert_string_equal(sc_error_get(), "forward: the prompt holds 1 image blocks, but 2 images were given");
  g3_state_free(s);
  lib_close(&l);
}

/* ==== Kernels against float64 loops ==== */

static float rnd(sc_rng *r) { return (float)sc_rng_below(r, 20001) / 10000.0f - 1.0f; }

static void fill(float *x, size_t n, sc_rng *r) {
  for (size_t i = 0; i < n; i++) x[i] = rnd(r);
}

static void assert_close(const float *a, const double *ref, size_t n, double tol, const char *what) {
  double mx = 0, md = 0;
  size_t bad = 0;
  for (size_t i = 0; i < n; i++) {
    if (fabs(ref[i]) > mx) mx = fabs(ref[i]);
    if (fabs(a[i] - ref[i]) > md) md = fabs(a[i] - ref[i]), bad = i;
  }
  if (md > tol * (mx > 0 ? mx : 1)) {
    print_error("%s: max|a-b| = %g (max|ref| %g) at %zu\n", what, md, mx, bad);
    fail();
  }
}

static void test_layernorm_pool_matmul(void **state) {
  (void)state;
  sc_rng r;
  sc_rng_seed(&r, 11);
  enum { N = 5, D = 37, SIDE = 6, C = 3, K = 2, IN = 7, OUT = 9 };
  float x[N * D], w[D], b[D], y[N * D];
  double ref[N * D > 64 ? N * D : 64];
  fill(x, N * D, &r), fill(w, D, &r), fill(b, D, &r);
  sc_layernorm(y, x, w, b, N, D, 1e-6f);
  for (int t = 0; t < N; t++) {
    double mu = 0, var = 0;
    for (int i = 0; i < D; i++) mu += x[t * D + i] / (double)D;
    for (int i = 0; i < D; i++) var += (x[t * D + i] - mu) * (x[t * D + i] - mu) / D;
    for (int i = 0; i < D; i++) ref[t * D + i] = (x[t * D + i] - mu) / sqrt(var + 1e-6) * w[i] + b[i];
  }
  assert_close(y, ref, N * D, KERNEL_TOL, "layernorm");
  float g[SIDE * SIDE * C], p[(SIDE / K) * (SIDE / K) * C];
  fill(g, SIDE * SIDE * C, &r);
  sc_avgpool2d(p, g, SIDE, C, K);
  for (int R = 0; R < SIDE / K; R++)
    for (int Cc = 0; Cc < SIDE / K; Cc++)
      for (int ch = 0; ch < C; ch++) {
        double s = 0;
        for (int dy = 0; dy < K; dy++)
          for (int dx = 0; dx < K; dx++) s += g[((R * K + dy) * SIDE + Cc * K + dx) * C + ch];
        ref[(R * (SIDE / K) + Cc) * C + ch] = s / (K * K);
      }
  assert_close(p, ref, (SIDE / K) * (SIDE / K) * C, KERNEL_TOL, "avgpool");
  /* y = x · W with W [IN, OUT] stored in BF16. */
  uint16_t wb[IN * OUT];
  float xm[N * IN], ym[N * OUT], scratch[IN * OUT];
  for (int i = 0; i < IN * OUT; i++) wb[i] = sc_bf16_from_f32(rnd(&r));
  fill(xm, N * IN, &r);
  sc_mat wm = {wb, SC_DTYPE_BF16, IN, OUT};
  assert_true(sc_matmul_nn_scratch(&wm) <= IN * OUT);
  assert_int_equal(sc_matmul_nn(ym, xm, &wm, N, SC_PRECISION_F32, scratch), 0);
  for (int t = 0; t < N; t++)
    for (int o = 0; o < OUT; o++) {
      double s = 0;
      for (int i = 0; i < IN; i++) s += (double)xm[t * IN + i] * sc_f32_from_bf16(wb[i * OUT + o]);
      ref[t * OUT + o] = s;
    }
  assert_close(ym, ref, N * OUT, KERNEL_TOL, "matmul_nn");
}

static void test_mha_full(void **state) {
  (void)state;
  enum { N = 11, H = 3, HD = 5, W = H * HD };
  sc_rng r;
  sc_rng_seed(&r, 12);
  float q[N * W], k[N * W], v[N * W], o[N * W];
  double ref[N * W];
  fill(q, N * W, &r), fill(k, N * W, &r), fill(v, N * W, &r);
  float *scratch = malloc(sc_mha_full_scratch(N, HD) * sizeof *scratch);
  float scale = 1.0f / sqrtf((float)HD);
  sc_mha_full(o, q, k, v, N, H, HD, scale, scratch);
  for (int h = 0; h < H; h++)
    for (int t = 0; t < N; t++) {
      double s[N], mx = -1e300, sum = 0;
      for (int u = 0; u < N; u++) {
        s[u] = 0;
        for (int i = 0; i < HD; i++) s[u] += (double)q[t * W + h * HD + i] * k[u * W + h * HD + i];
        s[u] *= scale;
        if (s[u] > mx) mx = s[u];
      }
      for (int u = 0; u < N; u++) sum += (s[u] = exp(s[u] - mx));
      for (int i = 0; i < HD; i++) {
        double acc = 0;
        for (int u = 0; u < N; u++) acc += s[u] / sum * v[u * W + h * HD + i];
        ref[t * W + h * HD + i] = acc;
      }
    }
  assert_close(o, ref, N * W, KERNEL_TOL, "mha_full");
  free(scratch);
}

/* ==== CLI behaviour and bad input ==== */

static void test_caption_deterministic_both_languages(void **state) {
  (void)state;
  char *a = NULL, *b = NULL, *ar = NULL, *err = NULL;
  assert_int_equal(tu_run(&a, NULL, "'%s' caption --model '%s' --image '%s' --max-new-tokens 6 --json",
                          tu_bin(), F.m8_new, F.img), 0);
  assert_int_equal(tu_run(&b, NULL, "'%s' caption --model '%s' --image '%s' --max-new-tokens 6 --json",
                          tu_bin(), F.m8_new, F.img), 0);
  assert_string_equal(a, b);
  assert_non_null(strstr(a, "\"ids\":["));
  int rc = tu_run(&ar, &err, "'%s' caption --model '%s' --image '%s' --lang ar --max-new-tokens 6",
                  tu_bin(), F.m8_new, F.img);
  if (rc) print_error("%s\n", err);
  assert_int_equal(rc, 0);
  free(a);
  free(b);
  free(ar);
  free(err);
}

/* ==== saecap forward --image ==== */

/* Tensor `an` of file a equals tensor `bn` of file b bit for bit, with
 * the expected element count. */
static void assert_same_tensor(const char *a, const char *an, const char *b, const char *bn,
                               int64_t n_elements) {
  st_file *fa = NULL, *fb = NULL;
  assert_int_equal(st_file_open(&fa, a), 0);
  assert_int_equal(st_file_open(&fb, b), 0);
  const st_tensor *ta = st_file_find(fa, an), *tb = st_file_find(fb, bn);
  if (!ta || !tb) print_error("missing %s or %s\n", an, bn);
  assert_true(ta && tb);
  assert_int_equal(ta->n_elements, n_elements);
  assert_int_equal(tb->n_elements, n_elements);
  assert_int_equal(ta->nbytes, tb->nbytes);
  if (memcmp(ta->data, tb->data, ta->nbytes)) print_error("%s differs from %s\n", an, bn);
  assert_memory_equal(ta->data, tb->data, ta->nbytes);
  st_file_free(fa);
  st_file_free(fb);
}

/* The prompt ids with the image soft-token run replaced by one -1. */
static char *ids_with_mark(const char *ids) {
  char *s = malloc(strlen(ids) + 4), *o = s;
  char img[16];
  snprintf(img, sizeof img, "%d", 262144);
  int in_run = 0;
  for (const char *p = ids; *p;) {
    const char *e = strchr(p, ' ');
    size_t len = e ? (size_t)(e - p) : strlen(p);
    int soft = len == strlen(img) && !memcmp(p, img, len);
    if (soft && !in_run) o += sprintf(o, "-1 ");
    if (!soft) o += sprintf(o, "%.*s ", (int)len, p);
    in_run = soft;
    p += len + (e != NULL);
  }
  *o = 0;
  return s;
}

/* forward --image (--text and --ids with -1) dumps the same tensors as
 * caption --dump, plus pixel_values [3,S,S] and image_tokens [M,d]; and
 * matches the numpy reference. */
static void test_forward_image(void **state) {
  (void)state;
  char *cap = tu_join(F.root, "fi_cap.safetensors"), *ft = tu_join(F.root, "fi_text.safetensors");
  char *fi = tu_join(F.root, "fi_ids.safetensors"), *idf = tu_join(F.root, "fi_ids.txt");
  char *out = NULL, *err = NULL;
  int rc = tu_run(&out, &err, "'%s' caption --model '%s' --image '%s' --prompt '%s' --json "
                  "--max-new-tokens 1 --dump '%s'", tu_bin(), F.m7_old, F.img, PROMPT, cap);
  assert_int_equal(rc, 0);
  char *ids = prompt_ids(out), *marked = ids_with_mark(ids);
  tu_write_str(idf, marked);
  free(err);
  rc = tu_run(NULL, &err, "'%s' forward --model '%s' --image '%s' --text '%s' --dump '%s'", tu_bin(),
              F.m7_old, F.img, PROMPT, ft);
  if (rc) print_error("forward --text: %s\n", err);
  assert_int_equal(rc, 0);
  free(err);
  rc = tu_run(NULL, &err, "'%s' forward --model '%s' --image '%s' --ids '%s' --dump '%s'", tu_bin(),
              F.m7_old, F.img, idf, fi);
  if (rc) print_error("forward --ids: %s\n", err);
  assert_int_equal(rc, 0);
  int64_t t = 1, d = 64; /* tiny text hidden size */
  for (const char *p = ids; (p = strchr(p, ' ')); p++) t++;
  const char *names[] = {"embeds", "resid_post.0", "resid_post.3", "final_norm"};
  for (int i = 0; i < 4; i++) {
    assert_same_tensor(ft, names[i], cap, names[i], t * d);
    assert_same_tensor(fi, names[i], ft, names[i], t * d);
  }
  assert_same_tensor(ft, "logits", fi, "logits", t * 262208);
  assert_same_tensor(ft, "pixel_values", cap, "pixel_values", 3 * 64 * 64);
  assert_same_tensor(ft, "image_tokens", cap, "image_embeds", TINY_MM * d);
  char *cmp = NULL;
  compare(F.m7_old, "fi", ids, ft, "or", NULL); /* writes the reference .npz */
  rc = tu_run(&cmp, NULL, "/usr/bin/python3 '%s/tests/reference/compare_dump.py' '%s' '%s/fi.or.npz' "
              "--tol %g --keys embeds,resid_post.0,resid_post.3,final_norm,logits", tu_src(), ft, F.root,
              PARITY_TOL);
  print_message("forward --image vs reference:\n%s", cmp);
  assert_int_equal(rc, 0);
  free(cmp);
  free(out);
  free(err);
  free(ids);
  free(marked);
  free(cap);
  free(ft);
  free(fi);
  free(idf);
}

static void test_forward_image_bad_ids(void **state) {
  (void)state;
  char *two = tu_join(F.root, "two_marks.txt"), *bare = tu_join(F.root, "bare_mark.txt");
  char *none = tu_join(F.root, "no_mark.txt"), *dump = tu_join(F.root, "bad.safetensors");
  char *err = NULL;
  tu_write_str(two, "2 255999 -1 256000 -1\n");
  tu_write_str(bare, "2 -1 108\n");
  tu_write_str(none, "2 108\n");
  int rc = tu_run(NULL, &err, "'%s' forward --model '%s' --image '%s' --ids '%s' --dump '%s'", tu_bin(),
                  F.m7_old, F.img, two, dump);
  tu_assert_one_line_error(rc, err, "two_marks.txt: expected one -1 (where the image goes), found 2", NULL);
  free(err);
  rc = tu_run(NULL, &err, "'%s' forward --model '%s' --image '%s' --ids '%s' --dump '%s'", tu_bin(),
              F.m7_old, F.img, none, dump);
  tu_assert_one_line_error(rc, err, "no_mark.txt: expected one -1 (where the image goes), found 0", NULL);
  free(err);
  rc = tu_run(NULL, &err, "'%s' forward --model '%s' --image '%s' --ids '%s' --dump '%s'", tu_bin(),
              F.m7_old, F.img, bare, dump);
  tu_assert_one_line_error(rc, err, "image block 0 is not enclosed by <start_of_image>", NULL);
  free(err);
  rc = tu_run(NULL, &err, "'%s' forward --model '%s' --ids '%s' --dump '%s'", tu_bin(), F.m7_old, bare, dump);
  tu_assert_one_line_error(rc, err, "bare_mark.txt: '-1' is not a token id", NULL);
  assert_false(tu_exists(dump));
  free(err);
  free(two);
  free(bare);
  free(none);
  free(dump);
}

/* A copy of the seed-7 model with one mutation applied. */
static char *mutated(const char *name, const char *args) {
  char *dir = tu_join(F.root, name);
  assert_int_equal(tu_run(NULL, NULL, "rm -rf '%s' && cp -r '%s' '%s'", dir, F.m7_old, dir), 0);
  tu_mutate_checkpoint(dir, args);
  return dir;
}

static void expect_error(const char *model, const char *image, const char *needle1, const char *needle2) {
  char *err = NULL;
  int rc = tu_run(NULL, &err, "'%s' caption --model '%s' --image '%s'", tu_bin(), model, image);
  tu_assert_one_line_error(rc, err, needle1, needle2, NULL);
  free(err);
}

static void test_bad_model(void **state) {
  (void)state;
  char *d = mutated("drop", "drop vision_tower.vision_model.encoder.layers.1.mlp.fc2.bias");
  expect_error(d, F.img, "tensor 'vision_tower.vision_model.encoder.layers.1.mlp.fc2.bias' is missing", NULL);
  free(d);
  d = mutated("shape", "set vision_tower.vision_model.post_layernorm.weight 33");
  expect_error(d, F.img, "tensor 'vision_tower.vision_model.post_layernorm.weight' has shape [33], expected [32]", NULL);
  free(d);
  d = mutated("proj", "set multi_modal_projector.mm_input_projection_weight 64,32");
  expect_error(d, F.img, "'multi_modal_projector.mm_input_projection_weight' has shape [64,32], expected [32,64]",
               NULL);
  free(d);
  d = mutated("head", "set vision_tower.vision_model.head.probe 4");
  expect_error(d, F.img, "unknown tensor 'vision_tower.vision_model.head.probe' under the vision prefix", NULL);
  free(d);
  d = mutated("textonly", "drop multi_modal_projector.mm_soft_emb_norm.weight");
  int rc = tu_run(NULL, NULL,
                  "cd '%s' && /usr/bin/python3 -c \"import json; c = json.load(open('config.json')); "
                  "t = c['text_config']; t['model_type'] = 'gemma3_text'; "
                  "json.dump(t, open('config.json', 'w'))\"", d);
  assert_int_equal(rc, 0);
  expect_error(d, F.img, "has no vision tower", NULL);
  free(d);
}

static void test_bad_image(void **state) {
  (void)state;
  char *junk = tu_join(F.root, "junk.png");
  tu_write_str(junk, "\x89PNG\r\n\x1a\nnot really a png");
  expect_error(F.m7_old, junk, "junk.png", NULL);
  char *missing = tu_join(F.root, "nope.jpg");
  expect_error(F.m7_old, missing, "nope.jpg", NULL);
  char *err = NULL;
  int rc = tu_run(NULL, &err, "'%s' caption --model '%s'", tu_bin(), F.m7_old);
  assert_int_equal(rc, 2);
  assert_non_null(strstr(err, "--image is required"));
  free(err);
  free(junk);
  free(missing);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_parity_seed7_old_bf16),
      cmocka_unit_test(test_parity_seed8_new_bf16),
      cmocka_unit_test(test_parity_seed9_new_f32),
      cmocka_unit_test(test_prompt_structure_real),
      cmocka_unit_test(test_image_groups_and_check),
      cmocka_unit_test(test_mask_properties),
      cmocka_unit_test(test_forward_image_count_mismatch),
      cmocka_unit_test(test_layernorm_pool_matmul),
      cmocka_unit_test(test_mha_full),
      cmocka_unit_test(test_caption_deterministic_both_languages),
      cmocka_unit_test(test_forward_image),
      cmocka_unit_test(test_forward_image_bad_ids),
      cmocka_unit_test(test_bad_model),
      cmocka_unit_test(test_bad_image),
  };
  return cmocka_run_group_tests(tests, setup, teardown);
}
