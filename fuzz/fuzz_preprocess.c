/* fuzz_preprocess.c: libFuzzer target for the user-input parsers of
 * src/model/preprocess.c. The first byte picks the target:
 *   'J'  preprocessor_config.json (img_preproc_config_parse): parse or fail
 *        with one line, and a parsed config must be valid;
 *   'X'  EXIF orientation of an encoded file (img_exif_orientation, the
 *        JPEG marker / PNG chunk / TIFF IFD walkers): always 1..8; then the
 *        image is decoded and, if that works, turned upright;
 *   'R'  resize: bytes 1-4 give source and target sizes (1..64), byte 5 the
 *        filter, the rest the pixels (repeated to fill).
 * Seeds: fuzz/corpus/preprocess. */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "base/error.h"
#include "io/image.h"
#include "model/preprocess.h"

static void fuzz_config(const uint8_t *d, size_t n) {
  img_preproc_config c;
  int rc = img_preproc_config_parse((const char *)d, n, "fuzz", &c);
  if (rc != 0 && (strchr(sc_error_get(), '\n') || !sc_error_get()[0])) __builtin_trap();
  if (rc == 0 && (c.height < 1 || c.width < 1 || c.height > IMG_MAX_DIM || c.width > IMG_MAX_DIM ||
                  c.resample < IMG_RESAMPLE_LANCZOS || c.resample > IMG_RESAMPLE_HAMMING ||
                  c.do_pan_and_scan))
    __builtin_trap();
}

static void fuzz_exif(const uint8_t *d, size_t n) {
  int o = img_exif_orientation(d, n);
  if (o < 1 || o > 8) __builtin_trap();
  img_rgb8 im;
  if (img_decode(d, n, "fuzz", &im) != 0) return;
  int w = im.width, h = im.height;
  if (img_apply_orientation(&im, o) == 0 && (size_t)im.width * im.height != (size_t)w * h)
    __builtin_trap();
  img_free(&im);
}

static void fuzz_resize(const uint8_t *d, size_t n) {
  if (n < 6) return;
  int sw = 1 + d[1] % 64, sh = 1 + d[2] % 64, dw = 1 + d[3] % 64, dh = 1 + d[4] % 64;
  int filter = d[5] % 6;
  size_t ns = (size_t)sw * sh * 3;
  unsigned char *src = malloc(ns), *dst = malloc((size_t)dw * dh * 3);
  if (src && dst) {
    for (size_t i = 0; i < ns; i++) src[i] = n > 6 ? d[6 + i % (n - 6)] : 0;
    int rc = img_resize(dst, dw, dh, src, sw, sh, filter);
    if ((rc != 0) != (filter == IMG_RESAMPLE_NEAREST)) __builtin_trap();
  }
  free(src);
  free(dst);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  if (size < 1) return 0;
  switch (data[0]) {
  case 'J': fuzz_config(data + 1, size - 1); break;
  case 'X': fuzz_exif(data + 1, size - 1); break;
  case 'R': fuzz_resize(data, size); break;
  default: break;
  }
  return 0;
}
