/* prepare.h: the `prepare` stage: captions.csv + images -> samples.jsonl.
 *
 * Reads the config's data.captions_csv (columns image_id, english_prompt,
 * arabic_prompt, ground_truth_gender in any order; extra columns are kept
 * under "extra"), resolves each image_id in data.images_dir (as written, or
 * with .jpg/.jpeg/.png and their upper-case forms appended), decodes every
 * image once to prove it is readable, normalises labels
 * (male|female|neutral|unknown, case-insensitive), and assigns each image to
 * train/val/test: images are grouped by label (the first row's label for an
 * image), each group shuffled with the config seed and cut by the split
 * fractions, so no image is in two splits and every split gets its share of
 * each label.
 *
 * A row that parses but fails validation (missing image, unreadable image,
 * unknown label, empty prompt or image_id, an image_id that leaves the
 * images folder) is an error under on_bad_row: error, and is skipped and
 * listed in the report under on_bad_row: skip. A CSV that does not parse
 * is always an error. Outputs (written atomically, only when the stage
 * succeeds), under <output_dir>/data/processed/:
 *   samples.jsonl        one JSON object per kept row (see README, Outputs)
 *   prepare_report.json  counts per label and split, rejected rows and why
 */
#ifndef SC_PREPARE_H
#define SC_PREPARE_H

#include "pipeline/config.h"

enum { SC_LABEL_MALE, SC_LABEL_FEMALE, SC_LABEL_NEUTRAL, SC_LABEL_UNKNOWN, SC_N_LABELS };
enum { SC_SPLIT_TRAIN, SC_SPLIT_VAL, SC_SPLIT_TEST, SC_N_SPLITS };

typedef struct sc_prepare_summary {
  int n_rows;                           /* data rows in the CSV */
  int n_samples;                        /* rows kept */
  int n_images;                         /* distinct images kept */
  int n_rejected;                       /* rows skipped (on_bad_row: skip) */
  int label_counts[SC_N_LABELS];        /* kept rows per label */
  int split_counts[SC_N_SPLITS];        /* kept rows per split */
  char *samples_path;                   /* owned: path of samples.jsonl */
  char *report_path;                    /* owned: path of prepare_report.json */
} sc_prepare_summary;

/* Parses a label (case-insensitive, surrounding spaces ignored); returns the
 * SC_LABEL_* value or -1. */
int sc_label_parse(const char *s);
const char *sc_label_name(int label);
const char *sc_split_name(int split);

/* Runs the stage. On error nothing is written and *out is zeroed. */
int sc_prepare_run(const sc_config *cfg, sc_prepare_summary *out);
void sc_prepare_summary_free(sc_prepare_summary *s);

#endif
