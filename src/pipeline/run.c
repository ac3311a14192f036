/* run.c: the stage runner (see run.h). */
#include "pipeline/run.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

#include "base/error.h"
#include "base/fs.h"
#include "base/log.h"

#define RUN_MAX_ARGS 32

/* Holds <output_dir>/stages/.lock. The stage children inherit the fd (no
 * O_CLOEXEC), so the lock lasts until the run and its running stage are both
 * gone: a rerun cannot start while a killed run's stage is still dying. */
static int lock_output(const sc_config *cfg, int *fd_out) {
  char *dir = sc_path_join(cfg->output_dir, "stages");
  char *path = dir ? sc_path_join(dir, ".lock") : NULL;
  int rc = path ? sc_mkdirs(dir) : sc_error_setc(SC_ERR_NOMEM, "out of memory");
  int fd = -1;
  if (!rc) {
    fd = open(path, O_RDWR | O_CREAT, 0644);
    if (fd < 0) rc = sc_error_setc(SC_ERR_IO, "%s: cannot open: %s", path, strerror(errno));
  }
  if (!rc && flock(fd, LOCK_EX | LOCK_NB)) {
    rc = errno == EWOULDBLOCK
             ? sc_error_setc(SC_ERR_IO, "%s: another saecap run is using %s", path, cfg->output_dir)
             : sc_error_setc(SC_ERR_IO, "%s: cannot lock: %s", path, strerror(errno));
    close(fd);
    fd = -1;
  }
  free(dir);
  free(path);
  *fd_out = fd;
  return rc;
}

/* Runs `exe [global args] <stage> --config FILE`; the child's exit status
 * in *status (128 + signal when killed), -1 when it could not start. */
static int run_stage(const sc_run_opts *o, int stage, int *status) {
  const char *argv[RUN_MAX_ARGS];
  int n = 0;
  argv[n++] = o->exe;
  for (int i = 0; o->global_args && o->global_args[i] && n < RUN_MAX_ARGS - 4; i++)
    argv[n++] = o->global_args[i];
  argv[n++] = sc_stage_name(stage);
  argv[n++] = "--config";
  argv[n++] = o->config_path;
  argv[n] = NULL;
  fflush(stdout);
  fflush(stderr);
  pid_t parent = getpid();
  pid_t pid = fork();
  if (pid < 0) return sc_error_setc(SC_ERR_IO, "run: cannot start '%s %s': %s", o->exe,
                                    sc_stage_name(stage), strerror(errno));
  if (pid == 0) {
    /* Die with the run: a killed run must not leave a stage writing. */
    prctl(PR_SET_PDEATHSIG, SIGKILL);
    if (getppid() != parent) _exit(128 + SIGKILL);
    execv(o->exe, (char *const *)argv);
    fprintf(stderr, "saecap: run: cannot execute %s: %s\n", o->exe, strerror(errno));
    _exit(127);
  }
  int ws;
  while (waitpid(pid, &ws, 0) < 0)
    if (errno != EINTR) return sc_error_setc(SC_ERR_IO, "run: waiting for %s: %s", sc_stage_name(stage), strerror(errno));
  *status = WIFEXITED(ws) ? WEXITSTATUS(ws) : WIFSIGNALED(ws) ? 128 + WTERMSIG(ws) : -1;
  return 0;
}

/* Plans the run: which stages of [from, to] are up to date. Checks first
 * that every stage that must run has a command. */
static int plan(const sc_config *cfg, const sc_run_opts *o, char hash[][SC_STAGE_HASH_LEN],
                sc_stage_state *state, char rec[][SC_STAGE_HASH_LEN], int *up_to_date) {
  for (int s = 0; s < SC_N_STAGES; s++) {
    int rc = sc_stage_hash(cfg, s, hash[s]);
    if (!rc) rc = sc_stage_record_read(cfg, s, &state[s], rec[s]);
    if (rc) return rc;
    up_to_date[s] = state[s] == SC_STAGE_COMPLETE && !strcmp(rec[s], hash[s]);
  }
  for (int s = o->from; s <= o->to; s++) {
    if (o->force) up_to_date[s] = 0;
    if (!up_to_date[s] && o->has_command && !o->has_command(sc_stage_name(s)))
      return sc_error_setc(SC_ERR_ARG,
                           "run: stage '%s' is not in this saecap build (no 'saecap %s' command); "
                           "stop before it with --to %s",
                           sc_stage_name(s), sc_stage_name(s), s > 0 ? sc_stage_name(s - 1) : "prepare");
  }
  for (int s = 0; s < o->from; s++)
    if (!up_to_date[s])
      sc_warn("run: stage %s is not complete for this config; stages from %s may read stale or "
              "missing outputs (run without --from to bring it up to date)",
              sc_stage_name(s), sc_stage_name(o->from));
  return 0;
}

int sc_run(const sc_config *cfg, const sc_run_opts *o, sc_run_summary *sum) {
  memset(sum, 0, sizeof *sum);
  if (o->from < 0 || o->to >= SC_N_STAGES || o->from > o->to)
    return sc_error_setc(SC_ERR_ARG, "run: --from %s comes after --to %s", sc_stage_name(o->from),
                         sc_stage_name(o->to));
  char hash[SC_N_STAGES][SC_STAGE_HASH_LEN], rec[SC_N_STAGES][SC_STAGE_HASH_LEN];
  sc_stage_state state[SC_N_STAGES];
  int up_to_date[SC_N_STAGES];
  int fd = -1;
  int rc = lock_output(cfg, &fd);
  if (!rc) rc = plan(cfg, o, hash, state, rec, up_to_date);
  for (int s = o->from; !rc && s <= o->to; s++) {
    const char *name = sc_stage_name(s);
    if (up_to_date[s]) {
      sc_info("run: %s: up to date (%s), skipped", name, hash[s]);
      sum->skipped[s] = 1;
      continue;
    }
    /* Another config made these outputs (or --force): remove them so the
     * stage starts clean instead of resuming into them. */
    if (o->force || (state[s] != SC_STAGE_NONE && strcmp(rec[s], hash[s]))) {
      sc_info("run: %s: %s; removing its outputs", name,
              o->force ? "--force" : "the config it depends on changed");
      rc = sc_stage_clean(cfg, s);
    } else if (state[s] == SC_STAGE_RUNNING) {
      sc_info("run: %s: resuming an interrupted run", name);
    }
    if (!rc) rc = sc_stage_record_write(cfg, s, SC_STAGE_RUNNING, hash[s]);
    if (rc) break;
    sc_info("run: %s: running 'saecap %s --config %s'", name, name, o->config_path);
    double t0 = sc_time_now();
    int status = -1;
    rc = run_stage(o, s, &status);
    if (!rc && status != 0)
      rc = sc_error_setc(SC_ERR_IO,
                         "run: stage %s failed: 'saecap %s' exited with status %d (its message is "
                         "above); fix the cause and rerun to resume",
                         name, name, status);
    if (rc) break;
    sum->seconds[s] = sc_time_now() - t0;
    sum->ran[s] = 1;
    rc = sc_stage_record_write(cfg, s, SC_STAGE_COMPLETE, hash[s]);
    if (!rc) sc_info("run: %s: done in %.1f s", name, sum->seconds[s]);
  }
  if (fd >= 0) close(fd);
  return rc;
}
