/* plot.c: rep_fig, a small plotting library on cairo + pango (plot.h).
 *
 * One drawing routine (fig_draw) paints onto any cairo context; the SVG and
 * the PNG surfaces only differ in how the bytes are collected. */
#include "report/plot.h"

#include <cairo-svg.h>
#include <cairo.h>
#include <dlfcn.h>
#include <math.h>
#include <pango/pangocairo.h>
#include <stdlib.h>
#include <string.h>

#include "base/error.h"
#include "base/fs.h"
#include "io/json.h"

/* ==== the figure model ==== */

typedef enum { S_LINE, S_SCATTER, S_BARS, S_HEAT } series_kind;

typedef struct series {
  series_kind kind;
  char *label;
  int n;          /* points, bars or cells */
  double *x, *y;  /* (n); heatmap: y holds the cells row-major */
  double *lo, *hi; /* (n) or NULL */
  int *color;     /* bars: (n) */
  int col;        /* line/scatter colour */
  int dashed;
  double radius;
  char **names;   /* bars: (n) category names; heatmap: rows then cols */
  int rows, cols; /* heatmap */
  double vmin, vmax;
  int digits;
} series;

typedef struct ref_line {
  double v;
  char *label;
} ref_line;

struct rep_fig {
  char *title, *xlabel, *ylabel, *message;
  series *s;        /* (n_s) */
  int n_s, next_color;
  ref_line *vl, *hl; /* (n_vl), (n_hl) */
  int n_vl, n_hl;
  double ylo, yhi;  /* fixed range when ylo < yhi */
  int xint;
};

static const double palette[REP_N_COLORS][3] = {
    {0.000, 0.447, 0.698}, {0.835, 0.369, 0.000}, {0.000, 0.620, 0.451},
    {0.902, 0.624, 0.000}, {0.800, 0.475, 0.655}, {0.337, 0.706, 0.914},
    {0.941, 0.894, 0.259}, {0.000, 0.000, 0.000}, {0.600, 0.600, 0.600}};

static char *dupstr(const char *s) { return strdup(s ? s : ""); }

static double *dupd(const double *v, int n) {
  if (!v || n <= 0) return NULL;
  double *d = malloc((size_t)n * sizeof *d);
  if (d) memcpy(d, v, (size_t)n * sizeof *d);
  return d;
}

rep_fig *rep_fig_create(const char *title, const char *xlabel, const char *ylabel) {
  rep_fig *f = calloc(1, sizeof *f);
  if (!f) return NULL;
  f->title = dupstr(title);
  f->xlabel = dupstr(xlabel);
  f->ylabel = dupstr(ylabel);
  if (!f->title || !f->xlabel || !f->ylabel) {
    rep_fig_free(f);
    return NULL;
  }
  return f;
}

static void series_free(series *s) {
  free(s->label);
  free(s->x);
  free(s->y);
  free(s->lo);
  free(s->hi);
  free(s->color);
  int nn = s->kind == S_HEAT ? s->rows + s->cols : s->kind == S_BARS ? s->n : 0;
  for (int i = 0; s->names && i < nn; i++) free(s->names[i]);
  free(s->names);
}

void rep_fig_free(rep_fig *f) {
  if (!f) return;
  for (int i = 0; i < f->n_s; i++) series_free(&f->s[i]);
  for (int i = 0; i < f->n_vl; i++) free(f->vl[i].label);
  for (int i = 0; i < f->n_hl; i++) free(f->hl[i].label);
  free(f->s);
  free(f->vl);
  free(f->hl);
  free(f->title);
  free(f->xlabel);
  free(f->ylabel);
  free(f->message);
  free(f);
}

static series *add_series(rep_fig *f, series_kind k, const char *label, int n) {
  series *ns = realloc(f->s, (size_t)(f->n_s + 1) * sizeof *ns);
  if (!ns) return NULL;
  f->s = ns;
  series *s = &f->s[f->n_s];
  memset(s, 0, sizeof *s);
  s->kind = k;
  s->n = n;
  s->label = dupstr(label);
  if (!s->label) return NULL;
  f->n_s++;
  return s;
}

static int pick_color(rep_fig *f, int color) {
  if (color >= 0 && color < REP_N_COLORS) return color;
  return f->next_color++ % REP_BLACK;
}

static int check_args(int n, const double *x, const double *y) {
  if (n < 0) return sc_error_setc(SC_ERR_ARG, "plot: negative point count %d", n);
  if (n > 0 && (!x || !y)) return sc_error_setc(SC_ERR_ARG, "plot: NULL data with %d points", n);
  return 0;
}

static int nomem(void) { return sc_error_setc(SC_ERR_NOMEM, "plot: out of memory"); }

static int xy_series(rep_fig *f, series_kind k, const char *label, int n, const double *x,
                     const double *y, int color, series **out) {
  int rc = check_args(n, x, y);
  if (rc) return rc;
  series *s = add_series(f, k, label, n);
  if (!s) return nomem();
  s->col = pick_color(f, color);
  s->x = dupd(x, n);
  s->y = dupd(y, n);
  if (n > 0 && (!s->x || !s->y)) return nomem();
  *out = s;
  return 0;
}

int rep_fig_line(rep_fig *f, const char *label, int n, const double *x, const double *y,
                 const double *lo, const double *hi, int color, int dashed) {
  series *s = NULL;
  int rc = xy_series(f, S_LINE, label, n, x, y, color, &s);
  if (rc) return rc;
  s->dashed = dashed;
  if (lo && hi) {
    s->lo = dupd(lo, n);
    s->hi = dupd(hi, n);
    if (n > 0 && (!s->lo || !s->hi)) return nomem();
  }
  return 0;
}

