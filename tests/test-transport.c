/* The subprocess transport against the fake CLI. No sleeps: every test runs
 * the loop until nothing is left and then counts what happened. */
#include <dirent.h>
#include <dlfcn.h>
#include <fcntl.h>
#include <limits.h>
#include <libgen.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>
#if __has_include(<sys/pidfd.h>)
#include <sys/pidfd.h>
#define HAVE_PIDFD_WRAPPERS 1
#endif
#if __has_include(<valgrind/valgrind.h>)
#include <valgrind/valgrind.h>
#else
#define RUNNING_ON_VALGRIND 0
#endif

#include <claudelink.h>

#include "spawn/options.h"
#include "testutil.h"
#include "io/transport.h"

typedef struct rec {
  uv_loop_t loop;
  clink__transport *t;
  int lines, assistant, results, control_responses, inits;
  int long_lines, stderr_lines, drains, exits, closes;
  int64_t exit_status;
  int term_signal;
  int write_ok, write_err, last_write_status;
  int close_on_line, close_on_exit, close_on_write, close_on_drain;
  int close_on_write_error, write_on_line, stop_on_result, trim_on_result;
  int trim_rc;
  size_t heap_at_result;
  uint64_t total_len;
  char first_prefix[80];
} rec;

static rec R;
static clink_options *opts;

static void on_closed(void *ud) { ((rec *)ud)->closes++; }

static void do_close(rec *r) { ck_assert_int_eq(clink__transport_close(r->t, on_closed, r), 0); }

static int has(const char *line, size_t len, const char *needle) {
  return memmem(line, len, needle, strlen(needle)) != NULL;
}

static void on_write(void *ud, int status) {
  rec *r = ud;
  if (status == 0)
    r->write_ok++;
  else
    r->write_err++;
  r->last_write_status = status;
  if (r->close_on_write && status == 0) do_close(r);
  if (r->close_on_write_error && status != 0) do_close(r);
}

static void on_line(void *ud, const char *line, size_t len) {
  rec *r = ud;
  r->lines++;
  if (has(line, len, "\"type\":\"assistant\"")) r->assistant++;
  if (has(line, len, "\"type\":\"result\"")) r->results++;
  if (has(line, len, "\"type\":\"control_response\"")) r->control_responses++;
  if (has(line, len, "\"subtype\":\"init\"")) r->inits++;
  ck_assert_ptr_null(memchr(line, '\n', len));
  if (r->write_on_line && r->lines == r->write_on_line)
    ck_assert_int_eq(clink__transport_write(r->t, "{}", 2, on_write, r), 0);
  if (has(line, len, "\"type\":\"result\"")) {
    r->heap_at_result = clink__transport_heap_bytes(r->t);
    if (r->trim_on_result) r->trim_rc = clink__transport_trim(r->t);
    if (r->stop_on_result) uv_stop(&r->loop);
  }
  if (r->close_on_line && r->lines == r->close_on_line) do_close(r);
}

static void on_line_error(void *ud, int err, const char *prefix, size_t plen, uint64_t total) {
  rec *r = ud;
  ck_assert_int_eq(err, CLINK_ELINE_TOO_LONG);
  r->long_lines++;
  r->total_len = total;
  memcpy(r->first_prefix, prefix, plen < 79 ? plen : 79);
}

static void on_stderr_line(void *ud, const char *line, size_t len) { ((rec *)ud)->stderr_lines++; }

static void on_drain(void *ud) {
  rec *r = ud;
  r->drains++;
  if (r->close_on_drain) do_close(r);
}

static void on_exit_cb(void *ud, int64_t status, int sig) {
  rec *r = ud;
  r->exits++;
  r->exit_status = status;
  r->term_signal = sig;
  if (r->close_on_exit) do_close(r);
}


/* ------------------------------------------------------------ interposed */

/* Signals sent, as seen at the system calls: the library's own calls and
 * libuv's (uv_kill, uv_process_kill) both reach these definitions first. */
static struct {
  int armed;
  pid_t leader;
  int group_term, group_kill, leader_alone;
} sigs;

static void count_signal(int to_group, int sig) {
  if (!sigs.armed || sig == 0) return;
  if (!to_group)
    sigs.leader_alone++;
  else if (sig == SIGTERM)
    sigs.group_term++;
  else if (sig == SIGKILL)
    sigs.group_kill++;
}

int kill(pid_t pid, int sig) {
  static int (*real)(pid_t, int);
  if (real == NULL) *(void **)&real = dlsym(RTLD_NEXT, "kill");
  if (sigs.leader != 0 && (pid == sigs.leader || pid == -sigs.leader))
    count_signal(pid < 0, sig);
  return real(pid, sig);
}

#ifdef HAVE_PIDFD_WRAPPERS
int pidfd_send_signal(int fd, int sig, siginfo_t *info, unsigned int flags) {
  static int (*real)(int, int, siginfo_t *, unsigned int);
  if (real == NULL) *(void **)&real = dlsym(RTLD_NEXT, "pidfd_send_signal");
  count_signal((flags & (1U << 2)) != 0, sig); /* PIDFD_SIGNAL_PROCESS_GROUP */
  return real(fd, sig, info, flags);
}
#endif

/* uv_poll_stop() that changes errno, as an epoll_ctl() failure inside it
 * would: the write path must have saved the errno it reports. */
static int clobber_errno;

int uv_poll_stop(uv_poll_t *h) {
  static int (*real)(uv_poll_t *);
  if (real == NULL) *(void **)&real = dlsym(RTLD_NEXT, "uv_poll_stop");
  int rc = real(h);
  if (clobber_errno) errno = EBADF;
  return rc;
}

