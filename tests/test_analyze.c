/* test_analyze.c: `saecap analyze` end to end on a synthetic study: a
 * samples.jsonl with prompts, captions/<lang>.jsonl (real Gemma 3 token
 * ids), activation stores and a shared ReLU SAE per layer, in which known
 * features carry gender in one language only (or both) at one layer.
 * Checks: RQ2 finds exactly the planted features per language, none at the
 * layer without signal nor with shuffled labels; the leakage guard counts,
 * lists and excludes the planted leaky prompts; feature cards point at the
 * planted token with its text and byte span; the three files carry schema,
 * version, config hash and counts; a rerun skips, --force is byte-identical;
 * too few samples give a documented skip, never NaN; bad input gives one
 * line naming the path and leaves no output. */
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "base/rng.h"
#include "io/json.h"
#include "model/tokenizer.h"
#include "sae/sae.h"
#include "sae/sae_io.h"
#include "store/captions.h"
#include "store/writer.h"
#include "tu.h"

#define N 48
#define D 16
#define NF 24
#define N_PROMPT 3
#define SIGNAL_LAYER 3
#define QUIET_LAYER 1
#define LEAK_EN 6   /* english_prompt names a woman */
#define LEAK_AR 11  /* arabic_prompt names a man */
#define EN_FEAT 2   /* female, English only */
#define AR_FEAT 5   /* female, Arabic only */
#define BOTH_FEAT 9 /* female, both languages */

static const char *const caption_text[2] = {"A person stands near a red car.", "شخص يقف بجانب سيارة حمراء."};

static int label_of(int i) { return i == 20 || i == 33 ? 2 : i % 2; } /* 0 male, 1 female, 2 neutral */
static const char *label_name(int l) { return l == 0 ? "male" : l == 1 ? "female" : "neutral"; }

typedef struct study {
  char *dir, *out, *cfg;
  int32_t *ids[2];
  size_t n_ids[2];
  char *caption[2];
} study;

static void write_samples(const study *s, const int *labels) {
  char *p = tu_join(s->out, "data/processed/samples.jsonl");
  FILE *fp = fopen(p, "w");
  assert_non_null(fp);
  for (int i = 0; i < N; i++)
    fprintf(fp,
            "{\"sample_index\":%d,\"image_id\":\"img%02d.jpg\",\"image_path\":\"x\",\"image_index\":%d,"
            "\"english_prompt\":\"%s\",\"arabic_prompt\":\"%s\",\"ground_truth_gender\":\"%s\",\"split\":\"train\"}\n",
            i, i, i, i == LEAK_EN ? "Describe the woman in this image." : "Describe this image.",
            i == LEAK_AR ? "صف الرجل في هذه الصورة." : "صف هذه الصورة.", label_name(labels[i]));
  fclose(fp);
  free(p);
}

static void write_captions(const study *s) {
  char *cd = tu_join(s->out, "captions");
  for (int l = 0; l < 2; l++) {
    store_captions *c;
    assert_int_equal(store_captions_open(&c, cd, l ? "ar" : "en", 0), 0);
    for (int i = 0; i < N; i++) {
      char img[16];
      snprintf(img, sizeof img, "img%02d.jpg", i);
      store_caption row = {i,
                           img,
                           "train",
                           label_name(label_of(i)),
                           l ? "صف هذه الصورة." : "Describe this image.",
                           s->caption[l],
                           s->ids[l],
                           (int)s->n_ids[l]};
      assert_int_equal(store_captions_add(c, &row), 0);
    }
    assert_int_equal(store_captions_finish(c), 0);
    store_captions_free(c);
  }
  free(cd);
}

/* Rows: N_PROMPT prompt rows, then one row per caption token. Noise
 * N(0, 0.3) everywhere; at the signal layer female captions get +2 on the
 * planted dimensions, +1 more on caption token 1 (the card's token). */
