/* figures_rq34.c: RQ3 figures from steering_experiments.json
 * (docs/results/steering_experiments.md) and RQ4 figures from
 * morphology_analysis.json (docs/results/morphology_analysis.md). */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "report/figures_impl.h"

void fx_rq3_figures(fx_ctx *c, const rep_result *r) {
  rep_fig *f = fx_add(c, REP_SEC_RQ3, "rq3_steering", "Steering: gendered words after suppressing features",
                      "condition", "captions with a gendered word (fraction)",
                      "Share of captions with a gendered word per condition, with bootstrap CIs.");
  if (fx_absent(c, f, r)) return;
}

void fx_rq4_figures(fx_ctx *c, const rep_result *r) {
  rep_fig *f = fx_add(c, REP_SEC_RQ4, "rq4_grammatical_vs_semantic",
                      "Arabic features: grammatical vs semantic gender", "grammatical effect",
                      "semantic effect", "Per feature: effect of grammatical vs semantic gender.");
  if (fx_absent(c, f, r)) return;
}
