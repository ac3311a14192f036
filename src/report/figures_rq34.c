/* figures_rq34.c: RQ3 figures from steering_experiments.json
 * (docs/results/steering_experiments.md: conditions[] with means and
 * vs_baseline paired differences, tests[]) and RQ4 figures from
 * morphology_analysis.json (docs/results/morphology_analysis.md: layers[]
 * .languages.<lang>.features[] with grammatical and semantic effects). */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "report/figures_impl.h"

/* ==== RQ3 ==== */

/* Distinct (language, layer) pairs of the non-baseline conditions. */
typedef struct lang_layer {
  char lang[16];
  double layer;
} lang_layer;

static int collect_pairs(const sc_json *conds, lang_layer *out, int cap) {
  int n = 0;
  for (int i = 0; i < sc_json_size(conds); i++) {
    const sc_json *c = sc_json_at(conds, i);
    const char *lang = rep_jstr(c, "language");
    double layer = rep_jnum(c, "layer");
    if (!lang || strlen(lang) >= 16 || !isfinite(layer)) continue;
    int seen = 0;
    for (int j = 0; j < n && !seen; j++) seen = !strcmp(out[j].lang, lang) && out[j].layer == layer;
    if (!seen && n < cap) {
      snprintf(out[n].lang, sizeof out[n].lang, "%s", lang);
      out[n++].layer = layer;
    }
  }
  return n;
}

static const sc_json *baseline_of(const sc_json *conds, const char *lang) {
  for (int i = 0; i < sc_json_size(conds); i++) {
    const sc_json *c = sc_json_at(conds, i);
    const char *k = rep_jstr(c, "kind"), *l = rep_jstr(c, "language");
    if (k && l && !strcmp(k, "baseline") && !strcmp(l, lang)) return c;
  }
  return NULL;
}

static int kind_color(const char *kind, const char *lang) {
  if (!kind) return REP_BLACK;
  if (!strcmp(kind, "baseline")) return REP_GREY;
  if (!strcmp(kind, "targeted")) return fx_lang_color(lang);
  if (!strcmp(kind, "random")) return REP_ORANGE;
  return REP_PURPLE; /* other_language */
}

static void bar_name(const sc_json *c, char *buf, size_t cap) {
  const char *k = rep_jstr(c, "kind");
  double kk = rep_jnum(c, "k"), rep = rep_jnum(c, "replicate");
  if (!k) k = "?";
  if (!strcmp(k, "baseline")) snprintf(buf, cap, "baseline");
  else if (!strcmp(k, "random")) snprintf(buf, cap, "random #%.0f, k=%.0f", rep, kk);
  else if (!strcmp(k, "other_language")) snprintf(buf, cap, "other language's, k=%.0f", kk);
  else snprintf(buf, cap, "%s, k=%.0f", k, kk);
}

/* Bars of one (language, layer): baseline then every condition of it. */
static void steer_bars(fx_ctx *c, const sc_json *conds, const lang_layer *p) {
  char stem[64], title[128];
  snprintf(stem, sizeof stem, "rq3_bars_L%.0f_%.15s", p->layer, p->lang);
  snprintf(title, sizeof title, "Layer %.0f, %s captions: gendered words after steering", p->layer, fx_lang_name(p->lang));
  rep_fig *f = fx_add(c, REP_SEC_RQ3, stem, title, "condition (feature set edited at this layer)",
                      "gendered words per caption (mean count)",
                      "Mean number of gendered words (lexicon matches, male + female) per %s caption: unedited "
                      "baseline, the top-k gender features of the language (targeted), frequency-matched random "
                      "feature sets (controls) and the other language's top-k features. Error bars: bootstrap "
                      "CI of the paired difference from the baseline, placed at baseline mean + difference.",
                      fx_lang_name(p->lang));
  if (!f) return;
  const sc_json *base = baseline_of(conds, p->lang);
  double b = rep_jnum(base, "means.gendered");
  int n = sc_json_size(conds) + 1, m = 0;
  double *y = calloc((size_t)n, sizeof *y), *lo = calloc((size_t)n, sizeof *lo), *hi = calloc((size_t)n, sizeof *hi);
  int *col = calloc((size_t)n, sizeof *col);
  char **names = calloc((size_t)n, sizeof *names);
  int ok = y && lo && hi && col && names;
  if (ok && base) {
    y[m] = b, lo[m] = hi[m] = NAN, col[m] = REP_GREY;
    ok = (names[m++] = strdup("baseline")) != NULL;
  }
  for (int i = 0; ok && i < sc_json_size(conds); i++) {
    const sc_json *cj = sc_json_at(conds, i);
    const char *l = rep_jstr(cj, "language");
    if (!l || strcmp(l, p->lang) || rep_jnum(cj, "layer") != p->layer) continue;
    char nm[96];
    bar_name(cj, nm, sizeof nm);
    y[m] = rep_jnum(cj, "means.gendered");
    lo[m] = b + rep_jnum(cj, "vs_baseline.gendered.ci_low");
    hi[m] = b + rep_jnum(cj, "vs_baseline.gendered.ci_high");
    col[m] = kind_color(rep_jstr(cj, "kind"), p->lang);
    ok = (names[m++] = strdup(nm)) != NULL;
  }
  if (!ok) c->oom = 1;
  else fx_check(c, rep_fig_bars(f, m, (const char *const *)names, y, lo, hi, col));
  for (int i = 0; names && i < m; i++) free(names[i]);
  free(names), free(y), free(lo), free(hi), free(col);
}

