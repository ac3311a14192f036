/* writer.h: the activation store's shard writer, one per (language, layer).
 *
 * Typical use by the extraction stage:
 *
 *   store_writer_config c = store_writer_config_default();
 *   c.dir = "out/activations/en/layer_12"; c.language = "en"; c.layer = 12;
 *   c.d = 2560; c.model_path = ...; c.config_hash = ...; c.prompt = ...;
 *   store_writer *w; store_writer_open(&w, &c);       // creates or resumes
 *   int64_t from = store_writer_resume_sample(w);     // first sample to do
 *   for each sample s >= from (increasing sample_index):
 *     store_writer_begin_sample(w, s);
 *     store_writer_append(w, acts, n, position, token_id, segment);  // any times
 *     store_writer_end_sample(w);                     // may cut a shard
 *   store_writer_finish(w);                           // last shard, complete
 *   store_writer_free(w);
 *
 * Shard rule: a shard always ends at a sample boundary. Rows are buffered;
 * when a sample ends and the buffer holds >= rows_per_shard rows, the buffer
 * becomes shard_<k>.safetensors (written atomically) and only then is it
 * listed in manifest.json (also atomic). A sample is never split: one with
 * more rows than rows_per_shard goes whole into one larger shard (the buffer
 * grows to hold it, up to max_buffer_bytes). So the shard boundaries depend
 * only on the sequence of samples and their rows, and a run that was killed
 * and resumed writes byte-identical files to one that was not.
 *
 * Resume: opening a directory that has a manifest checks that it was written
 * with the same settings (language, layer, d, dtype, model_path, config_hash,
 * prompt, rows_per_shard), checks each listed shard's size, deletes *.tmp
 * files and shard files the manifest does not list, and sets the resume point
 * to the manifest's next_sample. Samples below the resume point passed to
 * begin_sample are accepted and ignored, so a caller driving several writers
 * (layers) may restart all of them from the smallest resume point.
 *
 * Memory: the buffer holds at most rows_per_shard - 1 rows plus one sample,
 * stored in the output dtype (bf16 halves it). Errors (disk full, unwritable
 * folder) leave the committed shards and manifest valid; the writer is then
 * failed and every later call returns SC_ERR_IO with the same message.
 */
#ifndef SC_STORE_WRITER_H
#define SC_STORE_WRITER_H

#include <stddef.h>
#include <stdint.h>

#include "store/manifest.h"
#include "tensor/dtype.h"

#define STORE_DEFAULT_ROWS_PER_SHARD 65536
#define STORE_DEFAULT_MAX_BUFFER_BYTES ((size_t)4 << 30)

typedef struct store_writer_config {
  const char *dir;            /* activations/<lang>/layer_<L>; created if missing */
  const char *language;       /* "en", "ar", ... (recorded, checked on resume) */
  int layer;                  /* 0..STORE_MAX_LAYER */
  int d;                      /* row width, 1..STORE_MAX_D */
  sc_dtype dtype;             /* SC_DTYPE_BF16 (default) or SC_DTYPE_F32 */
  int64_t rows_per_shard;     /* cut a shard at the first sample end at or past this */
  size_t max_buffer_bytes;    /* a sample that would grow the buffer past this is an error */
  const char *model_path;     /* recorded; "" if NULL */
  const char *config_hash;    /* recorded and checked on resume; "" if NULL */
  const char *prompt;         /* recorded; "" if NULL */
  const char *saecap_version; /* recorded; "" if NULL */
  int checksum;               /* 1: record an FNV-1a 64 of each shard file */
  /* Write-time row filter: rows whose segment bit is clear in keep_segments
   * (bit 1 << STORE_SEG_*) or whose token id is in drop_tokens are dropped. */
  unsigned keep_segments;
  const int32_t *drop_tokens; /* (n_drop_tokens), borrowed until open returns */
  int n_drop_tokens;
} store_writer_config;

typedef struct store_writer store_writer;

/* bf16, 65536 rows per shard, 4 GiB buffer limit, checksums on, every
 * segment kept; the strings and dir are NULL and must be set. */
store_writer_config store_writer_config_default(void);

/* Creates dir (mkdir -p) or resumes it (see above). Errors: SC_ERR_ARG (bad
 * config), SC_ERR_IO (folder not creatable, file not deletable), and the
 * manifest's errors; a manifest written with other settings is SC_ERR_ARG
 * "<dir>/manifest.json: was written with <field> X, this run has Y". */
int store_writer_open(store_writer **out, const store_writer_config *cfg);
/* Frees without finishing: buffered rows are lost, committed shards stay,
 * and a later open resumes after them. NULL is a no-op. */
void store_writer_free(store_writer *w);

/* First sample_index the caller must produce: the manifest's next_sample
 * (0 for a fresh directory). */
int64_t store_writer_resume_sample(const store_writer *w);
/* 1 if the manifest says the directory is complete (a finished run). */
int store_writer_is_complete(const store_writer *w);

/* Starts sample s. s must be greater than every sample begun before
 * (SC_ERR_ARG otherwise). If s is below the resume point or the directory is
 * complete, the sample's rows are ignored. */
int store_writer_begin_sample(store_writer *w, int64_t sample_index);
/* Appends n rows of the current sample: acts (n, d) f32, and per row
 * position, token_id, segment (STORE_SEG_*; others are SC_ERR_ARG). Rows the
 * write-time filter drops are not stored. */
int store_writer_append(store_writer *w, const float *acts, int64_t n, const int32_t *position,
                        const int32_t *token_id, const uint8_t *segment);
/* Ends the current sample; cuts a shard if the buffer is full. */
int store_writer_end_sample(store_writer *w);
/* Writes the remaining rows (if any) as the last shard and marks the
 * manifest complete. A sample still open is an error (SC_ERR_ARG). */
int store_writer_finish(store_writer *w);

/* Counters for progress and tests. */
int64_t store_writer_rows_written(const store_writer *w);   /* in committed shards */
int64_t store_writer_rows_buffered(const store_writer *w);
int store_writer_n_shards(const store_writer *w);
/* Bytes of the row buffer currently allocated. */
size_t store_writer_buffer_bytes(const store_writer *w);

/* Where the writer's time went since open (monotonic wall seconds; a clock
 * read per call, so cheap enough to be always on). */
typedef struct store_writer_stats {
  double append_s;     /* store_writer_append: filtering and bf16 rounding into the buffer */
  double shard_s;      /* cutting shards: file written and synced, checksum, manifest */
  int64_t shard_bytes; /* bytes of the shard files this writer wrote */
  int shards;          /* shards this writer wrote (not counting resumed ones) */
} store_writer_stats;
store_writer_stats store_writer_get_stats(const store_writer *w);

#endif
