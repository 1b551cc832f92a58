/* Client recovery against the fake CLI: RECOVERING after a crash, backoff
 * events, --resume, queued and re-sent turns, giving up, the circuit breaker,
 * idle probes, and close from every point of a recovery.
 *
 * No sleeps: a test runs the loop until a counter moves (RUN_UNTIL, one
 * uv_run(UV_RUN_ONCE) at a time) or closes the client and runs the loop
 * until nothing is left; counts are checked afterwards. Policies are fast
 * (exponential 5, 10, 20, 40, 50 ms, no jitter) so every test is quick.
 *
 * Later spawns are steered by a small wrapper script in a temp dir that
 * execs the fake CLI unless a marker file says otherwise ("fail": exit 1 at
 * once; "slow": answer initialize after 10 s). Note that the fake's crash
 * knob fires on the Nth turn of *every* process, so turn sequences are
 * chosen with that in mind. Every public call made by a test goes through
 * API(), and callbacks (except the state callback, which reports transitions
 * synchronously) check that they do not run inside one. */
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <unistd.h>

#include <cjson/cJSON.h>
#include <claudelink.h>

#include "testutil.h"

#define MAX_TURNS 8
#define MAX_EVENTS 48
#define MAX_STATES 32
#define MAX_ARGV 8
#define MAX_BEV 16

typedef struct turn_rec {
  const char *prompt;
  int msgs, inits, assistants, results, echo_hits;
  int done, status, seq;
  clink_client_state state_at_done;
} turn_rec;

typedef struct ev_rec {
  clink_recovery_event ev;
  unsigned int attempt;
  int err;
  uint64_t delay;
  int seq;
} ev_rec;

static struct {
  uv_loop_t loop;
  clink_client *c;
  turn_rec t[MAX_TURNS];
  int seq;

  int connects, connect_status;

  int nstates;
  clink_client_state from[MAX_STATES], to[MAX_STATES];

  int nev;
  ev_rec ev[MAX_EVENTS];
  char last_error_at_scheduled[2048];

  int closes;
  uint64_t spawns_at_close;
  int nargv;
  char *argv[MAX_ARGV];
  int ctls, ctl_status[4];

  /* Test-specific actions, run from the callbacks. */
  void (*event_hook)(const ev_rec *e);
  void (*done_hook)(int i);
  void (*state_hook)(clink_client_state from, clink_client_state to);

  /* breaker */
  clink_breaker_registry *reg;
  clink_breaker *b;
  int nbev, not_permitted;
  clink_breaker_state bfrom[MAX_BEV], bto[MAX_BEV];
  uint64_t shorten_open_ms; /* on CLOSED -> OPEN: open_for(this) instead */
  uint32_t in_flight_at_hook;

  /* wrapper script and its markers */
  char dir[64], wrapper[128], fail_marker[128], slow_marker[128];
} R;

static clink_options *opts;
static int in_api, api_rc;

#define API(expr) (in_api++, api_rc = (expr), in_api--, api_rc)
#define NOT_IN_API() ck_assert_msg(in_api == 0, "callback inside an API call")

