/* test_safetensors.c: the safetensors reader, checkpoint reader and writer:
 * lossless round trips for every dtype, every malformed input with its
 * message, sharded checkpoints, and both directions against the
 * independent numpy reader/writer in tests/reference/st_reference.py. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "base/error.h"
#include "base/rng.h"
#include "io/safetensors.h"
#include "tu.h"

/* ==== helpers ==== */

/* A file image: 8-byte length, header text, then ndata bytes 0, 1, 2, ... */
static unsigned char *mk(const char *header, size_t ndata, size_t *len) {
  size_t h = strlen(header);
  *len = 8 + h + ndata;
  unsigned char *b = malloc(*len + 1);
  assert_non_null(b);
  for (int i = 0; i < 8; i++) b[i] = (unsigned char)((uint64_t)h >> (8 * i));
  memcpy(b + 8, header, h);
  for (size_t i = 0; i < ndata; i++) b[8 + h + i] = (unsigned char)i;
  return b;
}

/* Parses header + ndata bytes from memory and expects failure with `msg`. */
static void expect_bad(const char *header, size_t ndata, const char *msg) {
  size_t len;
  unsigned char *b = mk(header, ndata, &len);
  st_file *f = (st_file *)1;
  int rc = st_file_from_memory(&f, b, len, "bad.safetensors");
  if (rc == 0) fail_msg("accepted: %s", header);
  assert_null(f);
  if (strcmp(sc_error_get(), msg)) fail_msg("message\n  %s\nexpected\n  %s", sc_error_get(), msg);
  free(b);
}

static st_file *expect_good(const char *header, size_t ndata, unsigned char **buf) {
  size_t len;
  *buf = mk(header, ndata, &len);
  st_file *f = NULL;
  if (st_file_from_memory(&f, *buf, len, "good.safetensors")) fail_msg("%s", sc_error_get());
  return f;
}

/* 64-bit FNV-1a, the checksum st_reference.py digest prints. */
static uint64_t fnv1a(const void *p, size_t n) {
  const unsigned char *b = p;
  uint64_t h = 0xcbf29ce484222325ull;
  for (size_t i = 0; i < n; i++) h = (h ^ b[i]) * 0x100000001b3ull;
  return h;
}

static char *script(void) { return tu_src_path("tests/reference/st_reference.py"); }

/* ==== random round trip ==== */

typedef struct rt_tensor {
  char name[32];
  sc_dtype dtype;
  int n_dims;
  int64_t shape[ST_MAX_DIMS];
  unsigned char *data;
  size_t nbytes;
} rt_tensor;

/* Every dtype with random shapes (0 to 4 dims), plus a zero-size tensor. */
static int random_tensors(rt_tensor *t, sc_rng *rng) {
  int n = 0;
  for (int d = 0; d < SC_DTYPE_COUNT; d++, n++) {
    snprintf(t[n].name, sizeof t[n].name, "t%02d.%s", (int)sc_rng_below(rng, 100), sc_dtype_name((sc_dtype)d));
    t[n].dtype = (sc_dtype)d;
    t[n].n_dims = (int)sc_rng_below(rng, 5);
    size_t el = 1;
    for (int k = 0; k < t[n].n_dims; k++) el *= (size_t)(t[n].shape[k] = 1 + (int64_t)sc_rng_below(rng, 5));
    t[n].nbytes = el * sc_dtype_size((sc_dtype)d);
    t[n].data = malloc(t[n].nbytes);
    for (size_t i = 0; i < t[n].nbytes; i++) t[n].data[i] = (unsigned char)sc_rng_u64(rng);
  }
  t[n] = (rt_tensor){.name = "zero.size", .dtype = SC_DTYPE_F32, .n_dims = 2, .shape = {3, 0}};
  return n + 1;
}

static int write_rt(const char *path, rt_tensor *t, int n) {
  st_writer *w;
  assert_int_equal(st_writer_create(&w), 0);
  for (int i = 0; i < n; i++)
    assert_int_equal(st_writer_add(w, t[i].name, t[i].dtype, t[i].n_dims, t[i].shape, t[i].data, t[i].nbytes), 0);
  assert_int_equal(st_writer_add_meta(w, "format", "pt"), 0);
  assert_int_equal(st_writer_add_meta(w, "note", "ünïcode \"quoted\"\n"), 0);
  size_t total = 0;
  for (int i = 0; i < n; i++) total += t[i].nbytes;
  assert_int_equal(st_writer_data_bytes(w), total);
  int rc = st_writer_write(w, path);
  st_writer_free(w);
  return rc;
}

