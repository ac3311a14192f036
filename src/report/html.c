/* html.c: the report page (html.h). */
#include "report/html.h"

#include <math.h>
#include <stdio.h>
#include <string.h>

#include "base/version.h"
#include "report/figures_impl.h"

static const char *const section_titles[REP_N_SECTIONS] = {
    "SAE training and quality",
    "RQ1: cross-lingual gender representation across layers",
    "RQ2: language-specific gender features",
    "RQ3: steering with the gender features",
    "RQ4: grammatical versus semantic gender in Arabic"};

static const char css[] =
    "body{font-family:'DejaVu Sans',sans-serif;max-width:1100px;margin:0 auto;padding:16px 24px;"
    "color:#1a1a1a;line-height:1.45}\n"
    "h1{font-size:26px}h2{border-bottom:2px solid #0072B2;padding-bottom:4px;margin-top:36px}"
    "h3{margin-bottom:4px}\n"
    "figure{margin:18px 0;padding:8px;border:1px solid #ddd;background:#fff}\n"
    "figure img{display:block;width:760px;max-width:100%;height:auto}\n"
    "figcaption{font-size:14px;color:#333;margin-top:6px}\n"
    ".num{font-weight:bold;font-variant-numeric:tabular-nums}.na{color:#999}\n"
    ".absent{color:#8a4b00}\n"
    ".card{border:1px solid #ccc;border-radius:6px;padding:8px 12px;margin:10px 0;width:640px}\n"
    ".card h4{margin:0 0 6px 0;font-size:15px}\n"
    ".cap{margin:4px 0;padding:4px 8px;background:#f6f6f6;font-size:16px}\n"
    ".cap[dir=rtl]{text-align:right}\n"
    "mark{background:#F0E442;padding:0 1px}\n"
    ".meta{font-size:12px;color:#555}\n"
    "table{border-collapse:collapse}td,th{border:1px solid #ccc;padding:3px 8px;text-align:left;"
    "font-size:14px}\n"
    "pre{background:#f6f6f6;padding:8px;overflow-x:auto;font-size:12px}\n"
    ".note{font-size:13px;color:#555}\n";

/* ==== figures ==== */

static void figure_html(rep_buf *b, const rep_figure *f, const rep_image *im) {
  rep_buf_puts(b, "<figure id=\"fig-");
  rep_buf_html(b, f->stem);
  rep_buf_printf(b, "\">\n<img width=\"%d\" height=\"%d\" alt=\"", REP_FIG_W, REP_FIG_H);
  rep_buf_html(b, f->stem);
  if (im->svg && (im->svg_len <= im->png_len || !im->png) && im->svg_len <= REP_HTML_SVG_MAX) {
    rep_buf_puts(b, "\" src=\"data:image/svg+xml;base64,");
    rep_buf_base64(b, im->svg, im->svg_len);
  } else {
    rep_buf_puts(b, "\" src=\"data:image/png;base64,");
    rep_buf_base64(b, im->png, im->png_len);
  }
  rep_buf_puts(b, "\">\n<figcaption><b>");
  rep_buf_html(b, f->stem);
  rep_buf_puts(b, ".</b> ");
  rep_buf_html(b, f->caption);
  const char *msg = rep_fig_message(f->fig);
  if (msg) {
    rep_buf_puts(b, " <span class=\"absent\">(No data: ");
    rep_buf_html(b, msg);
    rep_buf_puts(b, ")</span>");
  }
  rep_buf_puts(b, " Files: visualizations/");
  rep_buf_html(b, f->stem);
  rep_buf_puts(b, ".svg, .png.</figcaption>\n</figure>\n");
}

static void figures_html(rep_buf *b, const rep_html_in *in, int sec) {
  for (int i = 0; i < in->figures->n; i++)
    if ((int)in->figures->v[i].section == sec) figure_html(b, &in->figures->v[i], &in->images[i]);
}

/* ==== feature cards ==== */

/* The byte span of the activating token inside the caption, if the
 * example names one that fits: [s, e) with 0 <= s < e <= len. */
