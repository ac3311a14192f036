/* image.c: PNG (libpng) and JPEG (libjpeg-turbo) decoding to 8-bit RGB that
 * matches PIL's Image.open(f).convert("RGB") byte for byte (see image.h).
 *
 * Both libraries report errors by longjmp. Each decoder keeps all its state
 * in a job struct owned by the caller of the function that calls setjmp, so
 * nothing that setjmp's function modifies is read after the jump (C17
 * 7.13.2.1), and the caller frees whatever the job holds on every path.
 * Neither library may print: warnings are dropped, errors become the one
 * message line.
 */
#include "io/image.h"

#include <setjmp.h>
#include <stdint.h>
#include <stdio.h> /* jpeglib.h needs FILE and size_t first */
#include <stdlib.h>
#include <string.h>

#include <jerror.h>
#include <jpeglib.h>
#include <png.h>

#include "base/error.h"
#include "base/fs.h"

/* img_load refuses files larger than this before reading them. */
#define IMG_MAX_FILE_BYTES ((size_t)1 << 30)
/* A progressive JPEG with thousands of tiny scans decodes for minutes
 * (a known libjpeg denial of service); real encoders write about 10. */
#define IMG_JPEG_MAX_SCANS 1000
#define IMG_MSG_MAX 200

static const unsigned char png_magic[8] = {0x89, 'P', 'N', 'G', '\r', '\n', 0x1a, '\n'};

/* ==== shared helpers ==================================================== */

/* Refuses sizes beyond the header's limits before anything is allocated;
 * w and h come from the file (up to 2^32-1), so compare in 64 bits. */
static int check_size(const char *name, uint64_t w, uint64_t h) {
  if (w == 0 || h == 0)
    return sc_error_set("%s: image is %llux%llu, which is empty", name, (unsigned long long)w,
                        (unsigned long long)h);
  if (w > IMG_MAX_DIM || h > IMG_MAX_DIM || w * h > IMG_MAX_PIXELS)
    return sc_error_setc(SC_ERR_RANGE,
                         "%s: image is %llux%llu, larger than the limit of %d pixels a side "
                         "and %u pixels in all",
                         name, (unsigned long long)w, (unsigned long long)h, IMG_MAX_DIM,
                         (unsigned)IMG_MAX_PIXELS);
  return 0;
}

/* Allocates out->pixels for w x h (already within the limits). */
static int alloc_rgb(const char *name, int w, int h, img_rgb8 *out) {
  out->pixels = malloc((size_t)w * (size_t)h * 3);
  if (!out->pixels)
    return sc_error_setc(SC_ERR_NOMEM, "%s: out of memory for a %dx%d image", name, w, h);
  out->width = w;
  out->height = h;
  return 0;
}

/* One-byte samples through a 256-entry RGB table (grey ramp or palette). */
static void expand_lut(unsigned char *rgb, const unsigned char *src, size_t n,
                       const unsigned char lut[256][3]) {
  for (size_t i = 0; i < n; i++) memcpy(rgb + 3 * i, lut[src[i]], 3);
}

/* ==== PNG =============================================================== */

typedef struct png_job {
  const char *name;
  const unsigned char *buf; /* the whole file */
  size_t len, pos;          /* bytes in buf, bytes handed to libpng */
  png_structp png;
  png_infop info;
  int kind;                 /* PNG_RAW_*: what each decoded pixel holds */
  unsigned char *raw;       /* (height, rowbytes) decoded rows; owned */
  png_bytep *rows;          /* (height) pointers into raw; owned */
  unsigned char lut[256][3]; /* PNG_RAW_INDEX: sample -> RGB */
  char msg[IMG_MSG_MAX];    /* libpng's error text */
} png_job;

enum { PNG_RAW_INDEX = 1, PNG_RAW_GRAY16 = 2, PNG_RAW_RGB = 3 };

static void png_on_error(png_structp png, png_const_charp msg) {
  png_job *j = png_get_error_ptr(png);
  snprintf(j->msg, sizeof j->msg, "%s", msg ? msg : "unknown error");
  png_longjmp(png, 1);
}

static void png_on_warning(png_structp png, png_const_charp msg) {
  (void)png; /* libpng warnings (bad ancillary chunks, ...) are not errors */
  (void)msg;
}

static void png_on_read(png_structp png, png_bytep dst, size_t n) {
  png_job *j = png_get_io_ptr(png);
  if (n > j->len - j->pos) png_error(png, "file is truncated");
  memcpy(dst, j->buf + j->pos, n);
  j->pos += n;
}

/* The grey ramp, with PLTE entries over it. PIL also fills the entries a
 * short PLTE leaves out with (i, i, i); libpng would use black. */