static void write_store(const study *s, int layer, int lang) {
  char *ld = NULL;
  char sub[64];
  snprintf(sub, sizeof sub, "activations/%s/layer_%d", lang ? "ar" : "en", layer);
  ld = tu_join(s->out, sub);
  store_writer_config c = store_writer_config_default();
  c.dir = ld, c.language = lang ? "ar" : "en", c.layer = layer, c.d = D, c.rows_per_shard = 100;
  c.model_path = "m", c.config_hash = "h", c.prompt = "p", c.saecap_version = "0";
  store_writer *w;
  assert_int_equal(store_writer_open(&w, &c), 0);
  sc_rng r;
  sc_rng_seed(&r, (uint64_t)(layer * 10 + lang + 1));
  int n_rows = N_PROMPT + (int)s->n_ids[lang];
  float *acts = malloc((size_t)n_rows * D * sizeof *acts);
  int32_t pos[64], tok[64];
  uint8_t seg[64];
  for (int i = 0; i < N; i++) {
    for (int k = 0; k < n_rows; k++) {
      for (int j = 0; j < D; j++) acts[k * D + j] = (float)(0.3 * sc_rng_normal(&r));
      pos[k] = k;
      seg[k] = k < N_PROMPT ? STORE_SEG_PROMPT : STORE_SEG_CAPTION;
      tok[k] = k < N_PROMPT ? 2 + k : s->ids[lang][k - N_PROMPT];
      if (layer == SIGNAL_LAYER && label_of(i) == 1 && k >= N_PROMPT) {
        float extra = k == N_PROMPT + 1 ? 1.0f : 0.0f;
        acts[k * D + (lang ? AR_FEAT : EN_FEAT)] += 2.0f + extra;
        acts[k * D + BOTH_FEAT] += 2.0f + extra;
      }
    }
    assert_int_equal(store_writer_begin_sample(w, i), 0);
    assert_int_equal(store_writer_append(w, acts, n_rows, pos, tok, seg), 0);
    assert_int_equal(store_writer_end_sample(w), 0);
  }
  assert_int_equal(store_writer_finish(w), 0);
  store_writer_free(w);
  free(acts);
  free(ld);
}

/* ReLU SAE: features 0..15 read one dimension each, 16..23 random
 * directions without the planted dimensions; threshold 0.8. */
static void write_sae(const study *s, int layer) {
  char sub[32];
  snprintf(sub, sizeof sub, "saes/layer_%d", layer);
  char *sd = tu_join(s->out, sub);
  sae_cfg c;
  memset(&c, 0, sizeof c);
  c.arch = SAE_ARCH_RELU, c.d = D, c.n = NF, c.apply_b_dec_to_input = 1;
  sae *m;
  assert_int_equal(sae_create(&m, &c), 0);
  sc_rng r;
  sc_rng_seed(&r, 99);
  for (int j = 0; j < NF; j++) {
    float *row = m->W_enc + j * D;
    if (j < D)
      row[j] = 1;
    else {
      double nn = 0;
      for (int k = 0; k < D; k++) {
        row[k] = k == EN_FEAT || k == AR_FEAT || k == BOTH_FEAT ? 0.0f : (float)sc_rng_normal(&r);
        nn += row[k] * row[k];
      }
      for (int k = 0; k < D; k++) row[k] = (float)(row[k] / sqrt(nn));
    }
    memcpy(m->W_dec + j * D, row, D * sizeof *row);
    m->b_enc[j] = -0.8f;
  }
  assert_int_equal(sae_save_saelens(m, NULL, sd), 0);
  sae_free(m);
  free(sd);
}

static const char *g_langs = "[en, ar]"; /* extract.languages of write_config */

static void write_config(const study *s, const char *extra) {
  char text[2048];
  snprintf(text, sizeof text,
           "output_dir: %s\nseed: 7\nmodel:\n  path: %s/model\ndata:\n  captions_csv: x.csv\n  images_dir: x\n"
           "extract:\n  languages: %s\nanalyze:\n  layers: [%d, %d]\n  bootstrap: 20\n  permutations: 20\n"
           "  folds: 2\n  top_k: 3\n  card_examples: 2\n%s",
           s->out, s->dir, g_langs, QUIET_LAYER, SIGNAL_LAYER, extra ? extra : "");
  tu_write_str(s->cfg, text);
}

