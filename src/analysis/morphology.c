/* morphology.c: RQ4, grammatical vs semantic gender per SAE feature
 * (contract in morphology.h, output keys in docs/results/morphology_analysis.md).
 *
 * Three passes: tag every caption's tokens (morph.h) and pick the
 * observations; stream the activations once, keeping the rows of the picked
 * word tokens and each picked sample's mean row; test every feature twice. */
#include "analysis/morphology.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "analysis/morph.h"
#include "analysis/stats.h"
#include "base/error.h"
#include "pipeline/prepare.h"

#define RQ4_CHUNK 256    /* activation rows fetched per call */
#define RQ4_TOP_LEMMAS 20

typedef struct lemma_count {
  const char *lemma; /* static (lexicon) */
  int fem;
  long n;
} lemma_count;

/* One two-group test over all features. */
typedef struct rq4_test {
  size_t n_obs[2];     /* [0] feminine/female, [1] masculine/male */
  size_t n_rows;
  uint8_t *fem;        /* (n_rows) 1 = feminine / female */
  /* the observations' activations, sparse (SAE codes are mostly zero):
   * appended as rows while streaming, then turned into columns */
  size_t *rp;          /* (n_rows + 1) row starts into ci/cv */
  uint32_t *ci;        /* (nnz) feature of each stored value */
  float *cv;           /* (nnz) the non-zero values */
  size_t nnz, cap, rows_done;
  size_t *cp;          /* (n_features + 1) column starts into ri/rv */
  uint32_t *ri;        /* (nnz) row of each stored value, ascending per column */
  float *rv;           /* (nnz) */
  int skipped;
  char skip_reason[160];
  double *d, *p, *q, *mean_f, *mean_m; /* (n_features) */
  int *status;         /* (n_features) an_stat_status, or -1 = not tested (all zero) */
  size_t n_tested, n_sig;
} rq4_test;

typedef struct rq4 {
  const an_morphology_input *in;
  size_t F;
  double fdr;
  size_t min_tokens, min_samples, top_k, max_list;
  /* selection */
  size_t *gtok;        /* (gram.n_rows) selected token indices, ascending */
  int64_t *srow;       /* (n_samples) row of the sample in the semantic test, or -1 */
  rq4_test gram, sem;
  /* tagging summary */
  long n_samples_used, n_excluded, n_tokens_used, n_words;
  long by_gender[3], by_anim[3], by_src[6];
  lemma_count *lemmas;
  size_t n_lemmas, cap_lemmas;
} rq4;

static int oom(void) { return sc_error_setc(SC_ERR_NOMEM, "morphology: out of memory"); }

/* ==== pass 1: tagging and selection ====================================== */

static int count_lemma(rq4 *r, const char *lemma, int fem) {
  for (size_t i = 0; i < r->n_lemmas; i++)
    if (r->lemmas[i].fem == fem && !strcmp(r->lemmas[i].lemma, lemma)) {
      r->lemmas[i].n++;
      return 0;
    }
  if (r->n_lemmas == r->cap_lemmas) {
    size_t cap = r->cap_lemmas ? 2 * r->cap_lemmas : 64;
    lemma_count *g = realloc(r->lemmas, cap * sizeof *g);
    if (!g) return oom();
    r->lemmas = g, r->cap_lemmas = cap;
  }
  r->lemmas[r->n_lemmas++] = (lemma_count){lemma, fem, 1};
  return 0;
}

/* Is this word (tag) an observation of the grammatical test? */
static int gram_word(an_lang lang, const an_morph_tag *t) {
  if (t->gender != AN_GENDER_MALE && t->gender != AN_GENDER_FEMALE) return 0;
  if (lang == AN_LANG_AR) return t->animacy == AN_ANIM_INANIMATE;
  return t->wclass == AN_WC_PRONOUN;
}

static int push_gram(rq4 *r, size_t tok, int fem) {
  rq4_test *g = &r->gram;
  if ((g->n_rows & (g->n_rows - 1)) == 0) { /* grow at powers of two */
    size_t cap = g->n_rows ? 2 * g->n_rows : 64;
    size_t *a = realloc(r->gtok, cap * sizeof *a);
    if (a) r->gtok = a;
    uint8_t *b = realloc(g->fem, cap);
    if (b) g->fem = b;
    if (!a || !b) return oom();
  }
  r->gtok[g->n_rows] = tok;
  g->fem[g->n_rows++] = (uint8_t)fem;
  g->n_obs[fem ? 0 : 1]++;
  return 0;
}

