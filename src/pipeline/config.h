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

typedef struct sc_config {
  char *source;        /* file it was loaded from (owned) */
  char *output_dir;    /* output_dir: every stage writes under it */
  uint64_t seed;       /* seed: every stochastic step derives from it */
  sc_config_model model;
  sc_config_data data;
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
