/* log.h: leveled logging to stderr and the progress bar.
 *
 * The log level is the one global setting besides the error message
 * (STYLE.md §10): the CLI sets it from --quiet / --verbose. Library code
 * reports progress only through sc_progress and diagnostics through sc_log;
 * both go to stderr, so stdout stays clean for machine-readable output.
 */
#ifndef SC_LOG_H
#define SC_LOG_H

#include <stdint.h>

enum sc_log_level { SC_LOG_QUIET = 0, SC_LOG_WARN = 1, SC_LOG_INFO = 2, SC_LOG_DEBUG = 3 };

void sc_log_set_level(int level);
int sc_log_get_level(void);

/* Writes "saecap: " + message + newline to stderr when level <= current. */
void sc_log(int level, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

#define sc_warn(...) sc_log(SC_LOG_WARN, __VA_ARGS__)
#define sc_info(...) sc_log(SC_LOG_INFO, __VA_ARGS__)
#define sc_debug(...) sc_log(SC_LOG_DEBUG, __VA_ARGS__)

/* Progress over `total` units of work. On a TTY the bar redraws in place
 * (at most 10 times a second) with count, rate and ETA; otherwise one plain
 * line is written every `SC_PROGRESS_PLAIN_SECONDS` seconds and at the end.
 * Silent at SC_LOG_QUIET. total <= 0 means unknown (no ETA). */
typedef struct sc_progress sc_progress;

#define SC_PROGRESS_PLAIN_SECONDS 10.0

/* Returns NULL only when out of memory; every function accepts NULL. */
sc_progress *sc_progress_create(const char *label, int64_t total, const char *unit);
/* Sets the count of finished units. */
void sc_progress_set(sc_progress *p, int64_t done);
void sc_progress_add(sc_progress *p, int64_t n);
/* Prints the final line (plain output: only if a periodic line was shown,
 * so quick work stays silent) and frees p. */
void sc_progress_finish(sc_progress *p);
/* Work failed: clears the bar on a TTY, prints nothing, frees p. */
void sc_progress_abort(sc_progress *p);

/* Formats the bar line for done/total after `elapsed` seconds into buf
 * (exposed for tests). */
void sc_progress_format(char *buf, int cap, const char *label, int64_t done, int64_t total,
                        const char *unit, double elapsed, int width);

/* Monotonic seconds. */
double sc_time_now(void);

#endif
