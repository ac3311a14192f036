/* test_tiny_model.c: `saecap tiny-model` end to end. The checkpoint is read
 * back with st_checkpoint_open and g3_config_load and compared with a tensor
 * list derived here from the config (spec §2), independently of tiny.c;
 * tests/reference/tiny_check.py checks the same folder with numpy. */
#include <dirent.h>
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
#include "io/safetensors.h"
#include "model/g3_config.h"
#include "tensor/dtype.h"
#include "tu.h"

/* Bounds on the spread of the random weights: wide enough for any seed,
 * narrow enough to catch all-zero or unscaled tensors. */
#define RMS_W_MEAN_ABS_MAX 0.3  /* zero-centred RMSNorm weights */
#define RMS_W_MEAN_ABS_MIN 0.01
#define LN_W_MEAN_TOL 0.2       /* LayerNorm weights sit around 1 */

/* Folders written once by the group setup. */
typedef struct fixture {
  char *root;
  char *old_a, *old_b; /* seed 7, old layout, twice */
  char *old_c;         /* seed 8 */
  char *neu;           /* seed 7, new layout, 3 layers */
  char *tok;           /* the tokenizer.json source */
} fixture;

static fixture F;

static int setup(void **state) {
  (void)state;
  F.root = tu_tmpdir("tiny_model");
  F.tok = tu_tokenizer_json();
  F.old_a = tu_join(F.root, "old_a");
  F.old_b = tu_join(F.root, "old_b");
  F.old_c = tu_join(F.root, "old_c");
  F.neu = tu_join(F.root, "new");
  tu_tiny_model(F.old_a, "--seed 7");
  tu_tiny_model(F.old_b, "--seed 7 --prefix old --layers 4");
  tu_tiny_model(F.old_c, "--seed 8");
  tu_tiny_model(F.neu, "--seed 7 --prefix new --layers 3");
  return 0;
}

static int teardown(void **state) {
  (void)state;
  tu_run(NULL, NULL, "rm -rf '%s'", F.root);
  free(F.root);
  free(F.tok);
  free(F.old_a);
  free(F.old_b);
  free(F.old_c);
  free(F.neu);
  return 0;
}

/* ==== The expected tensor set, from the config alone ==== */

typedef struct want {
  char name[200];
  int n_dims;
  int64_t shape[4];
} want;

typedef struct wants {
  want w[2048];
  int n;
} wants;

static void add(wants *ws, const char *prefix, const char *name, int n_dims, int64_t a, int64_t b,
                int64_t c, int64_t d) {
  assert_true(ws->n < 2048);
  want *w = &ws->w[ws->n++];
  snprintf(w->name, sizeof w->name, "%s%s", prefix, name);
  w->n_dims = n_dims;
  w->shape[0] = a;
  w->shape[1] = b;
  w->shape[2] = c;
  w->shape[3] = d;
}

static void want_text(wants *ws, const g3_text_config *t, const char *p) {
  int64_t H = t->hidden_size, F_ = t->intermediate_size, D = t->head_dim;
  int64_t Q = D * t->num_attention_heads, K = D * t->num_key_value_heads;
  char n[160];
  add(ws, p, "embed_tokens.weight", 2, t->vocab_size, H, 0, 0);
  add(ws, p, "norm.weight", 1, H, 0, 0, 0);
  for (int i = 0; i < t->num_hidden_layers; i++) {
    const struct { const char *s; int nd; int64_t a, b; } L[] = {
        {"input_layernorm.weight", 1, H, 0},           {"self_attn.q_proj.weight", 2, Q, H},
        {"self_attn.k_proj.weight", 2, K, H},          {"self_attn.v_proj.weight", 2, K, H},
        {"self_attn.o_proj.weight", 2, H, Q},          {"self_attn.q_norm.weight", 1, D, 0},
        {"self_attn.k_norm.weight", 1, D, 0},          {"post_attention_layernorm.weight", 1, H, 0},
        {"pre_feedforward_layernorm.weight", 1, H, 0}, {"mlp.gate_proj.weight", 2, F_, H},
        {"mlp.up_proj.weight", 2, F_, H},              {"mlp.down_proj.weight", 2, H, F_},
        {"post_feedforward_layernorm.weight", 1, H, 0},
    };
    for (size_t k = 0; k < sizeof L / sizeof L[0]; k++) {
      snprintf(n, sizeof n, "layers.%d.%s", i, L[k].s);
      add(ws, p, n, L[k].nd, L[k].a, L[k].b, 0, 0);
    }
  }
}

