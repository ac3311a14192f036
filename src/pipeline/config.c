/* config.c: the study configuration (see config.h), checked against one
 * schema table.
 *
 * Config reference (YAML; keys nest by the dots, e.g. data: {split: {train: ..}}):
 *
 *   key                 type                    default       notes
 *   output_dir          string                  saecap-out    every stage writes under it
 *   seed                non-negative integer    1234          seeds every stochastic step
 *   model.path          string                  (none)        Hugging Face checkpoint folder
 *   data.captions_csv   string                  (required)    captions.csv of the dataset
 *   data.images_dir     string                  (required)    folder of the images
 *   data.on_bad_row     error | skip            error         what prepare does with a bad row
 *   data.split.train    number in [0, 1]        0.8           train fraction
 *   data.split.val      number in [0, 1]        0.1           validation fraction
 *   data.split.test     number in [0, 1]        0.1           test fraction; the three sum to 1
 *   extract.languages   list of en | ar         [en, ar]      caption languages, in this order
 *   extract.layers      all | list of integers  all           resid_post layers to store
 *   extract.max_new_tokens integer [0, 2^20]    32            caption length limit
 *   extract.dtype       bf16 | f32              bf16          stored activation dtype
 *   extract.rows_per_shard integer [1, 2^40]    65536         rows before a shard is cut
 *   extract.drop_segments list of image | prompt | caption  []   rows not stored
 *   extract.drop_bos    boolean                 false         do not store the <bos> row
 *   extract.precision   f32 | bf16              f32           decoder precision (decoder.h)
 *   extract.default_prompt_en string   "Describe this image in one sentence."  empty rows
 *   extract.default_prompt_ar string   "صف هذه الصورة في جملة واحدة."          empty rows
 *   train.layers        all | list of integers  all           layers to train an SAE for
 *   train.languages     list of en | ar         [en, ar]      rows that train one shared SAE
 *   train.per_language  boolean                 false         one SAE per language instead
 *   train.segments      list of image | prompt | caption  [image, prompt, caption]  rows used
 *   train.architecture  topk | batchtopk | relu topk
 *   train.d_sae         integer [1, 2^24]       16384         latents
 *   train.k             integer [1, 4096]       64            active latents (topk, batchtopk)
 *   train.l1_coefficient number [0, 1e6]        1             relu: L1 x decoder-norm weight
 *   train.lr            number [0, 1]           0             0: 2e-4 / sqrt(d_sae / 2^14)
 *   train.batch_size    integer [1, 2^20]       4096          rows per step
 *   train.steps         integer [1, 2^40]       10000         optimiser steps
 *   train.warmup_steps  integer [0, 2^40]       1000          linear learning-rate warm-up
 *   train.shuffle_buffer integer [1, 2^32]      262144        rows mixed before batching
 *   train.checkpoint_every integer [0, 2^40]    500           steps between resumable states
 *   train.precision     f32 | bf16              f32           encoder GEMM precision
 *   train.eval_split    train | val | test | all  val         rows sae-eval measures
 *   train.eval_max_rows integer [0, 2^40]       0             0: every row of the split
 *   train.ce_loss       boolean                 true          sae-eval: CE loss recovered (runs the model)
 *   analyze.layers      all | list of integers  all           layers analysed
 *   analyze.segments    list of caption | image | prompt  [caption]  pooled segments; first is primary
 *   analyze.bootstrap   integer [1, 10^6]       1000          bootstrap resamples (CIs)
 *   analyze.permutations integer [1, 10^6]      1000          label permutations (nulls)
 *   analyze.folds       integer [2, 100]        5             probe CV folds, grouped by image
 *   analyze.probe_c     number [1e-6, 1e6]      1             LIBLINEAR inverse regularisation
 *   analyze.fdr         number [0, 1]           0.05          Benjamini-Hochberg level
 *   analyze.top_k       integer [1, 2^20]       20            top gender features per language
 *   analyze.min_per_label integer [1, 2^20]     5             fewer of a label: the test is skipped
 *   analyze.exclude_leaky_prompts boolean       true          drop rows whose prompt names a gender
 *   analyze.card_examples integer [0, 1000]     5             top samples per feature card
 *   analyze.ci          number [0.5, 0.9999]    0.95          confidence level of every CI
 *   analyze.feature_split train | val | test | all  train     samples RQ2 tests and ranks
 *                       features on (steering evaluates on steer.split: keep them apart)
 *   steer.layers        all | list of integers  all           layers steered (one SAE each)
 *   steer.languages     list of en | ar         [en, ar]
 *   steer.k             list of integers        [10, 50, 100] targeted feature-set sizes
 *   steer.mode          ablate | scale:A | clamp:V | add:C   ablate   the edit
 *   steer.random_controls integer [0, 10^4]     25            random feature sets per condition
 *   steer.split         train | val | test | all  test        images captioned
 *   steer.max_samples   integer [0, 2^40]       0             0: every sample of the split
 *   steer.max_new_tokens integer [0, 2^20]      32            caption length limit
 *   steer.bootstrap     integer [1, 10^6]       1000          bootstrap resamples
 *   steer.permutations  integer [1, 10^6]       1000          permutation test resamples
 *   steer.precision     f32 | bf16              f32           decoder precision
 *   report.title        string   "saecap: gender in Gemma-3 captions, English and Arabic"
 *   report.feature_cards integer [0, 1000]      5             cards per language and layer
 *   slurm.partition     string                  ""            "" = the cluster's default
 *   slurm.account       string                  ""            "" = none
 *   slurm.time          string                  04:00:00      per job, [D-]HH:MM:SS
 *   slurm.mem           string                  32G           per job
 *   slurm.cpus          integer [1, 1024]       8             CPUs per task
 *   slurm.gpus          integer [0, 64]         0             GPUs per extract/steer task
 *   slurm.extract_shards integer [1, 10^5]      4             extract job-array size
 *   slurm.saecap        string                  ""            binary the jobs run ("" = this one)
 *
 * A list key takes a YAML sequence ([en, ar]) or one string ("en,ar");
 * either is stored comma-joined.
 *
 * Scalars follow the YAML 1.2 core schema: integers are decimal digits with
 * an optional sign; numbers also take a fraction and exponent; booleans are
 * true/false (any of the three capitalisations); null, ~ or nothing leaves
 * the key at its default. A quoted scalar is always a string, so seed: "1"
 * is a type error. Unknown keys are errors, so a typo never passes silently.
 *
 * To add a key: a field in sc_config (config.h) and one row in KEYS below.
 */
