/* summary.c: the report's summary: each research question answered with
 * numbers read from the results JSON (html.h: every number is a
 * <span class="num" data-src="file#path">, every data string a
 * <span class="txt" data-src=...>, so a test can trace each one back). */
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "report/figures_impl.h"
#include "report/html.h"

/* ==== traced values ==== */

static void vpath(char *buf, size_t cap, const char *fmt, va_list ap) { vsnprintf(buf, cap, fmt, ap); }

/* The number at the printf-formed path, with `dec` decimals. */
static void __attribute__((format(printf, 4, 5))) N(rep_buf *b, const rep_result *r, int dec, const char *fmt, ...) {
  char path[256];
  va_list ap;
  va_start(ap, fmt);
  vpath(path, sizeof path, fmt, ap);
  va_end(ap);
  double v = rep_jnum(r->root, path);
  rep_buf_printf(b, "<span class=\"num%s\" data-src=\"%s.json#", isfinite(v) ? "" : " na", r->stem);
  rep_buf_html(b, path);
  if (isfinite(v)) rep_buf_printf(b, "\" data-dec=\"%d\">%.*f</span>", dec, dec, v);
  else rep_buf_puts(b, "\">n/a</span>");
}

/* The string at the path (escaped), or "n/a". */
static void __attribute__((format(printf, 3, 4))) T(rep_buf *b, const rep_result *r, const char *fmt, ...) {
  char path[256];
  va_list ap;
  va_start(ap, fmt);
  vpath(path, sizeof path, fmt, ap);
  va_end(ap);
  const char *s = rep_jstr(r->root, path);
  rep_buf_printf(b, "<span class=\"txt\" data-src=\"%s.json#", r->stem);
  rep_buf_html(b, path);
  rep_buf_puts(b, "\">");
  rep_buf_html(b, s ? s : "n/a");
  rep_buf_puts(b, "</span>");
}

/* "[lo, hi]" of a two-element array at path. */
static void __attribute__((format(printf, 4, 5))) CI(rep_buf *b, const rep_result *r, int dec, const char *fmt, ...) {
  char path[256];
  va_list ap;
  va_start(ap, fmt);
  vpath(path, sizeof path, fmt, ap);
  va_end(ap);
  rep_buf_puts(b, "[");
  N(b, r, dec, "%s.0", path);
  rep_buf_puts(b, ", ");
  N(b, r, dec, "%s.1", path);
  rep_buf_puts(b, "]");
}

static int absent(rep_buf *b, const rep_result *r) {
  if (r->state == REP_RES_OK) return 0;
  char msg[600];
  fx_absent_msg(r, msg, sizeof msg);
  rep_buf_puts(b, "<li class=\"absent\">Not answered: ");
  rep_buf_html(b, msg);
  rep_buf_puts(b, ".</li>\n");
  return 1;
}

/* ==== SAE quality ==== */

static void sum_sae(rep_buf *b, const rep_result *r) {
  rep_buf_puts(b, "<h3>SAE quality</h3>\n<ul>\n");
  if (!absent(b, r)) {
    int n = rep_jlen(r->root, "saes");
    if (!n) rep_buf_puts(b, "<li>sae_metrics.json lists no SAE.</li>\n");
    for (int i = 0; i < n; i++) {
      const sc_json *langs = rep_j(r->root, "saes");
      langs = rep_j(sc_json_at(langs, i), "languages");
      for (const sc_json *l = sc_json_first(langs); l; l = sc_json_next(l)) {
        const char *k = sc_json_key(l);
        if (!k || strlen(k) > 32) continue;
        rep_buf_puts(b, "<li>SAE ");
        T(b, r, "saes.%d.sae", i);
        rep_buf_puts(b, " (layer ");
        N(b, r, 0, "saes.%d.layer", i);
        rep_buf_puts(b, "), ");
        rep_buf_html(b, fx_lang_name(k));
        rep_buf_puts(b, " held-out tokens: FVU ");
        N(b, r, 4, "saes.%d.languages.%s.fvu", i, k);
        rep_buf_puts(b, ", active latents per token ");
        N(b, r, 2, "saes.%d.languages.%s.l0", i, k);
        rep_buf_puts(b, ", dead fraction ");
        N(b, r, 4, "saes.%d.languages.%s.dead_fraction", i, k);
        rep_buf_puts(b, ", CE loss recovered ");
        N(b, r, 4, "saes.%d.languages.%s.ce_loss.recovered", i, k);
        rep_buf_puts(b, ".</li>\n");
      }
    }
  }
  rep_buf_puts(b, "</ul>\n");
}

