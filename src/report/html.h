/* html.h: the self-contained report page (report/report.html).
 *
 * One HTML file with inline CSS, no scripts, no external resources: figures
 * are data URIs, the smaller of the SVG and the PNG (the SVG only up to
 * REP_HTML_SVG_MAX bytes), which keeps a many-layer report small.
 * Sections: summary (the four research questions answered in numbers read
 * from the results JSON), figures with captions by section, feature cards,
 * configuration and provenance, links to the JSON files.
 *
 * Every number of the summary is an element
 *   <span class="num" data-src="<stem>.json#<dotted path>">text</span>
 * whose text is the JSON value at that path (results.h path syntax)
 * formatted with the decimals the page states; a missing value is
 * <span class="num na" data-src=...>n/a</span>. Every string from data is
 * HTML-escaped (buf.h). The page layout is documented in
 * docs/results/report.md.
 */
#ifndef SC_REP_HTML_H
#define SC_REP_HTML_H

#include <stddef.h>
#include <stdint.h>

#include "io/json.h"
#include "report/buf.h"
#include "report/figures.h"
#include "report/results.h"

/* Largest SVG inlined; bigger figures (many points) go in as PNG. */
#define REP_HTML_SVG_MAX ((size_t)256 << 10)

typedef struct rep_image {
  const char *svg;            /* (svg_len) */
  size_t svg_len;
  const unsigned char *png;   /* (png_len) */
  size_t png_len;
} rep_image;

typedef struct rep_html_in {
  const char *title;            /* report.title */
  const rep_results *results;
  const rep_figures *figures;
  const rep_image *images;      /* (figures->n), rendered figures */
  uint64_t feature_cards;       /* cards per language and layer */
  const char *config_path;      /* the --config file */
  const char *config_yaml;      /* the resolved config (sc_config_yaml) */
  const char *config_hash;      /* the report stage's hash (stage.h) */
  const char *model_path;       /* model.path */
  const char *output_dir;
  const sc_json *prepare_report; /* data/processed/prepare_report.json or NULL */
} rep_html_in;

/* Appends the page to out. SC_ERR_NOMEM only. */
int rep_html_build(const rep_html_in *in, rep_buf *out);

/* The summary section alone (part of the page; exposed for tests). */
void rep_html_summary(rep_buf *b, const rep_results *r);

#endif