#include "pipeline/config.h"

#include <errno.h>
#include <math.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/error.h"
#include "base/fs.h"
#include "io/yaml.h"
#include "model/caption.h"

/* Config files are small; anything larger is a mistake. */
#define CONFIG_MAX_BYTES ((size_t)1 << 20)
/* How far the split fractions may stray from summing to 1. */
#define SPLIT_SUM_TOL 1e-6
/* Longest dotted key path handled (longer ones are unknown keys anyway). */
#define KEY_PATH_MAX 256

typedef enum cfg_type { CFG_STRING, CFG_UINT, CFG_NUMBER, CFG_ENUM, CFG_BOOL, CFG_LIST } cfg_type;

/* One schema row: where a key lives, how it is read and what it defaults to. */
typedef struct cfg_key {
  const char *path;            /* dotted path, e.g. "data.split.train" */
  cfg_type type;
  size_t offset;               /* of the field in sc_config */
  const char *dflt;            /* default as YAML text; NULL: none */
  int required;                /* sc_config_load refuses a config without it */
  double lo, hi;               /* CFG_NUMBER: allowed range, inclusive */
  uint64_t umax;               /* CFG_UINT: largest allowed value (lo is the smallest) */
  const char *const *choices;  /* CFG_ENUM: names, NULL-terminated; index = value */
} cfg_key;

static const char *const BAD_ROW_CHOICES[] = {"error", "skip", NULL};
static const char *const STORE_DTYPE_CHOICES[] = {"bf16", "f32", NULL};
static const char *const PRECISION_CHOICES[] = {"f32", "bf16", NULL};
static const char *const ARCH_CHOICES[] = {"topk", "batchtopk", "relu", NULL};
static const char *const SPLIT_CHOICES[] = {"train", "val", "test", "all", NULL};

#define OFF(field) offsetof(sc_config, field)