int rep_fig_scatter(rep_fig *f, const char *label, int n, const double *x, const double *y,
                    int color, double radius) {
  series *s = NULL;
  int rc = xy_series(f, S_SCATTER, label, n, x, y, color, &s);
  if (rc) return rc;
  s->radius = radius > 0 ? radius : 3;
  return 0;
}

static char **dup_names(const char *const *names, int n) {
  char **o = calloc((size_t)(n > 0 ? n : 1), sizeof *o);
  if (!o) return NULL;
  for (int i = 0; i < n; i++)
    if (!(o[i] = dupstr(names ? names[i] : ""))) {
      for (int j = 0; j < i; j++) free(o[j]);
      free(o);
      return NULL;
    }
  return o;
}

int rep_fig_bars(rep_fig *f, int n, const char *const *names, const double *y, const double *lo,
                 const double *hi, const int *color) {
  double *x = NULL;
  int rc = check_args(n, y, y);
  if (rc) return rc;
  series *s = add_series(f, S_BARS, "", n);
  if (!s) return nomem();
  if (n > 0 && !(x = malloc((size_t)n * sizeof *x))) return nomem();
  for (int i = 0; i < n; i++) x[i] = i;
  s->x = x;
  s->y = dupd(y, n);
  s->lo = dupd(lo, n);
  s->hi = dupd(hi, n);
  s->names = dup_names(names, n);
  s->color = calloc((size_t)(n > 0 ? n : 1), sizeof *s->color);
  if (!s->names || !s->color || (n > 0 && !s->y) || (lo && n > 0 && !s->lo) ||
      (hi && n > 0 && !s->hi))
    return nomem();
  for (int i = 0; i < n; i++) s->color[i] = color ? pick_color(f, color[i]) : REP_BLUE;
  return 0;
}

int rep_fig_heatmap(rep_fig *f, int rows, int cols, const double *v, const char *const *row_names,
                    const char *const *col_names, const char *value_label, double vmin,
                    double vmax, int digits) {
  if (rows < 0 || cols < 0 || (rows > 0 && cols > 0 && !v))
    return sc_error_setc(SC_ERR_ARG, "plot: bad heatmap shape %d x %d", rows, cols);
  int n = rows * cols;
  series *s = add_series(f, S_HEAT, value_label, n);
  if (!s) return nomem();
  s->rows = rows;
  s->cols = cols;
  s->vmin = vmin;
  s->vmax = vmax;
  s->digits = digits < 0 ? 0 : digits > 6 ? 6 : digits;
  s->y = dupd(v, n);
  char **r = dup_names(row_names, rows), **c = dup_names(col_names, cols);
  s->names = calloc((size_t)(rows + cols > 0 ? rows + cols : 1), sizeof *s->names);
  if (!r || !c || !s->names || (n > 0 && !s->y)) {
    for (int i = 0; r && i < rows; i++) free(r[i]);
    for (int i = 0; c && i < cols; i++) free(c[i]);
    free(r);
    free(c);
    s->rows = s->cols = 0;
    return nomem();
  }
  memcpy(s->names, r, (size_t)rows * sizeof *r);
  memcpy(s->names + rows, c, (size_t)cols * sizeof *c);
  free(r);
  free(c);
  return 0;
}

static int add_ref(ref_line **arr, int *n, double v, const char *label) {
  ref_line *a = realloc(*arr, (size_t)(*n + 1) * sizeof *a);
  if (!a) return nomem();
  *arr = a;
  a[*n].v = v;
  if (!(a[*n].label = dupstr(label))) return nomem();
  (*n)++;
  return 0;
}

int rep_fig_vline(rep_fig *f, double x, const char *label) { return add_ref(&f->vl, &f->n_vl, x, label); }
int rep_fig_hline(rep_fig *f, double y, const char *label) { return add_ref(&f->hl, &f->n_hl, y, label); }

int rep_fig_set_message(rep_fig *f, const char *msg) {
  char *m = dupstr(msg);
  if (!m) return nomem();
  free(f->message);
  f->message = m;
  return 0;
}

void rep_fig_set_yrange(rep_fig *f, double lo, double hi) {
  f->ylo = lo;
  f->yhi = hi;
}

void rep_fig_set_xinteger(rep_fig *f, int on) { f->xint = on; }

/* ==== data ranges ==== */

typedef struct range {
  double lo, hi;
  int any;
} range;

static void range_add(range *r, double v) {
  if (!isfinite(v)) return;
  if (!r->any || v < r->lo) r->lo = v;
  if (!r->any || v > r->hi) r->hi = v;
  r->any = 1;
}

/* A point counts when both coordinates are finite. */
static void data_ranges(const rep_fig *f, range *rx, range *ry) {
  memset(rx, 0, sizeof *rx);
  memset(ry, 0, sizeof *ry);
  for (int k = 0; k < f->n_s; k++) {
    const series *s = &f->s[k];
    if (s->kind == S_HEAT) continue;
    for (int i = 0; i < s->n; i++) {
      if (!isfinite(s->x[i]) || !isfinite(s->y[i])) continue;
      range_add(rx, s->x[i]);
      range_add(ry, s->y[i]);
      if (s->lo) range_add(ry, s->lo[i]);
      if (s->hi) range_add(ry, s->hi[i]);
    }
  }
}

static int has_heat_data(const rep_fig *f) {
  for (int k = 0; k < f->n_s; k++)
    if (f->s[k].kind == S_HEAT)
      for (int i = 0; i < f->s[k].n; i++)
        if (isfinite(f->s[k].y[i])) return 1;
  return 0;
}

