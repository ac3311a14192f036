/* cmd_sae_encode.c: `saecap sae-encode --sae DIR --acts FILE --out FILE
 * [--top K] [--recon]`: encodes a file of activations with an SAE (SAELens
 * v6 or Gemma Scope 2 folder) and writes each row's K largest latent
 * activations (and optionally the reconstruction) to a safetensors file. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/error.h"
#include "cli/cli.h"
#include "io/safetensors.h"
#include "sae/sae.h"
#include "sae/sae_io.h"
#include "tensor/kernels.h"

#define ENCODE_BATCH 1024
#define DEFAULT_TOP 32

static void print_help(void) {
  printf(
      "usage: saecap sae-encode --sae DIR --acts FILE --out FILE [--top K] [--recon]\n\n"
      "Encodes activations with a sparse autoencoder and writes, per row, the K largest\n"
      "latent activations in descending order (ties: lower latent index first).\n\n"
      "options:\n"
      "  --sae DIR    an SAE folder: SAELens v6 (cfg.json + sae_weights.safetensors) or\n"
      "               Gemma Scope 2 (config.json + params.safetensors)\n"
      "  --acts FILE  a safetensors file with tensor 'acts' [N, d_in], F32, BF16 or F16,\n"
      "               in raw residual-stream units\n"
      "  --out FILE   output safetensors file (written atomically) with\n"
      "               top_indices [N, K] I32 and top_values [N, K] F32; a row with fewer\n"
      "               than K active latents is padded with index -1 and value 0\n"
      "  --top K      how many latents per row (default: the SAE's k, else %d; at most d_sae)\n"
      "  --recon      also write recon [N, d_in] F32, the SAE's reconstruction\n"
      "  -h, --help   this text\n",
      DEFAULT_TOP);
}

typedef struct enc_args {
  const char *sae_dir, *acts, *out;
  long long top; /* 0: default */
  int recon;
} enc_args;

static int parse_args(int argc, char **argv, enc_args *a) {
  memset(a, 0, sizeof *a);
  for (int i = 1; i < argc; i++) {
    const char *o = argv[i];
    int has_val = i + 1 < argc;
    if (!strcmp(o, "--recon")) a->recon = 1;
    else if (!strcmp(o, "--sae") && has_val) a->sae_dir = argv[++i];
    else if (!strcmp(o, "--acts") && has_val) a->acts = argv[++i];
    else if (!strcmp(o, "--out") && has_val) a->out = argv[++i];
    else if (!strcmp(o, "--top") && has_val) {
      if (cli_parse_int(argv[++i], 1, SAE_MAX_N, &a->top))
        return cli_usage_error("sae-encode", "--top needs a number from 1 to %d", SAE_MAX_N);
    } else
      return cli_usage_error("sae-encode", "unknown or incomplete option '%s'", o);
  }
  if (!a->sae_dir || !a->acts || !a->out)
    return cli_usage_error("sae-encode", "--sae, --acts and --out are required");
  return 0;
}

/* The 'acts' tensor, checked against the SAE's width. */
static int find_acts(const st_file *f, const char *path, int64_t d, const st_tensor **out) {
  const st_tensor *t = st_file_find(f, "acts");
  if (!t) return sc_error_setc(SC_ERR_MISSING, "%s: tensor 'acts' is missing", path);
  if (t->dtype != SC_DTYPE_F32 && t->dtype != SC_DTYPE_BF16 && t->dtype != SC_DTYPE_F16)
    return sc_error_setc(SC_ERR_FORMAT, "%s: tensor 'acts' has dtype %s, expected F32, BF16 or F16",
                         path, sc_dtype_name(t->dtype));
  if (t->n_dims != 2 || t->shape[1] != d)
    return sc_error_setc(SC_ERR_FORMAT, "%s: tensor 'acts' must be [N, %lld] for this SAE", path,
                         (long long)d);
  *out = t;
  return 0;
}

static void widen_rows(float *dst, const st_tensor *t, int64_t r0, int64_t rows, int64_t d) {
  size_t off = (size_t)(r0 * d), cnt = (size_t)(rows * d);
  if (t->dtype == SC_DTYPE_F32) memcpy(dst, (const float *)t->data + off, cnt * sizeof *dst);
  else if (t->dtype == SC_DTYPE_BF16) sc_f32_from_bf16_n(dst, (const uint16_t *)t->data + off, cnt);
  else sc_f32_from_f16_n(dst, (const uint16_t *)t->data + off, cnt);
}

typedef struct ent {
  float v;
  int32_t i;
} ent;

static int ent_cmp(const void *a, const void *b) {
  const ent *x = a, *y = b;
  if (x->v != y->v) return x->v > y->v ? -1 : 1;
  return (x->i > y->i) - (x->i < y->i);
}

