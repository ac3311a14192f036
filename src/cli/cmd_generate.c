/* cmd_generate.c: `saecap generate`: greedy or sampled continuation of one
 * prompt with the Gemma-3 text decoder (KV-cached decoding). */
#include <errno.h>
#include <limits.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/error.h"
#include "base/fs.h"
#include "base/log.h"
#include "cli/cli.h"
#include "io/json.h"
#include "model/decoder.h"
#include "model/generate.h"
#include "model/tokenizer.h"
#include "tensor/kernels.h"

static const char *const usage =
    "usage: saecap generate --model DIR (--prompt TEXT | --ids FILE) [--chat]\n"
    "                       [--max-new-tokens N] [--temperature T --top-k K --top-p P\n"
    "                       --seed S] [--json] [--precision f32|bf16]\n\n"
    "Continues the prompt with the Gemma-3 text decoder and prints the new text\n"
    "(special tokens skipped) and a newline. Stops at an eos id of\n"
    "DIR/generation_config.json (else config.json) or after N new tokens. Greedy unless\n"
    "--temperature > 0; sampling applies temperature, then top-k, then top-p, with a\n"
    "seeded RNG (same seed, same output). Embedding rows the tokenizer does not name\n"
    "(Gemma 3: the image placeholder and padding rows >= 262144) are never picked.\n\n"
    "options:\n"
    "  --model DIR          Hugging Face checkpoint folder\n"
    "  --prompt TEXT        prompt text (tokenized with <bos>)\n"
    "  --chat               with --prompt: the Gemma 3 IT single-turn prompt\n"
    "  --ids FILE           whitespace-separated prompt token ids, used as they are\n"
    "  --max-new-tokens N   default 64\n"
    "  --temperature T      default 0 (greedy)\n"
    "  --top-k K            default 0 (off)\n"
    "  --top-p P            in (0, 1], default 1 (off)\n"
    "  --seed S             sampling seed, default 0\n"
    "  --json               print {\"ids\": [...], \"text\": \"...\"} instead\n"
    "  --precision P        f32 (default: the reference mode, as forward) or bf16\n"
    "                       (GEMM inputs rounded to bf16, f32 accumulation)\n"
    "  -h, --help           this text\n";

typedef struct gen_args {
  const char *model, *prompt, *ids;
  int chat, json;
  sc_precision precision;
  long long max_new, top_k, seed;
  double temperature, top_p;
} gen_args;

static int parse_double(const char *s, double lo, double hi, double *out) {
  char *end;
  if (!s || !*s) return -1;
  errno = 0;
  double v = strtod(s, &end);
  if (errno || *end || !isfinite(v) || v < lo || v > hi) return -1;
  *out = v;
  return 0;
}

/* One option with a value at argv[i]; 1 if o is not one of these, -1 bad. */
static int parse_valued(gen_args *a, const char *o, const char *val) {
  if (!strcmp(o, "--model")) a->model = val;
  else if (!strcmp(o, "--prompt")) a->prompt = val;
  else if (!strcmp(o, "--ids")) a->ids = val;
  else if (!strcmp(o, "--max-new-tokens")) return cli_parse_int(val, 0, G3_MAX_NEW_TOKENS, &a->max_new);
  else if (!strcmp(o, "--top-k")) return cli_parse_int(val, 0, INT_MAX, &a->top_k);
  else if (!strcmp(o, "--seed")) return cli_parse_int(val, 0, LLONG_MAX, &a->seed);
  else if (!strcmp(o, "--temperature")) return parse_double(val, 0.0, 1e6, &a->temperature);
  else if (!strcmp(o, "--top-p")) return parse_double(val, 1e-9, 1.0, &a->top_p);
  else if (!strcmp(o, "--precision")) return sc_precision_parse(val, &a->precision) ? -1 : 0;
  else return 1;
  return val ? 0 : -1;
}