static int has_bars(const rep_fig *f) {
  for (int k = 0; k < f->n_s; k++)
    if (f->s[k].kind == S_BARS) return 1;
  return 0;
}

const char *rep_fig_message(const rep_fig *f) {
  if (f->message) return f->message;
  range rx, ry;
  data_ranges(f, &rx, &ry);
  if (!rx.any && !has_heat_data(f)) return "no data to plot (empty input, or every value is missing)";
  /* beyond this the axis arithmetic (span, padding) overflows */
  if (rx.any && !(rx.hi - rx.lo < 1e200 && ry.hi - ry.lo < 1e200 && fabs(rx.lo) < 1e200 && fabs(rx.hi) < 1e200 &&
                  fabs(ry.lo) < 1e200 && fabs(ry.hi) < 1e200))
    return "values too large to plot (magnitude above 1e200)";
  return NULL;
}

/* ==== drawing primitives ==== */

#define FONT "DejaVu Sans"

static void set_rgb(cairo_t *cr, int c, double alpha) {
  if (c < 0 || c >= REP_N_COLORS) c = REP_BLACK;
  cairo_set_source_rgba(cr, palette[c][0], palette[c][1], palette[c][2], alpha);
}

/* Text at (x, y); ax/ay: 0 = left/top, 0.5 = centre, 1 = right/bottom of
 * the text box; angle in radians around (x, y). Returns the text width. */
static double text(cairo_t *cr, const char *s, double x, double y, double px, int bold, double ax,
                   double ay, double angle) {
  PangoLayout *l = pango_cairo_create_layout(cr);
  PangoFontDescription *fd = pango_font_description_from_string(FONT);
  pango_font_description_set_absolute_size(fd, px * PANGO_SCALE);
  if (bold) pango_font_description_set_weight(fd, PANGO_WEIGHT_BOLD);
  pango_layout_set_font_description(l, fd);
  pango_layout_set_text(l, s, -1);
  int w, h;
  pango_layout_get_pixel_size(l, &w, &h);
  cairo_save(cr);
  cairo_translate(cr, x, y);
  cairo_rotate(cr, angle);
  cairo_move_to(cr, -ax * w, -ay * h);
  pango_cairo_show_layout(cr, l);
  cairo_restore(cr);
  pango_font_description_free(fd);
  g_object_unref(l);
  return w;
}

static double text_width(cairo_t *cr, const char *s, double px) {
  PangoLayout *l = pango_cairo_create_layout(cr);
  PangoFontDescription *fd = pango_font_description_from_string(FONT);
  pango_font_description_set_absolute_size(fd, px * PANGO_SCALE);
  pango_layout_set_font_description(l, fd);
  pango_layout_set_text(l, s, -1);
  int w, h;
  pango_layout_get_pixel_size(l, &w, &h);
  pango_font_description_free(fd);
  g_object_unref(l);
  return w;
}

/* "Nice" tick step: 1, 2 or 5 times a power of ten, about `want` ticks. */
static double nice_step(double span, int want) {
  double raw = span / want, p = pow(10, floor(log10(raw))), m = raw / p;
  return p * (m < 1.5 ? 1 : m < 3.5 ? 2 : m < 7.5 ? 5 : 10);
}

/* Ticks first, first + step, ... up to hi: counted, not accumulated, so a
 * step below the values' resolution (1e17 + 5) cannot loop forever; at most
 * 40, none when the range is not finite. */
static int tick_count(double first, double hi, double step) {
  if (!isfinite(first) || !isfinite(hi) || !(step > 0) || !isfinite(step)) return 0;
  double n = floor((hi - first) / step + 1e-9) + 1;
  return n >= 1 && n <= 40 ? (int)n : 0;
}

static void fmt_tick(char *buf, size_t cap, double v, double step) {
  int dec = step >= 1 ? 0 : (int)ceil(-log10(step) - 1e-9);
  if (dec > 6) dec = 6;
  if (fabs(v) < step * 1e-9) v = 0;
  snprintf(buf, cap, "%.*f", dec, v);
}

/* ==== layout ==== */

typedef struct axes {
  double x0, y0, x1, y1; /* plot area in px: left, top, right, bottom */
  double xlo, xhi, ylo, yhi;
} axes;

static double ax_x(const axes *a, double v) { return a->x0 + (v - a->xlo) / (a->xhi - a->xlo) * (a->x1 - a->x0); }
static double ax_y(const axes *a, double v) { return a->y1 - (v - a->ylo) / (a->yhi - a->ylo) * (a->y1 - a->y0); }

static void pad_range(double *lo, double *hi, double frac) {
  if (*hi - *lo <= 0) {
    double d = fabs(*lo) > 0 ? fabs(*lo) * 0.1 : 0.5;
    *lo -= d;
    *hi += d;
    return;
  }
  double d = (*hi - *lo) * frac;
  *lo -= d;
  *hi += d;
}

static int n_legend(const rep_fig *f) {
  int n = 0;
  for (int k = 0; k < f->n_s; k++)
    if ((f->s[k].kind == S_LINE || f->s[k].kind == S_SCATTER) && f->s[k].label[0]) n++;
  return n;
}

