/* test_generate.c: sampling, eos handling and the generation loop.
 *
 * Greedy generation (KV-cached decode) must equal the argmax of a full
 * forward over the whole sequence at every step; the CLI must print the
 * same ids and their decoded text; the sampler is checked on small logit
 * vectors against the softmax / top-k / top-p definitions. In the bf16
 * precision, greedy generation gives the same tokens as the f32 mode on
 * the test prompts, and equals the argmax of repeated bf16 full forwards. */
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
#include "io/json.h"
#include "model/decoder.h"
#include "model/generate.h"
#include "model/tokenizer.h"
#include "tu.h"

#define N_PROMPT 12
#define N_NEW 16
/* Empirical frequencies of 40000 seeded draws vs the exact probabilities. */
#define N_DRAWS 40000
#define FREQ_TOL 0.01

typedef struct fixture {
  char *root, *tok, *model, *ids;
  int32_t prompt[N_PROMPT];
  g3_model *m;
} fixture;

static fixture F;

static int setup(void **state) {
  (void)state;
  F.root = tu_tmpdir("generate");
  F.tok = tu_tokenizer_json();
  F.model = tu_join(F.root, "m");
  char *err = NULL;
  int rc = tu_run(NULL, &err, "'%s' -q tiny-model '%s' --tokenizer '%s' --seed 3 --layers 3", tu_bin(),
                  F.model, F.tok);
  if (rc) print_error("%s\n", err);
  free(err);
  assert_int_equal(rc, 0);
  char line[256] = "";
  size_t at = 0;
  sc_rng r;
  sc_rng_seed(&r, 5);
  for (int i = 0; i < N_PROMPT; i++) {
    F.prompt[i] = i == 0 ? 2 : (int32_t)(1000 + sc_rng_below(&r, 200000));
    at += (size_t)snprintf(line + at, sizeof line - at, "%d ", (int)F.prompt[i]);
  }
  F.ids = tu_join(F.root, "ids.txt");
  tu_write_str(F.ids, line);
  assert_int_equal(g3_model_load(&F.m, F.model), 0);
  return 0;
}

static int teardown(void **state) {
  (void)state;
  g3_model_free(F.m);
  tu_run(NULL, NULL, "rm -rf '%s'", F.root);
  free(F.root);
  free(F.tok);
  free(F.model);
  free(F.ids);
  return 0;
}

static void greedy_opts(g3_gen_opts *o) {
  g3_gen_opts_init(o, F.m);
  o->n_eos = 0; /* run the full N_NEW steps */
  o->max_new_tokens = N_NEW;
}

/* Argmax (ids < limit) of the last row of a fresh full forward over seq. */
static int32_t full_argmax(const int32_t *seq, int64_t n, int32_t limit) {
  float *lg = malloc(262208 * sizeof *lg);
  g3_state *s;
  assert_int_equal(g3_state_create(&s, F.m, n), 0);
  g3_forward_io io = {.ids = seq, .n = n, .logits = lg, .logits_last = 1};
  assert_int_equal(g3_forward(F.m, s, &io), 0);
  int32_t best = 0;
  for (int32_t i = 1; i < limit; i++)
    if (lg[i] > lg[best]) best = i;
  g3_state_free(s);
  free(lg);
  return best;
}

static void test_greedy_equals_full_argmax(void **state) {
  (void)state;
  g3_gen_opts o;
  greedy_opts(&o);
  assert_int_equal(o.vocab_limit, 262144);
  int32_t *out, seq[N_PROMPT + N_NEW];
  int64_t n;
  assert_int_equal(g3_generate(F.m, F.prompt, N_PROMPT, &o, &out, &n), 0);
  assert_int_equal(n, N_NEW);
  memcpy(seq, F.prompt, sizeof F.prompt);
  for (int i = 0; i < N_NEW; i++) {
    int32_t want = full_argmax(seq, N_PROMPT + i, o.vocab_limit);
    assert_int_equal(out[i], want);
    seq[N_PROMPT + i] = want;
  }
  /* The prompt + continuation crosses the sliding window (8) many times. */
  free(out);
}

/* Greedy ids of prompt in precision p (the model's precision is what
 * g3_generate's state starts in). */
