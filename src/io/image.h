/* image.h: PNG and JPEG decoding to 8-bit RGB (libpng, libjpeg-turbo).
 *
 * The result matches what PIL gives for Image.open(f).convert("RGB"):
 * grayscale is replicated to three channels, palettes are expanded, alpha
 * is dropped (not composited), 16-bit samples keep their high byte, and
 * CMYK/YCCK JPEGs are converted as PIL converts them. EXIF orientation is
 * not applied here. The format is sniffed from the magic bytes, not the
 * file name. Images wider or taller than IMG_MAX_DIM, or with more than
 * IMG_MAX_PIXELS pixels, are refused.
 */
#ifndef SC_IMAGE_H
#define SC_IMAGE_H

#include <stddef.h>

#define IMG_MAX_DIM 16384
#define IMG_MAX_PIXELS (64u * 1024u * 1024u)

typedef struct img_rgb8 {
  int width, height;
  unsigned char *pixels; /* (height, width, 3) row-major, R G B; owned */
} img_rgb8;

/* Decodes buf[0..len). Errors name `name`: "<name>: corrupt PNG: ...",
 * "<name>: not a PNG or JPEG image", "<name>: image is WxH, larger than ...". */
int img_decode(const void *buf, size_t len, const char *name, img_rgb8 *out);
/* Reads and decodes a file. */
int img_load(const char *path, img_rgb8 *out);
/* Frees the pixels; safe on a zeroed image. */
void img_free(img_rgb8 *im);

#endif