static void make_axes(const rep_fig *f, axes *a) {
  range rx, ry;
  data_ranges(f, &rx, &ry);
  for (int i = 0; i < f->n_vl; i++)
    if (fabs(f->vl[i].v) < 1e200) range_add(&rx, f->vl[i].v);
  for (int i = 0; i < f->n_hl; i++)
    if (fabs(f->hl[i].v) < 1e200) range_add(&ry, f->hl[i].v);
  a->x0 = 78;
  a->y0 = 44;
  a->x1 = REP_FIG_W - (n_legend(f) ? 200 : 24);
  a->y1 = REP_FIG_H - (has_bars(f) ? 120 : 58);
  a->xlo = rx.lo;
  a->xhi = rx.hi;
  if (has_bars(f)) {
    a->xlo = -0.6;
    a->xhi = rx.hi + 0.6;
    if (rx.lo < 0) a->xlo = rx.lo - 0.6;
    range_add(&ry, 0);
  } else
    pad_range(&a->xlo, &a->xhi, 0.04);
  a->ylo = ry.lo;
  a->yhi = ry.hi;
  pad_range(&a->ylo, &a->yhi, 0.06);
  if (f->ylo < f->yhi && isfinite(f->ylo) && isfinite(f->yhi)) {
    a->ylo = f->ylo;
    a->yhi = f->yhi;
  }
}

/* ==== axes, grid, labels ==== */

static void draw_yticks(cairo_t *cr, const axes *a) {
  double step = nice_step(a->yhi - a->ylo, 6), first = ceil(a->ylo / step) * step;
  char buf[32];
  int n = tick_count(first, a->yhi, step);
  for (int i = 0; i < n; i++) {
    double v = first + i * step, y = ax_y(a, v);
    cairo_set_source_rgb(cr, 0.9, 0.9, 0.9);
    cairo_move_to(cr, a->x0, y);
    cairo_line_to(cr, a->x1, y);
    cairo_stroke(cr);
    cairo_set_source_rgb(cr, 0.15, 0.15, 0.15);
    fmt_tick(buf, sizeof buf, v, step);
    text(cr, buf, a->x0 - 6, y, 12, 0, 1, 0.5, 0);
  }
}

static void draw_xticks(cairo_t *cr, const rep_fig *f, const axes *a) {
  double step = nice_step(a->xhi - a->xlo, 8);
  if (f->xint && step < 1) step = 1;
  double first = ceil(a->xlo / step) * step;
  char buf[32];
  int n = tick_count(first, a->xhi, step);
  for (int i = 0; i < n; i++) {
    double v = first + i * step, x = ax_x(a, v);
    cairo_set_source_rgb(cr, 0.9, 0.9, 0.9);
    cairo_move_to(cr, x, a->y0);
    cairo_line_to(cr, x, a->y1);
    cairo_stroke(cr);
    cairo_set_source_rgb(cr, 0.15, 0.15, 0.15);
    fmt_tick(buf, sizeof buf, v, step);
    text(cr, buf, x, a->y1 + 5, 12, 0, 0.5, 0, 0);
  }
}

static void draw_frame(cairo_t *cr, const rep_fig *f, const axes *a) {
  cairo_set_line_width(cr, 1);
  draw_yticks(cr, a);
  if (!has_bars(f)) draw_xticks(cr, f, a);
  cairo_set_source_rgb(cr, 0.2, 0.2, 0.2);
  cairo_rectangle(cr, a->x0, a->y0, a->x1 - a->x0, a->y1 - a->y0);
  cairo_stroke(cr);
  text(cr, f->xlabel, (a->x0 + a->x1) / 2, REP_FIG_H - 8, 13, 0, 0.5, 1, 0);
  text(cr, f->ylabel, 16, (a->y0 + a->y1) / 2, 13, 0, 0.5, 0.5, -M_PI / 2);
}

/* ==== series ==== */

static void draw_band(cairo_t *cr, const series *s, const axes *a) {
  /* One polygon per run of finite (x, lo, hi). */
  int i = 0;
  while (i < s->n) {
    int j = i;
    while (j < s->n && isfinite(s->x[j]) && isfinite(s->lo[j]) && isfinite(s->hi[j])) j++;
    if (j - i >= 2) {
      for (int t = i; t < j; t++) cairo_line_to(cr, ax_x(a, s->x[t]), ax_y(a, s->hi[t]));
      for (int t = j - 1; t >= i; t--) cairo_line_to(cr, ax_x(a, s->x[t]), ax_y(a, s->lo[t]));
      cairo_close_path(cr);
      set_rgb(cr, s->col, 0.16);
      cairo_fill(cr);
    } else if (j - i == 1) { /* a lone point: an error bar */
      set_rgb(cr, s->col, 0.6);
      cairo_move_to(cr, ax_x(a, s->x[i]), ax_y(a, s->lo[i]));
      cairo_line_to(cr, ax_x(a, s->x[i]), ax_y(a, s->hi[i]));
      cairo_stroke(cr);
    }
    i = j + 1;
  }
}

static int ok_pt(const series *s, int i) { return isfinite(s->x[i]) && isfinite(s->y[i]); }

static void draw_line(cairo_t *cr, const series *s, const axes *a) {
  set_rgb(cr, s->col, 1);
  cairo_set_line_width(cr, 2);
  double dash[] = {6, 4};
  cairo_set_dash(cr, dash, s->dashed ? 2 : 0, 0);
  for (int i = 0; i < s->n; i++) { /* NaN breaks the line */
    if (!ok_pt(s, i)) {
      cairo_stroke(cr);
      continue;
    }
    cairo_line_to(cr, ax_x(a, s->x[i]), ax_y(a, s->y[i]));
  }
  cairo_stroke(cr);
  cairo_set_dash(cr, NULL, 0, 0);
  for (int i = 0; i < s->n; i++)
    if (ok_pt(s, i)) {
      cairo_arc(cr, ax_x(a, s->x[i]), ax_y(a, s->y[i]), 3.2, 0, 2 * M_PI);
      cairo_fill(cr);
    }
  cairo_set_line_width(cr, 1);
}

