/* test_preprocess.c: Gemma 3 image preprocessing against PIL and numpy.
 *
 * - Resize: byte for byte against Debian python3-pil's Image.resize on
 *   random images (down, up, one axis unchanged, extreme aspect ratios, 1xN,
 *   the 896 and 64 targets, odd sizes), for BILINEAR and the other filters.
 * - pixel_values: bitwise against HF's formula in numpy
 *   (tests/reference/pre_reference.py pixels), and against the independent
 *   tests/reference/g3_reference.py preprocess on a saecap tiny-model.
 * - EXIF: orientations 1-8 in JPEG (both byte orders) and PNG eXIf against
 *   ImageOps.exif_transpose, plus random TIFF blocks against Pillow's
 *   Exif reader.
 * - preprocessor_config.json: defaults, nulls, and every error message.
 */
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
#include "io/image.h"
#include "model/preprocess.h"
#include "tu.h"

/* PIL-exact: every resized byte must be equal. */
#define PRE_RESIZE_TOL 0
/* pixel_values must be bitwise equal to HF's float32 sequence. */
#define PRE_PIXEL_ULP_TOL 0
/* Random EXIF blocks compared with Pillow's reader. */
#define PRE_EXIF_RANDOM_N 1500

/* ---- helpers ---------------------------------------------------------- */

static unsigned char *random_image(int w, int h, uint64_t seed) {
  sc_rng r;
  sc_rng_seed(&r, seed);
  unsigned char *p = malloc((size_t)w * h * 3);
  assert_non_null(p);
  /* smooth gradient plus noise so both flat areas and edges are exercised */
  for (int y = 0; y < h; y++)
    for (int x = 0; x < w; x++)
      for (int c = 0; c < 3; c++) {
        int v = (x * 255 / (w > 1 ? w - 1 : 1) + y * 97 / (h > 1 ? h - 1 : 1) * (c + 1)) % 256;
        if (sc_rng_below(&r, 4) == 0) v = (int)sc_rng_below(&r, 256);
        p[((size_t)y * w + x) * 3 + c] = (unsigned char)v;
      }
  return p;
}

static int run_reference(const char *mode, const char *dir, const char *extra) {
  char *err = NULL;
  int rc = tu_run(NULL, &err, "/usr/bin/python3 '%s/tests/reference/pre_reference.py' %s '%s' %s",
                  tu_src(), mode, dir, extra ? extra : "");
  if (rc != 0) fprintf(stderr, "pre_reference.py %s failed (%d):\n%s\n", mode, rc, err);
  free(err);
  return rc;
}

/* Number of differing bytes; prints the first. */
static size_t count_diff(const unsigned char *a, const unsigned char *b, size_t n, const char *what) {
  size_t nd = 0;
  for (size_t i = 0; i < n; i++)
    if (abs((int)a[i] - (int)b[i]) > PRE_RESIZE_TOL && nd++ == 0)
      fprintf(stderr, "%s: first difference at byte %zu: %d vs PIL %d\n", what, i, a[i], b[i]);
  return nd;
}

/* ---- resize vs PIL ---------------------------------------------------- */

typedef struct resize_case {
  int sw, sh, dw, dh, filter;
} resize_case;

static const resize_case resize_cases[] = {
    {640, 480, 896, 896, 2},  {1000, 750, 896, 896, 2}, {1500, 1100, 896, 896, 2},
    {300, 200, 896, 896, 2},  {896, 896, 896, 896, 2},  {1200, 896, 896, 896, 2},
    {896, 1300, 896, 896, 2}, {896, 500, 896, 896, 2},  {4000, 30, 64, 64, 2},
    {30, 3000, 64, 64, 2},    {1, 1, 64, 64, 2},        {1, 500, 64, 64, 2},
    {500, 1, 64, 64, 2},      {96, 96, 64, 64, 2},      {37, 91, 64, 64, 2},
    {64, 64, 1, 1, 2},        {123, 77, 1, 57, 2},      {17, 5, 3, 900, 2},
    {97, 61, 64, 64, 2},      {65, 63, 64, 64, 2},      {1023, 767, 896, 896, 2},
    {7, 7, 13, 5, 2},         {3, 1, 1, 1, 2},          {640, 480, 896, 896, 3},
    {300, 200, 64, 64, 3},    {97, 61, 64, 64, 1},      {37, 91, 896, 896, 1},
    {97, 61, 64, 64, 4},      {300, 200, 896, 896, 4},  {97, 61, 64, 64, 5},
    {37, 91, 896, 896, 5},    {1000, 750, 64, 64, 3},   {1, 300, 64, 64, 1},
};
#define N_RESIZE (sizeof resize_cases / sizeof resize_cases[0])

