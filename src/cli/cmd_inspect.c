/* cmd_inspect.c: `saecap inspect PATH [--json]`: lists the tensors and the
 * metadata of a safetensors file or Hugging Face checkpoint folder, after
 * the full validation that st_checkpoint_open does. */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/error.h"
#include "cli/cli.h"
#include "io/json.h"
#include "io/safetensors.h"

static void print_help(void) {
  printf(
      "usage: saecap inspect PATH [--json]\n\n"
      "Validates a safetensors file, or a checkpoint folder (model.safetensors.index.json\n"
      "and its shards, or a single model.safetensors), and lists its tensors: name, dtype,\n"
      "shape and bytes (and the shard, for a sharded checkpoint), then the metadata and\n"
      "the totals (tensor count, total bytes, parameter count).\n\n"
      "options:\n"
      "  --json     print one JSON object instead: {\"path\", \"files\": [...],\n"
      "             \"metadata\": {...}, \"tensors\": [{\"name\", \"dtype\", \"shape\",\n"
      "             \"bytes\", \"file\"}], \"n_tensors\", \"total_bytes\", \"n_parameters\"}\n"
      "             (metadata merges every file's __metadata__; the first file wins)\n"
      "  -h, --help this text\n\n"
      "A malformed file is reported as one line 'saecap: <file>: <problem>' (exit 1).\n");
}

static void shape_str(char *buf, size_t cap, const st_tensor *t) {
  size_t k = (size_t)snprintf(buf, cap, "[");
  for (int i = 0; i < t->n_dims && k < cap; i++)
    k += (size_t)snprintf(buf + k, cap - k, "%s%" PRId64, i ? ", " : "", t->shape[i]);
  if (k < cap) snprintf(buf + k, cap - k, "]");
}

static const char *tensor_file(const st_checkpoint *c, const st_tensor *t) {
  return st_file_path(st_checkpoint_file(c, t->shard));
}

/* Sums over all tensors. */
static void totals(const st_checkpoint *c, uint64_t *bytes, uint64_t *params) {
  *bytes = *params = 0;
  for (int i = 0; i < st_checkpoint_n_tensors(c); i++) {
    const st_tensor *t = st_checkpoint_tensor(c, i);
    *bytes += t->nbytes;
    *params += (uint64_t)t->n_elements;
  }
}

/* First file that defines a key wins. */
static const char *meta_lookup(const st_checkpoint *c, int upto_file, const char *key) {
  for (int f = 0; f < upto_file; f++) {
    const char *v = st_file_meta_get(st_checkpoint_file(c, f), key);
    if (v) return v;
  }
  return NULL;
}

static int print_table(const st_checkpoint *c, const char *path) {
  int nf = st_checkpoint_n_files(c), nt = st_checkpoint_n_tensors(c);
  int w = 4;
  for (int i = 0; i < nt; i++) {
    int l = (int)strlen(st_checkpoint_tensor(c, i)->name);
    if (l > w) w = l;
  }
  printf("%s: %d file%s\n", path, nf, nf == 1 ? "" : "s");
  printf("%-*s  %-5s  %-24s  %14s%s\n", w, "name", "dtype", "shape", "bytes", nf > 1 ? "  file" : "");
  for (int i = 0; i < nt; i++) {
    const st_tensor *t = st_checkpoint_tensor(c, i);
    char s[256];
    shape_str(s, sizeof s, t);
    printf("%-*s  %-5s  %-24s  %14zu", w, t->name, sc_dtype_name(t->dtype), s, t->nbytes);
    if (nf > 1) printf("  %s", tensor_file(c, t));
    printf("\n");
  }
  for (int f = 0; f < nf; f++) {
    const st_file *sf = st_checkpoint_file(c, f);
    for (int m = 0; m < st_file_n_meta(sf); m++) {
      const char *k, *v;
      st_file_meta(sf, m, &k, &v);
      if (!meta_lookup(c, f, k)) printf("metadata %s = %s\n", k, v);
    }
  }
  uint64_t bytes, params;
  totals(c, &bytes, &params);
  printf("tensors: %d  total bytes: %" PRIu64 " (%.2f MiB)  parameters: %" PRIu64 "\n", nt, bytes,
         (double)bytes / (1024.0 * 1024.0), params);
  return 0;
}

