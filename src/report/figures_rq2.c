/* figures_rq2.c: RQ2 figures from feature_analysis.json
 * (docs/results/feature_analysis.md): volcano plots per layer and language,
 * the EN-vs-AR effect-size scatter per layer, top-k overlap across layers. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "report/figures_impl.h"

/* Largest feature index a scatter maps (an index table of that size). */
#define RQ2_MAX_FEATURE (1 << 22)

static double layer_fdr(const sc_json *root, const sc_json *L) {
  double fdr = rep_jnum(L, "cross_language.fdr");
  if (!(fdr > 0 && fdr < 1)) fdr = rep_jnum(root, "config.fdr");
  if (!(fdr > 0 && fdr < 1)) fdr = 0.05;
  return fdr;
}

static double neglog10(double q) {
  if (!isfinite(q)) return NAN;
  return -log10(q > 1e-300 ? q : 1e-300);
}

static void volcano(fx_ctx *c, const rep_result *r, const sc_json *L, int layer, const char *lang) {
  char stem[64], title[128], p[64];
  snprintf(stem, sizeof stem, "rq2_volcano_L%d_%s", layer, lang);
  snprintf(title, sizeof title, "Layer %d, %s: gender effect per SAE feature", layer, fx_lang_name(lang));
  double fdr = layer_fdr(r->root, L);
  rep_fig *f = fx_add(c, REP_SEC_RQ2, stem, title, "Cohen's d (female − male, pooled-SD units)",
                      "−log10 q (Benjamini–Hochberg)",
                      "Volcano plot, layer %d, %s captions: each point is an SAE feature of the ranking "
                      "(features that fired), effect size against the FDR-adjusted significance; "
                      "coloured points have q ≤ %g (dashed line).",
                      layer, fx_lang_name(lang), fdr);
  if (!f) return;
  snprintf(p, sizeof p, "languages.%s", lang);
  const sc_json *lj = rep_j(L, p);
  if (rep_jstr(lj, "status") && strcmp(rep_jstr(lj, "status"), "ok") != 0) {
    char msg[300];
    snprintf(msg, sizeof msg, "%s statistics skipped: %s", fx_lang_name(lang),
             rep_jstr(lj, "skip_reason") ? rep_jstr(lj, "skip_reason") : "no reason given");
    fx_check(c, rep_fig_set_message(f, msg));
    return;
  }
  fx_vec xs = {0}, ys = {0}, xn = {0}, yn = {0};
  const sc_json *rk = rep_j(lj, "ranking");
  for (int i = 0; i < sc_json_size(rk); i++) {
    const sc_json *e = sc_json_at(rk, i);
    double d = rep_jnum(e, "cohens_d"), q = rep_jnum(e, "q");
    int sig = q <= fdr;
    fx_vec_push(sig ? &xs : &xn, d);
    fx_vec_push(sig ? &ys : &yn, neglog10(q));
  }
  if (xs.oom || ys.oom || xn.oom || yn.oom) c->oom = 1;
  fx_check(c, rep_fig_scatter(f, "q > FDR level", xn.n, xn.v, yn.v, REP_GREY, 2.5));
  fx_check(c, rep_fig_scatter(f, "q ≤ FDR level", xs.n, xs.v, ys.v, fx_lang_color(lang), 3.5));
  fx_check(c, rep_fig_hline(f, neglog10(fdr), "q = FDR level"));
  fx_vec_free(&xs), fx_vec_free(&ys), fx_vec_free(&xn), fx_vec_free(&yn);
}

/* d of every ranked feature of lang into tab (NaN elsewhere). */
static void d_table(const sc_json *L, const char *lang, double *tab, int n) {
  char p[64];
  snprintf(p, sizeof p, "languages.%s.ranking", lang);
  const sc_json *rk = rep_j(L, p);
  for (int i = 0; i < n; i++) tab[i] = NAN;
  for (int i = 0; i < sc_json_size(rk); i++) {
    double j = rep_jnum(sc_json_at(rk, i), "feature");
    if (j >= 0 && j < n) tab[(int)j] = rep_jnum(sc_json_at(rk, i), "cohens_d");
  }
}

/* Set membership per feature: 1 en_only, 2 ar_only, 3 both, 0 none. */
static void mark_set(const sc_json *L, const char *key, int val, unsigned char *cls, int n) {
  char p[96];
  snprintf(p, sizeof p, "cross_language.significant.%s", key);
  const sc_json *a = rep_j(L, p);
  for (int i = 0; i < sc_json_size(a); i++) {
    double j = sc_json_num(sc_json_at(a, i));
    if (j >= 0 && j < n) cls[(int)j] = (unsigned char)val;
  }
}

static int max_feature(const sc_json *L) {
  double m = -1;
  const char *langs[] = {"en", "ar"};
  for (int l = 0; l < 2; l++) {
    char p[64];
    snprintf(p, sizeof p, "languages.%s.ranking", langs[l]);
    const sc_json *rk = rep_j(L, p);
    for (int i = 0; i < sc_json_size(rk); i++) {
      double j = rep_jnum(sc_json_at(rk, i), "feature");
      if (j > m && j < RQ2_MAX_FEATURE) m = j;
    }
  }
  return (int)m;
}

