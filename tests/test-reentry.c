/* The re-entrancy matrix: from every callback the library makes, close every
 * object reachable from there, and the loop must still end cleanly
 * (uv_loop_close() == 0), with no abort and nothing leaked (the suite runs
 * under ASan and valgrind too). "Any user callback may call any public
 * function on any object, close included."
 *
 * One program per family exercises every callback of it once: the client
 * program (connect, state, messages, an error line, stderr, a permission
 * request, a control answer, a crash and its recovery through a half-open
 * breaker, whose HALF_OPEN -> CLOSED event is the abort); the pool
 * program (acquire results, pool events, a member's callbacks, the pool's
 * breaker); the execute program; the event sink's callback. Each run picks
 * one (callback, object) pair and closes that object the first time that
 * callback runs. */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "testutil.h"

typedef enum trig {
  T_STATE, T_CONNECT, T_MESSAGE, T_DONE, T_ERROR, T_STDERR, T_REQUEST, T_CONTROL,
  T_RECOVERY, T_BREAKER_HALF_OPEN, T_BREAKER_CLOSED, T_BREAKER_OTHER, T_EVENT_SINK,
  T_ACQUIRE, T_POOL_SPAWNED, T_POOL_CLOSED, T_POOL_LEAK, T_POOL_REPLACED,
  T_EXEC_OP, T_EXEC_DONE, T_COUNT
} trig;

static const char *const trig_names[] = {
    "state", "connect", "message", "done", "error", "stderr", "request", "control",
    "recovery", "breaker half-open", "breaker closed", "breaker other", "event sink",
    "acquire", "pool spawned", "pool closed", "pool leak", "pool replaced", "exec op",
    "exec done"};

typedef enum target { X_CLIENT, X_POOL, X_SINK, X_EXEC, X_COUNT } target;

static struct {
  uv_loop_t loop;
  trig trig;
  target target;
  int fired;          /* the close was made */
  int seen[T_COUNT];  /* callbacks seen */
  clink_client *c;
  clink_pool *pool;
  clink_events *sink;
  clink_breaker *b;
  clink_exec *ex;
  int client_closed, pool_closed, sink_closed, exec_done;
  int turns_done, turns_sent;
  uv_timer_t timer;
  int killed;
} R;

/* Runs the loop until cond holds or ms pass (the programs' steps can be cut
 * short by the close under test). */
static int timer_fired;
static void on_limit(uv_timer_t *t) {
  timer_fired = 1;
  uv_stop(t->loop);
}
#define RUN_FOR(cond, ms)                                          \
  do {                                                             \
    uv_timer_t lim_;                                               \
    uv_timer_init(&R.loop, &lim_);                                 \
    timer_fired = 0;                                               \
    uv_timer_start(&lim_, on_limit, (ms), 0);                      \
    while (!(cond) && !timer_fired)                                \
      if (uv_run(&R.loop, UV_RUN_ONCE) == 0) break;                \
    uv_close((uv_handle_t *)&lim_, NULL);                          \
    uv_run(&R.loop, UV_RUN_NOWAIT);                                \
  } while (0)

static void on_client_closed(clink_client *c, void *ud) {
  (void)c;
  (void)ud;
  R.client_closed++;
}

static void on_pool_closed(clink_pool *p, void *ud) {
  (void)p;
  (void)ud;
  R.pool_closed++;
}

static void on_sink_closed(clink_events *e, void *ud) {
  (void)e;
  (void)ud;
  R.sink_closed++;
}

