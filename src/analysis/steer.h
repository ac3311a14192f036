/* steer.h: SAE feature interventions on the residual stream, applied
 * through the decoder's edit hook (decoder.h g3_edit_fn) at every position
 * of every forward: the prefill and each cached decode step.
 *
 * One operation = (layer, SAE of that layer, feature set S, mode):
 *   ablate      f'_i = 0
 *   scale:A     f'_i = A·f_i
 *   clamp:V     f'_i = V (unconditionally, at every position)
 *   add:C       x' = x + C·Σ_{i∈S} d_i (additive steering, no encode)
 * The first three are the error-preserving edit of SAELens use_error_term
 * (research/sae_anchors.md §3): x' = x + Σ_{i∈S} (f'_i − f_i)·d_i, i.e.
 * x̂' − x̂ added to x, so the SAE's reconstruction error x − x̂ is kept
 * and b_dec cancels. d_i is row i of W_dec as loaded (sae_load folds any
 * decoder-norm rescaling into the weights, so d_i is in residual units).
 *
 * Which f_i: the SAE's actual activation on x, the unedited residual of
 * this operation.
 *  - RELU, JUMPRELU and BATCHTOPK (inference = JumpReLU) latents are
 *    independent: only the |S| pre-activations h_i = (x − b_dec·[apply]) ·
 *    W_enc[i] + b_enc[i] are computed (dot products summed in double,
 *    rounded to float like a stored pre-activation), then f_i = h_i when
 *    h_i > 0 (and h_i > θ_i for the threshold architectures), else 0 —
 *    the rule sae_encode applies. Cost O(|S|·d) per token.
 *  - TOPK: whether i is in the row's top k depends on every latent, so the
 *    whole row is encoded with sae_encode and f_i read from its codes.
 *    Cost O(n·d) per token.
 * Terms with f'_i − f_i == 0 are skipped, so scale:1 (and ablating
 * features that do not fire) leaves the residual bit-for-bit unchanged.
 *
 * Composition: operations at different layers apply in layer order as the
 * forward reaches them; each layer's edit is computed from that layer's
 * residual, which already carries the effect of every earlier layer's
 * edit. Several operations on the same layer apply in the order they were
 * added, each computing its f_i from the residual the previous one left.
 *
 * An an_steer is used by one forward at a time (it owns scratch buffers);
 * the SAEs it is given are borrowed and must outlive it.
 */
#ifndef SC_STEER_H
#define SC_STEER_H

#include <stdint.h>

#include "sae/sae.h"

/* Most features in one --steer-features list / one operation. */
#define AN_STEER_MAX_FEATURES (1 << 20)
/* Most operations in one an_steer. */
#define AN_STEER_MAX_OPS 64

typedef enum an_steer_mode {
  AN_STEER_ABLATE = 0,
  AN_STEER_SCALE,
  AN_STEER_CLAMP,
  AN_STEER_ADD
} an_steer_mode;

typedef struct an_steer_op {
  an_steer_mode mode;
  float value; /* A, V or C; 0 for ablate */
} an_steer_op;

/* Parses "ablate", "scale:A", "clamp:V" or "add:C" (A, V, C finite
 * decimal numbers, strtod syntax, nothing after them). Errors: SC_ERR_ARG
 * "--steer-mode: 'x' is not ablate, scale:A, clamp:V or add:C" /
 * "--steer-mode: 'scale:x': 'x' is not a finite number". */
int an_steer_mode_parse(const char *text, an_steer_op *out);
/* Writes the canonical spelling ("ablate", "scale:0.5" with %g) to buf. */
void an_steer_mode_str(const an_steer_op *op, char *buf, int cap);

/* Parses "I,J,..." (decimal integers >= 0, each < AN_STEER_MAX_FEATURES
 * ... checked against an SAE later by an_steer_add) into a malloc'd array
 * (owned by the caller). Errors: SC_ERR_ARG "--steer-features: 'x' is not
 * a feature index", "--steer-features: feature N is repeated",
 * "--steer-features: no feature given"; SC_ERR_NOMEM. */
int an_steer_features_parse(const char *text, int32_t **out, int *n_out);

/* The layer L of an SAE whose hook name is "blocks.<L>.hook_resid_post"
 * (SAELens, saecap) or, for Gemma Scope 2, "...layers.<L>..." with a
 * resid_post site. `what` (the SAE folder) starts messages. Errors:
 * SC_ERR_ARG "<what>: hook 'x' is not a resid_post hook with a layer
 * (blocks.<L>.hook_resid_post)". */
int an_sae_hook_layer(const sae *s, const char *what, int *layer);

typedef struct an_steer an_steer;

/* An empty intervention for a model with n_layers decoder layers and
 * residual width hidden. SC_ERR_ARG / SC_ERR_NOMEM. */
int an_steer_create(an_steer **out, int n_layers, int hidden);
void an_steer_free(an_steer *st);

/* Adds an operation at `layer` with SAE s (borrowed) on features
 * feat[0..n_feat) (copied). `what` (the SAE folder) starts messages.
 * Errors: SC_ERR_ARG "<what>: SAE input width d_in D does not match the
 * model's hidden size H", "<what>: layer L is out of range: the model has
 * layers 0..N-1", "<what>: feature F is out of range [0, n)", "<what>: no
 * feature given", "too many steering operations (max 64)"; SC_ERR_NOMEM. */
int an_steer_add(an_steer *st, const sae *s, const char *what, int layer, const int32_t *feat,
                 int n_feat, an_steer_op op);

/* Operations held. */
int an_steer_n_ops(const an_steer *st);

/* The edit hook: pass an_steer_edit as g3_forward_io.edit / g3_gen_opts.edit
 * with the an_steer as user. Errors: SC_ERR_ARG when hidden differs from
 * the one given at create; SC_ERR_NOMEM. */
int an_steer_edit(void *user, int layer, float *resid, const int32_t *pos, int64_t n, int hidden);

/* Seconds spent inside an_steer_edit since create / the last reset (for
 * the benchmark's share of generation time). */
double an_steer_seconds(const an_steer *st);
void an_steer_reset_seconds(an_steer *st);

#endif