static void png_fill_lut(png_job *j, int color_type) {
  for (int i = 0; i < 256; i++) memset(j->lut[i], i, 3);
  png_colorp pal = NULL;
  int n = 0;
  if (color_type == PNG_COLOR_TYPE_PALETTE && png_get_PLTE(j->png, j->info, &pal, &n))
    for (int i = 0; i < n && i < 256; i++) {
      j->lut[i][0] = pal[i].red;
      j->lut[i][1] = pal[i].green;
      j->lut[i][2] = pal[i].blue;
    }
}

/* Asks libpng for exactly what PIL's rawmodes give: palette indices, grey
 * scaled to 8 bits (1-bit as 0/255, like PIL's mode "1"), 16-bit samples
 * cut to their high byte, except 16-bit grey, which PIL opens as mode I
 * and clips to 255 (converted below). Alpha and tRNS are dropped, gAMA and
 * iCCP never applied: no gamma or expand-tRNS transform is requested. */
static void png_set_transforms(png_job *j, int color_type, int depth) {
  png_fill_lut(j, color_type);
  j->kind = PNG_RAW_RGB;
  if (color_type == PNG_COLOR_TYPE_PALETTE || !(color_type & PNG_COLOR_MASK_COLOR))
    j->kind = PNG_RAW_INDEX;
  if (color_type == PNG_COLOR_TYPE_GRAY && depth == 16)
    j->kind = PNG_RAW_GRAY16;
  else if (depth == 16)
    png_set_strip_16(j->png);
  if (color_type == PNG_COLOR_TYPE_PALETTE && depth < 8) png_set_packing(j->png);
  if (color_type == PNG_COLOR_TYPE_GRAY && depth < 8) png_set_expand_gray_1_2_4_to_8(j->png);
  if (color_type & PNG_COLOR_MASK_ALPHA) png_set_strip_alpha(j->png);
  png_set_interlace_handling(j->png);
  png_read_update_info(j->png, j->info);
}

static int png_alloc_rows(png_job *j, size_t w, size_t h) {
  size_t rowbytes = png_get_rowbytes(j->png, j->info);
  if (rowbytes != w * (size_t)j->kind)
    return sc_error_setc(SC_ERR_INTERNAL, "%s: libpng gives %zu bytes a row, expected %zu",
                         j->name, rowbytes, w * (size_t)j->kind);
  j->raw = malloc(rowbytes * h);
  j->rows = malloc(h * sizeof *j->rows);
  if (!j->raw || !j->rows)
    return sc_error_setc(SC_ERR_NOMEM, "%s: out of memory for a %zux%zu image", j->name, w, h);
  for (size_t y = 0; y < h; y++) j->rows[y] = j->raw + y * rowbytes;
  return 0;
}

/* Decodes into j->raw. Everything it creates hangs off j. */
static int png_run(png_job *j) {
  if (setjmp(png_jmpbuf(j->png)))
    return sc_error_set("%s: corrupt PNG: %s", j->name, j->msg);
  png_set_read_fn(j->png, j, png_on_read);
  /* PIL rejects a bad CRC on any chunk before the image data. */
  png_set_crc_action(j->png, PNG_CRC_DEFAULT, PNG_CRC_ERROR_QUIT);
  png_read_info(j->png, j->info);
  png_uint_32 w = png_get_image_width(j->png, j->info);
  png_uint_32 h = png_get_image_height(j->png, j->info);
  int rc = check_size(j->name, w, h);
  if (rc) return rc;
  png_set_transforms(j, png_get_color_type(j->png, j->info),
                     png_get_bit_depth(j->png, j->info));
  if ((rc = png_alloc_rows(j, w, h))) return rc;
  /* PIL does not check IDAT CRCs (zlib's Adler-32 still guards the data). */
  png_set_crc_action(j->png, PNG_CRC_QUIET_USE, PNG_CRC_ERROR_QUIT);
  png_read_image(j->png, j->rows);
  return 0; /* the end chunks are not read: PIL accepts a file without IEND */
}

/* j->raw (decoded) -> out: RGB is moved, the rest expanded. */
static int png_to_rgb(png_job *j, img_rgb8 *out) {
  int w = (int)png_get_image_width(j->png, j->info);
  int h = (int)png_get_image_height(j->png, j->info);
  size_t n = (size_t)w * (size_t)h;
  if (j->kind == PNG_RAW_RGB) {
    out->pixels = j->raw;
    out->width = w;
    out->height = h;
    j->raw = NULL;
    return 0;
  }
  int rc = alloc_rgb(j->name, w, h, out);
  if (rc) return rc;
  if (j->kind == PNG_RAW_INDEX) {
    expand_lut(out->pixels, j->raw, n, (const unsigned char(*)[3])j->lut);
    return 0;
  }
  for (size_t i = 0; i < n; i++) { /* big-endian 16-bit grey, clipped like PIL's I -> RGB */
    unsigned v = (unsigned)j->raw[2 * i] << 8 | j->raw[2 * i + 1];
    memset(out->pixels + 3 * i, v > 255 ? 255 : (int)v, 3);
  }
  return 0;
}

