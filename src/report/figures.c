/* figures.c: the report's figures from the results JSON (figures.h).
 *
 * Every builder reads its keys through results.h's tolerant getters: a
 * missing key is NaN and a figure without any finite value draws a
 * message (plot.h), so a partial or older file never stops the report. */
#include "report/figures.h"

#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/error.h"
#include "base/fs.h"
#include "report/figures_impl.h"

/* ==== helpers shared with figures_*.c (figures_impl.h) ==== */

void fx_vec_push(fx_vec *v, double x) {
  if (v->oom) return;
  if (v->n == v->cap) {
    int cap = v->cap ? v->cap * 2 : 16;
    double *p = realloc(v->v, (size_t)cap * sizeof *p);
    if (!p) {
      v->oom = 1;
      return;
    }
    v->v = p;
    v->cap = cap;
  }
  v->v[v->n++] = x;
}

void fx_vec_free(fx_vec *v) {
  free(v->v);
  memset(v, 0, sizeof *v);
}

rep_fig *fx_add(fx_ctx *c, rep_section sec, const char *stem, const char *title, const char *xlabel,
                const char *ylabel, const char *caption_fmt, ...) {
  if (c->oom) return NULL;
  rep_figures *o = c->out;
  rep_figure *v = realloc(o->v, (size_t)(o->n + 1) * sizeof *v);
  if (!v) {
    c->oom = 1;
    return NULL;
  }
  o->v = v;
  rep_figure *f = &o->v[o->n];
  memset(f, 0, sizeof *f);
  snprintf(f->stem, sizeof f->stem, "%s", stem);
  for (char *s = f->stem; *s; s++) /* stems come partly from data: keep them file-name safe */
    if (!((*s >= 'a' && *s <= 'z') || (*s >= 'A' && *s <= 'Z') || (*s >= '0' && *s <= '9') || *s == '_' || *s == '-'))
      *s = '_';
  f->section = sec;
  va_list ap;
  va_start(ap, caption_fmt);
  int n = vsnprintf(NULL, 0, caption_fmt, ap);
  va_end(ap);
  f->caption = n >= 0 ? malloc((size_t)n + 1) : NULL;
  if (f->caption) {
    va_start(ap, caption_fmt);
    vsnprintf(f->caption, (size_t)n + 1, caption_fmt, ap);
    va_end(ap);
  }
  f->fig = rep_fig_create(title, xlabel, ylabel);
  o->n++;
  if (!f->caption || !f->fig) {
    c->oom = 1;
    return NULL;
  }
  return f->fig;
}

void fx_check(fx_ctx *c, int rc) {
  if (rc == SC_ERR_NOMEM) c->oom = 1;
}

/* "results/<stem>.json: not found: `saecap <stage>` did not run" etc. */
void fx_absent_msg(const rep_result *r, char *buf, size_t cap) {
  if (r->state == REP_RES_MISSING)
    snprintf(buf, cap, "results/%s.json not found: `saecap %s` did not run", r->stem, r->stage);
  else
    snprintf(buf, cap, "results/%s.json could not be read: %s", r->stem, r->why);
}

/* Sets the absent-file message on fig when r is not usable; 1 if so. */
int fx_absent(fx_ctx *c, rep_fig *fig, const rep_result *r) {
  if (!fig || r->state == REP_RES_OK) return !fig;
  char msg[600];
  fx_absent_msg(r, msg, sizeof msg);
  fx_check(c, rep_fig_set_message(fig, msg));
  return 1;
}

int fx_lang_color(const char *lang) {
  if (lang && !strcmp(lang, "en")) return REP_BLUE;
  if (lang && !strcmp(lang, "ar")) return REP_VERMILLION;
  return REP_AUTO;
}

const char *fx_lang_name(const char *lang) {
  if (lang && !strcmp(lang, "en")) return "English";
  if (lang && !strcmp(lang, "ar")) return "Arabic";
  return lang ? lang : "?";
}

/* ==== SAE metrics (sae_metrics.json, docs/results/sae_metrics.md) ==== */

/* One line per language of metric `key` over the SAEs' layers. */
static void sae_metric_fig(fx_ctx *c, const rep_result *r, const char *stem, const char *key,
                           const char *title, const char *ylabel, const char *what) {
  rep_fig *f = fx_add(c, REP_SEC_SAE, stem, title, "layer", ylabel,
                      "%s of each trained SAE on the held-out split, per layer and language "
                      "(results/sae_metrics.json, saes[].languages.<lang>.%s).",
                      what, key);
  if (fx_absent(c, f, r)) return;
  rep_fig_set_xinteger(f, 1);
  const char *langs[] = {"en", "ar"};
  for (int li = 0; li < 2; li++) {
    fx_vec x = {0}, y = {0};
    for (int i = 0; i < rep_jlen(r->root, "saes"); i++) {
      const sc_json *s = sc_json_at(rep_j(r->root, "saes"), i);
      char p[64];
      snprintf(p, sizeof p, "languages.%s.%s", langs[li], key);
      if (!rep_j(s, p)) continue;
      fx_vec_push(&x, rep_jnum(s, "layer"));
      fx_vec_push(&y, rep_jnum(s, p));
    }
    if (x.oom || y.oom) c->oom = 1;
    if (x.n) fx_check(c, rep_fig_line(f, fx_lang_name(langs[li]), x.n, x.v, y.v, NULL, NULL, fx_lang_color(langs[li]), 0));
    fx_vec_free(&x);
    fx_vec_free(&y);
  }
}

