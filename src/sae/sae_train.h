/* sae_train.h: training SAEs with sparse kernels, resumable.
 *
 * What one step does (research/sae_anchors.md §1.2-§1.4, §2.2):
 *   x ← s·x with s = √d / E‖x‖ estimated once from the data (SAELens
 *       "expected_average_only_in"); folded into the weights at export
 *       (W_enc·s, W_dec/s, b_dec/s), so saved SAEs take raw activations.
 *   forward: encoder GEMM per tile, then top-k (TOPK), the batch-wide
 *       k·B largest (BATCHTOPK, over per-row candidates of up to
 *       SAE_BATCHTOPK_CAP·k latents, the capacity-factor idea of OpenAI's
 *       sharded top-k), or ReLU (RELU); sparse decode.
 *   loss = (1/B)Σ‖x̂−x‖² + λ_t·(1/B)Σ_i f_i‖d_i‖ (RELU, λ warmed up
 *       linearly) + AuxK (TOPK/BATCHTOPK): α·min(n_dead/k_aux, 1)·
 *       (1/B)Σ‖e − Σ_{aux} z_j d_j‖² with e = x − x̂ detached and z the
 *       ReLU of the k_aux largest pre-activations among dead latents
 *       (SAELens's scaling and coefficient 1, k_aux = d/2).
 *   backward: sparse (sae_kernels.h), only active latents touch W_enc/W_dec.
 *   decoder rows unit norm (TOPK/BATCHTOPK): gradient component along each
 *       row removed before the step, rows renormalised after
 *       (dictionary_learning ConstrainedAdam, OpenAI).
 *   global gradient-norm clipping, then Adam (β 0.9, 0.999, ε 1e-8) with
 *       lr = 2e-4/√(n/2^14) by default, linear warm-up, linear decay to 0 over
 *       the final decay_frac of the steps.
 *   BATCHTOPK threshold θ ← 0.99θ + 0.01·(smallest kept activation) (SAELens;
 *       the first batch sets it), exported as a JumpReLU threshold.
 * Init: W_dec random unit rows (norm 0.1 for RELU, SAELens's decoder init
 * norm), W_enc = W_decᵀ, b_enc = 0, b_dec = geometric median (Weiszfeld) of
 * a sample.
 *
 * Determinism: same config, seed and thread count ⇒ same bytes. Every
 * reduction has a fixed order (per-latent scatters, blocked f64 sums), and
 * the state file holds everything a step reads, so kill + resume equals an
 * uninterrupted run byte for byte.
 *
 * Typical use: sae_train_cfg_default, adjust, sae_trainer_create (or
 * sae_trainer_resume), sae_trainer_run, sae_trainer_export + sae_save_saelens,
 * sae_trainer_free.
 */
#ifndef SC_SAE_TRAIN_H
#define SC_SAE_TRAIN_H

#include <stdint.h>

#include "sae/sae.h"
#include "sae/sae_source.h"

/* BATCHTOPK keeps at most this many times k candidates per row. */
#define SAE_BATCHTOPK_CAP 4

typedef struct sae_train_cfg {
  sae_arch arch;           /* RELU, TOPK or BATCHTOPK */
  int64_t d, n;            /* input width, latents */
  int k;                   /* TOPK/BATCHTOPK active latents per row */
  int64_t batch;           /* rows per step */
  int64_t steps;           /* total steps */
  double lr;               /* <= 0: 2e-4 / sqrt(n / 2^14) */
  double beta1, beta2, adam_eps;
  int64_t warmup_steps;    /* linear lr warm-up */
  double decay_frac;       /* lr decays linearly to 0 over this final fraction of steps */
  double clip_norm;        /* global gradient-norm clip; <= 0 off */
  double l1_coeff;         /* RELU: λ */
  int64_t l1_warmup_steps; /* RELU: λ warm-up */
  double aux_coeff;        /* AuxK coefficient; 0 off */
  int k_aux;               /* AuxK latents per row; 0: d/2 */
  int64_t dead_tokens;     /* a latent unfired for this many tokens is dead */
  int64_t norm_rows;       /* rows used to estimate the input scale */
  int64_t median_rows;     /* rows used for the geometric median of b_dec */
  int unit_norm_decoder;   /* keep decoder rows at unit norm */
  uint64_t seed;
  int64_t checkpoint_every; /* write the state every this many steps (0: only at stop) */
  int64_t stop_at_step;     /* stop after this step with the state written (0: run to the end) */
  int bf16_encoder;         /* 1: the encoder GEMM runs in bf16 (tensor/gemm.h: x and a bf16
                               copy of W_enc made once per step, f32 products and sums); the
                               master weights, gradients and Adam stay f32 */
  char data_tag[48];        /* names the training data (e.g. a hash of the store); a state
                               saved with another tag is refused on resume; "" = none */
} sae_train_cfg;

