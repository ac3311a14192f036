/* extract.h: the `extract` stage: prepared samples -> captions and stored
 * residual streams (issue 6; on-disk format in docs/store.md).
 *
 * For each sample of <output_dir>/data/processed/samples.jsonl (or the I-th
 * of N contiguous slices of it), in sample order:
 *  - the image is preprocessed and run through the vision tower once; a
 *    run of samples on the same image (same image_index) reuses it, so the
 *    English and the Arabic prompt (and every further row on the image)
 *    see the same projector rows;
 *  - per language of extract.languages: the IT chat prompt with the image
 *    and the row's english_prompt / arabic_prompt (extract.default_prompt_*
 *    when that is empty; never a caption) is captioned greedily
 *    (extract.max_new_tokens, eos from generation_config.json), and
 *    resid_post at every layer of extract.layers is captured over the
 *    prompt and every generated token (the last one too) by one forward per
 *    step that serves all layers;
 *  - the rows go to activations/<lang>/layer_<L>/ through store writers
 *    (segment 0 image soft tokens, 1 other prompt tokens, 2 generated),
 *    the caption to captions/<lang>.jsonl.
 * Resume is the store's: every writer restarts from its manifest, the stage
 * from the smallest resume point, so an interrupted run (kill -9 included)
 * rerun with the same config ends with the same bytes as an uninterrupted
 * one. Everything is checked (samples, model, layers, languages) before the
 * first output is opened, so bad input leaves existing outputs untouched.
 *
 * Slices: --shard I/N takes rows [n·(I-1)/N, n·I/N) of samples.jsonl and
 * writes under <output_dir>/activations.part-I-of-N/ and
 * <output_dir>/captions.part-I-of-N/ (N = 1: activations/, captions/).
 * Read the N activation directories of one language and layer in order with
 * store_reader_open, and concatenate the caption files in order, to get
 * exactly the rows and lines of a single run.
 */
#ifndef SC_EXTRACT_H
#define SC_EXTRACT_H

#include <stdint.h>

#include "pipeline/config.h"

#define SC_EXTRACT_MAX_LANGS 2

typedef struct sc_extract_opts {
  int shard;    /* 1..n_shards */
  int n_shards; /* >= 1; 1 = every sample */
} sc_extract_opts;

typedef struct sc_extract_summary {
  int64_t n_samples;    /* samples in the slice */
  int64_t n_run;        /* samples computed by this run (the others were already stored) */
  int64_t vision_runs;  /* vision tower forwards by this run */
  int64_t rows;         /* rows handed to the writers by this run (all languages, layers) */
  int n_langs, n_layers;
  char *activations_dir; /* owned: <output_dir>/activations[.part-I-of-N] */
  char *captions_dir;    /* owned: <output_dir>/captions[.part-I-of-N] */
  /* Wall seconds of this run (monotonic clock): */
  double seconds;         /* the sample loop and the final shards (not the loading) */
  double store_append_s;  /* store writers' appends: filtering, bf16 rounding into buffers */
  double store_shard_s;   /* store writers' shard cuts: files, fsync, checksums, manifests */
  double captions_s;      /* caption lines decoded and committed */
  int64_t shard_bytes;    /* shard file bytes written by this run */
} sc_extract_summary;

/* Runs the stage for cfg (model.path is required). Errors (one line, the
 * file or key named): SC_ERR_IO "<output_dir>/data/processed/samples.jsonl:
 * missing; run `saecap prepare` first"; those of reading samples.jsonl,
 * of the model, vision tower,
 * tokenizer, images and store writers (a manifest written with another
 * model or settings: "<dir>/manifest.json: was written with ...");
 * SC_ERR_ARG "<config>: extract.layers: layer 'L' is out of range [0, N-1]",
 * "<config>: extract.languages: 'x' is not en or ar" (or repeated),
 * "<config>: extract.drop_segments: 'x' is not image, prompt or caption",
 * "<config>: model.path is required by extract", "<config>:
 * extract.rows_per_shard must be >= 1", "extract: --shard I/N ...";
 * SC_ERR_NOMEM. *out is zeroed first; on error nothing is owned. */
int sc_extract_run(const sc_config *cfg, const sc_extract_opts *o, sc_extract_summary *out);
void sc_extract_summary_free(sc_extract_summary *s);

#endif