/* Tags the tokens [t0, t1) of one caption and records its observations. */
static int tag_caption(rq4 *r, const an_lexicon *lex, size_t t0, size_t t1, an_morph_tag *tags,
                       int32_t *wi, size_t *lens) {
  const an_morphology_input *in = r->in;
  size_t n = t1 - t0;
  for (size_t i = 0; i < n; i++) lens[i] = in->token_len ? in->token_len[t0 + i] : strlen(in->token_text[t0 + i]);
  int rc = an_morph_tag_tokens(lex, in->token_text + t0, lens, n, tags, wi);
  for (size_t i = 0; !rc && i < n; i++) {
    if (wi[i] < 0 || (i + 1 < n && wi[i + 1] == wi[i])) continue; /* not a word's last token */
    const an_morph_tag *t = &tags[i];
    r->n_words++;
    r->by_gender[t->gender]++;
    r->by_anim[t->animacy]++;
    r->by_src[t->src]++;
    if (!gram_word(in->lang, t)) continue;
    int fem = t->gender == AN_GENDER_FEMALE;
    rc = push_gram(r, t0 + i, fem);
    if (!rc && t->lemma) rc = count_lemma(r, t->lemma, fem);
  }
  return rc;
}

static int check_input(const an_morphology_input *in) {
  if (!in->n_features) return sc_error_setc(SC_ERR_ARG, "morphology: no features");
  if (!in->acts && !in->rows) return sc_error_setc(SC_ERR_ARG, "morphology: neither acts nor rows given");
  if (in->n_tokens && (!in->token_sample || !in->token_text))
    return sc_error_setc(SC_ERR_ARG, "morphology: token_sample and token_text are required");
  if (in->n_samples && !in->label) return sc_error_setc(SC_ERR_ARG, "morphology: label is required");
  if (in->lang != AN_LANG_AR && in->lang != AN_LANG_EN)
    return sc_error_setc(SC_ERR_ARG, "morphology: unknown language %d", (int)in->lang);
  for (size_t t = 0; t < in->n_tokens; t++) {
    int64_t s = in->token_sample[t];
    if (s < 0 || (uint64_t)s >= in->n_samples)
      return sc_error_setc(SC_ERR_ARG, "morphology: token %zu: sample index %lld outside [0, %zu)", t,
                           (long long)s, in->n_samples);
    if (t && s < in->token_sample[t - 1])
      return sc_error_setc(SC_ERR_ARG, "morphology: token %zu: sample index %lld after %lld (must not decrease)",
                           t, (long long)s, (long long)in->token_sample[t - 1]);
  }
  return 0;
}

static int select_all(rq4 *r, const an_lexicon *lex) {
  const an_morphology_input *in = r->in;
  size_t longest = 1;
  for (size_t t0 = 0, t1; t0 < in->n_tokens; t0 = t1) {
    for (t1 = t0 + 1; t1 < in->n_tokens && in->token_sample[t1] == in->token_sample[t0]; t1++) {}
    if (t1 - t0 > longest) longest = t1 - t0;
  }
  an_morph_tag *tags = malloc(longest * sizeof *tags);
  int32_t *wi = malloc(longest * sizeof *wi);
  size_t *lens = malloc(longest * sizeof *lens);
  r->srow = malloc((in->n_samples ? in->n_samples : 1) * sizeof *r->srow);
  r->sem.fem = malloc(in->n_samples ? in->n_samples : 1);
  int rc = tags && wi && lens && r->srow && r->sem.fem ? 0 : oom();
  for (size_t s = 0; !rc && s < in->n_samples; s++) r->srow[s] = -1;
  for (size_t t0 = 0, t1; !rc && t0 < in->n_tokens; t0 = t1) {
    int64_t s = in->token_sample[t0];
    for (t1 = t0 + 1; t1 < in->n_tokens && in->token_sample[t1] == s; t1++) {}
    if (in->exclude && in->exclude[s]) {
      r->n_excluded++;
      continue;
    }
    r->n_samples_used++;
    r->n_tokens_used += (long)(t1 - t0);
    rc = tag_caption(r, lex, t0, t1, tags, wi, lens);
    int lab = in->label[s];
    if (!rc && (lab == SC_LABEL_MALE || lab == SC_LABEL_FEMALE)) {
      r->sem.fem[r->sem.n_rows] = lab == SC_LABEL_FEMALE;
      r->sem.n_obs[lab == SC_LABEL_FEMALE ? 0 : 1]++;
      r->srow[s] = (int64_t)r->sem.n_rows++;
    }
  }
  free(tags), free(wi), free(lens);
  return rc;
}

