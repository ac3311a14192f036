/* plot.h: figures for the report (issue 10), drawn with cairo + pango.
 *
 * A rep_fig is a list of things to draw on one pair of axes: line series
 * (optionally with a confidence band), scatter series, one bar chart with
 * error bars, or one heatmap, plus vertical/horizontal reference lines. It
 * is rendered by the same drawing code onto an SVG and a PNG surface.
 * Typical use:
 *
 *   rep_fig *f = rep_fig_create("title", "layer", "cosine (unitless)");
 *   rep_fig_line(f, "EN vs AR", n, x, y, lo, hi, REP_BLUE, 0);
 *   rep_fig_vline(f, 7, "divergence layer");
 *   rep_fig_write(f, "out/visualizations", "rq1_cosine");   // .png + .svg
 *   rep_fig_free(f);
 *
 * Text goes through pango, so Arabic labels are shaped and laid out right
 * to left. Colours are the Okabe-Ito palette (colour-blind safe); the
 * heatmap uses viridis. Non-finite values are skipped; a figure with no
 * finite point (empty input, all NaN) or with a message set draws that
 * message in the plot area instead of axes, never fails.
 *
 * Data in the SVG: every SVG carries, as the first child of <svg>,
 *   <desc id="saecap-data">JSON</desc>
 * (XML-escaped) holding exactly the values drawn: {"title", "xlabel",
 * "ylabel", "message" (string or null), "series": [{"kind": "line" |
 * "scatter" | "bars" | "heatmap", "label", "x", "y", "lo", "hi"
 * (arrays, null for NaN or absent), "labels" (bars: category names;
 * heatmap: "rows"/"cols" names and "values" row-major)}], "vlines":
 * [{"x","label"}], "hlines": [{"y","label"}]}. Tests read the series back
 * from it (tests/reference/svg_data.py); cairo draws paths whose
 * coordinates are not meant to be parsed.
 *
 * Errors: SC_ERR_NOMEM; SC_ERR_ARG for a negative count or a NULL array
 * with a positive count; SC_ERR_IO from writing (the path named).
 */
#ifndef SC_REP_PLOT_H
#define SC_REP_PLOT_H

#include <stddef.h>

/* Okabe-Ito colours (index into the palette); REP_AUTO takes the next one. */
enum rep_color {
  REP_AUTO = -1,
  REP_BLUE = 0,      /* #0072B2: English throughout the report */
  REP_VERMILLION,    /* #D55E00: Arabic */
  REP_GREEN,         /* #009E73 bluish green */
  REP_ORANGE,        /* #E69F00 */
  REP_PURPLE,        /* #CC79A7 reddish purple */
  REP_SKY,           /* #56B4E9 sky blue */
  REP_YELLOW,        /* #F0E442 */
  REP_BLACK,         /* #000000 */
  REP_GREY,          /* #999999: background points */
  REP_N_COLORS
};

/* Figure size in CSS pixels (the PNG is drawn at 2x). */
#define REP_FIG_W 760
#define REP_FIG_H 470

typedef struct rep_fig rep_fig;

/* NULL when out of memory. Strings are copied. */
rep_fig *rep_fig_create(const char *title, const char *xlabel, const char *ylabel);
void rep_fig_free(rep_fig *f);

/* Line through (x[i], y[i]), i < n, with markers; lo/hi (may be NULL) draw a
 * translucent band between them. dashed: 1 draws a dashed line. */
int rep_fig_line(rep_fig *f, const char *label, int n, const double *x, const double *y,
                 const double *lo, const double *hi, int color, int dashed);
/* Points (x[i], y[i]); radius in px (0: 3). */
int rep_fig_scatter(rep_fig *f, const char *label, int n, const double *x, const double *y,
                    int color, double radius);
/* Bar chart over n categories (x axis = category names): value y[i], error
 * bar lo[i]..hi[i] (lo/hi may be NULL or NaN per bar), colour color[i]
 * (NULL: all blue). One bar chart per figure. */
int rep_fig_bars(rep_fig *f, int n, const char *const *names, const double *y, const double *lo,
                 const double *hi, const int *color);
/* Heatmap of v[rows*cols] (row-major), row i labelled row_names[i], column j
 * col_names[j]; colour scale [vmin, vmax] (NaN: data range), its label
 * value_label. Cells show their value with `digits` decimals. */
int rep_fig_heatmap(rep_fig *f, int rows, int cols, const double *v, const char *const *row_names,
                    const char *const *col_names, const char *value_label, double vmin,
                    double vmax, int digits);
/* Reference lines with an optional label. */
int rep_fig_vline(rep_fig *f, double x, const char *label);
int rep_fig_hline(rep_fig *f, double y, const char *label);
/* Draw `msg` instead of the data (e.g. "stage did not run"). */
int rep_fig_set_message(rep_fig *f, const char *msg);
/* Fixed y range (both finite, lo < hi); otherwise it is the data's. */
void rep_fig_set_yrange(rep_fig *f, double lo, double hi);
/* x ticks only at integers (layers, k). */
void rep_fig_set_xinteger(rep_fig *f, int on);

/* The message the figure will draw, or NULL when it draws data. */
const char *rep_fig_message(const rep_fig *f);

/* Frees pango's default font map and fontconfig's caches: process-wide
 * state that text drawing creates once and keeps. Call it at exit so leak
 * checkers see a clean process (tests, fuzzers, the CLI); drawing after it
 * works but loads the fonts again. Not thread-safe: no drawing may run. */
void rep_plot_release_fonts(void);

/* Renders to malloc'd bytes (caller frees *out). */
int rep_fig_svg(const rep_fig *f, char **out, size_t *len);
int rep_fig_png(const rep_fig *f, unsigned char **out, size_t *len);
/* Writes <dir>/<stem>.svg and <dir>/<stem>.png atomically (dir created). */
int rep_fig_write(const rep_fig *f, const char *dir, const char *stem);

#endif
