/* textmetrics.c: chrF, KL and log-probabilities (textmetrics.h). */
#include "analysis/textmetrics.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "base/error.h"

/* Python's str.isspace() set: what str.split() removes. */
static int is_space(uint32_t c) {
  return (c >= 9 && c <= 13) || (c >= 28 && c <= 32) || c == 0x85 || c == 0xA0 || c == 0x1680 ||
         (c >= 0x2000 && c <= 0x200A) || c == 0x2028 || c == 0x2029 || c == 0x202F || c == 0x205F ||
         c == 0x3000;
}

/* One code point from s[0..n) (n >= 1); *len bytes consumed; U+FFFD for a
 * bad sequence (one byte consumed). */
static uint32_t next_cp(const unsigned char *s, size_t n, size_t *len) {
  uint32_t c = s[0];
  int k = c < 0x80 ? 0 : (c & 0xE0) == 0xC0 ? 1 : (c & 0xF0) == 0xE0 ? 2 : (c & 0xF8) == 0xF0 ? 3 : -1;
  *len = 1;
  if (k == 0) return c;
  if (k < 0 || (size_t)k >= n) return 0xFFFD;
  uint32_t v = c & (0x3Fu >> k);
  for (int i = 1; i <= k; i++) {
    if ((s[i] & 0xC0) != 0x80) return 0xFFFD;
    v = (v << 6) | (s[i] & 0x3F);
  }
  static const uint32_t min[4] = {0, 0x80, 0x800, 0x10000};
  if (v < min[k] || v > 0x10FFFF || (v >= 0xD800 && v <= 0xDFFF)) return 0xFFFD;
  *len = (size_t)k + 1;
  return v;
}

/* Code points of text without whitespace; *out malloc'd. */
static int code_points(const char *text, size_t len, uint32_t **out, size_t *n) {
  uint32_t *cp = malloc((len ? len : 1) * sizeof *cp);
  if (!cp) return sc_error_setc(SC_ERR_NOMEM, "chrF: out of memory");
  size_t m = 0;
  for (size_t at = 0; at < len;) {
    size_t k;
    uint32_t c = next_cp((const unsigned char *)text + at, len - at, &k);
    at += k;
    if (!is_space(c)) cp[m++] = c;
  }
  *out = cp;
  *n = m;
  return 0;
}

static size_t count_of(const uint32_t *a, size_t na, const uint32_t *g, size_t order) {
  size_t c = 0;
  for (size_t i = 0; i + order <= na; i++) c += !memcmp(a + i, g, order * sizeof *g);
  return c;
}

/* Σ over distinct hyp n-grams of min(count in hyp, count in ref). Captions
 * are short, so the quadratic scan costs less than building a table. */
static size_t matches(const uint32_t *h, size_t nh, const uint32_t *r, size_t nr, size_t order) {
  size_t m = 0;
  for (size_t i = 0; i + order <= nh; i++) {
    if (count_of(h, i + order - 1, h + i, order)) continue; /* seen at an earlier start */
    size_t ch = count_of(h + i, nh - i, h + i, order), cr = count_of(r, nr, h + i, order);
    m += ch < cr ? ch : cr;
  }
  return m;
}

int an_chrf(const char *hyp, size_t hyp_len, const char *ref, size_t ref_len, double *score) {
  uint32_t *h = NULL, *r = NULL;
  size_t nh = 0, nr = 0;
  *score = 0;
  int rc = code_points(hyp, hyp_len, &h, &nh);
  if (!rc) rc = code_points(ref, ref_len, &r, &nr);
  if (rc) {
    free(h), free(r);
    return rc;
  }
  double P = 0, R = 0;
  int eff = 0;
  for (size_t o = 1; o <= AN_CHRF_ORDER; o++) {
    if (nh < o || nr < o) continue;
    double m = (double)matches(h, nh, r, nr, o);
    P += m / (double)(nh - o + 1);
    R += m / (double)(nr - o + 1);
    eff++;
  }
  free(h), free(r);
  if (eff == 0) return 0;
  P /= eff, R /= eff;
  double b2 = AN_CHRF_BETA * AN_CHRF_BETA;
  if (P + R > 0) *score = 100.0 * (1 + b2) * P * R / (b2 * P + R);
  return 0;
}

/* log Σ exp(x_v) in double. */
static double log_sum_exp(const float *x, int64_t V) {
  double mx = -INFINITY, s = 0;
  for (int64_t v = 0; v < V; v++)
    if (x[v] > mx) mx = x[v];
  for (int64_t v = 0; v < V; v++) s += exp((double)x[v] - mx);
  return mx + log(s);
}

double an_kl_logits(const float *p_logits, const float *q_logits, int64_t V) {
  double lp = log_sum_exp(p_logits, V), lq = log_sum_exp(q_logits, V), kl = 0;
  for (int64_t v = 0; v < V; v++) {
    double a = (double)p_logits[v] - lp, b = (double)q_logits[v] - lq;
    kl += exp(a) * (a - b);
  }
  return kl > 0 ? kl : 0;
}

double an_logprob(const float *logits, int64_t V, int32_t id) { return (double)logits[id] - log_sum_exp(logits, V); }
