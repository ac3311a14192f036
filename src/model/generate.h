/* generate.h: prompts in, tokens out: reading prompt ids, sampling, and the
 * generation loop over a g3_state (prefill once, then one cached decode
 * step per new token).
 *
 * Sampling follows transformers' generate with do_sample: logits /
 * temperature, then top-k, then top-p (the smallest set of most likely
 * tokens whose probability reaches top_p, at least one), then one draw from
 * the renormalised distribution with the caller's seeded RNG. Temperature 0
 * is greedy (argmax, the lowest id among equal maxima, as torch.argmax).
 * Either way only ids below vocab_limit can be picked: Gemma 3's embedding
 * has 262208 rows but the tokenizer only 262144 real tokens (262144 is the
 * image placeholder, the rest random padding, spec §3.4), and HF masks
 * nothing, so saecap masks them.
 *
 * Precision: g3_generate's state runs in m->precision (decoder.h). The
 * default everywhere, `saecap generate` included, is SC_PRECISION_F32, the
 * reference mode: captions then come from the same numerics as the
 * parity-tested forward and the activations the study captures. bf16 is a
 * speed option, not a different model: on the 2-core AVX2 machine (no
 * oneDNN bf16 kernel, the exact widening fallback runs) bench_decoder
 * measured prefill within noise of f32 and decode ~1.3x faster (bf16 GEMV
 * kernel); `--precision bf16` also matches what a bf16 Hugging Face run
 * computes. It gave the same greedy tokens as f32 on the test prompts
 * (test_generate.c).
 *
 * Typical use:
 *   g3_gen_opts o;
 *   g3_gen_opts_init(&o, m);                        // greedy, eos from config
 *   g3_gen_eos_load(&o, model_dir);                 // generation_config.json
 *   o.max_new_tokens = 32;
 *   int32_t *out; int64_t n_out;
 *   g3_generate(m, prompt, n_prompt, &o, &out, &n_out);   // out owned by caller
 */
#ifndef SC_GENERATE_H
#define SC_GENERATE_H

#include <stddef.h>
#include <stdint.h>

#include "base/rng.h"
#include "model/decoder.h"
#include "model/tokenizer.h"

/* Largest --ids file accepted. */
#define G3_IDS_MAX_BYTES ((size_t)64 << 20)
#define G3_MAX_NEW_TOKENS (1 << 20)

typedef struct g3_gen_opts {
  int max_new_tokens;    /* >= 0; generation also stops at an eos id */
  double temperature;    /* 0 = greedy; else > 0 */
  int top_k;             /* 0 = off */
  double top_p;          /* 1 = off; in (0, 1] */
  uint64_t seed;         /* of the sampling RNG */
  int n_eos;             /* 0..G3_MAX_EOS */
  int32_t eos[G3_MAX_EOS]; /* (n_eos) stop ids; the stop id is kept in the output */
  int32_t vocab_limit;   /* ids >= this are never picked; in [1, vocab_size] */
  g3_edit_fn edit;       /* applied in the prefill and every decode step; NULL = none */
  void *edit_user;
  /* Prefill inputs of an image prompt (caption.h builds them); the decode
   * steps after it are text. NULL = a text prompt. */
  const float *prefill_embeds;        /* (n_prompt, hidden): g3_forward_io.embeds_in */
  const int32_t *prefill_image_group; /* (n_prompt): g3_forward_io.image_group */
  int feed_last;         /* 1: also run the last generated id through the model (one more
                            decode step whose logits are unused), so the edit hook sees
                            every generated token; the extraction stage captures so */
} g3_gen_opts;

/* Greedy, 64 new tokens, eos ids from config.json, vocab_limit =
 * min(vocab_size, image_token_id when that is a valid row > 0). */
void g3_gen_opts_init(g3_gen_opts *o, const g3_model *m);

/* Replaces o's eos ids with generation_config.json's eos_token_id (a number
 * or a list) when DIR has that file; keeps them otherwise. Errors:
 * SC_ERR_FORMAT "<path>: eos_token_id: ..." for a malformed file or value,
 * SC_ERR_RANGE for more than G3_MAX_EOS ids. */
int g3_gen_eos_load(g3_gen_opts *o, const char *dir);

/* Validates o against m (ranges above); SC_ERR_ARG naming the option. */
int g3_gen_opts_check(const g3_gen_opts *o, const g3_model *m);

/* Picks the next id from logits[0..o->vocab_limit) (rows beyond are
 * ignored) as described above. work holds 3·vocab_limit floats of scratch.
 * rng is advanced only when sampling. */
int32_t g3_sample(const float *logits, const g3_gen_opts *o, sc_rng *rng, float *work);

/* Runs the prompt (with o's prefill inputs) and up to max_new_tokens
 * decode steps (one more with feed_last). *out is a
 * malloc'd array of the *n_out generated ids (the stop id included when
 * one was hit), owned by the caller. Errors: those of g3_gen_opts_check,
 * g3_state_create and g3_forward (bad prompt ids, the edit hook's code),
 * SC_ERR_NOMEM. */
int g3_generate(const g3_model *m, const int32_t *prompt, int64_t n_prompt, const g3_gen_opts *o,
                int32_t **out, int64_t *n_out);

/* Parses whitespace-separated decimal ids from buf[0..len); name is used
 * in messages. Each must lie in [0, vocab_size). *ids is malloc'd (owned by
 * the caller). Errors: SC_ERR_FORMAT "<name>: 'x' is not a token id",
 * "<name>: no token ids"; SC_ERR_RANGE "<name>: token id N is out of range
 * [0, V)"; SC_ERR_NOMEM. */
int g3_ids_parse(const char *buf, size_t len, const char *name, int32_t vocab_size, int32_t **ids,
                 int64_t *n);
/* Reads a file (at most G3_IDS_MAX_BYTES) and parses it as above. */
int g3_ids_load(const char *path, int32_t vocab_size, int32_t **ids, int64_t *n);

/* Encodes a text prompt: chat = 0 gives tokenizer encode with the BOS
 * post-processor (HF add_special_tokens=True); chat = 1 the Gemma 3 IT
 * single-turn prompt (chat.h). Errors of tok_encode / g3_chat_encode and
 * SC_ERR_ARG "prompt: empty" when no token results. */
int g3_prompt_encode(const tok_tokenizer *tok, const char *text, int chat, int32_t **ids,
                     int64_t *n);

#endif
