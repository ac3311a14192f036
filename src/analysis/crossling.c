/* crossling.c: RQ1, per-layer agreement of the English and Arabic gender
 * representations and the layer where it drops most. Definitions:
 * docs/results/cross_lingual_analysis.md. */
#include "analysis/crossling.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "analysis/probe.h"
#include "analysis/stats.h"
#include "base/error.h"
#include "base/log.h"
#include "base/rng.h"
#include "base/version.h"
#include "pipeline/prepare.h"
#include "tensor/blas.h"

/* Resamples (or permutations) per GEMM: W [CHUNK, n] · X [n, d]. */
#define CHUNK 64

#define DEF_COS                                                                  \
  "largest decrease of the EN-AR gender-direction cosine between consecutive " \
  "analysed layers; layer = the later layer of the pair"
#define DEF_TR                                                                   \
  "largest decrease of the mean transfer accuracy (EN->AR and AR->EN) between " \
  "consecutive analysed layers; layer = the later layer of the pair"

enum { PURPOSE_BOOT = 1, PURPOSE_PERM = 2, PURPOSE_FOLDS = 3 };

/* Every stochastic step gets its own seed from the run's seed, so adding a
 * step never shifts another's stream. The bootstrap seed is the same for
 * every layer and every statistic: all CIs resample the same images. */
static uint64_t sub_seed(uint64_t seed, uint64_t purpose) {
  sc_rng r;
  sc_rng_seed(&r, seed ^ (0x9e3779b97f4a7c15ULL * purpose));
  return sc_rng_u64(&r);
}

/* State of one run over the selected (male/female) rows. */
typedef struct {
  size_t ns, d, nl;
  int *y;                 /* [ns] 0 male, 1 female */
  an_groups g;            /* images of the selected rows */
  size_t *gm, *gf;        /* [n_groups] male / female rows per image */
  int groups_pure;        /* every image has one label: permute whole images */
  int *fold;              /* [ns] */
  int probes_ok;
  uint64_t seed_boot, seed_perm, seed_folds;
  size_t n_boot, n_perm;
  double ci;
  float *E, *A;           /* [ns, d] centred copies of the current layer */
  float *W, *DE, *DA;     /* [CHUNK, ns], [CHUNK, d] x 2 */
  double *cos_boot;       /* [nl, n_boot] bootstrap cosines (valid resamples only in order) */
  unsigned char *boot_ok; /* [n_boot] resample has both labels */
  double *tr_group;       /* [nl, n_groups] correct transfer predictions per image (sum EN→AR + AR→EN) */
  double *agree_cos;      /* [nl] point estimates */
  double *agree_tr;       /* [nl] */
  double *perm_p;         /* [nl] */
} xl_run;

static int nomem(void) { return sc_error_setc(SC_ERR_NOMEM, "cross-lingual analysis: out of memory"); }

/* ---- JSON helpers (cJSON returns NULL when out of memory) --------------- */

static int jnum(sc_json *o, const char *k, double v) { return sc_json_add_num(o, k, v) ? 0 : -1; }
static int jstr(sc_json *o, const char *k, const char *v) { return sc_json_add_str(o, k, v) ? 0 : -1; }
static int jpair(sc_json *o, const char *k, double a, double b) {
  sc_json *arr = sc_json_new_array();
  if (!arr || !sc_json_add(o, k, arr)) {
    sc_json_free(arr);
    return -1;
  }
  return sc_json_add(arr, NULL, sc_json_new_num(a)) && sc_json_add(arr, NULL, sc_json_new_num(b)) ? 0 : -1;
}
static sc_json *jobj(sc_json *parent, const char *k) {
  sc_json *o = sc_json_new_object();
  if (!o) return NULL;
  if (!sc_json_add(parent, k, o)) {
    sc_json_free(o);
    return NULL;
  }
  return o;
}

static sc_json *jobj_arr(sc_json *parent, const char *k) {
  sc_json *a = sc_json_new_array();
  if (!a) return NULL;
  if (!sc_json_add(parent, k, a)) {
    sc_json_free(a);
    return NULL;
  }
  return a;
}

/* ---- directions ------------------------------------------------------------ */

/* Copies the selected rows of M into C, centred by column (f64 means), and
 * writes the direction mean_female − mean_male (f64) into dir. */