static const cfg_key KEYS[] = {
    {"output_dir", CFG_STRING, OFF(output_dir), "saecap-out", 0, 0, 0, 0, NULL},
    {"seed", CFG_UINT, OFF(seed), "1234", 0, 0, 0, UINT64_MAX, NULL},
    {"model.path", CFG_STRING, OFF(model.path), NULL, 0, 0, 0, 0, NULL},
    {"data.captions_csv", CFG_STRING, OFF(data.captions_csv), NULL, 1, 0, 0, 0, NULL},
    {"data.images_dir", CFG_STRING, OFF(data.images_dir), NULL, 1, 0, 0, 0, NULL},
    {"data.on_bad_row", CFG_ENUM, OFF(data.on_bad_row), "error", 0, 0, 0, 0, BAD_ROW_CHOICES},
    {"data.split.train", CFG_NUMBER, OFF(data.split_train), "0.8", 0, 0.0, 1.0, 0, NULL},
    {"data.split.val", CFG_NUMBER, OFF(data.split_val), "0.1", 0, 0.0, 1.0, 0, NULL},
    {"data.split.test", CFG_NUMBER, OFF(data.split_test), "0.1", 0, 0.0, 1.0, 0, NULL},
    {"extract.languages", CFG_LIST, OFF(extract.languages), "en,ar", 0, 0, 0, 0, NULL},
    {"extract.layers", CFG_LIST, OFF(extract.layers), "all", 0, 0, 0, 0, NULL},
    {"extract.max_new_tokens", CFG_UINT, OFF(extract.max_new_tokens), "32", 0, 0, 0, G3_MAX_NEW_TOKENS, NULL},
    {"extract.dtype", CFG_ENUM, OFF(extract.dtype), "bf16", 0, 0, 0, 0, STORE_DTYPE_CHOICES},
    {"extract.rows_per_shard", CFG_UINT, OFF(extract.rows_per_shard), "65536", 0, 0, 0,
     (uint64_t)1 << 40, NULL},
    {"extract.drop_segments", CFG_LIST, OFF(extract.drop_segments), "", 0, 0, 0, 0, NULL},
    {"extract.drop_bos", CFG_BOOL, OFF(extract.drop_bos), "false", 0, 0, 0, 0, NULL},
    {"extract.precision", CFG_ENUM, OFF(extract.precision), "f32", 0, 0, 0, 0, PRECISION_CHOICES},
    {"extract.default_prompt_en", CFG_STRING, OFF(extract.default_prompt_en),
     G3_CAPTION_PROMPT_EN, 0, 0, 0, 0, NULL},
    {"extract.default_prompt_ar", CFG_STRING, OFF(extract.default_prompt_ar), G3_CAPTION_PROMPT_AR,
     0, 0, 0, 0, NULL},
    {"train.layers", CFG_LIST, OFF(train.layers), "all", 0, 0, 0, 0, NULL},
    {"train.languages", CFG_LIST, OFF(train.languages), "en,ar", 0, 0, 0, 0, NULL},
    {"train.per_language", CFG_BOOL, OFF(train.per_language), "false", 0, 0, 0, 0, NULL},
    {"train.segments", CFG_LIST, OFF(train.segments), "image,prompt,caption", 0, 0, 0, 0, NULL},
    {"train.architecture", CFG_ENUM, OFF(train.architecture), "topk", 0, 0, 0, 0, ARCH_CHOICES},
    {"train.d_sae", CFG_UINT, OFF(train.d_sae), "16384", 0, 1, 0, (uint64_t)1 << 24, NULL},
    {"train.k", CFG_UINT, OFF(train.k), "64", 0, 1, 0, 4096, NULL},
    {"train.l1_coefficient", CFG_NUMBER, OFF(train.l1_coefficient), "1", 0, 0.0, 1e6, 0, NULL},
    {"train.lr", CFG_NUMBER, OFF(train.lr), "0", 0, 0.0, 1.0, 0, NULL},
    {"train.batch_size", CFG_UINT, OFF(train.batch_size), "4096", 0, 1, 0, (uint64_t)1 << 20, NULL},
    {"train.steps", CFG_UINT, OFF(train.steps), "10000", 0, 1, 0, (uint64_t)1 << 40, NULL},
    {"train.warmup_steps", CFG_UINT, OFF(train.warmup_steps), "1000", 0, 0, 0, (uint64_t)1 << 40, NULL},
    {"train.shuffle_buffer", CFG_UINT, OFF(train.shuffle_buffer), "262144", 0, 1, 0, (uint64_t)1 << 32,
     NULL},
    {"train.checkpoint_every", CFG_UINT, OFF(train.checkpoint_every), "500", 0, 0, 0,
     (uint64_t)1 << 40, NULL},
    {"train.precision", CFG_ENUM, OFF(train.precision), "f32", 0, 0, 0, 0, PRECISION_CHOICES},
    {"train.eval_split", CFG_ENUM, OFF(train.eval_split), "val", 0, 0, 0, 0, SPLIT_CHOICES},
    {"train.eval_max_rows", CFG_UINT, OFF(train.eval_max_rows), "0", 0, 0, 0, (uint64_t)1 << 40, NULL},
    {"train.ce_loss", CFG_BOOL, OFF(train.ce_loss), "true", 0, 0, 0, 0, NULL},
    {"analyze.layers", CFG_LIST, OFF(analyze.layers), "all", 0, 0, 0, 0, NULL},
    {"analyze.segments", CFG_LIST, OFF(analyze.segments), "caption", 0, 0, 0, 0, NULL},
    {"analyze.bootstrap", CFG_UINT, OFF(analyze.bootstrap), "1000", 0, 1, 0, 1000000, NULL},
    {"analyze.permutations", CFG_UINT, OFF(analyze.permutations), "1000", 0, 1, 0, 1000000, NULL},
    {"analyze.folds", CFG_UINT, OFF(analyze.folds), "5", 0, 2, 0, 100, NULL},
    {"analyze.probe_c", CFG_NUMBER, OFF(analyze.probe_c), "1", 0, 1e-6, 1e6, 0, NULL},
    {"analyze.fdr", CFG_NUMBER, OFF(analyze.fdr), "0.05", 0, 0.0, 1.0, 0, NULL},
    {"analyze.top_k", CFG_UINT, OFF(analyze.top_k), "20", 0, 1, 0, (uint64_t)1 << 20, NULL},
    {"analyze.min_per_label", CFG_UINT, OFF(analyze.min_per_label), "5", 0, 1, 0, (uint64_t)1 << 20,
     NULL},
    {"analyze.exclude_leaky_prompts", CFG_BOOL, OFF(analyze.exclude_leaky_prompts), "true", 0, 0, 0, 0,
     NULL},
    {"analyze.card_examples", CFG_UINT, OFF(analyze.card_examples), "5", 0, 0, 0, 1000, NULL},
    {"analyze.ci", CFG_NUMBER, OFF(analyze.ci), "0.95", 0, 0.5, 0.9999, 0, NULL},
    {"analyze.feature_split", CFG_ENUM, OFF(analyze.feature_split), "train", 0, 0, 0, 0, SPLIT_CHOICES},
    {"steer.layers", CFG_LIST, OFF(steer.layers), "all", 0, 0, 0, 0, NULL},
    {"steer.languages", CFG_LIST, OFF(steer.languages), "en,ar", 0, 0, 0, 0, NULL},
    {"steer.k", CFG_LIST, OFF(steer.k), "10,50,100", 0, 0, 0, 0, NULL},
    {"steer.mode", CFG_STRING, OFF(steer.mode), "ablate", 0, 0, 0, 0, NULL},
    {"steer.random_controls", CFG_UINT, OFF(steer.random_controls), "25", 0, 0, 0, 10000, NULL},
    {"steer.split", CFG_ENUM, OFF(steer.split), "test", 0, 0, 0, 0, SPLIT_CHOICES},
    {"steer.max_samples", CFG_UINT, OFF(steer.max_samples), "0", 0, 0, 0, (uint64_t)1 << 40, NULL},
    {"steer.max_new_tokens", CFG_UINT, OFF(steer.max_new_tokens), "32", 0, 0, 0, G3_MAX_NEW_TOKENS, NULL},
    {"steer.bootstrap", CFG_UINT, OFF(steer.bootstrap), "1000", 0, 1, 0, 1000000, NULL},
    {"steer.permutations", CFG_UINT, OFF(steer.permutations), "1000", 0, 1, 0, 1000000, NULL},
    {"steer.precision", CFG_ENUM, OFF(steer.precision), "f32", 0, 0, 0, 0, PRECISION_CHOICES},
    {"report.title", CFG_STRING, OFF(report.title),
     "saecap: gender in Gemma-3 captions, English and Arabic", 0, 0, 0, 0, NULL},
    {"report.feature_cards", CFG_UINT, OFF(report.feature_cards), "5", 0, 0, 0, 1000, NULL},
    {"slurm.partition", CFG_STRING, OFF(slurm.partition), "", 0, 0, 0, 0, NULL},
    {"slurm.account", CFG_STRING, OFF(slurm.account), "", 0, 0, 0, 0, NULL},
    {"slurm.time", CFG_STRING, OFF(slurm.time), "04:00:00", 0, 0, 0, 0, NULL},
    {"slurm.mem", CFG_STRING, OFF(slurm.mem), "32G", 0, 0, 0, 0, NULL},
    {"slurm.cpus", CFG_UINT, OFF(slurm.cpus), "8", 0, 1, 0, 1024, NULL},
    {"slurm.gpus", CFG_UINT, OFF(slurm.gpus), "0", 0, 0, 0, 64, NULL},
    {"slurm.extract_shards", CFG_UINT, OFF(slurm.extract_shards), "4", 0, 1, 0, 100000, NULL},
    {"slurm.saecap", CFG_STRING, OFF(slurm.saecap), "", 0, 0, 0, 0, NULL},
};