/* ==== pass 2: activations ================================================ */

static int begin_rows(rq4_test *t) {
  t->rp = malloc((t->n_rows + 1) * sizeof *t->rp);
  if (!t->rp) return oom();
  t->rp[0] = 0;
  return 0;
}

/* Appends the non-zeros of x[0..F) as the next row. */
static int append_row(rq4_test *t, const float *x, size_t F) {
  if (t->nnz + F > t->cap) {
    size_t cap = t->cap * 2 > t->nnz + F ? t->cap * 2 : t->nnz + F;
    uint32_t *c = realloc(t->ci, cap * sizeof *c);
    if (c) t->ci = c;
    float *v = realloc(t->cv, cap * sizeof *v);
    if (v) t->cv = v;
    if (!c || !v) return oom();
    t->cap = cap;
  }
  for (size_t f = 0; f < F; f++)
    if (x[f] != 0) t->ci[t->nnz] = (uint32_t)f, t->cv[t->nnz++] = x[f];
  t->rp[++t->rows_done] = t->nnz;
  return 0;
}

/* Rows -> columns (counting sort by feature; rows stay ascending). */
static int to_columns(rq4_test *t, size_t F) {
  t->cp = calloc(F + 1, sizeof *t->cp);
  t->ri = malloc((t->nnz ? t->nnz : 1) * sizeof *t->ri);
  t->rv = malloc((t->nnz ? t->nnz : 1) * sizeof *t->rv);
  if (!t->cp || !t->ri || !t->rv) return oom();
  for (size_t k = 0; k < t->nnz; k++) t->cp[t->ci[k] + 1]++;
  for (size_t f = 0; f < F; f++) t->cp[f + 1] += t->cp[f];
  size_t *next = malloc((F ? F : 1) * sizeof *next);
  if (!next) return oom();
  memcpy(next, t->cp, F * sizeof *next);
  for (size_t i = 0; i < t->rows_done; i++)
    for (size_t k = t->rp[i]; k < t->rp[i + 1]; k++) {
      size_t at = next[t->ci[k]]++;
      t->ri[at] = (uint32_t)i, t->rv[at] = t->cv[k];
    }
  free(next);
  free(t->ci), free(t->cv);
  t->ci = NULL, t->cv = NULL;
  return 0;
}

static int finish_sample(rq4 *r, int64_t s, const double *sum, size_t cnt, float *row) {
  if (s < 0 || r->srow[s] < 0 || !cnt) return 0;
  for (size_t f = 0; f < r->F; f++) row[f] = (float)(sum[f] / (double)cnt);
  return append_row(&r->sem, row, r->F);
}

static int check_finite(const float *x, size_t F, size_t t) {
  for (size_t f = 0; f < F; f++)
    if (!isfinite(x[f]))
      return sc_error_setc(SC_ERR_ARG, "morphology: token %zu feature %zu: non-finite activation", t, f);
  return 0;
}

