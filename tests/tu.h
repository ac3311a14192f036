/* tu.h: helpers shared by the cmocka tests.
 *
 * CTest sets SAECAP_BIN (the saecap program), SAECAP_SRC (the repository)
 * and SAECAP_TMP (a scratch folder inside the build tree). Tests include
 * <stdarg.h>, <stddef.h>, <setjmp.h>, <cmocka.h> themselves.
 */
#ifndef SC_TU_H
#define SC_TU_H

#include <stddef.h>

/* Path of the saecap binary / the source tree. Never NULL. */
const char *tu_bin(void);
const char *tu_src(void);
/* malloc'd "<SAECAP_SRC>/<rel>". */
char *tu_src_path(const char *rel);
/* Path of the real Gemma 3 tokenizer.json (deps/npm), malloc'd. */
char *tu_tokenizer_json(void);

/* Writes a tiny random checkpoint: `saecap -q tiny-model DIR --tokenizer
 * <deps tokenizer.json> ARGS`; fails the test if it does not succeed. */
void tu_tiny_model(const char *dir, const char *args);
/* Edits checkpoint DIR with tests/reference/st_mutate.py ("drop NAME" or
 * "set NAME d0,d1"); fails the test if it does not succeed. */
void tu_mutate_checkpoint(const char *dir, const char *args);

/* Creates a fresh, empty scratch folder <SAECAP_TMP>/<name>.<pid> and
 * returns its malloc'd path. */
char *tu_tmpdir(const char *name);
/* malloc'd dir + "/" + name. */
char *tu_join(const char *dir, const char *name);

/* Writes / reads whole files (tu_read adds a NUL; NULL if missing). */
void tu_write(const char *path, const void *data, size_t len);
void tu_write_str(const char *path, const char *text);
char *tu_read(const char *path, size_t *len);
int tu_exists(const char *path);

/* Runs a shell command line (printf format) with stdout and stderr captured
 * into malloc'd strings (either out pointer may be NULL). Returns the exit
 * status (128+signal if killed). */
int tu_run(char **out, char **err, const char *fmt, ...) __attribute__((format(printf, 3, 4)));

/* Number of '\n'-terminated lines in s (a last unterminated line counts). */
int tu_count_lines(const char *s);

/* Asserts the CLI contract for bad input: exit status non-zero, stderr is
 * exactly one line starting "saecap: " that contains every needle given
 * (NULL-terminated list). Fails the cmocka test otherwise. */
void tu_assert_one_line_error(int status, const char *err, ...);

/* 1 if folder dir holds any file whose name ends in ".tmp" (a half-written
 * output), searched recursively. */
int tu_has_tmp_files(const char *dir);
/* Number of entries in a folder (recursively, files only); -1 if missing. */
int tu_count_files(const char *dir);

#endif