static void want_vision(wants *ws, const g3_config *c, const char *p, const char *pp) {
  const g3_vision_config *v = &c->vision;
  int64_t H = v->hidden_size, F_ = v->intermediate_size, P = v->patch_size;
  int64_t N = (int64_t)(v->image_size / P) * (v->image_size / P);
  char n[160];
  add(ws, p, "embeddings.patch_embedding.weight", 4, H, 3, P, P);
  add(ws, p, "embeddings.patch_embedding.bias", 1, H, 0, 0, 0);
  add(ws, p, "embeddings.position_embedding.weight", 2, N, H, 0, 0);
  add(ws, p, "post_layernorm.weight", 1, H, 0, 0, 0);
  add(ws, p, "post_layernorm.bias", 1, H, 0, 0, 0);
  for (int i = 0; i < v->num_hidden_layers; i++) {
    const struct { const char *s; int nd; int64_t a, b; } L[] = {
        {"layer_norm1.weight", 1, H, 0},     {"layer_norm1.bias", 1, H, 0},
        {"layer_norm2.weight", 1, H, 0},     {"layer_norm2.bias", 1, H, 0},
        {"self_attn.q_proj.weight", 2, H, H}, {"self_attn.q_proj.bias", 1, H, 0},
        {"self_attn.k_proj.weight", 2, H, H}, {"self_attn.k_proj.bias", 1, H, 0},
        {"self_attn.v_proj.weight", 2, H, H}, {"self_attn.v_proj.bias", 1, H, 0},
        {"self_attn.out_proj.weight", 2, H, H}, {"self_attn.out_proj.bias", 1, H, 0},
        {"mlp.fc1.weight", 2, F_, H},        {"mlp.fc1.bias", 1, F_, 0},
        {"mlp.fc2.weight", 2, H, F_},        {"mlp.fc2.bias", 1, H, 0},
    };
    for (size_t k = 0; k < sizeof L / sizeof L[0]; k++) {
      snprintf(n, sizeof n, "encoder.layers.%d.%s", i, L[k].s);
      add(ws, p, n, L[k].nd, L[k].a, L[k].b, 0, 0);
    }
  }
  /* Stored [in, out]: the one weight that is not [out, in]. */
  add(ws, pp, "mm_input_projection_weight", 2, H, c->text.hidden_size, 0, 0);
  add(ws, pp, "mm_soft_emb_norm.weight", 1, H, 0, 0, 0);
}

static wants *expected(const g3_config *c, int new_layout) {
  wants *ws = calloc(1, sizeof *ws);
  assert_non_null(ws);
  want_text(ws, &c->text, new_layout ? "model.language_model." : "language_model.model.");
  want_vision(ws, c, new_layout ? "model.vision_tower.vision_model." : "vision_tower.vision_model.",
              new_layout ? "model.multi_modal_projector." : "multi_modal_projector.");
  return ws;
}

/* Opens dir, checks every expected tensor (and nothing else) is there with
 * its shape and BF16. Returns the open checkpoint. */
static st_checkpoint *open_and_check(const char *dir, g3_config *c, int new_layout) {
  st_checkpoint *ck;
  assert_int_equal(g3_config_load(dir, c), 0);
  int rc = st_checkpoint_open(&ck, dir);
  if (rc) print_error("%s\n", sc_error_get());
  assert_int_equal(rc, 0);
  assert_true(st_checkpoint_n_files(ck) >= 2);
  wants *ws = expected(c, new_layout);
  assert_int_equal(st_checkpoint_n_tensors(ck), ws->n);
  for (int i = 0; i < ws->n; i++) {
    const st_tensor *t = st_checkpoint_find(ck, ws->w[i].name);
    if (!t) print_error("missing tensor %s\n", ws->w[i].name);
    assert_non_null(t);
    assert_int_equal(t->dtype, SC_DTYPE_BF16);
    assert_int_equal(t->n_dims, ws->w[i].n_dims);
    for (int d = 0; d < t->n_dims; d++) assert_int_equal(t->shape[d], ws->w[i].shape[d]);
  }
  free(ws);
  return ck;
}

