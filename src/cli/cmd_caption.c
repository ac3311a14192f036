/* cmd_caption.c: `saecap caption`: one image + an instruction -> a caption
 * with Gemma 3 (vision tower, projector, merged prompt, KV-cached decoding;
 * f32 reference mode or bf16, --precision), optionally steered with SAE
 * features (analysis/steer.h) at one or more layers. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "analysis/steer.h"
#include "base/error.h"
#include "base/fs.h"
#include "cli/cli.h"
#include "io/json.h"
#include "io/safetensors.h"
#include "model/caption.h"
#include "model/decoder.h"
#include "model/generate.h"
#include "model/tokenizer.h"
#include "model/vision.h"
#include "sae/sae.h"
#include "sae/sae_io.h"
#include "tensor/kernels.h"

static const char *const usage =
    "usage: saecap caption --model DIR --image PATH [--prompt TEXT | --lang en|ar]\n"
    "                      [--max-new-tokens N] [--json] [--dump OUT.safetensors]\n"
    "                      [--precision f32|bf16]\n"
    "                      [--steer-sae DIR --steer-features I,J,... [--steer-mode M]]...\n\n"
    "Captions one image with Gemma 3: the image is decoded, turned upright by its\n"
    "EXIF orientation and preprocessed as DIR/preprocessor_config.json says, run through\n"
    "the SigLIP tower and the projector, and placed in the IT chat prompt before the\n"
    "instruction; the caption is decoded greedily and printed (special tokens skipped).\n"
    "Soft tokens of the image attend to each other in both directions, on sliding\n"
    "layers too without a window limit (transformers 4.5x).\n\n"
    "options:\n"
    "  --model DIR          Hugging Face Gemma 3 checkpoint folder (with a vision tower)\n"
    "  --image PATH         PNG or JPEG\n"
    "  --prompt TEXT        the instruction (default: the --lang one)\n"
    "  --lang en|ar         default instruction: en \"" G3_CAPTION_PROMPT_EN "\",\n"
    "                       ar \"" G3_CAPTION_PROMPT_AR "\" (default en)\n"
    "  --max-new-tokens N   default 64\n"
    "  --precision P        f32 (default: the reference mode) or bf16: every GEMM input of\n"
    "                       the vision tower, projector and decoder rounded to bf16, bf16 x\n"
    "                       bf16 with f32 sums (norms, softmax, GELU, residuals stay f32)\n"
    "  --json               print {\"prompt_ids\": [...], \"ids\": [...], \"text\": \"...\"}\n"
    "  --dump OUT           also write (atomically) a safetensors file of the prompt's\n"
    "                       forward: pixel_values [1,3,S,S], vision_out [1,N,Dv],\n"
    "                       image_embeds [1,M,d], embeds, resid_post.<L>, final_norm [T,d],\n"
    "                       logits [T,V]\n"
    "  --steer-sae DIR      steer with the SAE in DIR (SAELens or Gemma Scope 2) at the layer\n"
    "                       its hook names (blocks.<L>.hook_resid_post); repeat the options\n"
    "                       to steer at several layers (the i-th --steer-features and\n"
    "                       --steer-mode go with the i-th --steer-sae)\n"
    "  --steer-features L   comma-separated feature indices, e.g. 3,17,250\n"
    "  --steer-mode M       ablate (default): f' = 0; scale:A: f' = A*f; clamp:V: f' = V;\n"
    "                       these keep the SAE's reconstruction error: x' = x + sum (f'-f) d;\n"
    "                       add:C: x' = x + C * sum d. Given once, it applies to every SAE.\n"
    "                       Every position is edited, prompt and generated tokens alike;\n"
    "                       --dump then holds the steered forward\n"
    "  -h, --help           this text\n";

#define CAP_MAX_STEER AN_STEER_MAX_OPS

typedef struct cap_args {
  const char *model, *image, *prompt, *lang, *dump;
  const char *steer_sae[CAP_MAX_STEER], *steer_features[CAP_MAX_STEER], *steer_mode[CAP_MAX_STEER];
  int n_sae, n_features, n_mode;
  int json;
  long long max_new;
  sc_precision precision;
} cap_args;

/* One option with a value; 1 if o is not one of these, -1 bad value. */
static int parse_valued(cap_args *a, const char *o, const char *val) {
  if (!strcmp(o, "--model")) a->model = val;
  else if (!strcmp(o, "--image")) a->image = val;
  else if (!strcmp(o, "--prompt")) a->prompt = val;
  else if (!strcmp(o, "--lang")) a->lang = val;
  else if (!strcmp(o, "--dump")) a->dump = val;
  else if (!strcmp(o, "--steer-sae") || !strcmp(o, "--steer-features") || !strcmp(o, "--steer-mode")) {
    int *n = o[8] == 's' ? &a->n_sae : o[8] == 'f' ? &a->n_features : &a->n_mode;
    const char **list = o[8] == 's' ? a->steer_sae : o[8] == 'f' ? a->steer_features : a->steer_mode;
    if (!val || *n >= CAP_MAX_STEER) return -1;
    list[(*n)++] = val;
  }
  else if (!strcmp(o, "--max-new-tokens")) return cli_parse_int(val, 0, G3_MAX_NEW_TOKENS, &a->max_new);
  else if (!strcmp(o, "--precision")) return val && !sc_precision_parse(val, &a->precision) ? 0 : -1;
  else return 1;
  return val ? 0 : -1;
}

