/* features.c: RQ2 in the shared SAE of one layer (see features.h). */
#include "analysis/features.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "analysis/stats.h"
#include "base/error.h"
#include "base/rng.h"
#include "pipeline/prepare.h"

static int oom(void) { return sc_error_setc(SC_ERR_NOMEM, "out of memory"); }

static void lang_free(an_feat_lang *l) {
  free(l->rate), free(l->rate_male), free(l->rate_female), free(l->mean_male), free(l->mean_female);
  free(l->d), free(l->d_status), free(l->p), free(l->q), free(l->tested), free(l->ranking);
}

void an_feat_result_free(an_feat_result *r) {
  if (!r) return;
  for (int i = 0; i < r->n_langs && i < AN_FEAT_MAX_LANGS; i++) lang_free(&r->lang[i]);
  memset(r, 0, sizeof *r);
}

static int is_mf(int label) { return label == SC_LABEL_MALE || label == SC_LABEL_FEMALE; }

/* Sort key for rankings: |d| descending, feature index ascending. */
typedef struct rank_item {
  double a;
  int32_t f;
} rank_item;

static int cmp_rank(const void *x, const void *y) {
  const rank_item *a = x, *b = y;
  if (a->a != b->a) return a->a < b->a ? 1 : -1;
  return (a->f > b->f) - (a->f < b->f);
}

/* Cohen's d and the Mann–Whitney p of tested feature j from its CSC column;
 * af / am are scratch columns of the female / male used samples. */
static int test_feature(an_feat_lang *L, int64_t j, const int64_t *col, const int64_t *cs, const float *cv,
                        const int *labels, const int64_t *pos, double *af, double *am) {
  memset(af, 0, (size_t)L->n_female * sizeof *af);
  memset(am, 0, (size_t)L->n_male * sizeof *am);
  for (int64_t k = col[j]; k < col[j + 1]; k++) {
    int64_t i = cs[k];
    if (labels[i] == SC_LABEL_MALE)
      am[pos[i]] = cv[k];
    else
      af[pos[i]] = cv[k];
  }
  int st = an_cohens_d(af, (size_t)L->n_female, am, (size_t)L->n_male, &L->d[j]);
  if (st < 0) return st;
  L->d_status[j] = (int8_t)st;
  an_mw_result mw;
  st = an_mannwhitney(af, (size_t)L->n_female, am, (size_t)L->n_male, AN_MW_AUTO, &mw);
  if (st < 0) return st;
  L->p[j] = mw.p;
  return 0;
}