/* ==== RQ1 ==== */

static int layer_index(const sc_json *seg, double layer) {
  const sc_json *ls = rep_j(seg, "layers");
  for (int i = 0; i < sc_json_size(ls); i++)
    if (rep_jnum(sc_json_at(ls, i), "layer") == layer) return i;
  return -1;
}

static void rq1_divergence(rep_buf *b, const rep_result *r, const char *sp, const char *key, const char *what) {
  char p[320];
  snprintf(p, sizeof p, "%s.divergence.%s.status", sp, key);
  const char *st = rep_jstr(r->root, p);
  rep_buf_printf(b, "<li>Divergence layer by %s: ", what);
  if (st && !strcmp(st, "ok")) {
    rep_buf_puts(b, "layer ");
    N(b, r, 0, "%s.divergence.%s.layer", sp, key);
    rep_buf_puts(b, " (drop from layer ");
    N(b, r, 0, "%s.divergence.%s.from_layer", sp, key);
    rep_buf_puts(b, ": ");
    N(b, r, 3, "%s.divergence.%s.drop", sp, key);
    rep_buf_puts(b, ", bootstrap CI ");
    CI(b, r, 3, "%s.divergence.%s.drop_ci", sp, key);
    rep_buf_puts(b, "; layer CI ");
    CI(b, r, 0, "%s.divergence.%s.layer_ci", sp, key);
    rep_buf_puts(b, ", bootstrap support ");
    N(b, r, 2, "%s.divergence.%s.layer_support", sp, key);
    rep_buf_puts(b, ").</li>\n");
  } else {
    rep_buf_puts(b, "not determined (");
    T(b, r, "%s.divergence.%s.skip_reason", sp, key);
    rep_buf_puts(b, ").</li>\n");
  }
}

static void rq1_layer(rep_buf *b, const rep_result *r, const char *sp, int i, const char *which) {
  rep_buf_printf(b, "<li>%s layer ", which);
  N(b, r, 0, "%s.layers.%d.layer", sp, i);
  rep_buf_puts(b, ": EN/AR direction cosine ");
  N(b, r, 3, "%s.layers.%d.direction.cosine", sp, i);
  rep_buf_puts(b, " ");
  CI(b, r, 3, "%s.layers.%d.direction.cosine_ci", sp, i);
  rep_buf_puts(b, " (label-permutation null mean ");
  N(b, r, 3, "%s.layers.%d.direction.perm_null_mean", sp, i);
  rep_buf_puts(b, ", p ");
  N(b, r, 4, "%s.layers.%d.direction.perm_p", sp, i);
  rep_buf_puts(b, ", q ");
  N(b, r, 4, "%s.layers.%d.direction.perm_q", sp, i);
  rep_buf_puts(b, "); probe accuracy within EN ");
  N(b, r, 3, "%s.layers.%d.probe.en.acc", sp, i);
  rep_buf_puts(b, ", within AR ");
  N(b, r, 3, "%s.layers.%d.probe.ar.acc", sp, i);
  rep_buf_puts(b, ", EN→AR ");
  N(b, r, 3, "%s.layers.%d.probe.en_to_ar.acc", sp, i);
  rep_buf_puts(b, ", AR→EN ");
  N(b, r, 3, "%s.layers.%d.probe.ar_to_en.acc", sp, i);
  rep_buf_puts(b, "; CKA ");
  N(b, r, 3, "%s.layers.%d.cka.value", sp, i);
  rep_buf_puts(b, ".</li>\n");
}