static void write_resize_inputs(const char *dir) {
  char *list = tu_join(dir, "cases.txt");
  FILE *f = fopen(list, "w");
  assert_non_null(f);
  for (size_t i = 0; i < N_RESIZE; i++) {
    const resize_case *c = &resize_cases[i];
    char name[64];
    snprintf(name, sizeof name, "in%zu.rgb", i);
    unsigned char *img = random_image(c->sw, c->sh, 100 + i);
    char *p = tu_join(dir, name);
    tu_write(p, img, (size_t)c->sw * c->sh * 3);
    free(p);
    free(img);
    fprintf(f, "%s %d %d %d %d %d out%zu.rgb\n", name, c->sw, c->sh, c->dw, c->dh, c->filter, i);
  }
  fclose(f);
  free(list);
}

static void check_resize_case(const char *dir, size_t i) {
  const resize_case *c = &resize_cases[i];
  char name[64], what[96];
  snprintf(name, sizeof name, "in%zu.rgb", i);
  char *p = tu_join(dir, name);
  size_t n;
  unsigned char *in = (unsigned char *)tu_read(p, &n);
  free(p);
  snprintf(name, sizeof name, "out%zu.rgb", i);
  p = tu_join(dir, name);
  size_t ne;
  unsigned char *want = (unsigned char *)tu_read(p, &ne);
  free(p);
  assert_non_null(in);
  assert_non_null(want);
  size_t out_n = (size_t)c->dw * c->dh * 3;
  assert_int_equal(ne, out_n);
  unsigned char *got = malloc(out_n);
  assert_int_equal(img_resize(got, c->dw, c->dh, in, c->sw, c->sh, c->filter), 0);
  snprintf(what, sizeof what, "resize %dx%d -> %dx%d filter %d", c->sw, c->sh, c->dw, c->dh,
           c->filter);
  assert_int_equal(count_diff(got, want, out_n, what), 0);
  free(got);
  free(in);
  free(want);
}

static void test_resize_matches_pil(void **state) {
  (void)state;
  char *dir = tu_tmpdir("pre_resize");
  write_resize_inputs(dir);
  assert_int_equal(run_reference("resize", dir, NULL), 0);
  for (size_t i = 0; i < N_RESIZE; i++) check_resize_case(dir, i);
  free(dir);
}

/* Decoded files of every kind img_reference.py writes (grey, palette, RGBA,
 * 16-bit PNG, JPEG 4:2:0 / progressive / CMYK ...), the first twelve to 896
 * and the rest to 64, against load_image + Image.resize. */
static void test_decoded_kinds_resize_like_hf(void **state) {
  (void)state;
  char *dir = tu_tmpdir("pre_kinds"), *list = tu_join(dir, "cases.txt"), *err = NULL;
  int rc = tu_run(NULL, &err, "/usr/bin/python3 '%s/tests/reference/img_reference.py' '%s'",
                  tu_src(), dir);
  assert_int_equal(rc, 0);
  FILE *in = fopen(list, "r"), *out;
  char *load = tu_join(dir, "load.txt"), file[128];
  assert_non_null(in);
  assert_non_null(out = fopen(load, "w"));
  int w, h, n = 0;
  while (fscanf(in, "%127s %d %d", file, &w, &h) == 3) {
    int s = n < 12 ? 896 : 64;
    fprintf(out, "%s/%s %d %d r%d.rgb\n", dir, file, s, s + n % 3, n);
    n++;
  }
  fclose(in);
  fclose(out);
  assert_true(n >= 30);
  assert_int_equal(run_reference("load", dir, NULL), 0);
  assert_non_null(in = fopen(load, "r"));
  char path[400], want_name[32];
  for (int i = 0; fscanf(in, "%399s %d %d %31s", path, &w, &h, want_name) == 4; i++) {
    img_rgb8 im;
    assert_int_equal(img_load_for_model(path, 1, &im), 0);
    unsigned char *got = malloc((size_t)w * h * 3);
    assert_int_equal(img_resize_bilinear(got, w, h, im.pixels, im.width, im.height), 0);
    char *wp = tu_join(dir, want_name);
    size_t len;
    unsigned char *want = (unsigned char *)tu_read(wp, &len);
    assert_int_equal(len, (size_t)w * h * 3);
    assert_int_equal(count_diff(got, want, len, path), 0);
    free(want), free(wp), free(got);
    img_free(&im);
  }
  fclose(in);
  free(load), free(list), free(err), free(dir);
}

