/* figures_rq1.c: RQ1 figures from cross_lingual_analysis.json
 * (docs/results/cross_lingual_analysis.md): the primary segment's layers[]
 * (direction cosine with CI, probe accuracies with CIs, CKA) and its
 * divergence layers. */
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "report/figures_impl.h"

/* The segment the report shows: primary_segment, else the first one. */
const sc_json *fx_rq1_segment(const sc_json *root) {
  const sc_json *segs = rep_j(root, "segments");
  const char *prim = rep_jstr(root, "primary_segment");
  const sc_json *s = prim ? sc_json_get(segs, prim) : NULL;
  if (!s && sc_json_is_object(segs)) s = sc_json_first(segs);
  return s;
}

/* Per layer: x = layer, y = path value, lo/hi = path_ci[0..1] (ci may be NULL). */
static void layer_series(const sc_json *seg, const char *path, const char *ci, fx_vec *x, fx_vec *y,
                         fx_vec *lo, fx_vec *hi) {
  const sc_json *layers = rep_j(seg, "layers");
  for (int i = 0; i < sc_json_size(layers); i++) {
    const sc_json *L = sc_json_at(layers, i);
    char p[96];
    fx_vec_push(x, rep_jnum(L, "layer"));
    fx_vec_push(y, rep_jnum(L, path));
    if (!ci) continue;
    snprintf(p, sizeof p, "%s.0", ci);
    fx_vec_push(lo, rep_jnum(L, p));
    snprintf(p, sizeof p, "%s.1", ci);
    fx_vec_push(hi, rep_jnum(L, p));
  }
}

static void add_layer_line(fx_ctx *c, rep_fig *f, const sc_json *seg, const char *label, const char *path,
                           const char *ci, int color, int dashed) {
  fx_vec x = {0}, y = {0}, lo = {0}, hi = {0};
  layer_series(seg, path, ci, &x, &y, &lo, &hi);
  if (x.oom || y.oom || lo.oom || hi.oom) c->oom = 1;
  else fx_check(c, rep_fig_line(f, label, x.n, x.v, y.v, ci ? lo.v : NULL, ci ? hi.v : NULL, color, dashed));
  fx_vec_free(&x), fx_vec_free(&y), fx_vec_free(&lo), fx_vec_free(&hi);
}

static void mark_divergence(fx_ctx *c, rep_fig *f, const sc_json *seg, const char *key, const char *label) {
  char p[96];
  snprintf(p, sizeof p, "divergence.%s", key);
  const sc_json *d = rep_j(seg, p);
  const char *st = rep_jstr(d, "status");
  if (st && !strcmp(st, "ok") && isfinite(rep_jnum(d, "layer")))
    fx_check(c, rep_fig_vline(f, rep_jnum(d, "layer"), label));
}

/* 1 when the figure can draw the segment; else sets the reason. */
static int seg_usable(fx_ctx *c, rep_fig *f, const rep_result *r, const sc_json *seg) {
  if (fx_absent(c, f, r)) return 0;
  const char *st = rep_jstr(seg, "status");
  char msg[400];
  if (!seg) snprintf(msg, sizeof msg, "cross_lingual_analysis.json has no segment");
  else if (st && strcmp(st, "ok") != 0)
    snprintf(msg, sizeof msg, "RQ1 skipped: %.300s", rep_jstr(seg, "skip_reason") ? rep_jstr(seg, "skip_reason") : "no reason given");
  else return 1;
  fx_check(c, rep_fig_set_message(f, msg));
  return 0;
}

void fx_rq1_figures(fx_ctx *c, const rep_result *r) {
  const sc_json *seg = r->state == REP_RES_OK ? fx_rq1_segment(r->root) : NULL;
  const char *sname = rep_jstr(seg, "segment") ? rep_jstr(seg, "segment") : "primary";
  rep_fig *f = fx_add(c, REP_SEC_RQ1, "rq1_direction_cosine", "Agreement of the English and Arabic gender directions",
                      "layer", "cosine similarity (unitless)",
                      "Cosine between the English and the Arabic gender direction (mean female − mean male "
                      "of the %s-pooled residual stream) at each analysed layer, with its bootstrap CI over "
                      "images (band); the dashed grey line is the mean under label permutation; the dotted "
                      "vertical line marks the divergence layer (largest drop of the cosine).",
                      sname);
  if (seg_usable(c, f, r, seg)) {
    rep_fig_set_xinteger(f, 1);
    add_layer_line(c, f, seg, "EN vs AR direction cosine", "direction.cosine", "direction.cosine_ci", REP_BLUE, 0);
    add_layer_line(c, f, seg, "permutation null (mean)", "direction.perm_null_mean", NULL, REP_GREY, 1);
    mark_divergence(c, f, seg, "direction_cosine", "divergence layer (cosine)");
  }
  f = fx_add(c, REP_SEC_RQ1, "rq1_probe_accuracy", "Gender probe accuracy within and across languages",
             "layer", "accuracy (fraction of samples)",
             "Logistic-regression probe for the sample's gender label on the %s-pooled residual "
             "stream, image-grouped cross-validation: trained and tested in one language (solid) and "
             "trained in one, tested in the other (dashed), with bootstrap CIs over images; 0.5 is "
             "chance; the vertical line marks the divergence layer of the transfer accuracy.",
             sname);
  if (seg_usable(c, f, r, seg)) {
    rep_fig_set_xinteger(f, 1);
    add_layer_line(c, f, seg, "English (within)", "probe.en.acc", "probe.en.ci", REP_BLUE, 0);
    add_layer_line(c, f, seg, "Arabic (within)", "probe.ar.acc", "probe.ar.ci", REP_VERMILLION, 0);
    add_layer_line(c, f, seg, "English → Arabic", "probe.en_to_ar.acc", "probe.en_to_ar.ci", REP_SKY, 1);
    add_layer_line(c, f, seg, "Arabic → English", "probe.ar_to_en.acc", "probe.ar_to_en.ci", REP_ORANGE, 1);
    fx_check(c, rep_fig_hline(f, 0.5, "chance"));
    mark_divergence(c, f, seg, "probe_transfer", "divergence layer (transfer)");
  }
  f = fx_add(c, REP_SEC_RQ1, "rq1_cka", "Similarity of the English and Arabic representations", "layer",
             "linear CKA (0 to 1)",
             "Linear centred kernel alignment between the English and the Arabic %s-pooled residual "
             "streams of the same samples, per layer.",
             sname);
  if (seg_usable(c, f, r, seg)) {
    rep_fig_set_xinteger(f, 1);
    add_layer_line(c, f, seg, "CKA (EN, AR)", "cka.value", NULL, REP_GREEN, 0);
    mark_divergence(c, f, seg, "direction_cosine", "divergence layer (cosine)");
  }
}