static const clink__transport_cbs CBS = {on_line, on_line_error, on_stderr_line, on_drain,
                                         on_exit_cb};

static void setup(void) {
  memset(&R, 0, sizeof(R));
  ck_assert_int_eq(uv_loop_init(&R.loop), 0);
  ck_assert_int_eq(clink_options_new(&opts), 0);
  ck_assert_int_eq(clink_options_set_cli_path(opts, clink_test_fake_cli()), 0);
  ck_assert_int_eq(clink_options_set_exec_shim(opts, clink_test_exec_shim()), 0);
  ck_assert_int_eq(clink_options_set_close_grace_ms(opts, 2000, 2000), 0);
}

static void teardown(void) {
  clink_options_free(opts);
  CLINK_TEST_LOOP_DONE(&R.loop);
}

static void fake_env(const char *name, const char *value) {
  ck_assert_int_eq(clink_options_set_env(opts, name, value), 0);
}

static int spawn(void) {
  clink__spawn_spec spec;
  char err[512];
  int rc = clink__spawn_spec_build(&spec, opts, err, sizeof(err));
  ck_assert_msg(rc == 0, "spec: %s", err);
  rc = clink__transport_spawn(&R.t, &R.loop, &spec, &CBS, &R, err, sizeof(err));
  clink__spawn_spec_free(&spec);
  return rc;
}

static void send_line(const char *s) {
  ck_assert_int_eq(clink__transport_write(R.t, s, strlen(s), on_write, &R), 0);
}

#define INIT_LINE \
  "{\"type\":\"control_request\",\"request_id\":\"req_1\",\"request\":{\"subtype\":\"initialize\",\"hooks\":null}}"
#define USER_LINE \
  "{\"type\":\"user\",\"session_id\":\"\",\"message\":{\"role\":\"user\",\"content\":\"hi\"},\"parent_tool_use_id\":null}"

START_TEST(one_turn_then_eof_exit) {
  fake_env("FAKE_MSGS", "5");
  ck_assert_int_eq(spawn(), 0);
  ck_assert_int_gt(clink__transport_pid(R.t), 0);
  send_line(INIT_LINE);
  send_line(USER_LINE);
  ck_assert_int_eq(clink__transport_end_input(R.t), 0);
  /* Nothing is delivered inside the calls. */
  ck_assert_int_eq(R.write_ok, 0);
  R.close_on_exit = 1;
  uv_run(&R.loop, UV_RUN_DEFAULT);
  ck_assert_int_eq(R.write_ok, 2);
  ck_assert_int_eq(R.control_responses, 1);
  ck_assert_int_eq(R.inits, 1);
  ck_assert_int_eq(R.assistant, 5);
  ck_assert_int_eq(R.results, 1);
  ck_assert_int_eq(R.exits, 1);
  ck_assert_int_eq(R.exit_status, 0);
  ck_assert_int_eq(R.term_signal, 0);
  ck_assert_int_eq(R.closes, 1);
}
END_TEST

START_TEST(many_turns_one_process) {
  fake_env("FAKE_MSGS", "3");
  ck_assert_int_eq(spawn(), 0);
  send_line(INIT_LINE);
  for (int i = 0; i < 20; i++) send_line(USER_LINE);
  ck_assert_int_eq(clink__transport_end_input(R.t), 0);
  R.close_on_exit = 1;
  uv_run(&R.loop, UV_RUN_DEFAULT);
  ck_assert_int_eq(R.results, 20);
  ck_assert_int_eq(R.assistant, 60);
  ck_assert_int_eq(R.closes, 1);
}
END_TEST

START_TEST(over_long_line_is_skipped_and_stream_resyncs) {
  fake_env("FAKE_LONG_LINE", "300000");
  ck_assert_int_eq(clink_options_set_max_line_bytes(opts, 100000), 0);
  ck_assert_int_eq(spawn(), 0);
  send_line(USER_LINE);
  ck_assert_int_eq(clink__transport_end_input(R.t), 0);
  R.close_on_exit = 1;
  uv_run(&R.loop, UV_RUN_DEFAULT);
  ck_assert_int_eq(R.long_lines, 1);
  ck_assert_uint_eq(R.total_len, 300000);
  ck_assert_int_eq(R.first_prefix[0], '{');
  ck_assert_int_eq(R.results, 1); /* the line after it arrived intact */
  ck_assert_int_eq(R.exits, 1);
}
END_TEST

START_TEST(garbage_and_blank_lines) {
  fake_env("FAKE_GARBAGE", "1");
  ck_assert_int_eq(spawn(), 0);
  send_line(USER_LINE);
  ck_assert_int_eq(clink__transport_end_input(R.t), 0);
  R.close_on_exit = 1;
  uv_run(&R.loop, UV_RUN_DEFAULT);
  ck_assert_int_eq(R.results, 1);
  /* init + garbage lines + keep_alive + assistant + result; blank skipped. */
  ck_assert_int_ge(R.lines, 5);
  ck_assert_int_eq(R.exit_status, 0);
}
END_TEST

START_TEST(stderr_flood_is_bounded) {
  fake_env("FAKE_STDERR_FLOOD", "2000000");
  ck_assert_int_eq(clink_options_set_stderr_tail_bytes(opts, 1000), 0);
  ck_assert_int_eq(spawn(), 0);
  send_line(USER_LINE);
  ck_assert_int_eq(clink__transport_end_input(R.t), 0);
  uv_run(&R.loop, UV_RUN_DEFAULT);
  ck_assert_int_eq(R.results, 1);
  ck_assert_int_gt(R.stderr_lines, 10000);
  char tail[4096];
  size_t n = clink__transport_stderr_tail(R.t, tail, sizeof(tail));
  ck_assert_uint_eq(n, 1000);
  ck_assert_uint_eq(strlen(tail), 1000);
  /* A small buffer gets the newest bytes. */
  char small[11];
  ck_assert_uint_eq(clink__transport_stderr_tail(R.t, small, sizeof(small)), 10);
  ck_assert_str_eq(small, tail + 990);
  do_close(&R);
  uv_run(&R.loop, UV_RUN_DEFAULT);
  ck_assert_int_eq(R.closes, 1);
}
END_TEST

