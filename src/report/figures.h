/* figures.h: the report's figures, built from the results JSON
 * (results.h) and the SAE training logs.
 *
 * Each figure has a stem (its file name under visualizations/), the section
 * it belongs to, and a caption saying what it shows. A stage that did not
 * run, or a key a results file lacks, gives a figure that draws a message
 * saying so; nothing here fails on content. The figure set and the keys
 * each figure reads are listed in docs/results/report.md.
 */
#ifndef SC_REP_FIGURES_H
#define SC_REP_FIGURES_H

#include "report/plot.h"
#include "report/results.h"

typedef enum rep_section {
  REP_SEC_SAE = 0, /* SAE training and quality */
  REP_SEC_RQ1,     /* cross-lingual representation across layers */
  REP_SEC_RQ2,     /* language-specific features */
  REP_SEC_RQ3,     /* steering */
  REP_SEC_RQ4,     /* morphology */
  REP_N_SECTIONS
} rep_section;

typedef struct rep_figure {
  char stem[96];     /* file stem under visualizations/ */
  rep_section section;
  char *caption;     /* plain text (owned) */
  rep_fig *fig;      /* owned */
} rep_figure;

typedef struct rep_figures {
  rep_figure *v;     /* (n) */
  int n;
} rep_figures;

/* Builds every figure. output_dir locates the training logs named by
 * sae_metrics.json (NULL: none read). SC_ERR_NOMEM only. */
int rep_figures_build(const rep_results *r, const char *output_dir, rep_figures *out);
void rep_figures_free(rep_figures *f);

#endif