static int32_t *greedy_in(sc_precision p, const int32_t *prompt, int64_t n_prompt, int64_t *n) {
  g3_gen_opts o;
  greedy_opts(&o);
  int32_t *out = NULL;
  F.m->precision = p;
  int rc = g3_generate(F.m, prompt, n_prompt, &o, &out, n);
  F.m->precision = SC_PRECISION_F32;
  if (rc) print_error("%s\n", sc_error_get());
  assert_int_equal(rc, 0);
  assert_int_equal(*n, N_NEW);
  return out;
}

/* The test prompts: F.prompt and three more of 5, 20 and 31 random ids.
 * A random tiny model's greedy text soon repeats one token (measured: 1 to
 * 2 token switches in 16), so the per-position argmax comparison over 40
 * prompt positions in test_decoder.c is the stronger check; these cover
 * the cached decode loop. */
static void test_prompt(int k, int32_t *ids, int64_t *n) {
  static const int lens[] = {N_PROMPT, 5, 20, 31};
  sc_rng r;
  sc_rng_seed(&r, 100 + (uint64_t)k);
  *n = lens[k];
  for (int64_t i = 0; i < *n; i++)
    ids[i] = k == 0 ? F.prompt[i] : i == 0 ? 2 : (int32_t)(1000 + sc_rng_below(&r, 200000));
}

static void test_bf16_greedy_same_tokens(void **state) {
  (void)state;
  for (int k = 0; k < 4; k++) {
    int32_t prompt[64];
    int64_t np, n32, n16;
    test_prompt(k, prompt, &np);
    int32_t *a = greedy_in(SC_PRECISION_F32, prompt, np, &n32), *b = greedy_in(SC_PRECISION_BF16, prompt, np, &n16);
    int same = 0;
    while (same < N_NEW && a[same] == b[same]) same++;
    print_message("prompt %d (%lld ids): bf16 greedy equals f32 for %d of %d tokens\n", k, (long long)np,
                  same, N_NEW);
    assert_int_equal(same, N_NEW);
    free(a);
    free(b);
  }
}

/* bf16 greedy (cached decode) vs the argmax of repeated bf16 full forwards. */
static void test_bf16_greedy_equals_full_argmax(void **state) {
  (void)state;
  int64_t n;
  int32_t *out = greedy_in(SC_PRECISION_BF16, F.prompt, N_PROMPT, &n), seq[N_PROMPT + N_NEW];
  memcpy(seq, F.prompt, sizeof F.prompt);
  F.m->precision = SC_PRECISION_BF16;
  for (int i = 0; i < N_NEW; i++) {
    seq[N_PROMPT + i] = full_argmax(seq, N_PROMPT + i, 262144);
    if (out[i] != seq[N_PROMPT + i]) print_error("step %d: %d vs %d\n", i, (int)out[i], (int)seq[N_PROMPT + i]);
  }
  F.m->precision = SC_PRECISION_F32;
  assert_memory_equal(out, seq + N_PROMPT, N_NEW * sizeof *out);
  free(out);
}

static void test_stops_at_eos(void **state) {
  (void)state;
  g3_gen_opts o;
  greedy_opts(&o);
  int32_t *all, *out;
  int64_t n_all, n;
  assert_int_equal(g3_generate(F.m, F.prompt, N_PROMPT, &o, &all, &n_all), 0);
  o.n_eos = 1;
  o.eos[0] = all[3];
  int first = 0;
  while (all[first] != all[3]) first++;
  assert_int_equal(g3_generate(F.m, F.prompt, N_PROMPT, &o, &out, &n), 0);
  assert_int_equal(n, first + 1); /* the stop id is kept, nothing after it */
  assert_memory_equal(out, all, (size_t)n * sizeof *out);
  free(out);
  o.max_new_tokens = 0;
  assert_int_equal(g3_generate(F.m, F.prompt, N_PROMPT, &o, &out, &n), 0);
  assert_int_equal(n, 0);
  free(out);
  free(all);
}

static int32_t *cli_ids(const char *args, int64_t *n, char **text) {
  char *out = NULL, *err = NULL;
  int rc = tu_run(&out, &err, "'%s' -q generate --model '%s' --ids '%s' --json %s", tu_bin(), F.model, F.ids,
                  args);
  if (rc) print_error("%s\n", err);
  assert_int_equal(rc, 0);
  assert_int_equal(tu_count_lines(out), 1);
  sc_json *j;
  assert_int_equal(sc_json_parse(out, strlen(out), "stdout", &j), 0);
  const sc_json *a = sc_json_get(j, "ids");
  *n = sc_json_size(a);
  int32_t *ids = malloc((size_t)(*n + 1) * sizeof *ids);
  for (int64_t i = 0; i < *n; i++) ids[i] = (int32_t)sc_json_num(sc_json_at(a, (int)i));
  *text = strdup(sc_json_str(sc_json_get(j, "text")));
  sc_json_free(j);
  free(out);
  free(err);
  return ids;
}