static int parse_args(int argc, char **argv, cap_args *a) {
  memset(a, 0, sizeof *a);
  a->max_new = 64;
  for (int i = 1; i < argc; i++) {
    if (!strcmp(argv[i], "--json")) {
      a->json = 1;
      continue;
    }
    int r = parse_valued(a, argv[i], i + 1 < argc ? argv[i + 1] : NULL);
    if (r > 0) return cli_usage_error("caption", "unexpected argument '%s'", argv[i]);
    if (r < 0) return cli_usage_error("caption", "bad or missing value for %s", argv[i]);
    i++;
  }
  if (!a->model) return cli_usage_error("caption", "--model is required");
  if (!a->image) return cli_usage_error("caption", "--image is required");
  if (a->prompt && a->lang) return cli_usage_error("caption", "give at most one of --prompt and --lang");
  if (a->lang && strcmp(a->lang, "en") && strcmp(a->lang, "ar"))
    return cli_usage_error("caption", "--lang: '%s' is not en or ar", a->lang);
  if (a->n_sae != a->n_features)
    return cli_usage_error("caption", "give one --steer-features per --steer-sae (%d and %d given)", a->n_features,
                           a->n_sae);
  if (a->n_mode > 1 && a->n_mode != a->n_sae)
    return cli_usage_error("caption", "give --steer-mode once or once per --steer-sae (%d and %d given)", a->n_mode,
                           a->n_sae);
  if (a->n_mode && !a->n_sae) return cli_usage_error("caption", "--steer-mode needs --steer-sae");
  if (!a->prompt) a->prompt = a->lang && !strcmp(a->lang, "ar") ? G3_CAPTION_PROMPT_AR : G3_CAPTION_PROMPT_EN;
  return 0;
}

/* Everything one run holds; zero-initialised so one free path works. */
typedef struct cap_run {
  g3_model *m;
  sae *saes[CAP_MAX_STEER];
  an_steer *steer; /* NULL: no steering */
  g3_vision *v;
  tok_tokenizer *tok;
  float *pixels, *vision_out, *embeds; /* (3,S,S), (N,Dv), (M,d) */
  int32_t *prompt, *out;
  int64_t n_prompt, n_out;
} cap_run;

static void run_free(cap_run *r) {
  an_steer_free(r->steer);
  for (int i = 0; i < CAP_MAX_STEER; i++) sae_free(r->saes[i]);
  g3_vision_free(r->v);
  g3_model_free(r->m);
  tok_free(r->tok);
  free(r->pixels);
  free(r->vision_out);
  free(r->embeds);
  free(r->prompt);
  free(r->out);
}

/* Decode + EXIF + preprocess into r->pixels (size checked against the tower). */
static int load_pixels(const cap_args *a, cap_run *r) {
  if (!(r->pixels = malloc(g3_vision_pixels_floats(r->v) * sizeof(float))))
    return sc_error_setc(SC_ERR_NOMEM, "%s: out of memory", a->image);
  return g3_image_pixels(r->v, a->model, a->image, r->pixels);
}

