/* cmd_tokenize.c: `saecap tokenize --model DIR ...`: encodes stdin to token
 * ids with DIR/tokenizer.json (optionally inside the Gemma 3 IT chat
 * prompt), or decodes ids back to text. */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/error.h"
#include "base/fs.h"
#include "base/utf8.h"
#include "cli/cli.h"
#include "model/chat.h"
#include "model/tokenizer.h"

/* Largest stdin accepted. */
#define TOKENIZE_MAX_INPUT ((size_t)1 << 30)

static void print_help(void) {
  printf(
      "usage: saecap tokenize --model DIR [--bos] [--chat [--image-tokens N]]\n"
      "       saecap tokenize --model DIR --decode [--skip-special]\n\n"
      "Encodes all of stdin (UTF-8, nothing stripped) with DIR/tokenizer.json and prints\n"
      "the token ids on one line, separated by single spaces (an empty line for empty\n"
      "input). Semantics are those of Hugging Face tokenizers' encode.\n\n"
      "options:\n"
      "  --model DIR        folder holding tokenizer.json (required)\n"
      "  --bos              apply the post-processor (Gemma 3: a leading <bos>)\n"
      "  --chat             wrap the text (trimmed) in the Gemma 3 IT prompt:\n"
      "                     <bos><start_of_turn>user\\n{text}<end_of_turn>\\n<start_of_turn>model\\n\n"
      "                     (it holds its own <bos>, so --bos is not allowed with it)\n"
      "  --image-tokens N   with --chat: one image before the text, expanded to\n"
      "                     \\n\\n<start_of_image> + N x <image_soft_token> + <end_of_image>\\n\\n\n"
      "                     (Gemma 3 uses N = 256; default 0 = no image)\n"
      "  --decode           read whitespace-separated ids from stdin and print their text\n"
      "                     exactly (no newline added)\n"
      "  --skip-special     with --decode: drop special tokens (<bos>, <end_of_turn>, ...)\n"
      "  -h, --help         this text\n\n"
      "Errors are one line 'saecap: <file>: <problem>' (exit 1); bad options exit 2.\n");
}

typedef struct tokenize_opts {
  const char *model;
  int bos, chat, decode, skip_special;
  long long image_tokens;
} tokenize_opts;

static int parse_args(int argc, char **argv, tokenize_opts *o) {
  memset(o, 0, sizeof *o);
  for (int i = 1; i < argc; i++) {
    const char *a = argv[i];
    int has_val = i + 1 < argc;
    if (!strcmp(a, "--model") && has_val) o->model = argv[++i];
    else if (!strcmp(a, "--bos")) o->bos = 1;
    else if (!strcmp(a, "--chat")) o->chat = 1;
    else if (!strcmp(a, "--decode")) o->decode = 1;
    else if (!strcmp(a, "--skip-special")) o->skip_special = 1;
    else if (!strcmp(a, "--image-tokens") && has_val) {
      if (cli_parse_int(argv[++i], 0, G3_CHAT_MAX_IMAGE_TOKENS, &o->image_tokens))
        return cli_usage_error("tokenize", "--image-tokens needs a number from 0 to %d",
                               G3_CHAT_MAX_IMAGE_TOKENS);
    } else return cli_usage_error("tokenize", "unknown option or missing value '%s'", a);
  }
  if (!o->model) return cli_usage_error("tokenize", "--model DIR is required");
  if (o->chat && o->bos) return cli_usage_error("tokenize", "--bos and --chat exclude each other (the prompt has its <bos>)");
  if (o->image_tokens && !o->chat) return cli_usage_error("tokenize", "--image-tokens needs --chat");
  if (o->decode && (o->chat || o->bos))
    return cli_usage_error("tokenize", "--decode excludes --bos and --chat");
  if (o->skip_special && !o->decode) return cli_usage_error("tokenize", "--skip-special needs --decode");
  return 0;
}