static int stream_acts(rq4 *r) {
  const an_morphology_input *in = r->in;
  size_t F = r->F;
  int rc = begin_rows(&r->gram);
  if (!rc) rc = begin_rows(&r->sem);
  float *buf = in->acts ? NULL : malloc(RQ4_CHUNK * F * sizeof(float)), *row = malloc(F * sizeof(float));
  double *sum = calloc(F, sizeof *sum);
  if (!rc && ((!in->acts && !buf) || !sum || !row)) rc = oom();
  size_t gi = 0, cnt = 0;
  int64_t cur = -1;
  for (size_t t0 = 0; !rc && t0 < in->n_tokens; t0 += RQ4_CHUNK) {
    size_t n = in->n_tokens - t0 < RQ4_CHUNK ? in->n_tokens - t0 : RQ4_CHUNK;
    const float *rows = in->acts ? in->acts + t0 * F : buf;
    if (!in->acts && (rc = in->rows(in->user, t0, n, buf))) break;
    for (size_t i = 0; !rc && i < n; i++) {
      size_t t = t0 + i;
      const float *x = rows + i * F;
      int64_t s = in->token_sample[t];
      if (in->exclude && in->exclude[s]) continue;
      if ((rc = check_finite(x, F, t))) break;
      if (s != cur) {
        if ((rc = finish_sample(r, cur, sum, cnt, row))) break;
        memset(sum, 0, F * sizeof *sum);
        cnt = 0, cur = s;
      }
      for (size_t f = 0; f < F; f++) sum[f] += x[f];
      cnt++;
      if (gi < r->gram.n_rows && r->gtok[gi] == t) rc = append_row(&r->gram, x, F), gi++;
    }
  }
  if (!rc) rc = finish_sample(r, cur, sum, cnt, row);
  if (!rc && (r->gram.rows_done != r->gram.n_rows || r->sem.rows_done != r->sem.n_rows))
    rc = sc_error_setc(SC_ERR_INTERNAL, "morphology: %zu/%zu word rows, %zu/%zu sample rows", r->gram.rows_done,
                       r->gram.n_rows, r->sem.rows_done, r->sem.n_rows);
  if (!rc) rc = to_columns(&r->gram, F);
  if (!rc) rc = to_columns(&r->sem, F);
  free(buf), free(sum), free(row);
  return rc;
}

/* ==== pass 3: tests ======================================================= */

/* ---- sparse path ----
 * SAE codes are mostly zero, so a column is its non-zeros plus a block of
 * zeros. Both statistics are computed from that without expanding it, with
 * the definitions of stats.h (which the dense path calls): Cohen's d with
 * the two-pass variance (the zeros' squared deviations added in closed
 * form), and the Mann–Whitney normal approximation with tie and continuity
 * correction, the zeros being one tie group. Used when both groups have
 * more than 8 values, where scipy's 'auto' (and an_mannwhitney) is
 * asymptotic; tests/test_morphology.c checks it against scipy. */

typedef struct nzv {
  double v;
  int a; /* 1 = group a (feminine / female) */
} nzv;

static int nzv_cmp(const void *x, const void *y) {
  double a = ((const nzv *)x)->v, b = ((const nzv *)y)->v;
  return (a > b) - (a < b);
}

/* Mean and sum of squared deviations of a group of n values whose non-zeros
 * are the v of e[] with e.a == grp. */
static void sparse_moments(const nzv *e, size_t m, int grp, size_t n, double *mean, double *ssd) {
  double s = 0, q = 0;
  size_t nz = 0;
  for (size_t k = 0; k < m; k++)
    if (e[k].a == grp) s += e[k].v, nz++;
  *mean = s / (double)n;
  for (size_t k = 0; k < m; k++)
    if (e[k].a == grp) q += (e[k].v - *mean) * (e[k].v - *mean);
  *ssd = q + (double)(n - nz) * *mean * *mean;
}

/* Rank sum of group a and the tie term sum(t^3 - t), e sorted by v. */
static void sparse_ranks(const nzv *e, size_t m, size_t zeros, size_t zeros_a, double *ra, double *ties) {
  size_t below = 0; /* values ranked so far */
  int zeros_done = zeros == 0;
  *ra = 0, *ties = 0;
  for (size_t k = 0; k <= m;) {
    if (!zeros_done && (k == m || e[k].v > 0)) { /* the zero block sits here */
      double mid = (double)below + ((double)zeros + 1) / 2;
      *ra += mid * (double)zeros_a;
      *ties += (double)zeros * zeros * zeros - (double)zeros;
      below += zeros, zeros_done = 1;
      continue;
    }
    if (k == m) break;
    size_t j = k, na = 0;
    while (j < m && e[j].v == e[k].v) na += (size_t)e[j].a, j++;
    double t = (double)(j - k), mid = (double)below + (t + 1) / 2;
    *ra += mid * (double)na;
    *ties += t * t * t - t;
    below += j - k, k = j;
  }
}

