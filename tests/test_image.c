/* test_image.c: PNG/JPEG decoding against PIL, and every failure message.
 *
 * The group setup runs tests/reference/img_reference.py, which writes one
 * image of every kind image.h promises (PNG colour types and depths,
 * palettes with and without tRNS, interlaced, JPEG baseline / progressive /
 * grey / CMYK / 4:2:0 / 4:2:2 / 4:4:4) plus PIL's convert("RGB") pixels for
 * each. The failure tests derive broken files from those images.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "base/error.h"
#include "io/image.h"
#include "tu.h"

/* Every byte must equal PIL's: both sides run the same libjpeg-turbo with
 * the same settings, and PNG decoding is exact. */
#define IMG_TOL 0

/* Kinds the reference script must produce; a case it drops fails here. */
static const char *const required_cases[] = {
    "png_rgb8.png",          "png_rgba8.png",          "png_gray8.png",
    "png_gray_alpha8.png",   "png_gray1.png",          "png_gray2.png",
    "png_gray4.png",         "png_pal1.png",           "png_pal2.png",
    "png_pal4.png",          "png_pal8.png",           "png_pal1_trns.png",
    "png_pal4_trns.png",     "png_pal8_trns.png",      "png_gray8_trns.png",
    "png_pal4_short_plte.png", "png_pal8_short_plte.png",
    "png_rgb8_trns.png",     "png_rgb16.png",          "png_rgba16.png",
    "png_gray16.png",        "png_gray16_full.png",    "png_gray16_trns.png",
    "png_gray_alpha16.png",  "png_rgb8_interlaced.png", "png_rgba8_interlaced.png",
    "png_gray1_interlaced.png", "png_pal4_interlaced.png", "png_gray16_interlaced.png",
    "png_rgb16_interlaced.png", "png_rgb8_interlaced_1x1.png", "png_gray8_interlaced_3x2.png",
    "png_pil_rgb.png",       "jpg_rgb_420.jpg",        "jpg_rgb_422.jpg",
    "jpg_rgb_444.jpg",       "jpg_progressive.jpg",    "jpg_progressive_444.jpg",
    "jpg_optimized.jpg",     "jpg_odd_420.jpg",        "jpg_gray.jpg",
    "jpg_gray_progressive.jpg", "jpg_cmyk.jpg",
};

static char *ref_dir; /* the reference script's output folder */

static int setup_reference(void **state) {
  (void)state;
  ref_dir = tu_tmpdir("image_ref");
  char *err = NULL;
  int rc = tu_run(NULL, &err, "/usr/bin/python3 '%s/tests/reference/img_reference.py' '%s'",
                  tu_src(), ref_dir);
  if (rc != 0) fprintf(stderr, "img_reference.py failed (%d):\n%s\n", rc, err);
  free(err);
  return rc == 0 ? 0 : -1;
}

static int teardown_reference(void **state) {
  (void)state;
  free(ref_dir);
  return 0;
}

/* malloc'd bytes of <ref_dir>/<name>; fails the test if missing. */
static unsigned char *ref_bytes(const char *name, size_t *len) {
  char *path = tu_join(ref_dir, name);
  unsigned char *data = (unsigned char *)tu_read(path, len);
  if (!data) fail_msg("missing reference file %s", path);
  free(path);
  return data;
}

/* Compares decoded pixels with PIL's; prints max abs diff and first bad index. */
static void compare_pixels(const char *name, const img_rgb8 *im, int w, int h) {
  char rgbname[256];
  snprintf(rgbname, sizeof rgbname, "%s.rgb", name);
  size_t n;
  unsigned char *want = ref_bytes(rgbname, &n);
  if (im->width != w || im->height != h || n != (size_t)w * h * 3)
    fail_msg("%s: decoded %dx%d, PIL gives %dx%d (%zu bytes)", name, im->width, im->height, w,
             h, n);
  int maxdiff = 0;
  size_t first_bad = n;
  for (size_t i = 0; i < n; i++) {
    int d = abs((int)im->pixels[i] - (int)want[i]);
    if (d > maxdiff) maxdiff = d;
    if (d > IMG_TOL && first_bad == n) first_bad = i;
  }
  if (maxdiff > IMG_TOL)
    fail_msg("%s: max abs diff %d at tolerance %d; first bad byte %zu (pixel %zu, channel %zu): "
             "got %d, PIL %d",
             name, maxdiff, IMG_TOL, first_bad, first_bad / 3, first_bad % 3,
             im->pixels[first_bad], want[first_bad]);
  free(want);
}

static void test_matches_pil(void **state) {
  (void)state;
  char *list_path = tu_join(ref_dir, "cases.txt");
  FILE *fp = fopen(list_path, "r");
  assert_non_null(fp);
  char name[200];
  int w, h, n_cases = 0;
  int seen[sizeof required_cases / sizeof *required_cases] = {0};
  while (fscanf(fp, "%199s %d %d", name, &w, &h) == 3) {
    char *path = tu_join(ref_dir, name);
    img_rgb8 im;
    if (img_load(path, &im) != 0) fail_msg("%s: %s", name, sc_error_get());
    compare_pixels(name, &im, w, h);
    img_free(&im);
    free(path);
    for (size_t i = 0; i < sizeof required_cases / sizeof *required_cases; i++)
      if (strcmp(name, required_cases[i]) == 0) seen[i] = 1;
    n_cases++;
  }
  fclose(fp);
  free(list_path);
  for (size_t i = 0; i < sizeof required_cases / sizeof *required_cases; i++)
    if (!seen[i]) fail_msg("reference case %s was not produced", required_cases[i]);
  assert_true(n_cases >= (int)(sizeof required_cases / sizeof *required_cases));
}

