/* preprocess.c: Gemma 3 image preprocessing (see preprocess.h).
 *
 * References, read for their facts (no code taken): Pillow 9.4
 * src/libImaging/Resample.c (filters, precompute_coeffs,
 * normalize_coeffs_8bpc, ImagingResampleInner), PIL ImageOps.exif_transpose,
 * Image.getexif, TiffImagePlugin.ImageFileDirectory_v2.load,
 * JpegImagePlugin.APP, PngImagePlugin.chunk_eXIf; transformers
 * image_processing_gemma3.py, image_transforms.py (rescale, normalize),
 * image_utils.py (load_image).
 */
#include "model/preprocess.h"

#include <math.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/error.h"
#include "base/fs.h"
#include "io/json.h"

#define PRE_MAX_CONFIG_BYTES (1u << 20)
#define PRE_MAX_IMAGE_FILE_BYTES (1ull << 30)
/* Pillow's PRECISION_BITS for 8-bit images: 32 - 8 - 2 fractional bits. */
#define PRE_PRECISION_BITS 22
/* M_PI is not in ISO C; the same double. */
#define PRE_PI 3.14159265358979323846

/* ==== preprocessor_config.json ======================================== */

void img_preproc_config_default(img_preproc_config *cfg) {
  memset(cfg, 0, sizeof *cfg);
  cfg->do_resize = 1;
  cfg->height = cfg->width = 224; /* Gemma3ImageProcessor.__init__ size=None */
  cfg->resample = IMG_RESAMPLE_BILINEAR;
  cfg->do_rescale = 1;
  cfg->rescale_factor = 1.0 / 255.0;
  cfg->do_normalize = 1;
  for (int c = 0; c < 3; c++) cfg->image_mean[c] = cfg->image_std[c] = 0.5; /* IMAGENET_STANDARD_* */
  cfg->do_convert_rgb = 1;
}