static int load_layer(const xl_run *r, const float *M, const size_t *sel, float *C, double *dir,
                      int layer, const char *lang) {
  size_t d = r->d;
  double *mu = calloc(d, sizeof *mu), *mf = calloc(d, sizeof *mf), *mm = calloc(d, sizeof *mm);
  if (!mu || !mf || !mm) {
    free(mu);
    free(mf);
    free(mm);
    return nomem();
  }
  size_t nf = 0, nm = 0;
  for (size_t i = 0; i < r->ns; i++) {
    const float *x = M + sel[i] * d;
    double *acc = r->y[i] ? mf : mm;
    for (size_t j = 0; j < d; j++) {
      if (!isfinite(x[j])) {
        free(mu);
        free(mf);
        free(mm);
        return sc_error_setc(SC_ERR_ARG,
                             "cross-lingual analysis: layer %d %s row %zu column %zu is not finite",
                             layer, lang, sel[i], j);
      }
      acc[j] += x[j];
    }
    if (r->y[i]) nf++;
    else nm++;
  }
  for (size_t j = 0; j < d; j++) {
    mu[j] = (mf[j] + mm[j]) / (double)r->ns;
    dir[j] = mf[j] / (double)nf - mm[j] / (double)nm;
  }
  for (size_t i = 0; i < r->ns; i++) {
    const float *x = M + sel[i] * d;
    for (size_t j = 0; j < d; j++) C[i * d + j] = (float)((double)x[j] - mu[j]);
  }
  free(mu);
  free(mf);
  free(mm);
  return 0;
}

static double norm2(const double *v, size_t d) {
  double s = 0;
  for (size_t j = 0; j < d; j++) s += v[j] * v[j];
  return sqrt(s);
}

/* Cosines of the EN and AR directions for `rows` weightings in r->W:
 * D = W·X (the weights sum to 0 over rows, so the column centring of E and
 * A cancels), cos per row in f64. */
static void chunk_cosines(xl_run *r, size_t rows, double *cos_out) {
  size_t d = r->d, n = r->ns;
  sc_sgemm(0, 0, (int64_t)rows, (int64_t)d, (int64_t)n, 1.0f, r->W, (int64_t)n, r->E, (int64_t)d,
           0.0f, r->DE, (int64_t)d);
  sc_sgemm(0, 0, (int64_t)rows, (int64_t)d, (int64_t)n, 1.0f, r->W, (int64_t)n, r->A, (int64_t)d,
           0.0f, r->DA, (int64_t)d);
  for (size_t b = 0; b < rows; b++) {
    double ab = 0, aa = 0, bb = 0;
    const float *u = r->DE + b * d, *v = r->DA + b * d;
    for (size_t j = 0; j < d; j++) {
      ab += (double)u[j] * v[j];
      aa += (double)u[j] * u[j];
      bb += (double)v[j] * v[j];
    }
    double c = aa > 0 && bb > 0 ? ab / (sqrt(aa) * sqrt(bb)) : 0;
    cos_out[b] = c > 1 ? 1 : (c < -1 ? -1 : c);
  }
}

/* Draws resample b's image counts (the draws of an_groups_resample) and
 * fills W's row; returns 0 when the resample lacks a label. */
static int boot_weights(xl_run *r, sc_rng *rng, uint32_t *cnt, float *wrow) {
  size_t ng = r->g.n_groups;
  memset(cnt, 0, ng * sizeof *cnt);
  for (size_t t = 0; t < ng; t++) cnt[sc_rng_below(rng, ng)]++;
  double nf = 0, nm = 0;
  for (size_t k = 0; k < ng; k++) {
    nf += (double)cnt[k] * (double)r->gf[k];
    nm += (double)cnt[k] * (double)r->gm[k];
  }
  if (!wrow) return nf > 0 && nm > 0;
  if (!(nf > 0 && nm > 0)) return 0;
  for (size_t i = 0; i < r->ns; i++) {
    double c = cnt[r->g.group_of[i]];
    wrow[i] = (float)(r->y[i] ? c / nf : -c / nm);
  }
  return 1;
}