static void sparse_feature(rq4_test *t, size_t f, nzv *e) {
  size_t m = 0, na = t->n_obs[0], nb = t->n_obs[1], n = na + nb, za = na;
  for (size_t k = t->cp[f]; k < t->cp[f + 1]; k++) {
    e[m].v = t->rv[k], e[m].a = t->fem[t->ri[k]];
    za -= (size_t)e[m].a, m++;
  }
  double ma, mb, sa, sb;
  sparse_moments(e, m, 1, na, &ma, &sa);
  sparse_moments(e, m, 0, nb, &mb, &sb);
  t->mean_f[f] = ma, t->mean_m[f] = mb;
  double sp = sqrt((sa + sb) / (double)(n - 2));
  int sd = sp > 0 ? AN_STAT_OK : AN_STAT_ZERO_VAR;
  t->d[f] = sp > 0 ? (ma - mb) / sp : 0;
  qsort(e, m, sizeof *e, nzv_cmp);
  double ra, ties;
  sparse_ranks(e, m, n - m, za, &ra, &ties);
  double u1 = ra - (double)na * ((double)na + 1) / 2, u2 = (double)na * nb - u1, u = u1 > u2 ? u1 : u2;
  double var = (double)na * nb / 12 * (((double)n + 1) - ties / ((double)n * (n - 1)));
  int sm = var > 0 ? AN_STAT_OK : AN_STAT_ALL_TIES;
  double p = 1;
  if (var > 0) {
    double z = (u - (double)na * nb / 2 - 0.5) / sqrt(var);
    p = erfc(z / sqrt(2.0)); /* 2 Q(z) */
    p = p < 0 ? 0 : p > 1 ? 1 : p;
  }
  t->p[f] = p;
  t->status[f] = sm ? sm : sd;
  t->n_tested++;
}

/* col: (n_rows) zeros on entry and on return. */
static int test_feature(rq4_test *t, size_t f, double *col, double *a, double *b) {
  size_t na = 0, nb = 0;
  int any = t->cp[f + 1] > t->cp[f];
  for (size_t k = t->cp[f]; k < t->cp[f + 1]; k++) col[t->ri[k]] = t->rv[k];
  for (size_t i = 0; i < t->n_rows; i++) {
    if (t->fem[i]) a[na++] = col[i];
    else b[nb++] = col[i];
  }
  for (size_t k = t->cp[f]; k < t->cp[f + 1]; k++) col[t->ri[k]] = 0;
  an_moments ma, mb;
  an_moments_f64(a, na, &ma);
  an_moments_f64(b, nb, &mb);
  t->mean_f[f] = ma.mean, t->mean_m[f] = mb.mean;
  t->d[f] = 0, t->p[f] = 1, t->q[f] = 1;
  if (!any) {
    t->status[f] = -1;
    return 0;
  }
  int sd = an_cohens_d(a, na, b, nb, &t->d[f]);
  an_mw_result mw;
  int sm = an_mannwhitney(a, na, b, nb, AN_MW_AUTO, &mw);
  if (sd < 0) return sd;
  if (sm < 0) return sm;
  t->p[f] = mw.p;
  t->status[f] = sm ? sm : sd;
  t->n_tested++;
  return 0;
}

static int run_test(rq4_test *t, size_t F, double fdr, size_t min_obs, const char *unit) {
  if (t->n_obs[0] < min_obs || t->n_obs[1] < min_obs) {
    t->skipped = 1;
    snprintf(t->skip_reason, sizeof t->skip_reason, "too few %s: %zu and %zu (need %zu per group)", unit,
             t->n_obs[0], t->n_obs[1], min_obs);
    return 0;
  }
  t->d = calloc(F, sizeof(double)), t->p = calloc(F, sizeof(double)), t->q = calloc(F, sizeof(double));
  t->mean_f = calloc(F, sizeof(double)), t->mean_m = calloc(F, sizeof(double));
  t->status = calloc(F, sizeof(int));
  size_t nr = t->n_rows ? t->n_rows : 1;
  double *a = malloc(nr * sizeof *a), *b = malloc(nr * sizeof *b), *col = calloc(nr, sizeof *col);
  double *pt = malloc(F * sizeof *pt);
  size_t *idx = malloc(F * sizeof *idx);
  int rc = t->d && t->p && t->q && t->mean_f && t->mean_m && t->status && a && b && pt && idx ? 0 : oom();
  if (!rc && !col) rc = oom();
  size_t widest = 1; /* most non-zeros in one column */
  for (size_t f = 0; !rc && f < F; f++)
    if (t->cp[f + 1] - t->cp[f] > widest) widest = t->cp[f + 1] - t->cp[f];
  nzv *e = rc ? NULL : malloc(widest * sizeof *e);
  if (!rc && !e) rc = oom();
  int sparse = t->n_obs[0] > 8 && t->n_obs[1] > 8;
  for (size_t f = 0; !rc && f < F; f++) {
    if (t->cp[f + 1] == t->cp[f]) { /* never non-zero: not tested */
      t->d[f] = t->mean_f[f] = t->mean_m[f] = 0, t->p[f] = t->q[f] = 1, t->status[f] = -1;
    } else if (sparse) {
      sparse_feature(t, f, e);
    } else {
      rc = test_feature(t, f, col, a, b);
    }
  }
  free(e);
  size_t m = 0; /* BH over the features tested */
  for (size_t f = 0; !rc && f < F; f++)
    if (t->status[f] >= 0) idx[m] = f, pt[m++] = t->p[f];
  if (!rc && m) rc = an_bh_qvalues(pt, m, pt);
  for (size_t k = 0; !rc && k < m; k++) {
    t->q[idx[k]] = pt[k];
    t->n_sig += pt[k] < fdr;
  }
  free(a), free(b), free(col), free(pt), free(idx);
  return rc;
}