static void test_resize_bilinear_identity_and_errors(void **state) {
  (void)state;
  unsigned char *img = random_image(9, 4, 7), out[9 * 4 * 3];
  assert_int_equal(img_resize_bilinear(out, 9, 4, img, 9, 4), 0);
  assert_memory_equal(out, img, sizeof out);
  /* a constant image stays constant: the quantised weights sum to 1 */
  memset(img, 200, 9 * 4 * 3);
  assert_int_equal(img_resize_bilinear(out, 5, 3, img, 9, 4), 0);
  for (size_t i = 0; i < 5 * 3 * 3; i++) assert_int_equal(out[i], 200);
  assert_int_equal(img_resize(out, 0, 3, img, 9, 4, IMG_RESAMPLE_BILINEAR), SC_ERR_ARG);
  assert_string_equal(sc_error_get(), "image resize: bad size 9x4 -> 0x3");
  assert_int_equal(img_resize(out, 3, 3, img, 9, 4, IMG_RESAMPLE_NEAREST), SC_ERR_ARG);
  assert_string_equal(sc_error_get(), "image resize: unsupported PIL filter 0");
  free(img);
}

/* ---- pixel_values vs HF's formula ------------------------------------- */

static const char *const pixel_cfgs[] = {
    /* the real checkpoint's preprocessor_config.json (spec §1.4) */
    "{\"do_convert_rgb\": null, \"do_normalize\": true, \"do_pan_and_scan\": null,"
    " \"do_rescale\": true, \"do_resize\": true, \"image_mean\": [0.5, 0.5, 0.5],"
    " \"image_processor_type\": \"Gemma3ImageProcessor\", \"image_seq_length\": 256,"
    " \"image_std\": [0.5, 0.5, 0.5], \"resample\": 2, \"rescale_factor\": 0.00392156862745098,"
    " \"size\": {\"height\": 896, \"width\": 896}}",
    "{\"size\": {\"height\": 64, \"width\": 64}}",
    "{\"size\": {\"height\": 48, \"width\": 80}, \"image_mean\": [0.48145466, 0.4578275, "
    "0.40821073], \"image_std\": [0.26862954, 0.26130258, 0.27577711], \"resample\": 3}",
    "{\"do_rescale\": false, \"size\": {\"height\": 20, \"width\": 30}, \"image_mean\": 127.5,"
    " \"image_std\": 63.7}",
    "{\"do_normalize\": false, \"rescale_factor\": 0.0039, \"size\": {\"height\": 31, \"width\": 7}}",
    "{\"do_resize\": false}",
};
#define N_PIXEL_CFG (sizeof pixel_cfgs / sizeof pixel_cfgs[0])
static const int pixel_img[N_PIXEL_CFG][2] = {{1000, 750}, {96, 96}, {123, 45},
                                              {40, 50},   {9, 13},  {33, 17}};

