/* merge.c: extract --shard parts -> the single-run layout (see merge.h). */
#include "pipeline/merge.h"

#include <dirent.h>
#include <errno.h>
#include <ftw.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "base/error.h"
#include "base/fs.h"
#include "base/log.h"
#include "io/json.h"
#include "store/captions.h"
#include "store/reader.h"
#include "store/writer.h"

#define MERGE_MAX_LAYERS 1024
#define MERGE_CHUNK_ROWS 1024
#define MERGE_STATE_MAX_BYTES ((size_t)1 << 16)
#define MERGE_CAPTIONS_MAX_BYTES ((size_t)1 << 34)

static char *part_root(const sc_config *cfg, const char *kind, int i, int n) {
  char name[96];
  snprintf(name, sizeof name, "%s.part-%d-of-%d", kind, i, n);
  return sc_path_join(cfg->output_dir, name);
}

static char *layer_subdir(const char *root, const char *lang, int layer) {
  char sub[64];
  snprintf(sub, sizeof sub, "%s/layer_%d", lang, layer);
  return sc_path_join(root, sub);
}

static int cmp_int(const void *a, const void *b) {
  int x = *(const int *)a, y = *(const int *)b;
  return (x > y) - (x < y);
}

/* Layers stored in part 1 for lang (layer_<L> folders), sorted. */
static int part_layers(const char *root, const char *lang, int *layers, int *n) {
  char *dir = sc_path_join(root, lang);
  if (!dir) return sc_error_setc(SC_ERR_NOMEM, "out of memory");
  DIR *d = opendir(dir);
  *n = 0;
  int rc = 0;
  if (!d) rc = sc_error_setc(SC_ERR_MISSING, "%s: missing; run `saecap extract --shard I/N` for every part", dir);
  for (struct dirent *e; !rc && (e = readdir(d));) {
    int l;
    char tail;
    if (sscanf(e->d_name, "layer_%d%c", &l, &tail) != 1 || l < 0) continue;
    if (*n >= MERGE_MAX_LAYERS) rc = sc_error_setc(SC_ERR_FORMAT, "%s: too many layer folders", dir);
    else layers[(*n)++] = l;
  }
  if (d) closedir(d);
  if (!rc && !*n) rc = sc_error_setc(SC_ERR_MISSING, "%s: no layer_<L> folders", dir);
  if (!rc) qsort(layers, (size_t)*n, sizeof *layers, cmp_int);
  free(dir);
  return rc;
}

/* Feeds the writer every sample of [from, to) with the rows of reader r
 * (whose rows are those samples', in order). */
static int feed_part(store_writer *w, store_reader *r, int64_t from, int64_t to, const char *dir,
                     int64_t *rows) {
  int d = store_reader_d(r);
  int64_t n = store_reader_n_rows(r), at = 0, got = 0, used = 0;
  float *acts = malloc((size_t)MERGE_CHUNK_ROWS * (size_t)d * sizeof *acts);
  store_row_meta *meta = malloc(MERGE_CHUNK_ROWS * sizeof *meta);
  int32_t pos[MERGE_CHUNK_ROWS], tok[MERGE_CHUNK_ROWS];
  uint8_t seg[MERGE_CHUNK_ROWS];
  int rc = acts && meta ? 0 : sc_error_setc(SC_ERR_NOMEM, "out of memory");
  for (int64_t s = from; !rc && s < to; s++) {
    rc = store_writer_begin_sample(w, s);
    /* Rows of sample s: the rest of the chunk, then further chunks. */
    while (!rc) {
      if (used == got) {
        if (at == n) break;
        int64_t want = n - at < MERGE_CHUNK_ROWS ? n - at : MERGE_CHUNK_ROWS;
        rc = store_reader_read(r, at, at + want, acts, meta);
        at += want, got = want, used = 0;
        continue;
      }
      if (meta[used].sample_index < s)
        rc = sc_error_setc(SC_ERR_FORMAT, "%s: rows of sample %lld out of order", dir,
                           (long long)meta[used].sample_index);
      if (rc || meta[used].sample_index != s) break;
      int64_t e = used;
      while (e < got && meta[e].sample_index == s) {
        pos[e - used] = meta[e].position, tok[e - used] = meta[e].token_id, seg[e - used] = meta[e].segment;
        e++;
      }
      rc = store_writer_append(w, acts + (size_t)used * (size_t)d, e - used, pos, tok, seg);
      *rows += e - used;
      used = e;
    }
    if (!rc) rc = store_writer_end_sample(w);
  }
  if (!rc && (used < got || at < n))
    rc = sc_error_setc(SC_ERR_FORMAT, "%s: rows of sample %lld lie past the part's samples [%lld, %lld)",
                       dir, (long long)meta[used].sample_index, (long long)from, (long long)to);
  free(acts);
  free(meta);
  return rc;
}