static int parse_args(int argc, char **argv, gen_args *a) {
  memset(a, 0, sizeof *a);
  a->max_new = 64;
  a->top_p = 1.0;
  for (int i = 1; i < argc; i++) {
    const char *o = argv[i];
    if (!strcmp(o, "--chat") || !strcmp(o, "--json")) {
      *(!strcmp(o, "--chat") ? &a->chat : &a->json) = 1;
      continue;
    }
    int r = parse_valued(a, o, i + 1 < argc ? argv[i + 1] : NULL);
    if (r > 0) return cli_usage_error("generate", "unexpected argument '%s'", o);
    if (r < 0) return cli_usage_error("generate", "bad or missing value for %s", o);
    i++;
  }
  if (!a->model) return cli_usage_error("generate", "--model is required");
  if (!a->prompt == !a->ids) return cli_usage_error("generate", "give exactly one of --prompt and --ids");
  if (a->chat && !a->prompt) return cli_usage_error("generate", "--chat needs --prompt");
  return 0;
}

static int print_result(const tok_tokenizer *tok, const int32_t *ids, int64_t n, int json) {
  char *text = NULL;
  int rc = tok_decode(tok, ids, (size_t)n, 1, &text, NULL);
  if (rc) return rc;
  if (!json) {
    printf("%s\n", text);
    free(text);
    return 0;
  }
  sc_json *o = sc_json_new_object(), *arr = sc_json_add(o, "ids", sc_json_new_array());
  int ok = arr && sc_json_add_str(o, "text", text);
  for (int64_t i = 0; ok && i < n; i++) ok = sc_json_add(arr, NULL, sc_json_new_num(ids[i])) != NULL;
  char *s = ok ? sc_json_print(o, 0) : NULL;
  if (s) printf("%s\n", s);
  free(s);
  sc_json_free(o);
  free(text);
  return s ? 0 : sc_error_setc(SC_ERR_NOMEM, "generate: out of memory");
}

static int set_opts(const gen_args *a, const g3_model *m, g3_gen_opts *o) {
  g3_gen_opts_init(o, m);
  int rc = g3_gen_eos_load(o, a->model);
  o->max_new_tokens = (int)a->max_new;
  o->temperature = a->temperature;
  o->top_k = (int)a->top_k;
  o->top_p = a->top_p;
  o->seed = (uint64_t)a->seed;
  return rc;
}

static int run(const gen_args *a, const g3_model *m) {
  char *path = sc_path_join(a->model, "tokenizer.json");
  tok_tokenizer *tok = NULL;
  int32_t *prompt = NULL, *out = NULL;
  int64_t n_prompt = 0, n_out = 0;
  g3_gen_opts o;
  int rc = path ? tok_load(&tok, path) : sc_error_setc(SC_ERR_NOMEM, "out of memory");
  if (!rc) rc = set_opts(a, m, &o);
  if (!rc && a->ids) rc = g3_ids_load(a->ids, m->cfg.text.vocab_size, &prompt, &n_prompt);
  if (!rc && a->prompt) rc = g3_prompt_encode(tok, a->prompt, a->chat, &prompt, &n_prompt);
  if (!rc && o.vocab_limit < m->cfg.text.vocab_size)
    sc_info("generate: ids >= %d are masked (embedding rows the tokenizer does not name)",
            (int)o.vocab_limit);
  if (!rc) rc = g3_generate(m, prompt, n_prompt, &o, &out, &n_out);
  if (!rc) rc = print_result(tok, out, n_out, a->json);
  tok_free(tok);
  free(path);
  free(prompt);
  free(out);
  return rc;
}

int cmd_generate(int argc, char **argv) {
  if (cli_wants_help(argc, argv)) {
    fputs(usage, stdout);
    return 0;
  }
  gen_args a;
  int rc = parse_args(argc, argv, &a);
  if (rc) return rc;
  sc_kernels_set_threads(cli_threads());
  g3_model *m = NULL;
  if (g3_model_load(&m, a.model)) return cli_fail();
  m->precision = a.precision;
  rc = run(&a, m) ? cli_fail() : 0;
  g3_model_free(m);
  return rc;
}
