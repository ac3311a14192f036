/* captions.c: resumable captions/<lang>.jsonl (see captions.h). */
#include "store/captions.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "base/error.h"
#include "base/fs.h"
#include "io/json.h"
#include "store/manifest.h"

struct store_captions {
  char *path;           /* owned: dir/<lang>.jsonl */
  char *state_path;     /* owned: dir/<lang>.state.json */
  FILE *fp;             /* open for appending on path */
  int64_t rows, bytes;  /* committed */
  int64_t next_sample;  /* committed resume point */
  int complete;
  int64_t pending_rows, pending_bytes;
  int64_t last_added;   /* -1 before the first row */
  int commit_every;
  char *fail_msg;       /* owned; set once a write failed */
};

void store_captions_free(store_captions *c) {
  if (!c) return;
  if (c->fp) fclose(c->fp);
  free(c->path);
  free(c->state_path);
  free(c->fail_msg);
  free(c);
}

static int fail(store_captions *c, int rc) {
  if (!c->fail_msg) c->fail_msg = strdup(sc_error_get());
  return rc;
}

/* ==== state file ========================================================= */

static int write_state(const store_captions *c) {
  sc_json *o = sc_json_new_object();
  int ok = o && sc_json_add_str(o, "format", STORE_CAPTIONS_FORMAT) &&
           sc_json_add_str(o, "file", sc_path_base(c->path)) &&
           sc_json_add_num(o, "rows", (double)c->rows) &&
           sc_json_add_num(o, "bytes", (double)c->bytes) &&
           sc_json_add_num(o, "next_sample", (double)c->next_sample) &&
           sc_json_add_bool(o, "complete", c->complete);
  char *text = ok ? sc_json_print(o, 1) : NULL;
  sc_json_free(o);
  if (!text) return sc_error_setc(SC_ERR_NOMEM, "%s: out of memory", c->state_path);
  int rc = sc_write_file_atomic(c->state_path, text, strlen(text));
  free(text);
  return rc;
}

static int state_int(const sc_json *o, const char *key, const char *path, int64_t *out) {
  if (sc_json_i64(sc_json_get(o, key), out) || *out < 0 || *out > STORE_MAX_SAMPLE)
    return sc_error_setc(SC_ERR_FORMAT, "%s: '%s' missing or out of range", path, key);
  return 0;
}

static int read_state(store_captions *c) {
  sc_json *o;
  int rc = sc_json_load(c->state_path, 1 << 20, &o);
  if (rc) return rc;
  const char *fmt = sc_json_str(sc_json_get(o, "format"));
  if (!sc_json_is_object(o) || !fmt || strcmp(fmt, STORE_CAPTIONS_FORMAT))
    rc = sc_error_setc(SC_ERR_FORMAT, "%s: not a captions state file", c->state_path);
  if (!rc) rc = state_int(o, "rows", c->state_path, &c->rows);
  if (!rc) rc = state_int(o, "bytes", c->state_path, &c->bytes);
  if (!rc) rc = state_int(o, "next_sample", c->state_path, &c->next_sample);
  if (!rc && sc_json_bool(sc_json_get(o, "complete"), &c->complete))
    rc = sc_error_setc(SC_ERR_FORMAT, "%s: 'complete' missing", c->state_path);
  sc_json_free(o);
  return rc;
}

/* ==== opening ============================================================ */

/* Cuts the jsonl back to the committed length and opens it for appending. */
static int open_jsonl(store_captions *c) {
  struct stat st;
  int exists = stat(c->path, &st) == 0;
  if (c->bytes > 0 && (!exists || st.st_size < c->bytes))
    return sc_error_setc(SC_ERR_FORMAT, "%s: shorter than the %" PRId64 " bytes %s records", c->path,
                         c->bytes, sc_path_base(c->state_path));
  if (exists && st.st_size != c->bytes && truncate(c->path, (off_t)c->bytes))
    return sc_error_setc(SC_ERR_IO, "%s: cannot truncate: %s", c->path, strerror(errno));
  c->fp = fopen(c->path, "ab");
  if (!c->fp) return sc_error_setc(SC_ERR_IO, "%s: cannot open: %s", c->path, strerror(errno));
  return 0;
}

static int make_paths(store_captions *c, const char *dir, const char *language) {
  size_t n = strlen(dir) + strlen(language) + 32;
  c->path = malloc(n);
  c->state_path = malloc(n);
  if (!c->path || !c->state_path) return sc_error_setc(SC_ERR_NOMEM, "captions: out of memory");
  snprintf(c->path, n, "%s/%s.jsonl", dir, language);
  snprintf(c->state_path, n, "%s/%s.state.json", dir, language);
  return 0;
}