static int merge_layer(const sc_config *cfg, int n, const char *lang, int layer, sc_merge_summary *sum) {
  char *acts_root = sc_path_join(cfg->output_dir, "activations");
  char *out_dir = acts_root ? layer_subdir(acts_root, lang, layer) : NULL;
  store_manifest first = {0};
  store_writer *w = NULL;
  int rc = out_dir ? 0 : sc_error_setc(SC_ERR_NOMEM, "out of memory");
  int64_t from = 0;
  for (int i = 1; !rc && i <= n; i++) {
    char *root = part_root(cfg, "activations", i, n);
    char *dir = root ? layer_subdir(root, lang, layer) : NULL;
    store_manifest m = {0};
    store_reader *r = NULL;
    if (!dir) rc = sc_error_setc(SC_ERR_NOMEM, "out of memory");
    if (!rc && !sc_is_dir(dir))
      rc = sc_error_setc(SC_ERR_MISSING, "%s: missing; run `saecap extract --shard %d/%d`", dir, i, n);
    if (!rc) rc = store_manifest_load(dir, &m);
    if (!rc && !m.complete)
      rc = sc_error_setc(SC_ERR_ARG, "%s: incomplete (its extract task failed or still runs); rerun "
                         "`saecap extract --shard %d/%d`", dir, i, n);
    if (!rc && i == 1) {
      store_writer_config c = store_writer_config_default();
      c.dir = out_dir, c.language = m.language, c.layer = m.layer, c.d = m.d, c.dtype = m.dtype;
      c.rows_per_shard = m.rows_per_shard, c.model_path = m.model_path, c.config_hash = m.config_hash;
      c.prompt = m.prompt, c.saecap_version = m.saecap_version;
      c.checksum = m.n_shards ? m.shards[0].has_checksum : 1;
      rc = store_writer_open(&w, &c);
      first = m;
      m = (store_manifest){0};
    } else if (!rc && (strcmp(m.config_hash, first.config_hash) || m.d != first.d || m.dtype != first.dtype ||
                       m.rows_per_shard != first.rows_per_shard || strcmp(m.model_path, first.model_path))) {
      rc = sc_error_setc(SC_ERR_ARG, "%s: written with other settings than part 1 (config_hash %s vs %s)",
                         dir, m.config_hash, first.config_hash);
    }
    int64_t to = i == 1 ? first.next_sample : m.next_sample;
    if (!rc && store_writer_is_complete(w)) {
      free(root), free(dir), store_manifest_free(&m);
      break; /* merged before */
    }
    if (!rc) {
      const char *dirs[1] = {dir};
      store_filter f = store_filter_default();
      rc = store_reader_open(&r, dirs, 1, &f);
    }
    if (!rc) rc = feed_part(w, r, from, to, dir, &sum->rows);
    from = to;
    store_reader_free(r);
    store_manifest_free(&m);
    free(root), free(dir);
  }
  if (!rc && !store_writer_is_complete(w)) {
    rc = store_writer_finish(w);
    if (!rc) sum->n_dirs++;
  }
  store_writer_free(w);
  store_manifest_free(&first);
  free(acts_root), free(out_dir);
  return rc;
}

