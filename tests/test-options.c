#include <dirent.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>

#include <claudelink.h>

#include "spawn/options.h"
#include "testutil.h"

static clink_options *opts;
static char tmpdir[64];

static void setup(void) {
  ck_assert_int_eq(clink_options_new(&opts), 0);
  strcpy(tmpdir, "/tmp/clink-opts-XXXXXX");
  ck_assert_ptr_nonnull(mkdtemp(tmpdir));
}

static void teardown(void) {
  clink_options_free(opts);
  char cmd[128];
  snprintf(cmd, sizeof(cmd), "rm -rf %s", tmpdir);
  ck_assert_int_eq(system(cmd), 0);
}

static void make_file(const char *name, mode_t mode, char *path, size_t len) {
  snprintf(path, len, "%s/%s", tmpdir, name);
  FILE *f = fopen(path, "w");
  ck_assert_ptr_nonnull(f);
  fputs("#!/bin/sh\n", f);
  fclose(f);
  ck_assert_int_eq(chmod(path, mode), 0);
}

static size_t strv_len(char **v) {
  size_t n = 0;
  while (v[n]) n++;
  return n;
}

static int strv_has(char **v, const char *s) {
  for (; *v; v++)
    if (strcmp(*v, s) == 0) return 1;
  return 0;
}

static const char *env_of(char **env, const char *name) {
  size_t n = strlen(name);
  for (; *env; env++)
    if (strncmp(*env, name, n) == 0 && (*env)[n] == '=') return *env + n + 1;
  return NULL;
}

START_TEST(default_args_are_the_sdk_minimum) {
  char **args;
  ck_assert_int_eq(clink__options_build_args(opts, &args), 0);
  ck_assert_uint_eq(strv_len(args), 5);
  ck_assert_str_eq(args[0], "--output-format");
  ck_assert_str_eq(args[1], "stream-json");
  ck_assert_str_eq(args[2], "--verbose");
  ck_assert_str_eq(args[3], "--input-format");
  ck_assert_str_eq(args[4], "stream-json");
  clink__strv_free(args);
}
END_TEST

START_TEST(values_are_single_tokens) {
  /* A value that looks like a flag must stay a value. */
  ck_assert_int_eq(clink_options_set_resume(opts, "--dangerously-skip-permissions"), 0);
  ck_assert_int_eq(clink_options_set_model(opts, "-m evil"), 0);
  ck_assert_int_eq(clink_options_set_system_prompt(opts, "line1\nline2 \"q\""), 0);
  char **args;
  ck_assert_int_eq(clink__options_build_args(opts, &args), 0);
  ck_assert(strv_has(args, "--resume=--dangerously-skip-permissions"));
  ck_assert(strv_has(args, "--model=-m evil"));
  ck_assert(strv_has(args, "--system-prompt=line1\nline2 \"q\""));
  ck_assert(!strv_has(args, "--dangerously-skip-permissions"));
  clink__strv_free(args);
}
END_TEST

START_TEST(every_option_maps_to_its_flag) {
  ck_assert_int_eq(clink_options_set_append_system_prompt(opts, "extra"), 0);
  ck_assert_int_eq(clink_options_add_tool(opts, "Read"), 0);
  ck_assert_int_eq(clink_options_add_tool(opts, "Bash"), 0);
  ck_assert_int_eq(clink_options_add_allowed_tool(opts, "Read"), 0);
  ck_assert_int_eq(clink_options_add_disallowed_tool(opts, "Write"), 0);
  ck_assert_int_eq(clink_options_set_max_turns(opts, 7), 0);
  ck_assert_int_eq(clink_options_set_fallback_model(opts, "haiku"), 0);
  ck_assert_int_eq(clink_options_set_permission_mode(opts, CLINK_PERMISSION_ACCEPT_EDITS), 0);
  ck_assert_int_eq(clink_options_set_permission_prompt_tool(opts, "stdio"), 0);
  ck_assert_int_eq(clink_options_set_continue(opts, 1), 0);
  ck_assert_int_eq(clink_options_set_session_id(opts, "abc"), 0);
  ck_assert_int_eq(clink_options_set_settings(opts, "{}"), 0);
  ck_assert_int_eq(clink_options_add_dir(opts, "/a"), 0);
  ck_assert_int_eq(clink_options_add_dir(opts, "/b"), 0);
  ck_assert_int_eq(clink_options_set_mcp_config(opts, "{\"mcpServers\":{}}"), 0);
  ck_assert_int_eq(clink_options_set_include_partial_messages(opts, 1), 0);
  ck_assert_int_eq(clink_options_set_fork_session(opts, 1), 0);
  ck_assert_int_eq(clink_options_set_setting_sources(opts, ""), 0);
  ck_assert_int_eq(clink_options_add_extra_arg(opts, "debug", NULL), 0);
  ck_assert_int_eq(clink_options_add_extra_arg(opts, "effort", "high"), 0);
  char **args;
  ck_assert_int_eq(clink__options_build_args(opts, &args), 0);
  const char *want[] = {"--append-system-prompt=extra", "--tools=Read,Bash",
                        "--allowedTools=Read", "--disallowedTools=Write",
                        "--max-turns=7", "--fallback-model=haiku",
                        "--permission-mode=acceptEdits", "--permission-prompt-tool=stdio",
                        "--continue", "--session-id=abc", "--settings={}",
                        "--add-dir=/a", "--add-dir=/b",
                        "--mcp-config={\"mcpServers\":{}}",
                        "--include-partial-messages", "--fork-session",
                        "--setting-sources=", "--debug", "--effort=high"};
  for (size_t i = 0; i < sizeof(want) / sizeof(want[0]); i++)
    ck_assert_msg(strv_has(args, want[i]), "missing %s", want[i]);
  /* --input-format always comes last. */
  size_t n = strv_len(args);
  ck_assert_str_eq(args[n - 2], "--input-format");
  clink__strv_free(args);
}
END_TEST