static void sum_rq1(rep_buf *b, const rep_result *r) {
  rep_buf_puts(b, "<h3>RQ1: Where do the English and Arabic gender representations diverge?</h3>\n<ul>\n");
  if (!absent(b, r)) {
    const sc_json *seg = fx_rq1_segment(r->root);
    const char *name = seg ? sc_json_key(seg) : NULL;
    char sp[160];
    snprintf(sp, sizeof sp, "segments.%.100s", name ? name : "");
    const char *st = rep_jstr(seg, "status");
    if (!seg || !name) rep_buf_puts(b, "<li>cross_lingual_analysis.json has no segment.</li>\n");
    else if (st && strcmp(st, "ok") != 0) {
      rep_buf_puts(b, "<li>Skipped: ");
      T(b, r, "%s.skip_reason", sp);
      rep_buf_puts(b, ".</li>\n");
    } else {
      rep_buf_puts(b, "<li>Pooled segment ");
      T(b, r, "%s.segment", sp);
      rep_buf_puts(b, ": ");
      N(b, r, 0, "%s.n_male", sp);
      rep_buf_puts(b, " male and ");
      N(b, r, 0, "%s.n_female", sp);
      rep_buf_puts(b, " female samples from ");
      N(b, r, 0, "%s.n_images", sp);
      rep_buf_puts(b, " images.</li>\n");
      rq1_divergence(b, r, sp, "direction_cosine", "the EN/AR direction cosine");
      rq1_divergence(b, r, sp, "probe_transfer", "cross-language probe transfer");
      int nl = rep_jlen(seg, "layers");
      if (nl > 0) rq1_layer(b, r, sp, 0, "First analysed");
      int di = layer_index(seg, rep_jnum(seg, "divergence.direction_cosine.layer"));
      if (di > 0 && di < nl - 1) rq1_layer(b, r, sp, di, "Divergence");
      if (nl > 1) rq1_layer(b, r, sp, nl - 1, "Last analysed");
    }
  }
  rep_buf_puts(b, "</ul>\n");
}

/* ==== RQ2 ==== */

static void rq2_layer(rep_buf *b, const rep_result *r, int i) {
  const sc_json *L = sc_json_at(rep_j(r->root, "layers"), i);
  const char *st = rep_jstr(L, "cross_language.status");
  rep_buf_puts(b, "<li>Layer ");
  N(b, r, 0, "layers.%d.layer", i);
  if (st && strcmp(st, "ok") != 0) {
    rep_buf_puts(b, ": cross-language comparison skipped (");
    T(b, r, "layers.%d.cross_language.skip_reason", i);
    rep_buf_puts(b, ").</li>\n");
    return;
  }
  rep_buf_puts(b, ": ");
  N(b, r, 0, "layers.%d.cross_language.counts.en_only", i);
  rep_buf_puts(b, " features significant in English only, ");
  N(b, r, 0, "layers.%d.cross_language.counts.ar_only", i);
  rep_buf_puts(b, " in Arabic only, ");
  N(b, r, 0, "layers.%d.cross_language.counts.both", i);
  rep_buf_puts(b, " in both (q ≤ ");
  N(b, r, 2, "layers.%d.cross_language.fdr", i);
  rep_buf_puts(b, "). Top-k overlap: ");
  N(b, r, 0, "layers.%d.cross_language.top_k_overlap.overlap", i);
  rep_buf_puts(b, " of k = ");
  N(b, r, 0, "layers.%d.cross_language.top_k_overlap.k", i);
  rep_buf_puts(b, " (Jaccard ");
  N(b, r, 3, "layers.%d.cross_language.top_k_overlap.jaccard", i);
  rep_buf_puts(b, "; permutation null mean ");
  N(b, r, 2, "layers.%d.cross_language.top_k_overlap.null_mean", i);
  rep_buf_puts(b, ", p ");
  N(b, r, 4, "layers.%d.cross_language.top_k_overlap.p", i);
  rep_buf_puts(b, ").</li>\n");
}

static void sum_rq2(rep_buf *b, const rep_result *r) {
  rep_buf_puts(b, "<h3>RQ2: Are there language-specific gender features?</h3>\n<ul>\n");
  if (!absent(b, r)) {
    int n = rep_jlen(r->root, "layers");
    if (!n) rep_buf_puts(b, "<li>feature_analysis.json lists no layer.</li>\n");
    for (int i = 0; i < n; i++) rq2_layer(b, r, i);
  }
  rep_buf_puts(b, "</ul>\n");
}

/* ==== RQ3, RQ4 (summary.c's rq34 part) ==== */

