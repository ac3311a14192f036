/* manifest.h: the manifest.json of one activation directory
 * (activations/<lang>/layer_<L>/), see docs/store.md.
 *
 * The manifest is the only source of truth about which shard files are
 * complete: a shard is written atomically first and listed here second, so
 * a file that is not listed is a leftover of an interrupted run. The writer
 * (writer.h) produces it, the reader (reader.h) validates shards against it.
 * Parsing takes bytes (store_manifest_parse) so the fuzzer can feed memory;
 * every value is range-checked and every error names the file and field.
 */
#ifndef SC_STORE_MANIFEST_H
#define SC_STORE_MANIFEST_H

#include <stddef.h>
#include <stdint.h>

#include "tensor/dtype.h"

#define STORE_FORMAT "saecap-activations"
#define STORE_FORMAT_VERSION 1
#define STORE_MANIFEST_NAME "manifest.json"
/* Sanity limits on values read from a manifest (larger is "malformed"). */
#define STORE_MAX_D (1 << 20)
#define STORE_MAX_SHARDS (1 << 20)
#define STORE_MAX_LAYER 4096
#define STORE_MAX_SAMPLE ((int64_t)1 << 52)
#define STORE_MAX_MANIFEST_BYTES ((size_t)256 << 20)

/* Row segments: where the token of a row came from. */
enum { STORE_SEG_IMAGE = 0, STORE_SEG_PROMPT = 1, STORE_SEG_CAPTION = 2, STORE_N_SEGMENTS };

typedef struct store_shard_info {
  char *file;            /* owned: "shard_00000.safetensors" (a plain name) */
  int64_t rows;          /* rows in the shard, >= 1 */
  int64_t first_sample;  /* sample_index of the first row */
  int64_t last_sample;   /* sample_index of the last row */
  int64_t end_sample;    /* resume point after this shard: last sample the
                            writer had finished when it cut the shard, + 1 */
  int64_t bytes;         /* file size */
  uint64_t checksum;     /* FNV-1a 64 of the whole file; valid if has_checksum */
  int has_checksum;
} store_shard_info;

typedef struct store_manifest {
  char *saecap_version;  /* owned strings, never NULL after parse */
  char *language;
  char *model_path;
  char *config_hash;
  char *prompt;
  int layer;             /* 0 <= layer <= STORE_MAX_LAYER */
  int d;                 /* row width, 1 <= d <= STORE_MAX_D */
  sc_dtype dtype;        /* SC_DTYPE_BF16 or SC_DTYPE_F32 */
  int64_t rows_per_shard;
  int64_t total_rows;    /* sum of shards[].rows */
  int64_t next_sample;   /* first sample_index not yet covered */
  int complete;          /* set by store_writer_finish */
  int n_shards;
  store_shard_info *shards;  /* (n_shards), in write order */
} store_manifest;

/* Parses manifest text. `name` is used in messages ("<name>: ..."). Checks
 * the format tag and version, every field's type and range, shard file
 * names (shard_*.safetensors, no path separators, unique), shard sample
 * ranges increasing and non-overlapping, and total_rows == sum of rows.
 * On error *out is zeroed and nothing is owned. Errors: SC_ERR_FORMAT,
 * SC_ERR_RANGE, SC_ERR_MISSING, SC_ERR_NOMEM. */
int store_manifest_parse(const char *buf, size_t len, const char *name, store_manifest *out);
/* Reads <dir>/manifest.json. SC_ERR_IO if it cannot be read. */
int store_manifest_load(const char *dir, store_manifest *out);
/* malloc'd manifest text (stable key order, no time stamps, so equal
 * manifests print to equal bytes); NULL when out of memory. */
char *store_manifest_print(const store_manifest *m);
/* Frees the owned fields and zeroes *m. Safe on a zeroed manifest. */
void store_manifest_free(store_manifest *m);

/* FNV-1a 64 of n bytes, continuing from h (start with STORE_FNV_INIT). */
#define STORE_FNV_INIT 0xcbf29ce484222325ULL
uint64_t store_fnv1a64(uint64_t h, const void *data, size_t n);

#endif
