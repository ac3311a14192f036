/* main.c: saecap's entry point: global options, then one subcommand. */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "base/error.h"
#include "base/log.h"
#include "base/version.h"
#include "cli/cli.h"
#include "pipeline/config.h"
#include "tensor/kernels.h"

typedef struct cli_command {
  const char *name;
  int (*run)(int argc, char **argv);
  const char *summary;
} cli_command;

static const cli_command commands[] = {
    {"prepare", cmd_prepare, "validate captions.csv + images and write samples.jsonl with splits"},
    {"extract", cmd_extract, "caption every sample in each language and store resid_post activations"},
    {"tiny-model", cmd_tiny_model, "write a tiny random Gemma-3 checkpoint in the Hugging Face layout"},
    {"inspect", cmd_inspect, "list the tensors and metadata of a safetensors file or checkpoint"},
    {"tokenize", cmd_tokenize, "encode stdin to Gemma 3 token ids (or decode ids) with tokenizer.json"},
    {"forward", cmd_forward, "run the Gemma-3 text decoder over a prompt and dump every residual site"},
    {"generate", cmd_generate, "continue a prompt with the Gemma-3 text decoder (greedy or sampled)"},
    {"caption", cmd_caption, "caption an image with Gemma 3 (vision tower, projector, decoder)"},
    {"train", cmd_train, "train one SAE per layer on the stored activations (EN+AR shared)"},
    {"sae-eval", cmd_sae_eval, "SAE metrics on the held-out split (+ CE loss recovered): results/sae_metrics.json"},
    {"analyze", cmd_analyze, "gender analysis: RQ1 cross-lingual, RQ2 SAE features, RQ4 morphology (results/*.json)"},
    {"steer", cmd_steer, "steering experiment: ablate gender features, measure gendered words and cost"},
    {"gender-words", cmd_gender_words, "count gendered words (en|ar lexicon) per stdin line: <male> <female>"},
    {"sae-encode", cmd_sae_encode, "encode activations with an SAE (SAELens or Gemma Scope 2): top latents per row"},
    {"run", cmd_run, "run the whole study (prepare .. report), skipping stages done for this config"},
    {"config", cmd_config, "config --check FILE: validate a study config and print every resolved value"},
    {"slurm", cmd_slurm, "write (and --submit) sbatch scripts that run the study on a SLURM cluster"},
    {"report", cmd_report, "figures (visualizations/) and a self-contained report/report.html from the results"},
    {"merge-shards", cmd_merge_shards, "join extract --shard I/N outputs into activations/ and captions/"},
};
#define N_COMMANDS (sizeof commands / sizeof commands[0])

static int g_threads = 0;

int cli_has_command(const char *name) {
  for (size_t i = 0; i < N_COMMANDS; i++)
    if (!strcmp(name, commands[i].name)) return 1;
  return 0;
}

int cli_threads(void) { return g_threads; }

int cli_fail(void) {
  const char *m = sc_error_get();
  fprintf(stderr, "saecap: %s\n", m[0] ? m : "unknown error");
  return 1;
}

int cli_usage_error(const char *cmd, const char *fmt, ...) {
  char msg[512];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(msg, sizeof msg, fmt, ap);
  va_end(ap);
  fprintf(stderr, "saecap: %s: %s (see 'saecap %s --help')\n", cmd, msg, cmd);
  return 2;
}

int cli_wants_help(int argc, char **argv) {
  for (int i = 1; i < argc; i++)
    if (!strcmp(argv[i], "-h") || !strcmp(argv[i], "--help")) return 1;
  return 0;
}

int cli_parse_int(const char *s, long long lo, long long hi, long long *out) {
  if (!s || !*s) return -1;
  char *end;
  errno = 0;
  long long v = strtoll(s, &end, 10);
  if (errno || *end || v < lo || v > hi) return -1;
  *out = v;
  return 0;
}

