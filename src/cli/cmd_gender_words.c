/* cmd_gender_words.c: `saecap gender-words --lang en|ar [--json]`: counts
 * the gendered words of each stdin line with the compiled-in lexicon. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "analysis/lexicon.h"
#include "base/error.h"
#include "cli/cli.h"
#include "io/json.h"

static void print_help(void) {
  printf(
      "usage: saecap gender-words --lang en|ar [--json]\n\n"
      "Reads lines of text on stdin and prints, for each line, '<male> <female>': how\n"
      "many gendered words of each gender it holds (whole words only; Arabic is\n"
      "normalised and its clitics stripped first; see src/analysis/lexicon.h).\n"
      "Counted: person nouns, kinship terms, titles, pronouns, gendered adjectives\n"
      "and (Arabic) gendered verb forms; not demonstratives, relatives or inanimate\n"
      "nouns. The lexicons (data/lexicons/{en,ar}.tsv) are compiled in.\n\n"
      "options:\n"
      "  --lang en|ar   language of the text (required)\n"
      "  --json         one JSON object per line instead:\n"
      "                 {\"male\":M,\"female\":F,\"matches\":[{\"word\":..,\"begin\":B,\"end\":E,\n"
      "                  \"gender\":\"male\",\"class\":\"noun\",\"lemma\":..},..]}\n"
      "                 (begin/end: byte offsets in the line)\n"
      "  -h, --help     this text\n\n"
      "Invalid UTF-8 bytes separate words and are otherwise ignored. A trailing\n"
      "'\\r' is dropped. Bad options exit 2.\n");
}

/* The JSON line for one input line; 0 or SC_ERR_NOMEM. */
static int print_json(const an_lexicon *lex, const char *line, size_t len) {
  an_match *m;
  size_t n;
  int rc = an_lexicon_match(lex, line, len, AN_WC_COUNTED, &m, &n);
  if (rc) return rc;
  int male = 0, female = 0;
  sc_json *o = sc_json_new_object(), *arr = NULL;
  if (o) arr = sc_json_new_array();
  for (size_t i = 0; i < n; i++) *(m[i].gender == AN_GENDER_MALE ? &male : &female) += 1;
  int ok = o && arr && sc_json_add_num(o, "male", male) && sc_json_add_num(o, "female", female);
  for (size_t i = 0; ok && i < n; i++) {
    sc_json *e = sc_json_add(arr, NULL, sc_json_new_object());
    char *w = strndup(line + m[i].begin, m[i].end - m[i].begin);
    ok = e && w && sc_json_add_str(e, "word", w) && sc_json_add_num(e, "begin", (double)m[i].begin) &&
         sc_json_add_num(e, "end", (double)m[i].end) &&
         sc_json_add_str(e, "gender", an_gender_name(m[i].gender)) &&
         sc_json_add_str(e, "class", an_wclass_name(m[i].wclass)) &&
         sc_json_add_str(e, "lemma", m[i].lemma);
    free(w);
  }
  char *txt = NULL;
  if (ok && sc_json_add(o, "matches", arr)) {
    arr = NULL;
    txt = sc_json_print(o, 0);
  }
  if (txt) printf("%s\n", txt);
  free(txt);
  sc_json_free(arr);
  sc_json_free(o);
  free(m);
  return txt ? 0 : sc_error_setc(SC_ERR_NOMEM, "gender-words: out of memory");
}

int cmd_gender_words(int argc, char **argv) {
  if (cli_wants_help(argc, argv)) {
    print_help();
    return 0;
  }
  const char *lang_s = NULL;
  int json = 0;
  for (int i = 1; i < argc; i++) {
    if (!strcmp(argv[i], "--lang") && i + 1 < argc) lang_s = argv[++i];
    else if (!strcmp(argv[i], "--json")) json = 1;
    else return cli_usage_error("gender-words", "unknown option or missing value '%s'", argv[i]);
  }
  an_lang lang;
  if (!lang_s) return cli_usage_error("gender-words", "--lang en|ar is required");
  if (an_lang_parse(lang_s, &lang)) return cli_usage_error("gender-words", "%s", sc_error_get());
  an_lexicon *lex;
  if (an_lexicon_load(lang, &lex)) return cli_fail();
  char *line = NULL;
  size_t cap = 0;
  ssize_t got;
  int rc = 0;
  while (!rc && (got = getline(&line, &cap, stdin)) >= 0) {
    size_t len = (size_t)got;
    if (len && line[len - 1] == '\n') len--;
    if (len && line[len - 1] == '\r') len--;
    if (json) {
      rc = print_json(lex, line, len);
    } else {
      int male, female;
      rc = an_lexicon_count(lex, line, len, &male, &female);
      if (!rc) printf("%d %d\n", male, female);
    }
  }
  free(line);
  an_lexicon_free(lex);
  if (!rc && (ferror(stdin) || fflush(stdout)))
    rc = sc_error_setc(SC_ERR_IO, "gender-words: read or write error");
  return rc ? cli_fail() : 0;
}
