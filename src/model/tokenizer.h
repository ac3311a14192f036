/* tokenizer.h: Hugging Face tokenizer.json (BPE with byte fallback), as used
 * by Gemma 3, with the semantics of the Rust `tokenizers` library.
 *
 * Typical use:
 *   tok_tokenizer *t;
 *   if (tok_load(&t, "model/tokenizer.json")) return cli_fail();
 *   int32_t *ids; size_t n;
 *   tok_encode(t, text, strlen(text), 1, &ids, &n);   // ids owned by caller
 *   char *s; size_t len;
 *   tok_decode(t, ids, n, 0, &s, &len);                // s owned by caller
 *   free(ids); free(s); tok_free(t);
 *
 * What is read from the file (anything else is refused with
 * "<name>: unsupported <component> '<type>'"):
 *   model          BPE (dropout null/0, no continuing_subword_prefix or
 *                  end_of_word_suffix); byte_fallback, fuse_unk, unk_token,
 *                  ignore_merges honoured; merges as ["a","b"] or "a b".
 *   added_tokens   split first, leftmost-longest over every content string
 *                  (normalized:false ones on the raw text, normalized:true
 *                  ones on each normalized piece); lstrip/rstrip/single_word
 *                  must be false.
 *   normalizer     null, Replace (String pattern), Prepend, Sequence of those.
 *   pre_tokenizer  null, Split (String pattern, any behavior, invert false),
 *                  Sequence of those.
 *   post_processor null or TemplateProcessing (its "single" template is what
 *                  add_bos applies).
 *   decoder        null, Replace (String), ByteFallback, Fuse, Strip, Sequence.
 *
 * A loaded tokenizer is read-only: encode/decode may run from several
 * threads at once.
 */
#ifndef SC_TOKENIZER_H
#define SC_TOKENIZER_H

#include <stddef.h>
#include <stdint.h>

typedef struct tok_tokenizer tok_tokenizer;

/* Largest tokenizer.json accepted (the Gemma 3 one is 33 MB). */
#define TOK_MAX_FILE_BYTES ((size_t)1 << 30)
/* Largest token id accepted from a file. */
#define TOK_MAX_ID ((int64_t)1 << 24)

/* Reads and validates tokenizer.json at path. On success *out owns the
 * tokenizer (free with tok_free). Errors: SC_ERR_IO (unreadable file),
 * SC_ERR_FORMAT (malformed JSON, a missing or mistyped field, a merge whose
 * tokens are not in the vocab, duplicate ids, unsupported component), each
 * with a message that starts with path. */
int tok_load(tok_tokenizer **out, const char *path);

/* Same from memory: buf[0..len) need not be NUL-terminated; name is used in
 * messages. buf is not kept. */
int tok_from_memory(const char *buf, size_t len, const char *name, tok_tokenizer **out);

/* Frees everything; NULL is a no-op. */
void tok_free(tok_tokenizer *t);

/* One more than the largest id (vocab or added token): ids in
 * [0, tok_n_ids) may be decoded, if they have a token. */
int32_t tok_n_ids(const tok_tokenizer *t);

/* Encodes text[0..len) (UTF-8, may contain NUL) like tokenizers'
 * Tokenizer::encode: added tokens split out first, then normalizer,
 * pre-tokenizer and BPE per piece. With add_bos, the post-processor's single
 * template is applied (for Gemma 3: a leading <bos>, id 2). On success
 * *ids_out is a malloc'd array of *n_out ids (NULL when *n_out is 0) owned by
 * the caller. Errors: SC_ERR_FORMAT "input: invalid UTF-8 at byte N",
 * SC_ERR_MISSING when a char needs an unk token the vocab lacks,
 * SC_ERR_NOMEM. */
int tok_encode(const tok_tokenizer *t, const char *text, size_t len, int add_bos,
               int32_t **ids_out, size_t *n_out);

/* Decodes ids like tokenizers' Tokenizer::decode: id -> token string (added
 * tokens first), special ids dropped when skip_special, then the decoder
 * chain (Gemma 3: "▁"->" ", runs of <0xHH> joined and UTF-8 decoded, a run
 * that is not valid UTF-8 becoming one U+FFFD per byte, all concatenated).
 * *text_out is malloc'd, NUL-terminated, *len_out bytes (may be NULL).
 * Errors: SC_ERR_RANGE "token id N is out of range [0, M)" or "token id N
 * has no token", SC_ERR_NOMEM. */
int tok_decode(const tok_tokenizer *t, const int32_t *ids, size_t n, int skip_special,
               char **text_out, size_t *len_out);

/* Id of an exact token string (added tokens first, then the vocab), or -1. */
int32_t tok_token_id(const tok_tokenizer *t, const char *s, size_t len);

/* Token string of id (not NUL-terminated: length in *len), or NULL when id
 * has no token. Valid while t lives. */
const char *tok_token_str(const tok_tokenizer *t, int32_t id, size_t *len);

/* Leftmost-longest added token (normalized:false ones) in text[0..len), as
 * encode's first step finds it: returns its id and sets *pos and *mlen, or
 * returns -1 when the text holds none. */
int32_t tok_find_added(const tok_tokenizer *t, const char *text, size_t len, size_t *pos,
                       size_t *mlen);

/* 1 if id is an added token marked special (skipped by skip_special). */
int tok_is_special(const tok_tokenizer *t, int32_t id);

#endif