static void check_pixels(const char *dir, size_t i) {
  img_preproc_config cfg;
  assert_int_equal(img_preproc_config_parse(pixel_cfgs[i], strlen(pixel_cfgs[i]), "cfg", &cfg), 0);
  img_rgb8 im = {pixel_img[i][0], pixel_img[i][1], NULL};
  im.pixels = random_image(im.width, im.height, 500 + i);
  int w, h;
  img_preproc_out_size(&cfg, &im, &w, &h);
  size_t n = (size_t)3 * w * h;
  float *got = malloc(n * sizeof *got);
  assert_int_equal(img_preprocess(got, &cfg, &im), 0);
  char name[64];
  snprintf(name, sizeof name, "pv%zu.f32", i);
  char *p = tu_join(dir, name);
  size_t ne;
  float *want = (float *)tu_read(p, &ne);
  assert_non_null(want);
  assert_int_equal(ne, n * sizeof(float));
  size_t bad = 0;
  for (size_t k = 0; k < n; k++)
    if (memcmp(&got[k], &want[k], sizeof(float)) != 0 && bad++ == 0)
      fprintf(stderr, "config %zu: first difference at %zu: %.9g vs numpy %.9g\n", i, k, got[k],
              want[k]);
  assert_int_equal(bad, PRE_PIXEL_ULP_TOL);
  free(p);
  free(want);
  free(got);
  free(im.pixels);
}

static void test_pixels_match_hf_formula(void **state) {
  (void)state;
  char *dir = tu_tmpdir("pre_pixels");
  char *list = tu_join(dir, "pixels.txt");
  FILE *f = fopen(list, "w");
  for (size_t i = 0; i < N_PIXEL_CFG; i++) {
    char name[64];
    snprintf(name, sizeof name, "cfg%zu.json", i);
    char *p = tu_join(dir, name);
    tu_write_str(p, pixel_cfgs[i]);
    free(p);
    unsigned char *img = random_image(pixel_img[i][0], pixel_img[i][1], 500 + i);
    snprintf(name, sizeof name, "img%zu.rgb", i);
    p = tu_join(dir, name);
    tu_write(p, img, (size_t)pixel_img[i][0] * pixel_img[i][1] * 3);
    free(p);
    free(img);
    fprintf(f, "img%zu.rgb %d %d cfg%zu.json pv%zu.f32\n", i, pixel_img[i][0], pixel_img[i][1], i, i);
  }
  fclose(f);
  free(list);
  assert_int_equal(run_reference("pixels", dir, NULL), 0);
  for (size_t i = 0; i < N_PIXEL_CFG; i++) check_pixels(dir, i);
  free(dir);
}

/* The two float32 roundings matter: 128 of the 256 bytes differ by 1 ulp
 * from a single-rounded v/127.5 - 1 (docs/notes.md). */
static void test_pixels_endpoints(void **state) {
  (void)state;
  img_preproc_config cfg;
  img_preproc_config_default(&cfg);
  cfg.do_resize = 0;
  unsigned char px[256 * 3];
  for (int v = 0; v < 256; v++) px[3 * v] = px[3 * v + 1] = px[3 * v + 2] = (unsigned char)v;
  img_rgb8 im = {256, 1, px};
  float out[3 * 256];
  assert_int_equal(img_preprocess(out, &cfg, &im), 0);
  assert_true(out[0] == -1.0f && out[255] == 1.0f && out[256 + 255] == 1.0f);
  int differ = 0;
  for (int v = 0; v < 256; v++) {
    float two = ((float)((double)v * (1.0 / 255.0)) - 0.5f) / 0.5f;
    assert_true(memcmp(&out[v], &two, sizeof two) == 0);
    differ += (float)(v / 127.5 - 1.0) != two;
  }
  assert_true(differ > 0); /* the test would miss a single-rounding implementation otherwise */
}

/* ---- independent reference: g3_reference.py on a tiny model ----------- */

/* saecap tiny-model DIR with the real tokenizer; returns the exit status. */
static int make_tiny(const char *dir) {
  char *tok = tu_tokenizer_json(), *err = NULL;
  int rc = tu_run(NULL, &err, "'%s' tiny-model '%s' --tokenizer '%s'", tu_bin(), dir, tok);
  if (rc) fprintf(stderr, "tiny-model failed:\n%s\n", err);
  free(tok);
  free(err);
  return rc;
}