static void free_test(rq4_test *t) {
  free(t->rp), free(t->ci), free(t->cv), free(t->cp), free(t->ri), free(t->rv);
  free(t->fem), free(t->d), free(t->p), free(t->q), free(t->mean_f), free(t->mean_m);
  free(t->status);
}

/* ==== JSON ================================================================ */

static const char *status_str(int s) { return s < 0 ? "not_tested" : an_stat_status_str(s); }

static int sig(const rq4_test *t, size_t f, double fdr) { return !t->skipped && t->status[f] >= 0 && t->q[f] < fdr; }

static sc_json *feature_stats(const rq4_test *t, size_t f) {
  sc_json *o = sc_json_new_object();
  if (o && !(sc_json_add_num(o, "cohens_d", t->d[f]) && sc_json_add_num(o, "p", t->p[f]) &&
             sc_json_add_num(o, "q", t->q[f]) && sc_json_add_num(o, "mean_feminine", t->mean_f[f]) &&
             sc_json_add_num(o, "mean_masculine", t->mean_m[f]) &&
             sc_json_add_str(o, "status", status_str(t->status[f])))) {
    sc_json_free(o);
    return NULL;
  }
  return o;
}

typedef struct abs_d {
  double ad; /* |cohens_d| */
  size_t f;
} abs_d;

static int by_abs_d(const void *x, const void *y) {
  const abs_d *a = x, *b = y;
  if (a->ad != b->ad) return a->ad < b->ad ? 1 : -1;
  return (a->f > b->f) - (a->f < b->f);
}

/* The k tested features of largest |d| (ties by feature index). */
static sc_json *top_list(const rq4_test *t, size_t F, size_t k) {
  sc_json *arr = sc_json_new_array();
  abs_d *v = malloc((F ? F : 1) * sizeof *v);
  size_t m = 0;
  if (!arr || !v) goto fail;
  for (size_t f = 0; f < F; f++)
    if (t->status[f] >= 0) v[m++] = (abs_d){fabs(t->d[f]), f};
  qsort(v, m, sizeof *v, by_abs_d);
  for (size_t i = 0; i < m && i < k; i++) {
    sc_json *o = sc_json_add(arr, NULL, feature_stats(t, v[i].f));
    if (!o || !sc_json_add_num(o, "feature", (double)v[i].f)) goto fail;
  }
  free(v);
  return arr;
fail:
  free(v);
  sc_json_free(arr);
  return NULL;
}

static sc_json *test_json(const rq4 *r, const rq4_test *t, int gram) {
  const char *fem = gram ? "n_feminine" : "n_female", *mas = gram ? "n_masculine" : "n_male";
  const char *unit = gram ? "word (its last token)" : "sample (mean over its caption tokens)";
  const char *sel = !gram ? "samples labelled female vs male (ground_truth_gender)"
                    : r->in->lang == AN_LANG_AR ? "inanimate nouns with grammatical gender (morphology lexicon)"
                                                : "pronouns she/her/hers/herself vs he/him/his/himself";
  sc_json *o = sc_json_new_object();
  int ok = o && sc_json_add_str(o, "unit", unit) && sc_json_add_str(o, "selection", sel) &&
           sc_json_add_num(o, fem, (double)t->n_obs[0]) && sc_json_add_num(o, mas, (double)t->n_obs[1]) &&
           sc_json_add_str(o, "effect", "cohens_d (pooled sample SD), positive = larger for feminine/female") &&
           sc_json_add_str(o, "test", "mann_whitney_u (two-sided, scipy 'auto')") &&
           sc_json_add_str(o, "correction", "benjamini_hochberg over the features tested") &&
           sc_json_add_str(o, "status", t->skipped ? "skipped" : "ok") &&
           sc_json_add(o, "skip_reason", t->skipped ? sc_json_new_str(t->skip_reason) : sc_json_new_null());
  if (ok && !t->skipped)
    ok = sc_json_add_num(o, "n_tested", (double)t->n_tested) && sc_json_add_num(o, "n_significant", (double)t->n_sig) &&
         sc_json_add(o, "top", top_list(t, r->F, r->top_k));
  if (!ok) sc_json_free(o);
  return ok ? o : NULL;
}