/* Per-feature statistics of one language. */
static int compute_lang(const an_feat_lang_in *in, const int *labels, int64_t n, const an_feat_opts *o,
                        an_feat_lang *L) {
  const an_sae_pooled *f = in->f;
  int64_t nf = f->n_features;
  memset(L, 0, sizeof *L);
  L->lang = in->lang;
  L->n_features = nf;
  for (int64_t i = 0; i < n; i++) {
    if (!in->use[i] || !is_mf(labels[i])) continue;
    L->n_used++;
    if (labels[i] == SC_LABEL_MALE)
      L->n_male++;
    else
      L->n_female++;
  }
  if ((uint64_t)L->n_male < o->min_per_label || (uint64_t)L->n_female < o->min_per_label || L->n_male < 2 ||
      L->n_female < 2) {
    L->skipped = 1;
    snprintf(L->skip_reason, sizeof L->skip_reason,
             "%lld male and %lld female samples; at least %llu (and 2) of each are needed", (long long)L->n_male,
             (long long)L->n_female, (unsigned long long)o->min_per_label);
    return 0;
  }
  size_t sz = (size_t)nf;
  L->rate = calloc(sz, sizeof(double)), L->rate_male = calloc(sz, sizeof(double));
  L->rate_female = calloc(sz, sizeof(double)), L->mean_male = calloc(sz, sizeof(double));
  L->mean_female = calloc(sz, sizeof(double)), L->d = calloc(sz, sizeof(double));
  L->d_status = calloc(sz, 1), L->p = malloc(sz * sizeof(double)), L->q = malloc(sz * sizeof(double));
  L->tested = calloc(sz, 1);
  int64_t *col = calloc(sz + 1, sizeof *col), *pos = malloc((size_t)(n ? n : 1) * sizeof *pos);
  double *af = malloc((size_t)L->n_female * sizeof *af), *am = malloc((size_t)L->n_male * sizeof *am);
  if (!L->rate || !L->rate_male || !L->rate_female || !L->mean_male || !L->mean_female || !L->d || !L->d_status ||
      !L->p || !L->q || !L->tested || !col || !pos || !af || !am) {
    free(col), free(pos), free(af), free(am);
    return oom();
  }
  /* pos[i]: the sample's slot in its label's column; counts and sums. */
  int64_t nm = 0, nfe = 0;
  for (int64_t i = 0; i < n; i++) {
    pos[i] = -1;
    if (!in->use[i] || !is_mf(labels[i])) continue;
    pos[i] = labels[i] == SC_LABEL_MALE ? nm++ : nfe++;
    for (int64_t e = f->row_ptr[i]; e < f->row_ptr[i + 1]; e++) {
      int32_t j = f->feature[e];
      col[j + 1]++;
      if (labels[i] == SC_LABEL_MALE)
        L->rate_male[j] += 1, L->mean_male[j] += f->mean[e];
      else
        L->rate_female[j] += 1, L->mean_female[j] += f->mean[e];
    }
  }
  for (int64_t j = 0; j < nf; j++) col[j + 1] += col[j];
  /* CSC of the used samples' entries: (sample, value) per feature. */
  int64_t nnz = col[nf];
  int64_t *cs = malloc((size_t)(nnz ? nnz : 1) * sizeof *cs), *fill = malloc(sz * sizeof *fill);
  float *cv = malloc((size_t)(nnz ? nnz : 1) * sizeof *cv);
  int rc = cs && cv && fill ? 0 : oom();
  if (!rc) {
    memcpy(fill, col, sz * sizeof *fill);
    for (int64_t i = 0; i < n; i++) {
      if (pos[i] < 0) continue;
      for (int64_t e = f->row_ptr[i]; e < f->row_ptr[i + 1]; e++) {
        int64_t k = fill[f->feature[e]]++;
        cs[k] = i;
        cv[k] = f->mean[e];
      }
    }
  }
  for (int64_t j = 0; !rc && j < nf; j++) {
    double cnt = L->rate_male[j] + L->rate_female[j];
    L->rate[j] = cnt / (double)L->n_used;
    L->mean_male[j] /= (double)L->n_male;
    L->mean_female[j] /= (double)L->n_female;
    L->rate_male[j] /= (double)L->n_male;
    L->rate_female[j] /= (double)L->n_female;
    L->p[j] = 1, L->q[j] = 1;
    if (col[j + 1] == col[j]) continue;
    L->tested[j] = 1;
    L->n_tested++;
  }
  /* the tests, one feature per iteration: independent, so the result does
   * not depend on the thread count. An error message is thread-local: the
   * first failing feature is redone here to set it. */
  int64_t bad = -1;
  int no_mem = 0;
  if (!rc) {
#pragma omp parallel
    {
      double *tf = malloc((size_t)L->n_female * sizeof *tf), *tm = malloc((size_t)L->n_male * sizeof *tm);
      if (!tf || !tm) {
#pragma omp atomic write
        no_mem = 1;
      }
#pragma omp for schedule(dynamic, 32)
      for (int64_t j = 0; j < nf; j++) {
        if (!L->tested[j] || !tf || !tm) continue;
        if (test_feature(L, j, col, cs, cv, labels, pos, tf, tm) < 0) {
#pragma omp critical(an_feat_bad)
          if (bad < 0 || j < bad) bad = j;
        }
      }
      free(tf), free(tm);
    }
    if (no_mem)
      rc = oom();
    else if (bad >= 0)
      rc = test_feature(L, bad, col, cs, cv, labels, pos, af, am);
  }
  /* ranking: fired features by |d| */
  if (!rc) {
    rank_item *it = malloc((size_t)(L->n_tested ? L->n_tested : 1) * sizeof *it);
    int64_t m = 0, cap = (int64_t)(o->top_k > AN_FEAT_RANKING_MIN ? o->top_k : AN_FEAT_RANKING_MIN);
    if (!it) rc = oom();
    for (int64_t j = 0; !rc && j < nf; j++)
      if (L->tested[j]) it[m].a = fabs(L->d[j]), it[m++].f = (int32_t)j;
    if (!rc) {
      qsort(it, (size_t)m, sizeof *it, cmp_rank);
      L->n_ranking = m < cap ? m : cap;
      L->ranking = malloc((size_t)(L->n_ranking ? L->n_ranking : 1) * sizeof *L->ranking);
      if (!L->ranking) rc = oom();
      for (int64_t k = 0; !rc && k < L->n_ranking; k++) L->ranking[k] = it[k].f;
    }
    free(it);
  }
  free(col), free(pos), free(af), free(am), free(cs), free(cv), free(fill);
  return rc;
}