/* The steering operations; everything is checked before the model runs. */
static int load_steer(const cap_args *a, cap_run *r) {
  if (!a->n_sae) return 0;
  const g3_text_config *t = &r->m->cfg.text;
  int rc = an_steer_create(&r->steer, t->num_hidden_layers, t->hidden_size);
  for (int i = 0; !rc && i < a->n_sae; i++) {
    an_steer_op op = {AN_STEER_ABLATE, 0};
    int32_t *feat = NULL;
    int n_feat = 0, layer = 0;
    if (a->n_mode) rc = an_steer_mode_parse(a->steer_mode[a->n_mode == 1 ? 0 : i], &op);
    if (!rc) rc = an_steer_features_parse(a->steer_features[i], &feat, &n_feat);
    if (!rc) rc = sae_load(&r->saes[i], a->steer_sae[i]);
    if (!rc) rc = an_sae_hook_layer(r->saes[i], a->steer_sae[i], &layer);
    if (!rc) rc = an_steer_add(r->steer, r->saes[i], a->steer_sae[i], layer, feat, n_feat, op);
    free(feat);
  }
  return rc;
}

/* Model, tower, tokenizer, pixels, image embeddings, prompt ids. */
static int prepare(const cap_args *a, cap_run *r) {
  char *tp = sc_path_join(a->model, "tokenizer.json");
  int rc = tp ? g3_model_load(&r->m, a->model) : sc_error_setc(SC_ERR_NOMEM, "out of memory");
  if (!rc) rc = g3_vision_load(&r->v, r->m->ckpt, &r->m->cfg, a->model);
  if (!rc) r->m->precision = r->v->precision = a->precision; /* states follow m->precision */
  if (!rc) rc = tok_load(&r->tok, tp);
  free(tp);
  if (!rc) rc = load_steer(a, r);
  if (!rc) rc = load_pixels(a, r);
  if (!rc) {
    r->vision_out = malloc(g3_vision_out_floats(r->v) * sizeof(float));
    r->embeds = malloc(g3_vision_embeds_floats(r->v) * sizeof(float));
    if (!r->vision_out || !r->embeds) rc = sc_error_setc(SC_ERR_NOMEM, "caption: out of memory");
  }
  if (!rc) rc = g3_vision_forward(r->v, r->pixels, r->vision_out, r->embeds);
  if (!rc) rc = g3_caption_prompt(r->tok, &r->m->cfg, a->prompt, &r->prompt, &r->n_prompt);
  return rc;
}

/* ==== --dump ==== */

typedef struct dump_bufs {
  float *embeds, *final_norm, *logits;
  float *resid[G3_MAX_LAYERS];
} dump_bufs;

static void dump_free(dump_bufs *d, int n_layers) {
  free(d->embeds);
  free(d->final_norm);
  free(d->logits);
  for (int i = 0; i < n_layers; i++) free(d->resid[i]);
}

static int dump_forward(const cap_run *r, dump_bufs *d) {
  const g3_model *m = r->m;
  size_t td = (size_t)r->n_prompt * (size_t)m->cfg.text.hidden_size;
  size_t tv = (size_t)r->n_prompt * (size_t)m->cfg.text.vocab_size;
  int ok = (d->embeds = malloc(td * sizeof(float))) && (d->final_norm = malloc(td * sizeof(float))) &&
           (d->logits = malloc(tv * sizeof(float)));
  for (int i = 0; ok && i < m->cfg.text.num_hidden_layers; i++) ok = (d->resid[i] = malloc(td * sizeof(float))) != NULL;
  if (!ok) return sc_error_setc(SC_ERR_NOMEM, "caption: out of memory for the --dump outputs");
  g3_state *s = NULL;
  int rc = g3_state_create(&s, m, r->n_prompt);
  g3_forward_io io = {.ids = r->prompt, .n = r->n_prompt, .embeds = d->embeds, .resid_post = d->resid,
                      .final_norm = d->final_norm, .logits = d->logits,
                      .edit = r->steer ? an_steer_edit : NULL, .edit_user = r->steer};
  if (!rc) rc = g3_forward_image(m, s, &io, r->embeds, 1);
  g3_state_free(s);
  return rc;
}

static int dump_add(st_writer *w, const char *name, int n_dims, int64_t d0, int64_t d1, int64_t d2,
                    int64_t d3, const float *data) {
  int64_t shape[4] = {d0, d1, d2, d3};
  size_t bytes = sizeof(float);
  for (int i = 0; i < n_dims; i++) bytes *= (size_t)shape[i];
  return st_writer_add(w, name, SC_DTYPE_F32, n_dims, shape, data, bytes);
}