/* 1 if <dir>/<lang>.state.json says complete. */
static int captions_complete(const char *dir, const char *lang) {
  char name[64];
  snprintf(name, sizeof name, "%s.state.json", lang);
  char *p = sc_path_join(dir, name);
  sc_json *j = NULL;
  int done = 0;
  if (p && sc_is_file(p) && !sc_json_load(p, MERGE_STATE_MAX_BYTES, &j))
    sc_json_bool(sc_json_get(j, "complete"), &done);
  sc_json_free(j);
  free(p);
  sc_error_clear();
  return done;
}

/* One captions line back into the writer. */
static int add_caption_line(store_captions *out, const char *line, size_t len, const char *path, int lineno) {
  sc_json *j = NULL;
  char name[64];
  snprintf(name, sizeof name, "line %d", lineno);
  int rc = sc_json_parse(line, len, path, &j);
  store_caption c = {0};
  int64_t si = 0;
  sc_json *ids = rc ? NULL : sc_json_get(j, "caption_ids");
  int n_ids = ids && sc_json_is_array(ids) ? sc_json_size(ids) : -1;
  int32_t *idv = n_ids > 0 ? malloc((size_t)n_ids * sizeof *idv) : NULL;
  if (!rc && (n_ids < 0 || (n_ids > 0 && !idv) || sc_json_i64(sc_json_get(j, "sample_index"), &si)))
    rc = sc_error_setc(SC_ERR_FORMAT, "%s: line %d: not a captions row", path, lineno);
  for (int k = 0; !rc && k < n_ids; k++) {
    int64_t v;
    if (sc_json_i64(sc_json_at(ids, k), &v) || v < INT32_MIN || v > INT32_MAX)
      rc = sc_error_setc(SC_ERR_FORMAT, "%s: line %d: caption_ids[%d] is not a token id", path, lineno, k);
    else idv[k] = (int32_t)v;
  }
  if (!rc) {
    c.sample_index = si;
    c.image_id = sc_json_str(sc_json_get(j, "image_id"));
    c.split = sc_json_str(sc_json_get(j, "split"));
    c.ground_truth_gender = sc_json_str(sc_json_get(j, "ground_truth_gender"));
    c.prompt = sc_json_str(sc_json_get(j, "prompt"));
    c.caption = sc_json_str(sc_json_get(j, "caption"));
    c.caption_ids = idv, c.n_caption_ids = n_ids;
    rc = store_captions_add(out, &c);
  }
  free(idv);
  sc_json_free(j);
  return rc;
}

static int merge_captions(const sc_config *cfg, int n, const char *lang, sc_merge_summary *sum) {
  char *out_dir = sc_path_join(cfg->output_dir, "captions");
  store_captions *out = NULL;
  int rc = out_dir ? store_captions_open(&out, out_dir, lang, 1) : sc_error_setc(SC_ERR_NOMEM, "out of memory");
  for (int i = 1; !rc && i <= n && !store_captions_is_complete(out); i++) {
    char *root = part_root(cfg, "captions", i, n), file[64], *buf = NULL;
    snprintf(file, sizeof file, "%s.jsonl", lang);
    char *path = root ? sc_path_join(root, file) : NULL;
    size_t len = 0;
    if (!path) rc = sc_error_setc(SC_ERR_NOMEM, "out of memory");
    if (!rc && !captions_complete(root, lang))
      rc = sc_error_setc(SC_ERR_ARG, "%s: missing or incomplete; rerun `saecap extract --shard %d/%d`", path, i, n);
    if (!rc) rc = sc_read_file(path, MERGE_CAPTIONS_MAX_BYTES, &buf, &len);
    int lineno = 0;
    for (size_t at = 0; !rc && at < len;) {
      const char *nl = memchr(buf + at, '\n', len - at);
      size_t e = nl ? (size_t)(nl - buf) : len;
      lineno++;
      if (e > at) rc = add_caption_line(out, buf + at, e - at, path, lineno);
      if (!rc && e > at) sum->captions++;
      at = e + 1;
    }
    free(buf), free(path), free(root);
  }
  if (!rc && !store_captions_is_complete(out)) rc = store_captions_finish(out);
  store_captions_free(out);
  free(out_dir);
  return rc;
}

static int rm_entry(const char *path, const struct stat *st, int flag, struct FTW *ftw) {
  (void)st, (void)ftw;
  if ((flag == FTW_DP ? rmdir(path) : unlink(path)) && errno != ENOENT) {
    sc_error_setc(SC_ERR_IO, "%s: cannot remove: %s", path, strerror(errno));
    return 1;
  }
  return 0;
}

