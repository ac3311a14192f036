/* cmd_forward.c: `saecap forward`: one forward pass of the Gemma-3 text
 * decoder over a prompt (optionally holding an image, run through the
 * vision tower), every residual-stream site dumped to safetensors (the
 * file the parity tests and the extraction test compare with). */
#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/error.h"
#include "base/fs.h"
#include "cli/cli.h"
#include "io/safetensors.h"
#include "model/caption.h"
#include "model/decoder.h"
#include "model/generate.h"
#include "model/tokenizer.h"
#include "tensor/kernels.h"

static const char *const usage =
    "usage: saecap forward --model DIR (--text TEXT | --ids FILE) [--chat]\n"
    "                      --dump OUT.safetensors [--layers all|L1,L2,...]\n"
    "                      [--image FILE] [--precision f32|bf16]\n\n"
    "Runs the Gemma-3 text decoder over one prompt and writes f32 tensors:\n"
    "  embeds [T,d]          scaled input embeddings (HF hidden_states[0])\n"
    "  resid_post.L [T,d]    residual stream after decoder layer L, un-normed\n"
    "  final_norm [T,d]      the final RMSNorm output (HF last_hidden_state)\n"
    "  logits [T,V]          over all vocab_size rows\n"
    "and with --image also\n"
    "  pixel_values [3,S,S]  the preprocessed image (f32, after normalisation)\n"
    "  image_tokens [M,d]    the projector output (M = mm_tokens_per_image)\n\n"
    "options:\n"
    "  --model DIR       Hugging Face checkpoint folder (config.json, safetensors)\n"
    "  --text TEXT       prompt text, tokenized with DIR/tokenizer.json plus <bos>\n"
    "  --chat            with --text: wrap it in the Gemma 3 IT single-turn prompt\n"
    "  --ids FILE        whitespace-separated token ids, used as they are\n"
    "  --dump OUT        the safetensors file to write (atomically)\n"
    "  --image FILE      PNG or JPEG run through the vision tower; with --text the\n"
    "                    prompt is the IT chat prompt with the image before the\n"
    "                    text (--chat implied); with --ids one id -1 marks where\n"
    "                    the M image soft tokens go (the file holds the\n"
    "                    <start_of_image>/<end_of_image> ids around it)\n"
    "  --layers SPEC     which resid_post.L to write: all (default) or a list 0,5,11\n"
    "  --precision P     f32 (default; the reference mode) or bf16 (GEMM inputs\n"
    "                    rounded to bf16, f32 accumulation, as a bf16 HF run)\n"
    "  -h, --help        this text\n";

typedef struct fwd_args {
  const char *model, *text, *ids, *dump, *layers, *precision_name, *image;
  int chat;
  sc_precision precision;
} fwd_args;

static int parse_args(int argc, char **argv, fwd_args *a) {
  memset(a, 0, sizeof *a);
  a->layers = "all";
  for (int i = 1; i < argc; i++) {
    const char *o = argv[i], *val = i + 1 < argc ? argv[i + 1] : NULL;
    const char **dst = !strcmp(o, "--model") ? &a->model : !strcmp(o, "--text") ? &a->text
                     : !strcmp(o, "--ids")   ? &a->ids   : !strcmp(o, "--dump") ? &a->dump
                     : !strcmp(o, "--layers") ? &a->layers : !strcmp(o, "--image") ? &a->image
                     : !strcmp(o, "--precision") ? &a->precision_name : NULL;
    if (!strcmp(o, "--chat")) {
      a->chat = 1;
      continue;
    }
    if (!dst) return cli_usage_error("forward", "unexpected argument '%s'", o);
    if (!val) return cli_usage_error("forward", "%s needs a value", o);
    *dst = val;
    i++;
  }
  if (!a->model) return cli_usage_error("forward", "--model is required");
  if (!a->dump) return cli_usage_error("forward", "--dump is required");
  if (!a->text == !a->ids) return cli_usage_error("forward", "give exactly one of --text and --ids");
  if (a->chat && !a->text) return cli_usage_error("forward", "--chat needs --text");
  if (a->image && a->text) a->chat = 1; /* the image prompt is the IT chat prompt */
  if (a->precision_name && sc_precision_parse(a->precision_name, &a->precision))
    return cli_usage_error("forward", "--precision: '%s' is not f32 or bf16", a->precision_name);
  return 0;
}