/* The CLI prints what the library generates; the text is the decode. The
 * tiny config's eos ids (1, 106) come from generation_config.json. */
static void test_cli_matches_library(void **state) {
  (void)state;
  g3_gen_opts o;
  g3_gen_opts_init(&o, F.m);
  assert_int_equal(g3_gen_eos_load(&o, F.model), 0);
  o.max_new_tokens = 10;
  int32_t *lib;
  int64_t n_lib, n_cli;
  char *text, *want;
  assert_int_equal(g3_generate(F.m, F.prompt, N_PROMPT, &o, &lib, &n_lib), 0);
  int32_t *cli = cli_ids("--max-new-tokens 10", &n_cli, &text);
  assert_int_equal(n_cli, n_lib);
  assert_memory_equal(cli, lib, (size_t)n_lib * sizeof *lib);
  tok_tokenizer *tok;
  assert_int_equal(tok_load(&tok, F.tok), 0);
  assert_int_equal(tok_decode(tok, lib, (size_t)n_lib, 1, &want, NULL), 0);
  assert_string_equal(text, want);
  /* Plain output: the same text and a newline. */
  char *out = NULL;
  assert_int_equal(tu_run(&out, NULL, "'%s' -q generate --model '%s' --ids '%s' --max-new-tokens 10",
                          tu_bin(), F.model, F.ids), 0);
  assert_int_equal(strlen(out), strlen(want) + 1);
  assert_memory_equal(out, want, strlen(want));
  free(out);
  tok_free(tok);
  free(want);
  free(text);
  free(cli);
  free(lib);
}

static void test_cli_sampling_seeded(void **state) {
  (void)state;
  int64_t n1, n2, n3, ng, nk;
  char *t1, *t2, *t3, *tg, *tk;
  const char *samp = "--max-new-tokens 12 --temperature 1.5 --top-p 0.99";
  char args[256];
  snprintf(args, sizeof args, "%s --seed 4", samp);
  int32_t *a = cli_ids(args, &n1, &t1), *b = cli_ids(args, &n2, &t2);
  snprintf(args, sizeof args, "%s --seed 5", samp);
  int32_t *c = cli_ids(args, &n3, &t3);
  assert_int_equal(n1, n2);
  assert_memory_equal(a, b, (size_t)n1 * sizeof *a);
  assert_true(n1 != n3 || memcmp(a, c, (size_t)n1 * sizeof *a) != 0);
  /* top-k 1 leaves only the argmax: the greedy continuation. */
  int32_t *g = cli_ids("--max-new-tokens 12", &ng, &tg);
  int32_t *k = cli_ids("--max-new-tokens 12 --temperature 0.7 --top-k 1 --seed 9", &nk, &tk);
  assert_int_equal(ng, nk);
  assert_memory_equal(g, k, (size_t)ng * sizeof *g);
  free(a), free(b), free(c), free(g), free(k);
  free(t1), free(t2), free(t3), free(tg), free(tk);
}

/* --precision bf16 prints the library's bf16 ids; a bad value is a usage
 * error. */
static void test_cli_bf16(void **state) {
  (void)state;
  int64_t n_cli, n_lib;
  char *text, *err = NULL;
  int32_t *cli = cli_ids("--max-new-tokens 16 --precision bf16", &n_cli, &text);
  int32_t *lib = greedy_in(SC_PRECISION_BF16, F.prompt, N_PROMPT, &n_lib);
  assert_true(n_cli <= n_lib); /* the CLI also stops at eos */
  assert_memory_equal(cli, lib, (size_t)n_cli * sizeof *cli);
  int rc = tu_run(NULL, &err, "'%s' generate --model '%s' --ids '%s' --precision fp8", tu_bin(), F.model, F.ids);
  assert_int_equal(rc, 2);
  tu_assert_one_line_error(rc, err, "bad or missing value for --precision", NULL);
  free(err);
  free(text);
  free(cli);
  free(lib);
}