static int token_span(const sc_json *ex, const char *cap, size_t len, size_t *s, size_t *e) {
  static const char *pairs[][2] = {{"token_start", "token_end"}, {"byte_start", "byte_end"}};
  double a = rep_jnum(ex, "token_span.0"), z = rep_jnum(ex, "token_span.1");
  for (int k = 0; !(a >= 0) && k < 2; k++) {
    a = rep_jnum(ex, pairs[k][0]);
    z = rep_jnum(ex, pairs[k][1]);
  }
  if (a >= 0 && z > a && z <= (double)len) {
    *s = (size_t)a;
    *e = (size_t)z;
    return 1;
  }
  const char *tok = rep_jstr(ex, "token");
  if (!tok) tok = rep_jstr(ex, "token_text");
  /* the tokenizer writes a leading space as U+2581; the caption has a space */
  while (tok && !strncmp(tok, "\xE2\x96\x81", 3)) tok += 3;
  const char *at = tok && *tok ? strstr(cap, tok) : NULL;
  if (!at) return 0;
  *s = (size_t)(at - cap);
  *e = *s + strlen(tok);
  return 1;
}

static void caption_html(rep_buf *b, const sc_json *ex, const char *lang) {
  const char *cap = rep_jstr(ex, "caption");
  if (!cap) cap = rep_jstr(ex, "text");
  int rtl = lang && !strcmp(lang, "ar");
  rep_buf_printf(b, "<p class=\"cap\" dir=\"%s\" lang=\"", rtl ? "rtl" : "ltr");
  rep_buf_html(b, lang);
  rep_buf_puts(b, "\">");
  size_t len = cap ? strlen(cap) : 0, s = 0, e = 0;
  if (!cap) rep_buf_puts(b, "<i>(caption text not recorded)</i>");
  else if (token_span(ex, cap, len, &s, &e)) {
    rep_buf_html_n(b, cap, s);
    rep_buf_puts(b, "<mark>");
    rep_buf_html_n(b, cap + s, e - s);
    rep_buf_puts(b, "</mark>");
    rep_buf_html_n(b, cap + e, len - e);
  } else
    rep_buf_html(b, cap);
  rep_buf_puts(b, "</p>\n<div class=\"meta\">sample ");
  rep_buf_printf(b, "%.0f, label ", rep_jnum(ex, "sample"));
  rep_buf_html(b, rep_jstr(ex, "label") ? rep_jstr(ex, "label") : "?");
  rep_buf_printf(b, ", max activation %.4g at token position %.0f (id %.0f)</div>\n",
                 rep_jnum(ex, "max_activation"), rep_jnum(ex, "position"), rep_jnum(ex, "token_id"));
}

static void card_html(rep_buf *b, const sc_json *card, const char *lang, int layer) {
  rep_buf_printf(b, "<div class=\"card\">\n<h4>Layer %d, %s: feature %.0f (rank %.0f)</h4>\n", layer,
                 fx_lang_name(lang), rep_jnum(card, "feature"), rep_jnum(card, "rank"));
  rep_buf_printf(b, "<div class=\"meta\">Cohen's d %.3f, q %.3g, firing rate %.3f (male %.3f, female %.3f)</div>\n",
                 rep_jnum(card, "cohens_d"), rep_jnum(card, "q"), rep_jnum(card, "firing_rate"),
                 rep_jnum(card, "firing_rate_male"), rep_jnum(card, "firing_rate_female"));
  const sc_json *exs = rep_j(card, "examples");
  if (!sc_json_size(exs)) rep_buf_puts(b, "<p class=\"meta\">No example recorded.</p>\n");
  for (int i = 0; i < sc_json_size(exs); i++) caption_html(b, sc_json_at(exs, i), lang);
  rep_buf_puts(b, "</div>\n");
}

static void cards_html(rep_buf *b, const rep_html_in *in) {
  const rep_result *r = &in->results->r[REP_FEATURES];
  rep_buf_puts(b, "<section id=\"cards\">\n<h2>Feature cards</h2>\n<p class=\"note\">The top gender features "
                  "of each language and layer (by |Cohen's d|) with the captions that activate them most; "
                  "the highlighted token is where the activation peaks.</p>\n");
  if (r->state != REP_RES_OK) {
    char msg[600];
    fx_absent_msg(r, msg, sizeof msg);
    rep_buf_puts(b, "<p class=\"absent\">");
    rep_buf_html(b, msg);
    rep_buf_puts(b, "</p>\n");
  }
  for (int i = 0; r->state == REP_RES_OK && i < rep_jlen(r->root, "layers"); i++) {
    const sc_json *L = sc_json_at(rep_j(r->root, "layers"), i);
    double lv = rep_jnum(L, "layer");
    int layer = isfinite(lv) && fabs(lv) < 1e6 ? (int)lv : i;
    for (const sc_json *l = sc_json_first(rep_j(L, "languages")); l; l = sc_json_next(l)) {
      const sc_json *cards = rep_j(l, "cards");
      int n = sc_json_size(cards);
      if ((uint64_t)n > in->feature_cards) n = (int)in->feature_cards;
      for (int c = 0; c < n; c++) card_html(b, sc_json_at(cards, c), sc_json_key(l), layer);
    }
  }
  rep_buf_puts(b, "</section>\n");
}