static void check_same(const st_tensor *s, const rt_tensor *t) {
  assert_non_null(s);
  assert_string_equal(s->name, t->name);
  assert_int_equal(s->dtype, t->dtype);
  assert_int_equal(s->n_dims, t->n_dims);
  int64_t el = 1;
  for (int k = 0; k < t->n_dims; k++) {
    assert_int_equal(s->shape[k], t->shape[k]);
    el *= t->shape[k];
  }
  assert_int_equal(s->n_elements, el);
  assert_int_equal(s->nbytes, t->nbytes);
  if (t->nbytes) assert_memory_equal(s->data, t->data, t->nbytes);
  else assert_null(s->data);
}

/* The writer's layout: offsets contiguous from 0, larger elements first,
 * each tensor aligned to its element size, header a multiple of 8. */
static void check_layout(const st_file *f, const unsigned char *base) {
  uint64_t hlen = 0;
  for (int i = 7; i >= 0; i--) hlen = (hlen << 8) | base[i];
  assert_int_equal(hlen % 8, 0);
  assert_int_equal(base[8], '{');
  assert_memory_equal(base + 8, "{\"__metadata__\"", 15);
  const unsigned char *pos = base + 8 + hlen;
  for (int i = 0; i < st_file_n_tensors(f); i++) {
    const st_tensor *t = st_file_tensor(f, i);
    if (!t->nbytes) continue;
    assert_ptr_equal(t->data, pos);
    assert_int_equal(((uintptr_t)t->data - (uintptr_t)base) % sc_dtype_size(t->dtype), 0);
    pos += t->nbytes;
    if (i > 0) assert_true(sc_dtype_size(st_file_tensor(f, i - 1)->dtype) >= sc_dtype_size(t->dtype));
  }
}

static void test_roundtrip_all_dtypes(void **state) {
  (void)state;
  sc_rng rng;
  sc_rng_seed(&rng, 7);
  rt_tensor t[SC_DTYPE_COUNT + 1];
  int n = random_tensors(t, &rng);
  char *dir = tu_tmpdir("st_roundtrip");
  char *path = tu_join(dir, "rt.safetensors");
  assert_int_equal(write_rt(path, t, n), 0);
  assert_false(tu_has_tmp_files(dir));
  st_file *f;
  assert_int_equal(st_file_open(&f, path), 0);
  assert_int_equal(st_file_n_tensors(f), n);
  for (int i = 0; i < n; i++) check_same(st_file_find(f, t[i].name), &t[i]);
  assert_null(st_file_find(f, "missing"));
  assert_int_equal(st_file_n_meta(f), 2);
  const char *k, *v;
  st_file_meta(f, 0, &k, &v);
  assert_string_equal(k, "format");
  assert_string_equal(v, "pt");
  assert_string_equal(st_file_meta_get(f, "note"), "ünïcode \"quoted\"\n");
  assert_null(st_file_meta_get(f, "nope"));
  assert_string_equal(st_file_path(f), path);
  size_t len;
  char *raw = tu_read(path, &len);
  st_file *mem;
  assert_int_equal(st_file_from_memory(&mem, raw, len, "mem"), 0);
  check_layout(mem, (const unsigned char *)raw);
  st_file_free(mem);
  free(raw);
  st_file_free(f);
  for (int i = 0; i < n; i++) free(t[i].data);
  free(path);
  free(dir);
}

/* Scalars have shape [] and one element; the writer can write twice. */
static void test_scalar_and_rewrite(void **state) {
  (void)state;
  char *dir = tu_tmpdir("st_scalar");
  char *path = tu_join(dir, "s.safetensors");
  double x = 3.25;
  st_writer *w;
  assert_int_equal(st_writer_create(&w), 0);
  assert_int_equal(st_writer_add(w, "x", SC_DTYPE_F64, 0, NULL, &x, 8), 0);
  assert_int_equal(st_writer_write(w, path), 0);
  assert_int_equal(st_writer_write(w, path), 0);
  st_writer_free(w);
  st_file *f;
  assert_int_equal(st_file_open(&f, path), 0);
  const st_tensor *t = st_file_find(f, "x");
  assert_int_equal(t->n_dims, 0);
  assert_int_equal(t->n_elements, 1);
  double y;
  memcpy(&y, t->data, 8);
  assert_true(y == x);
  assert_int_equal(st_file_n_meta(f), 0);
  st_file_free(f);
  /* An empty writer gives a valid empty file. */
  assert_int_equal(st_writer_create(&w), 0);
  assert_int_equal(st_writer_write(w, path), 0);
  st_writer_free(w);
  assert_int_equal(st_file_open(&f, path), 0);
  assert_int_equal(st_file_n_tensors(f), 0);
  st_file_free(f);
  st_file_free(NULL);
  st_writer_free(NULL);
  st_checkpoint_free(NULL);
  free(path);
  free(dir);
}

