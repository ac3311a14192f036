/* samples.h: loading the prepare stage's samples.jsonl for the store.
 *
 * samples.jsonl (see README, Outputs) holds one JSON object per sample; the
 * store needs four fields of each: sample_index, split, ground_truth_gender
 * and image_id (for the split filter of reader.h, the captions file and
 * image-grouped statistics). Other fields are ignored. Parsing takes bytes
 * so the fuzzer can feed memory. Lines must have strictly increasing
 * sample_index; blank lines are skipped. Every error names the file and the
 * 1-based line: "samples.jsonl: line 3: unknown split 'dev'".
 */
#ifndef SC_STORE_SAMPLES_H
#define SC_STORE_SAMPLES_H

#include <stddef.h>
#include <stdint.h>

#define STORE_MAX_SAMPLES_BYTES ((size_t)1 << 30)
/* Largest split_of array store_samples_split_of makes. */
#define STORE_MAX_SPLIT_OF ((int64_t)1 << 31)

typedef struct store_sample {
  int64_t sample_index;  /* 0 <= sample_index <= STORE_MAX_SAMPLE */
  int split;             /* SC_SPLIT_* (pipeline/prepare.h) */
  int label;             /* SC_LABEL_* (pipeline/prepare.h) */
  char *image_id;        /* owned */
} store_sample;

typedef struct store_samples {
  int64_t n;
  store_sample *rows;    /* (n), sample_index increasing */
} store_samples;

/* Parses buf[0..len); `name` is used in messages. On error *out is empty.
 * Errors: SC_ERR_FORMAT (bad JSON, wrong type, unknown split or label,
 * sample_index not increasing), SC_ERR_MISSING, SC_ERR_RANGE, SC_ERR_NOMEM. */
int store_samples_parse(const char *buf, size_t len, const char *name, store_samples *out);
/* Reads and parses a file (at most STORE_MAX_SAMPLES_BYTES). */
int store_samples_load(const char *path, store_samples *out);
void store_samples_free(store_samples *s);

/* malloc'd array (*n = last sample_index + 1) giving each sample_index its
 * split, -1 where no sample has that index: the split_of of reader.h.
 * SC_ERR_RANGE past STORE_MAX_SPLIT_OF. */
int store_samples_split_of(const store_samples *s, int8_t **out, int64_t *n);

#endif
