/* chat.c: Gemma 3 IT prompt rendering (see chat.h). The strings follow the
 * chat template in tokenizer_config.json and Gemma3Processor's
 * full_image_sequence (transformers models/gemma3/processing_gemma3.py). */
#include "model/chat.h"

#include <stdlib.h>
#include <string.h>

#include "base/error.h"
#include "base/utf8.h"

#define BOI "<start_of_image>"
#define EOI "<end_of_image>"
#define SOFT "<image_soft_token>"
#define HEAD "<bos><start_of_turn>user\n"
#define TAIL "<end_of_turn>\n<start_of_turn>model\n"

/* Python's str.isspace(): White_Space chars of bidi class WS, B or S. */
static int py_space(uint32_t c) {
  return (c >= 0x09 && c <= 0x0D) || (c >= 0x1C && c <= 0x20) || c == 0x85 || c == 0xA0 ||
         c == 0x1680 || (c >= 0x2000 && c <= 0x200A) || c == 0x2028 || c == 0x2029 ||
         c == 0x202F || c == 0x205F || c == 0x3000;
}

/* Code point at s[i] (valid UTF-8) and its length. */
static uint32_t cp_at(const unsigned char *s, size_t i, size_t *n) {
  unsigned char c = s[i];
  if (c < 0x80) return *n = 1, c;
  if (c < 0xE0) return *n = 2, (uint32_t)(c & 0x1F) << 6 | (s[i + 1] & 0x3F);
  if (c < 0xF0) return *n = 3, (uint32_t)(c & 0x0F) << 12 | (uint32_t)(s[i + 1] & 0x3F) << 6 | (s[i + 2] & 0x3F);
  return *n = 4, (uint32_t)(c & 0x07) << 18 | (uint32_t)(s[i + 1] & 0x3F) << 12 |
                     (uint32_t)(s[i + 2] & 0x3F) << 6 | (s[i + 3] & 0x3F);
}

void g3_chat_trim(const char *text, size_t len, size_t *start, size_t *end) {
  const unsigned char *s = (const unsigned char *)text;
  size_t a = 0, b = len, n;
  while (a < b && py_space(cp_at(s, a, &n))) a += n;
  while (b > a) {
    size_t k = b - 1;
    while (k > a && (s[k] & 0xC0) == 0x80) k--; /* back to the lead byte */
    if (!py_space(cp_at(s, k, &n))) break;
    b = k;
  }
  *start = a;
  *end = b;
}

static char *put(char *p, const char *s, size_t n) {
  memcpy(p, s, n);
  return p + n;
}

/* Bytes of the expanded image block, or 0 when n_soft is 0. */
static size_t image_bytes(int n_soft) {
  if (!n_soft) return 0;
  return 2 + strlen(BOI) + (size_t)n_soft * strlen(SOFT) + strlen(EOI) + 2;
}

static char *put_image(char *p, int n_soft) {
  p = put(p, "\n\n" BOI, 2 + strlen(BOI));
  for (int i = 0; i < n_soft; i++) p = put(p, SOFT, strlen(SOFT));
  return put(p, EOI "\n\n", strlen(EOI) + 2);
}

static int check_args(const char *text, int image_tokens, size_t a, size_t b) {
  if (image_tokens < 0 || image_tokens > G3_CHAT_MAX_IMAGE_TOKENS)
    return sc_error_setc(SC_ERR_RANGE, "prompt: image token count %d is outside [0, %d]",
                         image_tokens, G3_CHAT_MAX_IMAGE_TOKENS);
  if (image_tokens && memmem(text + a, b - a, BOI, strlen(BOI)))
    return sc_error_setc(SC_ERR_ARG,
                         "prompt: text contains '" BOI "', which the processor would take for a "
                         "second image");
  return 0;
}

int g3_chat_render(const char *text, size_t len, int image_tokens, char **out, size_t *out_len) {
  size_t bad, a, b;
  *out = NULL;
  if (out_len) *out_len = 0;
  if (len && !sc_utf8_valid(text, len, &bad))
    return sc_error_set("prompt: invalid UTF-8 at byte %zu", bad);
  g3_chat_trim(text, len, &a, &b);
  int rc = check_args(text, image_tokens, a, b);
  if (rc) return rc;
  size_t total = strlen(HEAD) + image_bytes(image_tokens) + (b - a) + strlen(TAIL);
  char *s = malloc(total + 1), *p = s;
  if (!s) return sc_error_setc(SC_ERR_NOMEM, "out of memory");
  p = put(p, HEAD, strlen(HEAD));
  if (image_tokens) p = put_image(p, image_tokens);
  p = put(p, text + a, b - a);
  p = put(p, TAIL, strlen(TAIL));
  *p = 0;
  *out = s;
  if (out_len) *out_len = total;
  return 0;
}

int g3_chat_encode(const tok_tokenizer *tok, const char *text, size_t len, int image_tokens,
                   int32_t **ids, size_t *n_ids) {
  char *s;
  size_t n;
  *ids = NULL;
  *n_ids = 0;
  int rc = g3_chat_render(text, len, image_tokens, &s, &n);
  if (rc) return rc;
  rc = tok_encode(tok, s, n, 0, ids, n_ids);
  free(s);
  return rc;
}