static void check_against_g3(const char *model, const char *image, const char *dir) {
  char *npz = tu_join(dir, "pv.npz"), *raw = tu_join(dir, "pv.f32"), *err = NULL;
  int rc = tu_run(NULL, &err,
                  "/usr/bin/python3 '%s/tests/reference/g3_reference.py' preprocess --model '%s'"
                  " --image '%s' --out '%s' && /usr/bin/python3 -c \"import numpy as np, sys;"
                  " np.load(sys.argv[1])['pixel_values'].astype(np.float32).tofile(sys.argv[2])\""
                  " '%s' '%s'",
                  tu_src(), model, image, npz, npz, raw);
  if (rc) fprintf(stderr, "g3_reference.py preprocess failed:\n%s\n", err);
  assert_int_equal(rc, 0);
  char *cfgp = tu_join(model, "preprocessor_config.json");
  img_preproc_config cfg;
  assert_int_equal(img_preproc_config_load(cfgp, &cfg), 0);
  img_rgb8 im;
  assert_int_equal(img_load_for_model(image, 1, &im), 0);
  int w, h;
  img_preproc_out_size(&cfg, &im, &w, &h);
  size_t n = (size_t)3 * w * h, ne;
  float *got = malloc(n * sizeof *got), *want = (float *)tu_read(raw, &ne);
  assert_int_equal(img_preprocess(got, &cfg, &im), 0);
  assert_int_equal(ne, n * sizeof(float));
  assert_memory_equal(got, want, n * sizeof(float));
  free(got), free(want), free(cfgp), free(npz), free(raw), free(err);
  img_free(&im);
}

static void test_matches_g3_reference(void **state) {
  (void)state;
  char *dir = tu_tmpdir("pre_g3"), *model = tu_join(dir, "tiny");
  assert_int_equal(make_tiny(model), 0);
  assert_int_equal(run_reference("exif", dir, NULL), 0);
  const char *demo[] = {"data/demo/images/img_000.png", "data/demo/images/img_002.jpg"};
  for (size_t i = 0; i < 2; i++) {
    char *p = tu_src_path(demo[i]);
    check_against_g3(model, p, dir);
    free(p);
  }
  const char *exif[] = {"o6_le.jpg", "o8_png.png", "o3_be.jpg"};
  for (size_t i = 0; i < 3; i++) {
    char *p = tu_join(dir, exif[i]);
    check_against_g3(model, p, dir);
    free(p);
  }
  free(model);
  free(dir);
}

/* ---- EXIF orientation ------------------------------------------------- */

static void check_exif_line(const char *dir, const char *file, int w, int h, const char *want_name) {
  char *path = tu_join(dir, file);
  img_rgb8 got, plain;
  assert_int_equal(img_load_for_model(path, 1, &got), 0);
  if (strcmp(want_name, "-") == 0) { /* PIL raises; saecap keeps the stored image */
    assert_int_equal(img_load(path, &plain), 0);
    assert_int_equal(got.width, plain.width);
    assert_memory_equal(got.pixels, plain.pixels, (size_t)got.width * got.height * 3);
    img_free(&plain);
  } else {
    char *wp = tu_join(dir, want_name);
    size_t n;
    unsigned char *want = (unsigned char *)tu_read(wp, &n);
    assert_int_equal(got.width, w);
    assert_int_equal(got.height, h);
    assert_int_equal(n, (size_t)w * h * 3);
    assert_int_equal(count_diff(got.pixels, want, n, file), 0);
    free(want);
    free(wp);
  }
  img_free(&got);
  free(path);
}

static void test_exif_orientations_match_pil(void **state) {
  (void)state;
  char *dir = tu_tmpdir("pre_exif");
  assert_int_equal(run_reference("exif", dir, NULL), 0);
  char *list = tu_join(dir, "exif.txt");
  FILE *f = fopen(list, "r");
  assert_non_null(f);
  char file[128], want[160];
  int w, h, n = 0, rotated = 0;
  while (fscanf(f, "%127s %d %d %159s", file, &w, &h, want) == 4) {
    check_exif_line(dir, file, w, h, want);
    rotated += w == 3; /* the stored images are 5x3 */
    n++;
  }
  fclose(f);
  assert_int_equal(n, 31);
  assert_true(rotated >= 12);
  /* apply_exif = 0 keeps the stored orientation */
  char *p = tu_join(dir, "o6_le.jpg");
  img_rgb8 im;
  assert_int_equal(img_load_for_model(p, 0, &im), 0);
  assert_int_equal(im.width, 5);
  img_free(&im);
  free(p);
  free(list);
  free(dir);
}