static void test_cli_errors(void **state) {
  (void)state;
  char *err = NULL, *bad = tu_join(F.root, "bad_ids.txt");
  tu_write_str(bad, "2 300000");
  int rc = tu_run(NULL, &err, "'%s' generate --model '%s' --ids '%s'", tu_bin(), F.model, bad);
  tu_assert_one_line_error(rc, err, "bad_ids.txt: token id 300000 is out of range [0, 262208)", NULL);
  free(err);
  rc = tu_run(NULL, &err, "'%s' generate --model '%s' --ids '%s' --top-p 0", tu_bin(), F.model, F.ids);
  assert_int_equal(rc, 2);
  tu_assert_one_line_error(rc, err, "--top-p", NULL);
  free(err);
  rc = tu_run(NULL, &err, "'%s' generate --model '%s' --ids '%s' --chat", tu_bin(), F.model, F.ids);
  tu_assert_one_line_error(rc, err, "--chat needs --prompt", NULL);
  free(err);
  free(bad);
}

/* --prompt with --chat runs the tokenizer and chat template path. */
static void test_cli_prompt_chat(void **state) {
  (void)state;
  char *out = NULL, *err = NULL;
  int rc = tu_run(&out, &err, "'%s' generate --model '%s' --prompt 'Describe the image.' --chat "
                  "--max-new-tokens 4 --json", tu_bin(), F.model);
  if (rc) print_error("%s\n", err);
  assert_int_equal(rc, 0);
  assert_non_null(strstr(out, "\"ids\":"));
  /* The masked-vocabulary note goes to stderr, never stdout. */
  assert_non_null(strstr(err, "ids >= 262144 are masked"));
  free(out);
  free(err);
}

/* ==== eos from generation_config.json ==== */

static int eos_from(const char *json, g3_gen_opts *o) {
  char *dir = tu_join(F.root, "gc"), *p = tu_join(dir, "generation_config.json");
  tu_run(NULL, NULL, "rm -rf '%s' && mkdir -p '%s'", dir, dir);
  if (json) tu_write_str(p, json);
  g3_gen_opts_init(o, F.m);
  int rc = g3_gen_eos_load(o, dir);
  free(dir);
  free(p);
  return rc;
}

static void test_eos_config(void **state) {
  (void)state;
  g3_gen_opts o;
  assert_int_equal(eos_from(NULL, &o), 0); /* no file: config.json's */
  assert_int_equal(o.n_eos, 2);
  assert_int_equal(o.eos[1], 106);
  assert_int_equal(eos_from("{\"eos_token_id\": 7}", &o), 0);
  assert_int_equal(o.n_eos, 1);
  assert_int_equal(o.eos[0], 7);
  assert_int_equal(eos_from("{\"eos_token_id\": [1, 106, 9]}", &o), 0);
  assert_int_equal(o.n_eos, 3);
  assert_int_equal(o.eos[2], 9);
  assert_int_equal(eos_from("{\"eos_token_id\": \"x\"}", &o), SC_ERR_FORMAT);
  assert_non_null(strstr(sc_error_get(), "generation_config.json: eos_token_id: expected a number"));
  assert_int_equal(eos_from("{\"eos_token_id\": [1, -2]}", &o), SC_ERR_FORMAT);
  assert_non_null(strstr(sc_error_get(), "eos_token_id: entry 1 is not a token id"));
  assert_int_equal(eos_from("{\"eos_token_id\": [1,2,3,4,5,6,7,8,9]}", &o), SC_ERR_RANGE);
  assert_int_equal(eos_from("[1]", &o), SC_ERR_FORMAT);
}

/* ==== The sampler on small logit vectors ==== */

static g3_gen_opts sampler_opts(double temp, int top_k, double top_p, int32_t limit) {
  g3_gen_opts o;
  memset(&o, 0, sizeof o);
  o.temperature = temp;
  o.top_k = top_k;
  o.top_p = top_p;
  o.vocab_limit = limit;
  return o;
}

/* Frequencies of N_DRAWS draws against probabilities p (0 = never). */
static void check_freq(const float *logits, const g3_gen_opts *o, const double *p) {
  int counts[8] = {0};
  float work[3 * 8];
  sc_rng r;
  sc_rng_seed(&r, 17);
  for (int i = 0; i < N_DRAWS; i++) counts[g3_sample(logits, o, &r, work)]++;
  for (int i = 0; i < o->vocab_limit; i++) {
    double f = (double)counts[i] / N_DRAWS;
    if (p[i] == 0.0) assert_int_equal(counts[i], 0);
    else assert_true(fabs(f - p[i]) <= FREQ_TOL);
  }
}