static double mean_of(const st_tensor *t, int absolute) {
  const uint16_t *h = t->data;
  double s = 0.0;
  for (int64_t i = 0; i < t->n_elements; i++) {
    double v = sc_f32_from_bf16(h[i]);
    assert_true(isfinite(v));
    s += absolute ? fabs(v) : v;
  }
  return s / (double)t->n_elements;
}

/* ==== Tests ==== */

static void test_config_and_tensors(void **state) {
  (void)state;
  g3_config c;
  st_checkpoint *ck = open_and_check(F.old_a, &c, 0);
  const g3_text_config *t = &c.text;
  assert_int_equal(t->vocab_size, 262208);
  assert_int_equal(t->num_hidden_layers, 4);
  assert_int_equal(t->is_sliding[0], 1);
  assert_int_equal(t->is_sliding[1], 0);
  assert_int_equal(t->is_sliding[3], 0);
  assert_true(t->sliding_window < 16);
  assert_int_equal(t->rope_global.type, G3_ROPE_LINEAR);
  assert_true(t->rope_global.factor == 8.0);
  assert_int_equal(t->tie_word_embeddings, 1);
  assert_int_equal(c.vision.patches_per_side, 8);
  assert_int_equal(c.mm_tokens_per_image, 16);
  assert_int_equal(c.mm_pool_kernel, 2);
  assert_string_equal(c.dtype, "bfloat16");
  assert_null(st_checkpoint_find(ck, "language_model.lm_head.weight"));
  /* Shard metadata and the weight scales (zero-centred RMSNorm weights,
   * LayerNorm weights around 1). */
  assert_string_equal(st_file_meta_get(st_checkpoint_file(ck, 0), "format"), "pt");
  double m = mean_of(st_checkpoint_find(ck, "language_model.model.layers.0.input_layernorm.weight"), 1);
  assert_true(m > RMS_W_MEAN_ABS_MIN && m < RMS_W_MEAN_ABS_MAX);
  m = mean_of(st_checkpoint_find(ck, "vision_tower.vision_model.post_layernorm.weight"), 0);
  assert_true(fabs(m - 1.0) < LN_W_MEAN_TOL);
  st_checkpoint_free(ck);
  assert_false(tu_has_tmp_files(F.old_a));
  /* The tokenizer is a byte copy of the source. */
  size_t n1, n2;
  char *dst = tu_join(F.old_a, "tokenizer.json");
  char *a = tu_read(F.tok, &n1), *b = tu_read(dst, &n2);
  assert_int_equal(n1, n2);
  assert_memory_equal(a, b, n1);
  free(a);
  free(b);
  free(dst);
}

static void test_side_files(void **state) {
  (void)state;
  const char *names[] = {"tokenizer_config.json", "preprocessor_config.json",
                         "generation_config.json", "model.safetensors.index.json"};
  for (size_t i = 0; i < sizeof names / sizeof names[0]; i++) {
    char *p = tu_join(F.old_a, names[i]);
    assert_true(tu_exists(p));
    free(p);
  }
  char *p = tu_join(F.old_a, "preprocessor_config.json");
  char *s = tu_read(p, NULL);
  assert_non_null(strstr(s, "\"image_seq_length\":\t16"));
  assert_non_null(strstr(s, "\"height\":\t64"));
  assert_non_null(strstr(s, "Gemma3Processor"));
  free(s);
  free(p);
  p = tu_join(F.old_a, "generation_config.json");
  s = tu_read(p, NULL);
  assert_non_null(strstr(s, "[1, 106]"));
  free(s);
  free(p);
}

/* Every file of a equals the same-named file of b; returns how many differ
 * (only when allow_diff) . */