static void draw_scatter(cairo_t *cr, const series *s, const axes *a) {
  for (int i = 0; i < s->n; i++) {
    if (!ok_pt(s, i)) continue;
    cairo_arc(cr, ax_x(a, s->x[i]), ax_y(a, s->y[i]), s->radius, 0, 2 * M_PI);
    set_rgb(cr, s->col, s->col == REP_GREY ? 0.5 : 0.8);
    cairo_fill_preserve(cr);
    set_rgb(cr, s->col, 1);
    cairo_stroke(cr);
  }
}

static void draw_bars(cairo_t *cr, const series *s, const axes *a) {
  double w = (ax_x(a, 1) - ax_x(a, 0)) * 0.7, base = ax_y(a, a->ylo < 0 && a->yhi > 0 ? 0 : a->ylo);
  for (int i = 0; i < s->n; i++) {
    double cx = ax_x(a, i);
    if (isfinite(s->y[i])) {
      double y = ax_y(a, s->y[i]);
      set_rgb(cr, s->color[i], 0.85);
      cairo_rectangle(cr, cx - w / 2, fmin(y, base), w, fabs(base - y));
      cairo_fill(cr);
    }
    if (s->lo && s->hi && isfinite(s->lo[i]) && isfinite(s->hi[i])) {
      double yl = ax_y(a, s->lo[i]), yh = ax_y(a, s->hi[i]);
      cairo_set_source_rgb(cr, 0, 0, 0);
      cairo_set_line_width(cr, 1.5);
      cairo_move_to(cr, cx, yl);
      cairo_line_to(cr, cx, yh);
      cairo_move_to(cr, cx - w / 5, yl);
      cairo_line_to(cr, cx + w / 5, yl);
      cairo_move_to(cr, cx - w / 5, yh);
      cairo_line_to(cr, cx + w / 5, yh);
      cairo_stroke(cr);
      cairo_set_line_width(cr, 1);
    }
    cairo_set_source_rgb(cr, 0.15, 0.15, 0.15);
    text(cr, s->names[i], cx + 4, a->y1 + 6, 11, 0, 1, 0, -M_PI / 5);
  }
}

static void draw_refs(cairo_t *cr, const rep_fig *f, const axes *a) {
  double dash[] = {3, 3};
  cairo_set_dash(cr, dash, 2, 0);
  cairo_set_line_width(cr, 1.5);
  for (int i = 0; i < f->n_vl; i++) {
    if (!isfinite(f->vl[i].v)) continue;
    double x = ax_x(a, f->vl[i].v);
    cairo_set_source_rgb(cr, 0.25, 0.25, 0.25);
    cairo_move_to(cr, x, a->y0);
    cairo_line_to(cr, x, a->y1);
    cairo_stroke(cr);
    text(cr, f->vl[i].label, x + 4, a->y0 + 4 + 16 * i, 11, 0, 0, 0, 0);
  }
  for (int i = 0; i < f->n_hl; i++) {
    if (!isfinite(f->hl[i].v)) continue;
    double y = ax_y(a, f->hl[i].v);
    cairo_set_source_rgb(cr, 0.25, 0.25, 0.25);
    cairo_move_to(cr, a->x0, y);
    cairo_line_to(cr, a->x1, y);
    cairo_stroke(cr);
    text(cr, f->hl[i].label, a->x1 - 4, y - 2, 11, 0, 1, 1, 0);
  }
  cairo_set_dash(cr, NULL, 0, 0);
  cairo_set_line_width(cr, 1);
}

static void draw_legend(cairo_t *cr, const rep_fig *f, const axes *a) {
  double x = a->x1 + 14, y = a->y0 + 4;
  for (int k = 0; k < f->n_s; k++) {
    const series *s = &f->s[k];
    if ((s->kind != S_LINE && s->kind != S_SCATTER) || !s->label[0]) continue;
    set_rgb(cr, s->col, 1);
    if (s->kind == S_LINE) {
      cairo_set_line_width(cr, 2);
      cairo_move_to(cr, x, y + 8);
      cairo_line_to(cr, x + 22, y + 8);
      cairo_stroke(cr);
      cairo_set_line_width(cr, 1);
    } else {
      cairo_arc(cr, x + 11, y + 8, 4, 0, 2 * M_PI);
      cairo_fill(cr);
    }
    cairo_set_source_rgb(cr, 0.1, 0.1, 0.1);
    PangoLayout *l = pango_cairo_create_layout(cr);
    PangoFontDescription *fd = pango_font_description_from_string(FONT);
    pango_font_description_set_absolute_size(fd, 12 * PANGO_SCALE);
    pango_layout_set_font_description(l, fd);
    pango_layout_set_width(l, (REP_FIG_W - (int)x - 34) * PANGO_SCALE);
    pango_layout_set_wrap(l, PANGO_WRAP_WORD_CHAR);
    pango_layout_set_text(l, s->label, -1);
    int w, h;
    pango_layout_get_pixel_size(l, &w, &h);
    cairo_move_to(cr, x + 28, y);
    pango_cairo_show_layout(cr, l);
    pango_font_description_free(fd);
    g_object_unref(l);
    y += h + 8;
  }
}

/* ==== heatmap ==== */

