/* image.h: PNG and JPEG decoding to 8-bit RGB (libpng, libjpeg-turbo).
 *
 * The result equals, byte for byte, what PIL (9.4, Debian 12) gives for
 * Image.open(f).convert("RGB"); tests/reference/img_reference.py checks
 * every kind below:
 *  - grey is replicated to three channels; 1/2/4-bit grey is scaled to
 *    0..255 (x255, x85, x17);
 *  - palettes are expanded; indices past a short PLTE give (i, i, i), as
 *    PIL's palette does;
 *  - alpha and tRNS are dropped, not composited;
 *  - 16-bit RGB, RGBA and grey+alpha keep their high byte; 16-bit grey is
 *    NOT cut to its high byte: PIL opens it as mode I, whose conversion
 *    clips, so the output is min(v, 255);
 *  - gAMA, cHRM, sRGB and iCCP are ignored (PIL ignores them too);
 *  - JPEG uses libjpeg's default IDCT and fancy upsampling, as PIL does;
 *    4-component JPEGs are read as Adobe-inverted CMYK (YCCK converted to
 *    CMYK by libjpeg) and converted with PIL's formula
 *    R = (255-K) - C(255-K)/255 (rounded as PIL does).
 * A truncated file is an error (PIL: "image file is truncated"), and so is
 * a JPEG without its EOI marker or a bad CRC on a PNG chunk before the image
 * data; like PIL, IDAT CRCs are not checked (zlib's checksum still is) and a
 * missing IEND is accepted. EXIF orientation is not applied. The format is
 * sniffed from the magic bytes, not the file name. Images wider or taller
 * than IMG_MAX_DIM, or with more than IMG_MAX_PIXELS pixels, are refused
 * before any pixel memory is allocated. Nothing here prints.
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

/* Decodes buf[0..len) into *out (zeroed first; the caller frees it with
 * img_free). On error *out stays zeroed. Errors name `name`:
 * SC_ERR_FORMAT "<name>: corrupt PNG: <detail>" / "<name>: corrupt JPEG:
 * <detail>" (detail "file is truncated" for a short file, else
 * libpng's or libjpeg's message), "<name>: not a PNG or JPEG image";
 * SC_ERR_RANGE "<name>: image is WxH, larger than the limit ...";
 * SC_ERR_NOMEM. */
int img_decode(const void *buf, size_t len, const char *name, img_rgb8 *out);
/* Reads and decodes a file; errors name the path (SC_ERR_IO when it cannot
 * be read, SC_ERR_RANGE above 1 GiB, else as img_decode). */
int img_load(const char *path, img_rgb8 *out);
/* Frees the pixels; safe on a zeroed image. */
void img_free(img_rgb8 *im);

#endif