/* (KL, −Δ gendered) per k of one kind: one point per k, the random
 * replicates of a k averaged. */
static void cost_series(fx_ctx *c, rep_fig *f, const sc_json *conds, const lang_layer *p, const char *kind,
                        const char *label, int color) {
  fx_vec x = {0}, y = {0}, ks = {0}, cnt = {0};
  for (int i = 0; i < sc_json_size(conds); i++) {
    const sc_json *cj = sc_json_at(conds, i);
    const char *l = rep_jstr(cj, "language"), *k = rep_jstr(cj, "kind");
    if (!l || !k || strcmp(l, p->lang) || strcmp(k, kind) || rep_jnum(cj, "layer") != p->layer) continue;
    double kv = rep_jnum(cj, "k"), kl = rep_jnum(cj, "means.kl"), eff = -rep_jnum(cj, "vs_baseline.gendered.mean_diff");
    int at = -1;
    for (int j = 0; j < ks.n; j++)
      if (ks.v[j] == kv) at = j;
    if (at < 0) {
      fx_vec_push(&ks, kv), fx_vec_push(&x, 0), fx_vec_push(&y, 0), fx_vec_push(&cnt, 0);
      at = ks.n - 1;
      if (ks.oom || x.oom || y.oom || cnt.oom) break;
    }
    x.v[at] += kl, y.v[at] += eff, cnt.v[at] += 1;
  }
  if (ks.oom || x.oom || y.oom || cnt.oom) c->oom = 1;
  else {
    for (int j = 0; j < ks.n; j++) x.v[j] /= cnt.v[j], y.v[j] /= cnt.v[j];
    for (int a = 1; a < ks.n; a++) /* order the points by k (insertion sort) */
      for (int b = a; b > 0 && ks.v[b] < ks.v[b - 1]; b--) {
        double t;
        t = ks.v[b], ks.v[b] = ks.v[b - 1], ks.v[b - 1] = t;
        t = x.v[b], x.v[b] = x.v[b - 1], x.v[b - 1] = t;
        t = y.v[b], y.v[b] = y.v[b - 1], y.v[b - 1] = t;
      }
    if (ks.n) fx_check(c, rep_fig_line(f, label, ks.n, x.v, y.v, NULL, NULL, color, color == REP_ORANGE));
  }
  fx_vec_free(&x), fx_vec_free(&y), fx_vec_free(&ks), fx_vec_free(&cnt);
}

static void steer_cost(fx_ctx *c, const sc_json *conds, const lang_layer *p) {
  char stem[64], title[128];
  snprintf(stem, sizeof stem, "rq3_cost_L%.0f_%.15s", p->layer, p->lang);
  snprintf(title, sizeof title, "Layer %.0f, %s: effect versus cost over k", p->layer, fx_lang_name(p->lang));
  rep_fig *f = fx_add(c, REP_SEC_RQ3, stem, title, "cost: mean KL(steered ‖ baseline) per token (nats)",
                      "effect: fewer gendered words per caption",
                      "Effect (reduction of gendered words per caption against the baseline) against cost "
                      "(mean next-token KL divergence from the unedited model along the baseline caption), "
                      "one point per feature-set size k, k increasing along each line; random controls "
                      "averaged over replicates.");
  if (!f) return;
  cost_series(c, f, conds, p, "targeted", "targeted (top-k)", fx_lang_color(p->lang));
  cost_series(c, f, conds, p, "random", "random controls (mean)", REP_ORANGE);
  cost_series(c, f, conds, p, "other_language", "other language's top-k", REP_PURPLE);
  fx_check(c, rep_fig_hline(f, 0, "no change"));
}

#define RQ3_MAX_PAIRS 256

