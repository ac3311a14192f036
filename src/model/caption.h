/* caption.h: image prompts and captioning with Gemma 3 (research/
 * gemma3_spec.md §3.1, §3.3, §4.5, §5.1).
 *
 * An image prompt is the IT chat prompt whose <start_of_image> the
 * processor expanded (chat.h): ... "\n\n" <boi> M × <image_soft_token>
 * <eoi> "\n\n" ..., M = mm_tokens_per_image. The forward over it
 *  - replaces the embedding of the i-th soft token (in sequence order) by
 *    row i of the projector output (vision.h), NOT multiplied by
 *    sqrt(hidden) (HF Gemma3Model.forward masked_scatter);
 *  - lets the soft tokens of one image (a run of consecutive soft tokens,
 *    HF token_type_ids = 1 only for them) attend to each other in both
 *    directions, OR-ed onto the causal mask and, on sliding layers, onto
 *    the sliding-window mask WITHOUT a window limit on the image block.
 *    That is what transformers 4.5x does (token_type_ids_mask_function
 *    or-ed in create_causal_mask_mapping; per-image groups since PR
 *    #38080, mask plumbing fixed by PR #39396), i.e. what a researcher
 *    running Gemma 3 today gets, and what sc_attention's image groups do.
 *    A 2026 change (transformers PR #46850, and the JAX
 *    reference) keeps the window on sliding layers: |q − k| < W. For the
 *    real 4B model (W = 1024 > 256 soft tokens) both agree; for the tiny
 *    test model (W = 8, 16 soft tokens) they differ, and saecap matches
 *    `g3_reference.py --image-mask or` (see docs/notes.md).
 *  - Cached decode steps after the prompt are ordinary text (HF applies
 *    the image block only where the new tokens contain images).
 *
 * Vision runs once per image: the caller computes image_embeds with
 * g3_vision_forward and passes the same rows to every prompt on that image
 * (the English and the Arabic one).
 *
 * Typical use:
 *   g3_caption_prompt(tok, &m->cfg, "Describe this image.", &ids, &n);
 *   g3_gen_opts_init(&o, m); o.max_new_tokens = 32;
 *   g3_caption_generate(m, ids, n, embeds, 1, &o, &out, &n_out);
 */
#ifndef SC_CAPTION_H
#define SC_CAPTION_H

#include <stdint.h>

#include "model/decoder.h"
#include "model/generate.h"
#include "model/tokenizer.h"
#include "model/vision.h"

/* The default instructions per language (issue 5: English and Arabic). */
#define G3_CAPTION_PROMPT_EN "Describe this image in one sentence."
#define G3_CAPTION_PROMPT_AR "صف هذه الصورة في جملة واحدة."

/* group[t] = index of the run of consecutive image_token_id tokens that
 * holds position t (0, 1, ... in order), -1 for every other token (HF
 * create_causal_mask_mapping: boi, eoi and newlines are text). Returns the
 * number of runs. */
int g3_image_groups(int32_t *group, const int32_t *ids, int64_t n, int32_t image_token_id);

/* Checks that ids[n] hold image blocks as the processor writes them
 * (spec §5.1): every run of image soft tokens is exactly
 * mm_tokens_per_image long, directly preceded by boi and followed by eoi.
 * *n_images = number of runs. Errors: SC_ERR_FORMAT "prompt: image block
 * N has K soft tokens, expected M", "prompt: image block N is not
 * enclosed by <start_of_image> (id B) and <end_of_image> (id E)". */
int g3_image_prompt_check(const g3_config *cfg, const int32_t *ids, int64_t n, int *n_images);

/* The single-turn IT prompt with one image before the text (chat.h), the
 * image expanded to cfg->mm_tokens_per_image soft tokens, checked with
 * g3_image_prompt_check. *ids malloc'd, owned by the caller. Errors: those
 * of g3_chat_encode and g3_image_prompt_check; SC_ERR_ARG "caption: the
 * model has no vision tower". */
int g3_caption_prompt(const tok_tokenizer *tok, const g3_config *cfg, const char *text,
                      int32_t **ids, int64_t *n);

/* g3_forward over io->ids with the n_images × mm_tokens_per_image rows of
 * image_embeds (mm_tokens_per_image · n_images, hidden) merged in at the
 * soft-token positions and the image block in the mask (see the overview).
 * io->image_group is ignored (derived from the ids). All outputs as
 * g3_forward; io->embeds receives the merged embeddings (HF
 * hidden_states[0]). The prompt must start the state's sequence or
 * continue it; each image block must lie inside this one call. Errors:
 * those of g3_image_prompt_check, SC_ERR_ARG "forward: the prompt holds N
 * image blocks, but M images were given", those of g3_forward, SC_ERR_NOMEM. */
int g3_forward_image(const g3_model *m, g3_state *s, const g3_forward_io *io,
                     const float *image_embeds, int n_images);

/* Reads image_path (PNG or JPEG, turned upright by its EXIF orientation)
 * and preprocesses it as model_dir/preprocessor_config.json says into
 * pixels (g3_vision_pixels_floats(v) floats, (channels, S, S)). Errors:
 * those of img_preproc_config_load, img_load_for_model, img_preprocess;
 * SC_ERR_FORMAT "<preprocessor_config.json>: preprocessing gives WxH
 * images, the vision tower takes SxS"; SC_ERR_NOMEM. */
int g3_image_pixels(const g3_vision *v, const char *model_dir, const char *image_path, float *pixels);

/* g3_generate with an image prompt: prefill with g3_forward_image, then
 * cached decode steps exactly as g3_generate (sampling, eos, edit hook from
 * o). *out: malloc'd generated ids (stop id included), owned by the
 * caller. Errors: those of g3_gen_opts_check, g3_state_create,
 * g3_forward_image, g3_forward; SC_ERR_NOMEM. The prefill_* fields of o are
 * replaced by the image inputs; o->feed_last is honoured. */
int g3_caption_generate(const g3_model *m, const int32_t *prompt, int64_t n_prompt,
                        const float *image_embeds, int n_images, const g3_gen_opts *o,
                        int32_t **out, int64_t *n_out);

#endif