/* Closes the chosen object the first time the chosen callback runs. */
static void hit(trig t) {
  R.seen[t]++;
  if (t != R.trig || R.fired) return;
  R.fired = 1;
  switch (R.target) {
    case X_CLIENT:
      if (R.c) clink_client_close(R.c, on_client_closed, NULL);
      break;
    case X_POOL:
      if (R.pool) clink_pool_shutdown(R.pool, CLINK_POOL_DRAIN, on_pool_closed, NULL);
      break;
    case X_SINK:
      if (R.sink) {
        /* The sink's users let go of it first (its documented order). */
        if (R.c) clink_client_set_events(R.c, NULL);
        if (R.pool) clink_pool_set_events(R.pool, NULL);
        if (R.b) clink_breaker_set_events(R.b, NULL);
        clink_events_close(R.sink, on_sink_closed, NULL);
        R.sink = NULL;
      }
      break;
    case X_EXEC:
      if (R.ex) clink_exec_cancel(R.ex);
      break;
    default:
      break;
  }
}

/* ------------------------------------------------------- client program */

static void on_state(clink_client *c, clink_client_state from, clink_client_state to,
                     void *ud) {
  hit(T_STATE);
}

static void on_done(clink_client *c, int status, const clink_msg *res, void *ud);

static void on_message(clink_client *c, const clink_msg *m, void *ud) { hit(T_MESSAGE); }

static void on_control(clink_client *c, int status, const clink_msg *resp, void *ud) {
  hit(T_CONTROL);
}

static void on_done(clink_client *c, int status, const clink_msg *res, void *ud) {
  R.turns_done++;
  hit(T_DONE);
  if (R.turns_done == 1) {
    /* Turn 2 dies mid-way: recovery through the (half-open) breaker. */
    clink_breaker_open_for(R.b, uv_now(&R.loop), 0);
    if (clink_client_query(c, "dies", on_message, on_done, NULL) == 0) R.turns_sent++;
  } else if (R.turns_done == 2) {
    if (clink_client_query(c, "after recovery", on_message, on_done, NULL) == 0)
      R.turns_sent++;
  } else if (R.turns_done == 3) {
    clink_client_set_model(c, "other", on_control, NULL);
  }
}

static void on_connect(clink_client *c, int status, void *ud) {
  hit(T_CONNECT);
  if (status == 0 && clink_client_query(c, "first", on_message, on_done, NULL) == 0)
    R.turns_sent++;
}

static void on_error(clink_client *c, int err, const char *detail, void *ud) { hit(T_ERROR); }

static void on_stderr(clink_client *c, const char *line, size_t len, void *ud) {
  hit(T_STDERR);
}

static void on_request(clink_client *c, clink_request *req, void *ud) {
  hit(T_REQUEST);
  clink_request_allow(req, NULL, NULL);
}

static void on_recovery(clink_client *c, clink_recovery_event ev, unsigned attempt, int err,
                        uint64_t delay, void *ud) {
  hit(T_RECOVERY);
}

static void on_breaker(clink_breaker *b, clink_breaker_event ev, clink_breaker_state from,
                       clink_breaker_state to, void *ud) {
  if (ev == CLINK_BREAKER_EVENT_STATE && to == CLINK_BREAKER_HALF_OPEN)
    hit(T_BREAKER_HALF_OPEN);
  else if (ev == CLINK_BREAKER_EVENT_STATE && to == CLINK_BREAKER_CLOSED)
    hit(T_BREAKER_CLOSED);
  else
    hit(T_BREAKER_OTHER);
}

static void on_sink_event(clink_events *e, const clink_event *ev, void *ud) {
  hit(T_EVENT_SINK);
}

