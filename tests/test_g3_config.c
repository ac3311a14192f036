/* test_g3_config.c: config.json parsing (defaults, both RoPE / layer-type
 * forms, aliases), validation messages, and the writer's round trip. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "base/error.h"
#include "model/g3_config.h"
#include "tu.h"

/* The keys the real google/gemma-3-4b-it config.json names, with room for
 * extra keys at the start of each object (the first of a repeated key wins,
 * so an extra key overrides the hub value). */
static const char *HUB_FMT =
    "{%s\"architectures\": [\"Gemma3ForConditionalGeneration\"],\n"
    " \"boi_token_index\": 255999, \"eoi_token_index\": 256000,\n"
    " \"eos_token_id\": [1, 106], \"image_token_index\": 262144,\n"
    " \"initializer_range\": 0.02, \"mm_tokens_per_image\": 256, \"model_type\": \"gemma3\",\n"
    " \"text_config\": {%s\"hidden_size\": 2560, \"intermediate_size\": 10240,\n"
    "   \"model_type\": \"gemma3_text\", \"num_hidden_layers\": 34,\n"
    "   \"rope_scaling\": {\"factor\": 8.0, \"rope_type\": \"linear\"}, \"sliding_window\": 1024},\n"
    " \"torch_dtype\": \"bfloat16\", \"transformers_version\": \"4.50.0.dev0\",\n"
    " \"vision_config\": {%s\"hidden_size\": 1152, \"image_size\": 896,\n"
    "   \"intermediate_size\": 4304, \"model_type\": \"siglip_vision_model\",\n"
    "   \"num_attention_heads\": 16, \"num_hidden_layers\": 27, \"patch_size\": 14,\n"
    "   \"vision_use_head\": false}}\n";

/* Hub config with extra keys (each "" or `"k": v, `) in top / text / vision. */
static char *hub(const char *top, const char *text, const char *vision) {
  size_t n = strlen(HUB_FMT) + strlen(top) + strlen(text) + strlen(vision) + 1;
  char *s = malloc(n);
  assert_non_null(s);
  snprintf(s, n, HUB_FMT, top, text, vision);
  return s;
}

static int parse_str(const char *json, g3_config *c) {
  return g3_config_parse(json, strlen(json), "cfg.json", c);
}

static void assert_rope_equal(const g3_rope *a, const g3_rope *b) {
  assert_int_equal(a->type, b->type);
  assert_true(a->theta == b->theta);
  assert_true(a->factor == b->factor);
}

/* Field-by-field equality (struct padding is not compared). */
static void assert_config_equal(const g3_config *a, const g3_config *b) {
  const g3_text_config *x = &a->text, *y = &b->text;
  assert_string_equal(a->model_type, b->model_type);
  assert_string_equal(a->dtype, b->dtype);
  assert_int_equal(a->has_vision, b->has_vision);
  assert_int_equal(x->vocab_size, y->vocab_size);
  assert_int_equal(x->hidden_size, y->hidden_size);
  assert_int_equal(x->intermediate_size, y->intermediate_size);
  assert_int_equal(x->num_hidden_layers, y->num_hidden_layers);
  assert_int_equal(x->num_attention_heads, y->num_attention_heads);
  assert_int_equal(x->num_key_value_heads, y->num_key_value_heads);
  assert_int_equal(x->head_dim, y->head_dim);
  assert_true(x->query_pre_attn_scalar == y->query_pre_attn_scalar);
  assert_true(x->rms_norm_eps == y->rms_norm_eps);
  assert_rope_equal(&x->rope_global, &y->rope_global);
  assert_rope_equal(&x->rope_local, &y->rope_local);
  assert_int_equal(x->sliding_window, y->sliding_window);
  assert_memory_equal(x->is_sliding, y->is_sliding, (size_t)x->num_hidden_layers);
  assert_int_equal(x->max_position_embeddings, y->max_position_embeddings);
  assert_true(x->final_logit_softcapping == y->final_logit_softcapping);
  assert_true(x->attn_logit_softcapping == y->attn_logit_softcapping);
  assert_int_equal(x->tie_word_embeddings, y->tie_word_embeddings);
  assert_int_equal(x->bos_token_id, y->bos_token_id);
  assert_int_equal(x->pad_token_id, y->pad_token_id);
  assert_int_equal(x->n_eos, y->n_eos);
  assert_memory_equal(x->eos_token_ids, y->eos_token_ids, (size_t)x->n_eos * sizeof(int));
  if (!a->has_vision) return;
  const g3_vision_config *v = &a->vision, *w = &b->vision;
  assert_int_equal(v->hidden_size, w->hidden_size);
  assert_int_equal(v->intermediate_size, w->intermediate_size);
  assert_int_equal(v->num_hidden_layers, w->num_hidden_layers);
  assert_int_equal(v->num_attention_heads, w->num_attention_heads);
  assert_int_equal(v->num_channels, w->num_channels);
  assert_int_equal(v->image_size, w->image_size);
  assert_int_equal(v->patch_size, w->patch_size);
  assert_true(v->layer_norm_eps == w->layer_norm_eps);
  assert_int_equal(v->patches_per_side, w->patches_per_side);
  assert_int_equal(a->mm_tokens_per_image, b->mm_tokens_per_image);
  assert_int_equal(a->mm_tokens_per_side, b->mm_tokens_per_side);
  assert_int_equal(a->mm_pool_kernel, b->mm_pool_kernel);
  assert_int_equal(a->boi_token_id, b->boi_token_id);
  assert_int_equal(a->eoi_token_id, b->eoi_token_id);
  assert_int_equal(a->image_token_id, b->image_token_id);
}