#define N_KEYS (sizeof KEYS / sizeof KEYS[0])

/* Enum fields are written through an int. */
_Static_assert(sizeof(sc_bad_row_policy) == sizeof(int), "enum fields must be int-sized");
_Static_assert(sizeof(sc_store_dtype) == sizeof(int), "enum fields must be int-sized");
_Static_assert(sizeof(sc_config_precision) == sizeof(int), "enum fields must be int-sized");
_Static_assert(sizeof(sc_sae_arch_cfg) == sizeof(int), "enum fields must be int-sized");
_Static_assert(sizeof(sc_split_cfg) == sizeof(int), "enum fields must be int-sized");

/* ==== scalar syntax (YAML 1.2 core schema) ==== */

static int is_null_text(const char *s) {
  return !*s || !strcmp(s, "~") || !strcmp(s, "null") || !strcmp(s, "Null") || !strcmp(s, "NULL");
}

static int is_null(const sc_yaml_node *v) {
  return v->kind == SC_YAML_SCALAR && !v->quoted && is_null_text(v->scalar);
}

static const char *digits(const char *s) {
  while (*s >= '0' && *s <= '9') s++;
  return s;
}

/* [-+]?[0-9]+. Returns 0 and the value, 1 if syntax is fine but the value
 * is negative or past 2^64-1, -1 if it is not an integer. */
static int parse_uint(const char *s, uint64_t *out) {
  int neg = *s == '-';
  if (*s == '-' || *s == '+') s++;
  const char *e = digits(s);
  if (e == s || *e) return -1;
  uint64_t v = 0;
  for (; s < e; s++) {
    unsigned d = (unsigned)(*s - '0');
    if (v > (UINT64_MAX - d) / 10) return 1;
    v = v * 10 + d;
  }
  if (neg && v) return 1;
  *out = v;
  return 0;
}

/* [-+]?(\.[0-9]+|[0-9]+(\.[0-9]*)?)([eE][-+]?[0-9]+)?. Returns 0, 1 for a
 * number too large for a double, -1 if it is not a number. */
static int parse_number(const char *s, double *out) {
  const char *p = s;
  if (*p == '-' || *p == '+') p++;
  const char *int_end = digits(p);
  const char *frac_end = *int_end == '.' ? digits(int_end + 1) : int_end;
  if (int_end == p && frac_end <= int_end + 1) return -1;
  p = frac_end;
  if (*p == 'e' || *p == 'E') {
    p++;
    if (*p == '-' || *p == '+') p++;
    const char *exp_end = digits(p);
    if (exp_end == p) return -1;
    p = exp_end;
  }
  if (*p) return -1;
  errno = 0;
  char *end;
  double v = strtod(s, &end);
  if (*end) return -1; /* a locale whose decimal point is not '.' */
  if (errno == ERANGE && fabs(v) > 1.0) return 1;
  *out = v;
  return 0;
}