START_TEST(setters_validate) {
  ck_assert_int_eq(clink_options_new(NULL), UV_EINVAL);
  ck_assert_int_eq(clink_options_set_model(NULL, "x"), UV_EINVAL);
  ck_assert_int_eq(clink_options_set_max_line_bytes(opts, 0), UV_EINVAL);
  ck_assert_int_eq(clink_options_set_write_queue_limits(opts, 0, 1), UV_EINVAL);
  ck_assert_int_eq(clink_options_set_write_queue_limits(opts, 1, 0), UV_EINVAL);
  ck_assert_int_eq(clink_options_set_stderr_tail_bytes(opts, 0), UV_EINVAL);
  ck_assert_int_eq(clink_options_set_env(opts, "A=B", "x"), UV_EINVAL);
  ck_assert_int_eq(clink_options_set_env(opts, "", "x"), UV_EINVAL);
  ck_assert_int_eq(clink_options_add_extra_arg(opts, "--x", NULL), UV_EINVAL);
  ck_assert_int_eq(clink_options_add_extra_arg(opts, "a=b", NULL), UV_EINVAL);
  ck_assert_int_eq(clink_options_add_tool(opts, "a,b"), UV_EINVAL);
  ck_assert_int_eq(clink_options_set_permission_mode(opts, (clink_permission_mode)99),
                   UV_EINVAL);
  ck_assert_int_eq(clink_options_set_cli_path(opts, ""), UV_EINVAL);
  clink_options_free(NULL);
}
END_TEST

START_TEST(dup_is_deep) {
  ck_assert_int_eq(clink_options_set_model(opts, "m1"), 0);
  ck_assert_int_eq(clink_options_add_tool(opts, "Read"), 0);
  ck_assert_int_eq(clink_options_set_env(opts, "K", "V"), 0);
  ck_assert_int_eq(clink_options_add_extra_arg(opts, "flag", NULL), 0);
  clink_options *copy;
  ck_assert_int_eq(clink_options_dup(&copy, opts), 0);
  ck_assert_int_eq(clink_options_set_model(opts, "m2"), 0);
  char **a, **b;
  ck_assert_int_eq(clink__options_build_args(copy, &a), 0);
  ck_assert_int_eq(clink__options_build_args(opts, &b), 0);
  ck_assert(strv_has(a, "--model=m1"));
  ck_assert(strv_has(b, "--model=m2"));
  ck_assert(strv_has(a, "--tools=Read"));
  ck_assert(strv_has(a, "--flag"));
  clink__strv_free(a);
  clink__strv_free(b);
  ck_assert_str_eq(copy->env[0].value, "V");
  ck_assert_ptr_ne(copy->env[0].value, opts->env[0].value);
  clink_options_free(copy);
}
END_TEST