static void test_writer_errors(void **state) {
  (void)state;
  st_writer *w;
  assert_int_equal(st_writer_create(&w), 0);
  float d[6] = {0};
  int64_t shape[2] = {2, 3};
  assert_int_equal(st_writer_add(w, "a", SC_DTYPE_F32, 2, shape, d, 24), 0);
  assert_int_equal(st_writer_add(w, "a", SC_DTYPE_F32, 2, shape, d, 24), SC_ERR_ARG);
  assert_string_equal(sc_error_get(), "safetensors writer: duplicate tensor name 'a'");
  assert_int_equal(st_writer_add(w, "b", SC_DTYPE_BF16, 2, shape, d, 24), SC_ERR_ARG);
  assert_string_equal(sc_error_get(), "safetensors writer: tensor 'b' has shape [2,3] as BF16 but 24 bytes were given");
  assert_int_equal(st_writer_add(w, "c", SC_DTYPE_F32, ST_MAX_DIMS + 1, shape, d, 24), SC_ERR_ARG);
  assert_int_equal(st_writer_add(w, "__metadata__", SC_DTYPE_F32, 2, shape, d, 24), SC_ERR_ARG);
  int64_t neg[1] = {-1};
  assert_int_equal(st_writer_add(w, "n", SC_DTYPE_F32, 1, neg, d, 0), SC_ERR_ARG);
  assert_int_equal(st_writer_add(w, "\xff", SC_DTYPE_F32, 2, shape, d, 24), SC_ERR_ARG);
  assert_int_equal(st_writer_add_meta(w, "k", "v"), 0);
  assert_int_equal(st_writer_add_meta(w, "k", "w"), SC_ERR_ARG);
  assert_string_equal(sc_error_get(), "safetensors writer: duplicate metadata key 'k'");
  assert_int_equal(st_writer_data_bytes(w), 24);
  char *dir = tu_tmpdir("st_writer_err");
  char *bad = tu_join(dir, "no/such/dir/x.safetensors");
  assert_int_equal(st_writer_write(w, bad), SC_ERR_IO);
  assert_non_null(strstr(sc_error_get(), "no/such/dir/x.safetensors"));
  st_writer_free(w);
  free(bad);
  free(dir);
}

/* ==== malformed files ==== */

static void test_bad_length_prefix(void **state) {
  (void)state;
  unsigned char b[16] = {0};
  st_file *f;
  assert_int_equal(st_file_from_memory(&f, b, 5, "t.safetensors"), SC_ERR_FORMAT);
  assert_string_equal(sc_error_get(),
                      "t.safetensors: file is 5 bytes, too short for the 8-byte header length (truncated?)");
  b[0] = 1;
  assert_int_equal(st_file_from_memory(&f, b, 16, "t.safetensors"), SC_ERR_FORMAT);
  assert_string_equal(sc_error_get(), "t.safetensors: header length 1 is too small");
  b[0] = 9;
  assert_int_equal(st_file_from_memory(&f, b, 16, "t.safetensors"), SC_ERR_FORMAT);
  assert_string_equal(sc_error_get(),
                      "t.safetensors: header length 9 is larger than the 8 bytes after it (truncated?)");
  b[0] = 0;
  b[3] = 0x10; /* 256 MiB */
  assert_int_equal(st_file_from_memory(&f, b, 16, "t.safetensors"), SC_ERR_FORMAT);
  assert_string_equal(sc_error_get(), "t.safetensors: header length 268435456 exceeds the limit of 104857600 bytes");
}

/* A valid file cut short at every length fails with a message naming it. */
static void test_truncated(void **state) {
  (void)state;
  unsigned char *b;
  const char *h = "{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]}}";
  st_file *f = expect_good(h, 8, &b);
  st_file_free(f);
  size_t full = 8 + strlen(h) + 8;
  for (size_t len = 0; len < full; len++) {
    assert_int_not_equal(st_file_from_memory(&f, b, len, "cut.safetensors"), 0);
    assert_memory_equal(sc_error_get(), "cut.safetensors: ", 17);
  }
  assert_int_equal(st_file_from_memory(&f, b, full - 1, "cut.safetensors"), SC_ERR_FORMAT);
  assert_string_equal(sc_error_get(),
                      "cut.safetensors: tensor 'a' has data range [0,8) outside the data section (7 bytes)");
  free(b);
}