static int parse_bool(const char *s, int *out) {
  if (!strcmp(s, "true") || !strcmp(s, "True") || !strcmp(s, "TRUE")) *out = 1;
  else if (!strcmp(s, "false") || !strcmp(s, "False") || !strcmp(s, "FALSE")) *out = 0;
  else return -1;
  return 0;
}

static int enum_index(const cfg_key *k, const char *s) {
  for (int i = 0; k->choices[i]; i++)
    if (!strcmp(k->choices[i], s)) return i;
  return -1;
}

/* ==== fields ==== */

static void *field(sc_config *c, const cfg_key *k) { return (char *)c + k->offset; }

static void string_replace(sc_config *c, const cfg_key *k, char *s) {
  char **f = field(c, k);
  free(*f);
  *f = s;
}

/* Sets the key to its default. Only a string copy can fail (NOMEM). The
 * defaults are trusted text, checked by the tests. */
static int key_default(sc_config *c, const cfg_key *k) {
  int b = 0;
  switch (k->type) {
  case CFG_LIST:
  case CFG_STRING: {
    char *s = k->dflt ? strdup(k->dflt) : NULL;
    string_replace(c, k, s);
    return k->dflt && !s ? SC_ERR_NOMEM : 0;
  }
  case CFG_UINT: parse_uint(k->dflt, field(c, k)); return 0;
  case CFG_NUMBER: parse_number(k->dflt, field(c, k)); return 0;
  case CFG_ENUM: *(int *)field(c, k) = enum_index(k, k->dflt); return 0;
  case CFG_BOOL: parse_bool(k->dflt, &b); *(int *)field(c, k) = b; return 0;
  }
  return 0;
}

void sc_config_defaults(sc_config *c) {
  memset(c, 0, sizeof *c);
  for (size_t i = 0; i < N_KEYS; i++) key_default(c, &KEYS[i]);
}

int sc_config_list_each(const char *list, int (*fn)(void *user, const char *item), void *user) {
  char item[SC_CONFIG_ITEM_MAX];
  for (const char *p = list ? list : ""; *p;) {
    size_t n = strcspn(p, ",");
    snprintf(item, sizeof item, "%.*s", (int)(n < sizeof item - 1 ? n : sizeof item - 1), p);
    int rc = fn(user, item);
    if (rc) return rc;
    p += n + (p[n] == ',');
  }
  return 0;
}

void sc_config_free(sc_config *c) {
  if (!c) return;
  for (size_t i = 0; i < N_KEYS; i++)
    if (KEYS[i].type == CFG_STRING || KEYS[i].type == CFG_LIST) string_replace(c, &KEYS[i], NULL);
  free(c->source);
  c->source = NULL;
}

/* ==== messages ==== */

/* What a key expects, for "expected ..." messages. */
static void type_name(const cfg_key *k, char *buf, size_t n) {
  switch (k->type) {
  case CFG_STRING: snprintf(buf, n, "a string"); return;
  case CFG_UINT: snprintf(buf, n, "a non-negative integer"); return;
  case CFG_NUMBER: snprintf(buf, n, "a number"); return;
  case CFG_BOOL: snprintf(buf, n, "true or false"); return;
  case CFG_LIST: snprintf(buf, n, "a list of strings or one string"); return;
  case CFG_ENUM: break;
  }
  size_t used = (size_t)snprintf(buf, n, "one of");
  for (int i = 0; k->choices[i] && used < n; i++)
    used += (size_t)snprintf(buf + used, n - used, "%s %s", i ? "," : "", k->choices[i]);
}

/* What a node holds, for "got ..." messages. */
static void node_desc(const sc_yaml_node *v, char *buf, size_t n) {
  if (v->kind == SC_YAML_MAP) snprintf(buf, n, "a mapping");
  else if (v->kind == SC_YAML_SEQ) snprintf(buf, n, "a sequence");
  else if (v->quoted) snprintf(buf, n, "'%.64s' (quoted, so a string)", v->scalar);
  else snprintf(buf, n, "'%.64s'", v->scalar);
}

static int wrong_type(const char *file, const cfg_key *k, const sc_yaml_node *v) {
  char want[128], got[128];
  type_name(k, want, sizeof want);
  node_desc(v, got, sizeof got);
  return sc_error_setc(SC_ERR_FORMAT, "%s: line %d: %s: expected %s, got %s", file, v->line,
                       k->path, want, got);
}

static int out_of_range(const char *file, const cfg_key *k, const sc_yaml_node *v) {
  if (k->type == CFG_UINT)
    return sc_error_setc(SC_ERR_RANGE, "%s: line %d: %s: %.64s is out of range [%.0f, %llu]", file,
                         v->line, k->path, v->scalar, k->lo, (unsigned long long)k->umax);
  return sc_error_setc(SC_ERR_RANGE, "%s: line %d: %s: %.64s is out of range [%g, %g]", file,
                       v->line, k->path, v->scalar, k->lo, k->hi);
}

