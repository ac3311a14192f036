/* sae.h: sparse autoencoders: the model, its architectures, encode/decode.
 *
 * An SAE maps an input row x [d] to latent activations f [n] and back:
 *   h = (x − b_dec·[apply_b_dec_to_input]) · W_encᵀ + b_enc     (pre-activations)
 *   f = act(h)                                                  (sparse)
 *   x̂ = f · W_dec + b_dec
 * with act one of (research/sae_anchors.md §1.2):
 *   RELU       f = ReLU(h)                       SAELens "standard"
 *   TOPK       f = ReLU(top-k of h), per row     SAELens "topk"
 *   BATCHTOPK  training: the k·B largest ReLU(h) of the whole batch; at
 *              inference a JumpReLU with one threshold θ for every latent
 *              (saved as SAELens "jumprelu" with threshold = θ·1_n)
 *   JUMPRELU   f = ReLU(h)·1[h > θ_i]           SAELens "jumprelu", Gemma Scope
 *
 * Layout: W_enc is held as (n, d), row i the encoder vector of latent i, i.e.
 * the transpose of SAELens's W_enc [d_in, d_sae]; this makes the encoder an
 * nn.Linear-style product (x · Wᵀ) and the sparse encoder gradient touch
 * whole contiguous rows. sae_io converts at save and load.
 *
 * Latent activations travel as sae_codes, a CSR matrix: the active (f > 0)
 * entries of each row only. No dense [B, n] matrix is ever formed except a
 * tile of pre-activations inside sae_encode.
 *
 * Typical use: sae_load (sae_io.h) or sae_create + fill, then sae_encode +
 * sae_decode per batch of rows; sae_free.
 */
#ifndef SC_SAE_H
#define SC_SAE_H

#include <stddef.h>
#include <stdint.h>

typedef enum sae_arch {
  SAE_ARCH_RELU = 0,
  SAE_ARCH_TOPK,
  SAE_ARCH_BATCHTOPK,
  SAE_ARCH_JUMPRELU
} sae_arch;

/* Limits on widths (keep n·d and every index product far from overflow and
 * reject absurd sizes read from files). */
#define SAE_MAX_D (1 << 16)
#define SAE_MAX_N (1 << 24)
#define SAE_MAX_PARAMS ((int64_t)1 << 34)
#define SAE_NAME_MAX 256

typedef struct sae_cfg {
  sae_arch arch;
  int64_t d;                      /* input width (d_in) */
  int64_t n;                      /* latents (d_sae) */
  int k;                          /* TOPK/BATCHTOPK: active latents per row (mean for BATCHTOPK); 0 otherwise */
  int apply_b_dec_to_input;       /* subtract b_dec from x before the encoder */
  char model_name[SAE_NAME_MAX];  /* metadata.model_name ("" if unknown) */
  char hook_name[SAE_NAME_MAX];   /* metadata.hook_name, e.g. "blocks.17.hook_resid_post" */
  char source_format[32];         /* "saelens", "gemmascope2" or "" (created in memory) */
  int rescale_acts;               /* SAELens topk rescale_acts_by_decoder_norm as read (sae_load
                                     folds the decoder norms into the weights and clears it) */
} sae_cfg;

typedef struct sae {
  sae_cfg cfg;
  float *W_enc;     /* (n, d) encoder rows */
  float *W_dec;     /* (n, d) decoder rows (feature directions) */
  float *b_enc;     /* (n) */
  float *b_dec;     /* (d) */
  float *threshold; /* (n) JumpReLU thresholds (also BATCHTOPK at inference); zeros otherwise */
} sae;

/* Sparse latent activations of `rows` rows over n latents, CSR. */
typedef struct sae_codes {
  int64_t rows;     /* rows held */
  int64_t cap;      /* capacity of idx/val */
  int64_t rows_cap; /* capacity of row_ptr minus one */
  int64_t *row_ptr; /* (rows + 1): entries of row r are [row_ptr[r], row_ptr[r+1]) */
  int32_t *idx;     /* (cap) latent indices */
  float *val;       /* (cap) activations, all > 0 */
} sae_codes;

/* Name as written in configs and SAELens ("standard", "topk", "batchtopk",
 * "jumprelu"). */
const char *sae_arch_name(sae_arch a);
/* Parses "relu"/"standard", "topk", "batchtopk", "jumprelu"; SC_ERR_ARG
 * "architecture 'x' is not one of relu, topk, batchtopk, jumprelu". */
int sae_arch_parse(const char *name, sae_arch *out);

/* Checks the widths and k of cfg against the limits: SC_ERR_RANGE with a
 * message naming the item ("d_sae 0 is outside 1..16777216"). `what` starts
 * the message (a file name, or "sae"). */
int sae_cfg_check(const sae_cfg *cfg, const char *what);

/* Allocates an SAE for cfg with every parameter zero. Errors: those of
 * sae_cfg_check, SC_ERR_NOMEM. */
int sae_create(sae **out, const sae_cfg *cfg);
/* A deep copy. */
int sae_clone(sae **out, const sae *s);
void sae_free(sae *s);

int sae_codes_init(sae_codes *c);
/* Makes room for `rows` rows and `entries` entries (keeps contents). */
int sae_codes_reserve(sae_codes *c, int64_t rows, int64_t entries);
void sae_codes_release(sae_codes *c);

/* Rows of pre-activations encoded per tile (so a tile holds about 64 MiB:
 * the encoder GEMM packs all of W_enc once per tile, and at 16 MiB tiles
 * that repacking made a d 2560, n 16384 training step ~0.5 s slower). */
int64_t sae_tile_rows(int64_t n);

/* Encodes x [B, d] (f32, the SAE's own units) into *codes (reset and
 * filled; B rows). TOPK keeps each row's k largest pre-activations that
 * are > 0, in descending order (ties: lower index first); the others keep
 * a row's active latents in increasing index order. BATCHTOPK uses its
 * inference threshold (JumpReLU). Threads: OpenMP + BLAS. Errors:
 * SC_ERR_NOMEM. */
int sae_encode(const sae *s, const float *x, int64_t B, sae_codes *codes);

/* xhat [B, d] = codes · W_dec + b_dec (a gather of W_dec rows). */
void sae_decode(const sae *s, const sae_codes *codes, float *xhat);

#endif