static int compare_dirs(const char *a, const char *b, int allow_diff) {
  DIR *d = opendir(a);
  struct dirent *e;
  int n_files = 0, n_diff = 0;
  assert_non_null(d);
  while ((e = readdir(d))) {
    if (e->d_name[0] == '.') continue;
    char *pa = tu_join(a, e->d_name), *pb = tu_join(b, e->d_name);
    size_t na, nb;
    char *x = tu_read(pa, &na), *y = tu_read(pb, &nb);
    assert_non_null(x);
    assert_non_null(y);
    int same = na == nb && memcmp(x, y, na) == 0;
    if (!same && !allow_diff) print_error("%s differs\n", e->d_name);
    assert_true(same || allow_diff);
    n_diff += !same;
    n_files++;
    free(x);
    free(y);
    free(pa);
    free(pb);
  }
  closedir(d);
  assert_int_equal(n_files, 8);
  assert_int_equal(tu_count_files(b), 8);
  return n_diff;
}

static void test_deterministic(void **state) {
  (void)state;
  compare_dirs(F.old_a, F.old_b, 0);
  /* Another seed changes both shards, nothing else. */
  assert_int_equal(compare_dirs(F.old_a, F.old_c, 1), 2);
}

/* Different seed => different weights, tensor by tensor. */
static void test_seed_changes_values(void **state) {
  (void)state;
  g3_config c;
  st_checkpoint *a = open_and_check(F.old_a, &c, 0), *b = open_and_check(F.old_c, &c, 0);
  for (int i = 0; i < st_checkpoint_n_tensors(a); i++) {
    const st_tensor *x = st_checkpoint_tensor(a, i), *y = st_checkpoint_find(b, x->name);
    assert_non_null(y);
    assert_int_equal(x->nbytes, y->nbytes);
    if (!memcmp(x->data, y->data, x->nbytes)) print_error("%s equal across seeds\n", x->name);
    assert_true(memcmp(x->data, y->data, x->nbytes) != 0);
  }
  st_checkpoint_free(a);
  st_checkpoint_free(b);
}

/* --prefix new: model.language_model.* names, new config keys, the same
 * config struct and the same values per tensor as the old layout. */
static void test_new_layout(void **state) {
  (void)state;
  g3_config cn, co;
  st_checkpoint *n = open_and_check(F.neu, &cn, 1), *o = open_and_check(F.old_a, &co, 0);
  assert_int_equal(cn.text.num_hidden_layers, 3);
  assert_int_equal(cn.text.is_sliding[1], 0);
  assert_int_equal(cn.text.is_sliding[2], 1);
  assert_null(st_checkpoint_find(n, "language_model.model.norm.weight"));
  char *p = tu_join(F.neu, "config.json");
  char *s = tu_read(p, NULL);
  assert_non_null(strstr(s, "\"layer_types\""));
  assert_non_null(strstr(s, "\"rope_parameters\""));
  assert_null(strstr(s, "sliding_window_pattern"));
  free(s);
  free(p);
  const char *pairs[][2] = {
      {"model.language_model.layers.0.self_attn.q_proj.weight",
       "language_model.model.layers.0.self_attn.q_proj.weight"},
      {"model.vision_tower.vision_model.embeddings.patch_embedding.weight",
       "vision_tower.vision_model.embeddings.patch_embedding.weight"},
      {"model.multi_modal_projector.mm_input_projection_weight",
       "multi_modal_projector.mm_input_projection_weight"},
  };
  for (size_t i = 0; i < 3; i++) {
    const st_tensor *x = st_checkpoint_find(n, pairs[i][0]), *y = st_checkpoint_find(o, pairs[i][1]);
    assert_non_null(x);
    assert_non_null(y);
    assert_int_equal(x->nbytes, y->nbytes);
    assert_memory_equal(x->data, y->data, x->nbytes);
  }
  st_checkpoint_free(n);
  st_checkpoint_free(o);
}