static int not_a_choice(const char *file, const cfg_key *k, const sc_yaml_node *v) {
  char want[128];
  type_name(k, want, sizeof want);
  return sc_error_setc(SC_ERR_RANGE, "%s: line %d: %s: '%.64s' is not allowed, expected %s", file,
                       v->line, k->path, v->scalar, want);
}

/* ==== setting a key from YAML ==== */

static int set_string(sc_config *c, const cfg_key *k, const sc_yaml_node *v, const char *file) {
  char *s = strdup(v->scalar);
  if (!s) return sc_error_setc(SC_ERR_NOMEM, "%s: out of memory", file);
  string_replace(c, k, s);
  return 0;
}

static int set_uint(sc_config *c, const cfg_key *k, const sc_yaml_node *v, const char *file) {
  uint64_t u = 0;
  int r = v->quoted ? -1 : parse_uint(v->scalar, &u);
  if (r < 0) return wrong_type(file, k, v);
  if (r > 0 || u > k->umax || (double)u < k->lo) return out_of_range(file, k, v);
  *(uint64_t *)field(c, k) = u;
  return 0;
}

static int set_number(sc_config *c, const cfg_key *k, const sc_yaml_node *v, const char *file) {
  double d = 0;
  int r = v->quoted ? -1 : parse_number(v->scalar, &d);
  if (r < 0) return wrong_type(file, k, v);
  if (r > 0 || !(d >= k->lo && d <= k->hi)) return out_of_range(file, k, v);
  *(double *)field(c, k) = d;
  return 0;
}

/* Enum names are strings, so quoted or not both count. */
static int set_enum(sc_config *c, const cfg_key *k, const sc_yaml_node *v, const char *file) {
  int i = enum_index(k, v->scalar);
  if (i < 0) return not_a_choice(file, k, v);
  *(int *)field(c, k) = i;
  return 0;
}

static int set_bool(sc_config *c, const cfg_key *k, const sc_yaml_node *v, const char *file) {
  int b;
  if (v->quoted || parse_bool(v->scalar, &b)) return wrong_type(file, k, v);
  *(int *)field(c, k) = b;
  return 0;
}

/* A sequence of scalars, each without a comma, stored comma-joined; an
 * empty sequence is "". */
static int set_list(sc_config *c, const cfg_key *k, const sc_yaml_node *v, const char *file) {
  size_t len = 1;
  for (int i = 0; i < v->n; i++) {
    const sc_yaml_node *e = v->vals[i];
    if (e->kind != SC_YAML_SCALAR || strchr(e->scalar, ',') || !*e->scalar) return wrong_type(file, k, e);
    len += strlen(e->scalar) + 1;
  }
  char *s = malloc(len);
  if (!s) return sc_error_setc(SC_ERR_NOMEM, "%s: out of memory", file);
  size_t at = 0;
  for (int i = 0; i < v->n; i++) {
    size_t n = strlen(v->vals[i]->scalar);
    if (i) s[at++] = ',';
    memcpy(s + at, v->vals[i]->scalar, n);
    at += n;
  }
  s[at] = 0;
  string_replace(c, k, s);
  return 0;
}

static int key_set(sc_config *c, const cfg_key *k, const sc_yaml_node *v, const char *file) {
  if (is_null(v)) {
    int rc = key_default(c, k);
    return rc ? sc_error_setc(rc, "%s: out of memory", file) : 0;
  }
  if (k->type == CFG_LIST && v->kind == SC_YAML_SEQ) return set_list(c, k, v, file);
  if (v->kind != SC_YAML_SCALAR) return wrong_type(file, k, v);
  switch (k->type) {
  case CFG_LIST:
  case CFG_STRING: return set_string(c, k, v, file);
  case CFG_UINT: return set_uint(c, k, v, file);
  case CFG_NUMBER: return set_number(c, k, v, file);
  case CFG_ENUM: return set_enum(c, k, v, file);
  case CFG_BOOL: return set_bool(c, k, v, file);
  }
  return sc_error_setc(SC_ERR_INTERNAL, "%s: bad schema row for %s", file, k->path);
}

/* ==== walking the tree ==== */

/* State of one parse: the config being filled and where each key was set. */
typedef struct cfg_walk {
  sc_config *c;
  const char *file;
  int line[N_KEYS]; /* (N_KEYS) line of the value that set each key; 0: not set */
} cfg_walk;

static const cfg_key *key_find(const char *path, size_t *index) {
  for (size_t i = 0; i < N_KEYS; i++)
    if (!strcmp(KEYS[i].path, path)) {
      *index = i;
      return &KEYS[i];
    }
  return NULL;
}

/* 1 if some key lies under path (path is a section, like "data.split"). */
static int is_section(const char *path) {
  size_t n = strlen(path);
  for (size_t i = 0; i < N_KEYS; i++)
    if (!strncmp(KEYS[i].path, path, n) && KEYS[i].path[n] == '.') return 1;
  return 0;
}

static int section_walk(cfg_walk *w, const sc_yaml_node *map, const char *prefix);