void rep_summary_rq3(rep_buf *b, const rep_result *r);
void rep_summary_rq4(rep_buf *b, const rep_result *r);

void rep_html_summary(rep_buf *b, const rep_results *r) {
  rep_buf_puts(b, "<section id=\"summary\">\n<h2>Summary</h2>\n");
  rep_buf_puts(b, "<p class=\"note\">Every number below is read from the results JSON named in its "
                  "file and key in its <code>data-src</code> attribute; n/a means the value is absent.</p>\n");
  sum_rq1(b, &r->r[REP_CROSSLING]);
  sum_rq2(b, &r->r[REP_FEATURES]);
  rep_summary_rq3(b, &r->r[REP_STEERING]);
  rep_summary_rq4(b, &r->r[REP_MORPHOLOGY]);
  sum_sae(b, &r->r[REP_SAE_METRICS]);
  rep_buf_puts(b, "</section>\n");
}

/* ==== RQ3 ==== */

static int cond_index(const sc_json *root, const char *name, const char *kind, const char *lang) {
  const sc_json *cs = rep_j(root, "conditions");
  for (int i = 0; i < sc_json_size(cs); i++) {
    const sc_json *c = sc_json_at(cs, i);
    const char *n = rep_jstr(c, "name"), *k = rep_jstr(c, "kind"), *l = rep_jstr(c, "language");
    if (name ? n && !strcmp(n, name) : k && l && !strcmp(k, kind) && !strcmp(l, lang)) return i;
  }
  return -1;
}

static void rq3_test(rep_buf *b, const rep_result *r, int i) {
  const sc_json *t = sc_json_at(rep_j(r->root, "tests"), i);
  const char *lang = rep_jstr(t, "language");
  int j = cond_index(r->root, rep_jstr(t, "targeted"), NULL, NULL);
  int bi = lang ? cond_index(r->root, NULL, "baseline", lang) : -1;
  rep_buf_puts(b, "<li>");
  T(b, r, "tests.%d.language", i);
  rep_buf_puts(b, " captions, layer ");
  N(b, r, 0, "tests.%d.layer", i);
  rep_buf_puts(b, ", top-k with k = ");
  N(b, r, 0, "tests.%d.k", i);
  rep_buf_puts(b, ": gendered words per caption change by ");
  N(b, r, 3, "tests.%d.targeted_effect", i);
  rep_buf_puts(b, " (bootstrap CI ");
  rep_buf_puts(b, "[");
  N(b, r, 3, "conditions.%d.vs_baseline.gendered.ci_low", j);
  rep_buf_puts(b, ", ");
  N(b, r, 3, "conditions.%d.vs_baseline.gendered.ci_high", j);
  rep_buf_puts(b, "]; baseline ");
  N(b, r, 3, "conditions.%d.means.gendered", bi);
  rep_buf_puts(b, " per caption); random frequency-matched sets: mean change ");
  N(b, r, 3, "tests.%d.random_mean_effect", i);
  rep_buf_puts(b, ", rank p ");
  N(b, r, 3, "tests.%d.p_rank", i);
  rep_buf_puts(b, "; sign-flip p ");
  N(b, r, 4, "tests.%d.signflip_p", i);
  rep_buf_puts(b, "; the other language's features: change ");
  N(b, r, 3, "tests.%d.other_language_effect", i);
  rep_buf_puts(b, ". Cost of the targeted edit: KL ");
  N(b, r, 4, "conditions.%d.means.kl", j);
  rep_buf_puts(b, " nats per token, chrF to the baseline caption ");
  N(b, r, 2, "conditions.%d.means.chrf", j);
  rep_buf_puts(b, ".</li>\n");
}

void rep_summary_rq3(rep_buf *b, const rep_result *r) {
  rep_buf_puts(b, "<h3>RQ3: Does suppressing the gender features change the captions, and at what cost?</h3>\n<ul>\n");
  if (!absent(b, r)) {
    int n = rep_jlen(r->root, "tests");
    if (!n) rep_buf_puts(b, "<li>steering_experiments.json lists no test.</li>\n");
    else {
      rep_buf_puts(b, "<li>Edit mode ");
      T(b, r, "settings.mode");
      rep_buf_puts(b, " on ");
      N(b, r, 0, "settings.n_samples");
      rep_buf_puts(b, " images of the ");
      T(b, r, "settings.split");
      rep_buf_puts(b, " split.</li>\n");
    }
    for (int i = 0; i < n; i++) rq3_test(b, r, i);
  }
  rep_buf_puts(b, "</ul>\n");
}

