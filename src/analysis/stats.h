/* stats.h: the statistics of the analysis (an_ prefix): moments, Cohen's d,
 * Mann–Whitney U, Benjamini–Hochberg q-values, bootstrap CIs over groups
 * (images), label-permutation tests, linear CKA and cosine similarity.
 *
 * Conventions:
 *  - Every sum is accumulated in f64; inputs are f64 arrays unless a name
 *    says f32.
 *  - Return values: 0 (AN_STAT_OK) = a valid number was written; a POSITIVE
 *    an_stat_status = a documented degenerate case (too few samples, zero
 *    variance, all values tied, zero-norm vector): the output is set to 0 (p
 *    and q to 1) and the caller records the status string
 *    (an_stat_status_str) in its JSON instead of passing on a NaN; a
 *    NEGATIVE SC_ERR_* = a bad argument (NaN/Inf input, size overflow) or out
 *    of memory, with the message set (base/error.h).
 *  - Everything stochastic takes a uint64 seed and seeds its own xoshiro256**
 *    (base/rng.h): the same seed gives the same result on every machine.
 *
 * Definitions (checked against scipy/numpy in tests/reference/stats_reference.py):
 *  var        sample variance, denominator n − 1 (numpy ddof=1).
 *  cohens_d   (mean_a − mean_b) / s_p, s_p = sqrt(((n_a−1)v_a + (n_b−1)v_b)
 *             / (n_a + n_b − 2)), the pooled SAMPLE SD.
 *  mannwhitney  scipy.stats.mannwhitneyu(a, b, alternative='two-sided',
 *             use_continuity=True, method='auto') as in scipy 1.10: U1 is the
 *             statistic of sample a (rank sum of a − n_a(n_a+1)/2, midranks
 *             for ties); U = max(U1, U2); 'auto' = the EXACT null
 *             distribution when min(n_a, n_b) <= 8 and no value is tied
 *             (p = 2·P(U' >= U), Gaussian q-binomial counts), else the
 *             normal approximation with tie correction
 *             σ = sqrt(n_a n_b/12 · ((n+1) − Σ(t³−t)/(n(n−1)))) and
 *             continuity correction z = (U − n_a n_b/2 − 0.5)/σ,
 *             p = 2·Q(z) (GSL gsl_cdf_ugaussian_Q); p is clipped to [0, 1].
 *  bh         Benjamini–Hochberg q-values: q_(i) = min_{j>=i} p_(j)·m/j,
 *             capped at 1 (statsmodels multipletests 'fdr_bh' pvals_corrected,
 *             scipy.stats.false_discovery_control(method='bh')).
 *  percentile numpy.percentile's default ('linear') interpolation.
 *  cka_linear Kornblith et al. 2019, linear kernel, columns centred:
 *             ‖Yᶜᵀ Xᶜ‖²_F / (‖Xᶜᵀ Xᶜ‖_F ‖Yᶜᵀ Yᶜ‖_F).
 */
#ifndef AN_STATS_H
#define AN_STATS_H

#include <stddef.h>
#include <stdint.h>

#include "base/rng.h"

typedef enum an_stat_status {
  AN_STAT_OK = 0,
  AN_STAT_TOO_FEW = 1,   /* fewer samples than the statistic needs (n < 2, an empty group) */
  AN_STAT_ZERO_VAR = 2,  /* zero (pooled) variance: d undefined; CKA with a constant side */
  AN_STAT_ALL_TIES = 3,  /* Mann–Whitney: every value equal (σ = 0), p set to 1 */
  AN_STAT_ZERO_NORM = 4, /* cosine with a zero vector */
  AN_STAT_NO_VALID = 5   /* bootstrap: no resample gave a valid statistic */
} an_stat_status;

/* "ok", "too_few_samples", "zero_variance", "all_ties", "zero_norm",
 * "no_valid_resample" (the strings the result JSONs record). */
const char *an_stat_status_str(int status);

/* ---- moments ------------------------------------------------------------ */

typedef struct an_moments {
  size_t n;
  double mean; /* 0 when n = 0 */
  double var;  /* sample variance (n − 1); 0 when n < 2 */
} an_moments;