/* All of stdin into a malloc'd, NUL-terminated buffer. */
static int read_stdin(char **out, size_t *len) {
  size_t cap = 1 << 16, n = 0;
  char *buf = malloc(cap);
  while (buf) {
    if (n + 1 >= cap) {
      if (cap >= TOKENIZE_MAX_INPUT) {
        free(buf);
        return sc_error_setc(SC_ERR_RANGE, "stdin: more than %zu bytes", TOKENIZE_MAX_INPUT);
      }
      char *g = realloc(buf, cap * 2);
      if (!g) break;
      buf = g, cap *= 2;
    }
    size_t got = fread(buf + n, 1, cap - 1 - n, stdin);
    n += got;
    if (got == 0) {
      if (ferror(stdin)) {
        free(buf);
        return sc_error_setc(SC_ERR_IO, "stdin: read error: %s", strerror(errno));
      }
      buf[n] = 0;
      *out = buf, *len = n;
      return 0;
    }
  }
  free(buf);
  return sc_error_setc(SC_ERR_NOMEM, "stdin: out of memory");
}

/* Whitespace-separated ids; an id outside int32 is kept as an out-of-range
 * marker so that tok_decode's message names it. */
static int parse_ids(char *s, int32_t **ids, size_t *n) {
  size_t cap = 0;
  *ids = NULL, *n = 0;
  for (char *tok = strtok(s, " \t\r\n\v\f"); tok; tok = strtok(NULL, " \t\r\n\v\f")) {
    char *end;
    errno = 0;
    long long v = strtoll(tok, &end, 10);
    if (*end || end == tok) return sc_error_setc(SC_ERR_FORMAT, "stdin: '%.40s' is not a token id", tok);
    if (errno || v < 0 || v > INT32_MAX)
      return sc_error_setc(SC_ERR_RANGE, "stdin: token id %.40s is out of range", tok);
    if (*n == cap) {
      cap = cap ? 2 * cap : 1024;
      int32_t *g = realloc(*ids, cap * sizeof *g);
      if (!g) return sc_error_setc(SC_ERR_NOMEM, "out of memory");
      *ids = g;
    }
    (*ids)[(*n)++] = (int32_t)v;
  }
  return 0;
}

static int run_decode(const tok_tokenizer *t, char *in, int skip_special) {
  int32_t *ids;
  size_t n, len;
  char *text = NULL;
  int rc = parse_ids(in, &ids, &n);
  if (!rc && (rc = tok_decode(t, ids, n, skip_special, &text, &len))) sc_error_prefix(rc, "stdin");
  if (!rc && fwrite(text, 1, len, stdout) != len) rc = sc_error_setc(SC_ERR_IO, "stdout: write error");
  free(ids);
  free(text);
  return rc;
}

static int run_encode(const tok_tokenizer *t, const char *in, size_t len, const tokenize_opts *o) {
  int32_t *ids;
  size_t n, bad;
  if (len && !sc_utf8_valid(in, len, &bad))
    return sc_error_set("stdin: invalid UTF-8 at byte %zu", bad);
  int rc = o->chat ? g3_chat_encode(t, in, len, (int)o->image_tokens, &ids, &n)
                   : tok_encode(t, in, len, o->bos, &ids, &n);
  if (rc) return sc_error_prefix(rc, "stdin");
  for (size_t i = 0; i < n; i++) printf(i ? " %" PRId32 : "%" PRId32, ids[i]);
  putchar('\n');
  free(ids);
  return 0;
}

int cmd_tokenize(int argc, char **argv) {
  if (cli_wants_help(argc, argv)) {
    print_help();
    return 0;
  }
  tokenize_opts o;
  int rc = parse_args(argc, argv, &o);
  if (rc) return rc;
  char *path = sc_path_join(o.model, "tokenizer.json"), *in = NULL;
  tok_tokenizer *t = NULL;
  size_t len = 0;
  rc = path ? tok_load(&t, path) : sc_error_setc(SC_ERR_NOMEM, "out of memory");
  if (!rc) rc = read_stdin(&in, &len);
  if (!rc) rc = o.decode ? run_decode(t, in, o.skip_special) : run_encode(t, in, len, &o);
  if (!rc && (fflush(stdout) || ferror(stdout))) rc = sc_error_setc(SC_ERR_IO, "stdout: write error");
  free(in);
  free(path);
  tok_free(t);
  return rc ? cli_fail() : 0;
}
