/* merge.h: joins the outputs of `saecap extract --shard I/N` (I = 1..N)
 * into the layout of a single run (`saecap merge-shards`, the SLURM chain's
 * step between the extract array and training).
 *
 * For each language and layer, the rows of activations.part-1-of-N ..
 * part-N-of-N are fed in order, sample by sample (every sample index from 0
 * to the last part's next_sample, as extract does), through a store writer
 * opened with the parts' manifest settings, so activations/<lang>/layer_<L>/
 * gets exactly the shards and manifest a single `saecap extract` writes. The
 * caption parts are re-added line by line to captions/<lang>.jsonl the same
 * way. A part that is missing or incomplete (its array task failed or still
 * runs) is an error naming it; nothing downstream reads a partial merge
 * (the writers' own resume makes a rerun continue). Merged folders already
 * complete are left as they are. With remove_parts, the part folders are
 * deleted once everything is merged.
 */
#ifndef SC_MERGE_H
#define SC_MERGE_H

#include <stdint.h>

#include "pipeline/config.h"

typedef struct sc_merge_summary {
  int n_dirs;        /* (language, layer) folders merged by this call */
  int64_t rows;      /* rows written by this call */
  int64_t captions;  /* caption lines written by this call */
} sc_merge_summary;

/* n_shards >= 1 (1: nothing to merge). Errors name the part folder or file:
 * SC_ERR_MISSING "<dir>: missing; run `saecap extract --shard I/N`",
 * SC_ERR_ARG "<dir>: incomplete ..." or parts written with other settings,
 * the store's errors. */
int sc_merge_shards(const sc_config *cfg, int n_shards, int remove_parts, sc_merge_summary *out);

#endif