/* Two-pass mean and sample variance of x[0..n). Returns AN_STAT_TOO_FEW when
 * n < 2 (mean still set when n = 1), SC_ERR_ARG on a non-finite value. */
int an_moments_f64(const double *x, size_t n, an_moments *out);
/* Same over an f32 column: x[i·stride], i < n (stride in elements). */
int an_moments_f32(const float *x, size_t n, size_t stride, an_moments *out);

/* ---- effect size and tests ---------------------------------------------- */

/* Cohen's d of a versus b (positive when a's mean is larger), pooled sample
 * SD. AN_STAT_TOO_FEW when n_a < 2 or n_b < 2; AN_STAT_ZERO_VAR when the
 * pooled SD is 0 (*d = 0). */
int an_cohens_d(const double *a, size_t n_a, const double *b, size_t n_b, double *d);

typedef enum an_mw_method {
  AN_MW_AUTO = 0,       /* scipy 1.10 'auto' (see the top of this file) */
  AN_MW_ASYMPTOTIC = 1, /* normal approximation, tie + continuity corrected */
  AN_MW_EXACT = 2       /* exact null distribution (ignores ties, like scipy) */
} an_mw_method;

typedef struct an_mw_result {
  double u1;        /* U statistic of a (scipy's `statistic`) */
  double p;         /* two-sided p in [0, 1] */
  double z;         /* standardised statistic (asymptotic only, else 0) */
  int exact;        /* 1 when the exact distribution was used */
} an_mw_result;

/* Two-sided Mann–Whitney U test of a versus b. AN_STAT_TOO_FEW when a or b
 * is empty (p = 1); AN_STAT_ALL_TIES when every value is equal on the
 * asymptotic path (p = 1). Exact p needs O(min(n_a,n_b)·n_a·n_b) work: the
 * exact path is only taken when min(n_a, n_b) <= 8 (AN_MW_EXACT with a
 * larger minimum falls back to asymptotic). SC_ERR_ARG on NaN/Inf. */
int an_mannwhitney(const double *a, size_t n_a, const double *b, size_t n_b, an_mw_method method,
                   an_mw_result *out);

/* Benjamini–Hochberg q-values of p[0..m) into q[0..m) (q may alias p).
 * SC_ERR_ARG when a p is NaN or outside [0, 1]; SC_ERR_NOMEM. m = 0: no-op. */
int an_bh_qvalues(const double *p, size_t m, double *q);

/* ---- quantiles ------------------------------------------------------------ */

/* numpy.percentile(x, 100·prob) with linear interpolation; sorts x in place.
 * n >= 1 and prob in [0, 1] are the caller's contract. */
double an_percentile_sort(double *x, size_t n, double prob);

/* ---- groups and resampling --------------------------------------------- */

/* Rows grouped by image: the distinct group ids in ascending order and each
 * group's rows in row order. Built once, used by the bootstrap, the grouped
 * permutation and the probe folds. */
typedef struct an_groups {
  size_t n_rows;
  size_t n_groups;
  uint64_t *ids;     /* [n_groups] distinct ids, ascending */
  size_t *start;     /* [n_groups + 1] offsets into rows */
  size_t *rows;      /* [n_rows] row indices, grouped, ascending inside a group */
  size_t *group_of;  /* [n_rows] index (into ids) of each row's group */
} an_groups;

/* Builds the grouping of group_ids[0..n_rows). SC_ERR_NOMEM. */
int an_groups_build(const uint64_t *group_ids, size_t n_rows, an_groups *out);
void an_groups_free(an_groups *g);

/* One bootstrap resample over groups: draws n_groups group indices with
 * sc_rng_below(rng, n_groups), one after the other, and writes the rows of
 * each drawn group, in drawn order, into rows_out, whose capacity must be
 * an_groups_resample_cap(g) (n_groups × the largest group). *n_out = rows
 * written. */
size_t an_groups_resample_cap(const an_groups *g);
void an_groups_resample(const an_groups *g, sc_rng *rng, size_t *rows_out, size_t *n_out);