static int dump_write(const char *path, const cap_run *r, const dump_bufs *d) {
  const g3_config *c = &r->m->cfg;
  int64_t s = c->vision.image_size, np = (int64_t)c->vision.patches_per_side * c->vision.patches_per_side;
  int64_t t = r->n_prompt, h = c->text.hidden_size;
  st_writer *w = NULL;
  char name[32];
  int rc = st_writer_create(&w);
  if (!rc) rc = dump_add(w, "pixel_values", 4, 1, c->vision.num_channels, s, s, r->pixels);
  if (!rc) rc = dump_add(w, "vision_out", 3, 1, np, c->vision.hidden_size, 0, r->vision_out);
  if (!rc) rc = dump_add(w, "image_embeds", 3, 1, c->mm_tokens_per_image, h, 0, r->embeds);
  if (!rc) rc = dump_add(w, "embeds", 2, t, h, 0, 0, d->embeds);
  for (int i = 0; !rc && i < c->text.num_hidden_layers; i++) {
    snprintf(name, sizeof name, "resid_post.%d", i);
    rc = dump_add(w, name, 2, t, h, 0, 0, d->resid[i]);
  }
  if (!rc) rc = dump_add(w, "final_norm", 2, t, h, 0, 0, d->final_norm);
  if (!rc) rc = dump_add(w, "logits", 2, t, c->text.vocab_size, 0, 0, d->logits);
  if (!rc) rc = st_writer_write(w, path);
  st_writer_free(w);
  return rc;
}

static int dump(const char *path, const cap_run *r) {
  dump_bufs d = {0};
  int rc = dump_forward(r, &d);
  if (!rc) rc = dump_write(path, r, &d);
  dump_free(&d, r->m->cfg.text.num_hidden_layers);
  return rc;
}

/* ==== Output ==== */

static int add_ids(sc_json *o, const char *key, const int32_t *ids, int64_t n) {
  sc_json *arr = sc_json_add(o, key, sc_json_new_array());
  int ok = arr != NULL;
  for (int64_t i = 0; ok && i < n; i++) ok = sc_json_add(arr, NULL, sc_json_new_num(ids[i])) != NULL;
  return ok;
}

static int print_result(const cap_run *r, int json) {
  char *text = NULL;
  int rc = tok_decode(r->tok, r->out, (size_t)r->n_out, 1, &text, NULL);
  if (rc) return rc;
  if (!json) {
    printf("%s\n", text);
    free(text);
    return 0;
  }
  sc_json *o = sc_json_new_object();
  int ok = o && add_ids(o, "prompt_ids", r->prompt, r->n_prompt) && add_ids(o, "ids", r->out, r->n_out) &&
           sc_json_add_str(o, "text", text);
  char *s = ok ? sc_json_print(o, 0) : NULL;
  if (s) printf("%s\n", s);
  free(s);
  sc_json_free(o);
  free(text);
  return s ? 0 : sc_error_setc(SC_ERR_NOMEM, "caption: out of memory");
}

static int run(const cap_args *a) {
  cap_run r = {0};
  g3_gen_opts o;
  int rc = prepare(a, &r);
  if (!rc && a->dump) rc = dump(a->dump, &r);
  if (!rc) {
    g3_gen_opts_init(&o, r.m);
    rc = g3_gen_eos_load(&o, a->model);
    o.max_new_tokens = (int)a->max_new;
    if (r.steer) o.edit = an_steer_edit, o.edit_user = r.steer;
  }
  if (!rc) rc = g3_caption_generate(r.m, r.prompt, r.n_prompt, r.embeds, 1, &o, &r.out, &r.n_out);
  if (!rc) rc = print_result(&r, a->json);
  run_free(&r);
  return rc;
}

int cmd_caption(int argc, char **argv) {
  if (cli_wants_help(argc, argv)) {
    fputs(usage, stdout);
    return 0;
  }
  cap_args a;
  int rc = parse_args(argc, argv, &a);
  if (rc) return rc;
  sc_kernels_set_threads(cli_threads());
  return run(&a) ? cli_fail() : 0;
}
