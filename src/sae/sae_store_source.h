/* sae_store_source.h: the activation store as a shuffled SAE training source.
 *
 * Wraps an open store_reader (store/reader.h: directories of one layer for
 * one or more languages, with its row filter for segments, excluded token
 * ids and the train split already applied) and serves its kept rows in a
 * seeded, shuffled order that never ends (epochs).
 *
 * Shuffle (a shuffle buffer that needs no state beyond a row count):
 *   The kept rows 0..N-1 are cut into chunks of C consecutive rows (C =
 *   clamp(buffer/16, 1, 4096), the last chunk may be shorter). Epoch e
 *   permutes the chunks (Fisher-Yates, rng seeded from (seed, e)); buffer b
 *   of the epoch is the next K = max(1, buffer/C) chunks of that order, and
 *   its rows are served in a second permutation (rng from (seed, e, b)).
 *   So each buffer of ~`buffer` rows mixes K chunks drawn from the whole
 *   store (both languages, every part of the dataset), rows are read in
 *   chunk-contiguous runs of the mmap, and memory is N/C + buffer indices.
 * Cursor (tell/seek): rows served since the start of epoch 0. Everything
 *   above is a pure function of (seed, cursor, N, buffer), so seek() rebuilds
 *   the epoch's chunk order and the current buffer's permutation, and a
 *   resumed run reads exactly the rows an uninterrupted one would.
 */
#ifndef SC_SAE_STORE_SOURCE_H
#define SC_SAE_STORE_SOURCE_H

#include <stdint.h>

#include "sae/sae_source.h"
#include "store/reader.h"

/* Chunk size used for a shuffle buffer of `buffer` rows. */
int64_t sae_store_chunk_rows(int64_t buffer);

/* A source over r's kept rows (r is owned by the source from the call on,
 * also when it fails). buffer >= 1 rows. Errors: SC_ERR_ARG "train: no rows
 * left after the filters (...)" when r keeps no rows, SC_ERR_NOMEM. */
int sae_source_store(sae_source **out, store_reader *r, int64_t buffer, uint64_t seed);

/* Rows kept by the reader (one epoch). */
int64_t sae_source_store_rows(const sae_source *s);
/* The global row index (reader numbering) of the row the cursor `pos` serves;
 * for tests of the shuffle. */
int sae_source_store_row_at(sae_source *s, uint64_t pos, int64_t *row);

#endif
