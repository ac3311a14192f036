/* fuzz_report_results.c: libFuzzer target for the report's results readers
 * (report/results.h) and everything built from them: the figures
 * (report/figures.h, not rendered), the summary and the whole page
 * (report/html.h). The first byte picks the results file (mod 5), the rest
 * is its content. Any bytes must give a page, never a crash, a hang, a leak
 * or undefined behaviour; the page must be valid UTF-8 free of a raw
 * "<script" from data. */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "report/buf.h"
#include "report/figures.h"
#include "report/html.h"
#include "report/results.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  if (size < 1) return 0;
  rep_results r;
  memset(&r, 0, sizeof r);
  if (rep_results_parse(&r, (rep_res_id)(data[0] % REP_N_RESULTS), (const char *)data + 1, size - 1)) {
    rep_results_free(&r);
    return 0; /* out of memory */
  }
  rep_figures figs;
  if (rep_figures_build(&r, NULL, &figs)) {
    rep_results_free(&r);
    return 0;
  }
  for (int i = 0; i < figs.n; i++) (void)rep_fig_message(figs.v[i].fig);
  rep_image *im = calloc((size_t)(figs.n ? figs.n : 1), sizeof *im);
  rep_html_in in = {"fuzz", &r, &figs, im, 3, "c.yaml", "a: 1\n", "fnv1a64:0", "m", "out", NULL};
  rep_buf page = {0};
  if (im && !rep_html_build(&in, &page)) {
    if (strstr(page.p, "<script")) abort();
  }
  rep_buf_free(&page);
  free(im);
  rep_figures_free(&figs);
  rep_results_free(&r);
  return 0;
}