START_TEST(env_rules) {
  char cli[256];
  make_file("claude", 0755, cli, sizeof(cli));
  setenv("CLAUDECODE", "1", 1);
  unsetenv("CLAUDE_CODE_ENTRYPOINT");
  ck_assert_int_eq(clink_options_set_cli_path(opts, cli), 0);
  ck_assert_int_eq(clink_options_set_exec_shim(opts, NULL), 0);
  ck_assert_int_eq(clink_options_set_cwd(opts, tmpdir), 0);
  ck_assert_int_eq(clink_options_set_env(opts, "ADDED", "yes"), 0);
  ck_assert_int_eq(clink_options_set_env(opts, "HOME", NULL), 0);
  clink__spawn_spec spec;
  ck_assert_int_eq(clink__spawn_spec_build(&spec, opts, NULL, 0), 0);
  ck_assert_ptr_null(env_of(spec.env, "CLAUDECODE"));
  ck_assert_ptr_null(env_of(spec.env, "HOME"));
  ck_assert_str_eq(env_of(spec.env, "ADDED"), "yes");
  ck_assert_str_eq(env_of(spec.env, "CLAUDE_CODE_ENTRYPOINT"), "sdk-c");
  ck_assert_str_eq(env_of(spec.env, "CLAUDE_AGENT_SDK_VERSION"),
                   "claudelink-" CLINK_VERSION_STRING);
  ck_assert_str_eq(env_of(spec.env, "PWD"), tmpdir);
  ck_assert_str_eq(spec.file, cli);
  ck_assert_str_eq(spec.argv[0], cli);
  ck_assert_str_eq(spec.cwd, tmpdir);
  clink__spawn_spec_free(&spec);

  /* A caller's entrypoint wins; the version variable is always ours. */
  ck_assert_int_eq(clink_options_set_env(opts, "CLAUDE_CODE_ENTRYPOINT", "mine"), 0);
  ck_assert_int_eq(clink_options_set_env(opts, "CLAUDE_AGENT_SDK_VERSION", "x"), 0);
  ck_assert_int_eq(clink__spawn_spec_build(&spec, opts, NULL, 0), 0);
  ck_assert_str_eq(env_of(spec.env, "CLAUDE_CODE_ENTRYPOINT"), "mine");
  ck_assert_str_eq(env_of(spec.env, "CLAUDE_AGENT_SDK_VERSION"),
                   "claudelink-" CLINK_VERSION_STRING);
  clink__spawn_spec_free(&spec);
}
END_TEST

START_TEST(shim_wraps_the_cli) {
  char cli[256], shim[256];
  make_file("claude", 0755, cli, sizeof(cli));
  make_file("shim", 0755, shim, sizeof(shim));
  ck_assert_int_eq(clink_options_set_cli_path(opts, cli), 0);
  ck_assert_int_eq(clink_options_set_exec_shim(opts, shim), 0);
  clink__spawn_spec spec;
  ck_assert_int_eq(clink__spawn_spec_build(&spec, opts, NULL, 0), 0);
  ck_assert_str_eq(spec.file, shim);
  ck_assert_str_eq(spec.argv[0], shim);
  ck_assert_int_eq(atol(spec.argv[1]), (long)getpid());
  ck_assert_str_eq(spec.argv[2], cli);
  ck_assert_str_eq(spec.argv[3], "--output-format");
  ck_assert_str_eq(spec.cli, cli);
  clink__spawn_spec_free(&spec);
}
END_TEST

START_TEST(discovery_missing_lists_what_was_searched) {
  char path[300];
  snprintf(path, sizeof(path), "PATH=%s/nothing-here:/nonexistent-dir", tmpdir);
  ck_assert_int_eq(clink_options_set_env(opts, "PATH", strchr(path, '=') + 1), 0);
  char home[128];
  snprintf(home, sizeof(home), "%s/home", tmpdir);
  setenv("HOME", home, 1);
  char err[1024];
  clink__spawn_spec spec;
  ck_assert_int_eq(clink__spawn_spec_build(&spec, opts, err, sizeof(err)),
                   CLINK_ECLI_NOT_FOUND);
  ck_assert_msg(strstr(err, "/nonexistent-dir/claude") != NULL, "%s", err);
  ck_assert_msg(strstr(err, "/.npm-global/bin/claude") != NULL, "%s", err);
  ck_assert_msg(strstr(err, "/usr/local/bin/claude") != NULL, "%s", err);
  ck_assert_msg(strstr(err, "install Claude Code") != NULL, "%s", err);

  /* An explicit path is the only place looked at. */
  snprintf(path, sizeof(path), "%s/absent", tmpdir);
  ck_assert_int_eq(clink_options_set_cli_path(opts, path), 0);
  ck_assert_int_eq(clink__spawn_spec_build(&spec, opts, err, sizeof(err)),
                   CLINK_ECLI_NOT_FOUND);
  ck_assert_msg(strstr(err, path) != NULL, "%s", err);
}
END_TEST