START_TEST(crash_by_signal_and_by_exit_code) {
  fake_env("FAKE_CRASH_AFTER", "2");
  fake_env("FAKE_CRASH_SIGNAL", "9");
  fake_env("FAKE_MSGS", "10");
  ck_assert_int_eq(spawn(), 0);
  send_line(USER_LINE);
  R.close_on_exit = 1;
  uv_run(&R.loop, UV_RUN_DEFAULT);
  ck_assert_int_eq(R.assistant, 2);
  ck_assert_int_eq(R.exits, 1);
  ck_assert_int_eq(R.term_signal, SIGKILL);
  ck_assert_int_eq(R.closes, 1);

  memset(&R.lines, 0, sizeof(R) - offsetof(rec, lines));
  fake_env("FAKE_CRASH_SIGNAL", NULL);
  fake_env("FAKE_CRASH_EXIT", "3");
  ck_assert_int_eq(spawn(), 0);
  send_line(USER_LINE);
  R.close_on_exit = 1;
  uv_run(&R.loop, UV_RUN_DEFAULT);
  ck_assert_int_eq(R.exits, 1);
  ck_assert_int_eq(R.exit_status, 3);
  ck_assert_int_eq(R.term_signal, 0);
}
END_TEST

START_TEST(write_to_dead_child_is_an_error_not_sigpipe) {
  signal(SIGPIPE, SIG_DFL); /* a SIGPIPE would kill this test */
  fake_env("FAKE_EXIT_IMMEDIATELY", "0");
  ck_assert_int_eq(spawn(), 0);
  /* Large writes so some are still queued when the peer is gone. */
  static char big[200000];
  memset(big, 'x', sizeof(big));
  for (int i = 0; i < 50; i++)
    ck_assert_int_eq(clink__transport_write(R.t, big, sizeof(big), on_write, &R), 0);
  uv_run(&R.loop, UV_RUN_DEFAULT);
  ck_assert_int_eq(R.exits, 1);
  ck_assert_int_gt(R.write_err, 0);
  ck_assert_int_eq(R.write_ok + R.write_err, 50);
  ck_assert_msg(R.last_write_status == UV_EPIPE || R.last_write_status == CLINK_EEXITED,
                "%s", clink_err_name(R.last_write_status));
  /* After the exit, writes fail at once. */
  ck_assert_int_eq(clink__transport_write(R.t, "{}", 2, on_write, &R), CLINK_EEXITED);
  do_close(&R);
  uv_run(&R.loop, UV_RUN_DEFAULT);
  ck_assert_int_eq(R.closes, 1);
}
END_TEST

START_TEST(close_escalates_to_sigkill) {
  fake_env("FAKE_IGNORE_SIGTERM", "1");
  fake_env("FAKE_HANG_AFTER", "0");
  ck_assert_int_eq(clink_options_set_close_grace_ms(opts, 30, 30), 0);
  ck_assert_int_eq(spawn(), 0);
  int pid = clink__transport_pid(R.t);
  send_line(INIT_LINE);
  send_line(USER_LINE);
  /* Close once the fake is surely running (it has ignored SIGTERM by then). */
  R.close_on_line = 2;
  memset(&sigs, 0, sizeof(sigs));
  sigs.leader = pid;
  sigs.armed = 1;
  uint64_t t0 = uv_hrtime();
  uv_run(&R.loop, UV_RUN_DEFAULT);
  uint64_t ms = (uv_hrtime() - t0) / 1000000;
  sigs.armed = 0;
  ck_assert_int_eq(R.closes, 1);
  /* Each step signals the group once; the leader is in it. */
  ck_assert_int_eq(sigs.group_term, 1);
  ck_assert_int_eq(sigs.group_kill, 1);
  ck_assert_int_eq(sigs.leader_alone, 0);
  ck_assert_int_eq(R.exits, 0); /* exit after close is not reported */
  ck_assert_uint_ge(ms, 60);    /* both grace periods ran (lower bound only) */
  /* Reaped by libuv: not our zombie. */
  ck_assert_int_eq(waitpid(pid, NULL, WNOHANG), -1);
}
END_TEST

START_TEST(close_sends_eof_first) {
  /* A healthy child exits on EOF within the grace period: no signal needed. */
  ck_assert_int_eq(clink_options_set_close_grace_ms(opts, 10000, 10000), 0);
  ck_assert_int_eq(spawn(), 0);
  send_line(INIT_LINE);
  R.close_on_line = 1;
  uint64_t t0 = uv_hrtime();
  uv_run(&R.loop, UV_RUN_DEFAULT);
  uint64_t ms = (uv_hrtime() - t0) / 1000000;
  ck_assert_int_eq(R.closes, 1);
  ck_assert_uint_lt(ms, 10000);
}
END_TEST

