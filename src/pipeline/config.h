/* config.h: the study configuration (configs/NAME.yaml) as a typed struct.
 *
 * Loaded from YAML with sc_config_load. Each key has a type and a default
 * (listed in sc_config_defaults and in README's config reference); a key
 * that is not in the schema, a value of the wrong type or out of range is
 * an error "<file>: line L: <key>: <problem>". Relative paths are taken
 * relative to the current directory. Later stages add their sections here.
 */
#ifndef SC_CONFIG_H
#define SC_CONFIG_H

#include <stddef.h>
#include <stdint.h>

typedef enum sc_bad_row_policy { SC_BAD_ROW_ERROR = 0, SC_BAD_ROW_SKIP = 1 } sc_bad_row_policy;

typedef struct sc_config_data {
  char *captions_csv;          /* data.captions_csv: path of captions.csv */
  char *images_dir;            /* data.images_dir: folder of the images */
  sc_bad_row_policy on_bad_row; /* data.on_bad_row: error | skip */
  double split_train;          /* data.split.train (fractions sum to 1) */
  double split_val;            /* data.split.val */
  double split_test;           /* data.split.test */
} sc_config_data;

typedef struct sc_config_model {
  char *path; /* model.path: Hugging Face checkpoint folder */
} sc_config_model;

typedef enum sc_store_dtype { SC_STORE_BF16 = 0, SC_STORE_F32 = 1 } sc_store_dtype;
typedef enum sc_config_precision { SC_CONFIG_F32 = 0, SC_CONFIG_BF16 = 1 } sc_config_precision;

/* List keys (extract.languages, extract.layers, extract.drop_segments) take
 * a YAML sequence or one string; either way the field holds the items
 * comma-joined ("en,ar"), and the stage that uses it checks the items. */
typedef struct sc_config_extract {
  char *languages;             /* extract.languages: "en,ar" (each en or ar) */
  char *layers;                /* extract.layers: "all" or "0,5,11" */
  uint64_t max_new_tokens;     /* extract.max_new_tokens: caption length limit */
  sc_store_dtype dtype;        /* extract.dtype: bf16 | f32 stored activations */
  uint64_t rows_per_shard;     /* extract.rows_per_shard: >= 1 */
  char *drop_segments;         /* extract.drop_segments: "" or e.g. "image,prompt" */
  int drop_bos;                /* extract.drop_bos: drop the <bos> row of each prompt */
  sc_config_precision precision; /* extract.precision: f32 | bf16 decoder mode */
  char *default_prompt_en;     /* extract.default_prompt_en: when a row's prompt is empty */
  char *default_prompt_ar;     /* extract.default_prompt_ar */
} sc_config_extract;

typedef struct sc_config {
  char *source;        /* file it was loaded from (owned) */
  char *output_dir;    /* output_dir: every stage writes under it */
  uint64_t seed;       /* seed: every stochastic step derives from it */
  sc_config_model model;
  sc_config_data data;
  sc_config_extract extract;
} sc_config;

/* Fills defaults (strings NULL where there is no sensible default). */
void sc_config_defaults(sc_config *c);
/* Parses YAML text; `name` is used in messages. On error *c is freed. */
int sc_config_parse(const char *buf, size_t len, const char *name, sc_config *c);
/* Reads and parses a file; also checks required keys are present. */
int sc_config_load(const char *path, sc_config *c);
/* Frees the strings; safe on a zeroed or half-filled config. */
void sc_config_free(sc_config *c);

#endif