static int png_decode(const unsigned char *buf, size_t len, const char *name, img_rgb8 *out) {
  png_job *j = calloc(1, sizeof *j);
  if (!j) return sc_error_setc(SC_ERR_NOMEM, "%s: out of memory", name);
  j->name = name;
  j->buf = buf;
  j->len = len;
  int rc = SC_ERR_NOMEM;
  j->png = png_create_read_struct(PNG_LIBPNG_VER_STRING, j, png_on_error, png_on_warning);
  if (j->png) j->info = png_create_info_struct(j->png);
  if (!j->png || !j->info)
    sc_error_setc(rc, "%s: out of memory starting libpng", name);
  else if ((rc = png_run(j)) == 0)
    rc = png_to_rgb(j, out);
  png_destroy_read_struct(&j->png, &j->info, NULL);
  free(j->rows);
  free(j->raw);
  free(j);
  return rc;
}

/* ==== JPEG ============================================================== */

typedef struct jpg_job {
  struct jpeg_decompress_struct cinfo;
  struct jpeg_error_mgr err;
  struct jpeg_progress_mgr progress;
  jmp_buf jump;
  const char *name;
  unsigned char *raw;       /* (height, width, components) decoded; owned */
  char msg[JMSG_LENGTH_MAX]; /* why the decoder jumped */
} jpg_job;

/* cinfo is the job's first member, so the library's pointer is the job's. */
static jpg_job *jpg_of(j_common_ptr cinfo) { return (jpg_job *)(void *)cinfo; }

static void jpg_on_error(j_common_ptr cinfo) {
  jpg_job *j = jpg_of(cinfo);
  (*cinfo->err->format_message)(cinfo, j->msg);
  longjmp(j->jump, 1);
}

static void jpg_on_output(j_common_ptr cinfo) { (void)cinfo; /* never print */ }

/* Warnings are ignored as PIL ignores them, except running out of data:
 * libjpeg then pads with a fake EOI and only warns, but PIL raises "image
 * file is truncated", so a truncated file (or one without EOI) fails. */
static void jpg_on_message(j_common_ptr cinfo, int level) {
  if (level == -1 && cinfo->err->msg_code == JWRN_JPEG_EOF) {
    jpg_job *j = jpg_of(cinfo);
    snprintf(j->msg, sizeof j->msg, "file is truncated");
    longjmp(j->jump, 1);
  }
}

static void jpg_on_progress(j_common_ptr cinfo) {
  jpg_job *j = jpg_of(cinfo);
  if (j->cinfo.input_scan_number > IMG_JPEG_MAX_SCANS) {
    snprintf(j->msg, sizeof j->msg, "more than %d scans", IMG_JPEG_MAX_SCANS);
    longjmp(j->jump, 1);
  }
}

/* Output colour space as PIL's decoder asks for it: L, RGB, or CMYK (which
 * PIL reads as Adobe-inverted CMYK whatever the markers say). Everything
 * else (upsampling, IDCT) stays at libjpeg's defaults, as in PIL. */
static int jpg_pick_space(jpg_job *j) {
  switch (j->cinfo.num_components) {
  case 1: j->cinfo.out_color_space = JCS_GRAYSCALE; return 0;
  case 3: j->cinfo.out_color_space = JCS_RGB; return 0;
  case 4: j->cinfo.out_color_space = JCS_CMYK; return 0;
  default:
    return sc_error_set("%s: corrupt JPEG: %d colour components, expected 1, 3 or 4", j->name,
                        j->cinfo.num_components);
  }
}

static int jpg_read_rows(jpg_job *j) {
  struct jpeg_decompress_struct *c = &j->cinfo;
  size_t stride = (size_t)c->output_width * (size_t)c->output_components;
  j->raw = malloc(stride * c->output_height);
  if (!j->raw)
    return sc_error_setc(SC_ERR_NOMEM, "%s: out of memory for a %ux%u image", j->name,
                         c->output_width, c->output_height);
  while (c->output_scanline < c->output_height) {
    JSAMPROW row = j->raw + stride * c->output_scanline;
    if (jpeg_read_scanlines(c, &row, 1) != 1) /* only a suspending source returns 0 */
      return sc_error_set("%s: corrupt JPEG: decoder stalled", j->name);
  }
  return 0;
}

