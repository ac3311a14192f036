/* textmetrics.h: what steering costs, per caption: chrF between two texts
 * and the divergence / likelihood terms of next-token distributions.
 *
 * chrF (Popović 2015) as sacrebleu's CHRF defaults compute a sentence
 * score: character n-grams of orders 1..6 over Unicode code points after
 * removing every whitespace character (Python str.split() whitespace),
 * case-sensitive, no word n-grams, β = 2. Per order, precision =
 * matches / hyp n-grams and recall = matches / ref n-grams, matches =
 * Σ_g min(count_hyp(g), count_ref(g)); precision and recall are averaged
 * over the orders where both texts have n-grams ("effective order",
 * sacrebleu ≥ 2.0 without eps smoothing), then
 * F = (1+β²)·P·R / (β²·P + R), reported ×100; 0 when no order is
 * effective or P + R = 0. Invalid UTF-8 bytes count as one U+FFFD each.
 *
 * Distributions: logits rows over the first V entries, softmax in double.
 */
#ifndef SC_TEXTMETRICS_H
#define SC_TEXTMETRICS_H

#include <stddef.h>
#include <stdint.h>

#define AN_CHRF_ORDER 6
#define AN_CHRF_BETA 2.0

/* chrF of hyp against ref in [0, 100]. Errors: SC_ERR_NOMEM. */
int an_chrf(const char *hyp, size_t hyp_len, const char *ref, size_t ref_len, double *score);

/* KL(P‖Q) = Σ_v p_v (log p_v − log q_v) with P = softmax(p_logits[0..V)),
 * Q = softmax(q_logits[0..V)), in nats; >= 0. */
double an_kl_logits(const float *p_logits, const float *q_logits, int64_t V);

/* log softmax(logits[0..V))[id], in nats. */
double an_logprob(const float *logits, int64_t V, int32_t id);

#endif
