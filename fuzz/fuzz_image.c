/* fuzz_image.c: libFuzzer target for img_decode (PNG via libpng, JPEG via
 * libjpeg-turbo). Any input must decode or fail with a message, never
 * crash, leak or print. Seeds: fuzz/corpus/image (written by
 * tests/reference/img_reference.py --seeds). */
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "base/error.h"
#include "io/image.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  img_rgb8 im;
  int rc = img_decode(data, size, "fuzz", &im);
  /* The contract: success gives pixels; failure leaves im zeroed and a
   * one-line message. Break it loudly so the fuzzer records the input. */
  if (rc == 0 && (!im.pixels || im.width <= 0 || im.height <= 0)) __builtin_trap();
  if (rc != 0 && (im.pixels || strchr(sc_error_get(), '\n') || !sc_error_get()[0]))
    __builtin_trap();
  img_free(&im);
  return 0;
}
