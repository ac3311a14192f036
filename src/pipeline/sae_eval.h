/* sae_eval.h: the `sae-eval` stage: metrics of the trained SAEs on the
 * held-out split -> <output_dir>/results/sae_metrics.json
 * (docs/results/sae_metrics.md).
 *
 * For every SAE `train` wrote for the config (saes/layer_<L>/, or
 * saes/<lang>/layer_<L>/ with train.per_language) and every language it
 * covers: the rows of activations/<lang>/layer_<L>/ of train.eval_split with
 * train's row filter (segments, special tokens), the first
 * train.eval_max_rows of them in store order (0: all), encoded and decoded
 * in batches of SC_SAE_EVAL_BATCH rows; sae_metrics.h's metrics.
 *
 * With train.ce_loss: the model (model.path, extract.precision) is run
 * teacher-forced over each eval-split sample's image prompt (the prompt of
 * captions/<lang>.jsonl) followed by its generated caption (caption_ids),
 * three times: clean; with resid_post at layer L replaced by the SAE
 * reconstruction; and with it replaced by zeros. Replacement happens only
 * on rows the SAE was trained on (segments of train.segments, no special
 * tokens); other rows stay clean. The loss is the mean next-token negative
 * log-likelihood (natural log, f64) over every caption token of every
 * sample; recovered = (zero − sae) / (zero − clean).
 */
#ifndef SC_SAE_EVAL_H
#define SC_SAE_EVAL_H

#include <stdint.h>

#include "pipeline/config.h"

#define SC_SAE_EVAL_BATCH 4096
/* Firing frequency above which a latent counts as dense (SAEBench). */
#define SC_SAE_EVAL_DENSE 0.1

typedef struct sc_sae_eval_summary {
  int n_saes;
  int n_entries;   /* (SAE, language) pairs measured */
  char *path;      /* owned: results/sae_metrics.json */
} sc_sae_eval_summary;

/* Errors: those of sc_train_plan_make; SC_ERR_MISSING "<dir>: no trained
 * SAE (run `saecap train` first)"; SC_ERR_ARG "<dir>/cfg.json: d_in X, the
 * activations of layer L have d Y"; SC_ERR_ARG "<config>: model.path is
 * required by train.ce_loss"; those of the model and captions files. */
int sc_sae_eval_run(const sc_config *cfg, sc_sae_eval_summary *out);
void sc_sae_eval_summary_free(sc_sae_eval_summary *s);

#endif