static int direction_bootstrap(xl_run *r, size_t li, double *lo, double *hi, double *se,
                               size_t *n_valid) {
  uint32_t *cnt = malloc(r->g.n_groups * sizeof *cnt);
  double *tmp = malloc(CHUNK * sizeof *tmp);
  if (!cnt || !tmp) {
    free(cnt);
    free(tmp);
    return nomem();
  }
  sc_rng rng;
  sc_rng_seed(&rng, r->seed_boot);
  double *out = r->cos_boot + li * r->n_boot;
  size_t nv = 0;
  for (size_t b0 = 0; b0 < r->n_boot; b0 += CHUNK) {
    size_t rows = 0;
    for (size_t b = b0; b < r->n_boot && b < b0 + CHUNK; b++) {
      int ok = boot_weights(r, &rng, cnt, r->W + rows * r->ns);
      r->boot_ok[b] = (unsigned char)ok;
      rows += (size_t)ok;
    }
    if (!rows) continue;
    chunk_cosines(r, rows, tmp);
    memcpy(out + nv, tmp, rows * sizeof *tmp);
    nv += rows;
  }
  *n_valid = nv;
  *lo = *hi = *se = 0;
  if (nv) {
    double *s = malloc(nv * sizeof *s);
    if (!s) {
      free(cnt);
      free(tmp);
      return nomem();
    }
    memcpy(s, out, nv * sizeof *s);
    double m = 0, ss = 0;
    for (size_t b = 0; b < nv; b++) m += s[b];
    m /= (double)nv;
    for (size_t b = 0; b < nv; b++) ss += (s[b] - m) * (s[b] - m);
    *se = nv > 1 ? sqrt(ss / (double)(nv - 1)) : 0;
    *lo = an_percentile_sort(s, nv, (1 - r->ci) / 2);
    *hi = an_percentile_sort(s, nv, 1 - (1 - r->ci) / 2);
    free(s);
  }
  free(cnt);
  free(tmp);
  return 0;
}

/* Label permutation null of the cosine: whole images keep their rows
 * together when every image has one label, else rows are shuffled. p is
 * one-sided (agreement above chance): (1 + #{cos_perm >= cos}) / (1 + P). */
static int direction_permutation(xl_run *r, double cos_obs, double *p, double *null_mean,
                                 double *null_hi) {
  size_t ng = r->g.n_groups, ns = r->ns, P = r->n_perm;
  int *lab = malloc((r->groups_pure ? ng : ns) * sizeof *lab);
  double *vals = malloc(P * sizeof *vals);
  if (!lab || !vals) {
    free(lab);
    free(vals);
    return nomem();
  }
  size_t nlab = r->groups_pure ? ng : ns;
  if (r->groups_pure)
    for (size_t k = 0; k < ng; k++) lab[k] = r->gf[k] > 0;
  else
    memcpy(lab, r->y, ns * sizeof *lab);
  sc_rng rng;
  sc_rng_seed(&rng, r->seed_perm);
  for (size_t b0 = 0; b0 < P; b0 += CHUNK) {
    size_t rows = P - b0 < CHUNK ? P - b0 : CHUNK;
    for (size_t b = 0; b < rows; b++) {
      sc_rng_shuffle(&rng, lab, nlab, sizeof *lab);
      double nf = 0, nm = 0;
      for (size_t i = 0; i < ns; i++) {
        int yi = r->groups_pure ? lab[r->g.group_of[i]] : lab[i];
        if (yi) nf++;
        else nm++;
      }
      float *w = r->W + b * ns;
      for (size_t i = 0; i < ns; i++) {
        int yi = r->groups_pure ? lab[r->g.group_of[i]] : lab[i];
        w[i] = (float)(yi ? 1.0 / nf : -1.0 / nm);
      }
    }
    chunk_cosines(r, rows, vals + b0);
  }
  size_t ge = 0;
  double m = 0;
  for (size_t b = 0; b < P; b++) {
    m += vals[b];
    if (vals[b] >= cos_obs - 1e-9) ge++;
  }
  *p = (double)(1 + ge) / (double)(1 + P);
  *null_mean = m / (double)P;
  *null_hi = an_percentile_sort(vals, P, r->ci);
  free(lab);
  free(vals);
  return 0;
}

/* ---- probes ---------------------------------------------------------------- */