/* img_decode on memory gives what img_load gives, and names its `name`. */
static void test_decode_memory(void **state) {
  (void)state;
  size_t n;
  unsigned char *png = ref_bytes("png_pal4_trns.png", &n);
  img_rgb8 im;
  assert_int_equal(img_decode(png, n, "mem.png", &im), 0);
  compare_pixels("png_pal4_trns.png", &im, 37, 29);
  img_free(&im);
  assert_null(im.pixels);
  img_free(&im); /* twice, and on a zeroed image: harmless */
  assert_int_equal(img_decode(png, n / 2, "mem.png", &im), SC_ERR_FORMAT);
  assert_string_equal(sc_error_get(), "mem.png: corrupt PNG: file is truncated");
  assert_null(im.pixels);
  assert_int_equal(im.width, 0);
  free(png);
}

/* ---- failure cases ---------------------------------------------------- */

/* CRC-32 of PNG chunks (ISO 3309 polynomial, reflected), to forge headers. */
static uint32_t crc32_png(const unsigned char *p, size_t n) {
  uint32_t c = 0xFFFFFFFFu;
  for (size_t i = 0; i < n; i++) {
    c ^= p[i];
    for (int k = 0; k < 8; k++) c = (c >> 1) ^ (0xEDB88320u & (0u - (c & 1u)));
  }
  return c ^ 0xFFFFFFFFu;
}

static void put_be32(unsigned char *p, uint32_t v) {
  p[0] = (unsigned char)(v >> 24);
  p[1] = (unsigned char)(v >> 16);
  p[2] = (unsigned char)(v >> 8);
  p[3] = (unsigned char)v;
}

/* Mismatches seen while stderr is redirected; reported after it is back. */
static char mismatches[8192];

static void note_mismatch(const char *fmt, ...) {
  size_t used = strlen(mismatches);
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(mismatches + used, sizeof mismatches - used, fmt, ap);
  va_end(ap);
}

/* Decoding data must fail with code and exactly message want, leaving the
 * output zeroed. */
static void expect_fail(const void *data, size_t n, int code, const char *want) {
  img_rgb8 im = {7, 7, NULL};
  int rc = img_decode(data, n, "bad.img", &im);
  if (rc != code || strcmp(sc_error_get(), want) != 0)
    note_mismatch("got %d '%s', expected %d '%s'\n", rc, sc_error_get(), code, want);
  if (im.pixels || im.width || im.height) note_mismatch("output not zeroed for '%s'\n", want);
  img_free(&im);
}

/* Offset of the first JPEG marker `code` (0xFF code), or fail. */
static size_t jpeg_marker(const unsigned char *p, size_t n, unsigned char code) {
  for (size_t i = 2; i + 1 < n; i++)
    if (p[i] == 0xFF && p[i + 1] == code) return i;
  note_mismatch("marker 0x%02x not found\n", code);
  return 0;
}

static void png_failures(void) {
  size_t n;
  unsigned char *png = ref_bytes("png_rgb8.png", &n);
  expect_fail(png, n / 2, SC_ERR_FORMAT, "bad.img: corrupt PNG: file is truncated");
  expect_fail(png, 20, SC_ERR_FORMAT, "bad.img: corrupt PNG: file is truncated");
  png[29] ^= 0x01; /* IHDR's CRC */
  expect_fail(png, n, SC_ERR_FORMAT, "bad.img: corrupt PNG: IHDR: CRC error");
  png[29] ^= 0x01;
  put_be32(png + 16, 100000); /* width, height, then a valid CRC over type + data */
  put_be32(png + 20, 100000);
  put_be32(png + 29, crc32_png(png + 12, 17));
  expect_fail(png, n, SC_ERR_RANGE,
              "bad.img: image is 100000x100000, larger than the limit of 16384 pixels a side "
              "and 67108864 pixels in all");
  put_be32(png + 16, 16384); /* within each side, over the pixel count */
  put_be32(png + 20, 16384);
  put_be32(png + 29, crc32_png(png + 12, 17));
  expect_fail(png, n, SC_ERR_RANGE,
              "bad.img: image is 16384x16384, larger than the limit of 16384 pixels a side "
              "and 67108864 pixels in all");
  free(png);
}