/* Viridis, sampled at 9 stops (matplotlib's _viridis_data every 32nd). */
static const double viridis[9][3] = {
    {0.267, 0.005, 0.329}, {0.279, 0.175, 0.483}, {0.230, 0.322, 0.546},
    {0.173, 0.449, 0.558}, {0.128, 0.567, 0.551}, {0.157, 0.684, 0.502},
    {0.369, 0.789, 0.383}, {0.678, 0.864, 0.190}, {0.993, 0.906, 0.144}};

static void viridis_at(double t, double rgb[3]) {
  if (!(t >= 0)) t = 0;
  if (t > 1) t = 1;
  double p = t * 8;
  int i = (int)p;
  if (i > 7) i = 7;
  double u = p - i;
  for (int c = 0; c < 3; c++) rgb[c] = viridis[i][c] * (1 - u) + viridis[i + 1][c] * u;
}

static void heat_range(const series *s, double *lo, double *hi) {
  range r = {0, 0, 0};
  for (int i = 0; i < s->n; i++) range_add(&r, s->y[i]);
  *lo = isfinite(s->vmin) ? s->vmin : r.lo;
  *hi = isfinite(s->vmax) ? s->vmax : r.hi;
  if (!(*hi > *lo)) *hi = *lo + 1;
}

static void draw_heat_cell(cairo_t *cr, const series *s, int i, int j, double cx, double cy,
                           double cw, double ch, double lo, double hi) {
  double v = s->y[i * s->cols + j], rgb[3] = {0.85, 0.85, 0.85};
  if (isfinite(v)) viridis_at((v - lo) / (hi - lo), rgb);
  cairo_set_source_rgb(cr, rgb[0], rgb[1], rgb[2]);
  cairo_rectangle(cr, cx, cy, cw, ch);
  cairo_fill(cr);
  if (cw < 26 || ch < 14) return;
  char buf[32];
  if (isfinite(v)) snprintf(buf, sizeof buf, "%.*f", s->digits, v);
  else snprintf(buf, sizeof buf, "n/a");
  double lum = 0.299 * rgb[0] + 0.587 * rgb[1] + 0.114 * rgb[2];
  if (lum > 0.5) cairo_set_source_rgb(cr, 0, 0, 0);
  else cairo_set_source_rgb(cr, 1, 1, 1);
  text(cr, buf, cx + cw / 2, cy + ch / 2, cw < 40 ? 9 : 11, 0, 0.5, 0.5, 0);
}

static void draw_colorbar(cairo_t *cr, const series *s, double x, double y0, double y1, double lo,
                          double hi) {
  for (int t = 0; t < 64; t++) {
    double rgb[3], ya = y1 - (y1 - y0) * (t + 1) / 64.0;
    viridis_at((t + 0.5) / 64, rgb);
    cairo_set_source_rgb(cr, rgb[0], rgb[1], rgb[2]);
    cairo_rectangle(cr, x, ya, 16, (y1 - y0) / 64.0 + 0.5);
    cairo_fill(cr);
  }
  char buf[32];
  cairo_set_source_rgb(cr, 0.15, 0.15, 0.15);
  snprintf(buf, sizeof buf, "%.*f", s->digits, hi);
  text(cr, buf, x + 20, y0, 11, 0, 0, 0.5, 0);
  snprintf(buf, sizeof buf, "%.*f", s->digits, lo);
  text(cr, buf, x + 20, y1, 11, 0, 0, 0.5, 0);
  text(cr, s->label, x + 60, (y0 + y1) / 2, 12, 0, 0.5, 0.5, -M_PI / 2);
}

static void draw_heatmap(cairo_t *cr, const rep_fig *f, const series *s) {
  double x0 = 110, y0 = 44, x1 = REP_FIG_W - 120, y1 = REP_FIG_H - 58, lo, hi;
  if (s->rows <= 0 || s->cols <= 0) return;
  heat_range(s, &lo, &hi);
  double cw = (x1 - x0) / s->cols, ch = (y1 - y0) / s->rows;
  for (int i = 0; i < s->rows; i++) {
    for (int j = 0; j < s->cols; j++)
      draw_heat_cell(cr, s, i, j, x0 + j * cw, y0 + i * ch, cw, ch, lo, hi);
    cairo_set_source_rgb(cr, 0.15, 0.15, 0.15);
    text(cr, s->names[i], x0 - 6, y0 + (i + 0.5) * ch, 11, 0, 1, 0.5, 0);
  }
  int every = s->cols > 24 ? (s->cols + 23) / 24 : 1;
  for (int j = 0; j < s->cols; j += every)
    text(cr, s->names[s->rows + j], x0 + (j + 0.5) * cw, y1 + 4, 11, 0, 0.5, 0, 0);
  draw_colorbar(cr, s, x1 + 16, y0, y1, lo, hi);
  text(cr, f->xlabel, (x0 + x1) / 2, REP_FIG_H - 8, 13, 0, 0.5, 1, 0);
  text(cr, f->ylabel, 16, (y0 + y1) / 2, 13, 0, 0.5, 0.5, -M_PI / 2);
}

/* ==== the figure ==== */

static void draw_message(cairo_t *cr, const char *msg) {
  cairo_set_source_rgb(cr, 0.96, 0.96, 0.96);
  cairo_rectangle(cr, 40, 60, REP_FIG_W - 80, REP_FIG_H - 100);
  cairo_fill(cr);
  cairo_set_source_rgb(cr, 0.3, 0.3, 0.3);
  PangoLayout *l = pango_cairo_create_layout(cr);
  PangoFontDescription *fd = pango_font_description_from_string(FONT);
  pango_font_description_set_absolute_size(fd, 16 * PANGO_SCALE);
  pango_layout_set_font_description(l, fd);
  pango_layout_set_width(l, (REP_FIG_W - 140) * PANGO_SCALE);
  pango_layout_set_alignment(l, PANGO_ALIGN_CENTER);
  pango_layout_set_wrap(l, PANGO_WRAP_WORD_CHAR);
  pango_layout_set_text(l, msg, -1);
  int w, h;
  pango_layout_get_pixel_size(l, &w, &h);
  cairo_move_to(cr, 70, (REP_FIG_H - h) / 2.0);
  pango_cairo_show_layout(cr, l);
  pango_font_description_free(fd);
  g_object_unref(l);
}