/* A statistic of a set of rows (with repetitions): writes n_stats values
 * into `values`. Returns 0 for a valid resample, a positive an_stat_status
 * when this resample is degenerate (it is skipped and counted), a negative
 * SC_ERR_* to abort. */
typedef int (*an_stat_fn)(const size_t *rows, size_t n_rows, void *user, double *values);

typedef struct an_boot_result {
  size_t n_stats;
  double *lo, *hi;     /* [n_stats] percentile CI bounds (0 when status != OK) */
  double *se;          /* [n_stats] SD (n − 1) of the valid bootstrap values */
  double *values;      /* [n_valid · n_stats] valid resamples' values, in draw order,
                          row-major (resample, stat); NULL unless keep_values */
  size_t n_resamples;  /* resamples drawn */
  size_t n_valid;      /* resamples the statistic accepted */
  int status;          /* AN_STAT_OK or AN_STAT_NO_VALID */
} an_boot_result;

/* Percentile bootstrap over groups: n_resamples resamples of the groups
 * (an_groups_resample with an sc_rng seeded by `seed`), fn on each, the CI at
 * level `ci` (e.g. 0.95: percentiles 2.5 and 97.5 of the valid values,
 * numpy linear interpolation). Deterministic for a seed. Free with
 * an_boot_result_free. Errors: SC_ERR_ARG (n_resamples = 0, ci outside
 * (0, 1), no groups), SC_ERR_NOMEM, or fn's negative code. */
int an_bootstrap(const an_groups *g, an_stat_fn fn, void *user, size_t n_stats,
                 size_t n_resamples, double ci, uint64_t seed, int keep_values,
                 an_boot_result *out);
void an_boot_result_free(an_boot_result *r);

/* ---- permutation tests ------------------------------------------------- */

/* A statistic of a labelling labels[0..n_rows) (0/1). Same return
 * convention as an_stat_fn (a degenerate permutation is skipped). */
typedef int (*an_perm_fn)(const int *labels, size_t n_rows, void *user, double *value);

typedef struct an_perm_result {
  double observed;     /* fn on the true labels */
  double p;            /* (1 + #{|T_perm| >= |T_obs|}) / (1 + n_valid), two-sided
                          on |T|; for AN_TAIL_GREATER on T itself */
  size_t n_valid;      /* permutations the statistic accepted */
  int status;          /* AN_STAT_OK, or fn's status on the true labels, or
                          AN_STAT_NO_VALID */
} an_perm_result;

typedef enum an_tail { AN_TAIL_TWO = 0, AN_TAIL_GREATER = 1 } an_tail;

/* Label-permutation test. With g == NULL rows are shuffled individually
 * (sc_rng_shuffle of a copy of the labels). With g != NULL the labels must be
 * constant within each group (SC_ERR_ARG naming the group otherwise) and
 * whole groups' labels are shuffled (images keep their captions together).
 * Deterministic for a seed. */
int an_permutation_test(const int *labels, size_t n_rows, const an_groups *g, an_perm_fn fn,
                        void *user, size_t n_perm, an_tail tail, uint64_t seed,
                        an_perm_result *out);

/* ---- similarity --------------------------------------------------------- */

/* Cosine of a and b (f64 sums). AN_STAT_ZERO_NORM (*out = 0) when either
 * norm is 0. */
int an_cosine(const double *a, const double *b, size_t d, double *out);

/* Linear CKA between X [n, d1] and Y [n, d2] (f32, row-major; the same n
 * samples in the same order), restricted to rows[0..n_rows) when rows is not
 * NULL (repetitions allowed: a bootstrap resample). Columns are centred over
 * the chosen rows, sums in f64. Cost O(n·d1·d2) via the cross-covariance
 * Gram form, or O(n²(d1+d2)) via the n×n kernels when n is smaller; the
 * cheaper is chosen. AN_STAT_TOO_FEW when n_rows < 2; AN_STAT_ZERO_VAR
 * when a side is constant over the rows (*out = 0). SC_ERR_NOMEM. */
int an_cka_linear(const float *X, size_t d1, const float *Y, size_t d2, size_t n,
                  const size_t *rows, size_t n_rows, double *out);

#endif