/* Defaults from the anchors for an SAE of the given shape: batch 4096,
 * 10000 steps, lr scaled with width, warm-up 1000, decay over the last 20%,
 * clip 1, AuxK coefficient 1 with k_aux = d/2 and latents dead after 10M
 * unfired tokens, RELU λ 1 (a starting point to tune) warmed up over 500 steps, no unit-norm
 * constraint (L1 × decoder norm instead), seed 0. */
void sae_train_cfg_default(sae_train_cfg *c, sae_arch arch, int64_t d, int64_t n, int k);
/* Range checks (SC_ERR_RANGE / SC_ERR_ARG, "train: <item> ..."). */
int sae_train_cfg_check(const sae_train_cfg *c);
/* The learning rate the config resolves to (default scaling applied). */
double sae_train_base_lr(const sae_train_cfg *c);
/* Multiplier of the base learning rate at a step (warm-up and decay). */
double sae_train_lr_factor(const sae_train_cfg *c, int64_t step);

/* ==== Loss and gradients (one batch; also used by the gradient checks) ==== */

typedef struct sae_loss_cfg {
  double l1_coeff;       /* RELU λ at this step */
  double aux_coeff;      /* AuxK α (0: off) */
  int k_aux;             /* AuxK latents per row (> 0 when on) */
  const uint8_t *dead;   /* (n) 1 for dead latents, or NULL: no AuxK */
  struct sc_gemm *gemm;  /* with W_enc_bf16: the encoder GEMM in bf16; NULL: f32 (BLAS) */
  const uint16_t *W_enc_bf16; /* (n, d) bf16 copy of s->W_enc */
} sae_loss_cfg;

typedef struct sae_loss {
  double total, mse, l1, aux; /* loss and its parts, per row */
  double l0;                  /* mean active latents per row */
  float min_active;           /* smallest kept activation (BATCHTOPK θ update); 0 if none */
  int64_t n_dead;
} sae_loss;

/* Training loss of s on x [B, d] and its gradient into grads (same shapes
 * as s; overwritten). codes (optional) receives the active latents.
 * JUMPRELU training is not implemented: SC_ERR_ARG. Errors: SC_ERR_NOMEM. */
int sae_loss_grad(const sae *s, const sae_loss_cfg *lc, const float *x, int64_t B, sae *grads,
                  sae_loss *out, sae_codes *codes);

/* ==== Trainer ==== */

typedef struct sae_trainer sae_trainer;

/* Initialises a fresh run: reads norm_rows/median_rows rows from src to
 * estimate the scale and b_dec, then returns src to where it was. src is
 * borrowed and must have width cfg->d. */
int sae_trainer_create(sae_trainer **out, const sae_train_cfg *cfg, sae_source *src);
/* Resumes from a trainer_state.safetensors written by the same config
 * (checkpoint_every and stop_at_step may differ): weights, Adam moments,
 * step, RNG, data cursor (src is seeked), dead counters. Errors:
 * SC_ERR_FORMAT/SC_ERR_MISSING "<path>: ..." for a bad or foreign file. */
int sae_trainer_resume(sae_trainer **out, const sae_train_cfg *cfg, sae_source *src,
                       const char *state_path);
void sae_trainer_free(sae_trainer *t);

/* One step. stats (optional) gets the step's loss. */
int sae_trainer_step(sae_trainer *t, sae_loss *stats);
/* Steps until cfg.steps (or stop_at_step), writing the state to state_path
 * (if not NULL) every checkpoint_every steps, at stop_at_step and at the
 * end. */
int sae_trainer_run(sae_trainer *t, const char *state_path);
/* Writes trainer_state.safetensors atomically. */
int sae_trainer_save_state(const sae_trainer *t, const char *path);

int64_t sae_trainer_step_count(const sae_trainer *t);
/* Fraction of latents unfired for at least cfg.dead_tokens tokens. */
double sae_trainer_dead_fraction(const sae_trainer *t);
/* 1 once cfg.steps steps are done. */
int sae_trainer_done(const sae_trainer *t);
/* The model in training units (borrowed; changes every step). */
const sae *sae_trainer_model(const sae_trainer *t);
/* Input scale s (rows are multiplied by s before the SAE sees them). */
double sae_trainer_scale(const sae_trainer *t);
/* A copy for inference in raw units: scale folded in, BATCHTOPK turned into
 * JUMPRELU with threshold θ (k kept in cfg). */
int sae_trainer_export(const sae_trainer *t, sae **out);
/* log10(fraction of training tokens each latent fired on + 1e-10) into
 * out (n), SAELens's sparsity.safetensors. */
void sae_trainer_log_density(const sae_trainer *t, float *out);

#endif