/* "all" or "L1,L2,..." into want[n_layers]; 0 or the usage exit status. */
static int parse_layers(const char *spec, int n_layers, unsigned char *want) {
  memset(want, !strcmp(spec, "all"), (size_t)n_layers);
  if (!strcmp(spec, "all")) return 0;
  for (const char *p = spec;;) {
    const char *end = strchr(p, ',');
    size_t len = end ? (size_t)(end - p) : strlen(p);
    char buf[16];
    long long l;
    snprintf(buf, sizeof buf, "%.*s", (int)(len < 15 ? len : 15), p);
    if (len >= 15 || cli_parse_int(buf, 0, n_layers - 1, &l))
      return cli_usage_error("forward", "--layers: '%.*s' is not a layer in [0, %d]", (int)len, p,
                             n_layers - 1);
    want[l] = 1;
    if (!end) return 0;
    p = end + 1;
  }
}

/* ==== Prompt ==== */

/* Copies the words of buf space-separated into *out (malloc'd text for
 * g3_ids_parse), the one "-1" word replaced by M soft-token ids. */
static int expand_image_mark(const char *buf, size_t len, const char *name, const g3_config *c,
                             char **out) {
  size_t cap = 2 * len + (size_t)c->mm_tokens_per_image * 12 + 1, k = 0;
  int marks = 0;
  char *o = malloc(cap);
  if (!o) return sc_error_setc(SC_ERR_NOMEM, "%s: out of memory", name);
  for (size_t i = 0, j; i < len; i = j + 1) {
    for (j = i; j < len && !isspace((unsigned char)buf[j]);) j++;
    int mark = j - i == 2 && !memcmp(buf + i, "-1", 2);
    marks += mark;
    for (int t = 0; mark && marks == 1 && t < c->mm_tokens_per_image; t++)
      k += (size_t)snprintf(o + k, cap - k, "%d ", c->image_token_id);
    if (!mark && j > i) {
      memcpy(o + k, buf + i, j - i);
      k += j - i;
      o[k++] = ' ';
    }
  }
  o[k] = 0;
  if (marks == 1) return (*out = o), 0;
  free(o);
  return sc_error_setc(SC_ERR_FORMAT, "%s: expected one -1 (where the image goes), found %d", name,
                       marks);
}

/* --ids FILE with --image: the ids with the -1 mark expanded. */
static int load_image_ids(const char *path, const g3_model *m, int32_t **ids, int64_t *n) {
  char *buf = NULL, *text = NULL;
  size_t len;
  int rc = sc_read_file(path, G3_IDS_MAX_BYTES, &buf, &len);
  if (!rc) rc = expand_image_mark(buf, len, path, &m->cfg, &text);
  if (!rc) rc = g3_ids_parse(text, strlen(text), path, m->cfg.text.vocab_size, ids, n);
  free(buf);
  free(text);
  return rc;
}

/* The prompt ids from --ids or --text (with the image block for --image). */
static int load_prompt(const fwd_args *a, const g3_model *m, int32_t **ids, int64_t *n) {
  if (a->ids && a->image) return load_image_ids(a->ids, m, ids, n);
  if (a->ids) return g3_ids_load(a->ids, m->cfg.text.vocab_size, ids, n);
  char *path = sc_path_join(a->model, "tokenizer.json");
  tok_tokenizer *tok = NULL;
  int rc = path ? tok_load(&tok, path) : sc_error_setc(SC_ERR_NOMEM, "out of memory");
  if (!rc && a->image) rc = g3_caption_prompt(tok, &m->cfg, a->text, ids, n);
  else if (!rc) rc = g3_prompt_encode(tok, a->text, a->chat, ids, n);
  tok_free(tok);
  free(path);
  return rc;
}

/* Output buffers; everything NULL-initialised so one free path works. */
typedef struct fwd_out {
  float *embeds, *final_norm, *logits;
  float *resid[G3_MAX_LAYERS];
  float *pixels, *image_tokens; /* (3,S,S), (M,d) with --image, else NULL */
} fwd_out;

static void out_free(fwd_out *o) {
  free(o->pixels);
  free(o->image_tokens);
  free(o->embeds);
  free(o->final_norm);
  free(o->logits);
  for (int i = 0; i < G3_MAX_LAYERS; i++) free(o->resid[i]);
}

static int out_alloc(fwd_out *o, const g3_model *m, int64_t n, const unsigned char *want) {
  size_t d = (size_t)m->cfg.text.hidden_size, v = (size_t)m->cfg.text.vocab_size, t = (size_t)n;
  int ok = (o->embeds = malloc(t * d * sizeof(float))) && (o->final_norm = malloc(t * d * sizeof(float))) &&
           (o->logits = malloc(t * v * sizeof(float)));
  for (int i = 0; ok && i < m->cfg.text.num_hidden_layers; i++)
    if (want[i]) ok = (o->resid[i] = malloc(t * d * sizeof(float))) != NULL;
  return ok ? 0 : sc_error_setc(SC_ERR_NOMEM, "forward: out of memory for the outputs of %lld tokens", (long long)n);
}

