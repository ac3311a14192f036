/* probe.h: linear gender probes (L2-regularised logistic regression,
 * LIBLINEAR) with cross-validation grouped by image.
 *
 * Typical use (RQ1, analysis/crossling.c):
 *   an_groups g; an_groups_build(image_ids, n, &g);
 *   int *fold = malloc(n * sizeof *fold);
 *   an_folds_grouped(&g, y, k, seed, fold);   // checked: no image in two folds
 *   an_cv_eval ev[2];
 *   const float *eval[2] = {X_en, X_ar};
 *   an_probe_cv(X_en, d, y, n, fold, k, c, 2, eval, ev);  // EN probe: EN and EN→AR
 *   ... an_cv_acc_ci(&ev[1], &g, n_boot, 0.95, seed, &lo, &hi) ...
 *   an_cv_eval_free(&ev[0]); an_cv_eval_free(&ev[1]);
 *
 * The model: LIBLINEAR 2.3 solver L2R_LR (primal, trust-region Newton),
 * eps 1e-4 (tighter than LIBLINEAR's 0.01, so the fit is the minimiser to
 * well within what a prediction can notice), bias = 1: an extra constant
 * feature 1 whose weight is regularised like the others, so the objective
 * minimised is
 *     ½(‖w‖² + b²) + C Σ_i log(1 + exp(−y_i (w·z_i + b))),  y_i ∈ {−1, +1},
 * over the STANDARDISED features z = (x − μ)/σ, μ and σ (population SD,
 * ddof 0) taken from the training rows only; a feature with σ = 0 on the
 * training rows is set to 0. Labels: 0 (male) → −1, 1 (female) → +1;
 * predicted label 1 when w·z + b > 0. LIBLINEAR's printing is silenced.
 * Folds, training and prediction are deterministic for a seed (LIBLINEAR's
 * L2R_LR primal solver uses no randomness). Memory: LIBLINEAR's sparse rows
 * take 16 bytes per value, i.e. about 16·n_train·d bytes per probe.
 */
#ifndef AN_PROBE_H
#define AN_PROBE_H

#include <stddef.h>
#include <stdint.h>

#include "analysis/stats.h"

/* ---- folds ---------------------------------------------------------------- */

/* Assigns each row a fold in [0, k) so that every row of a group (image)
 * lies in the same fold, stratified by label: groups are shuffled with an
 * sc_rng seeded by `seed`, ordered by their label (a group's majority
 * label; ties → 0), and dealt round-robin, one counter running across the
 * labels, so each fold gets ⌊·⌋ or ⌈·⌉ of each label's groups. y[i] ∈ {0,1}.
 * Errors: SC_ERR_ARG when k < 2, k > number of groups, or a label is not
 * 0/1 (message names the row); SC_ERR_NOMEM. Afterwards an_folds_check
 * passes by construction; callers still call it. */
int an_folds_grouped(const an_groups *g, const int *y, size_t k, uint64_t seed, int *fold_of_row);

/* SC_ERR_INTERNAL ("group <id> is in folds a and b") when some group has
 * rows in two folds, or a fold value lies outside [0, k); 0 otherwise. */
int an_folds_check(const an_groups *g, const int *fold_of_row, size_t k);

/* ---- one probe ------------------------------------------------------------- */

typedef struct an_probe an_probe;

/* Trains on rows[0..n_rows) of X [*, d] (f32, row-major) with labels y
 * (indexed by row, 0/1) and LIBLINEAR C = c. A training set with a single
 * label is valid: the probe then predicts that label. Errors: SC_ERR_ARG
 * (n_rows = 0, d = 0, c <= 0, a label not 0/1, a non-finite feature),
 * SC_ERR_NOMEM, SC_ERR_INTERNAL (LIBLINEAR refused the problem). */
int an_probe_train(const float *X, size_t d, const int *y, const size_t *rows, size_t n_rows,
                   double c, an_probe **out);
/* Predicts rows[0..n_rows) of X [*, d]: pred[i] ∈ {0, 1}; score[i] = w·z + b
 * (decision value, positive → 1) when score is not NULL. */
void an_probe_predict(const an_probe *p, const float *X, const size_t *rows, size_t n_rows,
                      int *pred, double *score);
/* Weights in standardised space: w[0..d) and the bias b. */
void an_probe_weights(const an_probe *p, double *w, double *b);
size_t an_probe_dim(const an_probe *p);
int an_probe_single_label(const an_probe *p); /* 1 when trained on one label only */
void an_probe_free(an_probe *p);

/* ---- cross-validation --------------------------------------------------- */

typedef struct an_cv_eval {
  size_t k;          /* folds */
  size_t n_rows;     /* rows evaluated (every row once, in its held-out fold) */
  signed char *correct; /* [n] 1 correct, 0 wrong (indexed by row) */
  double *fold_acc;  /* [k] accuracy on each held-out fold */
  size_t *fold_n;    /* [k] rows in each held-out fold */
  size_t n_correct;
  double acc;        /* n_correct / n_rows (pooled over folds) */
  double mean_fold_acc; /* unweighted mean of fold_acc */
  size_t single_label_folds; /* folds whose training rows had one label */
} an_cv_eval;

/* k-fold CV: for each fold f, trains one probe on the rows of X_train with
 * fold != f, then predicts the rows with fold == f of every X_eval[e]
 * (e < n_eval; the same samples in the same order as X_train, e.g. the same
 * captions in another language: X_eval[0] == X_train gives the
 * within-language accuracy, X_eval[1] = the other language's matrix the
 * transfer accuracy), into out[e]. All matrices are [n, d] f32. fold comes
 * from an_folds_grouped. Errors as an_probe_train, SC_ERR_ARG when a fold is
 * empty. Free each out[e] with an_cv_eval_free (also safe on a zeroed one). */
int an_probe_cv(const float *X_train, size_t d, const int *y, size_t n, const int *fold, size_t k,
                double c, size_t n_eval, const float *const *X_eval, an_cv_eval *out);
void an_cv_eval_free(an_cv_eval *e);

/* Percentile bootstrap CI of ev's pooled accuracy, resampling the groups
 * (images) of g (same rows as the CV) with an_bootstrap. Returns 0 or
 * AN_STAT_NO_VALID (then lo = hi = 0), or a negative SC_ERR_*. */
int an_cv_acc_ci(const an_cv_eval *ev, const an_groups *g, size_t n_resamples, double ci,
                 uint64_t seed, double *lo, double *hi);

#endif