static int add_cv(sc_json *parent, const char *key, const an_cv_eval *ev, double lo, double hi) {
  sc_json *o = jobj(parent, key);
  if (!o) return -1;
  if (jnum(o, "acc", ev->acc) || jpair(o, "ci", lo, hi) || jnum(o, "mean_fold_acc", ev->mean_fold_acc))
    return -1;
  sc_json *fa = sc_json_new_array();
  if (!fa || !sc_json_add(o, "fold_acc", fa)) {
    sc_json_free(fa);
    return -1;
  }
  for (size_t f = 0; f < ev->k; f++)
    if (!sc_json_add(fa, NULL, sc_json_new_num(ev->fold_acc[f]))) return -1;
  return jnum(o, "single_label_folds", (double)ev->single_label_folds);
}


static int layer_probes(xl_run *r, size_t li, sc_json *lj, double probe_c) {
  sc_json *pj = jobj(lj, "probe");
  if (!pj) return nomem();
  r->agree_tr[li] = 0;
  if (!r->probes_ok) {
    if (jstr(pj, "status", "skipped") ||
        jstr(pj, "skip_reason", "too_few_images: fewer images than analyze.folds"))
      return nomem();
    return 0;
  }
  an_cv_eval ev[4]; /* en, en_to_ar, ar, ar_to_en */
  memset(ev, 0, sizeof ev);
  const float *en_eval[2] = {r->E, r->A}, *ar_eval[2] = {r->A, r->E};
  size_t k = (size_t)r->fold[r->ns]; /* the fold count is stored past the last row */
  int rc = an_probe_cv(r->E, r->d, r->y, r->ns, r->fold, k, probe_c, 2, en_eval, ev);
  if (!rc) rc = an_probe_cv(r->A, r->d, r->y, r->ns, r->fold, k, probe_c, 2, ar_eval, ev + 2);
  if (rc) goto done;
  static const char *keys[4] = {"en", "en_to_ar", "ar", "ar_to_en"};
  if (jstr(pj, "status", "ok")) goto oom;
  for (int e = 0; e < 4; e++) {
    double lo, hi;
    rc = an_cv_acc_ci(&ev[e], &r->g, r->n_boot, r->ci, r->seed_boot, &lo, &hi);
    if (rc < 0) goto done;
    rc = 0;
    if (add_cv(pj, keys[e], &ev[e], lo, hi)) goto oom;
  }
  double within = (ev[0].acc + ev[2].acc) / 2, transfer = (ev[1].acc + ev[3].acc) / 2;
  if (jnum(pj, "within_mean", within) || jnum(pj, "transfer_mean", transfer) ||
      jnum(pj, "transfer_gap", within - transfer))
    goto oom;
  r->agree_tr[li] = transfer;
  double *tg = r->tr_group + li * r->g.n_groups;
  for (size_t i = 0; i < r->ns; i++)
    tg[r->g.group_of[i]] += (double)ev[1].correct[i] + (double)ev[3].correct[i];
  goto done;
oom:
  rc = nomem();
done:
  for (int e = 0; e < 4; e++) an_cv_eval_free(&ev[e]);
  return rc;
}

/* ---- divergence ------------------------------------------------------------ */

/* Position i in 1..nl−1 of the largest drop a[i−1] − a[i]; ties → the first. */
static size_t argmax_drop(const double *a, size_t nl, double *drop) {
  size_t best = 1;
  double bd = a[0] - a[1];
  for (size_t i = 2; i < nl; i++)
    if (a[i - 1] - a[i] > bd) {
      bd = a[i - 1] - a[i];
      best = i;
    }
  *drop = bd;
  return best;
}

static int cmp_int(const void *pa, const void *pb) {
  int a = *(const int *)pa, b = *(const int *)pb;
  return (a > b) - (a < b);
}

/* Adds divergence object `key`: agree[nl] point estimates, boot[nv][nl]
 * bootstrap agreements (same resamples for every layer). */
