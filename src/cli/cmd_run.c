/* cmd_run.c: `saecap run --config FILE [--from STAGE] [--to STAGE] [--force]`. */
#include <stdio.h>
#include <string.h>

#include "base/log.h"
#include "cli/cli.h"
#include "pipeline/check.h"
#include "pipeline/config.h"
#include "pipeline/run.h"
#include "pipeline/stage.h"

static const char *const usage =
    "usage: saecap run --config FILE [--from STAGE] [--to STAGE] [--force]\n\n"
    "Runs the whole study: prepare, extract, train, sae-eval, analyze, steer, report, each as\n"
    "'saecap <stage> --config FILE'. A stage already completed for this config is skipped\n"
    "(records in <output_dir>/stages/<stage>.json hold a hash of the config sections the stage\n"
    "and its upstream stages read). When those sections change, exactly the affected stages\n"
    "run again, their old outputs removed first; the others are skipped. An interrupted run\n"
    "(even kill -9) resumes where it stopped and ends with the same bytes.\n\n"
    "options:\n"
    "  --config FILE   study config (YAML)\n"
    "  --from STAGE    first stage to consider (default prepare)\n"
    "  --to STAGE      last stage to run (default report)\n"
    "  --force         rerun the stages from --from to --to even if up to date\n"
    "  -h, --help      this text\n\n"
    "The config is checked first as by 'saecap config --check'. Global options (--quiet,\n"
    "--verbose, --threads N) are passed on to every stage.\n";

int cmd_run(int argc, char **argv) {
  if (cli_wants_help(argc, argv)) {
    fputs(usage, stdout);
    return 0;
  }
  sc_run_opts o = {.from = 0, .to = SC_N_STAGES - 1, .exe = "/proc/self/exe"};
  for (int i = 1; i < argc; i++) {
    int *which = !strcmp(argv[i], "--from") ? &o.from : !strcmp(argv[i], "--to") ? &o.to : NULL;
    if (!strcmp(argv[i], "--config") && i + 1 < argc) o.config_path = argv[++i];
    else if (which && i + 1 < argc) {
      *which = sc_stage_parse(argv[++i]);
      if (*which < 0)
        return cli_usage_error("run", "%s: '%s' is not a stage (prepare, extract, train, sae-eval, "
                                      "analyze, steer, report)", argv[i - 1], argv[i]);
    } else if (!strcmp(argv[i], "--force")) o.force = 1;
    else return cli_usage_error("run", "unexpected argument '%s'", argv[i]);
  }
  if (!o.config_path) return cli_usage_error("run", "--config FILE is required");
  if (o.from > o.to)
    return cli_usage_error("run", "--from %s comes after --to %s", sc_stage_name(o.from), sc_stage_name(o.to));
  /* The stages log as this run does and use as many threads. */
  char threads[24];
  const char *globals[4] = {NULL};
  int ng = 0;
  if (sc_log_get_level() == SC_LOG_QUIET) globals[ng++] = "--quiet";
  else if (sc_log_get_level() >= SC_LOG_DEBUG) globals[ng++] = "--verbose";
  if (cli_threads() > 0) {
    snprintf(threads, sizeof threads, "%d", cli_threads());
    globals[ng++] = "--threads";
    globals[ng++] = threads;
  }
  o.global_args = globals;
  o.has_command = cli_has_command;
  sc_config cfg;
  if (sc_config_load(o.config_path, &cfg)) return cli_fail();
  /* What `config --check` finds would otherwise surface stages later. */
  sc_run_summary sum;
  int rc = sc_config_check(&cfg);
  if (!rc) rc = sc_run(&cfg, &o, &sum);
  if (!rc) {
    int ran = 0, skipped = 0;
    for (int s = 0; s < SC_N_STAGES; s++) ran += sum.ran[s], skipped += sum.skipped[s];
    sc_info("run: %d stages ran, %d up to date; outputs under %s", ran, skipped, cfg.output_dir);
  }
  sc_config_free(&cfg);
  return rc ? cli_fail() : 0;
}