static void fig_draw(cairo_t *cr, const rep_fig *f) {
  cairo_set_source_rgb(cr, 1, 1, 1);
  cairo_paint(cr);
  cairo_set_source_rgb(cr, 0, 0, 0);
  double tw = text_width(cr, f->title, 15);
  text(cr, f->title, tw > REP_FIG_W - 20 ? 10 : REP_FIG_W / 2.0, 10, 15, 1, tw > REP_FIG_W - 20 ? 0 : 0.5, 0, 0);
  const char *msg = rep_fig_message(f);
  if (msg) {
    draw_message(cr, msg);
    return;
  }
  for (int k = 0; k < f->n_s; k++)
    if (f->s[k].kind == S_HEAT) {
      draw_heatmap(cr, f, &f->s[k]);
      return;
    }
  axes a;
  make_axes(f, &a);
  draw_frame(cr, f, &a);
  cairo_save(cr);
  cairo_rectangle(cr, a.x0, a.y0, a.x1 - a.x0, a.y1 - a.y0);
  if (!has_bars(f)) cairo_clip(cr);
  else cairo_new_path(cr);
  for (int k = 0; k < f->n_s; k++) /* every band under every line */
    if (f->s[k].kind == S_LINE && f->s[k].lo && f->s[k].hi) draw_band(cr, &f->s[k], &a);
  for (int k = 0; k < f->n_s; k++) {
    const series *s = &f->s[k];
    if (s->kind == S_LINE) draw_line(cr, s, &a);
    else if (s->kind == S_SCATTER) draw_scatter(cr, s, &a);
    else if (s->kind == S_BARS) draw_bars(cr, s, &a);
  }
  cairo_restore(cr);
  draw_refs(cr, f, &a);
  draw_legend(cr, f, &a);
}

/* ==== the data record (<desc id="saecap-data">) ==== */

static sc_json *num_array(const double *v, int n) {
  sc_json *a = sc_json_new_array();
  for (int i = 0; a && i < n; i++)
    sc_json_add(a, NULL, v && isfinite(v[i]) ? sc_json_new_num(v[i]) : sc_json_new_null());
  return a;
}

static sc_json *str_array(char *const *s, int n) {
  sc_json *a = sc_json_new_array();
  for (int i = 0; a && i < n; i++) sc_json_add(a, NULL, sc_json_new_str(s[i]));
  return a;
}

static sc_json *series_json(const series *s) {
  static const char *kinds[] = {"line", "scatter", "bars", "heatmap"};
  sc_json *o = sc_json_new_object();
  if (!o) return NULL;
  sc_json_add_str(o, "kind", kinds[s->kind]);
  sc_json_add_str(o, "label", s->label);
  if (s->kind == S_HEAT) {
    sc_json_add(o, "rows", str_array(s->names, s->rows));
    sc_json_add(o, "cols", str_array(s->names + s->rows, s->cols));
    sc_json_add(o, "values", num_array(s->y, s->n));
    return o;
  }
  if (s->kind == S_BARS) sc_json_add(o, "labels", str_array(s->names, s->n));
  sc_json_add(o, "x", num_array(s->x, s->n));
  sc_json_add(o, "y", num_array(s->y, s->n));
  sc_json_add(o, "lo", s->lo ? num_array(s->lo, s->n) : sc_json_new_null());
  sc_json_add(o, "hi", s->hi ? num_array(s->hi, s->n) : sc_json_new_null());
  return o;
}

static sc_json *refs_json(const ref_line *r, int n, const char *key) {
  sc_json *a = sc_json_new_array();
  for (int i = 0; a && i < n; i++) {
    sc_json *o = sc_json_add(a, NULL, sc_json_new_object());
    if (!o) break;
    sc_json_add(o, key, isfinite(r[i].v) ? sc_json_new_num(r[i].v) : sc_json_new_null());
    sc_json_add_str(o, "label", r[i].label);
  }
  return a;
}

static char *fig_data_json(const rep_fig *f) {
  sc_json *o = sc_json_new_object();
  if (!o) return NULL;
  sc_json_add_str(o, "title", f->title);
  sc_json_add_str(o, "xlabel", f->xlabel);
  sc_json_add_str(o, "ylabel", f->ylabel);
  const char *m = rep_fig_message(f);
  sc_json_add(o, "message", m ? sc_json_new_str(m) : sc_json_new_null());
  sc_json *arr = sc_json_add(o, "series", sc_json_new_array());
  for (int k = 0; arr && k < f->n_s; k++) sc_json_add(arr, NULL, series_json(&f->s[k]));
  sc_json_add(o, "vlines", refs_json(f->vl, f->n_vl, "x"));
  sc_json_add(o, "hlines", refs_json(f->hl, f->n_hl, "y"));
  char *text = sc_json_print(o, 0);
  sc_json_free(o);
  return text;
}

/* ==== output ==== */