/* Wraps a TIFF block in a minimal JPEG (SOI, APP1 "Exif\0\0", EOI) or a
 * PNG (signature, eXIf, IEND); the orientation parser needs no pixels. */
static size_t wrap_exif(unsigned char *out, const unsigned char *blk, size_t n, int png) {
  size_t k = 0;
  if (png) {
    memcpy(out, "\x89PNG\r\n\x1a\n", 8), k = 8;
    out[k++] = (unsigned char)(n >> 24), out[k++] = (unsigned char)(n >> 16);
    out[k++] = (unsigned char)(n >> 8), out[k++] = (unsigned char)n;
    memcpy(out + k, "eXIf", 4), k += 4;
    memcpy(out + k, blk, n), k += n;
    memset(out + k, 0, 4), k += 4;
    memcpy(out + k, "\0\0\0\0IEND\xae\x42\x60\x82", 12);
    return k + 12;
  }
  size_t seg = n + 8;
  memcpy(out, "\xff\xd8\xff\xe1", 4), k = 4;
  out[k++] = (unsigned char)(seg >> 8), out[k++] = (unsigned char)seg;
  memcpy(out + k, "Exif\0\0", 6), k += 6;
  memcpy(out + k, blk, n), k += n;
  out[k++] = 0xff, out[k++] = 0xd9;
  return k;
}

static void test_exif_random_blocks_match_pil(void **state) {
  (void)state;
  char *dir = tu_tmpdir("pre_exifrand"), n_arg[16];
  snprintf(n_arg, sizeof n_arg, "%d", PRE_EXIF_RANDOM_N);
  assert_int_equal(run_reference("exifrand", dir, n_arg), 0);
  char *list = tu_join(dir, "exifrand.txt");
  FILE *f = fopen(list, "r");
  int i, want, n = 0, hits = 0;
  while (fscanf(f, "%d %d", &i, &want) == 2) {
    char name[64];
    snprintf(name, sizeof name, "tiff_%d.bin", i);
    char *p = tu_join(dir, name);
    size_t len;
    unsigned char *blk = (unsigned char *)tu_read(p, &len), *buf = malloc(len + 64);
    assert_true(len < 60000);
    for (int png = 0; png < 2; png++) {
      int got = img_exif_orientation(buf, wrap_exif(buf, blk, len, png));
      if (got != want) fprintf(stderr, "tiff_%d (%s): %d, PIL %d\n", i, png ? "png" : "jpg", got, want);
      assert_int_equal(got, want);
    }
    hits += want != 1;
    n++;
    free(buf), free(blk), free(p);
  }
  fclose(f);
  assert_int_equal(n, PRE_EXIF_RANDOM_N);
  assert_true(hits >= 20);
  free(list);
  free(dir);
}

static void test_apply_orientation_shapes(void **state) {
  (void)state;
  /* 2x1 image [A B]: orientation 6 (rotate 90 clockwise) gives a 1x2 column A over B */
  unsigned char *px = malloc(6);
  memcpy(px, "\1\2\3\4\5\6", 6);
  img_rgb8 im = {2, 1, px};
  assert_int_equal(img_apply_orientation(&im, 6), 0);
  assert_int_equal(im.width, 1);
  assert_int_equal(im.height, 2);
  assert_memory_equal(im.pixels, "\1\2\3\4\5\6", 6);
  assert_int_equal(img_apply_orientation(&im, 8), 0); /* back */
  assert_int_equal(im.width, 2);
  assert_int_equal(img_apply_orientation(&im, 2), 0);
  assert_memory_equal(im.pixels, "\4\5\6\1\2\3", 6);
  assert_int_equal(img_apply_orientation(&im, 9), 0); /* not an orientation: unchanged */
  assert_memory_equal(im.pixels, "\4\5\6\1\2\3", 6);
  img_free(&im);
  assert_int_equal(img_exif_orientation("", 0), 1);
  assert_int_equal(img_exif_orientation("\xff\xd8\xff\xe1\x00", 5), 1);
}