#define RUN_UNTIL(cond)                                                        \
  do {                                                                         \
    while (!(cond)) ck_assert_msg(uv_run(&R.loop, UV_RUN_ONCE) != 0 || (cond), \
                                  "loop ended before: " #cond);                \
  } while (0)

static void env(const char *name, const char *value) {
  ck_assert_int_eq(clink_options_set_env(opts, name, value), 0);
}

static int count_ev(clink_recovery_event kind) {
  int n = 0;
  for (int i = 0; i < R.nev; i++) n += R.ev[i].ev == kind;
  return n;
}

static void expect_ev(int i, clink_recovery_event ev, unsigned int attempt, int err,
                      uint64_t delay) {
  ck_assert_int_lt(i, R.nev);
  ck_assert_msg(R.ev[i].ev == ev, "event %d: got %d, want %d", i, (int)R.ev[i].ev, (int)ev);
  ck_assert_uint_eq(R.ev[i].attempt, attempt);
  ck_assert_msg(R.ev[i].err == err, "event %d: err %s, want %s", i,
                clink_err_name(R.ev[i].err), clink_err_name(err));
  ck_assert_uint_eq(R.ev[i].delay, delay);
}

static clink_client_metrics metrics(void) {
  clink_client_metrics m;
  memset(&m, 0, sizeof(m));
  m.struct_size = sizeof(m);
  ck_assert_int_eq(clink_client_get_metrics(R.c, &m), 0);
  return m;
}

static clink_breaker_stats bstats(void) {
  clink_breaker_stats s;
  memset(&s, 0, sizeof(s));
  s.struct_size = sizeof(s);
  ck_assert_int_eq(clink_breaker_get_stats(R.b, uv_now(&R.loop), &s), 0);
  return s;
}

/* ------------------------------------------------------------ callbacks */

static void on_closed(clink_client *c, void *ud) {
  NOT_IN_API();
  ck_assert_ptr_eq(c, R.c);
  ck_assert_ptr_eq(ud, &R);
  R.closes++;
  clink_client_metrics m;
  memset(&m, 0, sizeof(m));
  m.struct_size = sizeof(m);
  ck_assert_int_eq(clink_client_get_metrics(c, &m), 0); /* freed after we return */
  R.spawns_at_close = m.spawns;
}

static void do_close(void) { ck_assert_int_eq(API(clink_client_close(R.c, on_closed, &R)), 0); }

static void on_state(clink_client *c, clink_client_state from, clink_client_state to,
                     void *ud) {
  ck_assert_ptr_eq(ud, &R);
  ck_assert_int_lt(R.nstates, MAX_STATES);
  ck_assert_int_eq(clink_client_get_state(c), to);
  R.from[R.nstates] = from;
  R.to[R.nstates] = to;
  R.nstates++;
  if (R.state_hook) R.state_hook(from, to);
}

static void on_recovery(clink_client *c, clink_recovery_event ev, unsigned int attempt,
                        int err, uint64_t delay_ms, void *ud) {
  NOT_IN_API();
  ck_assert_ptr_eq(c, R.c);
  ck_assert_ptr_eq(ud, &R);
  ck_assert_int_lt(R.nev, MAX_EVENTS);
  clink_client_state want = ev == CLINK_RECOVERY_SUCCEEDED ? CLINK_CLIENT_CONNECTED
                            : ev == CLINK_RECOVERY_FAILED  ? CLINK_CLIENT_ERROR
                                                           : CLINK_CLIENT_RECOVERING;
  ck_assert_msg(clink_client_get_state(c) == want, "event %d in state %s", (int)ev,
                clink_client_state_name(clink_client_get_state(c)));
  ev_rec *e = &R.ev[R.nev++];
  e->ev = ev;
  e->attempt = attempt;
  e->err = err;
  e->delay = delay_ms;
  e->seq = ++R.seq;
  if (ev == CLINK_RECOVERY_SCHEDULED && R.last_error_at_scheduled[0] == '\0')
    snprintf(R.last_error_at_scheduled, sizeof(R.last_error_at_scheduled), "%s",
             clink_client_last_error(c));
  if (R.event_hook) R.event_hook(e);
}

static void on_stderr(clink_client *c, const char *line, size_t len, void *ud) {
  NOT_IN_API();
  ck_assert_ptr_eq(ud, &R);
  if (len >= 6 && strncmp(line, "argv: ", 6) == 0 && R.nargv < MAX_ARGV)
    R.argv[R.nargv++] = strndup(line + 6, len - 6);
}

static void on_connect(clink_client *c, int status, void *ud) {
  NOT_IN_API();
  ck_assert_ptr_eq(ud, &R);
  R.connects++;
  R.connect_status = status;
}

static void on_ctl(clink_client *c, int status, const clink_msg *resp, void *ud) {
  NOT_IN_API();
  ck_assert_int_lt(R.ctls, 4);
  R.ctl_status[R.ctls++] = status;
}

static void on_msg(clink_client *c, const clink_msg *m, void *ud) {
  NOT_IN_API();
  turn_rec *t = ud;
  ck_assert_ptr_eq(c, R.c);
  t->msgs++;
  switch (clink_msg_get_kind(m)) {
    case CLINK_MSG_SYSTEM:
      if (clink_msg_subtype(m) && strcmp(clink_msg_subtype(m), "init") == 0) t->inits++;
      break;
    case CLINK_MSG_ASSISTANT:
      t->assistants++;
      if (t->prompt && clink_msg_block_count(m) > 0 &&
          clink_msg_block_kind(m, 0) == CLINK_BLOCK_TEXT &&
          strcmp(clink_msg_block_text(m, 0), t->prompt) == 0)
        t->echo_hits++;
      break;
    case CLINK_MSG_RESULT:
      t->results++;
      break;
    default:
      break;
  }
}

static void on_done(clink_client *c, int status, const clink_msg *result, void *ud) {
  NOT_IN_API();
  turn_rec *t = ud;
  ck_assert_ptr_eq(c, R.c);
  t->done++;
  t->status = status;
  t->seq = ++R.seq;
  t->state_at_done = clink_client_get_state(c);
  if (R.done_hook) R.done_hook((int)(t - R.t));
}

static void on_breaker(clink_breaker *b, clink_breaker_event ev, clink_breaker_state from,
                       clink_breaker_state to, void *ud) {
  ck_assert_ptr_eq(ud, &R);
  if (ev == CLINK_BREAKER_EVENT_NOT_PERMITTED) {
    R.not_permitted++;
    return;
  }
  ck_assert_int_lt(R.nbev, MAX_BEV);
  R.bfrom[R.nbev] = from;
  R.bto[R.nbev] = to;
  R.nbev++;
  /* The claude_sdk breaker opens for 30 s: shorten that, as a server's
   * Retry-After would, to keep the test fast. */
  if (from == CLINK_BREAKER_CLOSED && to == CLINK_BREAKER_OPEN && R.shorten_open_ms)
    clink_breaker_open_for(b, uv_now(&R.loop), R.shorten_open_ms);
}

static int query(int i, const char *prompt) {
  R.t[i].prompt = prompt;
  return API(clink_client_query(R.c, prompt, on_msg, on_done, &R.t[i]));
}

/* --------------------------------------------------------------- fixture */

static void write_wrapper(void) {
  FILE *f = fopen(R.wrapper, "w");
  ck_assert_ptr_nonnull(f);
  fprintf(f,
          "#!/bin/sh\n"
          "if [ -e '%s' ]; then echo 'wrapper: failing on purpose' >&2; exit 1; fi\n"
          "if [ -e '%s' ]; then FAKE_INIT_DELAY_MS=10000; export FAKE_INIT_DELAY_MS; fi\n"
          "exec '%s' \"$@\"\n",
          R.fail_marker, R.slow_marker, clink_test_fake_cli());
  ck_assert_int_eq(fclose(f), 0);
  ck_assert_int_eq(chmod(R.wrapper, 0755), 0);
}

/* The CLI is the wrapper from now on (before new_client: options are copied). */
static void use_wrapper(void) {
  snprintf(R.dir, sizeof(R.dir), "/tmp/clink-recovery-XXXXXX");
  ck_assert_ptr_nonnull(mkdtemp(R.dir));
  snprintf(R.wrapper, sizeof(R.wrapper), "%s/claude", R.dir);
  snprintf(R.fail_marker, sizeof(R.fail_marker), "%s/fail", R.dir);
  snprintf(R.slow_marker, sizeof(R.slow_marker), "%s/slow", R.dir);
  write_wrapper();
  ck_assert_int_eq(clink_options_set_cli_path(opts, R.wrapper), 0);
}

static void touch(const char *path) {
  int fd = open(path, O_CREAT | O_WRONLY, 0644);
  ck_assert_int_ge(fd, 0);
  close(fd);
}

static void set_policy(unsigned int max_attempts) {
  clink_retry_policy *p = NULL;
  ck_assert_int_eq(clink_retry_policy_new(&p), 0);
  ck_assert_int_eq(clink_retry_policy_set_exponential(p, 5, 50, 2.0, CLINK_JITTER_NONE), 0);
  ck_assert_int_eq(clink_retry_policy_set_max_attempts(p, max_attempts), 0);
  ck_assert_int_eq(clink_options_set_recovery(opts, p), 0);
  clink_retry_policy_free(p);
}

static void use_registry_breaker(void) {
  ck_assert_int_eq(clink_breaker_registry_new(&R.reg, 7), 0);
  R.b = clink_breaker_registry_get(R.reg, "claude_sdk");
  ck_assert_ptr_nonnull(R.b);
  clink_breaker_set_event_cb(R.b, on_breaker, &R);
}

static void setup(void) {
  memset(&R, 0, sizeof(R));
  in_api = 0;
  ck_assert_int_eq(uv_loop_init(&R.loop), 0);
  ck_assert_int_eq(clink_options_new(&opts), 0);
  ck_assert_int_eq(clink_options_set_cli_path(opts, clink_test_fake_cli()), 0);
  ck_assert_int_eq(clink_options_set_exec_shim(opts, clink_test_exec_shim()), 0);
  ck_assert_int_eq(clink_options_set_close_grace_ms(opts, 50, 50), 0);
  ck_assert_int_eq(clink_options_set_connect_timeout_ms(opts, 10000), 0);
  ck_assert_int_eq(clink_options_set_control_timeout_ms(opts, 10000), 0);
  ck_assert_int_eq(clink_options_set_close_turn_wait_ms(opts, 10000), 0);
  ck_assert_int_eq(clink_options_set_stderr_cb(opts, on_stderr, &R), 0);
}

static void teardown(void) {
  ck_assert_int_eq(R.closes, 1); /* every test closes its client exactly once */
  for (int i = 0; i < R.nargv; i++) free(R.argv[i]);
  clink_options_free(opts);
  CLINK_TEST_LOOP_DONE(&R.loop);
  clink_breaker_registry_free(R.reg); /* outlives the client */
  if (R.dir[0]) {
    unlink(R.wrapper);
    unlink(R.fail_marker);
    unlink(R.slow_marker);
    rmdir(R.dir);
  }
}

static void new_client(void) {
  ck_assert_int_eq(clink_client_new(&R.c, &R.loop, opts), 0);
  clink_client_set_state_cb(R.c, on_state, &R);
  clink_client_set_recovery_cb(R.c, on_recovery, &R);
  if (R.b) clink_client_set_breaker(R.c, R.b);
}

static void connect_wait(void) {
  int before = R.connects;
  ck_assert_int_eq(API(clink_client_connect(R.c, on_connect, &R)), 0);
  RUN_UNTIL(R.connects > before);
  ck_assert_int_eq(R.connect_status, 0);
  ck_assert_int_eq(clink_client_get_state(R.c), CLINK_CLIENT_CONNECTED);
}

/* Connects and runs one good turn (so the session id is known). */
static void connect_and_turn(int i) {
  connect_wait();
  ck_assert_int_eq(query(i, "warm-up"), 0);
  RUN_UNTIL(R.t[i].done == 1);
  ck_assert_int_eq(R.t[i].status, 0);
  ck_assert_ptr_nonnull(clink_client_session_id(R.c));
}

static void close_and_run(void) {
  do_close();
  ck_assert_int_eq(R.closes, 0);
  uv_run(&R.loop, UV_RUN_DEFAULT);
  ck_assert_int_eq(R.closes, 1);
}

static void expect_states(int n, const clink_client_state *want) {
  clink_test_expect_states(R.nstates, R.from, R.to, n, want);
}

#define EXPECT_STATES(...)                                         \
  do {                                                             \
    const clink_client_state want_[] = {__VA_ARGS__};              \
    expect_states((int)(sizeof(want_) / sizeof(want_[0])), want_); \
  } while (0)

/* Kills the idle CLI from outside. */
static void kill_cli(int sig) {
  int pid = clink_client_pid(R.c);
  ck_assert_int_gt(pid, 0);
  ck_assert_int_eq(kill(pid, sig), 0);
}

/* ========================================================= crash mid-turn */

/* Queued from the failed turn's callback: the client is RECOVERING. */
static void queue_third_from_done(int i) {
  if (i != 1) return;
  ck_assert_int_eq(clink_client_get_state(R.c), CLINK_CLIENT_RECOVERING);
  ck_assert_int_eq(clink_client_pid(R.c), 0);
  ck_assert_int_eq(API(clink_client_interrupt(R.c, on_ctl, &R)), CLINK_ENOT_CONNECTED);
  ck_assert_int_eq(query(2, "third"), 0);
}

START_TEST(crash_mid_turn_recovers_and_runs_queued_turn) {
  env("FAKE_MSGS", "3");
  env("FAKE_CRASH_AFTER", "1");
  env("FAKE_CRASH_SIGNAL", "9");
  env("FAKE_CRASH_TURN", "2"); /* turn 1 of each process is fine, turn 2 dies */
  set_policy(6);
  new_client();
  connect_and_turn(0);
  ck_assert_int_eq(R.t[0].assistants, 3);

  R.done_hook = queue_third_from_done;
  ck_assert_int_eq(query(1, "second"), 0);
  RUN_UNTIL(R.t[2].done == 1);

  /* The running turn fails with the exit, once the client is RECOVERING. */
  ck_assert_int_eq(R.t[1].done, 1);
  ck_assert_int_eq(R.t[1].status, CLINK_EEXITED);
  ck_assert_int_eq(R.t[1].inits, 1);
  ck_assert_int_eq(R.t[1].assistants, 1);
  ck_assert_int_eq(R.t[1].results, 0);
  ck_assert_int_eq(R.t[1].state_at_done, CLINK_CLIENT_RECOVERING);
  /* The turn queued meanwhile ran whole on the new process. */
  ck_assert_int_eq(R.t[2].status, 0);
  ck_assert_int_eq(R.t[2].inits, 1);
  ck_assert_int_eq(R.t[2].assistants, 3);
  ck_assert_int_eq(R.t[2].results, 1);
  ck_assert_int_eq(R.t[2].state_at_done, CLINK_CLIENT_CONNECTED);

  ck_assert_int_eq(R.nev, 3);
  expect_ev(0, CLINK_RECOVERY_SCHEDULED, 1, CLINK_EEXITED, 5);
  expect_ev(1, CLINK_RECOVERY_ATTEMPT, 1, CLINK_EEXITED, 0);
  expect_ev(2, CLINK_RECOVERY_SUCCEEDED, 1, 0, 0);
  ck_assert_int_lt(R.ev[0].seq, R.t[1].seq);
  ck_assert_int_lt(R.t[1].seq, R.ev[1].seq);
  ck_assert_int_lt(R.ev[2].seq, R.t[2].seq);
  ck_assert_msg(strstr(R.last_error_at_scheduled, "signal 9") != NULL, "%s",
                R.last_error_at_scheduled);
  EXPECT_STATES(CLINK_CLIENT_CONNECTING, CLINK_CLIENT_CONNECTED, CLINK_CLIENT_RECOVERING,
                CLINK_CLIENT_CONNECTED);

  clink_client_metrics m = metrics();
  ck_assert_uint_eq(m.recoveries, 1);
  ck_assert_uint_eq(m.recovery_attempts, 1);
  ck_assert_uint_eq(m.spawns, 2);
  ck_assert_uint_eq(m.turns_ok, 2);
  ck_assert_uint_eq(m.turns_failed, 1);
  ck_assert_uint_ge(clink_client_error_count(R.c, CLINK_EEXITED), 1);
  ck_assert_int_gt(clink_client_pid(R.c), 0);
  ck_assert_ptr_nonnull(clink_client_server_info(R.c));
  R.done_hook = NULL;
  close_and_run();
  ck_assert_int_eq(R.nev, 3);
  EXPECT_STATES(CLINK_CLIENT_CONNECTING, CLINK_CLIENT_CONNECTED, CLINK_CLIENT_RECOVERING,
                CLINK_CLIENT_CONNECTED, CLINK_CLIENT_CLOSING, CLINK_CLIENT_CLOSED);
}
END_TEST

/* ================================================================ resend */

/* Process 1: turn 1 ok, turn 2 ("two") dies. Process 2: "two" again (its
 * turn 1), then "three" (its turn 2) dies. Process 3: "three" again. The
 * re-sent turn always goes ahead of the queued one. */
START_TEST(resend_interrupted_turn_once_ahead_of_queue) {
  env("FAKE_ECHO", "1");
  env("FAKE_MSGS", "3");
  env("FAKE_CRASH_AFTER", "1");
  env("FAKE_CRASH_SIGNAL", "9");
  env("FAKE_CRASH_TURN", "2");
  ck_assert_int_eq(clink_options_set_resend_interrupted_turn(opts, 1), 0);
  set_policy(6);
  new_client();
  connect_and_turn(0);
  ck_assert_int_eq(query(1, "two"), 0);
  ck_assert_int_eq(query(2, "three"), 0);
  RUN_UNTIL(R.t[2].done == 1);

  for (int i = 1; i <= 2; i++) {
    ck_assert_int_eq(R.t[i].done, 1);
    ck_assert_int_eq(R.t[i].status, 0);
    ck_assert_int_eq(R.t[i].inits, 2);     /* once per process */
    ck_assert_int_eq(R.t[i].echo_hits, 2); /* the same prompt, sent twice */
    ck_assert_int_eq(R.t[i].assistants, 1 + 3);
    ck_assert_int_eq(R.t[i].results, 1);
    ck_assert_int_eq(R.t[i].state_at_done, CLINK_CLIENT_CONNECTED);
  }
  ck_assert_int_lt(R.t[1].seq, R.t[2].seq);
  ck_assert_int_eq(R.nev, 6);
  for (int k = 0; k < 2; k++) {
    expect_ev(3 * k + 0, CLINK_RECOVERY_SCHEDULED, 1, CLINK_EEXITED, 5);
    expect_ev(3 * k + 1, CLINK_RECOVERY_ATTEMPT, 1, CLINK_EEXITED, 0);
    expect_ev(3 * k + 2, CLINK_RECOVERY_SUCCEEDED, 1, 0, 0);
  }
  clink_client_metrics m = metrics();
  ck_assert_uint_eq(m.spawns, 3);
  ck_assert_uint_eq(m.recoveries, 2);
  ck_assert_uint_eq(m.turns_ok, 3);
  ck_assert_uint_eq(m.turns_failed, 0);
  close_and_run();
  EXPECT_STATES(CLINK_CLIENT_CONNECTING, CLINK_CLIENT_CONNECTED, CLINK_CLIENT_RECOVERING,
                CLINK_CLIENT_CONNECTED, CLINK_CLIENT_RECOVERING, CLINK_CLIENT_CONNECTED,
                CLINK_CLIENT_CLOSING, CLINK_CLIENT_CLOSED);
}
END_TEST

/* Every process dies in its first turn: the turn is re-sent once, then fails. */
START_TEST(resent_turn_dies_again_fails_eexited) {
  env("FAKE_ECHO", "1");
  env("FAKE_MSGS", "3");
  env("FAKE_CRASH_AFTER", "1");
  env("FAKE_CRASH_SIGNAL", "9");
  env("FAKE_CRASH_TURN", "1");
  ck_assert_int_eq(clink_options_set_resend_interrupted_turn(opts, 1), 0);
  set_policy(6);
  new_client();
  connect_wait();
  ck_assert_int_eq(query(0, "doomed"), 0);
  RUN_UNTIL(R.t[0].done == 1);
  ck_assert_int_eq(R.t[0].status, CLINK_EEXITED);
  ck_assert_int_eq(R.t[0].inits, 2);
  ck_assert_int_eq(R.t[0].echo_hits, 2);
  ck_assert_int_eq(R.t[0].results, 0);
  ck_assert_int_eq(R.t[0].state_at_done, CLINK_CLIENT_RECOVERING);
  /* The second death still recovers the client. */
  RUN_UNTIL(count_ev(CLINK_RECOVERY_SUCCEEDED) == 2);
  ck_assert_int_eq(R.nev, 6);
  ck_assert_int_eq(R.ev[3].ev, CLINK_RECOVERY_SCHEDULED);
  ck_assert_int_lt(R.ev[3].seq, R.t[0].seq);
  ck_assert_int_lt(R.t[0].seq, R.ev[4].seq);
  ck_assert_int_eq(clink_client_get_state(R.c), CLINK_CLIENT_CONNECTED);
  clink_client_metrics m = metrics();
  ck_assert_uint_eq(m.spawns, 3);
  ck_assert_uint_eq(m.recoveries, 2);
  ck_assert_uint_eq(m.turns_failed, 1);
  close_and_run();
}
END_TEST

/* ================================================================ resume */

static int argv_has(int i, const char *token) {
  cJSON *a = cJSON_Parse(R.argv[i]);
  ck_assert_msg(cJSON_IsArray(a), "argv line %d: %s", i, R.argv[i]);
  int n = 0;
  const cJSON *v;
  cJSON_ArrayForEach(v, a) {
    if (cJSON_IsString(v) && strcmp(v->valuestring, token) == 0) n++;
  }
  cJSON_Delete(a);
  return n;
}

static int argv_has_prefix(int i, const char *prefix) {
  cJSON *a = cJSON_Parse(R.argv[i]);
  ck_assert(cJSON_IsArray(a));
  int n = 0;
  const cJSON *v;
  cJSON_ArrayForEach(v, a) {
    if (cJSON_IsString(v) && strncmp(v->valuestring, prefix, strlen(prefix)) == 0) n++;
  }
  cJSON_Delete(a);
  return n;
}


/* The CLI no longer has the conversation (its transcript was lost at the
 * kill, as 2.1.197 does when killed right at a result): resuming it fails
 * the same way every time, so the next attempt starts a fresh one, says so
 * (CLINK_RECOVERY_FRESH), and the client is back. */
START_TEST(lost_conversation_starts_fresh) {
  env("FAKE_PRINT_ARGV", "1");
  env("FAKE_RESUME_MISSING", "1");
  set_policy(6);
  new_client();
  connect_and_turn(0);
  char *sid = strdup(clink_client_session_id(R.c));
  kill_cli(SIGKILL);
  RUN_UNTIL(count_ev(CLINK_RECOVERY_SUCCEEDED) == 1);
  ck_assert_int_eq(count_ev(CLINK_RECOVERY_FRESH), 1);
  ck_assert_int_eq(count_ev(CLINK_RECOVERY_ATTEMPT), 2);
  /* Attempt 1 asked for the old conversation; attempt 2 for none. */
  RUN_UNTIL(R.nargv == 3);
  char want[128];
  snprintf(want, sizeof(want), "--resume=%s", sid);
  ck_assert_int_eq(argv_has(1, want), 1);
  ck_assert_int_eq(argv_has_prefix(2, "--resume"), 0);
  ck_assert_int_eq(query(1, "on a fresh conversation"), 0);
  RUN_UNTIL(R.t[1].done == 1);
  ck_assert_int_eq(R.t[1].status, 0);
  ck_assert_str_ne(clink_client_session_id(R.c), sid);
  free(sid);
  close_and_run();
}
END_TEST

/* The new process resumes the session the old one reported, and nothing of
 * the start-up profile that would pick another conversation. */
START_TEST(recovery_resumes_the_session) {
  env("FAKE_PRINT_ARGV", "1");
  ck_assert_int_eq(clink_options_set_session_id(opts, "11111111-2222-4333-8444-555555555555"),
                   0);
  ck_assert_int_eq(clink_options_set_continue(opts, 1), 0);
  ck_assert_int_eq(clink_options_set_fork_session(opts, 1), 0);
  set_policy(6);
  new_client();
  connect_and_turn(0);
  char *sid = strdup(clink_client_session_id(R.c));
  RUN_UNTIL(R.nargv == 1);
  ck_assert_int_eq(argv_has_prefix(0, "--resume"), 0);
  ck_assert_int_eq(argv_has(0, "--session-id=11111111-2222-4333-8444-555555555555"), 1);
  ck_assert_int_eq(argv_has(0, "--continue"), 1);
  ck_assert_int_eq(argv_has(0, "--fork-session"), 1);

  kill_cli(SIGKILL);
  RUN_UNTIL(count_ev(CLINK_RECOVERY_SUCCEEDED) == 1 && R.nargv == 2);
  char want[128];
  snprintf(want, sizeof(want), "--resume=%s", sid);
  ck_assert_msg(argv_has(1, want) == 1, "%s in %s", want, R.argv[1]);
  ck_assert_int_eq(argv_has_prefix(1, "--resume"), 1);
  ck_assert_int_eq(argv_has_prefix(1, "--session-id"), 0);
  ck_assert_int_eq(argv_has(1, "--continue"), 0);
  ck_assert_int_eq(argv_has(1, "--fork-session"), 0);
  ck_assert_int_eq(argv_has(1, "--verbose"), 1);

  /* The next recovery resumes whatever session the new process reports. */
  ck_assert_int_eq(query(1, "on the new process"), 0);
  RUN_UNTIL(R.t[1].done == 1);
  ck_assert_int_eq(R.t[1].status, 0);
  char *sid2 = strdup(clink_client_session_id(R.c));
  kill_cli(SIGKILL);
  RUN_UNTIL(count_ev(CLINK_RECOVERY_SUCCEEDED) == 2 && R.nargv == 3);
  snprintf(want, sizeof(want), "--resume=%s", sid2);
  ck_assert_msg(argv_has(2, want) == 1, "%s in %s", want, R.argv[2]);
  ck_assert_uint_eq(metrics().spawns, 3);
  free(sid);
  free(sid2);
  close_and_run();
}
END_TEST

/* ======================================================= giving up */

/* Variant 1: the host connects again, and queries, from the FAILED
 * callback: the new connection's turns are not the old queue's. */
static void reconnect_on_failed(const ev_rec *e) {
  if (e->ev != CLINK_RECOVERY_FAILED) return;
  ck_assert_int_eq(unlink(R.fail_marker), 0);
  ck_assert_int_eq(API(clink_client_connect(R.c, on_connect, &R)), 0);
  ck_assert_int_eq(query(4, "fresh"), 0);
}

START_TEST(retries_exhausted_fails_queued_turns) {
  if (_i == 1) R.event_hook = reconnect_on_failed;
  use_wrapper();
  set_policy(3);
  new_client();
  connect_and_turn(0);
  touch(R.fail_marker); /* every later process dies at start */
  kill_cli(SIGKILL);
  RUN_UNTIL(clink_client_get_state(R.c) == CLINK_CLIENT_RECOVERING);
  ck_assert_int_eq(query(1, "q1"), 0);
  ck_assert_int_eq(query(2, "q2"), 0);
  RUN_UNTIL(R.t[2].done == 1);

  ck_assert_int_eq(R.nev, 7);
  uint64_t delays[] = {5, 10, 20};
  for (unsigned int k = 0; k < 3; k++) {
    expect_ev(2 * (int)k, CLINK_RECOVERY_SCHEDULED, k + 1, CLINK_EEXITED, delays[k]);
    expect_ev(2 * (int)k + 1, CLINK_RECOVERY_ATTEMPT, k + 1, CLINK_EEXITED, 0);
  }
  expect_ev(6, CLINK_RECOVERY_FAILED, 3, CLINK_ERETRY_EXHAUSTED, 0);
  for (int i = 1; i <= 2; i++) {
    ck_assert_int_eq(R.t[i].done, 1);
    ck_assert_int_eq(R.t[i].status, CLINK_ERETRY_EXHAUSTED);
    ck_assert_int_eq(R.t[i].msgs, 0);
    if (_i == 0) ck_assert_int_eq(R.t[i].state_at_done, CLINK_CLIENT_ERROR);
    ck_assert_int_lt(R.ev[6].seq, R.t[i].seq);
  }
  ck_assert_int_lt(R.t[1].seq, R.t[2].seq);
  if (_i == 1) {
    RUN_UNTIL(R.t[4].done == 1);
    ck_assert_int_eq(R.t[4].status, 0);
    ck_assert_int_eq(R.t[4].results, 1);
    ck_assert_int_eq(R.connects, 2);
    ck_assert_int_eq(R.connect_status, 0);
    ck_assert_int_eq(R.nev, 7);
    ck_assert_uint_eq(metrics().spawns, 5);
    EXPECT_STATES(CLINK_CLIENT_CONNECTING, CLINK_CLIENT_CONNECTED, CLINK_CLIENT_RECOVERING,
                  CLINK_CLIENT_ERROR, CLINK_CLIENT_CONNECTING, CLINK_CLIENT_CONNECTED);
    close_and_run();
    return;
  }
  ck_assert_int_eq(clink_client_get_state(R.c), CLINK_CLIENT_ERROR);
  const char *err = clink_client_last_error(R.c);
  ck_assert_msg(strstr(err, "recovery gave up after 3 attempts") != NULL, "%s", err);
  ck_assert_msg(strstr(err, clink_strerror(CLINK_ERETRY_EXHAUSTED)) != NULL, "%s", err);
  ck_assert_msg(strstr(err, "exited with code 1") != NULL, "%s", err);
  ck_assert_msg(strstr(err, "wrapper: failing on purpose") != NULL, "%s", err);
  clink_client_metrics m = metrics();
  ck_assert_uint_eq(m.spawns, 4);
  ck_assert_uint_eq(m.recovery_attempts, 3);
  ck_assert_uint_eq(m.recoveries, 0);
  ck_assert_uint_eq(clink_client_error_count(R.c, CLINK_ERETRY_EXHAUSTED), 1 + 2);
  EXPECT_STATES(CLINK_CLIENT_CONNECTING, CLINK_CLIENT_CONNECTED, CLINK_CLIENT_RECOVERING,
                CLINK_CLIENT_ERROR);
  /* ERROR as usual: no queries, and connect starts afresh. */
  ck_assert_int_eq(query(3, "late"), CLINK_ENOT_CONNECTED);
  unlink(R.fail_marker);
  connect_wait();
  ck_assert_int_eq(query(4, "fresh"), 0);
  RUN_UNTIL(R.t[4].done == 1);
  ck_assert_int_eq(R.t[4].status, 0);
  ck_assert_int_eq(R.nev, 7);
  close_and_run();
}
END_TEST

static void remove_cli_on_scheduled(const ev_rec *e) {
  if (e->ev != CLINK_RECOVERY_SCHEDULED) return;
  ck_assert_int_eq(unlink(R.wrapper), 0);
  ck_assert_int_eq(query(1, "queued"), 0);
}

START_TEST(cli_gone_is_not_retried) {
  use_wrapper();
  set_policy(6);
  new_client();
  connect_and_turn(0);
  R.event_hook = remove_cli_on_scheduled;
  kill_cli(SIGKILL);
  RUN_UNTIL(R.t[1].done == 1);
  ck_assert_int_eq(R.nev, 3);
  expect_ev(0, CLINK_RECOVERY_SCHEDULED, 1, CLINK_EEXITED, 5);
  expect_ev(1, CLINK_RECOVERY_ATTEMPT, 1, CLINK_EEXITED, 0);
  expect_ev(2, CLINK_RECOVERY_FAILED, 1, CLINK_ECLI_NOT_FOUND, 0);
  ck_assert_int_eq(R.t[1].status, CLINK_ECLI_NOT_FOUND);
  ck_assert_int_eq(clink_client_get_state(R.c), CLINK_CLIENT_ERROR);
  const char *err = clink_client_last_error(R.c);
  ck_assert_msg(strstr(err, "recovery gave up after 1 attempts") != NULL, "%s", err);
  clink_client_metrics m = metrics();
  ck_assert_uint_eq(m.spawns, 1);
  ck_assert_uint_eq(m.recovery_attempts, 1);
  ck_assert_uint_eq(m.recoveries, 0);
  R.event_hook = NULL;
  close_and_run();
  ck_assert_int_eq(R.nev, 3); /* nothing more, ever */
  EXPECT_STATES(CLINK_CLIENT_CONNECTING, CLINK_CLIENT_CONNECTED, CLINK_CLIENT_RECOVERING,
                CLINK_CLIENT_ERROR, CLINK_CLIENT_CLOSING, CLINK_CLIENT_CLOSED);
}
END_TEST

/* The new process does not answer initialize in time: that attempt fails
 * with CLINK_EINIT_TIMEOUT (retryable), its process is stopped, and the next
 * attempt succeeds. */
static void heal_on_init_timeout(const ev_rec *e) {
  if (e->ev == CLINK_RECOVERY_SCHEDULED && e->err == CLINK_EINIT_TIMEOUT)
    ck_assert_int_eq(unlink(R.slow_marker), 0);
}

START_TEST(init_timeout_during_recovery_is_retried) {
  ck_assert_int_eq(clink_options_set_connect_timeout_ms(opts, 1000), 0);
  use_wrapper();
  set_policy(6);
  new_client();
  connect_and_turn(0);
  touch(R.slow_marker);
  R.event_hook = heal_on_init_timeout;
  kill_cli(SIGKILL);
  RUN_UNTIL(count_ev(CLINK_RECOVERY_SUCCEEDED) == 1);
  ck_assert_int_eq(R.nev, 5);
  expect_ev(0, CLINK_RECOVERY_SCHEDULED, 1, CLINK_EEXITED, 5);
  expect_ev(1, CLINK_RECOVERY_ATTEMPT, 1, CLINK_EEXITED, 0);
  expect_ev(2, CLINK_RECOVERY_SCHEDULED, 2, CLINK_EINIT_TIMEOUT, 10);
  expect_ev(3, CLINK_RECOVERY_ATTEMPT, 2, CLINK_EINIT_TIMEOUT, 0);
  expect_ev(4, CLINK_RECOVERY_SUCCEEDED, 2, 0, 0);
  clink_client_metrics m = metrics();
  ck_assert_uint_eq(m.spawns, 3);
  ck_assert_uint_eq(m.recovery_attempts, 2);
  ck_assert_uint_eq(m.recoveries, 1);
  ck_assert_uint_eq(clink_client_error_count(R.c, CLINK_EINIT_TIMEOUT), 1);
  ck_assert_int_eq(query(1, "after"), 0);
  RUN_UNTIL(R.t[1].done == 1);
  ck_assert_int_eq(R.t[1].status, 0);
  R.event_hook = NULL;
  close_and_run();
}
END_TEST

/* =============================================================== breaker */

static void heal_on_rejected(const ev_rec *e) {
  if (e->ev != CLINK_RECOVERY_REJECTED) return;
  ck_assert_int_eq(unlink(R.fail_marker), 0);
}

/* The registry's claude_sdk breaker: three failed attempts open it, the next
 * attempt is rejected and rescheduled for when it half-opens; the probe
 * succeeds; the second success (next recovery) closes it. */
START_TEST(breaker_opens_rejects_then_closes) {
  use_wrapper();
  use_registry_breaker();
  R.shorten_open_ms = 500;
  set_policy(10);
  new_client();
  connect_and_turn(0);
  R.event_hook = heal_on_rejected;
  touch(R.fail_marker);
  kill_cli(SIGKILL);
  RUN_UNTIL(count_ev(CLINK_RECOVERY_SUCCEEDED) == 1);

  ck_assert_int_eq(R.nev, 11);
  uint64_t delays[] = {5, 10, 20};
  for (unsigned int k = 0; k < 3; k++) {
    expect_ev(2 * (int)k, CLINK_RECOVERY_SCHEDULED, k + 1, CLINK_EEXITED, delays[k]);
    expect_ev(2 * (int)k + 1, CLINK_RECOVERY_ATTEMPT, k + 1, CLINK_EEXITED, 0);
  }
  expect_ev(6, CLINK_RECOVERY_SCHEDULED, 4, CLINK_EEXITED, 40);
  /* Rejected: delay_ms is the breaker's retry_after. */
  ck_assert_int_eq(R.ev[7].ev, CLINK_RECOVERY_REJECTED);
  ck_assert_uint_eq(R.ev[7].attempt, 4);
  ck_assert_int_eq(R.ev[7].err, CLINK_ECIRCUIT_OPEN);
  uint64_t retry_after = R.ev[7].delay;
  ck_assert_uint_gt(retry_after, 0);
  ck_assert_uint_le(retry_after, 500 - 40);
  /* Rescheduled no earlier than that (the backoff alone would be 50). */
  expect_ev(8, CLINK_RECOVERY_SCHEDULED, 5, CLINK_ECIRCUIT_OPEN,
            retry_after > 50 ? retry_after : 50);
  expect_ev(9, CLINK_RECOVERY_ATTEMPT, 5, CLINK_ECIRCUIT_OPEN, 0);
  expect_ev(10, CLINK_RECOVERY_SUCCEEDED, 5, 0, 0);

  /* Opened by the rules, re-opened shorter, half-open for the probe, which
   * succeeded: claude_sdk wants two successes to close. */
  ck_assert_int_eq(R.nbev, 2);
  ck_assert_int_eq(R.bfrom[0], CLINK_BREAKER_CLOSED);
  ck_assert_int_eq(R.bto[0], CLINK_BREAKER_OPEN);
  ck_assert_int_eq(R.bfrom[1], CLINK_BREAKER_OPEN);
  ck_assert_int_eq(R.bto[1], CLINK_BREAKER_HALF_OPEN);
  ck_assert_int_eq(R.not_permitted, 1);
  clink_breaker_stats s = bstats();
  ck_assert_int_eq(s.state, CLINK_BREAKER_HALF_OPEN);
  ck_assert_uint_eq(s.consecutive_successes, 1);
  ck_assert_uint_eq(s.half_open_in_flight, 0);
  ck_assert_uint_eq(s.total_failures, 3);
  ck_assert_uint_eq(s.total_successes, 1);
  ck_assert_uint_eq(s.total_rejected, 1);
  ck_assert_uint_eq(s.opened_count, 2);
  clink_client_metrics m = metrics();
  ck_assert_uint_eq(m.recovery_attempts, 4); /* the rejected one started nothing */
  ck_assert_uint_eq(m.spawns, 5);
  ck_assert_uint_eq(m.recoveries, 1);

  ck_assert_int_eq(query(1, "after"), 0);
  RUN_UNTIL(R.t[1].done == 1);
  ck_assert_int_eq(R.t[1].status, 0);

  /* The next recovery's attempt is the second half-open success. */
  kill_cli(SIGKILL);
  RUN_UNTIL(count_ev(CLINK_RECOVERY_SUCCEEDED) == 2);
  ck_assert_int_eq(R.nev, 14);
  expect_ev(11, CLINK_RECOVERY_SCHEDULED, 1, CLINK_EEXITED, 5);
  expect_ev(12, CLINK_RECOVERY_ATTEMPT, 1, CLINK_EEXITED, 0);
  expect_ev(13, CLINK_RECOVERY_SUCCEEDED, 1, 0, 0);
  ck_assert_int_eq(R.nbev, 3);
  ck_assert_int_eq(R.bfrom[2], CLINK_BREAKER_HALF_OPEN);
  ck_assert_int_eq(R.bto[2], CLINK_BREAKER_CLOSED);
  s = bstats();
  ck_assert_int_eq(s.state, CLINK_BREAKER_CLOSED);
  ck_assert_uint_eq(s.total_successes, 2);
  ck_assert_uint_eq(s.half_open_in_flight, 0);
  R.event_hook = NULL;
  close_and_run();
}
END_TEST

/* The breaker is already open (a server-directed pause) when the process
 * dies: the first attempt is rejected with the pause's retry_after. */
START_TEST(breaker_open_before_crash_delays_first_attempt) {
  use_registry_breaker();
  set_policy(6);
  new_client();
  connect_and_turn(0);
  clink_breaker_open_for(R.b, uv_now(&R.loop), 300);
  kill_cli(SIGKILL);
  RUN_UNTIL(count_ev(CLINK_RECOVERY_SUCCEEDED) == 1);
  ck_assert_int_eq(R.nev, 5);
  expect_ev(0, CLINK_RECOVERY_SCHEDULED, 1, CLINK_EEXITED, 5);
  ck_assert_int_eq(R.ev[1].ev, CLINK_RECOVERY_REJECTED);
  ck_assert_uint_eq(R.ev[1].attempt, 1);
  ck_assert_int_eq(R.ev[1].err, CLINK_ECIRCUIT_OPEN);
  ck_assert_uint_gt(R.ev[1].delay, 10);
  ck_assert_uint_le(R.ev[1].delay, 300);
  expect_ev(2, CLINK_RECOVERY_SCHEDULED, 2, CLINK_ECIRCUIT_OPEN, R.ev[1].delay);
  expect_ev(3, CLINK_RECOVERY_ATTEMPT, 2, CLINK_ECIRCUIT_OPEN, 0);
  expect_ev(4, CLINK_RECOVERY_SUCCEEDED, 2, 0, 0);
  clink_breaker_stats s = bstats();
  ck_assert_int_eq(s.state, CLINK_BREAKER_HALF_OPEN); /* one success of two */
  ck_assert_uint_eq(s.half_open_in_flight, 0);
  ck_assert_uint_eq(metrics().recovery_attempts, 1);
  close_and_run();
}
END_TEST

/* ============================================================ idle probe */

START_TEST(idle_probe_finds_hung_cli_and_recovers) {
  ck_assert_int_eq(clink_options_set_idle_probe(opts, 20, 500), 0);
  set_policy(6);
  new_client();
  connect_wait();
  /* Healthy: probes go out after 20 ms idle and get an answer (the fake's
   * "unsupported" error reply counts). */
  RUN_UNTIL(metrics().probes >= 3);
  clink_client_metrics m = metrics();
  ck_assert_uint_eq(m.probe_failures, 0);
  ck_assert_uint_ge(m.control_requests, 1 + 3);
  ck_assert_int_eq(clink_client_get_state(R.c), CLINK_CLIENT_CONNECTED);
  ck_assert_int_eq(R.nev, 0);

  /* Hung while idle: it stops reading and answering. */
  kill_cli(SIGSTOP);
  RUN_UNTIL(count_ev(CLINK_RECOVERY_SUCCEEDED) == 1);
  m = metrics();
  ck_assert_uint_eq(m.probe_failures, 1);
  ck_assert_uint_eq(m.recoveries, 1);
  ck_assert_uint_eq(m.spawns, 2);
  ck_assert_uint_eq(clink_client_error_count(R.c, CLINK_ECONTROL_TIMEOUT), 1);
  expect_ev(0, CLINK_RECOVERY_SCHEDULED, 1, CLINK_EEXITED, 5);
  ck_assert_msg(strstr(R.last_error_at_scheduled, "signal 9") != NULL, "%s",
                R.last_error_at_scheduled);
  EXPECT_STATES(CLINK_CLIENT_CONNECTING, CLINK_CLIENT_CONNECTED, CLINK_CLIENT_RECOVERING,
                CLINK_CLIENT_CONNECTED);
  /* Probing goes on with the new process. */
  uint64_t p = m.probes;
  RUN_UNTIL(metrics().probes >= p + 2);
  ck_assert_uint_eq(metrics().probe_failures, 1);
  ck_assert_int_eq(query(0, "still works"), 0);
  RUN_UNTIL(R.t[0].done == 1);
  ck_assert_int_eq(R.t[0].status, 0);
  close_and_run();
}
END_TEST

/* ===================================================== close in recovery */

static void close_on_recovering(clink_client_state from, clink_client_state to) {
  if (to == CLINK_CLIENT_RECOVERING) do_close();
}

static void close_on_scheduled(const ev_rec *e) {
  if (e->ev == CLINK_RECOVERY_SCHEDULED) do_close();
}

static void close_on_attempt(const ev_rec *e) {
  if (e->ev != CLINK_RECOVERY_ATTEMPT) return;
  R.in_flight_at_hook = bstats().half_open_in_flight;
  do_close();
  ck_assert_uint_eq(bstats().half_open_in_flight, 0); /* released at once */
}

/* 0: from the state callback on RECOVERING; 1: from the recovery callback on
 * SCHEDULED; 2: on ATTEMPT, holding a half-open permit; 3: from the test
 * while the attempt's initialize is pending, holding a half-open permit. */
START_TEST(close_while_recovering) {
  env("FAKE_MSGS", "2");
  env("FAKE_CRASH_AFTER", "1");
  env("FAKE_CRASH_SIGNAL", "9");
  use_wrapper();
  use_registry_breaker();
  set_policy(6);
  new_client();
  connect_wait();
  /* Open for 0 ms: the next permit is a half-open probe. */
  clink_breaker_open_for(R.b, uv_now(&R.loop), 0);
  if (_i == 0) R.state_hook = close_on_recovering;
  if (_i == 1) R.event_hook = close_on_scheduled;
  if (_i == 2) R.event_hook = close_on_attempt;
  if (_i == 3) touch(R.slow_marker);
  ck_assert_int_eq(query(0, "dies"), 0);
  ck_assert_int_eq(query(1, "queued 1"), 0);
  ck_assert_int_eq(query(2, "queued 2"), 0);
  if (_i == 3) {
    RUN_UNTIL(count_ev(CLINK_RECOVERY_ATTEMPT) == 1);
    ck_assert_uint_eq(metrics().spawns, 2);
    ck_assert_uint_eq(bstats().half_open_in_flight, 1);
    ck_assert_int_eq(clink_client_get_state(R.c), CLINK_CLIENT_RECOVERING);
    do_close();
  }
  uv_run(&R.loop, UV_RUN_DEFAULT);
  ck_assert_int_eq(R.closes, 1);

  ck_assert_int_eq(R.t[0].done, 1);
  ck_assert_int_eq(R.t[0].status, CLINK_EEXITED);
  for (int i = 1; i <= 2; i++) {
    ck_assert_int_eq(R.t[i].done, 1);
    ck_assert_int_eq(R.t[i].status, UV_ECANCELED);
    ck_assert_int_eq(R.t[i].msgs, 0);
  }
  int want_events = _i == 0 ? 0 : _i == 1 ? 1 : 2;
  ck_assert_int_eq(R.nev, want_events);
  if (want_events > 0) expect_ev(0, CLINK_RECOVERY_SCHEDULED, 1, CLINK_EEXITED, 5);
  if (want_events > 1) expect_ev(1, CLINK_RECOVERY_ATTEMPT, 1, CLINK_EEXITED, 0);
  if (_i == 2) ck_assert_uint_eq(R.in_flight_at_hook, 1);
  ck_assert_uint_eq(R.spawns_at_close, _i == 3 ? 2 : 1); /* none after the close */
  clink_breaker_stats s = bstats();
  ck_assert_uint_eq(s.half_open_in_flight, 0);
  ck_assert_int_eq(s.state, CLINK_BREAKER_HALF_OPEN);
  ck_assert_uint_eq(s.total_failures + s.total_successes, 0); /* released, no verdict */
  EXPECT_STATES(CLINK_CLIENT_CONNECTING, CLINK_CLIENT_CONNECTED, CLINK_CLIENT_RECOVERING,
                CLINK_CLIENT_CLOSING, CLINK_CLIENT_CLOSED);
}
END_TEST

/* ============================================ API while recovering */

START_TEST(control_refused_queries_bounded_while_recovering) {
  ck_assert_int_eq(clink_options_set_max_queued_queries(opts, 3), 0);
  set_policy(6);
  new_client();
  connect_and_turn(0);
  kill_cli(SIGKILL);
  RUN_UNTIL(clink_client_get_state(R.c) == CLINK_CLIENT_RECOVERING);
  ck_assert_int_eq(API(clink_client_interrupt(R.c, on_ctl, &R)), CLINK_ENOT_CONNECTED);
  ck_assert_int_eq(API(clink_client_set_model(R.c, "m", on_ctl, &R)), CLINK_ENOT_CONNECTED);
  ck_assert_int_eq(API(clink_client_set_permission_mode(R.c, CLINK_PERMISSION_PLAN, on_ctl, &R)),
                   CLINK_ENOT_CONNECTED);
  ck_assert_int_eq(API(clink_client_control(R.c, "mcp_status", NULL, on_ctl, &R)),
                   CLINK_ENOT_CONNECTED);
  ck_assert_int_eq(API(clink_client_connect(R.c, on_connect, &R)), UV_EBUSY);
  ck_assert_int_eq(query(1, "a"), 0);
  ck_assert_int_eq(query(2, "b"), 0);
  ck_assert_int_eq(query(3, "c"), 0);
  ck_assert_int_eq(query(4, "d"), CLINK_EQUEUE_FULL);
  ck_assert_int_eq(API(clink_client_query_blocks(R.c, "[{\"type\":\"text\",\"text\":\"e\"}]",
                                                 on_msg, on_done, &R.t[5])),
                   CLINK_EQUEUE_FULL);
  RUN_UNTIL(R.t[3].done == 1);
  for (int i = 1; i <= 3; i++) {
    ck_assert_int_eq(R.t[i].done, 1);
    ck_assert_int_eq(R.t[i].status, 0);
    ck_assert_int_eq(R.t[i].results, 1);
    if (i > 1) ck_assert_int_lt(R.t[i - 1].seq, R.t[i].seq);
  }
  ck_assert_int_eq(R.t[4].done + R.t[5].done, 0);
  ck_assert_int_eq(R.ctls, 0);
  ck_assert_int_eq(R.connects, 1);
  /* Connected again: control requests work. */
  ck_assert_int_eq(API(clink_client_set_permission_mode(R.c, CLINK_PERMISSION_PLAN, on_ctl, &R)),
                   0);
  RUN_UNTIL(R.ctls == 1);
  ck_assert_int_eq(R.ctl_status[0], 0);
  close_and_run();
}
END_TEST

/* ======================================================== no policy */

/* 0: never set; 1: set, then cleared with NULL; 2: a hung CLI found by the
 * idle probe, no policy. The breaker is set but never consulted. */
START_TEST(without_policy_death_is_error) {
  use_registry_breaker();
  if (_i == 1) {
    set_policy(6);
    ck_assert_int_eq(clink_options_set_recovery(opts, NULL), 0);
  }
  if (_i == 2) {
    ck_assert_int_eq(clink_options_set_idle_probe(opts, 20, 500), 0);
  } else {
    env("FAKE_CRASH_AFTER", "0");
  }
  new_client();
  connect_wait();
  if (_i == 2) {
    RUN_UNTIL(metrics().probes >= 1);
    kill_cli(SIGSTOP);
    RUN_UNTIL(clink_client_get_state(R.c) == CLINK_CLIENT_ERROR);
    ck_assert_uint_eq(metrics().probe_failures, 1);
    const char *err = clink_client_last_error(R.c);
    ck_assert_msg(strstr(err, "signal 9") != NULL, "%s", err);
    ck_assert_msg(strstr(err, "did not answer an idle probe within 500 ms") != NULL, "%s", err);
  } else {
    ck_assert_int_eq(query(0, "dies"), 0);
    ck_assert_int_eq(query(1, "queued"), 0);
    RUN_UNTIL(R.t[1].done == 1);
    ck_assert_int_eq(R.t[0].status, CLINK_EEXITED);
    ck_assert_int_eq(R.t[1].status, CLINK_EEXITED);
    ck_assert_int_eq(R.t[0].state_at_done, CLINK_CLIENT_ERROR);
  }
  ck_assert_int_eq(clink_client_get_state(R.c), CLINK_CLIENT_ERROR);
  ck_assert_int_eq(query(2, "x"), CLINK_ENOT_CONNECTED);
  ck_assert_int_eq(R.nev, 0);
  clink_client_metrics m = metrics();
  ck_assert_uint_eq(m.spawns, 1);
  ck_assert_uint_eq(m.recovery_attempts + m.recoveries, 0);
  ck_assert_uint_eq(bstats().total_calls, 0);
  close_and_run();
  EXPECT_STATES(CLINK_CLIENT_CONNECTING, CLINK_CLIENT_CONNECTED, CLINK_CLIENT_ERROR,
                CLINK_CLIENT_CLOSING, CLINK_CLIENT_CLOSED);
}
END_TEST

/* The CLI dies after message k of a running turn, for every k of the turn
 * (0: right after system/init; 5: right before the result). Each time the
 * client recovers and the re-sent turn completes: no message position loses
 * a turn. */
START_TEST(crash_after_every_message_of_a_turn_recovers) {
  char k[16];
  snprintf(k, sizeof(k), "%d", _i);
  env("FAKE_MSGS", "5");
  env("FAKE_ECHO", "1");
  env("FAKE_CRASH_AFTER", k);
  env("FAKE_CRASH_SIGNAL", _i % 2 ? "9" : "11");
  env("FAKE_CRASH_TURN", "2"); /* turn 1 of each process is fine */
  set_policy(6);
  ck_assert_int_eq(clink_options_set_resend_interrupted_turn(opts, 1), 0);
  new_client();
  connect_and_turn(0);
  ck_assert_int_eq(query(1, "the turn that dies"), 0);
  RUN_UNTIL(R.t[1].done == 1);
  ck_assert_msg(R.t[1].status == 0, "k=%d: %s", _i, clink_err_name(R.t[1].status));
  ck_assert_int_ge(R.t[1].echo_hits, 1);
  ck_assert_int_eq(R.t[1].results, 1);
  clink_client_metrics m = metrics();
  ck_assert_uint_eq(m.recoveries, 1);
  ck_assert_uint_eq(m.spawns, 2);
  ck_assert_int_eq(clink_client_get_state(R.c), CLINK_CLIENT_CONNECTED);
  close_and_run();
}
END_TEST

/* ================================================================= main */

int main(void) {
  Suite *s = suite_create("recovery");
  TCase *tc;

#define TC(name, timeout)                         \
  tc = tcase_create(name);                        \
  tcase_add_checked_fixture(tc, setup, teardown); \
  tcase_set_timeout(tc, timeout);                 \
  suite_add_tcase(s, tc)

  TC("crash", 20);
  tcase_add_test(tc, crash_mid_turn_recovers_and_runs_queued_turn);
  TC("resend", 20);
  tcase_add_loop_test(tc, crash_after_every_message_of_a_turn_recovers, 0, 6);
  tcase_add_test(tc, resend_interrupted_turn_once_ahead_of_queue);
  tcase_add_test(tc, resent_turn_dies_again_fails_eexited);
  TC("resume", 20);
  tcase_add_test(tc, recovery_resumes_the_session);
  TC("give-up", 20);
  tcase_add_loop_test(tc, retries_exhausted_fails_queued_turns, 0, 2);
  tcase_add_test(tc, cli_gone_is_not_retried);
  tcase_add_test(tc, lost_conversation_starts_fresh);
  TC("attempts", 20);
  tcase_add_test(tc, init_timeout_during_recovery_is_retried);
  TC("breaker", 20);
  tcase_add_test(tc, breaker_opens_rejects_then_closes);
  tcase_add_test(tc, breaker_open_before_crash_delays_first_attempt);
  TC("probe", 20);
  tcase_add_test(tc, idle_probe_finds_hung_cli_and_recovers);
  TC("close", 20);
  tcase_add_loop_test(tc, close_while_recovering, 0, 4);
  TC("api", 20);
  tcase_add_test(tc, control_refused_queries_bounded_while_recovering);
  TC("no-policy", 20);
  tcase_add_loop_test(tc, without_policy_death_is_error, 0, 3);
#undef TC
  return clink_test_run(s);
}