START_TEST(discovery_finds_on_path_and_reports_denied) {
  char cli[256];
  make_file("claude", 0644, cli, sizeof(cli));
  ck_assert_int_eq(clink_options_set_env(opts, "PATH", tmpdir), 0);
  ck_assert_int_eq(clink_options_set_exec_shim(opts, NULL), 0);
  setenv("HOME", "/nonexistent-home", 1);
  char err[1024];
  clink__spawn_spec spec;
  ck_assert_int_eq(clink__spawn_spec_build(&spec, opts, err, sizeof(err)),
                   CLINK_ECLI_EXEC_DENIED);
  ck_assert_msg(strstr(err, cli) != NULL, "%s", err);
  ck_assert_int_eq(chmod(cli, 0755), 0);
  ck_assert_int_eq(clink__spawn_spec_build(&spec, opts, err, sizeof(err)), 0);
  ck_assert_str_eq(spec.cli, cli);
  clink__spawn_spec_free(&spec);
}
END_TEST

/* Options: 0 and CLINK_NEVER mean no limit for every timeout setter. */
START_TEST(timeout_setters_accept_zero_and_never) {
  clink_options *o;
  ck_assert_int_eq(clink_options_new(&o), 0);
  uint64_t v[] = {0, CLINK_NEVER, 1};
  for (int i = 0; i < 3; i++) {
    ck_assert_int_eq(clink_options_set_connect_timeout_ms(o, v[i]), 0);
    ck_assert_int_eq(clink_options_set_control_timeout_ms(o, v[i]), 0);
    ck_assert_int_eq(clink_options_set_turn_inactivity_ms(o, v[i]), 0);
    ck_assert_int_eq(clink_options_set_idle_probe(o, v[i], v[i]), 0);
    ck_assert_int_eq(clink_options_set_close_turn_wait_ms(o, v[i]), 0);
    ck_assert_int_eq(clink_options_set_close_grace_ms(o, v[i], v[i]), 0);
  }
  clink_options_free(o);
}
END_TEST

/* exec happens after chdir(cwd): relative paths are made absolute against
 * the directory they were checked in. */