static void test_bad_headers(void **state) {
  (void)state;
  expect_bad("{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]}", 8,
             "bad.safetensors: malformed JSON at line 1, column 53");
  expect_bad("[1,2]", 0, "bad.safetensors: header is not a JSON object");
  expect_bad("{\"a\":{\"dtype\":\"F33\",\"shape\":[2],\"data_offsets\":[0,8]}}", 8,
             "bad.safetensors: tensor 'a' has unknown dtype 'F33'");
  expect_bad("{\"a\":{\"dtype\":\"BF16\",\"shape\":[2,3],\"data_offsets\":[0,10]}}", 10,
             "bad.safetensors: tensor 'a' has shape [2,3] (12 bytes as BF16) but its data range is 10 bytes");
  expect_bad("{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]},"
             "\"b\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[4,12]}}",
             12, "bad.safetensors: tensors 'a' [0,8) and 'b' [4,12) have overlapping data ranges");
  expect_bad("{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[8,16]}}", 12,
             "bad.safetensors: tensor 'a' has data range [8,16) outside the data section (12 bytes)");
  expect_bad("{\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4]},"
             "\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[4,8]}}",
             8, "bad.safetensors: duplicate tensor name 'a'");
  expect_bad("{\"a\":[]}", 0, "bad.safetensors: tensor 'a' is not an object");
  expect_bad("{\"a\":{\"shape\":[1],\"data_offsets\":[0,4]}}", 4, "bad.safetensors: tensor 'a' has no \"dtype\" string");
  expect_bad("{\"a\":{\"dtype\":7,\"shape\":[1],\"data_offsets\":[0,4]}}", 4,
             "bad.safetensors: tensor 'a' has no \"dtype\" string");
  expect_bad("{\"a\":{\"dtype\":\"F32\",\"data_offsets\":[0,4]}}", 4, "bad.safetensors: tensor 'a' has no \"shape\" array");
  expect_bad("{\"a\":{\"dtype\":\"F32\",\"shape\":[\"1\"],\"data_offsets\":[0,4]}}", 4,
             "bad.safetensors: tensor 'a' has shape entry 0 that is not a non-negative integer");
  expect_bad("{\"a\":{\"dtype\":\"F32\",\"shape\":[1,-1],\"data_offsets\":[0,4]}}", 4,
             "bad.safetensors: tensor 'a' has shape entry 1 that is not a non-negative integer");
  expect_bad("{\"a\":{\"dtype\":\"F32\",\"shape\":[1.5],\"data_offsets\":[0,4]}}", 4,
             "bad.safetensors: tensor 'a' has shape entry 0 that is not a non-negative integer");
  expect_bad("{\"a\":{\"dtype\":\"F32\",\"shape\":[1,1,1,1,1,1,1,1,1],\"data_offsets\":[0,4]}}", 4,
             "bad.safetensors: tensor 'a' has 9 dims, more than the limit of 8");
  expect_bad("{\"a\":{\"dtype\":\"F32\",\"shape\":[9007199254740992,9007199254740992],\"data_offsets\":[0,4]}}", 4,
             "bad.safetensors: tensor 'a' has shape [9007199254740992,9007199254740992] whose element count overflows");
  expect_bad("{\"a\":{\"dtype\":\"F64\",\"shape\":[1125899906842624,4096],\"data_offsets\":[0,4]}}", 4,
             "bad.safetensors: tensor 'a' has shape [1125899906842624,4096] whose byte size overflows");
  expect_bad("{\"a\":{\"dtype\":\"F32\",\"shape\":[1]}}", 4,
             "bad.safetensors: tensor 'a' has no \"data_offsets\" array of 2 integers");
  expect_bad("{\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4,8]}}", 8,
             "bad.safetensors: tensor 'a' has no \"data_offsets\" array of 2 integers");
  expect_bad("{\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[-4,0]}}", 4,
             "bad.safetensors: tensor 'a' has negative data_offsets [-4,0]");
  expect_bad("{\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[4,0]}}", 4,
             "bad.safetensors: tensor 'a' has data_offsets [4,0] with begin after end");
  expect_bad("{\"__metadata__\":{\"k\":1}}", 0, "bad.safetensors: __metadata__ value of 'k' is not a string");
  expect_bad("{\"__metadata__\":[]}", 0, "bad.safetensors: __metadata__ is not an object");
  expect_bad("{\"__metadata__\":{},\"__metadata__\":{}}", 0, "bad.safetensors: duplicate entry '__metadata__'");
  expect_bad("{\"a\xff\":1}", 0, "bad.safetensors: header is not valid UTF-8 (byte 3 of the header)");
  expect_bad("{\"a\xed\xa0\x80\":1}", 0, "bad.safetensors: header is not valid UTF-8 (byte 3 of the header)");
}

/* Things the format allows: extra fields, space padding, empty tensors
 * anywhere, gaps, and a header with only metadata. */
