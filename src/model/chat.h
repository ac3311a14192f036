/* chat.h: the Gemma 3 instruction-tuned prompt for one user turn.
 *
 * HF's chat template (tokenizer_config.json "chat_template", spec §5.1) with
 * add_generation_prompt, for a single user message whose content is an
 * optional image followed by text:
 *
 *   <bos><start_of_turn>user\n[<start_of_image>]{text | trim}<end_of_turn>\n
 *   <start_of_turn>model\n
 *
 * then Gemma3Processor's expansion of each <start_of_image> into
 * "\n\n<start_of_image>" + N x "<image_soft_token>" + "<end_of_image>\n\n",
 * N = mm_tokens_per_image (256 for Gemma 3). `trim` is Jinja's, i.e.
 * Python's str.strip(): Unicode whitespace at both ends is removed.
 *
 * The rendered prompt already holds <bos>, so it is encoded without adding
 * another one (HF passes add_special_tokens=False in that case).
 */
#ifndef SC_CHAT_H
#define SC_CHAT_H

#include <stddef.h>
#include <stdint.h>

#include "model/tokenizer.h"

/* Most image soft tokens accepted per image. */
#define G3_CHAT_MAX_IMAGE_TOKENS 65536

/* Renders the prompt for text[0..len) (UTF-8). image_tokens = 0: text only;
 * > 0: one image before the text, expanded to that many soft tokens. On
 * success *out is malloc'd and NUL-terminated, *out_len bytes (out_len may be
 * NULL). Errors: SC_ERR_FORMAT "prompt: invalid UTF-8 at byte N",
 * SC_ERR_ARG "prompt: text contains '<start_of_image>' ..." (with an image,
 * HF's processor would count it as a second image and refuse),
 * SC_ERR_RANGE for image_tokens outside [0, G3_CHAT_MAX_IMAGE_TOKENS],
 * SC_ERR_NOMEM. */
int g3_chat_render(const char *text, size_t len, int image_tokens, char **out, size_t *out_len);

/* Renders as above and encodes with tok (no extra BOS). *ids is malloc'd,
 * owned by the caller. Errors: those of g3_chat_render and tok_encode. */
int g3_chat_encode(const tok_tokenizer *tok, const char *text, size_t len, int image_tokens,
                   int32_t **ids, size_t *n_ids);

/* Bounds of text[0..len) without leading/trailing Python whitespace
 * (str.strip()); text must be valid UTF-8. */
void g3_chat_trim(const char *text, size_t len, size_t *start, size_t *end);

#endif