/* ==== RQ4 ==== */

static void rq4_lang(rep_buf *b, const rep_result *r, int i, const char *lang) {
  char p[160];
  snprintf(p, sizeof p, "layers.%d.languages.%s", i, lang);
  rep_buf_puts(b, "<li>Layer ");
  N(b, r, 0, "layers.%d.layer", i);
  rep_buf_printf(b, ", %s: ", fx_lang_name(lang));
  const char *cs = rep_jstr(rep_j(r->root, p), "classification.status");
  if (cs && strcmp(cs, "ok") != 0) {
    static const char *tests[2] = {"grammatical", "semantic"};
    rep_buf_puts(b, "tests skipped (");
    for (int t = 0; t < 2; t++) {
      char q[200];
      snprintf(q, sizeof q, "%s.%s.status", p, tests[t]);
      const char *ts = rep_jstr(r->root, q);
      rep_buf_printf(b, "%s%s: ", t ? "; " : "", tests[t]);
      if (ts && !strcmp(ts, "ok")) rep_buf_puts(b, "ran");
      else T(b, r, "%s.%s.skip_reason", p, tests[t]);
    }
    rep_buf_puts(b, ").</li>\n");
    return;
  }
  rep_buf_puts(b, "of ");
  N(b, r, 0, "%s.n_features", p);
  rep_buf_puts(b, " features, ");
  N(b, r, 0, "%s.classification.grammatical", p);
  rep_buf_puts(b, " track grammatical gender only, ");
  N(b, r, 0, "%s.classification.semantic", p);
  rep_buf_puts(b, " semantic gender only, ");
  N(b, r, 0, "%s.classification.both", p);
  rep_buf_puts(b, " both (");
  N(b, r, 0, "%s.classification.both_same_direction", p);
  rep_buf_puts(b, " with the same sign), ");
  N(b, r, 0, "%s.classification.neither", p);
  rep_buf_puts(b, " neither (q &lt; ");
  N(b, r, 2, "%s.fdr", p);
  rep_buf_puts(b, "); words tested: ");
  N(b, r, 0, "%s.grammatical.n_feminine", p);
  rep_buf_puts(b, " feminine, ");
  N(b, r, 0, "%s.grammatical.n_masculine", p);
  rep_buf_puts(b, " masculine; samples: ");
  N(b, r, 0, "%s.semantic.n_female", p);
  rep_buf_puts(b, " female, ");
  N(b, r, 0, "%s.semantic.n_male", p);
  rep_buf_puts(b, " male.</li>\n");
}

void rep_summary_rq4(rep_buf *b, const rep_result *r) {
  rep_buf_puts(b, "<h3>RQ4: Do the features track grammatical or semantic gender?</h3>\n<ul>\n");
  if (!absent(b, r)) {
    int n = rep_jlen(r->root, "layers"), shown = 0;
    for (int i = 0; i < n; i++) {
      const sc_json *L = sc_json_at(rep_j(r->root, "layers"), i);
      const char *st = rep_jstr(L, "status");
      if (st && strcmp(st, "ok") != 0) {
        rep_buf_puts(b, "<li>Layer ");
        N(b, r, 0, "layers.%d.layer", i);
        rep_buf_puts(b, ": skipped (");
        T(b, r, "layers.%d.skip_reason", i);
        rep_buf_puts(b, ").</li>\n");
        shown++;
        continue;
      }
      for (const sc_json *l = sc_json_first(rep_j(L, "languages")); l; l = sc_json_next(l))
        if (sc_json_key(l) && strlen(sc_json_key(l)) < 16 && !strchr(sc_json_key(l), '.')) {
          rq4_lang(b, r, i, sc_json_key(l));
          shown++;
        }
    }
    if (!shown) rep_buf_puts(b, "<li>morphology_analysis.json lists no layer.</li>\n");
  }
  rep_buf_puts(b, "</ul>\n");
}