static void test_lenient_inputs(void **state) {
  (void)state;
  unsigned char *b;
  st_file *f = expect_good("{\"b\":{\"dtype\":\"U8\",\"shape\":[2],\"data_offsets\":[2,4],\"extra\":1},"
                           "\"e\":{\"dtype\":\"F32\",\"shape\":[0],\"data_offsets\":[3,3]},"
                           "\"a\":{\"dtype\":\"U8\",\"shape\":[1],\"data_offsets\":[0,1]}}      ",
                           6, &b);
  assert_int_equal(st_file_n_tensors(f), 3);
  /* Offset order: a, b, e (empty ranges overlap nothing). */
  assert_string_equal(st_file_tensor(f, 0)->name, "a");
  assert_string_equal(st_file_tensor(f, 1)->name, "b");
  assert_string_equal(st_file_tensor(f, 2)->name, "e");
  assert_null(st_file_tensor(f, 3));
  assert_int_equal(((const unsigned char *)st_file_find(f, "b")->data)[0], 2);
  assert_null(st_file_find(f, "e")->data);
  st_file_free(f);
  free(b);
  f = expect_good("{\"__metadata__\":{\"format\":\"pt\"}}", 0, &b);
  assert_int_equal(st_file_n_tensors(f), 0);
  assert_string_equal(st_file_meta_get(f, "format"), "pt");
  st_file_free(f);
  free(b);
}

static void test_open_errors(void **state) {
  (void)state;
  char *dir = tu_tmpdir("st_open_err");
  char *p = tu_join(dir, "missing.safetensors");
  st_file *f;
  assert_int_equal(st_file_open(&f, p), SC_ERR_IO);
  assert_non_null(strstr(sc_error_get(), "missing.safetensors: cannot open"));
  st_checkpoint *c;
  assert_int_equal(st_checkpoint_open(&c, p), SC_ERR_IO);
  assert_non_null(strstr(sc_error_get(), "missing.safetensors: no such file or folder"));
  assert_int_equal(st_checkpoint_open(&c, dir), SC_ERR_MISSING);
  assert_non_null(strstr(sc_error_get(), ": no model.safetensors.index.json or model.safetensors in this folder"));
  tu_write(p, "", 0);
  assert_int_equal(st_file_open(&f, p), SC_ERR_FORMAT);
  assert_non_null(strstr(sc_error_get(), "missing.safetensors: file is 0 bytes"));
  free(p);
  free(dir);
}

/* ==== checkpoints ==== */

/* Writes one shard holding float tensors named in `names` (NULL-ended). */
static void write_shard(const char *dir, const char *file, const char **names) {
  static const float v[4] = {1, 2, 3, 4};
  int64_t shape[1] = {4};
  st_writer *w;
  assert_int_equal(st_writer_create(&w), 0);
  for (int i = 0; names[i]; i++) assert_int_equal(st_writer_add(w, names[i], SC_DTYPE_F32, 1, shape, v, 16), 0);
  char *p = tu_join(dir, file);
  assert_int_equal(st_writer_write(w, p), 0);
  free(p);
  st_writer_free(w);
}

static void write_index(const char *dir, const char *weight_map) {
  char text[2048];
  snprintf(text, sizeof text, "{\"metadata\":{\"total_size\":64},\"weight_map\":{%s}}", weight_map);
  char *p = tu_join(dir, "model.safetensors.index.json");
  tu_write_str(p, text);
  free(p);
}

static char *sharded_dir(const char *name) {
  char *dir = tu_tmpdir(name);
  write_shard(dir, "model-00001-of-00002.safetensors", (const char *[]){"z.w", "a.w", NULL});
  write_shard(dir, "model-00002-of-00002.safetensors", (const char *[]){"m.w", "b.w", NULL});
  return dir;
}

static const char *GOOD_MAP =
    "\"z.w\":\"model-00001-of-00002.safetensors\",\"a.w\":\"model-00001-of-00002.safetensors\","
    "\"m.w\":\"model-00002-of-00002.safetensors\",\"b.w\":\"model-00002-of-00002.safetensors\"";

static void test_checkpoint_sharded(void **state) {
  (void)state;
  char *dir = sharded_dir("st_sharded");
  write_index(dir, GOOD_MAP);
  st_checkpoint *c;
  if (st_checkpoint_open(&c, dir)) fail_msg("%s", sc_error_get());
  assert_int_equal(st_checkpoint_n_files(c), 2);
  assert_int_equal(st_checkpoint_n_tensors(c), 4);
  static const char *sorted[] = {"a.w", "b.w", "m.w", "z.w"};
  for (int i = 0; i < 4; i++) assert_string_equal(st_checkpoint_tensor(c, i)->name, sorted[i]);
  assert_null(st_checkpoint_tensor(c, 4));
  const st_tensor *t = st_checkpoint_find(c, "m.w");
  assert_non_null(t);
  assert_non_null(strstr(st_file_path(st_checkpoint_file(c, t->shard)), "model-00002-of-00002.safetensors"));
  float x;
  memcpy(&x, (const char *)t->data + 12, 4);
  assert_true(x == 4.0f);
  assert_null(st_checkpoint_find(c, "nope"));
  assert_null(st_checkpoint_file(c, 2));
  st_checkpoint_free(c);
  free(dir);
}