static const char *feature_class(const rq4 *r, size_t f) {
  if (r->gram.skipped || r->sem.skipped) return "untested";
  int g = sig(&r->gram, f, r->fdr), s = sig(&r->sem, f, r->fdr);
  return g && s ? "both" : g ? "grammatical" : s ? "semantic" : "neither";
}

static int add_classes(const rq4 *r, sc_json *root) {
  sc_json *c = sc_json_add(root, "classification", sc_json_new_object());
  sc_json *list = sc_json_add(root, "features", sc_json_new_array());
  if (!c || !list) return oom();
  long n[5] = {0}, same = 0;
  size_t listed = 0;
  int truncated = 0;
  static const char *names[5] = {"grammatical", "semantic", "both", "neither", "untested"};
  for (size_t f = 0; f < r->F; f++) {
    const char *cls = feature_class(r, f);
    int k = 0;
    while (strcmp(names[k], cls)) k++;
    n[k]++;
    if (k == 2) same += (r->gram.d[f] > 0) == (r->sem.d[f] > 0);
    if (!sig(&r->gram, f, r->fdr) && !sig(&r->sem, f, r->fdr)) continue;
    if (listed == r->max_list) {
      truncated = 1;
      continue;
    }
    sc_json *o = sc_json_add(list, NULL, sc_json_new_object());
    if (!o || !sc_json_add_num(o, "feature", (double)f) || !sc_json_add_str(o, "class", cls) ||
        !sc_json_add(o, "grammatical", r->gram.skipped ? sc_json_new_null() : feature_stats(&r->gram, f)) ||
        !sc_json_add(o, "semantic", r->sem.skipped ? sc_json_new_null() : feature_stats(&r->sem, f)))
      return oom();
    listed++;
  }
  int ok = sc_json_add_str(c, "status", r->gram.skipped || r->sem.skipped ? "skipped" : "ok") != NULL;
  for (int k = 0; ok && k < 5; k++) ok = sc_json_add_num(c, names[k], (double)n[k]) != NULL;
  ok = ok && sc_json_add_num(c, "both_same_direction", (double)same) &&
       sc_json_add_bool(root, "features_truncated", truncated);
  return ok ? 0 : oom();
}

static int by_count(const void *x, const void *y) {
  const lemma_count *a = x, *b = y;
  if (a->n != b->n) return a->n < b->n ? 1 : -1;
  return strcmp(a->lemma, b->lemma);
}

static sc_json *lemma_list(const rq4 *r, int fem) {
  sc_json *arr = sc_json_new_array();
  size_t k = 0;
  for (size_t i = 0; arr && i < r->n_lemmas && k < RQ4_TOP_LEMMAS; i++) {
    if (r->lemmas[i].fem != fem) continue;
    sc_json *o = sc_json_add(arr, NULL, sc_json_new_object());
    if (!o || !sc_json_add_str(o, "lemma", r->lemmas[i].lemma) || !sc_json_add_num(o, "count", (double)r->lemmas[i].n)) {
      sc_json_free(arr);
      return NULL;
    }
    k++;
  }
  return arr;
}

static sc_json *counts3(const char *k0, long v0, const char *k1, long v1, const char *k2, long v2) {
  sc_json *o = sc_json_new_object();
  if (o && !(sc_json_add_num(o, k0, (double)v0) && sc_json_add_num(o, k1, (double)v1) && sc_json_add_num(o, k2, (double)v2))) {
    sc_json_free(o);
    return NULL;
  }
  return o;
}