static sc_json *tensor_obj(const st_checkpoint *c, const st_tensor *t) {
  sc_json *o = sc_json_new_object();
  int ok = sc_json_add_str(o, "name", t->name) && sc_json_add_str(o, "dtype", sc_dtype_name(t->dtype));
  sc_json *shape = ok ? sc_json_add(o, "shape", sc_json_new_array()) : NULL;
  ok = shape != NULL;
  for (int d = 0; ok && d < t->n_dims; d++) ok = sc_json_add(shape, NULL, sc_json_new_num((double)t->shape[d])) != NULL;
  ok = ok && sc_json_add_num(o, "bytes", (double)t->nbytes) && sc_json_add_str(o, "file", tensor_file(c, t));
  if (!ok) {
    sc_json_free(o);
    return NULL;
  }
  return o;
}

/* Adds files, metadata and tensors; returns 0 or -1 when out of memory. */
static int json_lists(sc_json *root, const st_checkpoint *c) {
  sc_json *files = sc_json_add(root, "files", sc_json_new_array());
  sc_json *meta = sc_json_add(root, "metadata", sc_json_new_object());
  sc_json *tensors = sc_json_add(root, "tensors", sc_json_new_array());
  int ok = files && meta && tensors;
  for (int f = 0; ok && f < st_checkpoint_n_files(c); f++) {
    const st_file *sf = st_checkpoint_file(c, f);
    ok = sc_json_add(files, NULL, sc_json_new_str(st_file_path(sf))) != NULL;
    for (int m = 0; ok && m < st_file_n_meta(sf); m++) {
      const char *k, *v;
      st_file_meta(sf, m, &k, &v);
      if (!meta_lookup(c, f, k)) ok = sc_json_add_str(meta, k, v) != NULL;
    }
  }
  for (int i = 0; ok && i < st_checkpoint_n_tensors(c); i++)
    ok = sc_json_add(tensors, NULL, tensor_obj(c, st_checkpoint_tensor(c, i))) != NULL;
  return ok ? 0 : -1;
}

static int print_json(const st_checkpoint *c, const char *path) {
  uint64_t bytes, params;
  totals(c, &bytes, &params);
  sc_json *root = sc_json_new_object();
  int ok = root && sc_json_add_str(root, "path", path) && !json_lists(root, c) &&
           sc_json_add_num(root, "n_tensors", st_checkpoint_n_tensors(c)) &&
           sc_json_add_num(root, "total_bytes", (double)bytes) && sc_json_add_num(root, "n_parameters", (double)params);
  char *text = ok ? sc_json_print(root, 1) : NULL;
  sc_json_free(root);
  if (!text) {
    sc_error_setc(SC_ERR_NOMEM, "inspect: out of memory");
    return cli_fail();
  }
  printf("%s\n", text);
  free(text);
  return 0;
}

int cmd_inspect(int argc, char **argv) {
  if (cli_wants_help(argc, argv)) {
    print_help();
    return 0;
  }
  const char *path = NULL;
  int json = 0;
  for (int i = 1; i < argc; i++) {
    if (!strcmp(argv[i], "--json")) json = 1;
    else if (argv[i][0] == '-' && argv[i][1]) return cli_usage_error("inspect", "unknown option '%s'", argv[i]);
    else if (path) return cli_usage_error("inspect", "only one PATH is allowed");
    else path = argv[i];
  }
  if (!path) return cli_usage_error("inspect", "missing PATH");
  st_checkpoint *c;
  if (st_checkpoint_open(&c, path)) return cli_fail();
  int rc = json ? print_json(c, path) : print_table(c, path);
  st_checkpoint_free(c);
  return rc;
}
