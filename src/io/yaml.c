/* yaml.c: YAML text to the sc_yaml_node tree (see yaml.h). The only file
 * that calls libyaml.
 *
 * Built from libyaml's event stream (not its document API) so that anchors,
 * aliases, complex keys and extra documents are refused where they appear,
 * with their line. Nesting is capped so that hostile input cannot exhaust
 * the stack through recursion.
 */
#include "io/yaml.h"

#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <yaml.h>

#include "base/error.h"

/* Deeper nesting than this is taken for a malformed or hostile file. */
#define YAML_MAX_DEPTH 64

#define CORE_TAG "tag:yaml.org,2002:"

typedef struct yreader {
  yaml_parser_t p;
  const char *name; /* for messages */
  const char *buf;  /* the input, to place reader errors */
  size_t len;
  int depth;        /* collections open around the node being read */
} yreader;

static int fail(const yreader *y, const yaml_mark_t *m, const char *problem) {
  return sc_error_setc(SC_ERR_FORMAT, "%s: line %zu: %s", y->name, m->line + 1, problem);
}

/* libyaml's own error: its problem text at its line. Reader errors (bad
 * encoding) carry a byte offset instead of a mark. */
static int fail_libyaml(const yreader *y) {
  const char *problem = y->p.problem ? y->p.problem : "malformed YAML";
  size_t line = y->p.problem_mark.line + 1;
  if (y->p.error == YAML_READER_ERROR) {
    line = 1;
    for (size_t i = 0; i < y->p.problem_offset && i < y->len; i++) line += y->buf[i] == '\n';
  }
  if (y->p.error == YAML_MEMORY_ERROR)
    return sc_error_setc(SC_ERR_NOMEM, "%s: out of memory parsing YAML", y->name);
  return sc_error_setc(SC_ERR_FORMAT, "%s: line %zu: %s", y->name, line, problem);
}

static int next_event(yreader *y, yaml_event_t *ev) {
  if (!yaml_parser_parse(&y->p, ev)) return fail_libyaml(y);
  return 0;
}

/* ==== nodes ==== */

static sc_yaml_node *node_new(sc_yaml_kind kind, const yaml_mark_t *m) {
  sc_yaml_node *n = calloc(1, sizeof *n);
  if (!n) return NULL;
  n->kind = kind;
  n->line = m->line > INT_MAX - 1 ? INT_MAX : (int)m->line + 1;
  n->col = m->column > INT_MAX - 1 ? INT_MAX : (int)m->column + 1;
  return n;
}

void sc_yaml_free(sc_yaml_node *n) {
  if (!n) return;
  for (int i = 0; i < n->n; i++) {
    if (n->keys) free(n->keys[i]);
    if (n->vals) sc_yaml_free(n->vals[i]);
  }
  free(n->scalar);
  free(n->keys);
  free(n->key_lines);
  free(n->vals);
  free(n);
}

const sc_yaml_node *sc_yaml_get(const sc_yaml_node *map, const char *key) {
  if (!map || map->kind != SC_YAML_MAP) return NULL;
  for (int i = 0; i < map->n; i++)
    if (strcmp(map->keys[i], key) == 0) return map->vals[i];
  return NULL;
}

/* Room for one more entry in a map's or sequence's arrays. */
static int node_reserve(sc_yaml_node *n, int *cap) {
  if (n->n < *cap) return 0;
  if (*cap > INT_MAX / 2) return SC_ERR_NOMEM;
  int want = *cap ? *cap * 2 : 8;
  sc_yaml_node **v = realloc(n->vals, (size_t)want * sizeof *v);
  if (!v) return SC_ERR_NOMEM;
  n->vals = v;
  if (n->kind == SC_YAML_MAP) {
    char **k = realloc(n->keys, (size_t)want * sizeof *k);
    if (!k) return SC_ERR_NOMEM;
    n->keys = k;
    int *kl = realloc(n->key_lines, (size_t)want * sizeof *kl);
    if (!kl) return SC_ERR_NOMEM;
    n->key_lines = kl;
  }
  *cap = want;
  return 0;
}

/* ==== events to nodes ==== */

/* Tags: only the core schema's. "!!str" marks a scalar as a string, as
 * quotes do; a collection may only carry its own kind's tag. */
static int check_tag(const yreader *y, const yaml_event_t *ev, const yaml_char_t *tag,
                     const char *own, int *is_str) {
  *is_str = 0;
  if (!tag) return 0;
  const char *t = (const char *)tag;
  if (strncmp(t, CORE_TAG, strlen(CORE_TAG)) == 0) {
    const char *leaf = t + strlen(CORE_TAG);
    *is_str = strcmp(leaf, "str") == 0;
    if (own ? strcmp(leaf, own) == 0
            : (*is_str || !strcmp(leaf, "int") || !strcmp(leaf, "float") ||
               !strcmp(leaf, "bool") || !strcmp(leaf, "null")))
      return 0;
  }
  char msg[160];
  int core = strncmp(t, CORE_TAG, strlen(CORE_TAG)) == 0; /* written as "!!x" */
  snprintf(msg, sizeof msg, "unsupported tag '%s%.100s'", core ? "!!" : "",
           core ? t + strlen(CORE_TAG) : t);
  return fail(y, &ev->start_mark, msg);
}