/* Joint BH over every tested (feature, language) pair. */
static int joint_bh(an_feat_result *r) {
  int64_t m = 0;
  for (int l = 0; l < r->n_langs; l++) m += r->lang[l].skipped ? 0 : r->lang[l].n_tested;
  r->n_tests = m;
  if (!m) return 0;
  double *p = malloc((size_t)m * sizeof *p);
  if (!p) return oom();
  int64_t k = 0;
  for (int l = 0; l < r->n_langs; l++) {
    an_feat_lang *L = &r->lang[l];
    for (int64_t j = 0; !L->skipped && j < L->n_features; j++)
      if (L->tested[j]) p[k++] = L->p[j];
  }
  int rc = an_bh_qvalues(p, (size_t)m, p);
  k = 0;
  for (int l = 0; !rc && l < r->n_langs; l++) {
    an_feat_lang *L = &r->lang[l];
    for (int64_t j = 0; !L->skipped && j < L->n_features; j++)
      if (L->tested[j]) L->q[j] = p[k++];
  }
  free(p);
  return rc;
}

/* ---- the permutation null of the top-k overlap ---- */

/* What every permutation of one language reads. */
typedef struct perm_lang {
  const an_sae_pooled *f;
  const uint8_t *use;
  int64_t n_used;
  double *s, *qq; /* totals over used samples per feature */
  int32_t *fired; /* features with an entry in a used sample */
  int64_t n_fired;
} perm_lang;

/* One thread's scratch for one language. */
typedef struct perm_work {
  double *sf, *qf; /* sums over the permuted-female used samples */
  rank_item *it;
  uint8_t *in_top;
} perm_work;

static void perm_lang_free(perm_lang *p) { free(p->s), free(p->qq), free(p->fired); }
static void perm_work_free(perm_work *w) { free(w->sf), free(w->qf), free(w->it), free(w->in_top); }

static int perm_work_init(perm_work *w, int64_t nf) {
  w->sf = calloc((size_t)nf, sizeof(double)), w->qf = calloc((size_t)nf, sizeof(double));
  w->it = malloc((size_t)nf * sizeof *w->it), w->in_top = calloc((size_t)nf, 1);
  return w->sf && w->qf && w->it && w->in_top ? 0 : SC_ERR_NOMEM;
}

static int perm_lang_init(perm_lang *p, const an_feat_lang_in *in, const an_feat_lang *L, const int *labels,
                          int64_t n) {
  memset(p, 0, sizeof *p);
  p->f = in->f;
  p->use = in->use;
  size_t nf = (size_t)L->n_features;
  p->s = calloc(nf, sizeof(double)), p->qq = calloc(nf, sizeof(double));
  p->fired = malloc(nf * sizeof *p->fired);
  if (!p->s || !p->qq || !p->fired) return oom();
  for (int64_t i = 0; i < n; i++) {
    if (!in->use[i] || !is_mf(labels[i])) continue;
    p->n_used++;
    for (int64_t e = in->f->row_ptr[i]; e < in->f->row_ptr[i + 1]; e++) {
      double v = in->f->mean[e];
      p->s[in->f->feature[e]] += v;
      p->qq[in->f->feature[e]] += v * v;
    }
  }
  for (int64_t j = 0; j < L->n_features; j++)
    if (L->tested[j]) p->fired[p->n_fired++] = (int32_t)j;
  return 0;
}