static clink_options *client_opts(void) {
  clink_options *o;
  ck_assert_int_eq(clink_options_new(&o), 0);
  ck_assert_int_eq(clink_options_set_cli_path(o, clink_test_fake_cli()), 0);
  ck_assert_int_eq(clink_options_set_exec_shim(o, clink_test_exec_shim()), 0);
  ck_assert_int_eq(clink_options_set_close_grace_ms(o, 100, 100), 0);
  ck_assert_int_eq(clink_options_set_env(o, "FAKE_TOOL", "1"), 0);
  ck_assert_int_eq(clink_options_set_env(o, "FAKE_GARBAGE", "1"), 0);
  ck_assert_int_eq(clink_options_set_env(o, "FAKE_STDERR_TURNS", "1"), 0);
  /* Each process's turn 2 dies after its first text message. */
  ck_assert_int_eq(clink_options_set_env(o, "FAKE_CRASH_TURN", "2"), 0);
  ck_assert_int_eq(clink_options_set_env(o, "FAKE_CRASH_AFTER", "1"), 0);
  ck_assert_int_eq(clink_options_set_permission_cb(o, on_request, NULL), 0);
  ck_assert_int_eq(clink_options_set_stderr_cb(o, on_stderr, NULL), 0);
  clink_retry_policy *p;
  ck_assert_int_eq(clink_retry_policy_new(&p), 0);
  uint64_t sched[] = {5};
  ck_assert_int_eq(clink_retry_policy_set_schedule(p, sched, 1), 0);
  ck_assert_int_eq(clink_retry_policy_set_max_attempts(p, 3), 0);
  ck_assert_int_eq(clink_options_set_recovery(o, p), 0);
  clink_retry_policy_free(p);
  return o;
}

static void new_breaker(void) {
  clink_breaker_config *cfg;
  ck_assert_int_eq(clink_breaker_config_new(&cfg), 0);
  ck_assert_int_eq(clink_breaker_config_set_half_open(cfg, 1, 1, 0), 0);
  ck_assert_int_eq(clink_breaker_new(&R.b, "claude_sdk", cfg, 7), 0);
  clink_breaker_config_free(cfg);
  clink_breaker_set_event_cb(R.b, on_breaker, NULL);
}

static void new_sink(void) {
  ck_assert_int_eq(clink_events_new(&R.sink, &R.loop), 0);
  ck_assert_int_eq(clink_events_set_level(R.sink, CLINK_LOG_DEBUG), 0);
  clink_events_set_cb(R.sink, on_sink_event, NULL);
}

static void setup(void) {
  memset(&R, 0, sizeof(R));
  ck_assert_int_eq(uv_loop_init(&R.loop), 0);
}

static void finish(void) {
  /* Whatever the chosen close left open is closed now, from outside. A
   * pool's member is the pool's to close (and gone with the pool). */
  if (R.c && !R.pool && !R.client_closed && !(R.target == X_CLIENT && R.fired))
    clink_client_close(R.c, on_client_closed, NULL);
  if (R.pool && !(R.target == X_POOL && R.fired))
    clink_pool_shutdown(R.pool, CLINK_POOL_IMMEDIATE, on_pool_closed, NULL);
  uv_run(&R.loop, UV_RUN_DEFAULT);
  if (R.sink) {
    clink_events_close(R.sink, on_sink_closed, NULL);
    uv_run(&R.loop, UV_RUN_DEFAULT);
  }
  clink_breaker_free(R.b);
  ck_assert_int_eq(uv_loop_close(&R.loop), 0);
}

/* Runs the client program until it is done (or closed). */
static void client_program(void) {
  new_breaker();
  new_sink();
  clink_options *o = client_opts();
  ck_assert_int_eq(clink_client_new(&R.c, &R.loop, o), 0);
  clink_options_free(o);
  clink_client_set_state_cb(R.c, on_state, NULL);
  clink_client_set_error_cb(R.c, on_error, NULL);
  clink_client_set_recovery_cb(R.c, on_recovery, NULL);
  clink_client_set_breaker(R.c, R.b);
  clink_client_set_events(R.c, R.sink);
  clink_breaker_set_events(R.b, R.sink);
  ck_assert_int_eq(clink_client_connect(R.c, on_connect, NULL), 0);
  /* Until the program ends: 3 turns and a control, or a close. */
  RUN_FOR(R.client_closed || (R.turns_done >= 3 && R.seen[T_CONTROL]), 5000);
}

static const trig client_trigs[] = {T_STATE,    T_CONNECT,  T_MESSAGE,          T_DONE,
                                    T_ERROR,    T_STDERR,   T_REQUEST,          T_CONTROL,
                                    T_RECOVERY, T_BREAKER_HALF_OPEN, T_BREAKER_CLOSED,
                                    T_EVENT_SINK};

