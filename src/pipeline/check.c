/* check.c: semantic checks of a study config (see check.h). */
#include "pipeline/check.h"

#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "base/error.h"
#include "base/fs.h"
#include "io/yaml.h"
#include "model/g3_config.h"

#define CHECK_MAX_LAYERS G3_MAX_LAYERS
#define CHECK_CONFIG_MAX_BYTES ((size_t)1 << 20)

/* Line of a dotted key in the YAML tree (nested or dotted spellings), 0 if
 * the file does not set it. */
static int key_line(const sc_yaml_node *map, const char *path) {
  if (!map || map->kind != SC_YAML_MAP) return 0;
  for (int i = 0; i < map->n; i++) {
    size_t n = strlen(map->keys[i]);
    if (strncmp(map->keys[i], path, n)) continue;
    if (!path[n]) return map->key_lines[i];
    if (path[n] == '.') {
      int l = key_line(map->vals[i], path + n + 1);
      if (l) return l;
    }
  }
  return 0;
}

typedef struct check_ctx {
  const sc_config *c;
  sc_yaml_node *root; /* the file again, for line numbers; may be NULL */
} check_ctx;

static int fail(const check_ctx *x, int code, const char *key, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

static int fail(const check_ctx *x, int code, const char *key, const char *fmt, ...) {
  char msg[512];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(msg, sizeof msg, fmt, ap);
  va_end(ap);
  int line = key_line(x->root, key);
  if (line) return sc_error_setc(code, "%s: line %d: %s: %s", x->c->source, line, key, msg);
  return sc_error_setc(code, "%s: %s (default): %s", x->c->source, key, msg);
}

/* Calls fn on each comma-separated item of list (items are non-empty). */
static int each_item(const char *list, int (*fn)(const char *item, void *arg), void *arg) {
  char item[128];
  for (const char *p = list; p && *p;) {
    const char *e = strchr(p, ',');
    size_t n = e ? (size_t)(e - p) : strlen(p);
    if (n >= sizeof item) n = sizeof item - 1;
    memcpy(item, p, n);
    item[n] = 0;
    int rc = fn(item, arg);
    if (rc) return rc;
    p += (e ? (size_t)(e - p) + 1 : n);
  }
  return 0;
}

/* ==== lists ==== */

typedef struct names_arg {
  const check_ctx *x;
  const char *key;
  const char *const *allowed; /* NULL-terminated */
  unsigned seen;
  int count;
} names_arg;

static int name_item(const char *item, void *p) {
  names_arg *a = p;
  int i = 0;
  while (a->allowed[i] && strcmp(a->allowed[i], item)) i++;
  if (!a->allowed[i]) {
    char want[128] = "";
    for (int j = 0; a->allowed[j]; j++)
      snprintf(want + strlen(want), sizeof want - strlen(want), "%s%s", j ? " | " : "", a->allowed[j]);
    return fail(a->x, SC_ERR_ARG, a->key, "'%s' is not one of %s", item, want);
  }
  if (a->seen & (1u << i)) return fail(a->x, SC_ERR_ARG, a->key, "'%s' is listed twice", item);
  a->seen |= 1u << i;
  a->count++;
  return 0;
}

static int check_names(const check_ctx *x, const char *key, const char *list, const char *const *allowed,
                       int may_be_empty) {
  names_arg a = {x, key, allowed, 0, 0};
  int rc = each_item(list, name_item, &a);
  if (!rc && !a.count && !may_be_empty) rc = fail(x, SC_ERR_ARG, key, "the list is empty");
  return rc;
}

static const char *const LANGS[] = {"en", "ar", NULL};
static const char *const SEGMENTS[] = {"image", "prompt", "caption", NULL};

typedef struct ints_arg {
  const check_ctx *x;
  const char *key;
  int n_layers; /* bound, or 0 = unknown */
  int *out, cap, n;
  long long lo;
} ints_arg;

static int int_item(const char *item, void *p) {
  ints_arg *a = p;
  char *end;
  errno = 0;
  long long v = strtoll(item, &end, 10);
  if (errno || *end || end == item || v < a->lo || v > 1000000)
    return fail(a->x, SC_ERR_ARG, a->key, "'%s' is not %s", item,
                a->lo ? "an integer >= 1" : "'all' or a layer number");
  if (a->n_layers && v >= a->n_layers)
    return fail(a->x, SC_ERR_ARG, a->key, "layer %lld is out of range [0, %d] (model.path has %d layers)",
                v, a->n_layers - 1, a->n_layers);
  for (int i = 0; i < a->n; i++)
    if (a->out[i] == v) return fail(a->x, SC_ERR_ARG, a->key, "%lld is listed twice", v);
  if (a->n >= a->cap) return fail(a->x, SC_ERR_ARG, a->key, "more than %d entries", a->cap);
  a->out[a->n++] = (int)v;
  return 0;
}

static int layers_of(const check_ctx *x, const char *key, const char *list, int n_layers, int *out, int *n) {
  *n = 0;
  if (list && !strcmp(list, "all")) {
    for (int i = 0; i < n_layers; i++) out[i] = i;
    *n = n_layers;
    return 0;
  }
  ints_arg a = {x, key, n_layers, out, CHECK_MAX_LAYERS, 0, 0};
  int rc = each_item(list, int_item, &a);
  if (!rc && !a.n) rc = fail(x, SC_ERR_ARG, key, "the list is empty");
  *n = a.n;
  return rc;
}

int sc_config_layer_list(const char *list, int n_layers, const char *key, int *layers, int cap, int *n) {
  sc_config c = {.source = (char *)"config"};
  check_ctx x = {&c, NULL};
  int tmp[CHECK_MAX_LAYERS], m = 0;
  int rc = layers_of(&x, key, list, n_layers, tmp, &m);
  if (!rc && m > cap) rc = sc_error_setc(SC_ERR_ARG, "%s: more than %d layers", key, cap);
  if (!rc) memcpy(layers, tmp, (size_t)m * sizeof *tmp);
  *n = rc ? 0 : m;
  return rc;
}

/* A stage's layers must have been extracted ("all" = every extracted one). */
static int check_sub_layers(const check_ctx *x, const char *key, const char *list, int n_layers,
                            const int *ex, int n_ex) {
  int l[CHECK_MAX_LAYERS], n;
  if (list && !strcmp(list, "all")) return 0;
  int rc = layers_of(x, key, list, n_layers, l, &n);
  for (int i = 0; !rc && i < n; i++) {
    int found = 0;
    for (int j = 0; j < n_ex; j++) found |= ex[j] == l[i];
    if (!found) rc = fail(x, SC_ERR_ARG, key, "layer %d is not in extract.layers", l[i]);
  }
  return rc;
}

/* ==== steer ==== */

static int check_mode(const check_ctx *x, const char *mode) {
  if (!mode || !strcmp(mode, "ablate")) return 0;
  static const char *const kinds[] = {"scale:", "clamp:", "add:"};
  for (size_t i = 0; i < sizeof kinds / sizeof kinds[0]; i++) {
    size_t n = strlen(kinds[i]);
    if (strncmp(mode, kinds[i], n)) continue;
    char *end;
    errno = 0;
    double v = strtod(mode + n, &end);
    if (end == mode + n || *end || errno || !isfinite(v))
      return fail(x, SC_ERR_ARG, "steer.mode", "'%s': '%s' is not a number", mode, mode + n);
    return 0;
  }
  return fail(x, SC_ERR_ARG, "steer.mode", "'%s' is not ablate, scale:A, clamp:V or add:C", mode);
}

/* ==== slurm ==== */

/* Digits of exactly the given count range; advances *p. */
static int take_num(const char **p, int min_digits, int max_digits, long *v) {
  const char *s = *p;
  int n = 0;
  *v = 0;
  while (*s >= '0' && *s <= '9' && n < max_digits) *v = *v * 10 + (*s++ - '0'), n++;
  if (n < min_digits) return -1;
  *p = s;
  return 0;
}

/* [D-]HH:MM:SS; 0 or a reason. */
static const char *time_problem(const char *t) {
  const char *p = t;
  long d = -1, h, m, s;
  const char *dash = strchr(t, '-');
  if (dash) {
    if (take_num(&p, 1, 4, &d) || p != dash) return "is not [D-]HH:MM:SS";
    p++;
  }
  if (take_num(&p, 1, 4, &h) || *p++ != ':' || take_num(&p, 2, 2, &m) || *p++ != ':' ||
      take_num(&p, 2, 2, &s) || *p)
    return "is not [D-]HH:MM:SS";
  if (m >= 60 || s >= 60) return "has minutes or seconds past 59";
  if (d >= 0 && h >= 24) return "has hours past 23 next to days";
  if (d <= 0 && h == 0 && m == 0 && s == 0) return "is zero";
  return NULL;
}

/* <digits>[K|M|G|T]; 0 or a reason. */
static const char *mem_problem(const char *m) {
  const char *p = m;
  long v;
  if (take_num(&p, 1, 9, &v)) return "is not a size like 32G or 500M";
  if (*p && strchr("KMGTkmgt", *p)) p++;
  if (*p) return "is not a size like 32G or 500M";
  if (v == 0) return "is zero";
  return NULL;
}

static int check_word(const check_ctx *x, const char *key, const char *v) {
  for (const char *p = v; p && *p; p++)
    if (!((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') || (*p >= '0' && *p <= '9') ||
          strchr("_.,-", *p)))
      return fail(x, SC_ERR_ARG, key, "'%s' may hold only letters, digits and _ . , -", v);
  return 0;
}

static int check_slurm(const check_ctx *x) {
  const sc_config_slurm *s = &x->c->slurm;
  const char *why = NULL;
  if (!s->time || (why = time_problem(s->time)))
    return fail(x, SC_ERR_ARG, "slurm.time", "'%s' %s", s->time ? s->time : "", s->time ? why : "is not set");
  if (!s->mem || (why = mem_problem(s->mem)))
    return fail(x, SC_ERR_ARG, "slurm.mem", "'%s' %s", s->mem ? s->mem : "", s->mem ? why : "is not set");
  int rc = check_word(x, "slurm.partition", s->partition);
  if (!rc) rc = check_word(x, "slurm.account", s->account);
  if (!rc && s->saecap && *s->saecap && access(s->saecap, X_OK))
    rc = fail(x, SC_ERR_ARG, "slurm.saecap", "'%s' is not an executable file", s->saecap);
  return rc;
}

/* ==== the whole config ==== */

static int check_paths(const check_ctx *x, int *n_layers) {
  const sc_config *c = x->c;
  *n_layers = 0;
  if (!c->data.captions_csv || !sc_is_file(c->data.captions_csv))
    return fail(x, SC_ERR_MISSING, "data.captions_csv", "'%s' is not a file", c->data.captions_csv);
  if (!c->data.images_dir || !sc_is_dir(c->data.images_dir))
    return fail(x, SC_ERR_MISSING, "data.images_dir", "'%s' is not a folder", c->data.images_dir);
  if (!c->model.path || !*c->model.path)
    return fail(x, SC_ERR_MISSING, "model.path", "not set; extract, sae-eval and steer need the checkpoint");
  if (!sc_is_dir(c->model.path))
    return fail(x, SC_ERR_MISSING, "model.path", "'%s' is not a folder", c->model.path);
  char *cj = sc_path_join(c->model.path, "config.json");
  if (!cj) return sc_error_setc(SC_ERR_NOMEM, "out of memory");
  int has = sc_is_file(cj);
  free(cj);
  if (!has) return fail(x, SC_ERR_MISSING, "model.path", "'%s' has no config.json", c->model.path);
  g3_config g;
  if (g3_config_load(c->model.path, &g)) {
    char msg[400];
    snprintf(msg, sizeof msg, "%s", sc_error_get());
    return fail(x, SC_ERR_FORMAT, "model.path", "%s", msg);
  }
  *n_layers = g.text.num_hidden_layers;
  return 0;
}

static int check_all(const check_ctx *x) {
  const sc_config *c = x->c;
  int n_layers, ex[CHECK_MAX_LAYERS], n_ex;
  int rc = check_paths(x, &n_layers);
  if (!rc) rc = check_names(x, "extract.languages", c->extract.languages, LANGS, 0);
  if (!rc) rc = check_names(x, "train.languages", c->train.languages, LANGS, 0);
  if (!rc) rc = check_names(x, "steer.languages", c->steer.languages, LANGS, 0);
  if (!rc) rc = check_names(x, "extract.drop_segments", c->extract.drop_segments, SEGMENTS, 1);
  if (!rc) rc = check_names(x, "train.segments", c->train.segments, SEGMENTS, 0);
  if (!rc) rc = check_names(x, "analyze.segments", c->analyze.segments, SEGMENTS, 0);
  if (!rc) rc = layers_of(x, "extract.layers", c->extract.layers, n_layers, ex, &n_ex);
  if (!rc) rc = check_sub_layers(x, "train.layers", c->train.layers, n_layers, ex, n_ex);
  if (!rc) rc = check_sub_layers(x, "analyze.layers", c->analyze.layers, n_layers, ex, n_ex);
  if (!rc) rc = check_sub_layers(x, "steer.layers", c->steer.layers, n_layers, ex, n_ex);
  if (!rc) {
    int k[CHECK_MAX_LAYERS];
    ints_arg a = {x, "steer.k", 0, k, CHECK_MAX_LAYERS, 0, 1};
    rc = each_item(c->steer.k, int_item, &a);
  }
  if (!rc) rc = check_mode(x, c->steer.mode);
  if (!rc && c->train.architecture != SC_ARCH_RELU && c->train.k > c->train.d_sae)
    rc = fail(x, SC_ERR_ARG, "train.k", "%llu is more than train.d_sae (%llu)",
              (unsigned long long)c->train.k, (unsigned long long)c->train.d_sae);
  if (!rc) rc = check_slurm(x);
  return rc;
}

int sc_config_check(const sc_config *c) {
  check_ctx x = {c, NULL};
  char *buf = NULL;
  size_t len = 0;
  /* Only for line numbers: the config was parsed from this file already. */
  if (c->source && !sc_read_file(c->source, CHECK_CONFIG_MAX_BYTES, &buf, &len) &&
      sc_yaml_parse(buf, len, c->source, &x.root))
    x.root = NULL;
  free(buf);
  sc_error_clear();
  int rc = check_all(&x);
  sc_yaml_free(x.root);
  return rc;
}