/* Marks in w->in_top the top-k features by |d| under the permuted labels
 * (female[i] = 1: sample i is female); 0 or AN_STAT_TOO_FEW. */
static int perm_topk(const perm_lang *p, perm_work *w, const int *labels, const uint8_t *female, int64_t n, int64_t k) {
  int64_t nfe = 0;
  for (int64_t j = 0; j < p->n_fired; j++) w->sf[p->fired[j]] = 0, w->qf[p->fired[j]] = 0;
  for (int64_t i = 0; i < n; i++) {
    if (!p->use[i] || !is_mf(labels[i]) || !female[i]) continue;
    nfe++;
    for (int64_t e = p->f->row_ptr[i]; e < p->f->row_ptr[i + 1]; e++) {
      double v = p->f->mean[e];
      w->sf[p->f->feature[e]] += v;
      w->qf[p->f->feature[e]] += v * v;
    }
  }
  int64_t nma = p->n_used - nfe;
  if (nfe < 2 || nma < 2) return AN_STAT_TOO_FEW;
  for (int64_t t = 0; t < p->n_fired; t++) {
    int32_t j = p->fired[t];
    double mf = w->sf[j] / (double)nfe, mm = (p->s[j] - w->sf[j]) / (double)nma;
    double vf = (w->qf[j] - (double)nfe * mf * mf) / (double)(nfe - 1);
    double vm = (p->qq[j] - w->qf[j] - (double)nma * mm * mm) / (double)(nma - 1);
    double sp2 =
        ((double)(nfe - 1) * (vf > 0 ? vf : 0) + (double)(nma - 1) * (vm > 0 ? vm : 0)) / (double)(p->n_used - 2);
    double d = sp2 > 0 ? (mf - mm) / sqrt(sp2) : 0;
    w->it[t].a = fabs(d);
    w->it[t].f = j;
  }
  qsort(w->it, (size_t)p->n_fired, sizeof *w->it, cmp_rank);
  memset(w->in_top, 0, (size_t)p->f->n_features);
  for (int64_t t = 0; t < k && t < p->n_fired; t++) w->in_top[w->it[t].f] = 1;
  return 0;
}

static int cmp_u64(const void *x, const void *y) {
  uint64_t a = *(const uint64_t *)x, b = *(const uint64_t *)y;
  return (a > b) - (a < b);
}

/* The overlap of permutation t (its own rng stream, so permutations can run
 * in any order and on any thread), or -1 when a label has < 2 samples. */
static double one_perm(const an_feat_result *r, const perm_lang pl[2], perm_work w[2], const int *labels, int64_t n,
                       const int64_t *img, const int *glab0, int64_t ng, int *glab, uint8_t *female, uint64_t seed,
                       uint64_t t) {
  sc_rng rng;
  sc_rng_seed(&rng, seed ^ 0x52513246ull ^ ((t + 1) * 0x9E3779B97F4A7C15ull)); /* "RQ2F" */
  memcpy(glab, glab0, (size_t)ng * sizeof *glab);
  sc_rng_shuffle(&rng, glab, (uint64_t)ng, sizeof *glab);
  for (int64_t i = 0; i < n; i++) female[i] = img[i] >= 0 ? (uint8_t)glab[img[i]] : 0;
  if (perm_topk(&pl[0], &w[0], labels, female, n, r->k) || perm_topk(&pl[1], &w[1], labels, female, n, r->k)) return -1;
  int64_t ov = 0;
  for (int64_t j = 0; j < r->n_features; j++) ov += w[0].in_top[j] && w[1].in_top[j];
  return (double)ov;
}

/* Image-level label permutation: every image takes the label of its first
 * male/female sample; the images' labels are shuffled and every sample gets
 * its image's new label. */
