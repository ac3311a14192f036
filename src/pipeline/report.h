/* report.h: the `report` stage (issue 10): figures and the HTML report from
 * whatever results exist under output_dir.
 *
 * Reads <output_dir>/results/{sae_metrics, cross_lingual_analysis,
 * feature_analysis, morphology_analysis, steering_experiments}.json (any of
 * them may be missing or unreadable: the report says so where its numbers
 * would be), the SAE training logs those name, and
 * data/processed/prepare_report.json (dataset counts). Writes, each file
 * atomically:
 *   <output_dir>/visualizations/<stem>.svg and <stem>.png per figure
 *   <output_dir>/report/report.html (self-contained, html.h)
 * The figure set and the page layout: docs/results/report.md.
 * Deterministic: the same inputs give the same bytes.
 */
#ifndef SC_PIPELINE_REPORT_H
#define SC_PIPELINE_REPORT_H

#include <stddef.h>

#include "pipeline/config.h"

typedef struct sc_report_summary {
  int n_figures;      /* figures written (svg + png each) */
  int n_results;      /* results files read */
  int n_absent;       /* results files missing or unreadable */
  size_t html_bytes;  /* size of report.html */
  char *html_path;    /* owned: <output_dir>/report/report.html */
  char *vis_dir;      /* owned: <output_dir>/visualizations */
} sc_report_summary;

/* Runs the stage. Errors: SC_ERR_IO naming the file that could not be
 * written, SC_ERR_NOMEM. Missing or malformed results are NOT errors. */
int sc_report_run(const sc_config *cfg, sc_report_summary *out);
void sc_report_summary_free(sc_report_summary *s);

#endif
