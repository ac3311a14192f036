/* caption.c: image prompts, the merged image+text forward and caption
 * generation (see caption.h). The merge is the decoder's own: the
 * projector rows go in through g3_forward_io.embeds_in at the soft-token
 * positions, and generation is g3_generate with those prefill inputs. */
#include "model/caption.h"

#include <stdlib.h>
#include <string.h>

#include "base/error.h"
#include "base/fs.h"
#include "io/image.h"
#include "model/chat.h"
#include "model/preprocess.h"

/* ==== Prompt structure ==== */

int g3_image_groups(int32_t *group, const int32_t *ids, int64_t n, int32_t image_token_id) {
  int32_t runs = 0;
  for (int64_t t = 0; t < n; t++) {
    int img = ids[t] == image_token_id;
    if (img && (t == 0 || ids[t - 1] != image_token_id)) runs++;
    group[t] = img ? runs - 1 : -1;
  }
  return (int)runs;
}

/* Checks the run [lo, hi) of soft tokens, block number k. */
static int check_block(const g3_config *c, const int32_t *ids, int64_t n, int64_t lo, int64_t hi,
                       int k) {
  if (hi - lo != c->mm_tokens_per_image)
    return sc_error_setc(SC_ERR_FORMAT, "prompt: image block %d has %lld soft tokens, expected %d", k,
                         (long long)(hi - lo), c->mm_tokens_per_image);
  if (lo == 0 || ids[lo - 1] != c->boi_token_id || hi >= n || ids[hi] != c->eoi_token_id)
    return sc_error_setc(SC_ERR_FORMAT,
                         "prompt: image block %d is not enclosed by <start_of_image> (id %d) and "
                         "<end_of_image> (id %d)", k, c->boi_token_id, c->eoi_token_id);
  return 0;
}

int g3_image_prompt_check(const g3_config *cfg, const int32_t *ids, int64_t n, int *n_images) {
  int k = 0;
  *n_images = 0;
  for (int64_t t = 0; t < n;) {
    if (ids[t] != cfg->image_token_id) {
      t++;
      continue;
    }
    int64_t end = t;
    while (end < n && ids[end] == cfg->image_token_id) end++;
    int rc = check_block(cfg, ids, n, t, end, k++);
    if (rc) return rc;
    t = end;
  }
  *n_images = k;
  return 0;
}

int g3_caption_prompt(const tok_tokenizer *tok, const g3_config *cfg, const char *text,
                      int32_t **ids, int64_t *n) {
  *ids = NULL;
  *n = 0;
  if (!cfg->has_vision) return sc_error_setc(SC_ERR_ARG, "caption: the model has no vision tower");
  size_t len = 0;
  int n_img = 0;
  int rc = g3_chat_encode(tok, text, strlen(text), cfg->mm_tokens_per_image, ids, &len);
  if (!rc) rc = g3_image_prompt_check(cfg, *ids, (int64_t)len, &n_img);
  if (!rc && n_img != 1)
    rc = sc_error_setc(SC_ERR_FORMAT, "prompt: %d image blocks, expected 1", n_img);
  if (rc) {
    free(*ids);
    *ids = NULL;
    return rc;
  }
  *n = (int64_t)len;
  return 0;
}

/* ==== Pixels ==== */

int g3_image_pixels(const g3_vision *v, const char *model_dir, const char *image_path, float *pixels) {
  char *pp = sc_path_join(model_dir, "preprocessor_config.json");
  img_preproc_config pc;
  img_rgb8 im = {0};
  int w = 0, h = 0, s = v->cfg.vision.image_size;
  int rc = pp ? img_preproc_config_load(pp, &pc) : sc_error_setc(SC_ERR_NOMEM, "out of memory");
  if (!rc) rc = img_load_for_model(image_path, 1, &im);
  if (!rc) img_preproc_out_size(&pc, &im, &w, &h);
  if (!rc && (w != s || h != s))
    rc = sc_error_setc(SC_ERR_FORMAT, "%s: preprocessing gives %dx%d images, the vision tower takes %dx%d",
                       pp, w, h, s, s);
  if (!rc) rc = img_preprocess(pixels, &pc, &im);
  img_free(&im);
  free(pp);
  return rc;
}

/* ==== The merged forward ==== */

/* Checks ids[n] against n_images and builds the decoder's image inputs:
 * group[n] (g3_image_groups) and table[n, hidden] whose row t is the j-th
 * projector row at the j-th soft token (other rows unset, never read). */
static int image_inputs(const g3_model *m, const int32_t *ids, int64_t n, const float *image_embeds,
                        int n_images, int32_t **group, float **table) {
  int64_t d = m->cfg.text.hidden_size, j = 0;
  int n_img = 0;
  *group = NULL;
  *table = NULL;
  if (n < 1) return sc_error_setc(SC_ERR_ARG, "forward: no tokens given");
  int rc = g3_image_prompt_check(&m->cfg, ids, n, &n_img);
  if (rc) return rc;
  if (n_img != n_images)
    return sc_error_setc(SC_ERR_ARG, "forward: the prompt holds %d image blocks, but %d images were given",
                         n_img, n_images);
  *group = malloc((size_t)n * sizeof **group);
  *table = malloc((size_t)n * (size_t)d * sizeof **table);
  if (!*group || !*table) return sc_error_setc(SC_ERR_NOMEM, "forward: out of memory");
  g3_image_groups(*group, ids, n, m->cfg.image_token_id);
  for (int64_t t = 0; t < n; t++)
    if ((*group)[t] >= 0) memcpy(*table + t * d, image_embeds + j++ * d, (size_t)d * sizeof **table);
  return 0;
}

int g3_forward_image(const g3_model *m, g3_state *s, const g3_forward_io *io,
                     const float *image_embeds, int n_images) {
  int32_t *group;
  float *table;
  int rc = image_inputs(m, io->ids, io->n, image_embeds, n_images, &group, &table);
  if (!rc) {
    g3_forward_io mio = *io;
    mio.image_group = group;
    mio.embeds_in = table;
    rc = g3_forward(m, s, &mio);
  }
  free(group);
  free(table);
  return rc;
}

/* ==== Generation ==== */

int g3_caption_generate(const g3_model *m, const int32_t *prompt, int64_t n_prompt,
                        const float *image_embeds, int n_images, const g3_gen_opts *o,
                        int32_t **out, int64_t *n_out) {
  int32_t *group;
  float *table;
  *out = NULL;
  *n_out = 0;
  int rc = image_inputs(m, prompt, n_prompt, image_embeds, n_images, &group, &table);
  if (!rc) {
    g3_gen_opts io = *o;
    io.prefill_image_group = group;
    io.prefill_embeds = table;
    rc = g3_generate(m, prompt, n_prompt, &io, out, n_out);
  }
  free(group);
  free(table);
  return rc;
}