static int add_divergence(sc_json *dv, const char *key, const char *definition, const int *layers,
                          size_t nl, const double *agree, const double *boot, size_t nv,
                          double ci, const char *skip) {
  sc_json *o = jobj(dv, key);
  if (!o || jstr(o, "definition", definition)) return nomem();
  if (skip || nl < 2 || nv == 0) {
    const char *why = skip ? skip
                      : nl < 2 ? "too_few_layers: one analysed layer has no drop"
                               : "no_valid_resample";
    return jstr(o, "status", "skipped") || jstr(o, "skip_reason", why) ? nomem() : 0;
  }
  double drop;
  size_t pos = argmax_drop(agree, nl, &drop);
  double *dsel = malloc(nv * sizeof *dsel), *dmax = malloc(nv * sizeof *dmax);
  int *lay = malloc(nv * sizeof *lay);
  size_t *hist = calloc(nl, sizeof *hist);
  int rc = 0;
  if (!dsel || !dmax || !lay || !hist) {
    rc = nomem();
    goto done;
  }
  size_t same = 0;
  for (size_t b = 0; b < nv; b++) {
    const double *a = boot + b * nl;
    size_t pb = argmax_drop(a, nl, &dmax[b]);
    dsel[b] = a[pos - 1] - a[pos];
    lay[b] = layers[pb];
    hist[pb]++;
    same += pb == pos;
  }
  double alpha = (1 - ci) / 2;
  qsort(lay, nv, sizeof *lay, cmp_int);
  size_t ilo = (size_t)floor((double)(nv - 1) * alpha), ihi = (size_t)ceil((double)(nv - 1) * (1 - alpha));
  if (ihi > nv - 1) ihi = nv - 1;
  if (jstr(o, "status", "ok") || jnum(o, "layer", layers[pos]) ||
      jnum(o, "from_layer", layers[pos - 1]) || jnum(o, "drop", drop) ||
      jpair(o, "drop_ci", an_percentile_sort(dsel, nv, alpha), an_percentile_sort(dsel, nv, 1 - alpha)) ||
      jpair(o, "max_drop_ci", an_percentile_sort(dmax, nv, alpha), an_percentile_sort(dmax, nv, 1 - alpha)) ||
      jpair(o, "layer_ci", lay[ilo], lay[ihi]) || jnum(o, "layer_support", (double)same / (double)nv) ||
      jnum(o, "bootstrap_valid", (double)nv)) {
    rc = nomem();
    goto done;
  }
  sc_json *dist = sc_json_new_array();
  if (!dist || !sc_json_add(o, "layer_distribution", dist)) {
    sc_json_free(dist);
    rc = nomem();
    goto done;
  }
  for (size_t i = 1; i < nl; i++) {
    if (!hist[i]) continue;
    sc_json *e = sc_json_new_object();
    if (!e || !sc_json_add(dist, NULL, e) || jnum(e, "layer", layers[i]) ||
        jnum(e, "fraction", (double)hist[i] / (double)nv)) {
      rc = nomem();
      goto done;
    }
  }
done:
  free(dsel);
  free(dmax);
  free(lay);
  free(hist);
  return rc;
}

/* Bootstrap transfer agreement per valid resample and layer, from the
 * per-image correct counts; the resamples are the ones every CI uses. */
static double *transfer_boot(const xl_run *r) {
  size_t ng = r->g.n_groups, nl = r->nl;
  double *out = malloc(r->n_boot * nl * sizeof *out);
  uint32_t *cnt = malloc(ng * sizeof *cnt);
  size_t *gn = malloc(ng * sizeof *gn);
  if (!out || !cnt || !gn) {
    free(out);
    free(cnt);
    free(gn);
    return NULL;
  }
  for (size_t k = 0; k < ng; k++) gn[k] = r->gm[k] + r->gf[k];
  sc_rng rng;
  sc_rng_seed(&rng, r->seed_boot);
  for (size_t b = 0; b < r->n_boot; b++) {
    memset(cnt, 0, ng * sizeof *cnt);
    for (size_t t = 0; t < ng; t++) cnt[sc_rng_below(&rng, ng)]++;
    double rows = 0;
    for (size_t k = 0; k < ng; k++) rows += (double)cnt[k] * (double)gn[k];
    for (size_t li = 0; li < nl; li++) {
      const double *tg = r->tr_group + li * ng;
      double s = 0;
      for (size_t k = 0; k < ng; k++) s += (double)cnt[k] * tg[k];
      out[b * nl + li] = s / (2 * rows);
    }
  }
  free(cnt);
  free(gn);
  return out;
}

/* ---- the run ------------------------------------------------------------ */

static void run_free(xl_run *r) {
  free(r->y);
  an_groups_free(&r->g);
  free(r->gm);
  free(r->gf);
  free(r->fold);
  free(r->E);
  free(r->A);
  free(r->W);
  free(r->DE);
  free(r->DA);
  free(r->cos_boot);
  free(r->boot_ok);
  free(r->tr_group);
  free(r->agree_cos);
  free(r->agree_tr);
  free(r->perm_p);
}

