/* morph.h: grammatical gender and animacy of words and caption tokens.
 *
 * Arabic: an_morph_word decides a word's grammatical gender from, in order,
 *   1. the lexicon (an_lexicon_lookup): person nouns, kinship, titles,
 *      pronouns, demonstratives (هذا/هذه، ذلك/تلك), relatives (الذي/التي),
 *      verbs, adjectives, and a list of inanimate nouns with their gender
 *      (طاولة، سيارة، شجرة feminine; كتاب، باب masculine);
 *   2. rules on the word with its proclitics stripped: final ة (feminine
 *      noun/adjective), final ات (feminine sound plural), prefix ت + 3 or more
 *      letters (present tense 3rd person feminine singular), past-tense
 *      suffix ت on a 4-letter-or-shorter stem (كتبت، جلست); everything else is
 *      unknown.
 * Animacy: AN_ANIM_ANIMATE for person nouns, kinship terms, titles and
 * pronouns from the lexicon; AN_ANIM_INANIMATE for the inanimate list;
 * unknown otherwise (rules never decide animacy).
 * English: pronouns he/him/his/himself (masculine) and she/her/hers/herself
 * (feminine), plus the lexicon's person words; no rules.
 *
 * an_morph_tag_tokens tags a caption given its tokens' texts: the token
 * pieces (each decoded separately) concatenate to the caption; each token is
 * mapped to the first word its bytes overlap and gets that word's tag, so all
 * pieces of one word share its tag. Tokens with no word (spaces, punctuation)
 * are AN_GENDER_NONE / unknown with word index -1.
 */
#ifndef AN_MORPH_H
#define AN_MORPH_H

#include <stddef.h>
#include <stdint.h>

#include "analysis/lexicon.h"

typedef enum an_animacy {
  AN_ANIM_UNKNOWN = 0,
  AN_ANIM_ANIMATE = 1,   /* a person word (semantic gender) */
  AN_ANIM_INANIMATE = 2  /* a thing: grammatical gender only */
} an_animacy;

/* How a tag was decided. */
typedef enum an_morph_src {
  AN_MSRC_NONE = 0,     /* no gender found */
  AN_MSRC_LEXICON,      /* lexicon entry */
  AN_MSRC_TA_MARBUTA,   /* final ة */
  AN_MSRC_FEM_PLURAL,   /* final ات */
  AN_MSRC_VERB_PREFIX,  /* present-tense ت prefix */
  AN_MSRC_VERB_SUFFIX   /* past-tense ت suffix */
} an_morph_src;

typedef struct an_morph_tag {
  an_gender gender;     /* AN_GENDER_MALE = masculine, FEMALE = feminine, NONE = unknown */
  an_animacy animacy;
  an_morph_src src;
  int wclass;           /* an_wclass of the lexicon entry, or -1 when decided by a rule / unknown */
  const char *lemma;    /* lexicon lemma (static) or NULL */
} an_morph_tag;

/* Tags one word (word[0..len) is taken as a single word) in lex's language.
 * Always succeeds; unknown words get {NONE, UNKNOWN, NONE, -1, NULL}. */
void an_morph_word(const an_lexicon *lex, const char *word, size_t len, an_morph_tag *out);

/* Tags the n tokens of one caption. piece[i] (length piece_len[i] bytes, not
 * necessarily NUL-terminated, may split a UTF-8 sequence) are the token texts
 * in order; out[i] receives the tag of the word token i belongs to and, if
 * word_index is not NULL, word_index[i] the 0-based index of that word in the
 * caption (-1 if none). Returns 0 or SC_ERR_NOMEM. */
int an_morph_tag_tokens(const an_lexicon *lex, const char *const *piece, const size_t *piece_len,
                        size_t n, an_morph_tag *out, int32_t *word_index);

const char *an_animacy_name(an_animacy a);  /* "unknown" "animate" "inanimate" */
const char *an_morph_src_name(an_morph_src s);

#endif