static int scalar_node(const yreader *y, const yaml_event_t *ev, sc_yaml_node **out) {
  int is_str;
  int rc = check_tag(y, ev, ev->data.scalar.tag, NULL, &is_str);
  if (rc) return rc;
  size_t len = ev->data.scalar.length;
  const char *v = (const char *)ev->data.scalar.value;
  if (memchr(v, '\0', len)) return fail(y, &ev->start_mark, "NUL character in a scalar");
  sc_yaml_node *n = node_new(SC_YAML_SCALAR, &ev->start_mark);
  if (n) n->scalar = malloc(len + 1);
  if (!n || !n->scalar) {
    sc_yaml_free(n);
    return sc_error_setc(SC_ERR_NOMEM, "%s: out of memory", y->name);
  }
  memcpy(n->scalar, v, len);
  n->scalar[len] = '\0';
  n->quoted = is_str || ev->data.scalar.style != YAML_PLAIN_SCALAR_STYLE;
  *out = n;
  return 0;
}

static int node_read(yreader *y, yaml_event_t *ev, sc_yaml_node **out);

static int nomem(const yreader *y) {
  return sc_error_setc(SC_ERR_NOMEM, "%s: out of memory", y->name);
}

/* Reads one key: a scalar, or the end of the mapping (*done). */
static int key_read(yreader *y, char **key, yaml_mark_t *mark, int *done) {
  yaml_event_t ev;
  int rc = next_event(y, &ev);
  if (rc) return rc;
  *mark = ev.start_mark;
  *done = ev.type == YAML_MAPPING_END_EVENT;
  if (!*done && ev.type != YAML_SCALAR_EVENT) {
    rc = ev.type == YAML_ALIAS_EVENT ? fail(y, mark, "aliases are not supported")
                                     : fail(y, mark, "complex (non-scalar) keys are not supported");
  } else if (!*done) {
    sc_yaml_node *k = NULL;
    rc = ev.data.scalar.anchor ? fail(y, mark, "anchors are not supported")
                               : scalar_node(y, &ev, &k);
    if (!rc) {
      *key = k->scalar; /* keep the text, drop the node */
      k->scalar = NULL;
      sc_yaml_free(k);
    }
  }
  yaml_event_delete(&ev);
  return rc;
}

static int check_dup(const yreader *y, const sc_yaml_node *map, const char *key,
                     const yaml_mark_t *m) {
  if (!sc_yaml_get(map, key)) return 0;
  char msg[160];
  snprintf(msg, sizeof msg, "duplicate key '%.100s'", key);
  return fail(y, m, msg);
}

/* Reads key/value pairs up to MAPPING_END into map. */
static int map_read(yreader *y, sc_yaml_node *map) {
  int cap = 0;
  for (;;) {
    char *key = NULL;
    yaml_mark_t km;
    int done, rc = key_read(y, &key, &km, &done);
    if (rc || done) return rc;
    sc_yaml_node *val = NULL;
    yaml_event_t ev;
    rc = check_dup(y, map, key, &km);
    if (!rc) rc = next_event(y, &ev);
    if (!rc) rc = node_read(y, &ev, &val);
    if (!rc && node_reserve(map, &cap)) rc = nomem(y);
    if (rc) {
      free(key);
      sc_yaml_free(val);
      return rc;
    }
    map->keys[map->n] = key;
    map->key_lines[map->n] = (int)(km.line + 1 > INT_MAX ? INT_MAX : km.line + 1);
    map->vals[map->n++] = val;
  }
}

/* Reads items up to SEQUENCE_END into seq. */
static int seq_read(yreader *y, sc_yaml_node *seq) {
  int cap = 0;
  for (;;) {
    yaml_event_t ev;
    int rc = next_event(y, &ev);
    if (rc) return rc;
    if (ev.type == YAML_SEQUENCE_END_EVENT) {
      yaml_event_delete(&ev);
      return 0;
    }
    sc_yaml_node *item = NULL;
    rc = node_read(y, &ev, &item);
    if (!rc && node_reserve(seq, &cap)) rc = nomem(y);
    if (rc) {
      sc_yaml_free(item);
      return rc;
    }
    seq->vals[seq->n++] = item;
  }
}