START_TEST(close_from_client_callbacks) {
  int n = (int)(sizeof(client_trigs) / sizeof(*client_trigs));
  R.trig = client_trigs[_i % n];
  R.target = _i < n ? X_CLIENT : X_SINK;
  client_program();
  ck_assert_msg(R.seen[R.trig] > 0, "%s never ran", trig_names[R.trig]);
  ck_assert(R.fired);
  finish();
  ck_assert_int_eq(R.client_closed, 1);
}
END_TEST

/* The abort, exactly: recovery + breaker half-open when the CLI is
 * killed; the reconnect succeeds and HALF_OPEN -> CLOSED closes the client. */
START_TEST(close_from_breaker_closed_after_recovery) {
  R.trig = T_BREAKER_CLOSED;
  R.target = X_CLIENT;
  client_program();
  ck_assert_int_eq(R.seen[T_BREAKER_CLOSED], 1);
  finish();
  ck_assert_int_eq(R.client_closed, 1);
  ck_assert_int_eq(R.turns_done, R.turns_sent); /* every turn ended once */
}
END_TEST

/* --------------------------------------------------------- pool program */

static void on_pool_turn(clink_client *c, int status, const clink_msg *res, void *ud) {
  hit(T_DONE);
  if (R.pool) clink_pool_release(R.pool, c); /* legal in any state */
}

static void on_acquired(clink_pool *p, int status, clink_client *c, uint64_t ra, void *ud) {
  hit(T_ACQUIRE);
  if (status != 0) return;
  int n = (int)(intptr_t)ud;
  if (n == 0) {
    /* Held past the leak threshold, then a turn. */
    R.c = c;
    return;
  }
  if (clink_client_query(c, "pooled", on_message, on_pool_turn, NULL) != 0)
    clink_pool_release(p, c);
}

static void on_pool_event(clink_pool *p, clink_pool_event ev, clink_client *c,
                          const char *detail, void *ud) {
  switch (ev) {
    case CLINK_POOL_EVENT_SPAWNED: hit(T_POOL_SPAWNED); break;
    case CLINK_POOL_EVENT_CLOSED: hit(T_POOL_CLOSED); break;
    case CLINK_POOL_EVENT_LEAK:
      hit(T_POOL_LEAK);
      /* The leak ends: released, then its idle CLI is killed (a
       * replacement follows). */
      if (c && !R.killed && R.pool) {
        int pid = clink_client_pid(c);
        R.killed = 1;
        /* Its replacement's spawn asks a half-open breaker. */
        clink_breaker_open_for(R.b, uv_now(&R.loop), 0);
        if (clink_pool_release(R.pool, c) == 0 && pid > 0) kill(pid, SIGKILL);
        R.c = NULL;
      }
      break;
    case CLINK_POOL_EVENT_REPLACED: hit(T_POOL_REPLACED); break;
    default: break;
  }
}

static void pool_program(void) {
  new_breaker();
  new_sink();
  clink_options *o = client_opts();
  clink_pool_config *cfg;
  ck_assert_int_eq(clink_pool_config_new(&cfg), 0);
  ck_assert_int_eq(clink_pool_config_set_size(cfg, 1, 2), 0);
  ck_assert_int_eq(clink_pool_config_set_leak_threshold_ms(cfg, 50), 0);
  ck_assert_int_eq(clink_pool_config_set_shutdown(cfg, 10, 500, 1000), 0);
  ck_assert_int_eq(clink_pool_new(&R.pool, &R.loop, o, cfg), 0);
  clink_options_free(o);
  clink_pool_config_free(cfg);
  clink_pool_set_breaker(R.pool, R.b);
  clink_pool_set_event_cb(R.pool, on_pool_event, NULL);
  clink_pool_set_events(R.pool, R.sink);
  clink_breaker_set_events(R.b, R.sink);
  ck_assert_int_eq(clink_pool_acquire(R.pool, NULL, "reentry.c", on_acquired, (void *)0), 0);
  ck_assert_int_eq(clink_pool_acquire(R.pool, NULL, NULL, on_acquired, (void *)1), 0);
  RUN_FOR(R.pool_closed || (R.seen[T_POOL_REPLACED] && R.seen[T_DONE] &&
                            R.seen[T_BREAKER_CLOSED]), 3000);
}