static int overlap_null(an_feat_result *r, const an_feat_lang_in *in, const int *labels, const uint64_t *groups,
                        int64_t n, const an_feat_opts *o) {
  perm_lang pl[2];
  memset(pl, 0, sizeof pl);
  uint64_t *ids = malloc((size_t)(n ? n : 1) * sizeof *ids);
  int64_t *img = malloc((size_t)(n ? n : 1) * sizeof *img);
  int *glab = NULL;
  double *null = malloc((size_t)o->permutations * sizeof *null);
  int rc = ids && img && null ? 0 : oom();
  for (int l = 0; !rc && l < 2; l++) rc = perm_lang_init(&pl[l], &in[l], &r->lang[l], labels, n);
  int64_t ng = 0;
  if (!rc) {
    for (int64_t i = 0; i < n; i++)
      if (is_mf(labels[i])) ids[ng++] = groups[i];
    qsort(ids, (size_t)ng, sizeof *ids, cmp_u64);
    int64_t u = 0;
    for (int64_t i = 0; i < ng; i++)
      if (!u || ids[u - 1] != ids[i]) ids[u++] = ids[i];
    ng = u;
    glab = malloc((size_t)(ng ? ng : 1) * sizeof *glab);
    if (!glab) rc = oom();
    for (int64_t g = 0; !rc && g < ng; g++) glab[g] = -1;
    for (int64_t i = 0; !rc && i < n; i++) {
      img[i] = -1;
      if (!is_mf(labels[i])) continue;
      int64_t lo = 0, hi = ng;
      while (lo < hi) {
        int64_t mid = lo + (hi - lo) / 2;
        if (ids[mid] < groups[i])
          lo = mid + 1;
        else
          hi = mid;
      }
      img[i] = lo;
      if (glab[lo] < 0) glab[lo] = labels[i] == SC_LABEL_FEMALE;
    }
  }
  int no_mem = 0;
  if (!rc) {
#pragma omp parallel
    {
      perm_work w[2];
      memset(w, 0, sizeof w);
      int *gl = malloc((size_t)(ng ? ng : 1) * sizeof *gl);
      uint8_t *female = malloc((size_t)(n ? n : 1));
      int ok = gl && female && !perm_work_init(&w[0], r->n_features) && !perm_work_init(&w[1], r->n_features);
      if (!ok) {
#pragma omp atomic write
        no_mem = 1;
      }
#pragma omp for schedule(dynamic, 4)
      for (int64_t t = 0; t < (int64_t)o->permutations; t++)
        null[t] = ok ? one_perm(r, pl, w, labels, n, img, glab, ng, gl, female, o->seed, (uint64_t)t) : -1;
      perm_work_free(&w[0]), perm_work_free(&w[1]);
      free(gl), free(female);
    }
    if (no_mem) rc = oom();
  }
  if (!rc) {
    int64_t valid = 0;
    for (uint64_t t = 0; t < o->permutations; t++)
      if (null[t] >= 0) null[valid++] = null[t];
    r->n_perm = valid;
    int64_t ge = 0;
    double sum = 0, ss = 0;
    for (int64_t t = 0; t < valid; t++) ge += null[t] >= (double)r->overlap, sum += null[t];
    r->null_mean = valid ? sum / (double)valid : 0;
    for (int64_t t = 0; t < valid; t++) ss += (null[t] - r->null_mean) * (null[t] - r->null_mean);
    r->null_sd = valid > 1 ? sqrt(ss / (double)(valid - 1)) : 0;
    r->null_lo = valid ? an_percentile_sort(null, (size_t)valid, 0.025) : 0;
    r->null_hi = valid ? an_percentile_sort(null, (size_t)valid, 0.975) : 0;
    r->p_overlap = (1.0 + (double)ge) / (1.0 + (double)valid);
  }
  perm_lang_free(&pl[0]), perm_lang_free(&pl[1]);
  free(ids), free(img), free(glab), free(null);
  return rc;
}