static void jpeg_failures(void) {
  size_t n;
  unsigned char *jpg = ref_bytes("jpg_rgb_420.jpg", &n);
  expect_fail(jpg, n * 6 / 10, SC_ERR_FORMAT, "bad.img: corrupt JPEG: file is truncated");
  expect_fail(jpg, n - 2, SC_ERR_FORMAT, "bad.img: corrupt JPEG: file is truncated"); /* no EOI */
  static const char garbage[] = "\xFF\xD8\xFFgarbage after the start of image";
  expect_fail(garbage, sizeof garbage - 1, SC_ERR_FORMAT,
              "bad.img: corrupt JPEG: Unsupported marker type 0x67");
  size_t sof = jpeg_marker(jpg, n, 0xC0); /* FF C0 len(2) precision(1) height(2) width(2) */
  jpg[sof + 5] = jpg[sof + 7] = 0x4E; /* 20000 = 0x4E20; libjpeg's own cap is 65500 */
  jpg[sof + 6] = jpg[sof + 8] = 0x20;
  expect_fail(jpg, n, SC_ERR_RANGE,
              "bad.img: image is 20000x20000, larger than the limit of 16384 pixels a side "
              "and 67108864 pixels in all");
  free(jpg);
  unsigned char *prog = ref_bytes("jpg_progressive.jpg", &n);
  expect_fail(prog, n - 300, SC_ERR_FORMAT, "bad.img: corrupt JPEG: file is truncated");
  free(prog);
}

static void other_failures(void) {
  expect_fail("", 0, SC_ERR_FORMAT, "bad.img: not a PNG or JPEG image (the file is empty)");
  static const char text[] = "width,height\n1,2\n";
  expect_fail(text, sizeof text - 1, SC_ERR_FORMAT, "bad.img: not a PNG or JPEG image");
  expect_fail("\x89PNG", 4, SC_ERR_FORMAT, "bad.img: not a PNG or JPEG image");
  expect_fail("\xFF\xD8", 2, SC_ERR_FORMAT, "bad.img: not a PNG or JPEG image");
}

/* Every failure gives its message, and neither library writes to stderr. */
static void test_failures_silent(void **state) {
  (void)state;
  const char *inputs[] = {"png_rgb8.png", "jpg_rgb_420.jpg", "jpg_progressive.jpg"};
  for (size_t i = 0; i < 3; i++) { /* missing inputs fail here, not while stderr is away */
    size_t n;
    free(ref_bytes(inputs[i], &n));
  }
  char *dir = tu_tmpdir("image_stderr");
  char *log = tu_join(dir, "stderr.txt");
  fflush(stderr);
  int saved = dup(2);
  FILE *sink = fopen(log, "w");
  assert_non_null(sink);
  dup2(fileno(sink), 2);
  png_failures();
  jpeg_failures();
  other_failures();
  fflush(stderr);
  dup2(saved, 2);
  close(saved);
  fclose(sink);
  size_t len;
  char *printed = tu_read(log, &len);
  if (mismatches[0]) fail_msg("%s", mismatches);
  if (len != 0) fail_msg("the decoders printed: %s", printed);
  free(printed);
  free(log);
  free(dir);
}

/* Where PIL is lenient, so are we: no IEND, a bad IDAT CRC, bytes after EOI. */
static void test_pil_leniency(void **state) {
  (void)state;
  size_t n;
  unsigned char *png = ref_bytes("png_rgb8.png", &n);
  img_rgb8 im;
  assert_int_equal(img_decode(png, n - 12, "no_iend.png", &im), 0); /* IEND is 12 bytes */
  compare_pixels("png_rgb8.png", &im, 37, 29);
  img_free(&im);
  png[n - 12 - 1] ^= 0x01; /* the last IDAT's CRC */
  assert_int_equal(img_decode(png, n, "idat_crc.png", &im), 0);
  compare_pixels("png_rgb8.png", &im, 37, 29);
  img_free(&im);
  free(png);
  unsigned char *jpg = ref_bytes("jpg_gray.jpg", &n);
  unsigned char *longer = malloc(n + 5);
  memcpy(longer, jpg, n);
  memcpy(longer + n, "junk!", 5);
  assert_int_equal(img_decode(longer, n + 5, "trailing.jpg", &im), 0);
  compare_pixels("jpg_gray.jpg", &im, 67, 45);
  img_free(&im);
  free(longer);
  free(jpg);
}

static void test_load_errors(void **state) {
  (void)state;
  char *dir = tu_tmpdir("image_load");
  char *missing = tu_join(dir, "no_such.png");
  img_rgb8 im;
  assert_int_equal(img_load(missing, &im), SC_ERR_IO);
  assert_non_null(strstr(sc_error_get(), missing));
  assert_null(im.pixels);
  char *text = tu_join(dir, "notes.jpg");
  tu_write_str(text, "not an image at all\n");
  assert_int_equal(img_load(text, &im), SC_ERR_FORMAT);
  char want[600];
  snprintf(want, sizeof want, "%s: not a PNG or JPEG image", text);
  assert_string_equal(sc_error_get(), want);
  img_free(NULL);
  free(text);
  free(missing);
  free(dir);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_matches_pil),     cmocka_unit_test(test_decode_memory),
      cmocka_unit_test(test_failures_silent), cmocka_unit_test(test_pil_leniency),
      cmocka_unit_test(test_load_errors),
  };
  return cmocka_run_group_tests(tests, setup_reference, teardown_reference);
}