/* Decodes into j->raw. Everything it creates hangs off j. */
static int jpg_run(jpg_job *j, const unsigned char *buf, size_t len) {
  if (setjmp(j->jump)) return sc_error_set("%s: corrupt JPEG: %s", j->name, j->msg);
  jpeg_create_decompress(&j->cinfo);
  j->progress.progress_monitor = jpg_on_progress;
  j->cinfo.progress = &j->progress;
  jpeg_mem_src(&j->cinfo, buf, (unsigned long)len);
  jpeg_read_header(&j->cinfo, TRUE);
  int rc = check_size(j->name, j->cinfo.image_width, j->cinfo.image_height);
  if (rc || (rc = jpg_pick_space(j))) return rc;
  jpeg_start_decompress(&j->cinfo);
  if (j->cinfo.output_width != j->cinfo.image_width ||
      j->cinfo.output_height != j->cinfo.image_height)
    return sc_error_setc(SC_ERR_INTERNAL, "%s: libjpeg scaled the image", j->name);
  if ((rc = jpg_read_rows(j))) return rc;
  jpeg_finish_decompress(&j->cinfo); /* reads on to EOI, so a lost EOI fails as in PIL */
  return 0;
}

/* PIL's CMYK -> RGB on samples it first inverted ("CMYK;I"): with
 * C = 255 - c and K = 255 - k read from the file, R = (255 - K) -
 * C * (255 - K) / 255, the division rounded as t = a*b + 128,
 * (t + (t >> 8)) >> 8 (Pillow's Convert.c, cmyk2rgb and MULDIV255). */
static void cmyk_to_rgb(unsigned char *rgb, const unsigned char *cmyk, size_t n) {
  for (size_t i = 0; i < n; i++) {
    unsigned nk = cmyk[4 * i + 3]; /* 255 - K = k */
    for (int ch = 0; ch < 3; ch++) {
      unsigned t = (255u - cmyk[4 * i + ch]) * nk + 128;
      rgb[3 * i + ch] = (unsigned char)(nk - ((t + (t >> 8)) >> 8));
    }
  }
}

static int jpg_to_rgb(jpg_job *j, img_rgb8 *out) {
  int w = (int)j->cinfo.output_width, h = (int)j->cinfo.output_height;
  size_t n = (size_t)w * (size_t)h;
  if (j->cinfo.out_color_space == JCS_RGB) {
    out->pixels = j->raw;
    out->width = w;
    out->height = h;
    j->raw = NULL;
    return 0;
  }
  int rc = alloc_rgb(j->name, w, h, out);
  if (rc) return rc;
  if (j->cinfo.out_color_space == JCS_CMYK) {
    cmyk_to_rgb(out->pixels, j->raw, n);
  } else {
    for (size_t i = 0; i < n; i++) memset(out->pixels + 3 * i, j->raw[i], 3);
  }
  return 0;
}

static int jpg_decode(const unsigned char *buf, size_t len, const char *name, img_rgb8 *out) {
  jpg_job *j = calloc(1, sizeof *j);
  if (!j) return sc_error_setc(SC_ERR_NOMEM, "%s: out of memory", name);
  j->name = name;
  j->cinfo.err = jpeg_std_error(&j->err);
  j->err.error_exit = jpg_on_error;
  j->err.output_message = jpg_on_output;
  j->err.emit_message = jpg_on_message;
  int rc = jpg_run(j, buf, len);
  if (rc == 0) rc = jpg_to_rgb(j, out);
  jpeg_destroy_decompress(&j->cinfo); /* safe before create: cinfo.mem is NULL */
  free(j->raw);
  free(j);
  return rc;
}

/* ==== public API ======================================================== */

int img_decode(const void *buf, size_t len, const char *name, img_rgb8 *out) {
  const unsigned char *b = buf;
  if (!name) name = "image";
  memset(out, 0, sizeof *out);
  if (len == 0) return sc_error_set("%s: not a PNG or JPEG image (the file is empty)", name);
  if (!b) return sc_error_setc(SC_ERR_ARG, "%s: no data", name);
  int rc;
  if (len >= sizeof png_magic && memcmp(b, png_magic, sizeof png_magic) == 0)
    rc = png_decode(b, len, name, out);
  else if (len >= 3 && b[0] == 0xFF && b[1] == 0xD8 && b[2] == 0xFF)
    rc = jpg_decode(b, len, name, out);
  else
    return sc_error_set("%s: not a PNG or JPEG image", name);
  if (rc) img_free(out);
  return rc;
}

int img_load(const char *path, img_rgb8 *out) {
  memset(out, 0, sizeof *out);
  char *buf;
  size_t len;
  int rc = sc_read_file(path, IMG_MAX_FILE_BYTES, &buf, &len);
  if (rc) return rc;
  rc = img_decode(buf, len, path, out);
  free(buf);
  return rc;
}

void img_free(img_rgb8 *im) {
  if (!im) return;
  free(im->pixels);
  memset(im, 0, sizeof *im);
}
