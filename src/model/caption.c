/* caption.c: image prompts, the merged image+text forward and caption
 * generation (see caption.h).
 *
 * How the merge reaches the decoder without a decoder change: the prefill
 * runs on a shallow copy of the model whose embedding table is a per-call
 * f32 matrix with one row per prompt position (row t = E[id_t]·s computed
 * exactly as decoder.c does it, or the projector row for a soft token) and
 * whose embed_scale is 1, with id t at position t. The decoder then sees
 * exactly the embeddings HF merges (1·x is exact), and everything else
 * (layers, cache, lm_head, which stays the real tied embedding) is the
 * model's own. Decode steps use the model itself. A g3_forward_io field
 * for input embeddings would replace this; see the vision issue notes. */
#include "model/caption.h"

#include <stdlib.h>
#include <string.h>

#include "base/error.h"
#include "base/rng.h"
#include "model/chat.h"

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

/* ==== The merged forward ==== */

/* table[n, d]: row t = E[id_t]·s (as decoder.c's embed_tokens computes it)
 * or, for the j-th soft token, image_embeds[j]. */
static void merged_rows(float *table, const g3_model *m, const int32_t *ids, int64_t n,
                        const float *image_embeds) {
  int64_t d = m->cfg.text.hidden_size, j = 0;
  for (int64_t t = 0; t < n; t++) {
    float *row = table + t * d;
    if (ids[t] == m->cfg.image_token_id) {
      memcpy(row, image_embeds + j++ * d, (size_t)d * sizeof *row);
      continue;
    }
    sc_mat_row(row, &m->embed, ids[t]);
    for (int64_t i = 0; i < d; i++) row[i] *= m->embed_scale;
  }
}

/* Ids and groups of the merged call: position t reads table row t. */
static int merged_io(const g3_model *m, const g3_forward_io *io, int32_t *pos_ids, int32_t *group,
                     int n_images) {
  int n_img = 0;
  int rc = g3_image_prompt_check(&m->cfg, io->ids, io->n, &n_img);
  if (rc) return rc;
  if (n_img != n_images)
    return sc_error_setc(SC_ERR_ARG, "forward: the prompt holds %d image blocks, but %d images were given",
                         n_img, n_images);
  if (io->n > m->cfg.text.vocab_size)
    return sc_error_setc(SC_ERR_RANGE, "forward: an image prompt of %lld tokens is longer than %d",
                         (long long)io->n, m->cfg.text.vocab_size);
  for (int64_t t = 0; t < io->n; t++) {
    if (io->ids[t] < 0 || io->ids[t] >= m->cfg.text.vocab_size)
      return sc_error_setc(SC_ERR_RANGE, "forward: token id %ld at position %lld is out of range [0, %d)",
                           (long)io->ids[t], (long long)t, m->cfg.text.vocab_size);
    pos_ids[t] = (int32_t)t;
  }
  g3_image_groups(group, io->ids, io->n, m->cfg.image_token_id);
  return 0;
}

int g3_forward_image(const g3_model *m, g3_state *s, const g3_forward_io *io,
                     const float *image_embeds, int n_images) {
  int64_t n = io->n, d = m->cfg.text.hidden_size;
  if (n < 1) return sc_error_setc(SC_ERR_ARG, "forward: no tokens given");
  float *table = malloc((size_t)n * (size_t)d * sizeof *table);
  int32_t *pos_ids = malloc((size_t)n * sizeof *pos_ids), *group = malloc((size_t)n * sizeof *group);
  int rc = table && pos_ids && group ? 0 : sc_error_setc(SC_ERR_NOMEM, "forward: out of memory");
  if (!rc) rc = merged_io(m, io, pos_ids, group, n_images);
  if (!rc) {
    merged_rows(table, m, io->ids, n, image_embeds);
    g3_model view = *m; /* shares everything but the embedding lookup */
    view.embed = (sc_mat){table, SC_DTYPE_F32, n, d};
    view.embed_scale = 1.0f;
    g3_forward_io vio = *io;
    vio.ids = pos_ids;
    vio.image_group = group;
    rc = g3_forward(&view, s, &vio);
  }
  free(table);
  free(pos_ids);
  free(group);
  return rc;
}

/* ==== Generation ==== */

static int is_eos(const g3_gen_opts *o, int32_t id) {
  for (int i = 0; i < o->n_eos; i++)
    if (o->eos[i] == id) return 1;
  return 0;
}

/* The decode loop after the prefill left the first logits in logits. */
static int decode_loop(const g3_model *m, g3_state *s, const g3_gen_opts *o, float *logits,
                       int32_t *ids, int64_t *n_out) {
  float *work = malloc(3 * (size_t)o->vocab_limit * sizeof *work);
  if (!work) return sc_error_setc(SC_ERR_NOMEM, "generate: out of memory");
  sc_rng rng;
  sc_rng_seed(&rng, o->seed);
  g3_forward_io io = {.n = 1, .logits = logits, .logits_last = 1, .edit = o->edit,
                      .edit_user = o->edit_user};
  int64_t n = 0;
  int rc = 0;
  while (!rc && n < o->max_new_tokens) {
    ids[n] = g3_sample(logits, o, &rng, work);
    if (is_eos(o, ids[n++]) || n == o->max_new_tokens) break;
    io.ids = &ids[n - 1];
    rc = g3_forward(m, s, &io);
  }
  free(work);
  *n_out = n;
  return rc;
}

int g3_caption_generate(const g3_model *m, const int32_t *prompt, int64_t n_prompt,
                        const float *image_embeds, int n_images, const g3_gen_opts *o,
                        int32_t **out, int64_t *n_out) {
  *out = NULL;
  *n_out = 0;
  int rc = g3_gen_opts_check(o, m);
  if (rc) return rc;
  g3_state *s = NULL;
  float *logits = malloc((size_t)m->cfg.text.vocab_size * sizeof *logits);
  int32_t *ids = malloc(((size_t)o->max_new_tokens + 1) * sizeof *ids);
  if (!logits || !ids) rc = sc_error_setc(SC_ERR_NOMEM, "generate: out of memory");
  if (!rc) rc = g3_state_create(&s, m, n_prompt + o->max_new_tokens);
  g3_forward_io io = {.ids = prompt, .n = n_prompt, .logits = logits, .logits_last = 1,
                      .edit = o->edit, .edit_user = o->edit_user};
  if (!rc && o->max_new_tokens > 0) rc = g3_forward_image(m, s, &io, image_embeds, n_images);
  if (!rc && o->max_new_tokens > 0) rc = decode_loop(m, s, o, logits, ids, n_out);
  g3_state_free(s);
  free(logits);
  if (rc) {
    free(ids);
    *n_out = 0;
    return rc;
  }
  *out = ids;
  return 0;
}