static void scatter_sets(fx_ctx *c, rep_fig *f, const double *den, const double *dar,
                         const unsigned char *cls, int n) {
  static const char *names[] = {"not significant in either", "significant in English only",
                                "significant in Arabic only", "significant in both"};
  static const int cols[] = {REP_GREY, REP_BLUE, REP_VERMILLION, REP_GREEN};
  for (int k = 0; k < 4; k++) {
    fx_vec x = {0}, y = {0};
    for (int j = 0; j < n; j++)
      if (cls[j] == k && isfinite(den[j]) && isfinite(dar[j])) {
        fx_vec_push(&x, den[j]);
        fx_vec_push(&y, dar[j]);
      }
    if (x.oom || y.oom) c->oom = 1;
    fx_check(c, rep_fig_scatter(f, names[k], x.n, x.v, y.v, cols[k], k ? 3.5 : 2.5));
    fx_vec_free(&x), fx_vec_free(&y);
  }
}

static void en_ar_scatter(fx_ctx *c, const sc_json *L, int layer) {
  char stem[64], title[128];
  snprintf(stem, sizeof stem, "rq2_scatter_L%d", layer);
  snprintf(title, sizeof title, "Layer %d: English vs Arabic effect size per feature", layer);
  rep_fig *f = fx_add(c, REP_SEC_RQ2, stem, title, "Cohen's d in English captions (pooled-SD units)",
                      "Cohen's d in Arabic captions (pooled-SD units)",
                      "Each point is a feature of the shared EN+AR SAE at layer %d ranked in both "
                      "languages; colour marks the language-specific features (significant in one "
                      "language only) and those significant in both.",
                      layer);
  if (!f) return;
  int n = max_feature(L) + 1;
  double *den = calloc((size_t)(n > 0 ? n : 1), sizeof *den), *dar = calloc((size_t)(n > 0 ? n : 1), sizeof *dar);
  unsigned char *cls = calloc((size_t)(n > 0 ? n : 1), 1);
  if (!den || !dar || !cls) c->oom = 1;
  else {
    d_table(L, "en", den, n);
    d_table(L, "ar", dar, n);
    mark_set(L, "en_only", 1, cls, n);
    mark_set(L, "ar_only", 2, cls, n);
    mark_set(L, "both", 3, cls, n);
    scatter_sets(c, f, den, dar, cls, n);
  }
  free(den), free(dar), free(cls);
}

static void overlap_heatmap(fx_ctx *c, const rep_result *r) {
  rep_fig *f = fx_add(c, REP_SEC_RQ2, "rq2_topk_overlap", "Top-k gender features shared by English and Arabic",
                      "layer", "", "Overlap of the top-k features by |d| of the two languages, as a "
                      "fraction of k, per layer: observed, the mean and 97.5th percentile of the "
                      "label-permutation null, and chance (k²/features that fired). Grey: not computed.");
  if (fx_absent(c, f, r)) return;
  int nl = rep_jlen(r->root, "layers");
  static const char *rows[] = {"observed", "null mean", "null 97.5%", "chance"};
  static const char *keys[] = {"overlap", "null_mean", "null_hi", "chance"};
  double *v = malloc((size_t)(4 * (nl > 0 ? nl : 1)) * sizeof *v);
  char **cols = calloc((size_t)(nl > 0 ? nl : 1), sizeof *cols);
  int ok = v && cols;
  for (int i = 0; ok && i < nl; i++) {
    const sc_json *L = sc_json_at(rep_j(r->root, "layers"), i);
    double k = rep_jnum(L, "cross_language.top_k_overlap.k");
    cols[i] = malloc(16);
    if (!cols[i]) ok = 0;
    else snprintf(cols[i], 16, "%.0f", rep_jnum(L, "layer"));
    for (int t = 0; t < 4; t++) {
      char p[96];
      snprintf(p, sizeof p, "cross_language.top_k_overlap.%s", keys[t]);
      v[t * nl + i] = k > 0 ? rep_jnum(L, p) / k : NAN;
    }
  }
  if (!ok) c->oom = 1;
  else fx_check(c, rep_fig_heatmap(f, nl ? 4 : 0, nl, v, rows, (const char *const *)cols,
                                   "overlap / k (fraction)", 0, 1, 2));
  for (int i = 0; cols && i < nl; i++) free(cols[i]);
  free(cols);
  free(v);
}

void fx_rq2_figures(fx_ctx *c, const rep_result *r) {
  if (r->state != REP_RES_OK || !rep_jlen(r->root, "layers")) {
    rep_fig *f = fx_add(c, REP_SEC_RQ2, "rq2_volcano", "RQ2: gender effect per SAE feature",
                        "Cohen's d (pooled-SD units)", "−log10 q", "Volcano plots need feature_analysis.json.");
    if (!fx_absent(c, f, r) && f) fx_check(c, rep_fig_set_message(f, "feature_analysis.json lists no layers"));
  }
  for (int i = 0; r->state == REP_RES_OK && i < rep_jlen(r->root, "layers"); i++) {
    const sc_json *L = sc_json_at(rep_j(r->root, "layers"), i);
    double lv = rep_jnum(L, "layer");
    int layer = isfinite(lv) && fabs(lv) < 1e6 ? (int)lv : i;
    const sc_json *langs = rep_j(L, "languages");
    for (const sc_json *l = sc_json_first(langs); l; l = sc_json_next(l))
      if (sc_json_key(l) && strlen(sc_json_key(l)) < 16) volcano(c, r, L, layer, sc_json_key(l));
    en_ar_scatter(c, L, layer);
  }
  overlap_heatmap(c, r);
}