START_TEST(close_cancels_pending_writes_and_is_deferred) {
  fake_env("FAKE_STARTUP_DELAY_MS", "200");
  ck_assert_int_eq(clink_options_set_close_grace_ms(opts, 0, 1000), 0);
  ck_assert_int_eq(spawn(), 0);
  for (int i = 0; i < 5; i++) send_line(USER_LINE);
  do_close(&R);
  ck_assert_int_eq(clink__transport_close(R.t, on_closed, &R), UV_EBUSY);
  ck_assert_int_eq(clink__transport_write(R.t, "{}", 2, on_write, &R), CLINK_ECLOSING);
  ck_assert_int_eq(R.closes, 0);
  ck_assert_int_eq(R.write_err, 0);
  uv_run(&R.loop, UV_RUN_DEFAULT);
  ck_assert_int_eq(R.closes, 1);
  ck_assert_int_eq(R.write_err, 5);
  ck_assert_int_eq(R.last_write_status, UV_ECANCELED);
  ck_assert_int_eq(R.lines, 0);
}
END_TEST

START_TEST(close_from_line_callback_stops_delivery) {
  fake_env("FAKE_MSGS", "1000");
  ck_assert_int_eq(spawn(), 0);
  send_line(USER_LINE);
  R.close_on_line = 3;
  uv_run(&R.loop, UV_RUN_DEFAULT);
  ck_assert_int_eq(R.lines, 3);
  ck_assert_int_eq(R.closes, 1);
}
END_TEST

START_TEST(write_queue_limit_and_drain) {
  ck_assert_int_eq(clink_options_set_write_queue_limits(opts, 1 << 20, 2), 0);
  ck_assert_int_eq(spawn(), 0);
  send_line(INIT_LINE);
  send_line(USER_LINE);
  ck_assert_int_eq(clink__transport_write(R.t, "{}", 2, on_write, &R), CLINK_EWRITE_QUEUE_FULL);
  size_t bytes, lines;
  clink__transport_write_queue(R.t, &bytes, &lines);
  ck_assert_uint_eq(lines, 2);
  ck_assert_uint_eq(bytes, strlen(INIT_LINE) + strlen(USER_LINE) + 2);
  ck_assert_int_eq(clink__transport_write(R.t, "a\nb", 3, on_write, &R), UV_EINVAL);
  ck_assert_int_eq(clink__transport_write(R.t, "", 0, on_write, &R), UV_EINVAL);
  R.close_on_drain = 1;
  uv_run(&R.loop, UV_RUN_DEFAULT);
  ck_assert_int_eq(R.drains, 1);
  ck_assert_int_eq(R.write_ok, 2);
  ck_assert_int_eq(R.closes, 1);
}
END_TEST

START_TEST(exec_failure_is_a_return_value) {
  clink__spawn_spec spec;
  ck_assert_int_eq(clink_options_set_exec_shim(opts, NULL), 0);
  ck_assert_int_eq(clink__spawn_spec_build(&spec, opts, NULL, 0), 0);
  /* Bypass discovery: exec itself must fail. */
  free(spec.file);
  spec.file = strdup("/nonexistent/claude");
  char err[512];
  int rc = clink__transport_spawn(&R.t, &R.loop, &spec, &CBS, &R, err, sizeof(err));
  ck_assert_int_eq(rc, CLINK_ESPAWN);
  ck_assert_msg(strstr(err, "/nonexistent/claude") != NULL, "%s", err);
  clink__spawn_spec_free(&spec);

  /* A missing working directory fails the same way. */
  ck_assert_int_eq(clink_options_set_cwd(opts, "/nonexistent-dir"), 0);
  ck_assert_int_eq(clink__spawn_spec_build(&spec, opts, NULL, 0), 0);
  rc = clink__transport_spawn(&R.t, &R.loop, &spec, &CBS, &R, err, sizeof(err));
  ck_assert_int_eq(rc, CLINK_ESPAWN);
  ck_assert_msg(strstr(err, "/nonexistent-dir") != NULL, "%s", err);
  clink__spawn_spec_free(&spec);
  /* teardown checks that the internal handles closed. */
}
END_TEST

START_TEST(exec_shim_passes_argv_and_env) {
  fake_env("FAKE_PRINT_ARGV", "1");
  setenv("CLAUDECODE", "1", 1); /* inherited: must not reach the child */
  ck_assert_int_eq(clink_options_set_model(opts, "--evil"), 0);
  ck_assert_int_eq(spawn(), 0);
  ck_assert_int_eq(clink__transport_end_input(R.t), 0);
  uv_run(&R.loop, UV_RUN_DEFAULT);
  char tail[8192];
  clink__transport_stderr_tail(R.t, tail, sizeof(tail));
  ck_assert_msg(strstr(tail, "\"--model=--evil\"") != NULL, "%s", tail);
  ck_assert_msg(strstr(tail, "\"CLAUDE_CODE_ENTRYPOINT\":\"sdk-c\"") != NULL, "%s", tail);
  ck_assert_msg(strstr(tail, "\"CLAUDECODE\":null") != NULL, "%s", tail);
  ck_assert_int_eq(R.exit_status, 0);
  do_close(&R);
  uv_run(&R.loop, UV_RUN_DEFAULT);
}
END_TEST

/* ------------------------------------------------------------- memory */

/* An idle session gives back what a big line made it take (a turn carried
 * an 8 MB tool result): the trim asked for from the line callback happens as
 * soon as that callback returns. */