/* Every value of research/gemma3_spec.md §1.1-1.2 for gemma-3-4b-it. */
static void assert_is_4b(const g3_config *c) {
  const g3_text_config *t = &c->text;
  assert_string_equal(c->model_type, "gemma3");
  assert_string_equal(c->dtype, "bfloat16");
  assert_int_equal(c->has_vision, 1);
  assert_int_equal(t->vocab_size, 262208);
  assert_int_equal(t->hidden_size, 2560);
  assert_int_equal(t->intermediate_size, 10240);
  assert_int_equal(t->num_hidden_layers, 34);
  assert_int_equal(t->num_attention_heads, 8);
  assert_int_equal(t->num_key_value_heads, 4);
  assert_int_equal(t->head_dim, 256);
  assert_true(t->query_pre_attn_scalar == 256.0);
  assert_true(t->rms_norm_eps == 1e-6);
  assert_int_equal(t->rope_global.type, G3_ROPE_LINEAR);
  assert_true(t->rope_global.factor == 8.0);
  assert_true(t->rope_global.theta == 1e6);
  assert_int_equal(t->rope_local.type, G3_ROPE_DEFAULT);
  assert_true(t->rope_local.factor == 1.0);
  assert_true(t->rope_local.theta == 1e4);
  assert_int_equal(t->sliding_window, 1024);
  for (int i = 0; i < 34; i++) {
    int global = i == 5 || i == 11 || i == 17 || i == 23 || i == 29;
    assert_int_equal(t->is_sliding[i], !global);
  }
  assert_int_equal(g3_config_n_global(t), 5);
  assert_int_equal(t->max_position_embeddings, 131072);
  assert_true(t->final_logit_softcapping == 0.0);
  assert_true(t->attn_logit_softcapping == 0.0);
  assert_int_equal(t->tie_word_embeddings, 1);
  assert_int_equal(t->bos_token_id, 2);
  assert_int_equal(t->pad_token_id, 0);
  assert_int_equal(t->n_eos, 2);
  assert_int_equal(t->eos_token_ids[0], 1);
  assert_int_equal(t->eos_token_ids[1], 106);
  const g3_vision_config *v = &c->vision;
  assert_int_equal(v->hidden_size, 1152);
  assert_int_equal(v->intermediate_size, 4304);
  assert_int_equal(v->num_hidden_layers, 27);
  assert_int_equal(v->num_attention_heads, 16);
  assert_int_equal(v->num_channels, 3);
  assert_int_equal(v->image_size, 896);
  assert_int_equal(v->patch_size, 14);
  assert_true(v->layer_norm_eps == 1e-6);
  assert_int_equal(v->patches_per_side, 64);
  assert_int_equal(c->mm_tokens_per_image, 256);
  assert_int_equal(c->mm_tokens_per_side, 16);
  assert_int_equal(c->mm_pool_kernel, 4);
  assert_int_equal(c->boi_token_id, 255999);
  assert_int_equal(c->eoi_token_id, 256000);
  assert_int_equal(c->image_token_id, 262144);
}

static void test_hub_defaults(void **state) {
  (void)state;
  g3_config c;
  char *s = hub("", "", "");
  assert_int_equal(parse_str(s, &c), 0);
  assert_is_4b(&c);
  free(s);
}

/* The same model written with rope_parameters + layer_types (transformers
 * v5) gives the same struct. */
