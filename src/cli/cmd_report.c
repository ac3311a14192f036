/* cmd_report.c: `saecap report --config FILE`. */
#include <stdio.h>

#include "base/log.h"
#include "cli/cli.h"
#include "pipeline/config.h"
#include "pipeline/report.h"
#include "report/plot.h"

static const char *const usage =
    "usage: saecap report --config FILE\n\n"
    "Draws the study's figures and writes one self-contained HTML report from the\n"
    "results under <output_dir> (docs/results/report.md):\n"
    "  visualizations/<figure>.svg and .png   SAE curves and metrics, RQ1..RQ4 plots\n"
    "  report/report.html                     summary in numbers, figures with captions,\n"
    "                                         feature cards, configuration, provenance\n"
    "A results file that is missing (its stage did not run) or unreadable is shown as\n"
    "such in the report; only a failure to write an output is an error.\n\n"
    "options:\n"
    "  --config FILE   study config (YAML); the report.* keys and output_dir\n"
    "  -h, --help      this text\n";

int cmd_report(int argc, char **argv) {
  sc_config cfg;
  int st = cli_stage_config(argc, argv, "report", usage, &cfg);
  if (st >= 0) return st;
  sc_report_summary sum;
  int rc = sc_report_run(&cfg, &sum);
  sc_config_free(&cfg);
  rep_plot_release_fonts(); /* process-wide font caches: keeps leak checkers quiet */
  if (rc) return cli_fail();
  sc_info("report: %d figures in %s; %d of 5 results files read", sum.n_figures, sum.vis_dir, sum.n_results);
  sc_info("report: wrote %s (%.1f KiB)", sum.html_path, (double)sum.html_bytes / 1024);
  sc_report_summary_free(&sum);
  return 0;
}