static int cross_stats(an_feat_result *r, const an_feat_lang_in *in, const int *labels, const uint64_t *groups,
                       int64_t n, const an_feat_opts *o) {
  an_feat_lang *A = &r->lang[0], *B = &r->lang[1];
  for (int64_t j = 0; j < r->n_features; j++) {
    int sa = A->tested[j] && A->q[j] <= o->fdr, sb = B->tested[j] && B->q[j] <= o->fdr;
    r->n_en_only += sa && !sb;
    r->n_ar_only += sb && !sa;
    r->n_both += sa && sb;
  }
  int64_t k = (int64_t)o->top_k;
  if (A->n_ranking < k) k = A->n_ranking;
  if (B->n_ranking < k) k = B->n_ranking;
  r->k = k;
  uint8_t *mark = calloc((size_t)r->n_features, 1);
  if (!mark) return oom();
  for (int64_t t = 0; t < k; t++) mark[A->ranking[t]] = 1;
  for (int64_t t = 0; t < k; t++) r->overlap += mark[B->ranking[t]];
  free(mark);
  r->jaccard = k ? (double)r->overlap / (double)(2 * k - r->overlap) : 0;
  r->cross = 1;
  return k && o->permutations ? overlap_null(r, in, labels, groups, n, o) : 0;
}

int an_features_compute(const an_feat_lang_in *in, int n_langs, const int *labels, const uint64_t *groups, int64_t n,
                        const an_feat_opts *o, an_feat_result *out) {
  memset(out, 0, sizeof *out);
  if (n_langs < 1 || n_langs > AN_FEAT_MAX_LANGS)
    return sc_error_setc(SC_ERR_ARG, "features: %d languages (1 or 2 are supported)", n_langs);
  for (int l = 0; l < n_langs; l++) {
    if (!in[l].f || in[l].f->n != n || !in[l].use)
      return sc_error_setc(SC_ERR_ARG, "features: %s: the pooled features do not hold %lld samples", in[l].lang,
                           (long long)n);
    if (in[l].f->n_features != in[0].f->n_features)
      return sc_error_setc(SC_ERR_ARG, "features: the SAEs of %s and %s have different widths", in[0].lang, in[l].lang);
  }
  out->n_langs = n_langs;
  out->n_features = in[0].f->n_features;
  int rc = 0;
  for (int l = 0; !rc && l < n_langs; l++) rc = compute_lang(&in[l], labels, n, o, &out->lang[l]);
  if (!rc) rc = joint_bh(out);
  if (!rc && n_langs == 2 && !out->lang[0].skipped && !out->lang[1].skipped)
    rc = cross_stats(out, in, labels, groups, n, o);
  if (rc) an_feat_result_free(out);
  return rc;
}

/* ---- JSON ---- */

static int num(sc_json *o, const char *k, double v) {
  return sc_json_add_num(o, k, isfinite(v) ? v : 0) ? 0 : SC_ERR_NOMEM;
}

typedef struct card_ex {
  float max;
  int64_t sample;
  int64_t e; /* the entry */
} card_ex;