static void test_new_form_same_struct(void **state) {
  (void)state;
  char lt[2048] = "\"layer_types\": [";
  for (int i = 0; i < 34; i++)
    strcat(lt, (i + 1) % 6 ? "\"sliding_attention\"," : "\"full_attention\",");
  lt[strlen(lt) - 1] = ']';
  char text[4096];
  snprintf(text, sizeof text,
           "\"rope_scaling\": null, %s, \"rope_parameters\": {"
           "\"sliding_attention\": {\"rope_type\": \"default\", \"rope_theta\": 10000.0},"
           "\"full_attention\": {\"rope_type\": \"linear\", \"factor\": 8.0, \"rope_theta\": 1000000.0}}, ",
           lt);
  char *old = hub("", "", ""), *neu = hub("", text, "");
  g3_config a, b;
  assert_int_equal(parse_str(old, &a), 0);
  assert_int_equal(parse_str(neu, &b), 0);
  assert_config_equal(&a, &b);
  free(old);
  free(neu);
  /* rope_scaling merges over rope_parameters.full_attention; "type" is an
   * accepted spelling of "rope_type"; flat thetas fill what a sub-dict lacks. */
  char *mixed = hub("", "\"rope_theta\": 1000000, \"rope_scaling\": {\"type\": \"linear\", \"factor\": 8},"
                        "\"rope_parameters\": {\"full_attention\": {\"rope_type\": \"default\"}},"
                        "\"sliding_window_pattern\": 6, ",
                    "");
  assert_int_equal(parse_str(mixed, &b), 0);
  assert_config_equal(&a, &b);
  free(mixed);
}

static void test_pattern_and_aliases(void **state) {
  (void)state;
  g3_config c;
  char *s = hub("\"boi_token_id\": 255999, \"image_token_id\": 262144, \"dtype\": \"float32\", ",
                "\"sliding_window_pattern\": 2, \"num_hidden_layers\": 4, ", "");
  assert_int_equal(parse_str(s, &c), 0);
  assert_int_equal(c.text.is_sliding[0], 1);
  assert_int_equal(c.text.is_sliding[1], 0);
  assert_int_equal(c.text.is_sliding[2], 1);
  assert_int_equal(c.text.is_sliding[3], 0);
  assert_int_equal(c.boi_token_id, 255999);
  assert_string_equal(c.dtype, "bfloat16"); /* torch_dtype wins over dtype */
  free(s);
  /* Only the *_token_id spelling. */
  const char *ids = "{\"model_type\": \"gemma3\", \"boi_token_id\": 7, \"eoi_token_id\": 8,"
                    " \"image_token_id\": 9, \"vision_config\": {\"image_size\": 896,"
                    " \"patch_size\": 14}}";
  assert_int_equal(parse_str(ids, &c), 0);
  assert_int_equal(c.boi_token_id, 7);
  assert_int_equal(c.eoi_token_id, 8);
  assert_int_equal(c.image_token_id, 9);
  /* All class defaults: Gemma3TextConfig() and the given vision sizes. */
  assert_int_equal(c.text.hidden_size, 2304);
  assert_int_equal(c.text.num_hidden_layers, 26);
  assert_int_equal(c.text.sliding_window, 4096);
  assert_int_equal(c.text.rope_global.type, G3_ROPE_DEFAULT);
  assert_int_equal(c.text.n_eos, 1);
  assert_int_equal(c.text.eos_token_ids[0], 1);
  assert_int_equal(c.vision.hidden_size, 768);
  assert_int_equal(c.vision.num_hidden_layers, 12);
  assert_string_equal(c.dtype, "");
}

static void test_text_only(void **state) {
  (void)state;
  g3_config c;
  const char *s = "{\"model_type\": \"gemma3_text\", \"hidden_size\": 1152,"
                  " \"num_hidden_layers\": 26, \"sliding_window\": 512, \"dtype\": \"bfloat16\","
                  " \"final_logit_softcapping\": 30.0, \"attn_logit_softcapping\": null}";
  assert_int_equal(parse_str(s, &c), 0);
  assert_string_equal(c.model_type, "gemma3_text");
  assert_int_equal(c.has_vision, 0);
  assert_int_equal(c.text.hidden_size, 1152);
  assert_true(c.text.final_logit_softcapping == 30.0);
  assert_true(c.text.attn_logit_softcapping == 0.0);
  assert_string_equal(c.dtype, "bfloat16");
  for (int form = 0; form < 2; form++) {
    char *j = g3_config_to_json(&c, (g3_config_form)form);
    assert_non_null(j);
    g3_config d;
    assert_int_equal(parse_str(j, &d), 0);
    assert_config_equal(&c, &d);
    free(j);
  }
}