int an_crossling_run(const an_crossling_input *in, const sc_config_analyze *cfg, uint64_t seed,
                     sc_json **out) {
  *out = NULL;
  if (!in || !cfg || in->n == 0 || in->d == 0 || in->n_layers == 0 || !in->layers || !in->en ||
      !in->ar || !in->labels || !in->groups)
    return sc_error_setc(SC_ERR_ARG, "cross-lingual analysis: need samples, a width, layers, "
                                     "labels and image ids");
  for (size_t li = 0; li < in->n_layers; li++)
    if (!in->en[li] || !in->ar[li])
      return sc_error_setc(SC_ERR_ARG, "cross-lingual analysis: layer %d has no %s activations",
                           in->layers[li], in->en[li] ? "ar" : "en");
  xl_run r;
  memset(&r, 0, sizeof r);
  r.d = in->d;
  r.nl = in->n_layers;
  r.n_boot = (size_t)cfg->bootstrap;
  r.n_perm = (size_t)cfg->permutations;
  r.ci = cfg->ci;
  r.seed_boot = sub_seed(seed, PURPOSE_BOOT);
  r.seed_perm = sub_seed(seed, PURPOSE_PERM);
  r.seed_folds = sub_seed(seed, PURPOSE_FOLDS);
  if (r.n_boot == 0 || r.n_perm == 0 || !(r.ci > 0 && r.ci < 1) || cfg->folds < 2)
    return sc_error_setc(SC_ERR_ARG, "cross-lingual analysis: analyze.bootstrap, permutations "
                                     "and folds must be positive (folds >= 2), ci in (0, 1)");
  sc_json *seg = sc_json_new_object();
  size_t *sel = malloc(in->n * sizeof *sel);
  uint64_t *gid = malloc(in->n * sizeof *gid);
  r.y = malloc((in->n + 1) * sizeof *r.y);
  double *den = NULL, *dar = NULL;
  sc_json **dirj = NULL;
  sc_progress *prog = NULL;
  int rc = 0;
  if (!seg || !sel || !gid || !r.y) goto oom;
  size_t nm = 0, nf = 0;
  for (size_t i = 0; i < in->n; i++) {
    int l = in->labels[i];
    if (l != SC_LABEL_MALE && l != SC_LABEL_FEMALE) continue;
    sel[r.ns] = i;
    gid[r.ns] = in->groups[i];
    r.y[r.ns++] = l == SC_LABEL_FEMALE;
    if (l == SC_LABEL_FEMALE) nf++;
    else nm++;
  }
  if (jstr(seg, "segment", in->segment ? in->segment : "") || jnum(seg, "n_rows_in", (double)in->n) ||
      jnum(seg, "n_samples", (double)r.ns) || jnum(seg, "n_male", (double)nm) ||
      jnum(seg, "n_female", (double)nf))
    goto oom;
  if ((rc = an_groups_build(gid, r.ns, &r.g))) goto fail;
  if (jnum(seg, "n_images", (double)r.g.n_groups) || jnum(seg, "d_model", (double)r.d)) goto oom;
  sc_json *dv = NULL, *layers_json = NULL;
  int skip = nm < cfg->min_per_label || nf < cfg->min_per_label;
  if (jstr(seg, "status", skip ? "skipped" : "ok")) goto oom;
  if (skip) {
    char why[160];
    snprintf(why, sizeof why, "too_few_samples: %zu male and %zu female, analyze.min_per_label = %llu",
             nm, nf, (unsigned long long)cfg->min_per_label);
    if (jstr(seg, "skip_reason", why) || !(layers_json = jobj_arr(seg, "layers")) ||
        !(dv = jobj(seg, "divergence")))
      goto oom;
    if ((rc = add_divergence(dv, "direction_cosine", DEF_COS, in->layers, r.nl, NULL, NULL, 0, r.ci, why)) ||
        (rc = add_divergence(dv, "probe_transfer", DEF_TR, in->layers, r.nl, NULL, NULL, 0, r.ci, why)))
      goto fail;
    run_free(&r);
    free(sel);
    free(gid);
    *out = seg;
    return 0;
  }

  size_t ng = r.g.n_groups, ns = r.ns, d = r.d, nl = r.nl;
  r.gm = calloc(ng, sizeof *r.gm);
  r.gf = calloc(ng, sizeof *r.gf);
  r.fold = malloc((ns + 1) * sizeof *r.fold);
  if (!r.gm || !r.gf || !r.fold) goto oom;
  for (size_t i = 0; i < ns; i++) {
    if (r.y[i]) r.gf[r.g.group_of[i]]++;
    else r.gm[r.g.group_of[i]]++;
  }
  r.groups_pure = 1;
  for (size_t k = 0; k < ng; k++)
    if (r.gm[k] && r.gf[k]) r.groups_pure = 0;
  if (ng >= cfg->folds) {
    if ((rc = an_folds_grouped(&r.g, r.y, (size_t)cfg->folds, r.seed_folds, r.fold))) goto fail;
    if ((rc = an_folds_check(&r.g, r.fold, (size_t)cfg->folds))) goto fail;
    r.fold[ns] = (int)cfg->folds;
    r.probes_ok = 1;
  }
  if (jstr(seg, "permutation_unit", r.groups_pure ? "image" : "row") ||
      !(layers_json = jobj_arr(seg, "layers")))
    goto oom;
  if (ns > SIZE_MAX / d / sizeof(float)) goto oom;
  r.E = malloc(ns * d * sizeof *r.E);
  r.A = malloc(ns * d * sizeof *r.A);
  r.W = malloc(CHUNK * ns * sizeof *r.W);
  r.DE = malloc(CHUNK * d * sizeof *r.DE);
  r.DA = malloc(CHUNK * d * sizeof *r.DA);
  r.cos_boot = malloc(nl * r.n_boot * sizeof *r.cos_boot);
  r.boot_ok = malloc(r.n_boot);
  r.tr_group = calloc(nl * ng, sizeof *r.tr_group);
  r.agree_cos = calloc(nl, sizeof *r.agree_cos);
  r.agree_tr = calloc(nl, sizeof *r.agree_tr);
  r.perm_p = calloc(nl, sizeof *r.perm_p);
  den = malloc(d * sizeof *den);
  dar = malloc(d * sizeof *dar);
  dirj = calloc(nl, sizeof *dirj);
  if (!r.E || !r.A || !r.W || !r.DE || !r.DA || !r.cos_boot || !r.boot_ok || !r.tr_group ||
      !r.agree_cos || !r.agree_tr || !r.perm_p || !den || !dar || !dirj)
    goto oom;

  size_t boot_valid = 0;
  prog = sc_progress_create("cross-lingual", (int64_t)nl, "layers");
  for (size_t li = 0; li < nl; li++) {
    int layer = in->layers[li];
    if ((rc = load_layer(&r, in->en[li], sel, r.E, den, layer, "en")) ||
        (rc = load_layer(&r, in->ar[li], sel, r.A, dar, layer, "ar")))
      goto fail;
    sc_json *lj = sc_json_new_object();
    if (!lj || !sc_json_add(layers_json, NULL, lj)) {
      sc_json_free(lj);
      goto oom;
    }
    if (jnum(lj, "layer", layer)) goto oom;
    sc_json *dj = jobj(lj, "direction");
    dirj[li] = dj;
    double cosv, lo, hi, se, pp = 1, nmean = 0, nhi = 0;
    int cst = an_cosine(den, dar, d, &cosv);
    r.agree_cos[li] = cosv;
    if ((rc = direction_bootstrap(&r, li, &lo, &hi, &se, &boot_valid))) goto fail;
    if ((rc = direction_permutation(&r, cosv, &pp, &nmean, &nhi))) goto fail;
    r.perm_p[li] = pp;
    if (!dj || jnum(dj, "en_norm", norm2(den, d)) ||
        jnum(dj, "ar_norm", norm2(dar, d)) || jnum(dj, "cosine", cosv) ||
        jstr(dj, "cosine_status", an_stat_status_str(cst)) || jpair(dj, "cosine_ci", lo, hi) ||
        jnum(dj, "cosine_se", se) || jnum(dj, "bootstrap_valid", (double)boot_valid) ||
        jnum(dj, "perm_p", pp) || jnum(dj, "perm_null_mean", nmean) ||
        jnum(dj, "perm_null_hi", nhi))
      goto oom;
    double cka;
    int kst = an_cka_linear(r.E, d, r.A, d, ns, NULL, 0, &cka);
    if (kst < 0) {
      rc = kst;
      goto fail;
    }
    sc_json *kj = jobj(lj, "cka");
    if (!kj || jnum(kj, "value", cka) || jstr(kj, "status", an_stat_status_str(kst))) goto oom;
    if ((rc = layer_probes(&r, li, lj, cfg->probe_c))) goto fail;
    sc_progress_set(prog, (int64_t)li + 1);
  }
  /* BH over layers: one cosine test per layer. */
  {
    double *q = malloc(nl * sizeof *q);
    if (!q) goto oom;
    if ((rc = an_bh_qvalues(r.perm_p, nl, q))) {
      free(q);
      goto fail;
    }
    for (size_t li = 0; li < nl; li++)
      if (jnum(dirj[li], "perm_q", q[li])) {
        free(q);
        goto oom;
      }
    free(q);
  }
  if (!(dv = jobj(seg, "divergence"))) goto oom;
  {
    /* The valid direction resamples are the same for every layer (validity
     * depends on the drawn images only), so row b of cos_boot lines up. */
    double *cb = malloc((boot_valid ? boot_valid : 1) * nl * sizeof *cb);
    if (!cb) goto oom;
    for (size_t b = 0; b < boot_valid; b++)
      for (size_t li = 0; li < nl; li++) cb[b * nl + li] = r.cos_boot[li * r.n_boot + b];
    rc = add_divergence(dv, "direction_cosine",
DEF_COS,
                        in->layers, nl, r.agree_cos, cb, boot_valid, r.ci, NULL);
    free(cb);
    if (rc) goto fail;
  }
  {
    double *tb = r.probes_ok ? transfer_boot(&r) : NULL;
    if (r.probes_ok && !tb) goto oom;
    rc = add_divergence(dv, "probe_transfer",
DEF_TR,
                        in->layers, nl, r.agree_tr, tb, r.probes_ok ? r.n_boot : 0, r.ci,
                        r.probes_ok ? NULL : "too_few_images: fewer images than analyze.folds");
    free(tb);
    if (rc) goto fail;
  }
  sc_progress_finish(prog);
  run_free(&r);
  free(sel);
  free(gid);
  free(den);
  free(dar);
  free(dirj);
  *out = seg;
  return 0;
oom:
  rc = nomem();
fail:
  sc_progress_abort(prog);
  run_free(&r);
  free(sel);
  free(gid);
  free(den);
  free(dar);
  free(dirj);
  sc_json_free(seg);
  return rc;
}