/* A whole study under a fresh folder; labels_in_samples: the labels
 * samples.jsonl gives (the activations always follow label_of). */
static void study_make(study *s, const char *name, const int *labels_in_samples) {
  memset(s, 0, sizeof *s);
  s->dir = tu_tmpdir(name);
  s->out = tu_join(s->dir, "out");
  s->cfg = tu_join(s->dir, "study.yaml");
  char *md = tu_join(s->dir, "model"), *tj = tu_join(md, "tokenizer.json"), *src = tu_tokenizer_json();
  assert_int_equal(tu_run(NULL, NULL, "mkdir -p '%s' '%s/data/processed' && ln -s '%s' '%s'", md, s->out, src, tj), 0);
  tok_tokenizer *tok;
  assert_int_equal(tok_load(&tok, src), 0);
  for (int l = 0; l < 2; l++) {
    assert_int_equal(tok_encode(tok, caption_text[l], strlen(caption_text[l]), 0, &s->ids[l], &s->n_ids[l]), 0);
    assert_int_equal(tok_decode(tok, s->ids[l], s->n_ids[l], 1, &s->caption[l], NULL), 0);
    assert_true(s->n_ids[l] >= 4 && s->n_ids[l] < 40);
  }
  tok_free(tok);
  int lab[N];
  for (int i = 0; i < N; i++) lab[i] = labels_in_samples ? labels_in_samples[i] : label_of(i);
  write_samples(s, lab);
  write_captions(s);
  for (int l = 0; l < 2; l++) write_store(s, QUIET_LAYER, l), write_store(s, SIGNAL_LAYER, l);
  write_sae(s, QUIET_LAYER);
  write_sae(s, SIGNAL_LAYER);
  write_config(s, NULL);
  free(md), free(tj), free(src);
}

static void study_free(study *s) {
  for (int l = 0; l < 2; l++) free(s->ids[l]), free(s->caption[l]);
  free(s->dir), free(s->out), free(s->cfg);
}

static int run_analyze(const study *s, const char *args, char **err) {
  return tu_run(NULL, err, "'%s' analyze --config '%s' %s", tu_bin(), s->cfg, args ? args : "");
}

static sc_json *load_result(const study *s, const char *name) {
  char rel[96];
  snprintf(rel, sizeof rel, "results/%s", name);
  char *p = tu_join(s->out, rel);
  sc_json *j = NULL;
  if (sc_json_load(p, 1 << 26, &j)) fail_msg("%s: cannot load", p);
  free(p);
  return j;
}

static const sc_json *layer_obj(const sc_json *feat, int layer) {
  const sc_json *ls = sc_json_get(feat, "layers");
  for (int i = 0; i < sc_json_size(ls); i++)
    if ((int)sc_json_num(sc_json_get(sc_json_at(ls, i), "layer")) == layer) return sc_json_at(ls, i);
  fail_msg("layer %d missing", layer);
  return NULL;
}

/* The feature ids of an array, as a short string "2,9". */
static void ids_str(const sc_json *arr, char *buf, size_t cap) {
  buf[0] = 0;
  for (int i = 0; i < sc_json_size(arr); i++) {
    size_t n = strlen(buf);
    snprintf(buf + n, cap - n, "%s%d", i ? "," : "", (int)sc_json_num(sc_json_at(arr, i)));
  }
}

static void expect_sig(const sc_json *layer, const char *en_only, const char *ar_only, const char *both) {
  const sc_json *sig = sc_json_get(sc_json_get(layer, "cross_language"), "significant");
  char buf[256];
  ids_str(sc_json_get(sig, "en_only"), buf, sizeof buf);
  assert_string_equal(buf, en_only);
  ids_str(sc_json_get(sig, "ar_only"), buf, sizeof buf);
  assert_string_equal(buf, ar_only);
  ids_str(sc_json_get(sig, "both"), buf, sizeof buf);
  assert_string_equal(buf, both);
}

static char *read_result_text(const study *s, const char *name) {
  char rel[96];
  snprintf(rel, sizeof rel, "results/%s", name);
  char *p = tu_join(s->out, rel), *t = tu_read(p, NULL);
  free(p);
  assert_non_null(t);
  return t;
}