static void test_round_trip(void **state) {
  (void)state;
  g3_config c, d;
  char *s = hub("", "", "");
  assert_int_equal(parse_str(s, &c), 0);
  free(s);
  for (int form = 0; form < 2; form++) {
    char *j = g3_config_to_json(&c, (g3_config_form)form);
    assert_non_null(j);
    assert_int_equal(parse_str(j, &d), 0);
    assert_is_4b(&d);
    assert_config_equal(&c, &d);
    /* The old form names the pattern, the new one the list. */
    assert_int_equal(strstr(j, "sliding_window_pattern") != NULL, form == G3_CONFIG_FORM_OLD);
    assert_int_equal(strstr(j, "layer_types") != NULL, form == G3_CONFIG_FORM_NEW);
    assert_int_equal(strstr(j, "rope_parameters") != NULL, form == G3_CONFIG_FORM_NEW);
    free(j);
  }
  /* A layer pattern no sliding_window_pattern reproduces: the old form
   * falls back to layer_types. */
  c.text.is_sliding[0] = 0;
  char *j = g3_config_to_json(&c, G3_CONFIG_FORM_OLD);
  assert_non_null(strstr(j, "layer_types"));
  assert_int_equal(parse_str(j, &d), 0);
  assert_config_equal(&c, &d);
  free(j);
}

typedef struct bad_case {
  const char *top, *text, *vision; /* extra keys */
  const char *needle;              /* expected message after "cfg.json: " */
} bad_case;

static const bad_case BAD[] = {
    {"\"model_type\": \"llama\", ", "", "", "model_type: 'llama' is not a Gemma 3 model"},
    {"", "\"num_key_value_heads\": 3, ", "",
     "text_config.num_key_value_heads: 3 does not divide num_attention_heads = 8"},
    {"", "\"hidden_size\": 0, ", "", "text_config.hidden_size: 0 is out of range [1, 65536]"},
    {"", "\"hidden_size\": \"big\", ", "", "text_config.hidden_size: expected an integer"},
    {"", "\"intermediate_size\": 2.5, ", "", "text_config.intermediate_size: expected an integer"},
    {"", "\"num_hidden_layers\": 1000, ", "", "text_config.num_hidden_layers: 1000 is out of range"},
    {"", "\"head_dim\": 15, ", "", "text_config.head_dim: must be even"},
    {"", "\"layer_types\": [\"full_attention\"], ", "",
     "text_config.layer_types: has 1 entries, expected num_hidden_layers = 34"},
    {"", "\"num_hidden_layers\": 2, \"layer_types\": [\"full_attention\", \"chunked\"], ", "",
     "text_config.layer_types: entry 1 is not \"sliding_attention\" or \"full_attention\""},
    {"", "\"layer_types\": \"all\", ", "", "text_config.layer_types: expected a list"},
    {"", "\"rope_scaling\": {\"rope_type\": \"yarn\", \"factor\": 8}, ", "",
     "text_config.rope_scaling.rope_type: unsupported RoPE type 'yarn' (saecap implements "
     "default and linear)"},
    {"", "\"rope_scaling\": {\"type\": \"dynamic\", \"factor\": 8}, ", "",
     "text_config.rope_scaling.type: unsupported RoPE type 'dynamic'"},
    {"", "\"rope_scaling\": {\"rope_type\": \"linear\"}, ", "",
     "text_config.rope_scaling.factor: missing (linear RoPE needs a scaling factor)"},
    {"", "\"rope_scaling\": [8], ", "", "text_config.rope_scaling: expected an object"},
    {"", "\"rope_parameters\": {\"global\": {\"rope_type\": \"default\"}}, ", "",
     "text_config.rope_parameters: expected only 'full_attention' and 'sliding_attention'"},
    {"", "\"rope_parameters\": {\"sliding_attention\": {\"rope_theta\": -5}}, ", "",
     "text_config.rope_parameters.sliding_attention.rope_theta: -5 is out of range"},
    {"", "\"rope_theta\": \"big\", ", "", "text_config.rope_theta: expected a number"},
    {"", "\"rms_norm_eps\": -1, ", "", "text_config.rms_norm_eps: -1 is out of range"},
    {"", "\"attention_bias\": true, ", "", "text_config.attention_bias: true is not supported"},
    {"", "\"tie_word_embeddings\": 1, ", "", "text_config.tie_word_embeddings: expected true or false"},
    {"", "\"hidden_activation\": \"relu\", ", "",
     "text_config.hidden_activation: 'relu' is not supported (expected \"gelu_pytorch_tanh\")"},
    {"", "\"model_type\": \"gemma2\", ", "", "text_config.model_type: 'gemma2' is not supported"},
    {"", "\"vocab_size\": 100, ", "", "text_config.eos_token_id: id is not below vocab_size = 100"},
    {"", "", "\"image_size\": 900, ", "vision_config.patch_size: 14 does not divide image_size = 900"},
    {"", "", "\"num_attention_heads\": 5, ",
     "vision_config.num_attention_heads: 5 does not divide hidden_size = 1152"},
    {"", "", "\"num_channels\": 1, ", "vision_config.num_channels: must be 3 (RGB)"},
    {"", "", "\"layer_norm_eps\": 0, ", "vision_config.layer_norm_eps: 0 is out of range"},
    {"", "", "\"model_type\": \"clip\", ", "vision_config.model_type: 'clip' is not supported"},
    {"\"mm_tokens_per_image\": 200, ", "", "", "mm_tokens_per_image: must be a perfect square"},
    {"\"mm_tokens_per_image\": 9, ", "", "",
     "mm_tokens_per_image: side 3 does not divide the 64 patches per side of vision_config"},
    {"\"image_token_index\": 300000, ", "", "",
     "image_token_index: id is not below text_config.vocab_size = 262208"},
    {"\"boi_token_index\": 1, \"boi_token_id\": 2, ", "", "",
     "boi_token_index: 1 disagrees with boi_token_id = 2"},
    {"\"eos_token_id\": \"x\", ", "", "", "eos_token_id: expected a token id or a list of 1 to 8 ids"},
    {"\"eos_token_id\": [1, -3], ", "", "", "eos_token_id: expected a list of token ids"},
    {"\"text_config\": 5, ", "", "", "text_config: expected an object"},
    {"\"vision_config\": [], ", "", "", "vision_config: expected an object"},
};