/* One "key: value" pair, found at `line`, whose full path is `path`. */
static int entry_walk(cfg_walk *w, const char *path, int line, const sc_yaml_node *v) {
  size_t i;
  const cfg_key *k = key_find(path, &i);
  if (k) {
    /* A nested and a dotted spelling of one key in the same file. */
    if (w->line[i])
      return sc_error_setc(SC_ERR_FORMAT, "%s: line %d: duplicate key '%s' (first set on line %d)",
                           w->file, line, path, w->line[i]);
    w->line[i] = v->line;
    return key_set(w->c, k, v, w->file);
  }
  if (!is_section(path))
    return sc_error_setc(SC_ERR_FORMAT, "%s: line %d: unknown key '%.200s'", w->file, line, path);
  if (is_null(v)) return 0; /* "data:" with nothing under it */
  if (v->kind != SC_YAML_MAP) {
    char got[128];
    node_desc(v, got, sizeof got);
    return sc_error_setc(SC_ERR_FORMAT, "%s: line %d: %s: expected a mapping, got %s", w->file,
                         v->line, path, got);
  }
  return section_walk(w, v, path);
}

static int section_walk(cfg_walk *w, const sc_yaml_node *map, const char *prefix) {
  char path[KEY_PATH_MAX];
  for (int i = 0; i < map->n; i++) {
    int n = snprintf(path, sizeof path, "%s%s%s", prefix, *prefix ? "." : "", map->keys[i]);
    if (n < 0 || (size_t)n >= sizeof path)
      return sc_error_setc(SC_ERR_FORMAT, "%s: line %d: unknown key '%.200s...'", w->file,
                           map->key_lines[i], path);
    int rc = entry_walk(w, path, map->key_lines[i], map->vals[i]);
    if (rc) return rc;
  }
  return 0;
}

/* ==== whole-config checks ==== */

static int split_check(const cfg_walk *w) {
  const sc_config_data *d = &w->c->data;
  double sum = d->split_train + d->split_val + d->split_test;
  if (fabs(sum - 1.0) <= SPLIT_SUM_TOL) return 0;
  int line = 0;
  for (size_t i = 0; i < N_KEYS && !line; i++)
    if (!strncmp(KEYS[i].path, "data.split.", 11)) line = w->line[i];
  return sc_error_setc(SC_ERR_RANGE,
                       "%s: line %d: data.split: train + val + test must sum to 1, got %.9g",
                       w->file, line, sum);
}

int sc_config_parse(const char *buf, size_t len, const char *name, sc_config *c) {
  sc_yaml_node *root = NULL;
  cfg_walk w = {.c = c, .file = name};
  sc_config_defaults(c);
  c->source = strdup(name);
  int rc = c->source ? 0 : sc_error_setc(SC_ERR_NOMEM, "%s: out of memory", name);
  for (size_t i = 0; !rc && i < N_KEYS; i++)
    if ((KEYS[i].type == CFG_STRING || KEYS[i].type == CFG_LIST) && KEYS[i].dflt &&
        !*(char **)field(c, &KEYS[i]))
      rc = sc_error_setc(SC_ERR_NOMEM, "%s: out of memory", name); /* a default's copy failed */
  if (!rc) rc = sc_yaml_parse(buf, len, name, &root);
  /* A document that is only "~" has no keys, like an empty one. */
  if (!rc && root->kind != SC_YAML_MAP && !is_null(root)) {
    char got[128];
    node_desc(root, got, sizeof got);
    rc = sc_error_setc(SC_ERR_FORMAT, "%s: line %d: expected a mapping of keys, got %s", name,
                       root->line, got);
  }
  if (!rc && root->kind == SC_YAML_MAP) rc = section_walk(&w, root, "");
  if (!rc) rc = split_check(&w);
  sc_yaml_free(root);
  if (rc) sc_config_free(c);
  return rc;
}

static int required_check(const sc_config *c, const char *file) {
  for (size_t i = 0; i < N_KEYS; i++) {
    if (!KEYS[i].required) continue;
    /* Only strings are required so far; a NULL string is an unset key. */
    if (!*(char *const *)((const char *)c + KEYS[i].offset))
      return sc_error_setc(SC_ERR_MISSING, "%s: missing required key '%s'", file, KEYS[i].path);
  }
  return 0;
}

int sc_config_load(const char *path, sc_config *c) {
  char *buf;
  size_t len;
  memset(c, 0, sizeof *c);
  int rc = sc_read_file(path, CONFIG_MAX_BYTES, &buf, &len);
  if (rc) return rc;
  rc = sc_config_parse(buf, len, path, c);
  free(buf);
  if (!rc && (rc = required_check(c, path))) sc_config_free(c);
  return rc;
}

/* ==== printing (sc_config_yaml) ==== */

/* A growing string; on allocation failure it stays failed (buf NULL). */
typedef struct cfg_out {
  char *buf;
  size_t len, cap;
  int failed;
} cfg_out;

static void out_add(cfg_out *o, const char *s, size_t n) {
  if (o->failed) return;
  if (o->len + n + 1 > o->cap) {
    size_t cap = o->cap ? o->cap : 1024;
    while (cap < o->len + n + 1) cap *= 2;
    char *b = realloc(o->buf, cap);
    if (!b) {
      free(o->buf);
      *o = (cfg_out){.failed = 1};
      return;
    }
    o->buf = b, o->cap = cap;
  }
  memcpy(o->buf + o->len, s, n);
  o->len += n;
  o->buf[o->len] = 0;
}