/* 1 if text holds "nan" or "inf" as a word (a non-finite number printed as
 * such), not inside a word like "inanimate". */
static int has_nonfinite(const char *t) {
  static const char *const bad[] = {"nan", "inf", "NaN", "Infinity"};
  for (int b = 0; b < 4; b++)
    for (const char *p = strstr(t, bad[b]); p; p = strstr(p + 1, bad[b])) {
      size_t n = strlen(bad[b]);
      int before = p > t && ((p[-1] | 32) >= 'a' && (p[-1] | 32) <= 'z');
      int after = (p[n] | 32) >= 'a' && (p[n] | 32) <= 'z';
      if (!before && !after) return 1;
    }
  return 0;
}

static const char *const files[3] = {"cross_lingual_analysis.json", "feature_analysis.json",
                                     "morphology_analysis.json"};

static void test_planted_study(void **state) {
  (void)state;
  study s;
  study_make(&s, "analyze_planted", NULL);
  char *err = NULL;
  int st = run_analyze(&s, NULL, &err);
  if (st) fail_msg("analyze failed: %s", err);
  free(err);
  sc_json *feat = load_result(&s, "feature_analysis.json");
  assert_string_equal(sc_json_str(sc_json_get(feat, "schema")), "saecap.feature_analysis/1");
  assert_non_null(sc_json_str(sc_json_get(feat, "saecap_version")));
  const char *hash = sc_json_str(sc_json_get(feat, "config_hash"));
  assert_non_null(hash);
  assert_int_equal(strncmp(hash, "fnv1a64:", 8), 0);
  assert_string_equal(sc_json_str(sc_json_get(feat, "segment")), "caption");
  const sc_json *ds = sc_json_get(feat, "dataset");
  assert_int_equal((int)sc_json_num(sc_json_get(ds, "n_samples")), N);
  assert_int_equal((int)sc_json_num(sc_json_get(ds, "n_excluded_leaky")), 2);
  assert_int_equal((int)sc_json_num(sc_json_get(ds, "n_male_female_used")), N - 4);
  /* leakage: both planted prompts, listed with the field and the word */
  const sc_json *lk = sc_json_get(feat, "leakage");
  assert_int_equal((int)sc_json_num(sc_json_get(lk, "n_leaky")), 2);
  assert_int_equal((int)sc_json_num(sc_json_get(lk, "n_english_prompt")), 1);
  assert_int_equal((int)sc_json_num(sc_json_get(lk, "n_arabic_prompt")), 1);
  const sc_json *rows = sc_json_get(lk, "rows");
  assert_int_equal(sc_json_size(rows), 2);
  assert_int_equal((int)sc_json_num(sc_json_get(sc_json_at(rows, 0), "sample_index")), LEAK_EN);
  assert_string_equal(sc_json_str(sc_json_at(sc_json_get(sc_json_at(rows, 0), "words"), 0)), "woman");
  assert_string_equal(sc_json_str(sc_json_at(sc_json_get(sc_json_at(rows, 0), "prompts"), 0)), "english_prompt");
  assert_int_equal((int)sc_json_num(sc_json_get(sc_json_at(rows, 1), "sample_index")), LEAK_AR);
  assert_string_equal(sc_json_str(sc_json_at(sc_json_get(sc_json_at(rows, 1), "words"), 0)), "الرجل");

  /* RQ2: exactly the planted features at the signal layer, none at the other */
  const sc_json *L3 = layer_obj(feat, SIGNAL_LAYER), *L1 = layer_obj(feat, QUIET_LAYER);
  assert_int_equal((int)sc_json_num(sc_json_get(L3, "d_sae")), NF);
  assert_string_equal(sc_json_str(sc_json_get(L3, "sae")), "saes/layer_3");
  expect_sig(L3, "2", "5", "9");
  expect_sig(L1, "", "", "");
  const sc_json *en = sc_json_get(sc_json_get(L3, "languages"), "en");
  assert_string_equal(sc_json_str(sc_json_get(en, "status")), "ok");
  assert_int_equal((int)sc_json_num(sc_json_get(en, "n_used")), N - 4); /* 2 neutral, 2 leaky */
  const sc_json *rk = sc_json_get(en, "ranking");
  int top = (int)sc_json_num(sc_json_get(sc_json_at(rk, 0), "feature"));
  assert_true(top == EN_FEAT || top == BOTH_FEAT);
  assert_true(sc_json_num(sc_json_get(sc_json_at(rk, 0), "cohens_d")) > 1.0); /* female > male */
  /* the card of the English-only feature: a female sample, caption token 1 */
  const sc_json *cards = sc_json_get(en, "cards"), *card = NULL;
  for (int c = 0; c < sc_json_size(cards); c++)
    if ((int)sc_json_num(sc_json_get(sc_json_at(cards, c), "feature")) == EN_FEAT) card = sc_json_at(cards, c);
  assert_non_null(card);
  const sc_json *ex = sc_json_get(card, "examples");
  assert_int_equal(sc_json_size(ex), 2);
  for (int e = 0; e < 2; e++) {
    const sc_json *x = sc_json_at(ex, e);
    assert_string_equal(sc_json_str(sc_json_get(x, "label")), "female");
    assert_int_equal((int)sc_json_num(sc_json_get(x, "token_index")), 1);
    assert_int_equal((int)sc_json_num(sc_json_get(x, "position")), N_PROMPT + 1);
    assert_int_equal((int)sc_json_num(sc_json_get(x, "token_id")), s.ids[0][1]);
    const char *capt = sc_json_str(sc_json_get(x, "caption")), *tokt = sc_json_str(sc_json_get(x, "token"));
    assert_string_equal(capt, s.caption[0]);
    int b = (int)sc_json_num(sc_json_get(x, "byte_start")), en_ = (int)sc_json_num(sc_json_get(x, "byte_end"));
    assert_int_equal(en_ - b, (int)strlen(tokt));
    assert_memory_equal(capt + b, tokt, strlen(tokt));
    assert_non_null(sc_json_str(sc_json_get(x, "image_id")));
  }
  sc_json_free(feat);

  /* the other two files: schema, hash, counts */
  sc_json *cross = load_result(&s, files[0]), *morph = load_result(&s, files[2]);
  assert_string_equal(sc_json_str(sc_json_get(cross, "schema")), "saecap.cross_lingual_analysis/1");
  assert_string_equal(sc_json_str(sc_json_get(morph, "schema")), "saecap.morphology_analysis/1");
  assert_string_equal(sc_json_str(sc_json_get(cross, "config_hash")), sc_json_str(sc_json_get(morph, "config_hash")));
  assert_int_equal((int)sc_json_num(sc_json_get(sc_json_get(cross, "dataset"), "n_samples")), N);
  assert_non_null(sc_json_get(sc_json_get(cross, "segments"), "caption"));
  const sc_json *ml = sc_json_get(morph, "layers");
  assert_int_equal(sc_json_size(ml), 2);
  for (int i = 0; i < 2; i++) {
    assert_non_null(sc_json_get(sc_json_get(sc_json_at(ml, i), "languages"), "ar"));
    assert_non_null(sc_json_get(sc_json_get(sc_json_at(ml, i), "languages"), "en"));
  }
  assert_int_equal((int)sc_json_num(sc_json_get(sc_json_get(morph, "leakage"), "n_leaky")), 2);
  sc_json_free(cross), sc_json_free(morph);
  for (int f = 0; f < 3; f++) {
    char *t = read_result_text(&s, files[f]);
    assert_false(has_nonfinite(t));
    free(t);
  }

  /* rerun: up to date, nothing rewritten; --force: the same bytes */
  char *before[3];
  for (int f = 0; f < 3; f++) before[f] = read_result_text(&s, files[f]);
  char *r = tu_join(s.out, "results");
  assert_int_equal(tu_run(NULL, NULL, "touch -d '2000-01-01' '%s'/*.json", r), 0);
  err = NULL;
  assert_int_equal(run_analyze(&s, NULL, &err), 0);
  assert_non_null(strstr(err, "up to date"));
  free(err);
  char *o = NULL;
  assert_int_equal(tu_run(&o, NULL, "find '%s' -name '*.json' -newermt '2001-01-01' | wc -l", r), 0);
  assert_int_equal(atoi(o), 0);
  free(o);
  assert_int_equal(run_analyze(&s, "--force -q", NULL), 0);
  for (int f = 0; f < 3; f++) {
    char *after = read_result_text(&s, files[f]);
    assert_string_equal(before[f], after);
    free(after), free(before[f]);
  }
  assert_false(tu_has_tmp_files(s.out));

  /* leaky prompts kept: two more samples used */
  write_config(&s, "  exclude_leaky_prompts: false\n");
  assert_int_equal(run_analyze(&s, "-q", NULL), 0);
  feat = load_result(&s, "feature_analysis.json");
  en = sc_json_get(sc_json_get(layer_obj(feat, SIGNAL_LAYER), "languages"), "en");
  assert_int_equal((int)sc_json_num(sc_json_get(en, "n_used")), N - 2);
  int ex_flag = 1;
  assert_int_equal(sc_json_bool(sc_json_get(sc_json_get(feat, "leakage"), "excluded"), &ex_flag), 0);
  assert_int_equal(ex_flag, 0);
  sc_json_free(feat);

  /* RQ2 keeps to analyze.feature_split: every sample here is in train, so
   * ranking on the test split has no sample to use and says so */
  write_config(&s, "  feature_split: test\n");
  assert_int_equal(run_analyze(&s, "-q", NULL), 0);
  feat = load_result(&s, "feature_analysis.json");
  assert_string_equal(sc_json_str(sc_json_get(sc_json_get(feat, "config"), "feature_split")), "test");
  en = sc_json_get(sc_json_get(layer_obj(feat, SIGNAL_LAYER), "languages"), "en");
  assert_int_equal((int)sc_json_num(sc_json_get(en, "n_used")), 0);
  assert_string_equal(sc_json_str(sc_json_get(en, "status")), "skipped");
  sc_json_free(feat);

  /* too few samples of a label: a documented skip, no NaN */
  write_config(&s, "  min_per_label: 1000\n");
  assert_int_equal(run_analyze(&s, "-q", NULL), 0);
  feat = load_result(&s, "feature_analysis.json");
  en = sc_json_get(sc_json_get(layer_obj(feat, SIGNAL_LAYER), "languages"), "en");
  assert_string_equal(sc_json_str(sc_json_get(en, "status")), "skipped");
  assert_non_null(strstr(sc_json_str(sc_json_get(en, "skip_reason")), "at least 1000"));
  assert_string_equal(sc_json_str(sc_json_get(sc_json_get(layer_obj(feat, SIGNAL_LAYER), "cross_language"), "status")),
                      "skipped");
  sc_json_free(feat);
  for (int f = 0; f < 3; f++) {
    char *t = read_result_text(&s, files[f]);
    assert_false(has_nonfinite(t));
    free(t);
  }
  /* one language: RQ2 per language only, RQ1 skipped */
  g_langs = "[en]";
  write_config(&s, NULL);
  g_langs = "[en, ar]";
  assert_int_equal(run_analyze(&s, "-q", NULL), 0);
  feat = load_result(&s, "feature_analysis.json");
  const sc_json *langs = sc_json_get(layer_obj(feat, SIGNAL_LAYER), "languages");
  assert_int_equal(sc_json_size(langs), 1);
  assert_string_equal(sc_json_str(sc_json_get(sc_json_get(langs, "en"), "status")), "ok");
  assert_string_equal(sc_json_str(sc_json_get(sc_json_get(layer_obj(feat, SIGNAL_LAYER), "cross_language"), "status")),
                      "skipped");
  sc_json_free(feat);
  sc_json *cj = load_result(&s, files[0]);
  assert_string_equal(sc_json_str(sc_json_get(cj, "status")), "skipped");
  sc_json_free(cj);
  free(r);
  study_free(&s);
}