static int add_tagging(rq4 *r, sc_json *root) {
  if (r->n_lemmas) qsort(r->lemmas, r->n_lemmas, sizeof *r->lemmas, by_count);
  sc_json *t = sc_json_add(root, "tagging", sc_json_new_object()), *src = NULL, *gw = NULL;
  int ok = t && sc_json_add_num(t, "n_samples", (double)r->n_samples_used) &&
           sc_json_add_num(t, "n_samples_excluded", (double)r->n_excluded) &&
           sc_json_add_num(t, "n_tokens", (double)r->n_tokens_used) && sc_json_add_num(t, "n_words", (double)r->n_words) &&
           sc_json_add(t, "words_by_gender", counts3("masculine", r->by_gender[AN_GENDER_MALE], "feminine",
                                                     r->by_gender[AN_GENDER_FEMALE], "unknown", r->by_gender[AN_GENDER_NONE])) &&
           sc_json_add(t, "words_by_animacy", counts3("animate", r->by_anim[AN_ANIM_ANIMATE], "inanimate",
                                                      r->by_anim[AN_ANIM_INANIMATE], "unknown", r->by_anim[AN_ANIM_UNKNOWN])) &&
           (src = sc_json_add(t, "words_by_source", sc_json_new_object())) &&
           (gw = sc_json_add(t, "grammatical_words", sc_json_new_object())) &&
           sc_json_add(gw, "feminine", lemma_list(r, 1)) && sc_json_add(gw, "masculine", lemma_list(r, 0));
  for (int s = 0; ok && s < 6; s++) ok = sc_json_add_num(src, an_morph_src_name((an_morph_src)s), (double)r->by_src[s]) != NULL;
  return ok ? 0 : oom();
}

static int build_json(rq4 *r, sc_json **out) {
  sc_json *root = sc_json_new_object(), *set = NULL;
  int ok = root && sc_json_add_str(root, "language", an_lang_name(r->in->lang)) &&
           sc_json_add_num(root, "n_features", (double)r->F) && sc_json_add_num(root, "fdr", r->fdr) &&
           (set = sc_json_add(root, "settings", sc_json_new_object())) &&
           sc_json_add_num(set, "min_tokens", (double)r->min_tokens) &&
           sc_json_add_num(set, "min_samples", (double)r->min_samples) && sc_json_add_num(set, "top_k", (double)r->top_k) &&
           sc_json_add_num(set, "max_features_listed", (double)r->max_list);
  int rc = ok ? add_tagging(r, root) : oom();
  if (!rc && !(sc_json_add(root, "grammatical", test_json(r, &r->gram, 1)) &&
               sc_json_add(root, "semantic", test_json(r, &r->sem, 0))))
    rc = oom();
  if (!rc) rc = add_classes(r, root);
  if (rc) sc_json_free(root);
  else *out = root;
  return rc;
}

/* ==== entry point ========================================================= */

int an_morphology_run(const an_lexicon *lex, const an_morphology_input *in, sc_json **out) {
  *out = NULL;
  int rc = check_input(in);
  if (rc) return rc;
  if (an_lexicon_lang(lex) != in->lang)
    return sc_error_setc(SC_ERR_ARG, "morphology: the lexicon is %s, the input %s", an_lang_name(an_lexicon_lang(lex)),
                         an_lang_name(in->lang));
  rq4 r = {.in = in, .F = in->n_features};
  r.fdr = in->fdr > 0 ? in->fdr : 0.05;
  r.min_tokens = in->min_tokens ? in->min_tokens : 10;
  r.min_samples = in->min_samples ? in->min_samples : 5;
  r.top_k = in->top_k ? in->top_k : 50;
  r.max_list = in->max_features_listed ? in->max_features_listed : 5000;
  if (r.min_tokens < 2) r.min_tokens = 2; /* Cohen's d needs two per group */
  if (r.min_samples < 2) r.min_samples = 2;
  rc = select_all(&r, lex);
  if (!rc) rc = stream_acts(&r);
  if (!rc) rc = run_test(&r.gram, r.F, r.fdr, r.min_tokens, "words");
  if (!rc) rc = run_test(&r.sem, r.F, r.fdr, r.min_samples, "samples");
  if (!rc) rc = build_json(&r, out);
  free(r.gtok), free(r.srow), free(r.lemmas);
  free_test(&r.gram), free_test(&r.sem);
  return rc;
}