/* pixel_values [3,S,S] and image_tokens [M,d] when the run had an image. */
static int dump_image(st_writer *w, const g3_model *m, const fwd_out *o) {
  const g3_config *c = &m->cfg;
  int64_t sp[3] = {c->vision.num_channels, c->vision.image_size, c->vision.image_size};
  int64_t si[2] = {c->mm_tokens_per_image, c->text.hidden_size};
  if (!o->pixels) return 0;
  int rc = st_writer_add(w, "pixel_values", SC_DTYPE_F32, 3, sp, o->pixels,
                         (size_t)(sp[0] * sp[1] * sp[2]) * sizeof(float));
  if (!rc)
    rc = st_writer_add(w, "image_tokens", SC_DTYPE_F32, 2, si, o->image_tokens,
                       (size_t)(si[0] * si[1]) * sizeof(float));
  return rc;
}

static int dump(const char *path, const g3_model *m, const fwd_out *o, int64_t n) {
  st_writer *w = NULL;
  int64_t d = m->cfg.text.hidden_size, v = m->cfg.text.vocab_size;
  int64_t sd[2] = {n, d}, sv[2] = {n, v};
  size_t bd = (size_t)(n * d) * sizeof(float), bv = (size_t)(n * v) * sizeof(float);
  char name[32];
  int rc = st_writer_create(&w);
  if (!rc) rc = dump_image(w, m, o);
  if (!rc) rc = st_writer_add(w, "embeds", SC_DTYPE_F32, 2, sd, o->embeds, bd);
  for (int i = 0; !rc && i < m->cfg.text.num_hidden_layers; i++) {
    if (!o->resid[i]) continue;
    snprintf(name, sizeof name, "resid_post.%d", i);
    rc = st_writer_add(w, name, SC_DTYPE_F32, 2, sd, o->resid[i], bd);
  }
  if (!rc) rc = st_writer_add(w, "final_norm", SC_DTYPE_F32, 2, sd, o->final_norm, bd);
  if (!rc) rc = st_writer_add(w, "logits", SC_DTYPE_F32, 2, sv, o->logits, bv);
  if (!rc) rc = st_writer_write(w, path);
  st_writer_free(w);
  return rc;
}

/* --image: pixels and the projector rows into o (the tower runs once). */
static int run_vision(const fwd_args *a, const g3_model *m, fwd_out *o) {
  g3_vision *v = NULL;
  int rc = g3_vision_load(&v, m->ckpt, &m->cfg, a->model);
  if (!rc) {
    v->precision = m->precision; /* --precision covers the tower and projector too */
    o->pixels = malloc(g3_vision_pixels_floats(v) * sizeof(float));
    o->image_tokens = malloc(g3_vision_embeds_floats(v) * sizeof(float));
    if (!o->pixels || !o->image_tokens) rc = sc_error_setc(SC_ERR_NOMEM, "forward: out of memory");
  }
  if (!rc) rc = g3_image_pixels(v, a->model, a->image, o->pixels);
  if (!rc) rc = g3_vision_forward(v, o->pixels, NULL, o->image_tokens);
  g3_vision_free(v);
  return rc;
}

static int run(const fwd_args *a, const g3_model *m, const unsigned char *want) {
  int32_t *ids = NULL;
  int64_t n = 0;
  g3_state *s = NULL;
  fwd_out o = {0};
  int rc = a->image ? run_vision(a, m, &o) : 0;
  if (!rc) rc = load_prompt(a, m, &ids, &n);
  if (!rc) rc = out_alloc(&o, m, n, want);
  if (!rc) rc = g3_state_create(&s, m, n);
  g3_forward_io io = {.ids = ids, .n = n, .embeds = o.embeds, .resid_post = o.resid,
                      .final_norm = o.final_norm, .logits = o.logits};
  if (!rc) rc = a->image ? g3_forward_image(m, s, &io, o.image_tokens, 1) : g3_forward(m, s, &io);
  if (!rc) rc = dump(a->dump, m, &o, n);
  g3_state_free(s);
  out_free(&o);
  free(ids);
  return rc;
}

int cmd_forward(int argc, char **argv) {
  if (cli_wants_help(argc, argv)) {
    fputs(usage, stdout);
    return 0;
  }
  fwd_args a;
  unsigned char want[G3_MAX_LAYERS];
  int rc = parse_args(argc, argv, &a);
  if (rc) return rc;
  sc_kernels_set_threads(cli_threads());
  g3_model *m = NULL;
  if (g3_model_load(&m, a.model)) return cli_fail();
  m->precision = a.precision;
  rc = parse_layers(a.layers, m->cfg.text.num_hidden_layers, want);
  if (!rc) rc = run(&a, m, want) ? cli_fail() : 0;
  g3_model_free(m);
  return rc;
}