static void expect_ckpt_error(const char *dir, const char *needle1, const char *needle2) {
  st_checkpoint *c = (st_checkpoint *)1;
  assert_int_not_equal(st_checkpoint_open(&c, dir), 0);
  assert_null(c);
  const char *m = sc_error_get();
  if (!strstr(m, needle1) || (needle2 && !strstr(m, needle2)))
    fail_msg("message '%s' lacks '%s' / '%s'", m, needle1, needle2 ? needle2 : "");
}

static void test_checkpoint_errors(void **state) {
  (void)state;
  char *dir = sharded_dir("st_sharded_bad");
  write_index(dir, "\"a.w\":\"model-00003-of-00002.safetensors\"");
  expect_ckpt_error(dir, "model.safetensors.index.json: weight_map names shard 'model-00003-of-00002.safetensors', but ",
                    "model-00003-of-00002.safetensors does not exist");
  write_index(dir, "\"a.w\":\"model-00001-of-00002.safetensors\",\"q.w\":\"model-00001-of-00002.safetensors\"");
  expect_ckpt_error(dir, "model.safetensors.index.json: the index maps tensor 'q.w' to ",
                    "model-00001-of-00002.safetensors, which has no such tensor");
  write_index(dir, "\"a.w\":\"model-00001-of-00002.safetensors\"");
  expect_ckpt_error(dir, "model-00001-of-00002.safetensors: tensor 'z.w' is not listed in the index ",
                    "model.safetensors.index.json");
  write_index(dir, "\"a.w\":\"../model-00001-of-00002.safetensors\"");
  expect_ckpt_error(dir, "weight_map entry 'a.w' names shard '../model-00001-of-00002.safetensors', which is not a plain file name",
                    NULL);
  write_index(dir, "\"a.w\":\"sub/x.safetensors\"");
  expect_ckpt_error(dir, "which is not a plain file name", NULL);
  write_index(dir, "\"a.w\":3");
  expect_ckpt_error(dir, "model.safetensors.index.json: weight_map entry 'a.w' is not a string", NULL);
  char *p = tu_join(dir, "model.safetensors.index.json");
  tu_write_str(p, "{\"weight_map\":[]}");
  expect_ckpt_error(dir, "model.safetensors.index.json: no \"weight_map\" object", NULL);
  tu_write_str(p, "{\"weight_map\":");
  expect_ckpt_error(dir, "model.safetensors.index.json: malformed JSON", NULL);
  free(p);
  /* A tensor in two shards: the shard the index does not name is at fault. */
  write_shard(dir, "model-00002-of-00002.safetensors", (const char *[]){"m.w", "b.w", "a.w", NULL});
  write_index(dir, GOOD_MAP);
  expect_ckpt_error(dir, "model-00002-of-00002.safetensors: has tensor 'a.w', which the index ",
                    "maps to");
  /* Listed twice in the weight map. */
  char map[1024];
  snprintf(map, sizeof map, "%s,\"a.w\":\"model-00002-of-00002.safetensors\"", GOOD_MAP);
  write_index(dir, map);
  expect_ckpt_error(dir, "model.safetensors.index.json: weight_map lists tensor 'a.w' twice", NULL);
  /* A malformed shard: its own message. */
  char *shard = tu_join(dir, "model-00002-of-00002.safetensors");
  tu_write(shard, "\x02\0\0\0\0\0\0\0[]", 10);
  write_index(dir, GOOD_MAP);
  expect_ckpt_error(dir, "model-00002-of-00002.safetensors: header is not a JSON object", NULL);
  free(shard);
  free(dir);
}

/* No index: model.safetensors in the folder; or the file itself. */
static void test_checkpoint_single(void **state) {
  (void)state;
  char *dir = tu_tmpdir("st_single");
  write_shard(dir, "model.safetensors", (const char *[]){"y", "x", NULL});
  st_checkpoint *c;
  assert_int_equal(st_checkpoint_open(&c, dir), 0);
  assert_int_equal(st_checkpoint_n_files(c), 1);
  assert_int_equal(st_checkpoint_n_tensors(c), 2);
  assert_string_equal(st_checkpoint_tensor(c, 0)->name, "x");
  assert_int_equal(st_checkpoint_find(c, "y")->shard, 0);
  st_checkpoint_free(c);
  char *p = tu_join(dir, "model.safetensors");
  assert_int_equal(st_checkpoint_open(&c, p), 0);
  assert_int_equal(st_checkpoint_n_tensors(c), 2);
  st_checkpoint_free(c);
  free(p);
  free(dir);
}

