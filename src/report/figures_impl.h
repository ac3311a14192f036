/* figures_impl.h: helpers shared by figures*.c (private to report/). */
#ifndef SC_REP_FIGURES_IMPL_H
#define SC_REP_FIGURES_IMPL_H

#include <stddef.h>

#include "report/figures.h"

typedef struct fx_ctx {
  rep_figures *out;
  int oom;           /* an allocation failed: the build fails at the end */
} fx_ctx;

typedef struct fx_vec {
  double *v;         /* (n) */
  int n, cap, oom;
} fx_vec;

void fx_vec_push(fx_vec *v, double x);
void fx_vec_free(fx_vec *v);

/* Appends a figure (caption printf-formatted); NULL when out of memory. */
rep_fig *fx_add(fx_ctx *c, rep_section sec, const char *stem, const char *title, const char *xlabel,
                const char *ylabel, const char *caption_fmt, ...) __attribute__((format(printf, 7, 8)));
/* Records SC_ERR_NOMEM from a plot call. */
void fx_check(fx_ctx *c, int rc);
/* The message for a results file that is missing or unreadable. */
void fx_absent_msg(const rep_result *r, char *buf, size_t cap);
/* 1 (and the message set on fig) when r is not usable or fig is NULL. */
int fx_absent(fx_ctx *c, rep_fig *fig, const rep_result *r);
/* EN blue, AR vermillion, else auto; "English"/"Arabic". */
int fx_lang_color(const char *lang);
const char *fx_lang_name(const char *lang);

/* RQ1's segment shown: primary_segment, else the first (NULL if none). */
const sc_json *fx_rq1_segment(const sc_json *root);

void fx_rq1_figures(fx_ctx *c, const rep_result *r);
void fx_rq2_figures(fx_ctx *c, const rep_result *r);
void fx_rq3_figures(fx_ctx *c, const rep_result *r);
void fx_rq4_figures(fx_ctx *c, const rep_result *r);

#endif
