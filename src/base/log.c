/* log.c: leveled logging and progress bar (see log.h). */
#include "base/log.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

static int sc_log_level = SC_LOG_INFO;

void sc_log_set_level(int level) { sc_log_level = level; }
int sc_log_get_level(void) { return sc_log_level; }

void sc_log(int level, const char *fmt, ...) {
  if (level > sc_log_level) return;
  char line[2048];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(line, sizeof line, fmt, ap);
  va_end(ap);
  fprintf(stderr, "saecap: %s\n", line);
}

double sc_time_now(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

struct sc_progress {
  char label[64];
  char unit[16];
  int64_t total, done;
  double start, last_draw;
  int tty;
  int drawn; /* a line has been shown */
};

sc_progress *sc_progress_create(const char *label, int64_t total, const char *unit) {
  sc_progress *p = calloc(1, sizeof *p);
  if (!p) return NULL;
  snprintf(p->label, sizeof p->label, "%s", label ? label : "");
  snprintf(p->unit, sizeof p->unit, "%s", unit ? unit : "it");
  p->total = total;
  p->start = p->last_draw = sc_time_now();
  p->tty = isatty(STDERR_FILENO);
  return p;
}

static void format_duration(char *buf, int cap, double s) {
  if (s < 0 || s > 1e7) {
    snprintf(buf, cap, "--:--");
    return;
  }
  long t = (long)(s + 0.5);
  if (t >= 3600)
    snprintf(buf, cap, "%ld:%02ld:%02ld", t / 3600, (t / 60) % 60, t % 60);
  else
    snprintf(buf, cap, "%02ld:%02ld", t / 60, t % 60);
}

void sc_progress_format(char *buf, int cap, const char *label, int64_t done, int64_t total,
                        const char *unit, double elapsed, int width) {
  double rate = elapsed > 0 ? (double)done / elapsed : 0.0;
  char el[32], eta[32];
  format_duration(el, sizeof el, elapsed);
  if (total > 0 && rate > 0)
    format_duration(eta, sizeof eta, (double)(total - done) / rate);
  else
    snprintf(eta, sizeof eta, "--:--");
  if (total <= 0) {
    snprintf(buf, cap, "%s %lld %s [%s, %.2f %s/s]", label, (long long)done, unit, el, rate, unit);
    return;
  }
  double frac = (double)done / (double)total;
  if (frac > 1) frac = 1;
  char bar[128];
  if (width > (int)sizeof bar - 1) width = (int)sizeof bar - 1;
  int fill = (int)(frac * width);
  for (int i = 0; i < width; i++) bar[i] = i < fill ? '#' : '.';
  bar[width] = '\0';
  snprintf(buf, cap, "%s %3d%% |%s| %lld/%lld %s [%s<%s, %.2f %s/s]", label, (int)(frac * 100),
           bar, (long long)done, (long long)total, unit, el, eta, rate, unit);
}

static void progress_draw(sc_progress *p, int final) {
  if (sc_log_level < SC_LOG_INFO) return;
  double now = sc_time_now();
  double gap = p->tty ? 0.1 : SC_PROGRESS_PLAIN_SECONDS;
  if (!final && now - p->last_draw < gap) return;
  /* Plain output: short work that never printed a periodic line stays silent. */
  if (final && !p->tty && !p->drawn && now - p->start < SC_PROGRESS_PLAIN_SECONDS) return;
  p->last_draw = now;
  p->drawn = 1;
  char line[512];
  sc_progress_format(line, sizeof line, p->label, p->done, p->total, p->unit, now - p->start,
                     p->tty ? 30 : 20);
  if (p->tty)
    fprintf(stderr, "\r\033[K%s%s", line, final ? "\n" : "");
  else
    fprintf(stderr, "saecap: %s\n", line);
  fflush(stderr);
}

void sc_progress_set(sc_progress *p, int64_t done) {
  if (!p) return;
  p->done = done;
  progress_draw(p, 0);
}

void sc_progress_add(sc_progress *p, int64_t n) {
  if (p) sc_progress_set(p, p->done + n);
}

void sc_progress_finish(sc_progress *p) {
  if (!p) return;
  progress_draw(p, 1);
  free(p);
}

void sc_progress_abort(sc_progress *p) {
  if (!p) return;
  if (p->tty && p->drawn && sc_log_level >= SC_LOG_INFO) {
    fputs("\r\033[K", stderr); /* clear the bar: the error line comes next */
    fflush(stderr);
  }
  free(p);
}