/* ---- preprocessor_config.json ----------------------------------------- */

static void test_config_defaults_and_nulls(void **state) {
  (void)state;
  img_preproc_config c;
  assert_int_equal(img_preproc_config_parse("{}", 2, "p.json", &c), 0);
  assert_true(c.do_resize && c.do_rescale && c.do_normalize && c.do_convert_rgb);
  assert_int_equal(c.height, 224);
  assert_int_equal(c.width, 224);
  assert_int_equal(c.resample, IMG_RESAMPLE_BILINEAR);
  assert_true(c.rescale_factor == 1.0 / 255.0 && c.image_mean[2] == 0.5 && c.image_std[0] == 0.5);
  const char *j = "{\"size\": null, \"resample\": null, \"image_mean\": null, \"image_std\": null,"
                  " \"do_convert_rgb\": null, \"do_pan_and_scan\": null, \"do_resize\": null,"
                  " \"do_rescale\": false, \"rescale_factor\": null, \"pan_and_scan_min_crop_size\": null}";
  assert_int_equal(img_preproc_config_parse(j, strlen(j), "p.json", &c), 0);
  assert_int_equal(c.height, 224);
  assert_int_equal(c.resample, IMG_RESAMPLE_BILINEAR);
  assert_false(c.do_resize); /* HF: `if do_resize:` on None */
  assert_false(c.do_convert_rgb);
  assert_false(c.do_pan_and_scan);
  j = "{\"size\": 300, \"image_mean\": 0.25, \"resample\": 5}";
  assert_int_equal(img_preproc_config_parse(j, strlen(j), "p.json", &c), 0);
  assert_int_equal(c.width, 300);
  assert_int_equal(c.height, 300);
  assert_true(c.image_mean[1] == 0.25);
  assert_int_equal(c.resample, IMG_RESAMPLE_HAMMING);
}

static void test_config_tiny_model_file(void **state) {
  (void)state;
  char *dir = tu_tmpdir("pre_cfg"), *model = tu_join(dir, "m");
  assert_int_equal(make_tiny(model), 0);
  char *p = tu_join(model, "preprocessor_config.json");
  img_preproc_config c;
  assert_int_equal(img_preproc_config_load(p, &c), 0);
  assert_true(c.do_resize && c.do_rescale && c.do_normalize && !c.do_pan_and_scan);
  assert_true(c.height > 0 && c.height == c.width);
  char *missing = tu_join(dir, "none.json");
  assert_int_equal(img_preproc_config_load(missing, &c), SC_ERR_IO);
  assert_non_null(strstr(sc_error_get(), "none.json: cannot open"));
  free(missing), free(p), free(model), free(dir);
}

typedef struct bad_cfg {
  const char *json;
  int code;
  const char *msg;
} bad_cfg;