int store_captions_open(store_captions **out, const char *dir, const char *language,
                        int commit_every) {
  *out = NULL;
  if (!language || !*language || strchr(language, '/'))
    return sc_error_setc(SC_ERR_ARG, "%s: bad language name for the captions file", dir);
  store_captions *c = calloc(1, sizeof *c);
  if (!c) return sc_error_setc(SC_ERR_NOMEM, "captions: out of memory");
  c->last_added = -1;
  c->commit_every = commit_every > 0 ? commit_every : STORE_DEFAULT_CAPTIONS_COMMIT;
  int rc = make_paths(c, dir, language);
  if (!rc) rc = sc_mkdirs(dir);
  if (!rc && sc_is_file(c->state_path)) rc = read_state(c);
  else if (!rc) rc = write_state(c);
  if (!rc) rc = open_jsonl(c);
  if (rc) {
    store_captions_free(c);
    return rc;
  }
  *out = c;
  return 0;
}

int64_t store_captions_resume_sample(const store_captions *c) { return c->next_sample; }
int store_captions_is_complete(const store_captions *c) { return c->complete; }
int64_t store_captions_rows(const store_captions *c) { return c->rows + c->pending_rows; }

/* ==== writing ============================================================ */

static const char *or_empty(const char *s) { return s ? s : ""; }

static char *row_text(const store_caption *r) {
  sc_json *o = sc_json_new_object(), *ids = NULL;
  int ok = o && sc_json_add_num(o, "sample_index", (double)r->sample_index) &&
           sc_json_add_str(o, "image_id", or_empty(r->image_id)) &&
           sc_json_add_str(o, "split", or_empty(r->split)) &&
           sc_json_add_str(o, "ground_truth_gender", or_empty(r->ground_truth_gender)) &&
           sc_json_add_str(o, "prompt", or_empty(r->prompt)) &&
           sc_json_add_str(o, "caption", or_empty(r->caption)) &&
           (ids = sc_json_add(o, "caption_ids", sc_json_new_array()));
  for (int i = 0; ok && i < r->n_caption_ids; i++)
    ok = sc_json_add(ids, NULL, sc_json_new_num(r->caption_ids[i])) != NULL;
  char *text = ok ? sc_json_print(o, 0) : NULL;
  sc_json_free(o);
  return text;
}

static int check_failed(const store_captions *c) {
  return c->fail_msg ? sc_error_setc(SC_ERR_IO, "%s", c->fail_msg) : 0;
}

int store_captions_add(store_captions *c, const store_caption *r) {
  int rc = check_failed(c);
  if (rc) return rc;
  if (r->sample_index <= c->last_added || r->sample_index > STORE_MAX_SAMPLE || r->n_caption_ids < 0)
    return sc_error_setc(SC_ERR_ARG, "%s: sample %" PRId64 " out of order (after %" PRId64 ")",
                         c->path, r->sample_index, c->last_added);
  c->last_added = r->sample_index;
  if (c->complete || r->sample_index < c->next_sample) return 0;
  char *text = row_text(r);
  if (!text) return sc_error_setc(SC_ERR_NOMEM, "%s: out of memory", c->path);
  size_t n = strlen(text);
  int bad = fwrite(text, 1, n, c->fp) != n || fputc('\n', c->fp) == EOF;
  free(text);
  if (bad) return fail(c, sc_error_setc(SC_ERR_IO, "%s: write failed: %s", c->path, strerror(errno)));
  c->pending_rows++;
  c->pending_bytes += (int64_t)n + 1;
  return c->pending_rows >= c->commit_every ? store_captions_commit(c) : 0;
}

/* Data first (fsync), then the state that vouches for it. */
int store_captions_commit(store_captions *c) {
  int rc = check_failed(c);
  if (rc || c->complete) return rc;
  if (fflush(c->fp) || fsync(fileno(c->fp)))
    return fail(c, sc_error_setc(SC_ERR_IO, "%s: write failed: %s", c->path, strerror(errno)));
  c->rows += c->pending_rows;
  c->bytes += c->pending_bytes;
  c->pending_rows = c->pending_bytes = 0;
  if (c->last_added + 1 > c->next_sample) c->next_sample = c->last_added + 1;
  rc = write_state(c);
  return rc ? fail(c, rc) : 0;
}

int store_captions_finish(store_captions *c) {
  if (c->complete) return check_failed(c);
  int rc = store_captions_commit(c);
  if (rc) return rc;
  c->complete = 1;
  rc = write_state(c);
  if (rc) c->complete = 0;
  return rc ? fail(c, rc) : 0;
}