static void test_shuffled_labels(void **state) {
  (void)state;
  int lab[N];
  for (int i = 0; i < N; i++) lab[i] = label_of(i);
  sc_rng r;
  sc_rng_seed(&r, 2024);
  sc_rng_shuffle(&r, lab, N, sizeof *lab);
  study s;
  study_make(&s, "analyze_shuffled", lab);
  char *err = NULL;
  int st = run_analyze(&s, "-q", &err);
  if (st) fail_msg("analyze failed: %s", err);
  free(err);
  sc_json *feat = load_result(&s, "feature_analysis.json");
  expect_sig(layer_obj(feat, SIGNAL_LAYER), "", "", "");
  expect_sig(layer_obj(feat, QUIET_LAYER), "", "", "");
  sc_json_free(feat);
  study_free(&s);
}

static void expect_error(const study *s, const char *needle1, const char *needle2) {
  char *err = NULL;
  int st = run_analyze(s, NULL, &err);
  tu_assert_one_line_error(st, err, needle1, needle2, NULL);
  free(err);
  char *r = tu_join(s->out, "results");
  assert_false(tu_exists(r) && tu_count_files(r) > 0);
  assert_false(tu_has_tmp_files(s->out));
  free(r);
}

static void test_bad_input(void **state) {
  (void)state;
  study s;
  study_make(&s, "analyze_bad", NULL);
  char *p = NULL;
  /* a configured layer without an SAE */
  write_store(&s, 5, 0), write_store(&s, 5, 1);
  tu_write_str(s.cfg, "");
  char text[1024];
  snprintf(text, sizeof text,
           "output_dir: %s\nmodel:\n  path: %s/model\ndata:\n  captions_csv: x\n  images_dir: x\nanalyze:\n  layers: "
           "[3, 5]\n",
           s.out, s.dir);
  tu_write_str(s.cfg, text);
  expect_error(&s, "saes/layer_5: missing", "saecap train");
  /* a configured layer without activations */
  snprintf(text, sizeof text,
           "output_dir: %s\nmodel:\n  path: %s/model\ndata:\n  captions_csv: x\n  images_dir: x\nanalyze:\n  layers: "
           "[3, 7]\n",
           s.out, s.dir);
  tu_write_str(s.cfg, text);
  expect_error(&s, "activations/en/layer_7: missing", "saecap extract");
  /* a bad segment name */
  write_config(&s, "  segments: [caption, tokens]\n");
  expect_error(&s, "analyze.segments: 'tokens'", NULL);
  /* no tokenizer */
  p = tu_join(s.dir, "model/tokenizer.json");
  assert_int_equal(unlink(p), 0);
  write_config(&s, NULL);
  expect_error(&s, "model/tokenizer.json: missing", NULL);
  free(p);
  /* a captions file that does not parse */
  p = tu_join(s.dir, "model/tokenizer.json");
  char *src = tu_tokenizer_json();
  assert_int_equal(symlink(src, p), 0);
  free(src), free(p);
  p = tu_join(s.out, "captions/ar.jsonl");
  tu_write_str(p, "{\"sample_index\":0,\"prompt\":\"x\",\"caption\":\"y\",\"caption_ids\":[1,-2]}\n");
  expect_error(&s, "captions/ar.jsonl: line 1: caption_ids[1]", NULL);
  free(p);
  /* samples.jsonl missing */
  p = tu_join(s.out, "data/processed/samples.jsonl");
  assert_int_equal(unlink(p), 0);
  expect_error(&s, "samples.jsonl: missing", "saecap prepare");
  free(p);
  study_free(&s);
}

static void test_help(void **state) {
  (void)state;
  char *out = NULL;
  assert_int_equal(tu_run(&out, NULL, "'%s' analyze --help", tu_bin()), 0);
  assert_non_null(strstr(out, "usage: saecap analyze --config FILE"));
  free(out);
  char *err = NULL;
  assert_int_equal(tu_run(NULL, &err, "'%s' analyze", tu_bin()), 2);
  assert_non_null(strstr(err, "--config FILE is required"));
  free(err);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_planted_study),
      cmocka_unit_test(test_shuffled_labels),
      cmocka_unit_test(test_bad_input),
      cmocka_unit_test(test_help),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
