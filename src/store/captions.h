/* captions.h: captions/<lang>.jsonl with the same resume rule as the shards.
 *
 * One JSON object per line, in sample order:
 *   {"sample_index":0,"image_id":"img1","split":"train",
 *    "ground_truth_gender":"female","prompt":"...","caption":"...",
 *    "caption_ids":[818,1234]}
 * Lines are appended to <lang>.jsonl; store_captions_commit (called every
 * commit_every rows and by finish) fsyncs it and then records its committed
 * length in <lang>.state.json (written atomically): rows, bytes, next_sample,
 * complete. On open, the jsonl is cut back to the committed length, so rows
 * written after the last commit (an interrupted run) are dropped and written
 * again, never duplicated; without a state file the jsonl is started afresh.
 * Rows for samples below the resume point are ignored, so a caller that
 * restarts from an earlier sample (because a layer writer is behind) needs
 * no special case. The final files do not depend on where a run was cut.
 * A reader should trust the jsonl only when the state says complete.
 */
#ifndef SC_STORE_CAPTIONS_H
#define SC_STORE_CAPTIONS_H

#include <stdint.h>

#define STORE_CAPTIONS_FORMAT "saecap-captions"
#define STORE_DEFAULT_CAPTIONS_COMMIT 64

typedef struct store_caption {
  int64_t sample_index;
  const char *image_id;            /* strings: UTF-8, NULL written as "" */
  const char *split;
  const char *ground_truth_gender;
  const char *prompt;              /* the instruction the model saw */
  const char *caption;             /* the generated text */
  const int32_t *caption_ids;      /* (n_caption_ids) generated token ids */
  int n_caption_ids;
} store_caption;

typedef struct store_captions store_captions;

/* Opens dir/<language>.jsonl (dir is created), resuming as described.
 * commit_every <= 0 means STORE_DEFAULT_CAPTIONS_COMMIT. Errors: SC_ERR_IO
 * (folder, file), SC_ERR_FORMAT (state file malformed, or the jsonl shorter
 * than its committed length). */
int store_captions_open(store_captions **out, const char *dir, const char *language,
                        int commit_every);
/* Frees without committing (pending rows are dropped on the next open). */
void store_captions_free(store_captions *c);

int64_t store_captions_resume_sample(const store_captions *c);
int store_captions_is_complete(const store_captions *c);
int64_t store_captions_rows(const store_captions *c);  /* committed + pending */

/* Appends one row; sample_index must increase (SC_ERR_ARG). Ignored below
 * the resume point or when complete. Write errors (disk full) name the
 * file; the writer then refuses further work. */
int store_captions_add(store_captions *c, const store_caption *row);
/* fsync + state file. */
int store_captions_commit(store_captions *c);
/* Commits and marks complete. */
int store_captions_finish(store_captions *c);

#endif