void rep_plot_release_fonts(void) {
  pango_cairo_font_map_set_default(NULL);
  cairo_debug_reset_static_data();
  /* fontconfig is in the process (pango and cairo load it) but not on our
   * link line (pangocairo's .pc does not list it), so look FcFini up. */
  void (*fc_fini)(void);
  *(void **)&fc_fini = dlsym(RTLD_DEFAULT, "FcFini");
  if (fc_fini) fc_fini();
}

typedef struct membuf {
  char *p;
  size_t len, cap;
  int oom;
} membuf;

/* noinline: GCC 12 misreads the growth check when inlined (-Wstringop-overflow). */
__attribute__((noinline)) static int mb_put(membuf *b, const void *d, size_t n) {
  if (b->oom) return -1;
  if (b->len + n + 1 > b->cap) {
    size_t cap = b->cap ? b->cap : 4096;
    while (cap < b->len + n + 1) cap *= 2;
    char *p = realloc(b->p, cap);
    if (!p) {
      b->oom = 1;
      return -1;
    }
    b->p = p;
    b->cap = cap;
  }
  memcpy(b->p + b->len, d, n);
  b->len += n;
  b->p[b->len] = 0;
  return 0;
}

static cairo_status_t mb_write(void *closure, const unsigned char *data, unsigned int n) {
  return mb_put(closure, data, n) ? CAIRO_STATUS_NO_MEMORY : CAIRO_STATUS_SUCCESS;
}

static void mb_escape(membuf *b, const char *s) {
  for (; *s; s++) {
    if (*s == '<') mb_put(b, "&lt;", 4);
    else if (*s == '>') mb_put(b, "&gt;", 4);
    else if (*s == '&') mb_put(b, "&amp;", 5);
    else mb_put(b, s, 1);
  }
}

/* cairo's SVG followed by our data: the <title> and <desc> go right after
 * the opening <svg ...> tag. */
static int insert_desc(const rep_fig *f, const membuf *raw, char **out, size_t *len) {
  const char *svg = strstr(raw->p, "<svg");
  const char *gt = svg ? strchr(svg, '>') : NULL;
  char *json = fig_data_json(f);
  if (!gt || !json) {
    free(json);
    return gt ? nomem() : sc_error_setc(SC_ERR_INTERNAL, "plot: cairo wrote no <svg> element");
  }
  membuf b = {0};
  mb_put(&b, raw->p, (size_t)(gt + 1 - raw->p));
  mb_put(&b, "\n<title>", 8);
  mb_escape(&b, f->title);
  mb_put(&b, "</title>\n<desc id=\"saecap-data\">", 32);
  mb_escape(&b, json);
  mb_put(&b, "</desc>", 7);
  mb_put(&b, gt + 1, raw->len - (size_t)(gt + 1 - raw->p));
  free(json);
  if (b.oom) {
    free(b.p);
    return nomem();
  }
  *out = b.p;
  *len = b.len;
  return 0;
}

int rep_fig_svg(const rep_fig *f, char **out, size_t *len) {
  membuf raw = {0};
  cairo_surface_t *s = cairo_svg_surface_create_for_stream(mb_write, &raw, REP_FIG_W, REP_FIG_H);
  cairo_svg_surface_set_document_unit(s, CAIRO_SVG_UNIT_PX);
  cairo_t *cr = cairo_create(s);
  fig_draw(cr, f);
  cairo_destroy(cr);
  cairo_surface_finish(s);
  cairo_status_t st = cairo_surface_status(s);
  cairo_surface_destroy(s);
  if (st != CAIRO_STATUS_SUCCESS || raw.oom || !raw.p) {
    free(raw.p);
    return sc_error_setc(SC_ERR_NOMEM, "plot '%s': SVG rendering failed: %s", f->title,
                         cairo_status_to_string(st));
  }
  int rc = insert_desc(f, &raw, out, len);
  free(raw.p);
  return rc;
}

int rep_fig_png(const rep_fig *f, unsigned char **out, size_t *len) {
  cairo_surface_t *s = cairo_image_surface_create(CAIRO_FORMAT_RGB24, 2 * REP_FIG_W, 2 * REP_FIG_H);
  cairo_t *cr = cairo_create(s);
  cairo_scale(cr, 2, 2);
  fig_draw(cr, f);
  cairo_destroy(cr);
  membuf b = {0};
  cairo_status_t st = cairo_surface_write_to_png_stream(s, mb_write, &b);
  cairo_surface_destroy(s);
  if (st != CAIRO_STATUS_SUCCESS || b.oom) {
    free(b.p);
    return sc_error_setc(SC_ERR_NOMEM, "plot '%s': PNG rendering failed: %s", f->title,
                         cairo_status_to_string(st));
  }
  *out = (unsigned char *)b.p;
  *len = b.len;
  return 0;
}

static int write_one(const char *dir, const char *stem, const char *ext, const void *d, size_t n) {
  size_t plen = strlen(dir) + strlen(stem) + strlen(ext) + 2;
  char *path = malloc(plen);
  if (!path) return nomem();
  snprintf(path, plen, "%s/%s%s", dir, stem, ext);
  int rc = sc_write_file_atomic(path, d, n);
  free(path);
  return rc;
}

int rep_fig_write(const rep_fig *f, const char *dir, const char *stem) {
  char *svg = NULL;
  unsigned char *png = NULL;
  size_t ns = 0, np = 0;
  int rc = sc_mkdirs(dir);
  if (!rc) rc = rep_fig_svg(f, &svg, &ns);
  if (!rc) rc = rep_fig_png(f, &png, &np);
  if (!rc) rc = write_one(dir, stem, ".svg", svg, ns);
  if (!rc) rc = write_one(dir, stem, ".png", png, np);
  free(svg);
  free(png);
  return rc;
}
