/* cli.h: the saecap subcommands. Each takes argv after the command name
 * (argv[0] is the command name), prints only here in cli/, and returns the
 * process exit status: 0 ok, 1 failure (message already printed), 2 usage. */
#ifndef SC_CLI_H
#define SC_CLI_H

int cmd_prepare(int argc, char **argv);
int cmd_tiny_model(int argc, char **argv);
int cmd_inspect(int argc, char **argv);
int cmd_tokenize(int argc, char **argv);
int cmd_forward(int argc, char **argv);
int cmd_generate(int argc, char **argv);
int cmd_caption(int argc, char **argv);
int cmd_sae_encode(int argc, char **argv);
int cmd_extract(int argc, char **argv);
int cmd_run(int argc, char **argv);
int cmd_config(int argc, char **argv);
int cmd_slurm(int argc, char **argv);
int cmd_merge_shards(int argc, char **argv);
int cmd_report(int argc, char **argv);
int cmd_train(int argc, char **argv);
int cmd_sae_eval(int argc, char **argv);
int cmd_gender_words(int argc, char **argv);
int cmd_steer(int argc, char **argv);
int cmd_analyze(int argc, char **argv);

/* Prints "saecap: <sc_error_get()>" on one line and returns 1. */
int cli_fail(void);
/* Prints "saecap: <cmd>: <msg>" plus a hint to --help and returns 2. */
int cli_usage_error(const char *cmd, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* 1 if argv holds -h or --help. */
int cli_wants_help(int argc, char **argv);
/* Parses a non-negative integer option value into *out; 0 ok, -1 bad. */
int cli_parse_int(const char *s, long long lo, long long hi, long long *out);

/* 1 if saecap has the subcommand `name` (saecap run checks its stages). */
int cli_has_command(const char *name);

struct sc_config;
/* The start of a stage command whose only option is --config FILE: prints
 * usage for --help, parses argv, sets the kernels' thread count and loads
 * the config into *cfg. Returns -1 when *cfg is loaded (the caller runs the
 * stage, then sc_config_free), else the exit status to return: 0 after
 * --help, 2 for a usage error, 1 for a config that does not load. */
int cli_stage_config(int argc, char **argv, const char *cmd, const char *usage, struct sc_config *cfg);

/* Global settings taken by main before dispatch. */
int cli_threads(void);

#endif
