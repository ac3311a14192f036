/* check.h: semantic checks of a loaded study config, beyond the schema's
 * types and ranges (`saecap config --check`, `saecap run`, `saecap slurm`).
 *
 * Checks: model.path is set, is a folder and has a config.json whose
 * num_hidden_layers bounds every layer list; data.captions_csv is a file
 * and data.images_dir a folder; the language lists (en | ar, no repeats,
 * not empty), layer lists ("all" or distinct integers; train/analyze/steer
 * layers among the extracted ones), segment lists, steer.k (integers >= 1),
 * steer.mode (ablate | scale:A | clamp:V | add:C, finite numbers), train.k
 * <= train.d_sae, and the slurm section: time [D-]HH:MM:SS (MM, SS < 60;
 * HH < 24 with days), mem <digits>[K|M|G|T] > 0, partition/account made of
 * [A-Za-z0-9_.,-], saecap an executable file when set.
 *
 * Every error is one line "<file>: line L: <key>: <problem>" (the line of
 * the key in the file; "<file>: <key> (default): ..." for a key the file
 * leaves at its default).
 */
#ifndef SC_CHECK_H
#define SC_CHECK_H

#include "pipeline/config.h"

/* 0 or SC_ERR_ARG / SC_ERR_MISSING with the message set. */
int sc_config_check(const sc_config *c);

/* The layers a list key resolves to: "all" gives 0..n_layers-1. Fills
 * layers (capacity cap) and *n; SC_ERR_ARG for a bad list (message names
 * `key`). */
int sc_config_layer_list(const char *list, int n_layers, const char *key, int *layers, int cap, int *n);

#endif
