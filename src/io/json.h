/* json.h: JSON read/write, the only caller of cJSON (STYLE.md §12).
 *
 * sc_json is an opaque node. Parse with sc_json_parse (bytes in, so tests and
 * fuzzers feed memory), read with the getters, build with sc_json_new_* and
 * sc_json_add_*, print with sc_json_print, free the root with sc_json_free.
 * Getters never set error messages: they return NULL / a negative code and
 * the caller, who knows the file and the key, writes the message.
 */
#ifndef SC_JSON_H
#define SC_JSON_H

#include <stddef.h>
#include <stdint.h>

typedef struct cJSON sc_json;

/* Parses buf[0..len) (need not be NUL-terminated). On failure sets
 * "<name>: malformed JSON at line L, column C" and returns SC_ERR_FORMAT.
 * Trailing bytes other than whitespace are an error. */
int sc_json_parse(const char *buf, size_t len, const char *name, sc_json **out);
/* Reads and parses a file (at most max_bytes). */
int sc_json_load(const char *path, size_t max_bytes, sc_json **out);
void sc_json_free(sc_json *j);

int sc_json_is_object(const sc_json *j);
int sc_json_is_array(const sc_json *j);
int sc_json_is_string(const sc_json *j);
int sc_json_is_number(const sc_json *j);
int sc_json_is_bool(const sc_json *j);
int sc_json_is_null(const sc_json *j);

/* Member `key` of an object (first one if repeated), or NULL. */
sc_json *sc_json_get(const sc_json *obj, const char *key);
/* Element count of an array or object; 0 for scalars. */
int sc_json_size(const sc_json *j);
/* i-th element of an array or object, or NULL. */
sc_json *sc_json_at(const sc_json *j, int i);
/* Iterate an object or array: first child, next sibling; key of a member. */
sc_json *sc_json_first(const sc_json *j);
sc_json *sc_json_next(const sc_json *j);
const char *sc_json_key(const sc_json *j);

/* String value or NULL. */
const char *sc_json_str(const sc_json *j);
/* Number as double (0 if not a number). */
double sc_json_num(const sc_json *j);
/* Integral number within +-2^53 into *out; else SC_ERR_FORMAT. */
int sc_json_i64(const sc_json *j, int64_t *out);
/* Boolean into *out (0/1); else SC_ERR_FORMAT. */
int sc_json_bool(const sc_json *j, int *out);

/* Builders. Each returns the new node, or NULL when out of memory (after
 * which the tree is still valid and freeable). Adding to an object keeps
 * insertion order. */
sc_json *sc_json_new_object(void);
sc_json *sc_json_new_array(void);
sc_json *sc_json_new_str(const char *s);
sc_json *sc_json_new_num(double v);
sc_json *sc_json_new_bool(int v);
sc_json *sc_json_new_null(void);
/* Adds child under key (object) or at the end (array, key NULL); takes
 * ownership of child. Returns child or NULL. */
sc_json *sc_json_add(sc_json *parent, const char *key, sc_json *child);
sc_json *sc_json_add_str(sc_json *obj, const char *key, const char *s);
sc_json *sc_json_add_num(sc_json *obj, const char *key, double v);
sc_json *sc_json_add_bool(sc_json *obj, const char *key, int v);
/* malloc'd text (free with free()); pretty = 1 indents with tabs; NULL when
 * out of memory. */
char *sc_json_print(const sc_json *j, int pretty);

#endif