static int card_examples(const an_feat_lang *L, const an_feat_lang_in *in, int li, const int *labels,
                         const an_feat_opts *o, int64_t n_cards, sc_json *cards) {
  const an_sae_pooled *f = in->f;
  int64_t m = (int64_t)o->card_examples;
  int32_t *slot = malloc((size_t)L->n_features * sizeof *slot);
  card_ex *ex = calloc((size_t)(n_cards * m > 0 ? n_cards * m : 1), sizeof *ex);
  int64_t *have = calloc((size_t)(n_cards ? n_cards : 1), sizeof *have);
  if (!slot || !ex || !have) {
    free(slot), free(ex), free(have);
    return oom();
  }
  for (int64_t j = 0; j < L->n_features; j++) slot[j] = -1;
  for (int64_t c = 0; c < n_cards; c++) slot[L->ranking[c]] = (int32_t)c;
  /* keep each card's m best (max desc, sample asc): samples come in
   * increasing order, so a tie never displaces an earlier sample */
  for (int64_t i = 0; m && i < f->n; i++)
    for (int64_t e = f->row_ptr[i]; e < f->row_ptr[i + 1]; e++) {
      int32_t c = slot[f->feature[e]];
      if (c < 0) continue;
      card_ex *b = ex + c * m;
      int64_t h = have[c];
      if (h == m && !(f->max[e] > b[m - 1].max)) continue;
      int64_t at = h < m ? h : m - 1;
      while (at > 0 && f->max[e] > b[at - 1].max) b[at] = b[at - 1], at--;
      b[at] = (card_ex){f->max[e], i, e};
      if (h < m) have[c]++;
    }
  int rc = 0;
  for (int64_t c = 0; !rc && c < n_cards; c++) {
    int32_t j = L->ranking[c];
    sc_json *card = sc_json_add(cards, NULL, sc_json_new_object());
    sc_json *exs = card ? sc_json_new_array() : NULL;
    if (!card || !exs) {
      sc_json_free(exs);
      rc = oom();
      break;
    }
    rc = num(card, "feature", j) || num(card, "rank", (double)c + 1) || num(card, "cohens_d", L->d[j]) ||
                 num(card, "p", L->p[j]) || num(card, "q", L->q[j]) || num(card, "firing_rate", L->rate[j]) ||
                 num(card, "firing_rate_male", L->rate_male[j]) || num(card, "firing_rate_female", L->rate_female[j]) ||
                 num(card, "mean_male", L->mean_male[j]) || num(card, "mean_female", L->mean_female[j]) ||
                 !sc_json_add_str(card, "d_status", an_stat_status_str(L->d_status[j]))
             ? oom()
             : 0;
    if (!sc_json_add(card, "examples", exs)) rc = rc ? rc : oom();
    for (int64_t t = 0; !rc && t < have[c]; t++) {
      const card_ex *x = ex + c * m + t;
      sc_json *o1 = sc_json_add(exs, NULL, sc_json_new_object());
      if (!o1) {
        rc = oom();
        break;
      }
      rc = num(o1, "sample", (double)x->sample) || !sc_json_add_str(o1, "label", sc_label_name(labels[x->sample])) ||
                   !sc_json_add_bool(o1, "used", in->use[x->sample] && is_mf(labels[x->sample])) ||
                   num(o1, "max_activation", f->max[x->e]) || num(o1, "mean_activation", f->mean[x->e]) ||
                   num(o1, "position", f->max_pos[x->e]) || num(o1, "token_id", f->max_token[x->e])
               ? oom()
               : 0;
      if (!rc && o->card) rc = o->card(o->user, li, x->sample, f->max_pos[x->e], f->max_token[x->e], o1);
    }
  }
  free(slot), free(ex), free(have);
  return rc;
}

static sc_json *ids_array(const an_feat_lang *A, const an_feat_lang *B, double fdr, int want_a, int want_b) {
  sc_json *arr = sc_json_new_array();
  for (int64_t j = 0; arr && j < A->n_features; j++) {
    int sa = A->tested[j] && A->q[j] <= fdr, sb = B && B->tested[j] && B->q[j] <= fdr;
    if (sa == want_a && sb == want_b && (sa || sb))
      if (!sc_json_add(arr, NULL, sc_json_new_num((double)j))) {
        sc_json_free(arr);
        return NULL;
      }
  }
  return arr;
}

static int lang_json(const an_feat_result *r, const an_feat_lang_in *in, int li, const int *labels,
                     const an_feat_opts *o, sc_json *obj) {
  const an_feat_lang *L = &r->lang[li];
  int rc = !sc_json_add_str(obj, "status", L->skipped ? "skipped" : "ok") ? oom() : 0;
  if (!rc && L->skipped) rc = sc_json_add_str(obj, "skip_reason", L->skip_reason) ? 0 : oom();
  if (!rc)
    rc = num(obj, "n_used", (double)L->n_used) || num(obj, "n_male", (double)L->n_male) ||
                 num(obj, "n_female", (double)L->n_female)
             ? oom()
             : 0;
  if (rc || L->skipped) {
    if (!rc && !(sc_json_add(obj, "ranking", sc_json_new_array()) && sc_json_add(obj, "cards", sc_json_new_array())))
      rc = oom();
    return rc;
  }
  int64_t n_sig = 0;
  for (int64_t j = 0; j < L->n_features; j++) n_sig += L->tested[j] && L->q[j] <= o->fdr;
  rc = num(obj, "n_tested", (double)L->n_tested) || num(obj, "n_significant", (double)n_sig) ? oom() : 0;
  sc_json *rk = rc ? NULL : sc_json_add(obj, "ranking", sc_json_new_array());
  if (!rc && !rk) rc = oom();
  for (int64_t t = 0; !rc && t < L->n_ranking; t++) {
    int32_t j = L->ranking[t];
    sc_json *e = sc_json_add(rk, NULL, sc_json_new_object());
    rc = !e || num(e, "feature", j) || num(e, "cohens_d", L->d[j]) || num(e, "q", L->q[j]) ||
                 num(e, "firing_rate", L->rate[j])
             ? oom()
             : 0;
  }
  sc_json *sig = rc ? NULL : sc_json_add(obj, "significant", ids_array(L, NULL, o->fdr, 1, 0));
  if (!rc && !sig) rc = oom();
  int64_t n_cards = (int64_t)o->top_k < L->n_ranking ? (int64_t)o->top_k : L->n_ranking;
  sc_json *cards = rc ? NULL : sc_json_add(obj, "cards", sc_json_new_array());
  if (!rc && !cards) rc = oom();
  if (!rc) rc = card_examples(L, &in[li], li, labels, o, n_cards, cards);
  return rc;
}