static void test_sampler(void **state) {
  (void)state;
  /* probabilities 0.6, 0.3, 0.1 at temperature 1; rows 3..7 masked */
  const float lg[8] = {logf(0.3f), logf(0.6f), logf(0.1f), 50, 50, 50, 50, 50};
  g3_gen_opts o = sampler_opts(0.0, 0, 1.0, 3);
  float work[24];
  sc_rng r;
  sc_rng_seed(&r, 1);
  assert_int_equal(g3_sample(lg, &o, &r, work), 1); /* greedy ignores rows >= limit */
  o = sampler_opts(1.0, 0, 1.0, 3);
  check_freq(lg, &o, (const double[]){0.3, 0.6, 0.1});
  o = sampler_opts(1.0, 2, 1.0, 3); /* top-k 2 renormalises 0.6 : 0.3 */
  check_freq(lg, &o, (const double[]){1.0 / 3, 2.0 / 3, 0});
  o = sampler_opts(1.0, 0, 0.5, 3); /* 0.6 alone reaches 0.5 */
  check_freq(lg, &o, (const double[]){0, 1, 0});
  o = sampler_opts(1.0, 0, 0.7, 3); /* 0.6 < 0.7: the next one too */
  check_freq(lg, &o, (const double[]){1.0 / 3, 2.0 / 3, 0});
  /* temperature 2: probabilities proportional to sqrt(p) */
  double s = sqrt(0.3) + sqrt(0.6) + sqrt(0.1);
  o = sampler_opts(2.0, 0, 1.0, 3);
  check_freq(lg, &o, (const double[]){sqrt(0.3) / s, sqrt(0.6) / s, sqrt(0.1) / s});
  /* top-k keeps ties at the k-th value (HF TopKLogitsWarper). */
  const float tie[3] = {1.0f, 2.0f, 1.0f};
  o = sampler_opts(1.0, 2, 1.0, 3);
  double e = exp(1.0), t = 2 * e + exp(2.0);
  check_freq(tie, &o, (const double[]){e / t, exp(2.0) / t, e / t});
}

static void test_opts_check(void **state) {
  (void)state;
  g3_gen_opts o;
  g3_gen_opts_init(&o, F.m);
  assert_int_equal(g3_gen_opts_check(&o, F.m), 0);
  o.top_p = 0.0;
  assert_int_equal(g3_gen_opts_check(&o, F.m), SC_ERR_ARG);
  o.top_p = 1.0;
  o.temperature = -1;
  assert_int_equal(g3_gen_opts_check(&o, F.m), SC_ERR_ARG);
  o.temperature = 0;
  o.vocab_limit = 262209;
  assert_int_equal(g3_gen_opts_check(&o, F.m), SC_ERR_ARG);
  int32_t *out;
  int64_t n;
  assert_int_equal(g3_generate(F.m, F.prompt, N_PROMPT, &o, &out, &n), SC_ERR_ARG);
  assert_null(out);
}

static void test_ids_parse(void **state) {
  (void)state;
  int32_t *ids;
  int64_t n;
  const char *s = " 2\t105\n\n  7 ";
  assert_int_equal(g3_ids_parse(s, strlen(s), "x", 262208, &ids, &n), 0);
  assert_int_equal(n, 3);
  assert_int_equal(ids[1], 105);
  free(ids);
  s = "1 99999999999999999999999";
  assert_int_equal(g3_ids_parse(s, strlen(s), "x", 262208, &ids, &n), SC_ERR_RANGE);
  assert_non_null(strstr(sc_error_get(), "x: token id"));
  assert_int_equal(g3_ids_parse("1,2", 3, "x", 262208, &ids, &n), SC_ERR_FORMAT);
  assert_string_equal(sc_error_get(), "x: '1,2' is not a token id");
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_greedy_equals_full_argmax),
      cmocka_unit_test(test_bf16_greedy_same_tokens),
      cmocka_unit_test(test_bf16_greedy_equals_full_argmax),
      cmocka_unit_test(test_cli_bf16),
      cmocka_unit_test(test_stops_at_eos),
      cmocka_unit_test(test_cli_matches_library),
      cmocka_unit_test(test_cli_sampling_seeded),
      cmocka_unit_test(test_cli_errors),
      cmocka_unit_test(test_cli_prompt_chat),
      cmocka_unit_test(test_eos_config),
      cmocka_unit_test(test_sampler),
      cmocka_unit_test(test_opts_check),
      cmocka_unit_test(test_ids_parse),
  };
  return cmocka_run_group_tests(tests, setup, teardown);
}