static void expect_message(const char *json, const char *needle) {
  g3_config c;
  int rc = parse_str(json, &c);
  const char *m = sc_error_get();
  if (rc >= 0 || strncmp(m, "cfg.json: ", 10) != 0 ||
      strncmp(m + 10, needle, strlen(needle)) != 0 || strchr(m, '\n')) {
    print_error("rc %d, message '%s', expected 'cfg.json: %s...'\n", rc, m, needle);
    fail();
  }
}

static void test_bad_configs(void **state) {
  (void)state;
  for (size_t i = 0; i < sizeof BAD / sizeof BAD[0]; i++) {
    char *s = hub(BAD[i].top, BAD[i].text, BAD[i].vision);
    expect_message(s, BAD[i].needle);
    free(s);
  }
  expect_message("[1, 2]", "expected a JSON object");
  expect_message("{\"text_config\": {}}", "model_type: missing (expected \"gemma3\")");
  expect_message("{\"model_type\": 3}", "model_type: expected a string");
  expect_message("{\"model_type\": \"gemma3\", ", "malformed JSON at line 1");
  expect_message("", "malformed JSON");
  /* Defaults are validated too: SigLIP's default 224/16 grid (14 per side)
   * can't pool to 16x16 tokens. */
  expect_message("{\"model_type\": \"gemma3\"}",
                 "mm_tokens_per_image: side 16 does not divide the 14 patches per side");
}

static void test_load(void **state) {
  (void)state;
  char *dir = tu_tmpdir("g3_config_load");
  g3_config c;
  assert_int_equal(g3_config_load(dir, &c), SC_ERR_IO);
  assert_non_null(strstr(sc_error_get(), "config.json"));
  char *path = tu_join(dir, "config.json");
  char *s = hub("", "", "");
  tu_write_str(path, s);
  assert_int_equal(g3_config_load(dir, &c), 0);
  assert_is_4b(&c);
  tu_write_str(path, "{\"model_type\": \"gemma3\", \"text_config\": {\"head_dim\": 7}}");
  assert_true(g3_config_load(dir, &c) < 0);
  /* The message names the file's path. */
  char want[1024];
  snprintf(want, sizeof want, "%s: text_config.head_dim: must be even (rotate-half RoPE)", path);
  assert_string_equal(sc_error_get(), want);
  free(s);
  free(path);
  free(dir);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_hub_defaults),     cmocka_unit_test(test_new_form_same_struct),
      cmocka_unit_test(test_pattern_and_aliases), cmocka_unit_test(test_text_only),
      cmocka_unit_test(test_round_trip),       cmocka_unit_test(test_bad_configs),
      cmocka_unit_test(test_load),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
