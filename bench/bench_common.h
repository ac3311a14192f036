/* bench_common.h: timing helpers every benchmark shares (header-only, so each
 * bench/bench_<name>.c stays one program). Figures are reported as the best
 * and the median of the runs, as the project's benchmark rule asks. */
#ifndef SC_BENCH_COMMON_H
#define SC_BENCH_COMMON_H

#include <stdlib.h>

#include "base/log.h"

typedef struct bench_stat {
  double min, med; /* best and median; 0 = not measured */
} bench_stat;

/* Monotonic seconds (the library's clock). */
static inline double bench_now(void) { return sc_time_now(); }

static inline int bench_cmp_double(const void *a, const void *b) {
  double x = *(const double *)a, y = *(const double *)b;
  return (x > y) - (x < y);
}

/* Best and median of t[0..n) (sorts t; n >= 1). */
static inline bench_stat bench_summarize(double *t, int n) {
  qsort(t, (size_t)n, sizeof *t, bench_cmp_double);
  return (bench_stat){t[0], n % 2 ? t[n / 2] : 0.5 * (t[n / 2 - 1] + t[n / 2])};
}

#endif