static void out_str(cfg_out *o, const char *s) { out_add(o, s, strlen(s)); }

/* YAML double-quoted scalar: only '"', '\\' and control bytes escaped, so
 * UTF-8 text stays readable. */
static void out_quoted(cfg_out *o, const char *s) {
  out_add(o, "\"", 1);
  for (; *s; s++) {
    unsigned char ch = (unsigned char)*s;
    char esc[8];
    if (ch == '"' || ch == '\\') snprintf(esc, sizeof esc, "\\%c", ch);
    else if (ch < 0x20 || ch == 0x7f) snprintf(esc, sizeof esc, "\\x%02x", ch);
    /* NEL, LS and PS are line breaks inside YAML quotes: escaped, or a
     * reader would fold them into spaces. */
    else if (ch == 0xc2 && (unsigned char)s[1] == 0x85) snprintf(esc, sizeof esc, "\\N"), s++;
    else if (ch == 0xe2 && (unsigned char)s[1] == 0x80 && ((unsigned char)s[2] == 0xa8 || (unsigned char)s[2] == 0xa9))
      snprintf(esc, sizeof esc, "\\%c", (unsigned char)s[2] == 0xa8 ? 'L' : 'P'), s += 2;
    else {
      out_add(o, s, 1);
      continue;
    }
    out_str(o, esc);
  }
  out_add(o, "\"", 1);
}

/* A list item may go unquoted when YAML reads it back as the same string. */
static int plain_item(const char *s) {
  if (!*s || is_null_text(s)) return 0;
  for (const char *p = s; *p; p++)
    if (!((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') || (*p >= '0' && *p <= '9') ||
          *p == '_' || *p == '-' || *p == '.' || (*p == ':' && p != s && p[1] && p[1] != ' ')))
      return 0;
  return !(parse_bool(s, &(int){0}) == 0);
}

static void out_value(cfg_out *o, const sc_config *c, const cfg_key *k) {
  const void *f = (const char *)c + k->offset;
  char num[64];
  switch (k->type) {
  case CFG_STRING: {
    const char *s = *(char *const *)f;
    if (s) out_quoted(o, s);
    else out_str(o, "null");
    return;
  }
  case CFG_LIST: {
    const char *s = *(char *const *)f;
    /* A list given as one string may hold empty items ("a,,b"), which a
     * sequence cannot: print those as the string. */
    if (s && *s && (*s == ',' || s[strlen(s) - 1] == ',' || strstr(s, ",,"))) {
      out_quoted(o, s);
      return;
    }
    out_str(o, "[");
    for (const char *p = s ? s : ""; *p;) {
      const char *e = strchr(p, ',');
      size_t n = e ? (size_t)(e - p) : strlen(p);
      char *item = strndup(p, n);
      if (!item) {
        free(o->buf);
        *o = (cfg_out){.failed = 1};
        return;
      }
      if (p != s) out_str(o, ", ");
      if (plain_item(item)) out_str(o, item);
      else out_quoted(o, item);
      free(item);
      p += n + (e ? 1 : 0);
    }
    out_str(o, "]");
    return;
  }
  case CFG_UINT: snprintf(num, sizeof num, "%llu", (unsigned long long)*(const uint64_t *)f); break;
  case CFG_NUMBER: {
    /* Shortest %g that reads back to the same double, always with a '.'
     * or exponent so it is never mistaken for an integer. */
    double d = *(const double *)f;
    for (int prec = 1; prec <= 17; prec++) {
      snprintf(num, sizeof num, "%.*g", prec, d);
      if (strtod(num, NULL) == d) break;
    }
    if (!strpbrk(num, ".eEn")) strcat(num, ".0");
    break;
  }
  case CFG_ENUM: snprintf(num, sizeof num, "%s", k->choices[*(const int *)f]); break;
  case CFG_BOOL: snprintf(num, sizeof num, "%s", *(const int *)f ? "true" : "false"); break;
  }
  out_str(o, num);
}

char *sc_config_yaml(const sc_config *c, const char *section) {
  cfg_out o = {0};
  size_t sec_len = section ? strlen(section) : 0;
  const char *prev = "";
  out_str(&o, "");
  for (size_t i = 0; i < N_KEYS; i++) {
    const char *path = KEYS[i].path;
    if (sec_len && (strncmp(path, section, sec_len) || (path[sec_len] && path[sec_len] != '.')))
      continue;
    /* Components shared with the previous key's sections are already open. */
    size_t common = 0, depth = 0;
    for (size_t j = 0; path[j] && path[j] == prev[j]; j++)
      if (path[j] == '.') common = j + 1, depth++;
    const char *p = path + common;
    for (const char *dot; (dot = strchr(p, '.')); p = dot + 1, depth++) {
      for (size_t d = 0; d < depth; d++) out_str(&o, "  ");
      out_add(&o, p, (size_t)(dot - p));
      out_str(&o, ":\n");
    }
    for (size_t d = 0; d < depth; d++) out_str(&o, "  ");
    out_str(&o, p);
    out_str(&o, ": ");
    out_value(&o, c, &KEYS[i]);
    out_str(&o, "\n");
    prev = path;
  }
  return o.failed ? NULL : o.buf;
}