/* One row's K largest entries, descending, padded with -1 / 0. */
static void top_row(const sae_codes *c, int64_t r, int K, ent *tmp, int32_t *idx, float *val) {
  int64_t cnt = c->row_ptr[r + 1] - c->row_ptr[r];
  for (int64_t e = 0; e < cnt; e++)
    tmp[e] = (ent){c->val[c->row_ptr[r] + e], c->idx[c->row_ptr[r] + e]};
  qsort(tmp, (size_t)cnt, sizeof *tmp, ent_cmp);
  for (int j = 0; j < K; j++) {
    idx[j] = j < cnt ? tmp[j].i : -1;
    val[j] = j < cnt ? tmp[j].v : 0.0f;
  }
}

typedef struct enc_out {
  int32_t *idx;  /* (N, K) */
  float *val;    /* (N, K) */
  float *recon;  /* (N, d) or NULL */
  double active; /* Σ active latents */
} enc_out;

static int encode_all(const sae *s, const st_tensor *t, int K, enc_out *o) {
  int64_t N = t->shape[0], d = s->cfg.d;
  float *x = malloc((size_t)(ENCODE_BATCH * d) * sizeof *x);
  ent *tmp = malloc((size_t)s->cfg.n * sizeof *tmp);
  sae_codes c;
  int rc = sae_codes_init(&c);
  if (!rc && (!x || !tmp)) rc = sc_error_setc(SC_ERR_NOMEM, "sae-encode: out of memory");
  for (int64_t r0 = 0; !rc && r0 < N; r0 += ENCODE_BATCH) {
    int64_t rows = N - r0 < ENCODE_BATCH ? N - r0 : ENCODE_BATCH;
    widen_rows(x, t, r0, rows, d);
    rc = sae_encode(s, x, rows, &c);
    for (int64_t r = 0; !rc && r < rows; r++)
      top_row(&c, r, K, tmp, o->idx + (r0 + r) * K, o->val + (r0 + r) * K);
    if (!rc && o->recon) sae_decode(s, &c, o->recon + r0 * d);
    if (!rc) o->active += (double)c.row_ptr[rows];
  }
  sae_codes_release(&c);
  free(x), free(tmp);
  return rc;
}

static int write_out(const char *path, const enc_out *o, int64_t N, int K, int64_t d,
                     const char *sae_dir) {
  st_writer *w;
  int rc = st_writer_create(&w);
  if (rc) return rc;
  int64_t sk[2] = {N, K}, sd[2] = {N, d};
  rc = st_writer_add_meta(w, "sae", sae_dir);
  if (!rc) rc = st_writer_add(w, "top_indices", SC_DTYPE_I32, 2, sk, o->idx, (size_t)(N * K) * 4);
  if (!rc) rc = st_writer_add(w, "top_values", SC_DTYPE_F32, 2, sk, o->val, (size_t)(N * K) * 4);
  if (!rc && o->recon)
    rc = st_writer_add(w, "recon", SC_DTYPE_F32, 2, sd, o->recon, (size_t)(N * d) * 4);
  if (!rc) rc = st_writer_write(w, path);
  st_writer_free(w);
  return rc;
}

int cmd_sae_encode(int argc, char **argv) {
  if (cli_wants_help(argc, argv)) {
    print_help();
    return 0;
  }
  enc_args a;
  int rc = parse_args(argc, argv, &a);
  if (rc) return rc;
  sc_kernels_set_threads(cli_threads());
  sae *s = NULL;
  st_file *f = NULL;
  const st_tensor *t = NULL;
  enc_out o = {0};
  rc = sae_load(&s, a.sae_dir);
  if (!rc) rc = st_file_open(&f, a.acts);
  if (!rc) rc = find_acts(f, a.acts, s->cfg.d, &t);
  int64_t N = t ? t->shape[0] : 0, K = a.top ? a.top : (s && s->cfg.k > 0 ? s->cfg.k : DEFAULT_TOP);
  if (!rc && K > s->cfg.n) {
    if (a.top) rc = sc_error_setc(SC_ERR_ARG, "sae-encode: --top %lld exceeds d_sae %lld", a.top,
                                  (long long)s->cfg.n);
    else K = s->cfg.n;
  }
  if (!rc) {
    o.idx = malloc((size_t)(N * K + 1) * sizeof *o.idx);
    o.val = malloc((size_t)(N * K + 1) * sizeof *o.val);
    o.recon = a.recon ? malloc((size_t)(N * s->cfg.d + 1) * sizeof *o.recon) : NULL;
    if (!o.idx || !o.val || (a.recon && !o.recon))
      rc = sc_error_setc(SC_ERR_NOMEM, "sae-encode: out of memory for %lld rows", (long long)N);
  }
  if (!rc) rc = encode_all(s, t, (int)K, &o);
  if (!rc) rc = write_out(a.out, &o, N, (int)K, s->cfg.d, a.sae_dir);
  if (!rc)
    printf("%s: %lld rows, top %lld of %lld latents, mean L0 %.3f\n", a.out, (long long)N,
           (long long)K, (long long)s->cfg.n, N ? o.active / (double)N : 0.0);
  free(o.idx), free(o.val), free(o.recon);
  st_file_free(f);
  sae_free(s);
  return rc ? cli_fail() : 0;
}