void fx_rq3_figures(fx_ctx *c, const rep_result *r) {
  const sc_json *conds = r->state == REP_RES_OK ? rep_j(r->root, "conditions") : NULL;
  lang_layer pairs[RQ3_MAX_PAIRS];
  int n = conds ? collect_pairs(conds, pairs, RQ3_MAX_PAIRS) : 0;
  if (!n) {
    rep_fig *f = fx_add(c, REP_SEC_RQ3, "rq3_steering", "Steering: gendered words after suppressing features",
                        "condition", "gendered words per caption (mean count)",
                        "Steering results need steering_experiments.json with steered conditions.");
    if (!fx_absent(c, f, r) && f) fx_check(c, rep_fig_set_message(f, "steering_experiments.json has no steered condition"));
    return;
  }
  for (int i = 0; i < n; i++) {
    steer_bars(c, conds, &pairs[i]);
    steer_cost(c, conds, &pairs[i]);
  }
}

/* ==== RQ4 ==== */

static void morph_scatter(fx_ctx *c, const sc_json *L, const char *lang, int layer) {
  char stem[64], title[128];
  snprintf(stem, sizeof stem, "rq4_gram_vs_sem_L%d_%s", layer, lang);
  snprintf(title, sizeof title, "Layer %d, %s: grammatical vs semantic gender per feature", layer, fx_lang_name(lang));
  rep_fig *f = fx_add(c, REP_SEC_RQ4, stem, title,
                      "grammatical effect: Cohen's d, feminine − masculine words (pooled-SD units)",
                      "semantic effect: Cohen's d, female − male images (pooled-SD units)",
                      "Each point is an SAE feature significant in at least one test at layer %d (%s): its "
                      "effect on grammatically feminine vs masculine words whose gender carries no meaning "
                      "(x) against its effect on captions of images of women vs men (y); colour gives the "
                      "class (significant in one test or both).",
                      layer, fx_lang_name(lang));
  if (!f) return;
  const sc_json *lj = rep_j(rep_j(L, "languages"), lang);
  const char *st = rep_jstr(lj, "classification.status");
  if (st && strcmp(st, "ok") != 0) {
    char msg[400];
    snprintf(msg, sizeof msg, "RQ4 tests skipped: grammatical %.150s; semantic %.150s",
             rep_jstr(lj, "grammatical.skip_reason") ? rep_jstr(lj, "grammatical.skip_reason") : "ran",
             rep_jstr(lj, "semantic.skip_reason") ? rep_jstr(lj, "semantic.skip_reason") : "ran");
    fx_check(c, rep_fig_set_message(f, msg));
    return;
  }
  static const char *cls[] = {"grammatical", "semantic", "both"};
  static const char *names[] = {"grammatical only", "semantic only", "both"};
  static const int cols[] = {REP_ORANGE, REP_SKY, REP_GREEN};
  for (int k = 0; k < 3; k++) {
    fx_vec x = {0}, y = {0};
    const sc_json *fs = rep_j(lj, "features");
    for (int i = 0; i < sc_json_size(fs); i++) {
      const sc_json *e = sc_json_at(fs, i);
      const char *cl = rep_jstr(e, "class");
      if (!cl || strcmp(cl, cls[k])) continue;
      fx_vec_push(&x, rep_jnum(e, "grammatical.cohens_d"));
      fx_vec_push(&y, rep_jnum(e, "semantic.cohens_d"));
    }
    if (x.oom || y.oom) c->oom = 1;
    else fx_check(c, rep_fig_scatter(f, names[k], x.n, x.v, y.v, cols[k], 3.5));
    fx_vec_free(&x), fx_vec_free(&y);
  }
}

void fx_rq4_figures(fx_ctx *c, const rep_result *r) {
  int n = 0;
  for (int i = 0; r->state == REP_RES_OK && i < rep_jlen(r->root, "layers"); i++) {
    const sc_json *L = sc_json_at(rep_j(r->root, "layers"), i);
    double lv = rep_jnum(L, "layer");
    int layer = isfinite(lv) && fabs(lv) < 1e6 ? (int)lv : i;
    for (const sc_json *l = sc_json_first(rep_j(L, "languages")); l; l = sc_json_next(l))
      if (sc_json_key(l) && strlen(sc_json_key(l)) < 16) {
        morph_scatter(c, L, sc_json_key(l), layer);
        n++;
      }
  }
  if (n) return;
  rep_fig *f = fx_add(c, REP_SEC_RQ4, "rq4_grammatical_vs_semantic", "Grammatical vs semantic gender per feature",
                      "grammatical effect (Cohen's d)", "semantic effect (Cohen's d)",
                      "Morphology results need morphology_analysis.json with a tested language.");
  if (!fx_absent(c, f, r) && f) fx_check(c, rep_fig_set_message(f, "morphology_analysis.json has no tested language"));
}
