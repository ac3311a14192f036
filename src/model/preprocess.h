/* preprocess.h: Gemma 3 image preprocessing, as Hugging Face's slow (PIL)
 * Gemma3ImageProcessor does it (research/gemma3_spec.md §1.4, §4.1).
 *
 * Typical use:
 *   img_preproc_config cfg;
 *   img_preproc_config_load("<model>/preprocessor_config.json", &cfg);
 *   img_rgb8 im;
 *   img_load_for_model(path, 1, &im);            // decode + EXIF orientation
 *   float *px = malloc(3 * cfg.height * cfg.width * sizeof *px);
 *   img_preprocess(px, &cfg, &im);               // pixel_values [3, H, W]
 *   img_free(&im);
 *
 * The steps and their exactness:
 *  - Loading: transformers' load_image() opens a path, applies PIL's
 *    ImageOps.exif_transpose, then convert("RGB"). img_load_for_model does
 *    the same with img_decode (PIL-exact RGB) and img_exif_orientation.
 *  - Resize: PIL Image.resize((W, H), filter) on RGB, byte for byte (Pillow's
 *    libImaging/Resample.c): per axis, a filter whose support grows with the
 *    downscale factor, weights normalised to sum 1 in double and quantised to
 *    22 fractional bits; horizontal pass first, then vertical, uint8 between
 *    them; an axis whose size is unchanged is not filtered.
 *  - Rescale then normalise in HF's float sequence (image_transforms.py
 *    rescale/normalize): x = float32(float64(v) * rescale_factor), then
 *    (x - float32(mean)) / float32(std) in float32. Layout CHW, R G B.
 * Pan-and-scan is not implemented (a config asking for it is refused).
 * Nothing here prints; errors follow base/error.h.
 */
#ifndef SC_PREPROCESS_H
#define SC_PREPROCESS_H

#include <stddef.h>

#include "io/image.h"

/* PIL's resampling filter ids (PIL.Image.Resampling, the values HF stores
 * as "resample" in preprocessor_config.json). */
enum img_resample {
  IMG_RESAMPLE_NEAREST = 0, /* not supported (PIL uses an affine transform for it) */
  IMG_RESAMPLE_LANCZOS = 1,
  IMG_RESAMPLE_BILINEAR = 2,
  IMG_RESAMPLE_BICUBIC = 3,
  IMG_RESAMPLE_BOX = 4,
  IMG_RESAMPLE_HAMMING = 5
};

typedef struct img_preproc_config {
  int do_resize;         /* resize to height x width */
  int height, width;     /* "size": {"height", "width"}, 1..IMG_MAX_DIM */
  int resample;          /* enum img_resample, never NEAREST */
  int do_rescale;        /* multiply by rescale_factor */
  double rescale_factor; /* HF multiplies in float64, then casts to float32 */
  int do_normalize;      /* (x - mean) / std */
  double image_mean[3];  /* per channel R G B; used as float32, as HF does */
  double image_std[3];   /* per channel; finite, non-zero */
  int do_convert_rgb;    /* informational: images here are always RGB */
  int do_pan_and_scan;   /* always 0 (1 is refused when parsing) */
} img_preproc_config;

/* Gemma3ImageProcessor's constructor defaults: resize to 224x224 BILINEAR,
 * rescale 1/255, normalise with mean = std = 0.5, convert RGB, no
 * pan-and-scan. */
void img_preproc_config_default(img_preproc_config *cfg);

/* Parses preprocessor_config.json from buf[0..len) into *cfg. A missing key
 * takes the default above. A JSON null takes what HF ends up with for None:
 * size, image_mean, image_std -> the defaults; resample -> BILINEAR; the
 * do_* flags -> false (HF tests `if do_resize:` on None); rescale_factor
 * null with do_rescale true is an error, as in HF. Other keys are ignored.
 * Errors (SC_ERR_FORMAT, SC_ERR_RANGE) read "<name>: <key>: <problem>", e.g.
 * "preprocessor_config.json: resample: 0 (NEAREST) is not supported ...",
 * "preprocessor_config.json: do_pan_and_scan: pan-and-scan is not supported";
 * malformed JSON gives sc_json_parse's message. On error *cfg holds the
 * defaults. */
int img_preproc_config_parse(const char *buf, size_t len, const char *name,
                             img_preproc_config *cfg);
/* Reads and parses a file (at most 1 MiB); errors name the path. */
int img_preproc_config_load(const char *path, img_preproc_config *cfg);

/* PIL Image.resize((dw, dh), filter) of an RGB8 image: src (sh, sw, 3) ->
 * dst (dh, dw, 3), both row-major R G B, not overlapping. filter is one of
 * enum img_resample except NEAREST. Sizes must be 1..IMG_MAX_DIM.
 * Errors: SC_ERR_ARG (bad size or filter), SC_ERR_NOMEM. */
int img_resize(unsigned char *dst, int dw, int dh, const unsigned char *src, int sw, int sh,
               int filter);
/* img_resize with IMG_RESAMPLE_BILINEAR (PIL's BILINEAR, what Gemma 3 uses). */
int img_resize_bilinear(unsigned char *dst, int dw, int dh, const unsigned char *src, int sw,
                        int sh);

/* Size of img_preprocess's output for this image: cfg's size when
 * do_resize, else the image's own. */
void img_preproc_out_size(const img_preproc_config *cfg, const img_rgb8 *rgb, int *width,
                          int *height);
/* Resize (if do_resize), rescale, normalise: out_chw (3, H, W) float32 with
 * W, H from img_preproc_out_size; channel 0 = R. Errors: SC_ERR_ARG for an
 * empty image or an invalid cfg, SC_ERR_NOMEM. */
int img_preprocess(float *out_chw, const img_preproc_config *cfg, const img_rgb8 *rgb);

/* EXIF orientation (TIFF tag 0x0112, values 1..8) of an encoded image, found
 * as Pillow 9.4 finds it for ImageOps.exif_transpose:
 *  - JPEG: the first APP1 segment before the first SOS whose payload starts
 *    "Exif\0"; the payload after "Exif\0\0" is a TIFF header + IFD0;
 *  - PNG: the eXIf chunk (the last one before IDAT, else the last one after
 *    the image data).
 * The tag is read like Pillow: the last well-formed entry 0x0112 in IFD0;
 * any integer type, or a RATIONAL/FLOAT equal to an integer, counts; its
 * first value is used; parsing stops at the first truncated entry.
 * Returns 1 (upright) when there is no such tag or the value is not 2..8,
 * and also where Pillow would raise on a malformed EXIF block (a bad TIFF
 * header): saecap then keeps the image as stored instead of failing.
 * Not read: PNG text chunks "Raw profile type exif" and XMP
 * tiff:Orientation (Pillow consults those too). Never fails, never reads
 * outside buf[0..len). */
int img_exif_orientation(const void *buf, size_t len);

/* Transposes *im in place (new pixel buffer) the way exif_transpose does for
 * orientation o: 2 mirror left-right, 3 rotate 180, 4 mirror top-bottom,
 * 5 transpose, 6 rotate 90 clockwise, 7 transverse, 8 rotate 90
 * counter-clockwise; 1 and other values leave it unchanged. Errors:
 * SC_ERR_NOMEM (the image is then unchanged). */
int img_apply_orientation(img_rgb8 *im, int orientation);

/* What transformers' load_image(path) gives: the file decoded to RGB (as
 * img_load) and, if apply_exif, turned upright by its EXIF orientation.
 * Errors as img_load, plus SC_ERR_NOMEM. */
int img_load_for_model(const char *path, int apply_exif, img_rgb8 *out);

#endif