/* ==== the numpy reference ==== */

typedef struct recipe_row {
  const char *name;
  sc_dtype dtype;
  int n_dims;
  int64_t shape[3];
} recipe_row;

/* Same table as RECIPE in st_reference.py. */
static const recipe_row RECIPE[] = {
    {"a.f32", SC_DTYPE_F32, 2, {3, 4}},     {"b.bf16", SC_DTYPE_BF16, 3, {2, 3, 5}}, {"c.f16", SC_DTYPE_F16, 1, {7}},
    {"d.f64", SC_DTYPE_F64, 2, {2, 2}},     {"e.i8", SC_DTYPE_I8, 1, {5}},           {"f.i16", SC_DTYPE_I16, 1, {3}},
    {"g.i32", SC_DTYPE_I32, 2, {2, 2}},     {"h.i64", SC_DTYPE_I64, 1, {3}},         {"i.u8", SC_DTYPE_U8, 1, {4}},
    {"j.u16", SC_DTYPE_U16, 1, {3}},        {"k.u32", SC_DTYPE_U32, 1, {2}},         {"l.u64", SC_DTYPE_U64, 1, {3}},
    {"m.bool", SC_DTYPE_BOOL, 2, {3, 3}},   {"n.scalar", SC_DTYPE_F32, 0, {0}},      {"o.empty", SC_DTYPE_F32, 2, {0, 4}},
};
#define N_RECIPE ((int)(sizeof RECIPE / sizeof RECIPE[0]))

/* Element i of recipe tensor k into out (little-endian host). */
static void recipe_value(int k, sc_dtype dt, int64_t i, unsigned char *out) {
  int64_t base = (i * 7 + k * 13) % 101 - 50;
  float f = (float)base / 8.0f;
  union {
    float f32; double f64; uint16_t u16; int8_t i8; int16_t i16; int32_t i32; int64_t i64;
    uint8_t u8; uint32_t u32; uint64_t u64;
  } v = {0};
  switch (dt) {
    case SC_DTYPE_F32: v.f32 = f; break;
    case SC_DTYPE_F64: v.f64 = (double)base / 8.0 + 1.0 / 1099511627776.0; break;
    case SC_DTYPE_F16: v.u16 = sc_f16_from_f32(f); break;
    case SC_DTYPE_BF16: v.u16 = sc_bf16_from_f32(f); break;
    case SC_DTYPE_BOOL: v.u8 = (i + k) % 3 == 0; break;
    case SC_DTYPE_I8: v.i8 = (int8_t)base; break;
    case SC_DTYPE_I16: v.i16 = (int16_t)base; break;
    case SC_DTYPE_I32: v.i32 = (int32_t)base; break;
    case SC_DTYPE_I64: v.i64 = base * ((int64_t)1 << 40); break;
    case SC_DTYPE_U8: v.u8 = (uint8_t)(base + 50); break;
    case SC_DTYPE_U16: v.u16 = (uint16_t)(base + 50); break;
    case SC_DTYPE_U32: v.u32 = (uint32_t)(base + 50); break;
    case SC_DTYPE_U64: v.u64 = (uint64_t)(base + 50) << 56; break;
    default: fail();
  }
  memcpy(out, &v, sc_dtype_size(dt));
}

static unsigned char *recipe_data(int k, size_t *nbytes) {
  int64_t n = 1;
  for (int d = 0; d < RECIPE[k].n_dims; d++) n *= RECIPE[k].shape[d];
  size_t sz = sc_dtype_size(RECIPE[k].dtype);
  *nbytes = (size_t)n * sz;
  unsigned char *b = malloc(*nbytes + 1);
  for (int64_t i = 0; i < n; i++) recipe_value(k, RECIPE[k].dtype, i, b + (size_t)i * sz);
  return b;
}

