/* reader.h: reading stored activations (training, analysis).
 *
 * store_reader_open maps the shards of one or more activation directories
 * (e.g. activations/en/layer_12 and activations/ar/layer_12), validates every
 * shard against its manifest and the directories against each other, applies
 * a row filter once, and then presents the kept rows as one sequence with
 * global row indices 0 .. n_rows-1: directory by directory in the order
 * given, shard by shard, row by row. Rows come back as f32 (bf16 widened
 * exactly) in caller buffers, by range, by index list (for a shuffle buffer)
 * or through a cursor whose position the caller can save and restore.
 *
 *   store_filter f = store_filter_default();
 *   f.segments = 1u << STORE_SEG_CAPTION;             // caption tokens only
 *   f.split_of = split; f.n_split_of = n; f.splits = 1u << SC_SPLIT_TRAIN;
 *   f.exclude_tokens = bos_ids; f.n_exclude_tokens = 1;
 *   store_reader *r; store_reader_open(&r, dirs, 2, &f);
 *   for (int64_t got; !store_reader_next(r, buf, meta, 4096, &got) && got > 0;) ...
 *   store_reader_free(r);
 *
 * Memory: shards stay in the mmap; the reader holds per shard the list of
 * kept rows (4 bytes a kept row) only when a filter removes some.
 * Every error names the file (and the row where there is one).
 */
#ifndef SC_STORE_READER_H
#define SC_STORE_READER_H

#include <stddef.h>
#include <stdint.h>

#include "store/manifest.h"

typedef struct store_filter {
  unsigned segments;              /* bits 1 << STORE_SEG_*; 0 = every segment */
  const int32_t *exclude_tokens;  /* (n_exclude_tokens) token ids to skip (BOS, ...) */
  int n_exclude_tokens;
  const int8_t *split_of;         /* (n_split_of) split per sample_index (SC_SPLIT_*,
                                     -1 = none), or NULL for no split filter */
  int64_t n_split_of;
  unsigned splits;                /* bits 1 << split kept when split_of is set */
  int allow_incomplete;           /* 1: read a directory whose run has not finished */
} store_filter;

/* What a row is; dir is the index of its directory in the open call. */
typedef struct store_row_meta {
  int64_t sample_index;
  int32_t position;
  int32_t token_id;
  uint8_t segment;
  int16_t dir;
} store_row_meta;

typedef struct store_reader store_reader;

/* Every row, complete directories only. */
store_filter store_filter_default(void);

/* Opens n_dirs directories (1..64) with an optional filter (NULL = keep all;
 * borrowed only during the call). Errors, each naming the file:
 * SC_ERR_IO / manifest errors; SC_ERR_FORMAT when a shard disagrees with
 * its manifest (missing tensor, dtype, shape, rows, sample range, size,
 * metadata) or holds an unknown segment; SC_ERR_ARG when directories have
 * different d, or a directory is incomplete and allow_incomplete is 0;
 * SC_ERR_RANGE when a sample_index has no entry in split_of. */
int store_reader_open(store_reader **out, const char *const *dirs, int n_dirs,
                      const store_filter *filter);
void store_reader_free(store_reader *r);

int64_t store_reader_n_rows(const store_reader *r);  /* rows kept by the filter */
int store_reader_d(const store_reader *r);
/* The manifest of directory i (owned by the reader). */
const store_manifest *store_reader_manifest(const store_reader *r, int i);

/* Rows [i0, i1) into out (i1-i0, d); meta (i1-i0) may be NULL.
 * SC_ERR_RANGE unless 0 <= i0 <= i1 <= n_rows. */
int store_reader_read(store_reader *r, int64_t i0, int64_t i1, float *out, store_row_meta *meta);
/* Rows idx[0..n) (any order, repeats allowed) into out (n, d); meta may be NULL. */
int store_reader_gather(store_reader *r, const int64_t *idx, int64_t n, float *out,
                        store_row_meta *meta);

/* Cursor: reads up to max rows from the cursor, advances it, sets *got
 * (0 at the end). tell/seek save and restore it (seek: 0..n_rows). */
int store_reader_next(store_reader *r, float *out, store_row_meta *meta, int64_t max, int64_t *got);
int64_t store_reader_tell(const store_reader *r);
int store_reader_seek(store_reader *r, int64_t pos);

/* Recomputes each shard file's checksum and compares it with the manifest
 * (shards written without one are skipped). SC_ERR_FORMAT names the file. */
int store_reader_verify(store_reader *r);

/* malloc'd "<root>/activations/<lang>/layer_<L>"; NULL when out of memory. */
char *store_layer_dir(const char *root, const char *language, int layer);

#endif
