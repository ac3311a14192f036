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

typedef enum sc_sae_arch_cfg { SC_ARCH_TOPK = 0, SC_ARCH_BATCHTOPK = 1, SC_ARCH_RELU = 2 } sc_sae_arch_cfg;
/* Which prepared split a stage reads (order as prepare.h's sc_split, plus all). */
typedef enum sc_split_cfg { SC_CFG_SPLIT_TRAIN = 0, SC_CFG_SPLIT_VAL = 1, SC_CFG_SPLIT_TEST = 2, SC_CFG_SPLIT_ALL = 3 } sc_split_cfg;

/* saecap train / sae-eval (sae/, pipeline/train). */
typedef struct sc_config_train {
  char *layers;                /* train.layers: "all" (every extracted layer) or "0,5" */
  char *languages;             /* train.languages: rows of these languages train one SAE */
  int per_language;            /* train.per_language: one SAE per language instead */
  char *segments;              /* train.segments: "image,prompt,caption" rows trained on */
  sc_sae_arch_cfg architecture; /* train.architecture: topk | batchtopk | relu */
  uint64_t d_sae;              /* train.d_sae: latents */
  uint64_t k;                  /* train.k: active latents (topk, batchtopk) */
  double l1_coefficient;       /* train.l1_coefficient: relu λ */
  double lr;                   /* train.lr: 0 = 2e-4/sqrt(d_sae/2^14) */
  uint64_t batch_size;         /* train.batch_size: rows per step */
  uint64_t steps;              /* train.steps */
  uint64_t warmup_steps;       /* train.warmup_steps */
  uint64_t shuffle_buffer;     /* train.shuffle_buffer: rows mixed before batching */
  uint64_t checkpoint_every;   /* train.checkpoint_every: steps between trainer_state writes */
  sc_config_precision precision; /* train.precision: encoder GEMM f32 | bf16 */
  sc_split_cfg eval_split;     /* train.eval_split: held-out split for sae-eval */
  uint64_t eval_max_rows;      /* train.eval_max_rows: 0 = all */
  int ce_loss;                 /* train.ce_loss: sae-eval measures CE loss recovered */
} sc_config_train;

/* saecap analyze (analysis/). */
typedef struct sc_config_analyze {
  char *layers;                /* analyze.layers: "all" or "0,5" */
  char *segments;              /* analyze.segments: segments pooled per sample, first is primary */
  uint64_t bootstrap;          /* analyze.bootstrap: resamples for CIs */
  uint64_t permutations;       /* analyze.permutations: label permutations for nulls */
  uint64_t folds;              /* analyze.folds: probe cross-validation folds */
  double probe_c;              /* analyze.probe_c: LIBLINEAR C */
  double fdr;                  /* analyze.fdr: Benjamini-Hochberg level */
  uint64_t top_k;              /* analyze.top_k: top gender features per language */
  uint64_t min_per_label;      /* analyze.min_per_label: fewer samples of a label: skip */
  int exclude_leaky_prompts;   /* analyze.exclude_leaky_prompts: drop prompts naming a gender */
  uint64_t card_examples;      /* analyze.card_examples: samples per feature card */
  double ci;                   /* analyze.ci: confidence level of every CI */
  sc_split_cfg feature_split;  /* analyze.feature_split: samples RQ2 ranks features on */
} sc_config_analyze;

/* saecap steer (analysis/steer, pipeline/steer). */
typedef struct sc_config_steer {
  char *layers;                /* steer.layers: "all" (every SAE layer) or "0,5" */
  char *languages;             /* steer.languages */
  char *k;                     /* steer.k: feature-set sizes, e.g. "10,50,100" */
  char *mode;                  /* steer.mode: ablate | scale:A | clamp:V | add:C */
  uint64_t random_controls;    /* steer.random_controls: random sets per condition */
  sc_split_cfg split;          /* steer.split: images captioned */
  uint64_t max_samples;        /* steer.max_samples: 0 = all of the split */
  uint64_t max_new_tokens;     /* steer.max_new_tokens */
  uint64_t bootstrap;          /* steer.bootstrap */
  uint64_t permutations;       /* steer.permutations */
  sc_config_precision precision; /* steer.precision: decoder f32 | bf16 */
} sc_config_steer;

/* saecap report (report/). */
typedef struct sc_config_report {
  char *title;                 /* report.title */
  uint64_t feature_cards;      /* report.feature_cards: cards per language and layer */
} sc_config_report;

/* saecap slurm (pipeline/slurm). */
typedef struct sc_config_slurm {
  char *partition;             /* slurm.partition ("" = cluster default) */
  char *account;               /* slurm.account ("" = none) */
  char *time;                  /* slurm.time: per job, [D-]HH:MM:SS */
  char *mem;                   /* slurm.mem: per job, e.g. 32G */
  uint64_t cpus;               /* slurm.cpus: per task */
  uint64_t gpus;               /* slurm.gpus: per task (extract, steer) */
  uint64_t extract_shards;     /* slurm.extract_shards: extract array size */
  char *saecap;                /* slurm.saecap: the saecap binary the jobs run ("" = this one) */
} sc_config_slurm;

typedef struct sc_config {
  char *source;        /* file it was loaded from (owned) */
  char *output_dir;    /* output_dir: every stage writes under it */
  uint64_t seed;       /* seed: every stochastic step derives from it */
  sc_config_model model;
  sc_config_data data;
  sc_config_extract extract;
  sc_config_train train;
  sc_config_analyze analyze;
  sc_config_steer steer;
  sc_config_report report;
  sc_config_slurm slurm;
} sc_config;

/* Fills defaults (strings NULL where there is no sensible default). */
void sc_config_defaults(sc_config *c);
/* Parses YAML text; `name` is used in messages. On error *c is freed. */
int sc_config_parse(const char *buf, size_t len, const char *name, sc_config *c);
/* Reads and parses a file; also checks required keys are present. */
int sc_config_load(const char *path, sc_config *c);
/* The resolved config as YAML: every key of the schema in schema order,
 * defaults filled, nested by section, one "key: value" a line (strings
 * double-quoted, lists as [a, b]); parsing it gives the same config. With
 * section non-empty (e.g. "train" or "data.split") only the keys under it.
 * Stages hash it (pipeline/stage). malloc'd; NULL when out of memory. */
char *sc_config_yaml(const sc_config *c, const char *section);
/* Calls fn(user, item) on each item of a comma-joined list key ("" and NULL
 * have none), stopping at the first non-zero return, which it returns.
 * Items are cut at SC_CONFIG_ITEM_MAX - 1 bytes (list items are languages,
 * layers, segments and numbers: anything longer is invalid anyway). */
#define SC_CONFIG_ITEM_MAX 64
int sc_config_list_each(const char *list, int (*fn)(void *user, const char *item), void *user);
/* Frees the strings; safe on a zeroed or half-filled config. */
void sc_config_free(sc_config *c);

#endif