int cli_stage_config(int argc, char **argv, const char *cmd, const char *usage, sc_config *cfg) {
  if (cli_wants_help(argc, argv)) {
    fputs(usage, stdout);
    return 0;
  }
  const char *config_path = NULL;
  for (int i = 1; i < argc; i++) {
    if (!strcmp(argv[i], "--config") && i + 1 < argc) config_path = argv[++i];
    else return cli_usage_error(cmd, "unexpected argument '%s'", argv[i]);
  }
  if (!config_path) return cli_usage_error(cmd, "--config FILE is required");
  sc_kernels_set_threads(cli_threads());
  if (sc_config_load(config_path, cfg)) return cli_fail();
  return -1;
}

static void print_usage(FILE *fp) {
  fprintf(fp,
          "saecap %s: sparse-autoencoder interpretability of Gemma-3 captions (EN/AR)\n\n"
          "usage: saecap [--quiet | --verbose] [--threads N] <command> [options]\n\n"
          "commands:\n",
          SAECAP_VERSION);
  for (size_t i = 0; i < N_COMMANDS; i++)
    fprintf(fp, "  %-12s %s\n", commands[i].name, commands[i].summary);
  fprintf(fp,
          "\nglobal options (anywhere on the line):\n"
          "  -q, --quiet      only errors\n"
          "  -v, --verbose    debug messages\n"
          "  --threads N      worker threads (default: all cores)\n"
          "  --version        print the version\n\n"
          "'saecap <command> --help' describes a command.\n");
}

/* Removes the global options from argv in place; returns the new argc or -1. */
static int take_global_options(int argc, char **argv) {
  int k = 1;
  for (int i = 1; i < argc; i++) {
    const char *a = argv[i];
    if (!strcmp(a, "-q") || !strcmp(a, "--quiet")) {
      sc_log_set_level(SC_LOG_QUIET);
    } else if (!strcmp(a, "-v") || !strcmp(a, "--verbose")) {
      sc_log_set_level(SC_LOG_DEBUG);
    } else if (!strcmp(a, "--threads")) {
      long long n;
      if (i + 1 >= argc || cli_parse_int(argv[i + 1], 1, 4096, &n)) {
        fprintf(stderr, "saecap: --threads needs a number from 1 to 4096\n");
        return -1;
      }
      g_threads = (int)n;
      i++;
    } else {
      argv[k++] = argv[i];
    }
  }
  argv[k] = NULL;
  return k;
}

/* libgomp reads OMP_WAIT_POLICY before main runs. Its default spins idle
 * threads between parallel regions; on a machine whose cores are shared
 * (2-core laptops, CI, busy nodes) a spinning or descheduled thread stalls
 * every barrier, and a decode step has ~15 of them per layer: measured 13%
 * of memory bandwidth with the default against 65-88% with "passive"
 * (docs/notes.md). So run once more with passive unless the user chose. */
static void prefer_passive_omp_wait(char **argv) {
  if (getenv("OMP_WAIT_POLICY")) return;
  if (setenv("OMP_WAIT_POLICY", "passive", 1) != 0) return;
  execv("/proc/self/exe", argv);
  /* exec failed: carry on with the default policy */
}

int main(int argc, char **argv) {
  prefer_passive_omp_wait(argv);
  argc = take_global_options(argc, argv);
  if (argc < 0) return 2;
  if (argc < 2) {
    print_usage(stderr);
    return 2;
  }
  const char *name = argv[1];
  if (!strcmp(name, "-h") || !strcmp(name, "--help") || !strcmp(name, "help")) {
    if (argc > 2) {
      char *help_argv[] = {argv[2], "--help", NULL};
      for (size_t i = 0; i < N_COMMANDS; i++)
        if (!strcmp(argv[2], commands[i].name)) return commands[i].run(2, help_argv);
    }
    print_usage(stdout);
    return 0;
  }
  if (!strcmp(name, "--version")) {
    printf("saecap %s\n", SAECAP_VERSION);
    return 0;
  }
  for (size_t i = 0; i < N_COMMANDS; i++)
    if (!strcmp(name, commands[i].name)) return commands[i].run(argc - 1, argv + 1);
  fprintf(stderr, "saecap: unknown command '%s' (see 'saecap --help')\n", name);
  return 2;
}
