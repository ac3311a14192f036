/* cmd_prepare.c: `saecap prepare --config FILE`. */
#include <stdio.h>

#include "base/log.h"
#include "cli/cli.h"
#include "pipeline/config.h"
#include "pipeline/prepare.h"

static const char *const usage =
    "usage: saecap prepare --config FILE\n\n"
    "Validates the dataset named in the config (data.captions_csv with columns image_id,\n"
    "english_prompt, arabic_prompt, ground_truth_gender, and data.images_dir), decodes every\n"
    "image once, normalises labels to male|female|neutral|unknown, makes a seeded train/val/test\n"
    "split by image (stratified by label), and writes under <output_dir>/data/processed/:\n"
    "  samples.jsonl         one JSON object per kept row\n"
    "  prepare_report.json   counts per label and split, rejected rows and why\n\n"
    "Rows that fail validation stop the stage (data.on_bad_row: error, the default) or are\n"
    "skipped and listed in the report (data.on_bad_row: skip). Nothing is written on failure.\n\n"
    "options:\n"
    "  --config FILE   study config (YAML), e.g. configs/demo.yaml\n"
    "  -h, --help      this text\n";

int cmd_prepare(int argc, char **argv) {
  sc_config cfg;
  int st = cli_stage_config(argc, argv, "prepare", usage, &cfg);
  if (st >= 0) return st;
  sc_prepare_summary sum;
  int rc = sc_prepare_run(&cfg, &sum);
  sc_config_free(&cfg);
  if (rc) return cli_fail();
  sc_info("prepare: %d samples from %d images (%d train, %d val, %d test rows); %d rows rejected",
          sum.n_samples, sum.n_images, sum.split_counts[0], sum.split_counts[1],
          sum.split_counts[2], sum.n_rejected);
  sc_info("prepare: wrote %s and %s", sum.samples_path, sum.report_path);
  sc_prepare_summary_free(&sum);
  return 0;
}