/* A mapping or sequence whose start event is ev. */
static int collection_node(yreader *y, const yaml_event_t *ev, sc_yaml_node **out) {
  int is_map = ev->type == YAML_MAPPING_START_EVENT, is_str;
  const yaml_char_t *tag = is_map ? ev->data.mapping_start.tag : ev->data.sequence_start.tag;
  int rc = check_tag(y, ev, tag, is_map ? "map" : "seq", &is_str);
  if (rc) return rc;
  if (y->depth >= YAML_MAX_DEPTH) return fail(y, &ev->start_mark, "nesting deeper than 64 levels");
  sc_yaml_node *n = node_new(is_map ? SC_YAML_MAP : SC_YAML_SEQ, &ev->start_mark);
  if (!n) return nomem(y);
  y->depth++;
  rc = is_map ? map_read(y, n) : seq_read(y, n);
  y->depth--;
  if (rc) {
    sc_yaml_free(n);
    return rc;
  }
  *out = n;
  return 0;
}

static const yaml_char_t *event_anchor(const yaml_event_t *ev) {
  switch (ev->type) {
  case YAML_SCALAR_EVENT: return ev->data.scalar.anchor;
  case YAML_MAPPING_START_EVENT: return ev->data.mapping_start.anchor;
  case YAML_SEQUENCE_START_EVENT: return ev->data.sequence_start.anchor;
  default: return NULL;
  }
}

/* Builds the node that starts with ev (already read); deletes ev. */
static int node_read(yreader *y, yaml_event_t *ev, sc_yaml_node **out) {
  int rc;
  *out = NULL;
  if (ev->type == YAML_ALIAS_EVENT)
    rc = fail(y, &ev->start_mark, "aliases are not supported");
  else if (event_anchor(ev))
    rc = fail(y, &ev->start_mark, "anchors are not supported");
  else if (ev->type == YAML_SCALAR_EVENT)
    rc = scalar_node(y, ev, out);
  else if (ev->type == YAML_MAPPING_START_EVENT || ev->type == YAML_SEQUENCE_START_EVENT)
    rc = collection_node(y, ev, out);
  else
    rc = fail(y, &ev->start_mark, "unexpected YAML event");
  yaml_event_delete(ev);
  return rc;
}

/* ==== documents ==== */

/* Reads the next event and checks it is of type `want`. */
static int expect(yreader *y, yaml_event_type_t want, yaml_event_t *ev) {
  int rc = next_event(y, ev);
  if (rc) return rc;
  if (ev->type == want) return 0;
  rc = ev->type == YAML_DOCUMENT_START_EVENT
           ? fail(y, &ev->start_mark, "multiple documents are not supported")
           : fail(y, &ev->start_mark, "unexpected YAML event");
  yaml_event_delete(ev);
  return rc;
}

static int empty_map(yreader *y, sc_yaml_node **out) {
  yaml_mark_t m = {0, 0, 0};
  *out = node_new(SC_YAML_MAP, &m);
  return *out ? 0 : nomem(y);
}

/* The one document after STREAM_START; *out stays NULL for no document. */
static int document_read(yreader *y, sc_yaml_node **out) {
  yaml_event_t ev;
  int rc = next_event(y, &ev);
  if (rc) return rc;
  yaml_event_type_t type = ev.type;
  yaml_mark_t mark = ev.start_mark;
  yaml_event_delete(&ev);
  if (type == YAML_STREAM_END_EVENT) return 0;
  if (type != YAML_DOCUMENT_START_EVENT) return fail(y, &mark, "unexpected YAML event");
  if ((rc = next_event(y, &ev)) || (rc = node_read(y, &ev, out))) return rc;
  if ((rc = expect(y, YAML_DOCUMENT_END_EVENT, &ev))) return rc;
  yaml_event_delete(&ev);
  if ((rc = expect(y, YAML_STREAM_END_EVENT, &ev))) return rc;
  yaml_event_delete(&ev);
  return 0;
}

int sc_yaml_parse(const char *buf, size_t len, const char *name, sc_yaml_node **out) {
  *out = NULL;
  yreader y = {.name = name, .buf = buf ? buf : "", .len = buf ? len : 0};
  if (!yaml_parser_initialize(&y.p)) return nomem(&y);
  yaml_parser_set_input_string(&y.p, (const unsigned char *)y.buf, y.len);
  yaml_event_t ev;
  sc_yaml_node *root = NULL;
  int rc = expect(&y, YAML_STREAM_START_EVENT, &ev);
  if (!rc) {
    yaml_event_delete(&ev);
    rc = document_read(&y, &root);
  }
  yaml_parser_delete(&y.p);
  if (!rc && root && root->kind == SC_YAML_SCALAR && !root->quoted && !root->scalar[0]) {
    sc_yaml_free(root); /* "---" alone: an empty document */
    root = NULL;
  }
  if (!rc && !root) rc = empty_map(&y, &root);
  if (rc) {
    sc_yaml_free(root);
    return rc;
  }
  *out = root;
  return 0;
}
