/* yaml.h: YAML documents as a small tree with line numbers (libyaml behind
 * the seam). Typed configs (pipeline/config.h) walk this tree so that every
 * error can name the line.
 *
 * Supported: one document of block/flow mappings, sequences and scalars.
 * Anchors/aliases, tags other than the core ones and multiple documents are
 * refused. Duplicate keys in a mapping are an error.
 */
#ifndef SC_YAML_H
#define SC_YAML_H

#include <stddef.h>

typedef enum sc_yaml_kind { SC_YAML_SCALAR, SC_YAML_MAP, SC_YAML_SEQ } sc_yaml_kind;

typedef struct sc_yaml_node sc_yaml_node;
struct sc_yaml_node {
  sc_yaml_kind kind;
  int line, col;       /* 1-based position of the node */
  char *scalar;        /* SCALAR: the text (owned) */
  int quoted;          /* SCALAR: written in quotes (so never a number/bool/null) */
  int n;               /* MAP: pairs; SEQ: items */
  char **keys;         /* MAP: (n) key strings (owned) */
  int *key_lines;      /* MAP: (n) line of each key */
  sc_yaml_node **vals; /* MAP: (n) values; SEQ: (n) items */
};

/* Parses buf[0..len). Errors: "<name>: line L: <problem>" (SC_ERR_FORMAT).
 * An empty document gives an empty MAP. */
int sc_yaml_parse(const char *buf, size_t len, const char *name, sc_yaml_node **out);
void sc_yaml_free(sc_yaml_node *n);
/* Value for key in a MAP, or NULL. */
const sc_yaml_node *sc_yaml_get(const sc_yaml_node *map, const char *key);

#endif
