/* train.h: the `train` stage (issue 7): stored activations -> SAEs.
 *
 * One SAE per layer of train.layers ("all": every layer extracted for the
 * first language of train.languages), trained on the rows of every language
 * of train.languages together (shared feature space across languages), or
 * with train.per_language one SAE per language. Rows used (sae_store_source.h):
 *  - activations/<lang>/layer_<L>/ of those languages, concatenated;
 *  - segments in train.segments;
 *  - never the special tokens of sc_train_special_tokens (BOS, PAD, EOS ids,
 *    <start_of_turn>, <end_of_turn>, <start_of_image>, <end_of_image>): they
 *    are outliers in norm that carry no image content. The image soft tokens
 *    themselves are the "image" segment and stay (drop them with segments);
 *  - samples of the train split of data/processed/samples.jsonl only;
 *  - shuffled with a buffer of train.shuffle_buffer rows seeded by `seed`.
 * Outputs under <output_dir>/saes/layer_<L>/ (per_language:
 * saes/<lang>/layer_<L>/): cfg.json + sae_weights.safetensors (SAELens v6,
 * hook_name blocks.<L>.hook_resid_post, metadata.saecap_* keys),
 * sparsity.safetensors, trainer_state.safetensors (every
 * train.checkpoint_every steps and at the end), training_log.jsonl (one line
 * per logged step; see docs/results/sae_metrics.md).
 * Resume: cfg.json is written last; a folder holding it with this run's
 * config hash is finished and skipped; a folder with a trainer state resumes
 * from it (kill -9 included) and ends with the same bytes as an
 * uninterrupted run.
 */
#ifndef SC_TRAIN_H
#define SC_TRAIN_H

#include <stddef.h>
#include <stdint.h>

#include "pipeline/config.h"
#include "store/reader.h"

#define SC_TRAIN_MAX_LANGS 2
#define SC_TRAIN_MAX_LAYERS 256
#define SC_TRAIN_MAX_SPECIAL 16

/* What the config resolves to, shared by train and sae-eval. */
typedef struct sc_train_plan {
  int n_langs;
  const char *lang[SC_TRAIN_MAX_LANGS];  /* "en" / "ar" (static strings) */
  int n_layers;
  int layer[SC_TRAIN_MAX_LAYERS];        /* increasing */
  unsigned segments;                     /* bits 1 << STORE_SEG_* */
  int n_special;
  int32_t special[SC_TRAIN_MAX_SPECIAL]; /* token ids never used */
  int8_t *split_of;                      /* owned: split per sample_index */
  int64_t n_split_of;
  char *acts_dir;                        /* owned: <output_dir>/activations */
  char *saes_dir;                        /* owned: <output_dir>/saes */
} sc_train_plan;

/* Resolves cfg (only_layer >= 0: that layer alone). Errors (one line):
 * SC_ERR_ARG "<config>: train.languages: 'x' is not en or ar",
 * "<config>: train.segments: 'x' is not image, prompt or caption",
 * "<config>: train.layers: 'x' is not a layer number",
 * SC_ERR_MISSING "<dir>: no activations for layer L (run `saecap extract`
 * with L in extract.layers)", "<...>/samples.jsonl: missing; run `saecap
 * prepare` first"; errors of samples.jsonl and the model config. */
int sc_train_plan_make(const sc_config *cfg, int only_layer, sc_train_plan *out);
void sc_train_plan_free(sc_train_plan *p);

/* The special token ids never trained on: from <model.path>/config.json and
 * tokenizer.json when model.path is set, else Gemma 3's (0 pad, 1 eos, 2 bos,
 * 105/106 turn markers, 255999/256000 boi/eoi). */
int sc_train_special_tokens(const sc_config *cfg, int32_t *ids, int *n);

/* The ids of <start_of_turn> and <end_of_turn> (those present, in that
 * order) from the added_tokens array of tokenizer.json text buf[0..len)
 * (name used in messages). Only that array is parsed. Errors:
 * SC_ERR_FORMAT "<name>: no added_tokens array", JSON errors. */
int sc_train_turn_ids(const char *buf, size_t len, const char *name, int32_t out[2], int *n);

/* Opens the reader of layer `layer` for the languages [lang0, lang0+n_lang)
 * of the plan, filtered by segments, special tokens and `split` (SC_SPLIT_*,
 * or -1 for every split). */
int sc_train_open_reader(const sc_train_plan *p, int layer, int lang0, int n_lang, int split,
                         store_reader **out);

/* malloc'd SAE folder: saes/layer_<L> (lang NULL) or saes/<lang>/layer_<L>. */
char *sc_train_sae_dir(const sc_train_plan *p, const char *lang, int layer);

/* "fnv1a64:<hex>" (33 bytes with NUL) of every setting that changes the
 * trained weights plus the manifests (config_hash, total_rows) of the
 * directories read. */
int sc_train_config_hash(const sc_config *cfg, const sc_train_plan *p, int layer, int lang0,
                         int n_lang, char out[40]);

typedef struct sc_train_opts {
  int layer;   /* -1: every layer of the plan */
} sc_train_opts;

typedef struct sc_train_summary {
  int n_saes;       /* SAEs the config asks for */
  int n_trained;    /* finished by this run */
  int n_skipped;    /* already finished */
  int n_resumed;    /* continued from a trainer state */
  int64_t steps;    /* steps run by this run */
} sc_train_summary;

/* Runs the stage. Errors: those of sc_train_plan_make, of the reader (width
 * mismatch between languages: "... different d"), SC_ERR_ARG "<dir>/cfg.json:
 * trained with config_hash X, this run has Y (remove the folder to retrain)",
 * trainer state mismatch, write errors naming the file. */
int sc_train_run(const sc_config *cfg, const sc_train_opts *o, sc_train_summary *out);

#endif