/* Sets "<name>: <key>: <problem>" and returns code. */
static int cfg_err(int code, const char *name, const char *key, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
static int cfg_err(int code, const char *name, const char *key, const char *fmt, ...) {
  char msg[512];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(msg, sizeof msg, fmt, ap);
  va_end(ap);
  return sc_error_setc(code, "%s: %s: %s", name, key, msg);
}

/* A do_* flag: missing keeps *out, null -> 0 (HF's `if None:`), else bool. */
static int cfg_flag(const sc_json *root, const char *key, const char *name, int *out) {
  const sc_json *j = sc_json_get(root, key);
  if (!j) return 0;
  if (sc_json_is_null(j)) {
    *out = 0;
    return 0;
  }
  if (sc_json_bool(j, out)) return cfg_err(SC_ERR_FORMAT, name, key, "expected true, false or null");
  return 0;
}

static int cfg_finite(const sc_json *j, double *out) {
  if (!sc_json_is_number(j) || !isfinite(sc_json_num(j))) return -1;
  *out = sc_json_num(j);
  return 0;
}

/* image_mean / image_std: one number for all channels or a list of 3. */
static int cfg_triplet(const sc_json *root, const char *key, const char *name, double out[3]) {
  const sc_json *j = sc_json_get(root, key);
  if (!j || sc_json_is_null(j)) return 0;
  double v[3];
  if (sc_json_is_number(j)) {
    if (cfg_finite(j, &v[0])) return cfg_err(SC_ERR_RANGE, name, key, "must be finite");
    v[1] = v[2] = v[0];
  } else {
    if (!sc_json_is_array(j) || sc_json_size(j) != 3)
      return cfg_err(SC_ERR_FORMAT, name, key, "expected a number or a list of 3 numbers");
    for (int c = 0; c < 3; c++)
      if (cfg_finite(sc_json_at(j, c), &v[c]))
        return cfg_err(SC_ERR_FORMAT, name, key, "element %d is not a finite number", c);
  }
  memcpy(out, v, sizeof v);
  return 0;
}

static int cfg_dim(const sc_json *j, const char *name, const char *key, int *out) {
  int64_t v;
  if (!j) return cfg_err(SC_ERR_FORMAT, name, key, "missing");
  if (sc_json_i64(j, &v)) return cfg_err(SC_ERR_FORMAT, name, key, "expected an integer");
  if (v < 1 || v > IMG_MAX_DIM)
    return cfg_err(SC_ERR_RANGE, name, key, "%lld is outside 1..%d", (long long)v, IMG_MAX_DIM);
  *out = (int)v;
  return 0;
}

/* size: {"height": H, "width": W} or one integer (HF get_size_dict with
 * default_to_square); null keeps the default. */
static int cfg_size(const sc_json *root, const char *name, img_preproc_config *cfg) {
  const sc_json *j = sc_json_get(root, "size");
  if (!j || sc_json_is_null(j)) return 0;
  if (sc_json_is_number(j)) {
    int rc = cfg_dim(j, name, "size", &cfg->height);
    cfg->width = cfg->height;
    return rc;
  }
  if (!sc_json_is_object(j))
    return cfg_err(SC_ERR_FORMAT, name, "size", "expected {\"height\": H, \"width\": W}");
  if (!sc_json_get(j, "height") && !sc_json_get(j, "width"))
    return cfg_err(SC_ERR_FORMAT, name, "size",
                   "only {\"height\", \"width\"} is supported (not shortest_edge/longest_edge)");
  int rc = cfg_dim(sc_json_get(j, "height"), name, "size.height", &cfg->height);
  return rc ? rc : cfg_dim(sc_json_get(j, "width"), name, "size.width", &cfg->width);
}

static int cfg_resample(const sc_json *root, const char *name, img_preproc_config *cfg) {
  const sc_json *j = sc_json_get(root, "resample");
  int64_t v;
  if (!j || sc_json_is_null(j)) return 0; /* HF resize(): None -> BILINEAR */
  if (sc_json_i64(j, &v)) return cfg_err(SC_ERR_FORMAT, name, "resample", "expected an integer");
  if (v == IMG_RESAMPLE_NEAREST)
    return cfg_err(SC_ERR_RANGE, name, "resample",
                   "0 (NEAREST) is not supported; use 2 (BILINEAR), 3 (BICUBIC), 1 (LANCZOS), "
                   "4 (BOX) or 5 (HAMMING)");
  if (v < IMG_RESAMPLE_LANCZOS || v > IMG_RESAMPLE_HAMMING)
    return cfg_err(SC_ERR_RANGE, name, "resample", "%lld is not a PIL filter (0..5)", (long long)v);
  cfg->resample = (int)v;
  return 0;
}

static int cfg_rescale(const sc_json *root, const char *name, img_preproc_config *cfg) {
  const sc_json *j = sc_json_get(root, "rescale_factor");
  if (j && sc_json_is_null(j)) {
    if (cfg->do_rescale)
      return cfg_err(SC_ERR_FORMAT, name, "rescale_factor", "null, but do_rescale is true");
    return 0;
  }
  if (j && cfg_finite(j, &cfg->rescale_factor))
    return cfg_err(SC_ERR_FORMAT, name, "rescale_factor", "expected a finite number");
  return 0;
}

static int cfg_check_std(const char *name, const img_preproc_config *cfg) {
  for (int c = 0; c < 3; c++)
    if (cfg->do_normalize && (float)cfg->image_std[c] == 0.0f)
      return cfg_err(SC_ERR_RANGE, name, "image_std", "element %d is zero", c);
  return 0;
}

static int cfg_fields(const sc_json *root, const char *name, img_preproc_config *cfg) {
  int rc;
  if ((rc = cfg_flag(root, "do_resize", name, &cfg->do_resize)) ||
      (rc = cfg_flag(root, "do_rescale", name, &cfg->do_rescale)) ||
      (rc = cfg_flag(root, "do_normalize", name, &cfg->do_normalize)) ||
      (rc = cfg_flag(root, "do_convert_rgb", name, &cfg->do_convert_rgb)) ||
      (rc = cfg_flag(root, "do_pan_and_scan", name, &cfg->do_pan_and_scan)) ||
      (rc = cfg_size(root, name, cfg)) || (rc = cfg_resample(root, name, cfg)) ||
      (rc = cfg_rescale(root, name, cfg)) ||
      (rc = cfg_triplet(root, "image_mean", name, cfg->image_mean)) ||
      (rc = cfg_triplet(root, "image_std", name, cfg->image_std)) ||
      (rc = cfg_check_std(name, cfg)))
    return rc;
  if (cfg->do_pan_and_scan)
    return cfg_err(SC_ERR_RANGE, name, "do_pan_and_scan", "pan-and-scan is not supported");
  return 0;
}

int img_preproc_config_parse(const char *buf, size_t len, const char *name,
                             img_preproc_config *cfg) {
  img_preproc_config_default(cfg);
  sc_json *root = NULL;
  int rc = sc_json_parse(buf, len, name, &root);
  if (rc) return rc;
  if (!sc_json_is_object(root))
    rc = sc_error_setc(SC_ERR_FORMAT, "%s: expected a JSON object", name);
  else
    rc = cfg_fields(root, name, cfg);
  sc_json_free(root);
  if (rc) img_preproc_config_default(cfg);
  return rc;
}

int img_preproc_config_load(const char *path, img_preproc_config *cfg) {
  char *buf;
  size_t len;
  img_preproc_config_default(cfg);
  int rc = sc_read_file(path, PRE_MAX_CONFIG_BYTES, &buf, &len);
  if (rc) return rc;
  rc = img_preproc_config_parse(buf, len, path, cfg);
  free(buf);
  return rc;
}

/* ==== PIL resampling (Resample.c) ===================================== */

/* Filter kernels with Pillow's exact expressions: the hamming window mixes
 * float constants (0.54f, 0.46f) into a double expression, and bicubic uses
 * a = -0.5; both matter for bit-exact weights. */
static double flt_box(double x) { return (x > -0.5 && x <= 0.5) ? 1.0 : 0.0; }
static double flt_triangle(double x) {
  x = fabs(x);
  return x < 1.0 ? 1.0 - x : 0.0;
}
static double flt_hamming(double x) {
  x = fabs(x);
  if (x == 0.0) return 1.0;
  if (x >= 1.0) return 0.0;
  x *= PRE_PI;
  return sin(x) / x * ((double)0.54f + (double)0.46f * cos(x));
}
static double flt_bicubic(double x) {
  const double a = -0.5;
  x = fabs(x);
  if (x < 1.0) return ((a + 2.0) * x - (a + 3.0)) * x * x + 1;
  if (x < 2.0) return (((x - 5) * x + 8) * x - 4) * a;
  return 0.0;
}
static double flt_sinc(double x) {
  if (x == 0.0) return 1.0;
  x *= PRE_PI;
  return sin(x) / x;
}
static double flt_lanczos(double x) {
  return (-3.0 <= x && x < 3.0) ? flt_sinc(x) * flt_sinc(x / 3) : 0.0;
}

typedef struct pre_filter {
  double (*fn)(double x); /* kernel at distance x (input pixels / filter scale) */
  double support;         /* half-width at scale 1 */
} pre_filter;

static const pre_filter *filter_get(int id) {
  static const pre_filter lanczos = {flt_lanczos, 3.0}, bilinear = {flt_triangle, 1.0},
                          bicubic = {flt_bicubic, 2.0}, box = {flt_box, 0.5},
                          hamming = {flt_hamming, 1.0};
  switch (id) {
  case IMG_RESAMPLE_LANCZOS: return &lanczos;
  case IMG_RESAMPLE_BILINEAR: return &bilinear;
  case IMG_RESAMPLE_BICUBIC: return &bicubic;
  case IMG_RESAMPLE_BOX: return &box;
  case IMG_RESAMPLE_HAMMING: return &hamming;
  default: return NULL;
  }
}

/* One axis's taps: output i reads `bounds[2i+1]` inputs from `bounds[2i]`
 * with fixed-point weights k[i*ksize ..]. */
typedef struct pre_taps {
  int ksize;   /* taps per output, Pillow's ceil(support) * 2 + 1 */
  int *bounds; /* (n_out, 2): first input, tap count */
  int32_t *k;  /* (n_out, ksize): weights, PRE_PRECISION_BITS fractional bits */
} pre_taps;

static void taps_free(pre_taps *t) {
  free(t->bounds);
  free(t->k);
  memset(t, 0, sizeof *t);
}

/* Weights of output xx (Pillow precompute_coeffs + normalize_coeffs_8bpc):
 * normalised in double, then rounded half away from zero to fixed point. */
static void taps_one(pre_taps *t, int xx, int in, double scale, const pre_filter *f, double *w) {
  double fscale = scale < 1.0 ? 1.0 : scale, support = f->support * fscale;
  double center = (xx + 0.5) * scale, ss = 1.0 / fscale, ww = 0.0;
  int xmin = (int)(center - support + 0.5), xmax = (int)(center + support + 0.5);
  if (xmin < 0) xmin = 0;
  if (xmax > in) xmax = in;
  xmax -= xmin;
  if (xmax > t->ksize) xmax = t->ksize; /* cannot happen; keeps k in bounds */
  if (xmax < 0) xmax = 0;
  for (int x = 0; x < xmax; x++) ww += (w[x] = f->fn((x + xmin - center + 0.5) * ss));
  int32_t *k = t->k + (size_t)xx * (size_t)t->ksize;
  for (int x = 0; x < t->ksize; x++) {
    double v = x < xmax ? (ww != 0.0 ? w[x] / ww : w[x]) : 0.0;
    double s = v * (1 << PRE_PRECISION_BITS);
    k[x] = (int32_t)(v < 0 ? -0.5 + s : 0.5 + s);
  }
  t->bounds[2 * xx] = xmin;
  t->bounds[2 * xx + 1] = xmax;
}

static int taps_build(pre_taps *t, int in, int out, const pre_filter *f) {
  memset(t, 0, sizeof *t);
  /* Pillow: scale = (double)(box1 - box0) / out, box a float (exact here). */
  double scale = (double)(float)in / out, fscale = scale < 1.0 ? 1.0 : scale;
  t->ksize = (int)ceil(f->support * fscale) * 2 + 1;
  t->bounds = malloc((size_t)out * 2 * sizeof *t->bounds);
  t->k = malloc((size_t)out * (size_t)t->ksize * sizeof *t->k);
  double *w = malloc((size_t)t->ksize * sizeof *w);
  if (!t->bounds || !t->k || !w) {
    free(w);
    taps_free(t);
    return sc_error_setc(SC_ERR_NOMEM, "image resize: out of memory for %d filter taps", out);
  }
  for (int xx = 0; xx < out; xx++) taps_one(t, xx, in, scale, f, w);
  free(w);
  return 0;
}

/* Pillow's clip8: an arithmetic shift, then clamp to 0..255. */
static unsigned char clip8(int64_t acc) {
  int64_t v = acc >> PRE_PRECISION_BITS;
  return (unsigned char)(v < 0 ? 0 : v > 255 ? 255 : v);
}

/* Horizontal pass over source rows [y0, y0 + rows): src (.., sw, 3) ->
 * dst (rows, dw, 3). */
static void pass_horizontal(unsigned char *dst, int dw, const unsigned char *src, int sw, int y0,
                            int rows, const pre_taps *t) {
#pragma omp parallel for schedule(static)
  for (int y = 0; y < rows; y++) {
    const unsigned char *row = src + ((size_t)(y0 + y) * (size_t)sw) * 3;
    unsigned char *o = dst + (size_t)y * (size_t)dw * 3;
    for (int xx = 0; xx < dw; xx++) {
      const int32_t *k = t->k + (size_t)xx * (size_t)t->ksize;
      const unsigned char *p = row + (size_t)t->bounds[2 * xx] * 3;
      int64_t a0 = 1 << (PRE_PRECISION_BITS - 1), a1 = a0, a2 = a0;
      for (int x = 0; x < t->bounds[2 * xx + 1]; x++) {
        a0 += (int64_t)p[3 * x] * k[x];
        a1 += (int64_t)p[3 * x + 1] * k[x];
        a2 += (int64_t)p[3 * x + 2] * k[x];
      }
      o[3 * xx] = clip8(a0), o[3 * xx + 1] = clip8(a1), o[3 * xx + 2] = clip8(a2);
    }
  }
}

/* Vertical pass: src (.., w, 3) whose row 0 is source row y0 -> dst (dh, w, 3). */
static void pass_vertical(unsigned char *dst, int dh, const unsigned char *src, int w, int y0,
                          const pre_taps *t) {
  size_t stride = (size_t)w * 3;
#pragma omp parallel for schedule(static)
  for (int yy = 0; yy < dh; yy++) {
    const int32_t *k = t->k + (size_t)yy * (size_t)t->ksize;
    const unsigned char *base = src + (size_t)(t->bounds[2 * yy] - y0) * stride;
    int n = t->bounds[2 * yy + 1];
    unsigned char *o = dst + (size_t)yy * stride;
    for (size_t i = 0; i < stride; i++) {
      int64_t acc = 1 << (PRE_PRECISION_BITS - 1);
      for (int y = 0; y < n; y++) acc += (int64_t)base[(size_t)y * stride + i] * k[y];
      o[i] = clip8(acc);
    }
  }
}

/* Both passes (ImagingResampleInner): the horizontal pass only filters the
 * source rows the vertical taps read; an unchanged axis is copied. */
static int resize_passes(unsigned char *dst, int dw, int dh, const unsigned char *src, int sw,
                         int sh, const pre_filter *f) {
  pre_taps tv, th;
  int rc = taps_build(&tv, sh, dh, f);
  if (rc) return rc;
  int y0 = tv.bounds[0], y1 = tv.bounds[2 * dh - 2] + tv.bounds[2 * dh - 1];
  unsigned char *tmp = NULL;
  const unsigned char *vin = src;
  int vy0 = 0;
  if (dw != sw) {
    if ((rc = taps_build(&th, sw, dw, f))) goto done;
    unsigned char *out = dh != sh ? (tmp = malloc((size_t)(y1 - y0) * (size_t)dw * 3)) : dst;
    if (!out) {
      taps_free(&th);
      rc = sc_error_setc(SC_ERR_NOMEM, "image resize: out of memory for %dx%d", dw, y1 - y0);
      goto done;
    }
    pass_horizontal(out, dw, src, sw, dh != sh ? y0 : 0, dh != sh ? y1 - y0 : sh, &th);
    taps_free(&th);
    vin = out, vy0 = y0;
  }
  if (dh != sh) pass_vertical(dst, dh, vin, dw, vy0, &tv);
done:
  free(tmp);
  taps_free(&tv);
  return rc;
}

int img_resize(unsigned char *dst, int dw, int dh, const unsigned char *src, int sw, int sh,
               int filter) {
  const pre_filter *f = filter_get(filter);
  if (!f) return sc_error_setc(SC_ERR_ARG, "image resize: unsupported PIL filter %d", filter);
  if (dw < 1 || dh < 1 || sw < 1 || sh < 1 || dw > IMG_MAX_DIM || dh > IMG_MAX_DIM ||
      sw > IMG_MAX_DIM || sh > IMG_MAX_DIM)
    return sc_error_setc(SC_ERR_ARG, "image resize: bad size %dx%d -> %dx%d", sw, sh, dw, dh);
  if (dw == sw && dh == sh) {
    memcpy(dst, src, (size_t)sw * (size_t)sh * 3);
    return 0;
  }
  return resize_passes(dst, dw, dh, src, sw, sh, f);
}

int img_resize_bilinear(unsigned char *dst, int dw, int dh, const unsigned char *src, int sw,
                        int sh) {
  return img_resize(dst, dw, dh, src, sw, sh, IMG_RESAMPLE_BILINEAR);
}

/* ==== rescale + normalise ============================================= */

void img_preproc_out_size(const img_preproc_config *cfg, const img_rgb8 *rgb, int *width,
                          int *height) {
  *width = cfg->do_resize ? cfg->width : rgb->width;
  *height = cfg->do_resize ? cfg->height : rgb->height;
}

/* lut[c][v]: the float32 HF produces for byte v in channel c. Two roundings,
 * as in image_transforms.rescale (float64 product cast to float32) and
 * normalize (float32 arithmetic with mean/std cast to float32); one rounding
 * of v/127.5 - 1 differs by 1 ulp on half the bytes (docs/notes.md). */
static void value_lut(float lut[3][256], const img_preproc_config *cfg) {
  for (int c = 0; c < 3; c++) {
    float mean = (float)cfg->image_mean[c], std = (float)cfg->image_std[c];
    for (int v = 0; v < 256; v++) {
      float x = cfg->do_rescale ? (float)((double)v * cfg->rescale_factor) : (float)v;
      lut[c][v] = cfg->do_normalize ? (x - mean) / std : x;
    }
  }
}

static void to_chw(float *out, const unsigned char *hwc, size_t n_pix, float lut[3][256]) {
#pragma omp parallel for schedule(static)
  for (int c = 0; c < 3; c++)
    for (size_t i = 0; i < n_pix; i++) out[(size_t)c * n_pix + i] = lut[c][hwc[3 * i + (size_t)c]];
}

int img_preprocess(float *out_chw, const img_preproc_config *cfg, const img_rgb8 *rgb) {
  int w, h;
  if (!rgb->pixels || rgb->width < 1 || rgb->height < 1)
    return sc_error_setc(SC_ERR_ARG, "image preprocessing: empty image");
  img_preproc_out_size(cfg, rgb, &w, &h);
  if (w < 1 || h < 1 || w > IMG_MAX_DIM || h > IMG_MAX_DIM)
    return sc_error_setc(SC_ERR_ARG, "image preprocessing: bad output size %dx%d", w, h);
  const unsigned char *px = rgb->pixels;
  unsigned char *resized = NULL;
  if (cfg->do_resize && (w != rgb->width || h != rgb->height)) {
    if (!(resized = malloc((size_t)w * (size_t)h * 3)))
      return sc_error_setc(SC_ERR_NOMEM, "image preprocessing: out of memory for %dx%d", w, h);
    int rc = img_resize(resized, w, h, rgb->pixels, rgb->width, rgb->height, cfg->resample);
    if (rc) {
      free(resized);
      return rc;
    }
    px = resized;
  }
  float lut[3][256];
  value_lut(lut, cfg);
  to_chw(out_chw, px, (size_t)w * (size_t)h, lut);
  free(resized);
  return 0;
}

/* ==== EXIF orientation ================================================ */

typedef struct pre_tiff {
  const unsigned char *p; /* TIFF data, offsets count from here */
  size_t n;               /* its length */
  int be;                 /* 1 = big-endian ("MM") */
} pre_tiff;

static uint32_t rd16(const unsigned char *p, int be) {
  return be ? (uint32_t)p[0] << 8 | p[1] : (uint32_t)p[1] << 8 | p[0];
}
static uint32_t rd32(const unsigned char *p, int be) {
  return be ? rd16(p, 1) << 16 | rd16(p + 2, 1) : rd16(p + 2, 0) << 16 | rd16(p, 0);
}
static uint64_t rd64(const unsigned char *p, int be) {
  return be ? (uint64_t)rd32(p, 1) << 32 | rd32(p + 4, 1)
            : (uint64_t)rd32(p + 4, 0) << 32 | rd32(p, 0);
}

/* Bytes per value of a TIFF type Pillow can load; 0 for those it skips. */
static unsigned tiff_unit(uint32_t type) {
  static const unsigned char unit[17] = {0, 1, 1, 2, 4, 8, 1, 1, 2, 4, 8, 4, 8, 4, 0, 0, 8};
  return type < 17 ? unit[type] : 0;
}

/* 1 if integral value v is a transposing orientation 2..8 (Python compares
 * the tag's value with int keys: 6, 6.0 and 12/2 all match). */
static int orient_of_i64(int64_t v) { return v >= 2 && v <= 8 ? (int)v : 0; }
static int orient_of_double(double v) {
  return v >= 2 && v <= 8 && v == floor(v) ? (int)v : 0;
}
static int orient_of_ratio(int64_t num, int64_t den) {
  return den != 0 && num % den == 0 ? orient_of_i64(num / den) : 0;
}

/* The first value of a tag as exif_transpose sees it: 2..8, or 0 for a
 * value that maps to no transpose (BYTE/ASCII/UNDEFINED load as bytes or
 * str, which never equal an int). */
static int tiff_value(uint32_t type, const unsigned char *d, int be) {
  union {
    uint32_t u;
    float f;
  } f32;
  union {
    uint64_t u;
    double d;
  } f64;
  switch (type) {
  case 3: return orient_of_i64(rd16(d, be));
  case 4: case 13: return orient_of_i64(rd32(d, be));
  case 16: return rd64(d, be) <= 8 ? orient_of_i64((int64_t)rd64(d, be)) : 0;
  case 6: return orient_of_i64((int8_t)d[0]);
  case 8: return orient_of_i64((int16_t)rd16(d, be));
  case 9: return orient_of_i64((int32_t)rd32(d, be));
  case 5: return orient_of_ratio(rd32(d, be), rd32(d + 4, be));
  case 10: return orient_of_ratio((int32_t)rd32(d, be), (int32_t)rd32(d + 4, be));
  case 11: f32.u = rd32(d, be); return orient_of_double(f32.f);
  case 12: f64.u = rd64(d, be); return orient_of_double(f64.d);
  default: return 0;
  }
}

/* IFD0's Orientation as ImageFileDirectory_v2.load reads entries: unknown
 * types and empty values are skipped, a later entry replaces an earlier one,
 * and a truncated entry or out-of-line value ends the directory. */
static int tiff_ifd0_orientation(const pre_tiff *t, uint32_t off) {
  int o = 0;
  if (off > t->n || t->n - off < 2) return 0;
  uint32_t count = rd16(t->p + off, t->be);
  size_t pos = (size_t)off + 2;
  for (uint32_t i = 0; i < count && t->n - pos >= 12; i++, pos += 12) {
    const unsigned char *e = t->p + pos, *d = e + 8;
    uint32_t type = rd16(e + 2, t->be);
    uint64_t size = (uint64_t)rd32(e + 4, t->be) * tiff_unit(type);
    if (!tiff_unit(type) || size == 0) continue;
    if (size > 4) {
      uint32_t at = rd32(d, t->be);
      if (at > t->n || t->n - at < size) break; /* Pillow: OSError ends the IFD */
      d = t->p + at;
    }
    if (rd16(e, t->be) == 0x0112) o = tiff_value(type, d, t->be);
  }
  return o;
}

/* Orientation in a TIFF block (after "Exif\0\0"); 1 when absent or when
 * Pillow would reject the header. */
static int tiff_orientation(const unsigned char *p, size_t n) {
  static const char *ok[] = {"MM\0*", "II*\0", "MM*\0", "II\0*", "MM\0+"};
  pre_tiff t = {p, n, 0};
  int good = 0;
  if (n < 8) return 1;
  for (size_t i = 0; i < sizeof ok / sizeof ok[0]; i++) good |= memcmp(p, ok[i], 4) == 0;
  if (!good) return 1; /* includes "II+\0": Pillow fails reading its BigTIFF header */
  t.be = p[0] == 'M';
  int o = tiff_ifd0_orientation(&t, rd32(p + 4, t.be));
  return o ? o : 1;
}

/* JPEG: the first APP1 "Exif\0" segment among the markers before SOS. */
static int jpeg_orientation(const unsigned char *p, size_t n) {
  size_t pos = 2;
  while (pos + 1 < n) {
    unsigned m = p[pos + 1];
    if (p[pos] != 0xFF || m == 0xFF) { /* junk or fill byte */
      pos++;
      continue;
    }
    if (m == 0xDA || m == 0xD9) break;
    if (m == 0x00 || m == 0x01 || (m >= 0xD0 && m <= 0xD8)) { /* no length field */
      pos += 2;
      continue;
    }
    if (n - pos < 4) break;
    size_t seg = rd16(p + pos + 2, 1);
    if (seg < 2 || n - pos - 2 < seg) break;
    const unsigned char *d = p + pos + 4;
    if (m == 0xE1 && seg - 2 >= 5 && memcmp(d, "Exif\0", 5) == 0)
      return seg - 2 >= 6 && d[5] == 0 ? tiff_orientation(d + 6, seg - 8) : 1;
    pos += 2 + seg;
  }
  return 1;
}

/* PNG: the last eXIf before the image data, else the last one after it
 * (Pillow only loads the image, reading the trailing chunks, when no
 * "exif" was found while opening). */
static int png_orientation(const unsigned char *p, size_t n) {
  const unsigned char *pre = NULL, *post = NULL;
  size_t pre_n = 0, post_n = 0, pos = 8;
  int seen_idat = 0;
  while (n - pos >= 12) {
    size_t len = rd32(p + pos, 1);
    const unsigned char *type = p + pos + 4;
    if (len > n - pos - 12 || memcmp(type, "IEND", 4) == 0) break;
    if (memcmp(type, "IDAT", 4) == 0) seen_idat = 1;
    if (memcmp(type, "eXIf", 4) == 0) {
      if (seen_idat)
        post = type + 4, post_n = len;
      else
        pre = type + 4, pre_n = len;
    }
    pos += 12 + len;
  }
  if (pre) return tiff_orientation(pre, pre_n);
  return post ? tiff_orientation(post, post_n) : 1;
}

int img_exif_orientation(const void *buf, size_t len) {
  const unsigned char *p = buf;
  if (len >= 8 && memcmp(p, "\x89PNG\r\n\x1a\n", 8) == 0) return png_orientation(p, len);
  if (len >= 3 && p[0] == 0xFF && p[1] == 0xD8 && p[2] == 0xFF) return jpeg_orientation(p, len);
  return 1;
}

/* ==== transposition =================================================== */

/* Source pixel of output (x, y) for orientation o, image w x h (as
 * stored); output is w x h for 2-4 and h x w for 5-8. */
static size_t orient_src(int o, int x, int y, int w, int h) {
  int sx = x, sy = y;
  switch (o) {
  case 2: sx = w - 1 - x; break;
  case 3: sx = w - 1 - x, sy = h - 1 - y; break;
  case 4: sy = h - 1 - y; break;
  case 5: sx = y, sy = x; break;
  case 6: sx = y, sy = h - 1 - x; break;
  case 7: sx = w - 1 - y, sy = h - 1 - x; break;
  case 8: sx = w - 1 - y, sy = x; break;
  default: break;
  }
  return ((size_t)sy * (size_t)w + (size_t)sx) * 3;
}

int img_apply_orientation(img_rgb8 *im, int o) {
  if (o < 2 || o > 8 || !im->pixels) return 0;
  int w = im->width, h = im->height, ow = o >= 5 ? h : w, oh = o >= 5 ? w : h;
  unsigned char *dst = malloc((size_t)w * (size_t)h * 3);
  if (!dst) return sc_error_setc(SC_ERR_NOMEM, "image orientation: out of memory for %dx%d", w, h);
#pragma omp parallel for schedule(static)
  for (int y = 0; y < oh; y++)
    for (int x = 0; x < ow; x++)
      memcpy(dst + ((size_t)y * (size_t)ow + (size_t)x) * 3, im->pixels + orient_src(o, x, y, w, h),
             3);
  free(im->pixels);
  im->pixels = dst, im->width = ow, im->height = oh;
  return 0;
}

int img_load_for_model(const char *path, int apply_exif, img_rgb8 *out) {
  memset(out, 0, sizeof *out);
  char *buf;
  size_t len;
  int rc = sc_read_file(path, PRE_MAX_IMAGE_FILE_BYTES, &buf, &len);
  if (rc) return rc;
  rc = img_decode(buf, len, path, out);
  if (!rc && apply_exif) rc = img_apply_orientation(out, img_exif_orientation(buf, len));
  free(buf);
  if (rc) img_free(out);
  return rc;
}