static void test_c_writes_python_reads(void **state) {
  (void)state;
  char *dir = tu_tmpdir("st_py_read");
  char *path = tu_join(dir, "recipe.safetensors");
  unsigned char *bufs[N_RECIPE];
  st_writer *w;
  assert_int_equal(st_writer_create(&w), 0);
  assert_int_equal(st_writer_add_meta(w, "format", "pt"), 0);
  assert_int_equal(st_writer_add_meta(w, "recipe", "saecap-st-v1"), 0);
  for (int k = 0; k < N_RECIPE; k++) {
    size_t nb;
    bufs[k] = recipe_data(k, &nb);
    assert_int_equal(st_writer_add(w, RECIPE[k].name, RECIPE[k].dtype, RECIPE[k].n_dims, RECIPE[k].shape, bufs[k], nb), 0);
  }
  assert_int_equal(st_writer_write(w, path), 0);
  st_writer_free(w);
  char *s = script(), *out = NULL;
  int st = tu_run(&out, NULL, "/usr/bin/python3 '%s' check '%s' 2>&1", s, path);
  if (st || tu_count_lines(out) != N_RECIPE) fail_msg("st_reference.py check failed (%d):\n%s", st, out);
  for (int k = 0; k < N_RECIPE; k++) free(bufs[k]);
  free(out);
  free(s);
  free(path);
  free(dir);
}

static void test_python_writes_c_reads(void **state) {
  (void)state;
  char *dir = tu_tmpdir("st_py_write");
  char *path = tu_join(dir, "py.safetensors");
  char *s = script(), *out = NULL;
  int st = tu_run(&out, NULL, "/usr/bin/python3 '%s' write '%s' 2>&1", s, path);
  if (st) fail_msg("st_reference.py write failed (%d):\n%s", st, out);
  st_file *f;
  if (st_file_open(&f, path)) fail_msg("%s", sc_error_get());
  assert_int_equal(st_file_n_tensors(f), N_RECIPE);
  assert_string_equal(st_file_meta_get(f, "recipe"), "saecap-st-v1");
  for (int k = 0; k < N_RECIPE; k++) {
    const st_tensor *t = st_file_find(f, RECIPE[k].name);
    assert_non_null(t);
    assert_int_equal(t->dtype, RECIPE[k].dtype);
    assert_int_equal(t->n_dims, RECIPE[k].n_dims);
    for (int d = 0; d < t->n_dims; d++) assert_int_equal(t->shape[d], RECIPE[k].shape[d]);
    size_t nb;
    unsigned char *want = recipe_data(k, &nb);
    assert_int_equal(t->nbytes, nb);
    if (nb) assert_memory_equal(t->data, want, nb);
    free(want);
  }
  st_file_free(f);
  free(out);
  free(s);
  free(path);
  free(dir);
}

/* Random data written by C: python's per-tensor checksums match ours. */
static void test_python_digest(void **state) {
  (void)state;
  sc_rng rng;
  sc_rng_seed(&rng, 99);
  rt_tensor t[SC_DTYPE_COUNT + 1];
  int n = random_tensors(t, &rng);
  char *dir = tu_tmpdir("st_py_digest");
  char *path = tu_join(dir, "rand.safetensors");
  assert_int_equal(write_rt(path, t, n), 0);
  char *s = script(), *out = NULL;
  int st = tu_run(&out, NULL, "/usr/bin/python3 '%s' digest '%s' 2>&1", s, path);
  if (st) fail_msg("st_reference.py digest failed (%d):\n%s", st, out);
  st_checkpoint *c;
  assert_int_equal(st_checkpoint_open(&c, path), 0);
  assert_int_equal(tu_count_lines(out), n);
  const char *line = out;
  for (int i = 0; i < st_checkpoint_n_tensors(c); i++) { /* both sorted by name */
    const st_tensor *x = st_checkpoint_tensor(c, i);
    char want[256], shape[128] = "";
    size_t k = 0;
    for (int d = 0; d < x->n_dims; d++) k += (size_t)snprintf(shape + k, sizeof shape - k, "%s%lld", d ? "," : "", (long long)x->shape[d]);
    snprintf(want, sizeof want, "%s %s [%s] %016llx\n", x->name, sc_dtype_name(x->dtype), shape,
             (unsigned long long)fnv1a(x->data, x->nbytes));
    if (strncmp(line, want, strlen(want))) fail_msg("python: %.*s\nC:      %s", (int)strcspn(line, "\n"), line, want);
    line += strlen(want);
  }
  st_checkpoint_free(c);
  for (int i = 0; i < n; i++) free(t[i].data);
  free(out);
  free(s);
  free(path);
  free(dir);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_roundtrip_all_dtypes), cmocka_unit_test(test_scalar_and_rewrite),
      cmocka_unit_test(test_writer_errors),        cmocka_unit_test(test_bad_length_prefix),
      cmocka_unit_test(test_truncated),            cmocka_unit_test(test_bad_headers),
      cmocka_unit_test(test_lenient_inputs),       cmocka_unit_test(test_open_errors),
      cmocka_unit_test(test_checkpoint_sharded),   cmocka_unit_test(test_checkpoint_errors),
      cmocka_unit_test(test_checkpoint_single),    cmocka_unit_test(test_c_writes_python_reads),
      cmocka_unit_test(test_python_writes_c_reads), cmocka_unit_test(test_python_digest),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