int an_features_json(const an_feat_result *r, const an_feat_lang_in *in, const int *labels, const an_feat_opts *o,
                     sc_json **languages, sc_json **cross) {
  *languages = sc_json_new_object();
  *cross = sc_json_new_object();
  int rc = *languages && *cross ? 0 : oom();
  for (int l = 0; !rc && l < r->n_langs; l++) {
    sc_json *obj = sc_json_add(*languages, in[l].lang, sc_json_new_object());
    rc = obj ? lang_json(r, in, l, labels, o, obj) : oom();
  }
  if (!rc) {
    sc_json *c = *cross;
    rc = !sc_json_add_str(c, "status", r->cross ? "ok" : "skipped") || num(c, "n_tests", (double)r->n_tests) ||
                 num(c, "fdr", o->fdr)
             ? oom()
             : 0;
    if (!rc && !r->cross)
      rc = sc_json_add_str(c, "skip_reason",
                           r->n_langs < 2 ? "one language analysed" : "a language's statistics were skipped")
               ? 0
               : oom();
  }
  if (!rc && r->cross) {
    sc_json *c = *cross;
    const an_feat_lang *A = &r->lang[0], *B = &r->lang[1];
    char ka[48], kb[48];
    snprintf(ka, sizeof ka, "%s_only", A->lang);
    snprintf(kb, sizeof kb, "%s_only", B->lang);
    sc_json *sig = sc_json_add(c, "significant", sc_json_new_object());
    rc = !sig || !sc_json_add(sig, ka, ids_array(A, B, o->fdr, 1, 0)) ||
                 !sc_json_add(sig, kb, ids_array(B, A, o->fdr, 1, 0)) ||
                 !sc_json_add(sig, "both", ids_array(A, B, o->fdr, 1, 1))
             ? oom()
             : 0;
    sc_json *cnt = rc ? NULL : sc_json_add(c, "counts", sc_json_new_object());
    if (!rc)
      rc = !cnt || num(cnt, ka, (double)r->n_en_only) || num(cnt, kb, (double)r->n_ar_only) ||
                   num(cnt, "both", (double)r->n_both)
               ? oom()
               : 0;
    sc_json *ov = rc ? NULL : sc_json_add(c, "top_k_overlap", sc_json_new_object());
    if (!rc)
      rc = !ov || num(ov, "k", (double)r->k) || num(ov, "overlap", (double)r->overlap) ||
                   num(ov, "jaccard", r->jaccard) || num(ov, "permutations", (double)r->n_perm) ||
                   num(ov, "null_mean", r->null_mean) || num(ov, "null_sd", r->null_sd) ||
                   num(ov, "null_lo", r->null_lo) || num(ov, "null_hi", r->null_hi) ||
                   (r->n_perm ? num(ov, "p", r->p_overlap) : !sc_json_add(ov, "p", sc_json_new_null()))
               ? oom()
               : 0;
    if (!rc) {
      int64_t fired = 0;
      for (int64_t j = 0; j < r->n_features; j++) fired += A->tested[j] || B->tested[j];
      rc = num(ov, "chance", fired ? (double)r->k * (double)r->k / (double)fired : 0) ? oom() : 0;
    }
  }
  if (rc) {
    sc_json_free(*languages), sc_json_free(*cross);
    *languages = *cross = NULL;
  }
  return rc;
}