/* Reads <output_dir>/<rel> (training_log.jsonl) into step/key vectors. */
static void read_log(const char *output_dir, const char *rel, const char *key, fx_vec *x, fx_vec *y) {
  char path[4096], *buf = NULL;
  size_t len = 0;
  snprintf(path, sizeof path, "%s/%s", output_dir, rel);
  if (!sc_is_file(path) || sc_read_file(path, REP_RESULTS_MAX_BYTES, &buf, &len)) {
    sc_error_clear();
    return;
  }
  for (char *line = buf; line && *line;) {
    char *nl = strchr(line, '\n');
    size_t n = nl ? (size_t)(nl - line) : strlen(line);
    sc_json *j = NULL;
    if (n && !sc_json_parse(line, n, "training_log", &j)) {
      fx_vec_push(x, rep_jnum(j, "step"));
      fx_vec_push(y, rep_jnum(j, key));
    }
    sc_error_clear();
    sc_json_free(j);
    line = nl ? nl + 1 : NULL;
  }
  free(buf);
}

static void sae_curve_fig(fx_ctx *c, const rep_result *r, const char *output_dir, const char *stem,
                          const char *key, const char *title, const char *ylabel) {
  rep_fig *f = fx_add(c, REP_SEC_SAE, stem, title, "training step", ylabel,
                      "Training curve: %s per logged step, one line per SAE "
                      "(saes/layer_<L>/training_log.jsonl, the file sae_metrics.json names).",
                      key);
  if (fx_absent(c, f, r)) return;
  for (int i = 0; i < rep_jlen(r->root, "saes"); i++) {
    const sc_json *s = sc_json_at(rep_j(r->root, "saes"), i);
    const char *rel = rep_jstr(s, "training.log"), *sae = rep_jstr(s, "sae");
    if (!rel || !output_dir) continue;
    fx_vec x = {0}, y = {0};
    read_log(output_dir, rel, key, &x, &y);
    char label[128];
    snprintf(label, sizeof label, "%s", sae ? sae : rel);
    if (x.oom || y.oom) c->oom = 1;
    else if (x.n) fx_check(c, rep_fig_line(f, label, x.n, x.v, y.v, NULL, NULL, REP_AUTO, 0));
    fx_vec_free(&x);
    fx_vec_free(&y);
  }
}

static void sae_figures(fx_ctx *c, const rep_results *rs, const char *output_dir) {
  const rep_result *r = &rs->r[REP_SAE_METRICS];
  sae_curve_fig(c, r, output_dir, "sae_training_mse", "mse", "SAE training: reconstruction error",
                "MSE per element (residual units²)");
  sae_curve_fig(c, r, output_dir, "sae_training_l0", "l0", "SAE training: active latents",
                "L0 (latents per token)");
  sae_metric_fig(c, r, "sae_fvu", "fvu", "SAE fraction of variance unexplained",
                 "FVU (fraction, lower is better)", "Fraction of variance unexplained");
  sae_metric_fig(c, r, "sae_l0", "l0", "SAE sparsity", "L0 (active latents per token)",
                 "Mean number of active latents per token");
  sae_metric_fig(c, r, "sae_dead", "dead_fraction", "SAE dead latents",
                 "dead latents (fraction of d_sae)", "Fraction of latents that never fired");
}

/* ==== the set ==== */

int rep_figures_build(const rep_results *r, const char *output_dir, rep_figures *out) {
  memset(out, 0, sizeof *out);
  fx_ctx c = {out, 0};
  sae_figures(&c, r, output_dir);
  fx_rq1_figures(&c, &r->r[REP_CROSSLING]);
  fx_rq2_figures(&c, &r->r[REP_FEATURES]);
  fx_rq3_figures(&c, &r->r[REP_STEERING]);
  fx_rq4_figures(&c, &r->r[REP_MORPHOLOGY]);
  if (c.oom) {
    rep_figures_free(out);
    return sc_error_setc(SC_ERR_NOMEM, "report: out of memory building figures");
  }
  return 0;
}

void rep_figures_free(rep_figures *f) {
  if (!f) return;
  for (int i = 0; i < f->n; i++) {
    free(f->v[i].caption);
    rep_fig_free(f->v[i].fig);
  }
  free(f->v);
  memset(f, 0, sizeof *f);
}