static void run_reference(const char *dir, const char *want_prefix) {
  char *out = NULL, *err = NULL;
  char *script = tu_src_path("tests/reference/tiny_check.py");
  int rc = tu_run(&out, &err, "/usr/bin/python3 '%s' '%s'", script, dir);
  if (strncmp(out, want_prefix, strlen(want_prefix)))
    print_error("tiny_check.py %s: rc %d\n%s%s\n", dir, rc, out, err);
  assert_int_equal(strncmp(out, want_prefix, strlen(want_prefix)), 0);
  assert_int_equal(rc, strcmp(want_prefix, "OK\n") ? 1 : 0);
  free(out);
  free(err);
  free(script);
}

static void test_numpy_reference(void **state) {
  (void)state;
  run_reference(F.old_a, "OK\n");
  run_reference(F.neu, "OK\n");
  /* The checker is not a rubber stamp: a config that disagrees with the
   * shards fails it. */
  char *bad = tu_join(F.root, "tampered");
  int rc = tu_run(NULL, NULL,
                  "mkdir -p '%s' && cd '%s' && for f in '%s'/*; do ln -sf \"$f\" .; done && "
                  "rm config.json && sed 's/\"intermediate_size\":\t128/\"intermediate_size\":\t96/' "
                  "'%s/config.json' > config.json",
                  bad, bad, F.old_a, F.old_a);
  assert_int_equal(rc, 0);
  run_reference(bad, "FAIL: ");
  free(bad);
}

static void test_cli_errors(void **state) {
  (void)state;
  char *out = NULL, *err = NULL;
  char *dir = tu_join(F.root, "never");
  int rc = tu_run(NULL, &err, "'%s' tiny-model --seed 1", tu_bin());
  assert_int_equal(rc, 2);
  tu_assert_one_line_error(rc, err, "tiny-model: OUT_DIR is required", NULL);
  free(err);
  rc = tu_run(NULL, &err, "'%s' tiny-model '%s' --layers 0", tu_bin(), dir);
  tu_assert_one_line_error(rc, err, "--layers needs a number from 1 to 64", NULL);
  free(err);
  rc = tu_run(NULL, &err, "'%s' tiny-model '%s' --prefix mid", tu_bin(), dir);
  tu_assert_one_line_error(rc, err, "--prefix needs 'old' or 'new'", NULL);
  free(err);
  rc = tu_run(NULL, &err, "'%s' tiny-model '%s' --seed -3", tu_bin(), dir);
  tu_assert_one_line_error(rc, err, "--seed needs a non-negative integer", NULL);
  free(err);
  rc = tu_run(NULL, &err, "'%s' tiny-model '%s' --tokenizer /nonexistent/tokenizer.json", tu_bin(), dir);
  tu_assert_one_line_error(rc, err, "/nonexistent/tokenizer.json: no such file", NULL);
  free(err);
  /* No tokenizer anywhere: the message says what to do. */
  rc = tu_run(NULL, &err, "cd / && SAECAP_TOKENIZER= '%s' tiny-model '%s'", tu_bin(), dir);
  tu_assert_one_line_error(rc, err, "pass --tokenizer PATH or run scripts/install-deps.sh", NULL);
  free(err);
  assert_false(tu_exists(dir)); /* nothing was created by any failure */
  /* $SAECAP_TOKENIZER is honoured (and a file as OUT_DIR fails cleanly). */
  char *file = tu_join(F.old_a, "config.json");
  rc = tu_run(NULL, &err, "SAECAP_TOKENIZER='%s' '%s' tiny-model '%s'", F.tok, tu_bin(), file);
  tu_assert_one_line_error(rc, err, file, NULL);
  free(err);
  rc = tu_run(&out, NULL, "'%s' tiny-model --help", tu_bin());
  assert_int_equal(rc, 0);
  assert_non_null(strstr(out, "usage: saecap tiny-model OUT_DIR"));
  free(out);
  free(file);
  free(dir);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_config_and_tensors), cmocka_unit_test(test_side_files),
      cmocka_unit_test(test_deterministic),      cmocka_unit_test(test_seed_changes_values),
      cmocka_unit_test(test_new_layout),         cmocka_unit_test(test_numpy_reference),
      cmocka_unit_test(test_cli_errors),
  };
  return cmocka_run_group_tests(tests, setup, teardown);
}
