/* fuzz_report_plot.c: libFuzzer target for the plot library
 * (report/plot.h): the bytes are read as doubles (any bit pattern: NaN,
 * infinities, subnormals, 1e308) and drawn as a line with a band, a
 * scatter, bars or a heatmap with reference lines, rendered to SVG. Must
 * never crash or hang; a figure with no drawable point must carry a
 * message. */
#include <math.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "report/plot.h"

#define MAX_POINTS 64

int LLVMFuzzerInitialize(int *argc, char ***argv) {
  (void)argc, (void)argv;
  atexit(rep_plot_release_fonts); /* pango/fontconfig caches: not leaks */
  return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  if (size < 1) return 0;
  int kind = data[0] & 3, n = (int)((size - 1) / sizeof(double) / 4);
  if (n > MAX_POINTS) n = MAX_POINTS;
  double v[4 * MAX_POINTS];
  memcpy(v, data + 1, (size_t)n * 4 * sizeof(double));
  const double *x = v, *y = v + n, *lo = v + 2 * n, *hi = v + 3 * n;
  rep_fig *f = rep_fig_create("fuzz", "x", "y");
  if (!f) return 0;
  const char *names[MAX_POINTS];
  for (int i = 0; i < n; i++) names[i] = "c";
  if (kind == 0) rep_fig_line(f, "l", n, x, y, lo, hi, REP_AUTO, data[0] & 4);
  else if (kind == 1) rep_fig_scatter(f, "s", n, x, y, REP_AUTO, 0);
  else if (kind == 2) rep_fig_bars(f, n, names, y, lo, hi, NULL);
  else rep_fig_heatmap(f, n ? 1 : 0, n, y, names, names, "v", n > 0 ? lo[0] : 0, NAN, 2);
  if (n > 0) {
    rep_fig_vline(f, x[0], "v");
    rep_fig_hline(f, y[0], "h");
  }
  if (data[0] & 8) rep_fig_set_xinteger(f, 1);
  char *svg = NULL;
  size_t len = 0;
  if (!rep_fig_svg(f, &svg, &len) && !strstr(svg, "saecap-data")) abort();
  free(svg);
  rep_fig_free(f);
  return 0;
}