/* ==== provenance ==== */

static void row(rep_buf *b, const char *k, const char *v) {
  rep_buf_puts(b, "<tr><th>");
  rep_buf_html(b, k);
  rep_buf_puts(b, "</th><td>");
  rep_buf_html(b, v ? v : "(none)");
  rep_buf_puts(b, "</td></tr>\n");
}

static void counts_row(rep_buf *b, const sc_json *pr, const char *key, const char *title) {
  const sc_json *o = rep_j(pr, key);
  if (!sc_json_is_object(o)) return;
  rep_buf_puts(b, "<tr><th>");
  rep_buf_html(b, title);
  rep_buf_puts(b, "</th><td>");
  for (const sc_json *e = sc_json_first(o); e; e = sc_json_next(e)) {
    rep_buf_html(b, sc_json_key(e));
    rep_buf_printf(b, " %.0f%s", sc_json_num(e), sc_json_next(e) ? ", " : "");
  }
  rep_buf_puts(b, "</td></tr>\n");
}

static void provenance_html(rep_buf *b, const rep_html_in *in) {
  rep_buf_puts(b, "<section id=\"provenance\">\n<h2>Configuration and provenance</h2>\n<table>\n");
  row(b, "model", in->model_path);
  row(b, "saecap version", SAECAP_VERSION);
  row(b, "config file", in->config_path);
  row(b, "config hash (report stage)", in->config_hash);
  row(b, "output folder", in->output_dir);
  const sc_json *pr = in->prepare_report;
  if (pr) {
    char buf[160];
    snprintf(buf, sizeof buf, "%.0f samples, %.0f images, %.0f rows rejected", rep_jnum(pr, "n_samples"),
             rep_jnum(pr, "n_images"), rep_jnum(pr, "n_rejected"));
    row(b, "dataset", buf);
    counts_row(b, pr, "samples_per_label", "samples per label");
    counts_row(b, pr, "samples_per_split", "samples per split");
  } else
    row(b, "dataset", "data/processed/prepare_report.json not found");
  rep_buf_puts(b, "</table>\n<h3>Results files</h3>\n<ul>\n");
  for (int i = 0; i < REP_N_RESULTS; i++) {
    const rep_result *r = &in->results->r[i];
    rep_buf_printf(b, "<li><a href=\"../results/%s.json\">results/%s.json</a>: ", r->stem, r->stem);
    if (r->state == REP_RES_OK) rep_buf_puts(b, "read");
    else {
      char msg[600];
      fx_absent_msg(r, msg, sizeof msg);
      rep_buf_html(b, msg);
    }
    rep_buf_puts(b, "</li>\n");
  }
  rep_buf_puts(b, "</ul>\n<h3>Resolved configuration</h3>\n<pre>");
  rep_buf_html(b, in->config_yaml);
  rep_buf_puts(b, "</pre>\n</section>\n");
}

/* ==== the page ==== */

int rep_html_build(const rep_html_in *in, rep_buf *b) {
  rep_buf_puts(b, "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n"
                  "<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n<title>");
  rep_buf_html(b, in->title);
  rep_buf_printf(b, "</title>\n<style>\n%s</style>\n</head>\n<body>\n<h1>", css);
  rep_buf_html(b, in->title);
  rep_buf_puts(b, "</h1>\n<p class=\"note\">Written by saecap ");
  rep_buf_html(b, SAECAP_VERSION);
  rep_buf_puts(b, " from the results under ");
  rep_buf_html(b, in->output_dir);
  rep_buf_puts(b, "/results/. Sections: <a href=\"#summary\">summary</a>, <a href=\"#figures\">figures</a>, "
                  "<a href=\"#cards\">feature cards</a>, <a href=\"#provenance\">configuration and "
                  "provenance</a>.</p>\n");
  rep_html_summary(b, in->results);
  rep_buf_puts(b, "<section id=\"figures\">\n");
  for (int s = 0; s < REP_N_SECTIONS; s++) {
    rep_buf_printf(b, "<h2>%s</h2>\n", section_titles[s]);
    figures_html(b, in, s);
  }
  rep_buf_puts(b, "</section>\n");
  cards_html(b, in);
  provenance_html(b, in);
  rep_buf_puts(b, "</body>\n</html>\n");
  return rep_buf_ok(b);
}