START_TEST(trim_after_an_8mb_line_gives_memory_back) {
  fake_env("FAKE_LONG_LINE", "8000000");
  ck_assert_int_eq(spawn(), 0);
  size_t heap0 = clink__transport_heap_bytes(R.t);
  send_line(INIT_LINE);
  send_line(USER_LINE);
  R.stop_on_result = 1;
  R.trim_on_result = 1;
  uv_run(&R.loop, UV_RUN_DEFAULT);
  ck_assert_int_eq(R.results, 1);
  ck_assert_uint_gt(R.heap_at_result, 8000000);
  ck_assert_int_eq(R.trim_rc, UV_EBUSY); /* from a line callback: deferred */
  size_t heap1 = clink__transport_heap_bytes(R.t);
  printf("transport heap: %zu B at start, %zu B after the 8 MB line, %zu B after trim\n", heap0,
         R.heap_at_result, heap1);
  ck_assert_uint_le(heap1, 16 * 1024);
  ck_assert_uint_eq(heap1, heap0);

  /* The next turn works, and a trim from outside any callback is at once. */
  R.trim_on_result = 0;
  send_line(USER_LINE);
  uv_run(&R.loop, UV_RUN_DEFAULT);
  ck_assert_int_eq(R.results, 2);
  ck_assert_uint_gt(clink__transport_heap_bytes(R.t), 8000000);
  ck_assert_int_eq(clink__transport_trim(R.t), 0);
  ck_assert_uint_eq(clink__transport_heap_bytes(R.t), heap0);
  do_close(&R);
  uv_run(&R.loop, UV_RUN_DEFAULT);
  ck_assert_int_eq(R.closes, 1);
}
END_TEST

/* -------------------------------------------------------- process group */

static char script_path[64], pid_path[64];

/* A CLI wrapper: starts a long-lived helper in its process group (as MCP
 * servers and Bash tool children are), records its pid, becomes the fake. */
static void use_cli_with_helper(int helper_ignores_term) {
  strcpy(pid_path, "/tmp/clink-helper-pid-XXXXXX");
  int fd = mkstemp(pid_path);
  ck_assert_int_ge(fd, 0);
  close(fd);
  strcpy(script_path, "/tmp/clink-cli-XXXXXX");
  fd = mkstemp(script_path);
  ck_assert_int_ge(fd, 0);
  FILE *f = fdopen(fd, "w");
  ck_assert_ptr_nonnull(f);
  fprintf(f,
          "#!/bin/sh\n"
          "(%s exec sleep 1000) </dev/null >/dev/null 2>&1 &\n"
          "echo $! > '%s'\n"
          "exec '%s' \"$@\"\n",
          helper_ignores_term ? "trap '' TERM;" : "", pid_path, clink_test_fake_cli());
  ck_assert_int_eq(fchmod(fd, 0700), 0);
  ck_assert_int_eq(fclose(f), 0);
  ck_assert_int_eq(clink_options_set_cli_path(opts, script_path), 0);
  /* Orphans come to us, so we can see them die (and reap them). */
  ck_assert_int_eq(prctl(PR_SET_CHILD_SUBREAPER, 1), 0);
}

static pid_t helper_pid(void) {
  FILE *f = fopen(pid_path, "r");
  ck_assert_ptr_nonnull(f);
  int pid = 0;
  ck_assert_int_eq(fscanf(f, "%d", &pid), 1);
  fclose(f);
  ck_assert_int_gt(pid, 1);
  return pid;
}

/* The helper is not libuv's child: a bounded wait on it is the only way to
 * see it go. Returns 1 with its status once reaped, 0 if still there. */
static int wait_gone(pid_t pid, int *status) {
  uint64_t deadline = uv_hrtime() + 3000000000ULL;
  while (uv_hrtime() < deadline) {
    if (waitpid(pid, status, WNOHANG) == pid) return 1;
    sched_yield();
  }
  return 0;
}

static void expect_helper_killed_by(int sig) {
  pid_t helper = helper_pid();
  int st = 0;
  int gone = wait_gone(helper, &st);
  if (!gone) { /* don't leave it behind */
    kill(helper, SIGKILL);
    waitpid(helper, NULL, 0);
  }
  unlink(script_path);
  unlink(pid_path);
  ck_assert_msg(gone, "the helper outlived the CLI");
  ck_assert_msg(WIFSIGNALED(st) && WTERMSIG(st) == sig, "helper status %d, want signal %d", st,
                sig);
}

START_TEST(close_ends_the_cli_group_helpers) {
  use_cli_with_helper(0);
  ck_assert_int_eq(clink_options_set_close_grace_ms(opts, 2000, 2000), 0);
  ck_assert_int_eq(spawn(), 0);
  send_line(INIT_LINE);
  R.close_on_line = 1; /* the CLI exits on stdin EOF: no signal to it */
  uv_run(&R.loop, UV_RUN_DEFAULT);
  ck_assert_int_eq(R.closes, 1);
  expect_helper_killed_by(SIGTERM);
}
END_TEST

START_TEST(close_kills_helpers_that_ignore_sigterm) {
  use_cli_with_helper(1);
  ck_assert_int_eq(clink_options_set_close_grace_ms(opts, 2000, 50), 0);
  ck_assert_int_eq(spawn(), 0);
  int has_pidfd = clink__transport_group_signals_after_exit(R.t);
  send_line(INIT_LINE);
  R.close_on_line = 1;
  uv_run(&R.loop, UV_RUN_DEFAULT);
  ck_assert_int_eq(R.closes, 1);
  if (has_pidfd) {
    expect_helper_killed_by(SIGKILL);
  } else {
    /* Without a pidfd (old kernel, valgrind) the group gets one SIGTERM at
     * the CLI's exit and never a later signal: the group id could name
     * someone else's group by then. A helper that ignores it stays. */
    pid_t helper = helper_pid();
    int st;
    ck_assert_int_eq(waitpid(helper, &st, WNOHANG), 0);
    ck_assert_int_eq(kill(helper, SIGKILL), 0);
    expect_helper_killed_by(SIGKILL);
  }
}
END_TEST