int an_crossling_root(const sc_config_analyze *cfg, uint64_t seed, sc_json **out) {
  *out = NULL;
  sc_json *root = sc_json_new_object();
  if (!root) return nomem();
  char sb[32];
  snprintf(sb, sizeof sb, "%llu", (unsigned long long)seed);
  sc_json *c = NULL;
  if (jstr(root, "schema", AN_CROSSLING_SCHEMA) || jstr(root, "saecap_version", SAECAP_VERSION) ||
      jstr(root, "seed", sb) || !(c = jobj(root, "config")) ||
      jnum(c, "bootstrap", (double)cfg->bootstrap) ||
      jnum(c, "permutations", (double)cfg->permutations) || jnum(c, "folds", (double)cfg->folds) ||
      jnum(c, "probe_c", cfg->probe_c) || jnum(c, "ci", cfg->ci) ||
      jnum(c, "min_per_label", (double)cfg->min_per_label) || !jobj(root, "segments")) {
    sc_json_free(root);
    return nomem();
  }
  *out = root;
  return 0;
}

int an_crossling_add_segment(sc_json *root, const char *name, sc_json *seg) {
  sc_json *segs = root ? sc_json_get(root, "segments") : NULL;
  if (!segs || !sc_json_is_object(segs)) {
    sc_json_free(seg);
    return sc_error_setc(SC_ERR_ARG, "cross-lingual analysis: root has no \"segments\" object");
  }
  int first = sc_json_size(segs) == 0;
  if (!sc_json_add(segs, name, seg)) {
    sc_json_free(seg);
    return nomem();
  }
  if (first && !sc_json_add_str(root, "primary_segment", name)) return nomem();
  return 0;
}