static const bad_cfg bad_cfgs[] = {
    {"[1]", SC_ERR_FORMAT, "p.json: expected a JSON object"},
    {"{\"do_pan_and_scan\": true}", SC_ERR_RANGE,
     "p.json: do_pan_and_scan: pan-and-scan is not supported"},
    {"{\"resample\": 0}", SC_ERR_RANGE,
     "p.json: resample: 0 (NEAREST) is not supported; use 2 (BILINEAR), 3 (BICUBIC), 1 (LANCZOS), "
     "4 (BOX) or 5 (HAMMING)"},
    {"{\"resample\": 7}", SC_ERR_RANGE, "p.json: resample: 7 is not a PIL filter (0..5)"},
    {"{\"resample\": \"bilinear\"}", SC_ERR_FORMAT, "p.json: resample: expected an integer"},
    {"{\"do_resize\": 1}", SC_ERR_FORMAT, "p.json: do_resize: expected true, false or null"},
    {"{\"size\": {\"height\": 0, \"width\": 5}}", SC_ERR_RANGE,
     "p.json: size.height: 0 is outside 1..16384"},
    {"{\"size\": {\"height\": 5}}", SC_ERR_FORMAT, "p.json: size.width: missing"},
    {"{\"size\": {\"height\": 5, \"width\": 2.5}}", SC_ERR_FORMAT,
     "p.json: size.width: expected an integer"},
    {"{\"size\": {\"shortest_edge\": 224}}", SC_ERR_FORMAT,
     "p.json: size: only {\"height\", \"width\"} is supported (not shortest_edge/longest_edge)"},
    {"{\"size\": \"big\"}", SC_ERR_FORMAT, "p.json: size: expected {\"height\": H, \"width\": W}"},
    {"{\"size\": 100000}", SC_ERR_RANGE, "p.json: size: 100000 is outside 1..16384"},
    {"{\"rescale_factor\": null}", SC_ERR_FORMAT,
     "p.json: rescale_factor: null, but do_rescale is true"},
    {"{\"rescale_factor\": \"1/255\"}", SC_ERR_FORMAT,
     "p.json: rescale_factor: expected a finite number"},
    {"{\"image_mean\": [0.5, 0.5]}", SC_ERR_FORMAT,
     "p.json: image_mean: expected a number or a list of 3 numbers"},
    {"{\"image_std\": [0.5, \"x\", 0.5]}", SC_ERR_FORMAT,
     "p.json: image_std: element 1 is not a finite number"},
    {"{\"image_std\": [0.5, 0.5, 0]}", SC_ERR_RANGE, "p.json: image_std: element 2 is zero"},
    {"{\"image_std\": 1e400}", SC_ERR_RANGE, "p.json: image_std: must be finite"},
    {"{\"do_rescale\": true,", SC_ERR_FORMAT, "p.json: malformed JSON"},
};

static void test_config_errors(void **state) {
  (void)state;
  for (size_t i = 0; i < sizeof bad_cfgs / sizeof bad_cfgs[0]; i++) {
    img_preproc_config c;
    int rc = img_preproc_config_parse(bad_cfgs[i].json, strlen(bad_cfgs[i].json), "p.json", &c);
    if (rc != bad_cfgs[i].code || strncmp(sc_error_get(), bad_cfgs[i].msg, strlen(bad_cfgs[i].msg)))
      fprintf(stderr, "case %zu %s: rc %d, message \"%s\"\n", i, bad_cfgs[i].json, rc, sc_error_get());
    assert_int_equal(rc, bad_cfgs[i].code);
    assert_int_equal(strncmp(sc_error_get(), bad_cfgs[i].msg, strlen(bad_cfgs[i].msg)), 0);
    assert_null(strchr(sc_error_get(), '\n'));
    assert_int_equal(c.height, 224); /* defaults left on error */
  }
}

static void test_preprocess_errors(void **state) {
  (void)state;
  img_preproc_config c;
  img_preproc_config_default(&c);
  img_rgb8 empty = {0, 0, NULL};
  float out[3];
  assert_int_equal(img_preprocess(out, &c, &empty), SC_ERR_ARG);
  assert_string_equal(sc_error_get(), "image preprocessing: empty image");
  img_rgb8 im;
  assert_int_equal(img_load_for_model("/nonexistent/x.jpg", 1, &im), SC_ERR_IO);
  assert_non_null(strstr(sc_error_get(), "/nonexistent/x.jpg: cannot open"));
  assert_null(im.pixels);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_resize_matches_pil),
      cmocka_unit_test(test_decoded_kinds_resize_like_hf),
      cmocka_unit_test(test_resize_bilinear_identity_and_errors),
      cmocka_unit_test(test_pixels_match_hf_formula),
      cmocka_unit_test(test_pixels_endpoints),
      cmocka_unit_test(test_matches_g3_reference),
      cmocka_unit_test(test_exif_orientations_match_pil),
      cmocka_unit_test(test_exif_random_blocks_match_pil),
      cmocka_unit_test(test_apply_orientation_shapes),
      cmocka_unit_test(test_config_defaults_and_nulls),
      cmocka_unit_test(test_config_tiny_model_file),
      cmocka_unit_test(test_config_errors),
      cmocka_unit_test(test_preprocess_errors),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
