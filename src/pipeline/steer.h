/* steer.h: the `steer` stage (issue 9, research question 3): does
 * suppressing the gender features reduce gendered words in captions, and
 * what does it cost? Output schema: docs/results/steering_experiments.md.
 *
 * Inputs: <output_dir>/data/processed/samples.jsonl (prepare),
 * <output_dir>/results/feature_analysis.json (analyze: the ranking of
 * gender features per layer and language), the SAE of each steered layer
 * (the "sae" folder that file names, relative to output_dir, normally
 * saes/layer_<L>/, with sparsity.safetensors), and the model.
 *
 * Conditions, per language of steer.languages (names are file stems):
 *   <lang>_baseline                   no edit
 * and per steered layer L (steer.layers: "all" = every layer of
 * feature_analysis.json) and k of steer.k:
 *   <lang>_L<L>_targeted_k<k>         the first k features of that
 *                                     language's ranking
 *   <lang>_L<L>_random<j>_k<k>        j = 1..steer.random_controls: k features
 *                                     drawn at random, matched to the
 *                                     targeted set's firing frequency
 *   <lang>_L<L>_other_k<k>            the other language's first k features
 * each edited with steer.mode (analysis/steer.h) at layer L only.
 *
 * Frequency matching: every latent's log10 firing density (SAE
 * sparsity.safetensors) falls into a bin of width 0.5 decades; for each
 * targeted feature, in ranking order, one latent is drawn uniformly from
 * its bin among those neither targeted nor drawn before for this set;
 * an exhausted bin widens to the nearest bins (±1, ±2, ...). The RNG of a
 * set is seeded from the config seed and the condition name, so sets do
 * not depend on which conditions ran before.
 *
 * Images: the samples of steer.split (first steer.max_samples of them when
 * > 0), in sample order. Prompts are built as extract builds them: the
 * row's english_prompt / arabic_prompt, or extract.default_prompt_* when
 * empty, in the IT chat prompt with the image (caption.h). Greedy, eos
 * from generation_config.json, steer.max_new_tokens, steer.precision.
 *
 * Measures per caption (docs/results/steering_experiments.md): male and
 * female word counts (analysis/lexicon.h whole-word matcher), neutral (both
 * 0), length (generated tokens, the stop id not counted), and against the
 * same language's baseline caption b_1..b_T of that image: kl = mean over
 * t of KL(P_steered(·|prompt, b_<t) ‖ P_base(·|prompt, b_<t)) (teacher
 * forcing, softmax over the ids generation may pick, < vocab_limit),
 * delta_loglik = Σ_t log P_steered(b_t|…) − Σ_t log P_base(b_t|…), and
 * chrf = chrF(steered caption, baseline caption) (textmetrics.h).
 *
 * Resume: each condition's captions go to results/steering_captions/
 * <condition>.jsonl, written atomically when the condition is complete; a
 * rerun skips a condition whose file holds one line per planned sample
 * with this run's config_hash (model config, steer section, prompts,
 * feature set), and recomputes it otherwise. The statistics are then
 * computed from the files and results/steering_experiments.json is
 * written atomically. Output bytes depend only on the config and inputs.
 */
#ifndef SC_PIPELINE_STEER_H
#define SC_PIPELINE_STEER_H

#include <stdint.h>

#include "pipeline/config.h"

typedef struct sc_steer_summary {
  int64_t n_samples;    /* images per condition */
  int n_conditions;     /* planned */
  int n_run;            /* computed by this run */
  int n_skipped;        /* found complete on disk */
  char *results_path;   /* owned: <output_dir>/results/steering_experiments.json */
} sc_steer_summary;

/* Runs the stage. Errors (one line, file or key named): SC_ERR_IO
 * "<path>: missing; run `saecap prepare` / `saecap analyze` first";
 * SC_ERR_ARG "<config>: model.path is required by steer", "<config>:
 * steer.languages: 'x' is not en or ar", "<config>: steer.layers: layer L
 * is not in <feature_analysis.json>", "<config>: steer.k: 'x' is not a
 * positive integer", "<config>: steer.mode: ...", those of the SAE loader
 * and an_steer_add (width or layer not matching the model), "<sae>: hook
 * names layer M, feature_analysis.json says L"; SC_ERR_FORMAT for a
 * malformed feature_analysis.json or sparsity file; those of the model,
 * images and writers; SC_ERR_NOMEM. *out is zeroed first. */
int sc_steer_run(const sc_config *cfg, sc_steer_summary *out);
void sc_steer_summary_free(sc_steer_summary *s);

#endif