START_TEST(unexpected_exit_ends_the_cli_group_helpers) {
  use_cli_with_helper(0);
  fake_env("FAKE_CRASH_AFTER", "0");
  fake_env("FAKE_CRASH_EXIT", "3");
  ck_assert_int_eq(spawn(), 0);
  send_line(INIT_LINE);
  send_line(USER_LINE);
  /* No close: the loop ends once the exit is reported and the group done. */
  uv_run(&R.loop, UV_RUN_DEFAULT);
  ck_assert_int_eq(R.exits, 1);
  ck_assert_int_eq(R.exit_status, 3);
  expect_helper_killed_by(SIGTERM);
  do_close(&R);
  uv_run(&R.loop, UV_RUN_DEFAULT);
  ck_assert_int_eq(R.closes, 1);
}
END_TEST

/* -------------------------------------------------------------- spawning */

/* exec runs after chdir(cwd): a relative CLI path must not be looked up
 * again there. */
START_TEST(relative_cli_path_with_a_cwd_option) {
  char dir[PATH_MAX], base[PATH_MAX], rel[PATH_MAX + 2];
  snprintf(dir, sizeof(dir), "%s", clink_test_fake_cli());
  snprintf(base, sizeof(base), "%s", clink_test_fake_cli());
  snprintf(rel, sizeof(rel), "./%s", basename(base));
  int here = open(".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  ck_assert_int_ge(here, 0);
  ck_assert_int_eq(clink_options_set_cli_path(opts, rel), 0);
  ck_assert_int_eq(clink_options_set_cwd(opts, "/"), 0);
  for (int shim = 0; shim < 2; shim++) {
    memset(&R.lines, 0, sizeof(R) - offsetof(rec, lines));
    ck_assert_int_eq(clink_options_set_exec_shim(opts, shim ? clink_test_exec_shim() : NULL), 0);
    ck_assert_int_eq(chdir(dirname(dir)), 0);
    int rc = spawn();
    ck_assert_int_eq(fchdir(here), 0);
    ck_assert_msg(rc == 0, "%s", clink_err_name(rc));
    send_line(INIT_LINE);
    R.close_on_line = 1;
    R.close_on_exit = 1;
    uv_run(&R.loop, UV_RUN_DEFAULT);
    ck_assert_msg(R.lines == 1, "shim %d: the CLI did not run (exit %d)", shim,
                  (int)R.exit_status);
    ck_assert_int_eq(R.closes, 1);
    snprintf(dir, sizeof(dir), "%s", clink_test_fake_cli());
  }
  close(here);
}
END_TEST

/* Lowers the soft RLIMIT_NOFILE so that exactly `slots` descriptor numbers
 * are free (holes below the highest open one filled), or restores it.
 * Descriptors at or above the limit (valgrind keeps its own there) take no
 * slot and are left alone. */
typedef struct fd_squeeze {
  struct rlimit saved;
  int *fillers;
  int n;
} fd_squeeze;

static void squeeze_fds(fd_squeeze *q, int slots) {
  ck_assert_int_eq(getrlimit(RLIMIT_NOFILE, &q->saved), 0);
  long limit = q->saved.rlim_cur == RLIM_INFINITY ? INT_MAX : (long)q->saved.rlim_cur;
  int top = -1;
  DIR *d = opendir("/proc/self/fd");
  ck_assert_ptr_nonnull(d);
  struct dirent *e;
  while ((e = readdir(d))) {
    int fd = e->d_name[0] >= '0' && e->d_name[0] <= '9' ? atoi(e->d_name) : -1;
    if (fd != dirfd(d) && fd < limit && fd > top) top = fd;
  }
  closedir(d);
  q->fillers = malloc(sizeof(int) * (size_t)(top + 1));
  ck_assert_ptr_nonnull(q->fillers);
  q->n = 0;
  for (;;) {
    int fd = fcntl(0, F_DUPFD_CLOEXEC, 0);
    ck_assert_int_ge(fd, 0);
    if (fd >= top) {
      close(fd);
      break;
    }
    q->fillers[q->n++] = fd;
  }
  struct rlimit low = q->saved;
  low.rlim_cur = (rlim_t)(top + 1 + slots); /* free: top + 1 .. top + slots */
  ck_assert_int_eq(setrlimit(RLIMIT_NOFILE, &low), 0);
}

static void unsqueeze_fds(fd_squeeze *q) {
  ck_assert_int_eq(setrlimit(RLIMIT_NOFILE, &q->saved), 0);
  for (int i = 0; i < q->n; i++) close(q->fillers[i]);
  free(q->fillers);
}

static int spawn_with_free_fds(int slots, char *err, size_t errlen) {
  clink__spawn_spec spec;
  ck_assert_int_eq(clink__spawn_spec_build(&spec, opts, NULL, 0), 0);
  fd_squeeze q;
  squeeze_fds(&q, slots);
  int rc = clink__transport_spawn(&R.t, &R.loop, &spec, &CBS, &R, err, errlen);
  unsqueeze_fds(&q);
  clink__spawn_spec_free(&spec);
  return rc;
}

static int count_fds(void);
static void spawn_init_close(void);

/* Out of descriptors is transient, not an exec failure: the libuv code is
 * kept and recovery may retry it. */
/* valgrind only pretends to lower RLIMIT_NOFILE: it lets descriptors above
 * the new limit through and then refuses to close them (libuv aborts). */
static int rlimit_nofile_works(void) {
  if (!RUNNING_ON_VALGRIND) return 1;
  printf("RLIMIT_NOFILE squeeze skipped under valgrind\n");
  return 0;
}

START_TEST(spawn_out_of_descriptors_keeps_emfile) {
  if (!rlimit_nofile_works()) return;
  spawn_init_close(); /* libuv's SIGCHLD plumbing is made on the first spawn */
  char err[512];
  /* Our stdin socketpair fits; libuv's stdout socketpair does not. */
  int rc = spawn_with_free_fds(2, err, sizeof(err));
  uv_run(&R.loop, UV_RUN_DEFAULT);
  ck_assert_msg(rc == UV_EMFILE, "%s", clink_err_name(rc));
  ck_assert(clink_err_is_retryable(rc));
  ck_assert_msg(strstr(err, "too many open files") != NULL, "%s", err);
}
END_TEST

/* What one session costs in descriptors, running and while starting: the
 * figures behind CLINK__FDS_PER_SESSION and CLINK__FDS_SPAWN_EXTRA. */
START_TEST(descriptors_per_session_are_measured) {
  spawn_init_close();
  int fds0 = count_fds();
  enum { N = 4 };
  clink__transport *ts[N];
  R.lines = 0;
  R.close_on_line = 0;
  for (int i = 0; i < N; i++) {
    ck_assert_int_eq(spawn(), 0);
    ts[i] = R.t;
    send_line(INIT_LINE);
  }
  while (R.lines < N) uv_run(&R.loop, UV_RUN_ONCE);
  int fds1 = count_fds();
  ck_assert_int_eq((fds1 - fds0) % N, 0);
  int per = (fds1 - fds0) / N;
  int pidfd = clink__transport_group_signals_after_exit(ts[0]);
  /* The fewest free descriptor numbers with which one more starts. */
  int need = 0, need_pidfd = 0;
  for (int slots = 1; slots <= 32 && need_pidfd == 0 && rlimit_nofile_works(); slots++) {
    int rc = spawn_with_free_fds(slots, NULL, 0);
    if (rc == 0) {
      if (need == 0) need = slots;
      if (!pidfd || clink__transport_group_signals_after_exit(R.t)) need_pidfd = slots;
      do_close(&R);
    }
    uv_run(&R.loop, UV_RUN_NOWAIT);
  }
  printf("descriptors per running session: %d (%s pidfd); free descriptors needed to start one: "
         "%d (%d with its pidfd)\n",
         per, pidfd ? "with" : "without", need, need_pidfd);
  ck_assert_int_eq(per, CLINK__FDS_PER_SESSION - (pidfd ? 0 : 1));
  if (!RUNNING_ON_VALGRIND) ck_assert_int_gt(need, 0);
  ck_assert_int_le(need_pidfd, CLINK__FDS_PER_SESSION + CLINK__FDS_SPAWN_EXTRA);
  for (int i = 0; i < N; i++) ck_assert_int_eq(clink__transport_close(ts[i], on_closed, &R), 0);
}
END_TEST

/* ---------------------------------------------------------------- writes */

/* The CLI closed its stdin but lives on: the write fails with EPIPE, and
 * says so even when uv_poll_stop() changes errno on the way. */
START_TEST(write_error_keeps_its_errno) {
  strcpy(script_path, "/tmp/clink-cli-XXXXXX");
  int fd = mkstemp(script_path);
  ck_assert_int_ge(fd, 0);
  static const char sh[] = "#!/bin/sh\nexec 0<&-\necho '{\"type\":\"ready\"}'\nexec sleep 1000\n";
  ck_assert_int_eq(write(fd, sh, sizeof(sh) - 1), (ssize_t)sizeof(sh) - 1);
  ck_assert_int_eq(fchmod(fd, 0700), 0);
  close(fd);
  ck_assert_int_eq(clink_options_set_cli_path(opts, script_path), 0);
  ck_assert_int_eq(clink_options_set_close_grace_ms(opts, 20, 2000), 0);
  ck_assert_int_eq(spawn(), 0);
  R.write_on_line = 1; /* its stdin is closed by then */
  R.close_on_write_error = 1;
  clobber_errno = 1;
  uv_run(&R.loop, UV_RUN_DEFAULT);
  clobber_errno = 0;
  unlink(script_path);
  ck_assert_int_eq(R.write_err, 1);
  ck_assert_msg(R.last_write_status == UV_EPIPE, "%s", clink_err_name(R.last_write_status));
  ck_assert_int_eq(R.closes, 1);
}
END_TEST

static int count_fds(void) {
  int n = 0;
  DIR *d = opendir("/proc/self/fd");
  ck_assert_ptr_nonnull(d);
  while (readdir(d)) n++;
  closedir(d);
  return n;
}

static int count_children(void) {
  int n = 0;
  char path[300], buf[512];
  DIR *d = opendir("/proc");
  struct dirent *e;
  while ((e = readdir(d))) {
    if (e->d_name[0] < '0' || e->d_name[0] > '9') continue;
    snprintf(path, sizeof(path), "/proc/%s/stat", e->d_name);
    FILE *f = fopen(path, "r");
    if (!f) continue;
    if (fgets(buf, sizeof(buf), f)) {
      char *p = strrchr(buf, ')');
      int ppid = 0;
      char state;
      if (p && sscanf(p + 2, "%c %d", &state, &ppid) == 2 && ppid == getpid()) n++;
    }
    fclose(f);
  }
  closedir(d);
  return n;
}

static void spawn_init_close(void) {
  ck_assert_int_eq(spawn(), 0);
  send_line(INIT_LINE);
  R.close_on_line = 1;
  R.lines = 0;
  uv_run(&R.loop, UV_RUN_DEFAULT);
}

START_TEST(thousand_spawn_close_cycles_leak_nothing) {
  /* libuv opens its SIGCHLD plumbing on the first spawn: warm it up. */
  spawn_init_close();
  int fds0 = count_fds();
  int kids0 = count_children();
  for (int i = 1; i <= 1000; i++) {
    spawn_init_close();
    ck_assert_int_eq(R.closes, i + 1);
  }
  ck_assert_int_eq(count_fds(), fds0);
  ck_assert_int_eq(count_children(), kids0);
}
END_TEST

/* The host dies by SIGKILL: the shim's parent-death signal must take the CLI
 * with it. The test adopts orphans (subreaper) so it can wait for the CLI. */
START_TEST(child_dies_with_its_host) {
  ck_assert_int_eq(prctl(PR_SET_CHILD_SUBREAPER, 1), 0);
  int pfd[2];
  ck_assert_int_eq(pipe(pfd), 0);
  pid_t host = fork();
  ck_assert_int_ge(host, 0);
  if (host == 0) {
    /* The host: spawns a CLI that answers initialize and then hangs (neither
     * reading nor writing), reports its pid once it is surely running. */
    uv_loop_t loop;
    uv_loop_init(&loop);
    clink_options_set_env(opts, "FAKE_HANG_AFTER", "0");
    clink__spawn_spec spec;
    if (clink__spawn_spec_build(&spec, opts, NULL, 0) != 0) _exit(2);
    if (clink__transport_spawn(&R.t, &loop, &spec, &CBS, &R, NULL, 0) != 0) _exit(3);
    send_line(INIT_LINE);
    send_line(USER_LINE);
    while (R.lines < 2) uv_run(&loop, UV_RUN_ONCE);
    int pid = clink__transport_pid(R.t);
    if (write(pfd[1], &pid, sizeof(pid)) != sizeof(pid)) _exit(4);
    uv_run(&loop, UV_RUN_DEFAULT);
    _exit(5);
  }
  close(pfd[1]);
  int cli = 0;
  ck_assert_int_eq(read(pfd[0], &cli, sizeof(cli)), sizeof(cli));
  close(pfd[0]);
  ck_assert_int_eq(kill(host, SIGKILL), 0);
  int st;
  ck_assert_int_eq(waitpid(host, &st, 0), host);
  /* Blocks until the orphaned CLI dies; the case timeout fails it otherwise. */
  ck_assert_int_eq(waitpid(cli, &st, 0), cli);
  ck_assert_msg(WIFSIGNALED(st), "exited %d", WEXITSTATUS(st));
  ck_assert_int_eq(WTERMSIG(st), SIGKILL);
}
END_TEST

int main(void) {
  Suite *s = suite_create("transport");
  TCase *tc = tcase_create("stream");
  tcase_add_checked_fixture(tc, setup, teardown);
  tcase_set_timeout(tc, 60);
  tcase_add_test(tc, one_turn_then_eof_exit);
  tcase_add_test(tc, many_turns_one_process);
  tcase_add_test(tc, over_long_line_is_skipped_and_stream_resyncs);
  tcase_add_test(tc, garbage_and_blank_lines);
  tcase_add_test(tc, stderr_flood_is_bounded);
  suite_add_tcase(s, tc);

  tc = tcase_create("exit");
  tcase_add_checked_fixture(tc, setup, teardown);
  tcase_set_timeout(tc, 60);
  tcase_add_test(tc, crash_by_signal_and_by_exit_code);
  tcase_add_test(tc, write_to_dead_child_is_an_error_not_sigpipe);
  tcase_add_test(tc, exec_failure_is_a_return_value);
  tcase_add_test(tc, exec_shim_passes_argv_and_env);
  suite_add_tcase(s, tc);

  tc = tcase_create("close");
  tcase_add_checked_fixture(tc, setup, teardown);
  tcase_set_timeout(tc, 60);
  tcase_add_test(tc, close_escalates_to_sigkill);
  tcase_add_test(tc, close_sends_eof_first);
  tcase_add_test(tc, close_cancels_pending_writes_and_is_deferred);
  tcase_add_test(tc, close_from_line_callback_stops_delivery);
  tcase_add_test(tc, write_queue_limit_and_drain);
  tcase_add_test(tc, write_error_keeps_its_errno);
  suite_add_tcase(s, tc);

  tc = tcase_create("group");
  tcase_add_checked_fixture(tc, setup, teardown);
  tcase_set_timeout(tc, 60);
  tcase_add_test(tc, close_ends_the_cli_group_helpers);
  tcase_add_test(tc, close_kills_helpers_that_ignore_sigterm);
  tcase_add_test(tc, unexpected_exit_ends_the_cli_group_helpers);
  suite_add_tcase(s, tc);

  tc = tcase_create("spawn");
  tcase_add_checked_fixture(tc, setup, teardown);
  tcase_set_timeout(tc, 60);
  tcase_add_test(tc, relative_cli_path_with_a_cwd_option);
  tcase_add_test(tc, spawn_out_of_descriptors_keeps_emfile);
  tcase_add_test(tc, descriptors_per_session_are_measured);
  suite_add_tcase(s, tc);

  tc = tcase_create("memory");
  tcase_add_checked_fixture(tc, setup, teardown);
  tcase_set_timeout(tc, 60);
  tcase_add_test(tc, trim_after_an_8mb_line_gives_memory_back);
  suite_add_tcase(s, tc);

  tc = tcase_create("lifetime");
  tcase_add_checked_fixture(tc, setup, teardown);
  tcase_set_timeout(tc, 600);
  tcase_add_test(tc, thousand_spawn_close_cycles_leak_nothing);
  tcase_add_test(tc, child_dies_with_its_host);
  suite_add_tcase(s, tc);
  return clink_test_run(s);
}