START_TEST(relative_paths_become_absolute) {
  char cli[256], want[300];
  make_file("claude", 0755, cli, sizeof(cli));
  ck_assert_int_eq(mkdir(strcat(strcpy(want, tmpdir), "/bin"), 0755), 0);
  char bin_cli[256];
  make_file("bin/claude", 0755, bin_cli, sizeof(bin_cli));
  int here = open(".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  ck_assert_int_ge(here, 0);
  ck_assert_int_eq(chdir(tmpdir), 0);
  ck_assert_int_eq(clink_options_set_cwd(opts, "/"), 0);

  /* An explicit path, and a shim path. */
  ck_assert_int_eq(clink_options_set_cli_path(opts, "./claude"), 0);
  ck_assert_int_eq(clink_options_set_exec_shim(opts, "bin/claude"), 0);
  clink__spawn_spec spec;
  int rc = clink__spawn_spec_build(&spec, opts, NULL, 0);
  /* Found on a relative PATH entry. */
  clink__spawn_spec spec2;
  ck_assert_int_eq(clink_options_set_cli_path(opts, NULL), 0);
  ck_assert_int_eq(clink_options_set_exec_shim(opts, NULL), 0);
  ck_assert_int_eq(clink_options_set_env(opts, "PATH", "bin"), 0);
  int rc2 = clink__spawn_spec_build(&spec2, opts, NULL, 0);
  ck_assert_int_eq(fchdir(here), 0);
  close(here);

  ck_assert_int_eq(rc, 0);
  ck_assert_str_eq(spec.cli, cli);
  ck_assert_str_eq(spec.argv[2], cli);
  ck_assert_str_eq(spec.file, bin_cli);
  ck_assert_str_eq(spec.argv[0], bin_cli);
  clink__spawn_spec_free(&spec);
  ck_assert_int_eq(rc2, 0);
  ck_assert_str_eq(spec2.cli, bin_cli);
  ck_assert_str_eq(spec2.file, bin_cli);
  clink__spawn_spec_free(&spec2);
}
END_TEST

/* Out of descriptors, processes or memory is transient; a failed exec or
 * chdir is not. */
START_TEST(spawn_errors_keep_resource_exhaustion) {
  static const int keep[] = {UV_EMFILE, UV_ENFILE, UV_EAGAIN, UV_ENOMEM};
  for (size_t i = 0; i < sizeof(keep) / sizeof(keep[0]); i++) {
    ck_assert_int_eq(clink__spawn_error(keep[i]), keep[i]);
    ck_assert_msg(clink_err_is_retryable(keep[i]), "%s", clink_err_name(keep[i]));
  }
  static const int permanent[] = {UV_ENOENT, UV_EACCES, -ENOEXEC, UV_ENOTDIR,
                                  UV_E2BIG,  UV_ELOOP,  UV_EPERM, UV_ETXTBSY};
  for (size_t i = 0; i < sizeof(permanent) / sizeof(permanent[0]); i++)
    ck_assert_int_eq(clink__spawn_error(permanent[i]), CLINK_ESPAWN);
  ck_assert(!clink_err_is_retryable(CLINK_ESPAWN));
}
END_TEST

/* Descriptors open below limit, as clink__fd_headroom() counts them. */
static int fds_below(unsigned long limit) {
  int n = 0;
  DIR *d = opendir("/proc/self/fd");
  ck_assert_ptr_nonnull(d);
  struct dirent *e;
  while ((e = readdir(d)))
    if (e->d_name[0] >= '0' && e->d_name[0] <= '9' && atoi(e->d_name) != dirfd(d) &&
        (unsigned long)atoi(e->d_name) < limit)
      n++;
  closedir(d);
  return n;
}

START_TEST(fd_headroom_says_when_sessions_do_not_fit) {
  char err[512];
  ck_assert_int_eq(clink__fd_headroom(0, err, sizeof(err)), 0);
  struct rlimit saved, low;
  ck_assert_int_eq(getrlimit(RLIMIT_NOFILE, &saved), 0);
  /* A soft limit with room for exactly 10 sessions. */
  unsigned long limit = 1000;
  for (int i = 0; i < 5; i++)
    limit = (unsigned long)fds_below(limit) + 10 * CLINK__FDS_PER_SESSION + CLINK__FDS_SPAWN_EXTRA;
  low = saved;
  low.rlim_cur = limit;
  ck_assert_int_eq(setrlimit(RLIMIT_NOFILE, &low), 0);
  int fit = clink__fd_headroom(10, err, sizeof(err));
  int over = clink__fd_headroom(11, err, sizeof(err));
  char msg[512];
  strcpy(msg, err);
  int huge = clink__fd_headroom(SIZE_MAX, NULL, 0);
  ck_assert_int_eq(setrlimit(RLIMIT_NOFILE, &saved), 0);
  ck_assert_int_eq(fit, 0);
  ck_assert_int_eq(over, UV_EMFILE);
  ck_assert_int_eq(huge, UV_EMFILE);
  ck_assert_msg(strstr(msg, "11 more sessions") != NULL, "%s", msg);
  ck_assert_msg(strstr(msg, "RLIMIT_NOFILE") != NULL, "%s", msg);
  ck_assert_msg(strstr(msg, "room for 10 sessions") != NULL, "%s", msg);
  ck_assert_msg(strstr(msg, "ulimit -n") != NULL, "%s", msg);
}
END_TEST

int main(void) {
  Suite *s = suite_create("options");
  TCase *tc = tcase_create("argv");
  tcase_add_checked_fixture(tc, setup, teardown);
  tcase_add_test(tc, default_args_are_the_sdk_minimum);
  tcase_add_test(tc, values_are_single_tokens);
  tcase_add_test(tc, every_option_maps_to_its_flag);
  tcase_add_test(tc, setters_validate);
  tcase_add_test(tc, dup_is_deep);
  suite_add_tcase(s, tc);
  tc = tcase_create("spawn-spec");
  tcase_add_checked_fixture(tc, setup, teardown);
  tcase_add_test(tc, env_rules);
  tcase_add_test(tc, shim_wraps_the_cli);
  tcase_add_test(tc, discovery_missing_lists_what_was_searched);
  tcase_add_test(tc, discovery_finds_on_path_and_reports_denied);
  tcase_add_test(tc, timeout_setters_accept_zero_and_never);
  tcase_add_test(tc, relative_paths_become_absolute);
  tcase_add_test(tc, spawn_errors_keep_resource_exhaustion);
  tcase_add_test(tc, fd_headroom_says_when_sessions_do_not_fit);
  suite_add_tcase(s, tc);
  return clink_test_run(s);
}
