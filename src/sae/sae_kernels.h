/* sae_kernels.h: the sparse CPU kernels of SAE encode, decode and training.
 *
 * The encoder is the only dense product (sae_encode_tile: a BLAS GEMM on a
 * tile of rows). Everything after it works on the k active latents of each
 * row (research/sae_anchors.md §2.2, the OpenAI TopK kernels):
 *   decode         x̂_b = Σ_j f_bj · W_dec[i_bj] + b_dec          2·k·d per row
 *   latent grad    ∂f_bj = ∂x̂_b · W_dec[i_bj]                    2·k·d per row
 *   weight grads   ∂W[i] += Σ_b c_bi · r_b  (W_dec: r = ∂x̂, W_enc: r = x − b_dec)
 * The weight gradients are scatters into latent rows. To make them
 * thread-count independent and free of atomics, the entries are first put in
 * latent-major order (sae_csc_build, a stable counting sort), then each
 * latent's row is summed by one thread, in increasing row order.
 *
 * All kernels take outputs first and sizes last; threads are OpenMP's.
 */
#ifndef SC_SAE_KERNELS_H
#define SC_SAE_KERNELS_H

#include <stdint.h>

#include "sae/sae.h"

/* OpenMP loops with less work than this (elements touched) run on the
 * calling thread: on small problems a parallel region costs more than the
 * loop, above all on a loaded machine where idle threads spin. Use as
 * `#pragma omp parallel for SAE_PAR(work)`. */
#define SAE_PAR_MIN_WORK ((int64_t)1 << 16)
#define SAE_PAR(work) if ((int64_t)(work) >= SAE_PAR_MIN_WORK)

/* h [T, n] = (x [T, d] − sub[d]) · W_encᵀ + b_enc, with sub = NULL meaning
 * no subtraction. xc is scratch of T·d floats (unused when sub is NULL). */
void sae_encode_tile(float *h, float *xc, const float *x, const float *sub, const float *W_enc,
                     const float *b_enc, int64_t T, int64_t d, int64_t n);

/* For each of `rows` rows of h [rows, ldh], the k largest of its first n
 * values in descending order (ties: lower index first) into idx/val
 * [rows, k]. k <= n. */
void sae_topk_rows(int32_t *idx, float *val, const float *h, int64_t rows, int64_t n,
                   int64_t ldh, int k);

/* Same over only the latents with mask[i] != 0; rows with fewer than k such
 * latents get idx −1, val −INFINITY in the tail. */
void sae_topk_rows_masked(int32_t *idx, float *val, const float *h, const uint8_t *mask,
                          int64_t rows, int64_t n, int64_t ldh, int k);

/* The kth largest (1-based) of v[0..count) by quickselect; reorders v.
 * 1 <= kth <= count. */
float sae_kth_largest(float *v, int64_t count, int64_t kth);

/* Appends to c the rows of h [T, ldh] whose entries pass: value > 0 and
 * value > thr[i] (thr NULL: > 0 only), in increasing latent order. */
int sae_codes_append_threshold(sae_codes *c, const float *h, const float *thr, int64_t T,
                               int64_t n, int64_t ldh);
/* Appends T rows of fixed-width candidates idx/val [T, k] keeping entries
 * with val >= lo and val > 0 (in their order). */
int sae_codes_append_fixed(sae_codes *c, const int32_t *idx, const float *val, int64_t T, int k,
                           float lo);

/* xhat [B, d] = c · W_dec (+ b_dec when not NULL). */
void sae_decode_csr(float *xhat, const sae_codes *c, const float *W_dec, const float *b_dec,
                    int64_t d);

/* out[e] = g[row(e)] · W[idx[e]] for every entry e of c (g [rows, d]). */
void sae_entry_dots(float *out, const sae_codes *c, const float *W, const float *g, int64_t d);

/* The main path of a training step in one pass over the rows (each row's k
 * decoder rows are read from memory once): diff [rows, d] = c · W_dec + b_dec
 * − x, rowsq[r] = Σ_j diff[r, j]² (f64), and dval[e] = (gs · diff[row(e)]) ·
 * W_dec[idx[e]], the latent gradient when gs · diff is ∂L/∂x̂. diff is left
 * unscaled. */
void sae_decode_residual_dots(float *diff, double *rowsq, float *dval, const sae_codes *c,
                              const float *W_dec, const float *b_dec, const float *x, float gs,
                              int64_t d);

/* Latent-major view of c: col_ptr (n+1), perm (nnz) lists entry numbers by
 * latent then row, row_of (nnz) the row of each entry (CSR order). */
void sae_csc_build(int64_t *col_ptr, int64_t *perm, int32_t *row_of, const sae_codes *c,
                   int64_t n);

/* dW [n, d] += Σ_e coef[e] · r[row_of[e]] over each latent's entries
 * (r [rows, d]); deterministic for any thread count. overwrite: dW is zeroed
 * first, row by row in the same threaded pass (no separate memset). When
 * rowsq is given (the last write to dW), each finished row, still in cache,
 * goes through sae_row_project_sq with proj's row (proj may be NULL) and
 * rowsq[i] gets the result. */
void sae_scatter_rows(float *dW, const int64_t *col_ptr, const int64_t *perm,
                      const int32_t *row_of, const float *coef, const float *r, int64_t n,
                      int64_t d, int overwrite, const float *proj, double *rowsq);

/* When w is given, removes from g [d] its component along the unit row w;
 * returns ‖g‖² (f64) after. */
double sae_row_project_sq(float *g, const float *w, int64_t d);

/* out[i] += Σ over latent i's entries of coef[e] (f64 sums, fixed order). */
void sae_sum_latents(float *out, const int64_t *col_ptr, const int64_t *perm, const float *coef,
                     int64_t n);

/* out [d] += alpha · Σ_i coef[i] · W[i] over the n rows of W [n, d] (rows
 * with coef 0 skipped), in f64 with a fixed order for any thread count. With
 * coef = the b_enc gradient this is the b_dec gradient through the encoder
 * (Σ_e ∂z_e · W_enc[idx_e] grouped by latent): one pass over W_enc instead
 * of one gather per entry. part: scratch of sae_rows_combine_scratch(n, d)
 * doubles. */
void sae_rows_combine(double *out, const float *coef, const float *W, int64_t n, int64_t d,
                      double alpha, double *part);
int64_t sae_rows_combine_scratch(int64_t n, int64_t d);

#endif