static int remove_parts(const sc_config *cfg, int n) {
  static const char *const kinds[] = {"activations", "captions"};
  int rc = 0;
  for (int i = 1; !rc && i <= n; i++)
    for (int k = 0; !rc && k < 2; k++) {
      char *root = part_root(cfg, kinds[k], i, n);
      if (!root) return sc_error_setc(SC_ERR_NOMEM, "out of memory");
      if (sc_is_dir(root) && nftw(root, rm_entry, 16, FTW_DEPTH | FTW_PHYS))
        rc = sc_error_get()[0] ? SC_ERR_IO : sc_error_setc(SC_ERR_IO, "%s: cannot remove", root);
      free(root);
    }
  return rc;
}

/* Every part of every layer and the captions complete, checked before
 * anything is written, so a missing task leaves no merged output. */
static int parts_complete(const sc_config *cfg, int n, const char *lang, const int *layers, int nl) {
  int rc = 0;
  for (int i = 1; !rc && i <= n; i++) {
    char *root = part_root(cfg, "activations", i, n), *croot = part_root(cfg, "captions", i, n);
    if (!root || !croot) rc = sc_error_setc(SC_ERR_NOMEM, "out of memory");
    for (int j = 0; !rc && j < nl; j++) {
      char *dir = layer_subdir(root, lang, layers[j]);
      store_manifest m = {0};
      if (!dir) rc = sc_error_setc(SC_ERR_NOMEM, "out of memory");
      else if (!sc_is_dir(dir))
        rc = sc_error_setc(SC_ERR_MISSING, "%s: missing; run `saecap extract --shard %d/%d`", dir, i, n);
      else if (!(rc = store_manifest_load(dir, &m)) && !m.complete)
        rc = sc_error_setc(SC_ERR_ARG, "%s: incomplete (its extract task failed or still runs); rerun "
                           "`saecap extract --shard %d/%d`", dir, i, n);
      store_manifest_free(&m);
      free(dir);
    }
    if (!rc && !captions_complete(croot, lang))
      rc = sc_error_setc(SC_ERR_ARG, "%s/%s.jsonl: missing or incomplete; rerun `saecap extract --shard %d/%d`",
                         croot, lang, i, n);
    free(root), free(croot);
  }
  return rc;
}

int sc_merge_shards(const sc_config *cfg, int n_shards, int remove, sc_merge_summary *out) {
  memset(out, 0, sizeof *out);
  if (n_shards < 1) return sc_error_setc(SC_ERR_ARG, "merge-shards: --shards must be >= 1");
  if (n_shards == 1) return 0; /* extract --shard 1/1 writes activations/ itself */
  char *root1 = part_root(cfg, "activations", 1, n_shards);
  int rc = root1 ? 0 : sc_error_setc(SC_ERR_NOMEM, "out of memory");
  const char *langs = cfg->extract.languages ? cfg->extract.languages : "";
  /* Pass 0 checks every language's parts, pass 1 merges. */
  for (int pass = 0; pass < 2; pass++)
    for (const char *p = langs; !rc && *p;) {
      char lang[16];
      size_t len = strcspn(p, ",");
      snprintf(lang, sizeof lang, "%.*s", (int)(len < sizeof lang ? len : sizeof lang - 1), p);
      p += len + (p[len] == ',');
      int layers[MERGE_MAX_LAYERS], nl = 0;
      rc = part_layers(root1, lang, layers, &nl);
      if (!rc && pass == 0) rc = parts_complete(cfg, n_shards, lang, layers, nl);
      for (int j = 0; !rc && pass == 1 && j < nl; j++) {
        sc_debug("merge-shards: %s layer %d", lang, layers[j]);
        rc = merge_layer(cfg, n_shards, lang, layers[j], out);
      }
      if (!rc && pass == 1) rc = merge_captions(cfg, n_shards, lang, out);
    }
  free(root1);
  if (!rc && remove) rc = remove_parts(cfg, n_shards);
  return rc;
}