static const trig pool_trigs[] = {T_ACQUIRE,     T_POOL_SPAWNED, T_POOL_CLOSED,
                                  T_POOL_LEAK,   T_POOL_REPLACED, T_DONE,
                                  T_MESSAGE,     T_STDERR,       T_REQUEST,
                                  T_BREAKER_HALF_OPEN, T_BREAKER_CLOSED, T_EVENT_SINK};

START_TEST(close_from_pool_callbacks) {
  int n = (int)(sizeof(pool_trigs) / sizeof(*pool_trigs));
  R.trig = pool_trigs[_i % n];
  R.target = _i < n ? X_POOL : _i < 2 * n ? X_CLIENT : X_SINK;
  pool_program();
  ck_assert_msg(R.seen[R.trig] > 0, "%s never ran", trig_names[R.trig]);
  finish();
  ck_assert_int_eq(R.pool_closed, 1);
}
END_TEST

/* ------------------------------------------------------ execute program */

static void exec_op(clink_exec *ex, void *ud) {
  R.ex = ex;
  hit(T_EXEC_OP);
  clink_exec_done(ex, clink_exec_attempts(ex) < 3 ? CLINK_EEXITED : 0, 0);
}

static void exec_done(clink_exec *ex, int status, void *ud) {
  R.exec_done++;
  R.ex = NULL;
  hit(T_EXEC_DONE);
}

START_TEST(close_from_execute_callbacks) {
  R.trig = _i % 2 ? T_EXEC_DONE : T_EXEC_OP;
  R.target = _i < 2 ? X_EXEC : X_SINK;
  new_breaker();
  new_sink();
  clink_breaker_set_events(R.b, R.sink);
  clink_retry_policy *p;
  ck_assert_int_eq(clink_retry_policy_new(&p), 0);
  ck_assert_int_eq(clink_retry_policy_set_exponential(p, 1, 2, 2.0, CLINK_JITTER_NONE), 0);
  clink_exec *ex;
  ck_assert_int_eq(clink_execute(&ex, &R.loop, R.b, p, exec_op, exec_done, NULL), 0);
  clink_retry_policy_free(p);
  uv_run(&R.loop, UV_RUN_DEFAULT);
  ck_assert_int_eq(R.exec_done, 1);
  finish();
}
END_TEST

int main(void) {
  Suite *s = suite_create("reentry");
  TCase *tc = tcase_create("client");
  tcase_add_checked_fixture(tc, setup, NULL);
  tcase_set_timeout(tc, 30);
  int nc = (int)(sizeof(client_trigs) / sizeof(*client_trigs));
  tcase_add_loop_test(tc, close_from_client_callbacks, 0, 2 * nc);
  tcase_add_test(tc, close_from_breaker_closed_after_recovery);
  suite_add_tcase(s, tc);
  tc = tcase_create("pool");
  tcase_add_checked_fixture(tc, setup, NULL);
  tcase_set_timeout(tc, 30);
  int np = (int)(sizeof(pool_trigs) / sizeof(*pool_trigs));
  tcase_add_loop_test(tc, close_from_pool_callbacks, 0, 3 * np);
  suite_add_tcase(s, tc);
  tc = tcase_create("execute");
  tcase_add_checked_fixture(tc, setup, NULL);
  tcase_add_loop_test(tc, close_from_execute_callbacks, 0, 4);
  suite_add_tcase(s, tc);
  return clink_test_run(s);
}
