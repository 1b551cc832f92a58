/* clink_pool against the fake CLI: warm fill, try_acquire, deferred acquire,
 * spawning under max, FIFO waiters, timeouts and the waiter bound, release
 * of healthy, unhealthy and dead members, background replacement, turn and
 * time limits, validation probes, leaks, session affinity, bursts, the
 * breaker, shutdown; and the pure health/selection helpers.
 *
 * No sleeps: a test runs the loop until a counter moves (RUN_UNTIL) and
 * checks counts afterwards; waiting for a time to pass is a uv_timer on the
 * same loop. Every public call goes through API(), and every callback checks
 * that it is not running inside one of them. Timing is asserted with lower
 * bounds only. */
#include <math.h>
#include <signal.h>
#include <fcntl.h>
#include <stdio.h>
#include <sys/resource.h>
#include <stdlib.h>
#include <string.h>
#include <sys/types.h>
#include <unistd.h>

#include <claudelink.h>

#include "base/rand.h"
#include "pool/pool-select.h"
#include "testutil.h"

#define MAX_ACQ 128
#define MAX_PIDS 256

typedef struct acq {
  int done, status, seq;
  clink_client *c;
  int pid;
  uint64_t retry_after, at_ms;
  int release_in_cb; /* release right away from the callback */
  int work_in_cb;    /* run a turn; on failure release and acquire again */
  int worked, retries;
} acq;

typedef struct turn {
  int done, status;
} turn;

static struct {
  uv_loop_t loop;
  clink_pool *pool;
  clink_options *opts;
  clink_pool_config *cfg;
  acq a[MAX_ACQ];
  int seq;
  int ev[5];
  int closed[CLINK_POOL_CLOSE_REASON_SLOTS];
  uint64_t spawned_at_ms, closed_at_ms[CLINK_POOL_CLOSE_REASONS_], leak_at_ms;
  uint32_t idle_at_close[CLINK_POOL_CLOSE_REASONS_];
  char leak_where[64];
  clink_client *closed_client;
  clink_client *release_on_closed; /* release this client from its CLOSED event */
  int release_on_closed_rc;
  int pool_closes;
  void *pool_close_ud;
  int shut_down;
  int resume_argv;   /* argv lines carrying --resume=<want_resume> */
  char want_resume[128];
  int argv_lines;
  uv_timer_t timer;
  int timer_fired;
  int pids[MAX_PIDS];
  int n_pids;
} T;

static int in_api, api_rc;
#define API(expr) (in_api++, api_rc = (expr), in_api--, api_rc)
#define NOT_IN_API() ck_assert_msg(in_api == 0, "callback inside an API call")

#define RUN_UNTIL(cond)                                                        \
  do {                                                                         \
    while (!(cond))                                                            \
      ck_assert_msg(uv_run(&T.loop, UV_RUN_ONCE) != 0 || (cond),               \
                    "loop ended before: " #cond);                              \
  } while (0)

static uint64_t now_ms(void) { return uv_now(&T.loop); }

static void env(const char *name, const char *value) {
  ck_assert_int_eq(clink_options_set_env(T.opts, name, value), 0);
}

static clink_pool_stats stats(void) {
  clink_pool_stats s;
  memset(&s, 0, sizeof(s));
  s.struct_size = sizeof(s);
  ck_assert_int_eq(clink_pool_get_stats(T.pool, &s), 0);
  return s;
}

static void note_pid(int pid) {
  for (int i = 0; i < T.n_pids; i++)
    if (T.pids[i] == pid) return;
  ck_assert_int_lt(T.n_pids, MAX_PIDS);
  T.pids[T.n_pids++] = pid;
}

/* ------------------------------------------------------------ callbacks */

static int reason_of(const char *detail) {
  for (int i = 0; i < CLINK_POOL_CLOSE_REASONS_; i++)
    if (detail && strcmp(detail, clink_pool_close_reason_name((clink_pool_close_reason)i)) == 0)
      return i;
  ck_abort_msg("unknown close reason %s", detail ? detail : "(null)");
  return -1;
}

static void on_event(clink_pool *p, clink_pool_event ev, clink_client *c, const char *detail,
                     void *ud) {
  NOT_IN_API();
  ck_assert_ptr_eq(ud, &T);
  ck_assert_int_le((int)ev, 4);
  T.ev[ev]++;
  switch (ev) {
    case CLINK_POOL_EVENT_SPAWNED:
      ck_assert_ptr_nonnull(c);
      ck_assert_int_eq(clink_client_get_state(c), CLINK_CLIENT_CONNECTED);
      note_pid(clink_client_pid(c));
      T.spawned_at_ms = now_ms();
      break;
    case CLINK_POOL_EVENT_CLOSED: {
      int r = reason_of(detail);
      T.closed[r]++;
      T.closed_at_ms[r] = now_ms();
      clink_pool_stats s = stats();
      T.idle_at_close[r] = s.idle;
      T.closed_client = c;
      if (T.release_on_closed == c && r == CLINK_POOL_CLOSE_SHUTDOWN) {
        T.release_on_closed = NULL;
        T.release_on_closed_rc = API(clink_pool_release(p, c));
      }
      break;
    }
    case CLINK_POOL_EVENT_LEAK:
      snprintf(T.leak_where, sizeof(T.leak_where), "%s", detail ? detail : "(null)");
      T.leak_at_ms = now_ms();
      break;
    case CLINK_POOL_EVENT_REPLACED:
      ck_assert_ptr_nonnull(c);
      break;
    case CLINK_POOL_EVENT_SHUTDOWN:
      ck_assert_int_eq(T.pool_closes, 0); /* the event comes first */
      break;
  }
}

static void on_acquired(clink_pool *p, int status, clink_client *c, uint64_t retry_after,
                        void *ud);

/* A worker's turn ended: keep the result, or start over on another member. */
static void on_work_done(clink_client *c, int status, const clink_msg *result, void *ud) {
  NOT_IN_API();
  acq *a = ud;
  ck_assert_int_eq(API(clink_pool_release(T.pool, c)), 0);
  if (status == 0) {
    a->worked = 1;
    return;
  }
  a->retries++;
  a->done = 0;
  ck_assert_int_eq(API(clink_pool_acquire(T.pool, NULL, NULL, on_acquired, a)), 0);
}

static void on_acquired(clink_pool *p, int status, clink_client *c, uint64_t retry_after,
                        void *ud) {
  NOT_IN_API();
  acq *a = ud;
  ck_assert_ptr_eq(p, T.pool);
  ck_assert_int_eq(a->done, 0);
  a->done = 1;
  a->status = status;
  a->c = c;
  a->seq = ++T.seq;
  a->retry_after = retry_after;
  a->at_ms = now_ms();
  if (status == 0) {
    ck_assert_ptr_nonnull(c);
    ck_assert_int_eq(clink_client_get_state(c), CLINK_CLIENT_CONNECTED);
    a->pid = clink_client_pid(c);
    if (a->release_in_cb) ck_assert_int_eq(API(clink_pool_release(p, c)), 0);
    if (a->work_in_cb && API(clink_client_query(c, "work", NULL, on_work_done, a)) != 0)
      on_work_done(c, api_rc, NULL, a);
  } else {
    ck_assert_ptr_null(c);
  }
}

static void on_pool_closed(clink_pool *p, void *ud) {
  NOT_IN_API();
  T.pool_closes++;
  T.pool_close_ud = ud;
}

static void on_turn(clink_client *c, int status, const clink_msg *result, void *ud) {
  NOT_IN_API();
  turn *t = ud;
  t->done = 1;
  t->status = status;
}

static void on_stderr(clink_client *c, const char *line, size_t len, void *ud) {
  if (len < 6 || strncmp(line, "argv: ", 6) != 0) return;
  T.argv_lines++;
  char want[160];
  snprintf(want, sizeof(want), "\"--resume=%s\"", T.want_resume);
  if (T.want_resume[0] && memmem(line, len, want, strlen(want))) T.resume_argv++;
}

static void on_timer(uv_timer_t *t) {
  T.timer_fired = 1;
  uv_stop(t->loop); /* a timer that fires first in an iteration would let it block */
}

/* Lets ms pass on the loop (no sleep: the loop keeps serving). */
static void wait_ms(uint64_t ms) {
  T.timer_fired = 0;
  uv_timer_start(&T.timer, on_timer, ms, 0);
  RUN_UNTIL(T.timer_fired);
}

/* -------------------------------------------------------------- helpers */

static void setup(void) {
  memset(&T, 0, sizeof(T));
  in_api = 0;
  ck_assert_int_eq(uv_loop_init(&T.loop), 0);
  uv_timer_init(&T.loop, &T.timer);
  uv_unref((uv_handle_t *)&T.timer);
  ck_assert_int_eq(clink_options_new(&T.opts), 0);
  ck_assert_int_eq(clink_options_set_cli_path(T.opts, clink_test_fake_cli()), 0);
  ck_assert_int_eq(clink_options_set_exec_shim(T.opts, clink_test_exec_shim()), 0);
  ck_assert_int_eq(clink_options_set_close_grace_ms(T.opts, 50, 50), 0);
  ck_assert_int_eq(clink_options_set_connect_timeout_ms(T.opts, 10000), 0);
  ck_assert_int_eq(clink_pool_config_new(&T.cfg), 0);
  ck_assert_int_eq(clink_pool_config_set_acquire_timeout_ms(T.cfg, 10000), 0);
  ck_assert_int_eq(clink_pool_config_set_validation(T.cfg, 0, 0), 0);
  ck_assert_int_eq(clink_pool_config_set_max_lifetime_ms(T.cfg, 0, 0), 0);
  ck_assert_int_eq(clink_pool_config_set_idle_timeout_ms(T.cfg, 0), 0);
  ck_assert_int_eq(clink_pool_config_set_shutdown(T.cfg, 10, 1000, 2000), 0);
}

static void make_pool(unsigned min_idle, unsigned max_size) {
  ck_assert_int_eq(clink_pool_config_set_size(T.cfg, min_idle, max_size), 0);
  ck_assert_int_eq(API(clink_pool_new(&T.pool, &T.loop, T.opts, T.cfg)), 0);
  clink_pool_set_event_cb(T.pool, on_event, &T);
}

static void shutdown_pool(clink_pool_shutdown_mode mode) {
  ck_assert_int_eq(API(clink_pool_shutdown(T.pool, mode, on_pool_closed, &T)), 0);
  T.shut_down = 1;
  RUN_UNTIL(T.pool_closes == 1);
}

static void teardown(void) {
  if (!T.shut_down && T.pool) shutdown_pool(CLINK_POOL_IMMEDIATE);
  ck_assert_int_eq(T.pool_closes, T.pool ? 1 : 0);
  if (T.pool) ck_assert_int_eq(T.ev[CLINK_POOL_EVENT_SHUTDOWN], 1);
  ck_assert_ptr_eq(T.pool_close_ud, T.pool ? &T : NULL);
  clink_options_free(T.opts);
  clink_pool_config_free(T.cfg);
  uv_close((uv_handle_t *)&T.timer, NULL);
  CLINK_TEST_LOOP_DONE(&T.loop);
}

static void acquire(int i, const char *sid, const char *where) {
  ck_assert_int_lt(i, MAX_ACQ);
  ck_assert_int_eq(API(clink_pool_acquire(T.pool, sid, where, on_acquired, &T.a[i])), 0);
  ck_assert_int_eq(T.a[i].done, 0); /* never inside the call */
}

static uint64_t control_requests(const clink_client *c) {
  clink_client_metrics m;
  m.struct_size = sizeof(m);
  ck_assert_int_eq(clink_client_get_metrics(c, &m), 0);
  return m.control_requests;
}

static void run_turn(clink_client *c, const char *prompt, int expect) {
  turn t = {0};
  ck_assert_int_eq(API(clink_client_query(c, prompt, NULL, on_turn, &t)), 0);
  RUN_UNTIL(t.done);
  ck_assert_int_eq(t.status, expect);
}

static void wait_idle(uint32_t n) {
  clink_pool_stats s;
  do {
    s = stats();
    if (s.idle >= n && s.starting == 0) break;
    ck_assert_msg(uv_run(&T.loop, UV_RUN_ONCE) != 0, "loop ended before %u idle", n);
  } while (1);
}

/* ---------------------------------------------------------- pure helpers */

START_TEST(health_score_orders_members) {
  clink__pool_health fast = {10, 10, 0, 0, 0}, slow = {500, 10, 0, 0, 0};
  clink__pool_health failing = {10, 5, 5, 0, 0}, fresh = {0, 0, 0, 0, 0};
  clink__pool_health old = {10, 10, 0, 900, 1000};
  ck_assert(clink__pool_score(&fast) < clink__pool_score(&slow));
  ck_assert(clink__pool_score(&fast) < clink__pool_score(&failing));
  ck_assert(clink__pool_score(&fresh) <= clink__pool_score(&fast));
  ck_assert(clink__pool_score(&fast) < clink__pool_score(&old));
  ck_assert(clink__pool_score(&fresh) >= 1.0);
  /* Age counts up to the lifetime, then saturates. */
  clink__pool_health older = {10, 10, 0, 5000, 1000};
  ck_assert(fabs(clink__pool_score(&older) - 11.0 * 1.5) < 1e-9);
}
END_TEST

START_TEST(p2c_picks_two_distinct_in_range) {
  uint64_t seed = 42, hits[7] = {0};
  for (int k = 0; k < 70000; k++) {
    size_t i, j;
    clink__pool_p2c(clink__splitmix64(&seed), 7, &i, &j);
    ck_assert_uint_lt(i, 7);
    ck_assert_uint_lt(j, 7);
    ck_assert_uint_ne(i, j);
    hits[i]++;
    hits[j]++;
  }
  for (int k = 0; k < 7; k++) ck_assert(hits[k] > 18000 && hits[k] < 22000);
  size_t i, j;
  clink__pool_p2c(12345, 1, &i, &j);
  ck_assert_uint_eq(i, 0);
  ck_assert_uint_eq(j, 0);
  /* Seeded: reproducible. */
  uint64_t s1 = 7, s2 = 7;
  for (int k = 0; k < 100; k++) ck_assert_uint_eq(clink__splitmix64(&s1), clink__splitmix64(&s2));
}
END_TEST

START_TEST(rebalance_picks_only_a_clear_outlier) {
  double scores[4] = {10, 11, 12, 100};
  uint64_t turns[4] = {5, 5, 5, 5};
  ck_assert_uint_eq(clink__pool_rebalance_pick(scores, turns, 4), 3);
  /* Not enough evidence. */
  turns[3] = 2;
  ck_assert_uint_eq(clink__pool_rebalance_pick(scores, turns, 4), SIZE_MAX);
  turns[3] = 5;
  /* Not bad enough. */
  scores[3] = 30;
  ck_assert_uint_eq(clink__pool_rebalance_pick(scores, turns, 4), SIZE_MAX);
  /* Never the last healthy member. */
  double one[1] = {1000};
  uint64_t t1[1] = {100};
  ck_assert_uint_eq(clink__pool_rebalance_pick(one, t1, 1), SIZE_MAX);
  ck_assert_uint_eq(clink__pool_rebalance_pick(one, t1, 0), SIZE_MAX);
  double two[2] = {1, 10};
  uint64_t t2[2] = {3, 3};
  ck_assert_uint_eq(clink__pool_rebalance_pick(two, t2, 2), 1);
}
END_TEST

START_TEST(lifetime_jitter_and_wait_buckets) {
  uint64_t seed = 1;
  for (int k = 0; k < 1000; k++) {
    uint64_t l = clink__pool_lifetime(100000, 2.5, clink__splitmix64(&seed));
    ck_assert(l <= 100000 && l >= 97500);
  }
  ck_assert_uint_eq(clink__pool_lifetime(0, 2.5, 99), 0);
  ck_assert_uint_eq(clink__pool_lifetime(1000, 0, 99), 1000);
  ck_assert_uint_eq(clink__pool_wait_bucket(0, 12), 0);
  ck_assert_uint_eq(clink__pool_wait_bucket(1, 12), 0);
  ck_assert_uint_eq(clink__pool_wait_bucket(2, 12), 1);
  ck_assert_uint_eq(clink__pool_wait_bucket(10, 12), 1);
  ck_assert_uint_eq(clink__pool_wait_bucket(1000, 12), 3);
  ck_assert_uint_eq(clink__pool_wait_bucket(10000001, 12), 8);
  ck_assert_uint_eq(clink__pool_wait_bucket(UINT64_MAX, 12), 11);
}
END_TEST

START_TEST(config_validation) {
  clink_pool_config *c;
  ck_assert_int_eq(clink_pool_config_new(&c), 0);
  ck_assert_int_eq(clink_pool_config_set_size(c, 0, 0), UV_EINVAL);
  ck_assert_int_eq(clink_pool_config_set_size(c, 3, 2), UV_EINVAL);
  ck_assert_int_eq(clink_pool_config_set_size(c, 0, 1), 0);
  /* Timeouts: 0 and CLINK_NEVER both mean no limit (one rule). */
  ck_assert_int_eq(clink_pool_config_set_acquire_timeout_ms(c, 0), 0);
  ck_assert_int_eq(clink_pool_config_set_acquire_timeout_ms(c, CLINK_NEVER), 0);
  ck_assert_int_eq(clink_pool_config_set_max_lifetime_ms(c, 1000, 101), UV_EINVAL);
  ck_assert_int_eq(clink_pool_config_set_max_lifetime_ms(c, 1000, -1), UV_EINVAL);
  ck_assert_int_eq(clink_pool_config_set_validation(c, 10, 0), 0);
  ck_assert_int_eq(clink_pool_config_set_shutdown(c, 0, 1, 1), UV_EINVAL);
  ck_assert_int_eq(clink_pool_config_set_max_waiters(c, 0), 0);
  ck_assert_int_eq(clink_pool_config_set_isolation(c, 2), 0);
  ck_assert_int_eq(clink_pool_config_set_isolation(NULL, 1), UV_EINVAL);
  clink_pool_config_free(c);
  clink_pool_config_free(NULL);
  clink_pool *p = NULL;
  ck_assert_int_eq(clink_pool_new(&p, NULL, T.opts, T.cfg), UV_EINVAL);
  ck_assert_int_eq(clink_pool_new(&p, &T.loop, NULL, T.cfg), UV_EINVAL);
  /* A profile that names a conversation would be shared by every member. */
  clink_options *o;
  ck_assert_int_eq(clink_options_dup(&o, T.opts), 0);
  ck_assert_int_eq(clink_options_set_resume(o, "abc"), 0);
  ck_assert_int_eq(clink_pool_new(&p, &T.loop, o, T.cfg), UV_EINVAL);
  ck_assert_int_eq(clink_options_set_resume(o, NULL), 0);
  ck_assert_int_eq(clink_options_set_continue(o, 1), 0);
  ck_assert_int_eq(clink_pool_new(&p, &T.loop, o, T.cfg), UV_EINVAL);
  ck_assert_int_eq(clink_options_set_continue(o, 0), 0);
  ck_assert_int_eq(clink_options_set_session_id(o, "s"), 0);
  ck_assert_int_eq(clink_pool_new(&p, &T.loop, o, T.cfg), UV_EINVAL);
  ck_assert_int_eq(clink_options_set_session_id(o, NULL), 0);
  ck_assert_int_eq(clink_options_set_fork_session(o, 1), 0);
  ck_assert_int_eq(clink_pool_new(&p, &T.loop, o, T.cfg), UV_EINVAL);
  ck_assert_ptr_null(p);
  clink_options_free(o);
}
END_TEST

/* --------------------------------------------------------------- warmth */

START_TEST(idle_pool_does_not_hold_the_loop) {
  make_pool(0, 2);
  /* Nothing to do: the loop ends by itself. */
  ck_assert_int_eq(uv_run(&T.loop, UV_RUN_DEFAULT), 0);
  acquire(0, NULL, NULL);
  RUN_UNTIL(T.a[0].done);
  ck_assert_int_eq(T.a[0].status, 0);
  ck_assert_int_eq(API(clink_pool_release(T.pool, T.a[0].c)), 0);
  shutdown_pool(CLINK_POOL_DRAIN);
  ck_assert_int_eq(uv_run(&T.loop, UV_RUN_DEFAULT), 0);
}
END_TEST

START_TEST(warm_fill_to_min_idle) {
  make_pool(3, 5);
  clink_pool_stats s = stats();
  ck_assert_uint_eq(s.size, 0); /* filling starts from the loop */
  RUN_UNTIL(T.ev[CLINK_POOL_EVENT_SPAWNED] == 3);
  s = stats();
  ck_assert_uint_eq(s.size, 3);
  ck_assert_uint_eq(s.idle, 3);
  ck_assert_uint_eq(s.starting, 0);
  ck_assert_uint_eq(s.in_use, 0);
  ck_assert_uint_eq(s.created, 3);
  ck_assert_uint_eq(s.closed, 0);
  ck_assert_int_eq(T.n_pids, 3);
}
END_TEST

START_TEST(try_acquire_hit_and_miss) {
  make_pool(1, 2);
  clink_client *c = NULL, *d = NULL;
  ck_assert_int_eq(API(clink_pool_try_acquire(T.pool, &c)), UV_EAGAIN); /* still cold */
  wait_idle(1);
  ck_assert_int_eq(API(clink_pool_try_acquire(T.pool, &c)), 0);
  ck_assert_ptr_nonnull(c);
  ck_assert_int_eq(clink_client_get_state(c), CLINK_CLIENT_CONNECTED);
  ck_assert_int_eq(API(clink_pool_try_acquire(T.pool, &d)), UV_EAGAIN);
  clink_pool_stats s = stats();
  ck_assert_uint_eq(s.in_use, 1);
  ck_assert_uint_eq(s.idle, 0);
  ck_assert_int_eq(API(clink_pool_release(T.pool, c)), 0);
  ck_assert_int_eq(API(clink_pool_release(T.pool, c)), UV_EINVAL); /* twice */
  ck_assert_int_eq(API(clink_pool_try_acquire(T.pool, &d)), 0);
  ck_assert_ptr_eq(d, c);
  /* A client the pool does not own. */
  clink_client *foreign;
  ck_assert_int_eq(clink_client_new(&foreign, &T.loop, T.opts), 0);
  ck_assert_int_eq(API(clink_pool_release(T.pool, foreign)), UV_EINVAL);
  ck_assert_int_eq(clink_client_close(foreign, NULL, NULL), 0);
  ck_assert_int_eq(API(clink_pool_release(T.pool, d)), 0);
  s = stats();
  ck_assert_uint_eq(s.acquired, 2);
  ck_assert_uint_eq(s.acquired_idle, 2);
  ck_assert_uint_eq(s.wait_hist[0], 2);
  ck_assert_int_eq(API(clink_pool_try_acquire(NULL, &d)), UV_EINVAL);
  ck_assert_int_eq(API(clink_pool_release(T.pool, NULL)), UV_EINVAL);
}
END_TEST

START_TEST(acquire_from_idle_is_deferred) {
  make_pool(1, 1);
  wait_idle(1);
  acquire(0, NULL, "here");
  clink_pool_stats s = stats();
  ck_assert_uint_eq(s.in_use, 1); /* taken at once, handed over from the loop */
  ck_assert_uint_eq(s.idle, 0);
  RUN_UNTIL(T.a[0].done);
  ck_assert_int_eq(T.a[0].status, 0);
  run_turn(T.a[0].c, "hi", 0);
  ck_assert_int_eq(API(clink_pool_release(T.pool, T.a[0].c)), 0);
  s = stats();
  ck_assert_uint_eq(s.acquired_idle, 1);
  ck_assert_uint_eq(s.acquired_waited, 0);
  ck_assert_uint_eq(s.idle, 1);
  ck_assert_int_eq(API(clink_pool_acquire(T.pool, NULL, NULL, NULL, NULL)), UV_EINVAL);
  ck_assert_int_eq(API(clink_pool_acquire(T.pool, "", NULL, on_acquired, &T.a[1])), UV_EINVAL);
}
END_TEST

START_TEST(spawn_under_max_then_wait) {
  make_pool(0, 2);
  acquire(0, NULL, NULL);
  acquire(1, NULL, NULL);
  clink_pool_stats s = stats();
  ck_assert_uint_eq(s.starting, 2);
  ck_assert_uint_eq(s.pending_acquires, 2);
  acquire(2, NULL, NULL); /* at max: waits */
  s = stats();
  ck_assert_uint_eq(s.starting, 2);
  ck_assert_uint_eq(s.pending_acquires, 3);
  RUN_UNTIL(T.a[0].done && T.a[1].done);
  ck_assert_int_eq(T.a[0].status, 0);
  ck_assert_int_eq(T.a[1].status, 0);
  ck_assert_ptr_ne(T.a[0].c, T.a[1].c);
  ck_assert_int_eq(T.a[2].done, 0);
  ck_assert_int_eq(API(clink_pool_release(T.pool, T.a[1].c)), 0);
  RUN_UNTIL(T.a[2].done);
  ck_assert_int_eq(T.a[2].status, 0);
  ck_assert_ptr_eq(T.a[2].c, T.a[1].c);
  s = stats();
  ck_assert_uint_eq(s.created, 2);
  ck_assert_uint_eq(s.acquired_waited, 3);
  ck_assert_uint_eq(s.in_use, 2);
}
END_TEST

START_TEST(fifo_waiters_in_order) {
  make_pool(1, 1);
  wait_idle(1);
  clink_client *c;
  ck_assert_int_eq(API(clink_pool_try_acquire(T.pool, &c)), 0);
  for (int i = 0; i < 6; i++) {
    T.a[i].release_in_cb = i < 5;
    acquire(i, NULL, NULL);
  }
  ck_assert_uint_eq(stats().pending_acquires, 6);
  ck_assert_int_eq(API(clink_pool_release(T.pool, c)), 0);
  RUN_UNTIL(T.a[5].done);
  for (int i = 0; i < 6; i++) {
    ck_assert_int_eq(T.a[i].status, 0);
    ck_assert_int_eq(T.a[i].seq, i + 1);
    ck_assert_ptr_eq(T.a[i].c, c);
  }
  ck_assert_uint_eq(stats().created, 1);
}
END_TEST

START_TEST(acquire_timeout_and_waiter_bound) {
  ck_assert_int_eq(clink_pool_config_set_acquire_timeout_ms(T.cfg, 60), 0);
  ck_assert_int_eq(clink_pool_config_set_max_waiters(T.cfg, 2), 0);
  make_pool(1, 1);
  wait_idle(1);
  clink_client *c;
  ck_assert_int_eq(API(clink_pool_try_acquire(T.pool, &c)), 0);
  uint64_t t0 = now_ms();
  acquire(0, NULL, NULL);
  acquire(1, NULL, NULL);
  acquire(2, NULL, NULL); /* over the bound */
  RUN_UNTIL(T.a[2].done);
  ck_assert_int_eq(T.a[2].status, CLINK_EQUEUE_FULL);
  ck_assert_int_eq(T.a[0].done + T.a[1].done, 0);
  RUN_UNTIL(T.a[0].done && T.a[1].done);
  ck_assert_int_eq(T.a[0].status, CLINK_EPOOL_TIMEOUT);
  ck_assert_int_eq(T.a[1].status, CLINK_EPOOL_TIMEOUT);
  ck_assert_uint_ge(T.a[0].at_ms - t0, 60);
  ck_assert_int_lt(T.a[0].seq, T.a[1].seq);
  clink_pool_stats s = stats();
  ck_assert_uint_eq(s.timeouts, 2);
  ck_assert_uint_eq(s.rejected, 1);
  ck_assert_uint_eq(s.pending_acquires, 0);
  ck_assert_uint_eq(s.created, 1);
  ck_assert_int_eq(API(clink_pool_release(T.pool, c)), 0);
}
END_TEST

/* -------------------------------------------------------------- release */

START_TEST(release_healthy_goes_idle) {
  make_pool(1, 1);
  wait_idle(1);
  acquire(0, NULL, NULL);
  RUN_UNTIL(T.a[0].done);
  run_turn(T.a[0].c, "one", 0);
  run_turn(T.a[0].c, "two", 0);
  ck_assert_int_eq(API(clink_pool_release(T.pool, T.a[0].c)), 0);
  clink_pool_stats s = stats();
  ck_assert_uint_eq(s.idle, 1);
  ck_assert_uint_eq(s.closed, 0);
  acquire(1, NULL, NULL);
  RUN_UNTIL(T.a[1].done);
  ck_assert_ptr_eq(T.a[1].c, T.a[0].c);
  ck_assert_int_eq(API(clink_pool_release(T.pool, T.a[1].c)), 0);
}
END_TEST

START_TEST(release_during_turn_is_unhealthy) {
  env("FAKE_MSG_DELAY_MS", "20000");
  make_pool(1, 2);
  wait_idle(1);
  clink_client *c;
  ck_assert_int_eq(API(clink_pool_try_acquire(T.pool, &c)), 0);
  int pid = clink_client_pid(c);
  turn t = {0};
  ck_assert_int_eq(API(clink_client_query(c, "slow", NULL, on_turn, &t)), 0);
  ck_assert_int_eq(API(clink_pool_release(T.pool, c)), 0); /* turn still running */
  RUN_UNTIL(t.done && T.closed[CLINK_POOL_CLOSE_UNHEALTHY] == 1);
  ck_assert_int_eq(t.status, UV_ECANCELED);
  wait_idle(1); /* replaced to keep min idle */
  clink_pool_stats s = stats();
  ck_assert_uint_eq(s.closed_by_reason[CLINK_POOL_CLOSE_UNHEALTHY], 1);
  ck_assert_uint_eq(s.created, 2);
  ck_assert_int_eq(API(clink_pool_try_acquire(T.pool, &c)), 0);
  ck_assert_int_ne(clink_client_pid(c), pid);
  ck_assert_int_eq(API(clink_pool_release(T.pool, c)), 0);
}
END_TEST

START_TEST(release_dead_is_closed_and_replaced) {
  env("FAKE_EXIT_AFTER_TURNS", "1");
  make_pool(1, 2);
  wait_idle(1);
  acquire(0, NULL, NULL);
  RUN_UNTIL(T.a[0].done);
  clink_client *c = T.a[0].c;
  run_turn(c, "last", 0);
  RUN_UNTIL(clink_client_get_state(c) == CLINK_CLIENT_ERROR);
  ck_assert_int_eq(API(clink_pool_release(T.pool, c)), 0);
  RUN_UNTIL(T.closed[CLINK_POOL_CLOSE_DEAD] == 1);
  wait_idle(1);
  clink_pool_stats s = stats();
  ck_assert_uint_eq(s.closed_by_reason[CLINK_POOL_CLOSE_DEAD], 1);
  ck_assert_uint_eq(s.size, 1);
  ck_assert_uint_eq(s.created, 2);
  ck_assert_int_eq(T.ev[CLINK_POOL_EVENT_REPLACED], 0); /* it was not idle */
}
END_TEST

START_TEST(idle_member_killed_is_replaced) {
  make_pool(2, 4);
  wait_idle(2);
  clink_client *c;
  ck_assert_int_eq(API(clink_pool_try_acquire(T.pool, &c)), 0);
  int pid = clink_client_pid(c);
  ck_assert_int_eq(API(clink_pool_release(T.pool, c)), 0);
  ck_assert_int_eq(kill(pid, SIGKILL), 0);
  RUN_UNTIL(T.ev[CLINK_POOL_EVENT_REPLACED] == 1 && T.closed[CLINK_POOL_CLOSE_DEAD] == 1);
  wait_idle(2);
  ck_assert_uint_eq(stats().created, 3);
  /* No acquire is lost: both get live members, neither the dead one. */
  acquire(0, NULL, NULL);
  acquire(1, NULL, NULL);
  RUN_UNTIL(T.a[0].done && T.a[1].done);
  ck_assert_int_eq(T.a[0].status, 0);
  ck_assert_int_eq(T.a[1].status, 0);
  ck_assert_int_ne(T.a[0].pid, pid);
  ck_assert_int_ne(T.a[1].pid, pid);
  run_turn(T.a[0].c, "alive", 0);
  run_turn(T.a[1].c, "alive", 0);
  clink_pool_stats s = stats();
  ck_assert_uint_eq(s.closed_by_reason[CLINK_POOL_CLOSE_DEAD], 1);
  ck_assert_int_eq(API(clink_pool_release(T.pool, T.a[0].c)), 0);
  ck_assert_int_eq(API(clink_pool_release(T.pool, T.a[1].c)), 0);
}
END_TEST

START_TEST(kill_with_acquire_in_flight_loses_nothing) {
  make_pool(1, 2);
  wait_idle(1);
  clink_client *c;
  ck_assert_int_eq(API(clink_pool_try_acquire(T.pool, &c)), 0);
  int pid = clink_client_pid(c);
  ck_assert_int_eq(API(clink_pool_release(T.pool, c)), 0);
  ck_assert_int_eq(kill(pid, SIGKILL), 0);
  /* Issued before the pool can know: a worker handed the dead member sees
   * its turn fail, gives it back and acquires again; every worker gets its
   * turn done. */
  for (int i = 0; i < 4; i++) {
    T.a[i].work_in_cb = 1;
    acquire(i, NULL, NULL);
  }
  RUN_UNTIL(T.a[0].worked && T.a[1].worked && T.a[2].worked && T.a[3].worked);
  int retries = 0;
  for (int i = 0; i < 4; i++) {
    ck_assert_int_eq(T.a[i].status, 0);
    ck_assert_int_ne(T.a[i].pid, pid);
    retries += T.a[i].retries;
  }
  ck_assert_int_ge(retries, 1); /* the dead member was handed out once at least */
  RUN_UNTIL(T.closed[CLINK_POOL_CLOSE_DEAD] == 1);
}
END_TEST

/* --------------------------------------------------------------- limits */

START_TEST(max_turns_recycles) {
  ck_assert_int_eq(clink_pool_config_set_max_turns(T.cfg, 2), 0);
  make_pool(1, 1);
  wait_idle(1);
  clink_client *c;
  ck_assert_int_eq(API(clink_pool_try_acquire(T.pool, &c)), 0);
  run_turn(c, "1", 0);
  ck_assert_int_eq(API(clink_pool_release(T.pool, c)), 0);
  ck_assert_uint_eq(stats().idle, 1);
  ck_assert_int_eq(API(clink_pool_try_acquire(T.pool, &c)), 0);
  run_turn(c, "2", 0);
  ck_assert_int_eq(API(clink_pool_release(T.pool, c)), 0);
  clink_pool_stats s = stats();
  ck_assert_uint_eq(s.closed_by_reason[CLINK_POOL_CLOSE_MAX_TURNS], 1);
  RUN_UNTIL(T.ev[CLINK_POOL_EVENT_SPAWNED] == 2);
  wait_idle(1);
  ck_assert_uint_eq(stats().created, 2);
}
END_TEST

START_TEST(lifetime_recycles_successor_first) {
  ck_assert_int_eq(clink_pool_config_set_max_lifetime_ms(T.cfg, 150, 0), 0);
  make_pool(1, 2);
  RUN_UNTIL(T.ev[CLINK_POOL_EVENT_SPAWNED] == 1);
  uint64_t spawned = T.spawned_at_ms;
  RUN_UNTIL(T.closed[CLINK_POOL_CLOSE_LIFETIME] == 1);
  ck_assert_uint_ge(T.closed_at_ms[CLINK_POOL_CLOSE_LIFETIME] - spawned, 150);
  /* The last member stays until its successor is connected. */
  ck_assert_uint_ge(T.ev[CLINK_POOL_EVENT_SPAWNED], 2);
  ck_assert_uint_ge(T.idle_at_close[CLINK_POOL_CLOSE_LIFETIME], 1);
}
END_TEST

START_TEST(lifetime_at_max_size_and_in_use) {
  ck_assert_int_eq(clink_pool_config_set_max_lifetime_ms(T.cfg, 100, 2.5), 0);
  make_pool(1, 1);
  wait_idle(1);
  clink_client *c;
  uint64_t t0 = now_ms();
  ck_assert_int_eq(API(clink_pool_try_acquire(T.pool, &c)), 0);
  wait_ms(150);
  /* Checked out past its lifetime: closed when it comes back. */
  ck_assert_int_eq(T.closed[CLINK_POOL_CLOSE_LIFETIME], 0);
  ck_assert_int_eq(API(clink_pool_release(T.pool, c)), 0);
  ck_assert_uint_eq(stats().closed_by_reason[CLINK_POOL_CLOSE_LIFETIME], 1);
  RUN_UNTIL(T.ev[CLINK_POOL_EVENT_SPAWNED] == 2);
  /* The successor at max size goes after its own lifetime. */
  RUN_UNTIL(T.closed[CLINK_POOL_CLOSE_LIFETIME] == 2);
  ck_assert_uint_ge(T.closed_at_ms[CLINK_POOL_CLOSE_LIFETIME] - t0, 150 + 97);
}
END_TEST

START_TEST(idle_timeout_shrinks_to_min_idle) {
  ck_assert_int_eq(clink_pool_config_set_idle_timeout_ms(T.cfg, 100), 0);
  make_pool(1, 3);
  for (int i = 0; i < 3; i++) acquire(i, NULL, NULL);
  RUN_UNTIL(T.a[0].done && T.a[1].done && T.a[2].done);
  uint64_t t0 = now_ms();
  for (int i = 0; i < 3; i++) ck_assert_int_eq(API(clink_pool_release(T.pool, T.a[i].c)), 0);
  RUN_UNTIL(T.closed[CLINK_POOL_CLOSE_IDLE] == 2);
  ck_assert_uint_ge(T.closed_at_ms[CLINK_POOL_CLOSE_IDLE] - t0, 100);
  clink_pool_stats s = stats();
  ck_assert_uint_eq(s.size, 1);
  ck_assert_uint_eq(s.idle, 1);
  ck_assert_uint_eq(s.closed_by_reason[CLINK_POOL_CLOSE_IDLE], 2);
}
END_TEST

/* A CLI that grew (the fake allocates 48 MiB at start-up) past a 32 MiB
 * limit is recycled when idle; the last member only once its successor is
 * connected. Its successor grows too: recycling goes on until shutdown. */
START_TEST(rss_limit_recycles_idle_members) {
  env("FAKE_ALLOC_MB", "48");
  ck_assert_int_eq(clink_pool_config_set_max_member_rss(T.cfg, (uint64_t)32 << 20, 50), 0);
  make_pool(1, 2);
  RUN_UNTIL(T.closed[CLINK_POOL_CLOSE_MEMORY] >= 1);
  ck_assert_int_ge(T.ev[CLINK_POOL_EVENT_SPAWNED], 2);
  ck_assert_uint_ge(T.idle_at_close[CLINK_POOL_CLOSE_MEMORY], 1);
  ck_assert_uint_ge(stats().closed_by_reason[CLINK_POOL_CLOSE_MEMORY], 1);
  ck_assert_str_eq(clink_pool_close_reason_name(CLINK_POOL_CLOSE_MEMORY), "memory");
}
END_TEST

/* Under the limit nothing moves; check_ms 0 means only on demand; a member
 * found over the limit while idle and then checked out goes when it comes
 * back. */
START_TEST(rss_check_on_demand_and_at_release) {
  ck_assert_int_eq(clink_pool_config_set_max_member_rss(NULL, 1, 1), UV_EINVAL);
  make_pool(1, 1);
  wait_idle(1);
  ck_assert_int_eq(API(clink_pool_check_member_rss(T.pool)), 0); /* no limit */
  ck_assert_int_eq(clink_pool_check_member_rss(NULL), UV_EINVAL);
  shutdown_pool(CLINK_POOL_IMMEDIATE);
  T.pool = NULL;
  T.pool_closes = 0;
  T.shut_down = 0;
  memset(T.ev, 0, sizeof(T.ev));

  env("FAKE_ALLOC_MB", "48");
  ck_assert_int_eq(clink_pool_config_set_max_member_rss(T.cfg, (uint64_t)1 << 30, 0), 0);
  make_pool(1, 1);
  wait_idle(1);
  ck_assert_int_eq(API(clink_pool_check_member_rss(T.pool)), 0); /* 48 MiB < 1 GiB */
  shutdown_pool(CLINK_POOL_IMMEDIATE);
  T.pool = NULL;
  T.pool_closes = 0;
  T.shut_down = 0;
  memset(T.ev, 0, sizeof(T.ev));

  ck_assert_int_eq(clink_pool_config_set_max_member_rss(T.cfg, (uint64_t)32 << 20, 0), 0);
  make_pool(1, 1);
  wait_idle(1);
  wait_ms(100);
  ck_assert_int_eq(T.closed[CLINK_POOL_CLOSE_MEMORY], 0); /* never looked at by itself */
  clink_client *c;
  ck_assert_int_eq(API(clink_pool_check_member_rss(T.pool)), 1);
  ck_assert_int_eq(API(clink_pool_try_acquire(T.pool, &c)), 0);
  ck_assert_int_eq(API(clink_pool_release(T.pool, c)), 0);
  ck_assert_uint_eq(stats().closed_by_reason[CLINK_POOL_CLOSE_MEMORY], 1);
  RUN_UNTIL(T.ev[CLINK_POOL_EVENT_SPAWNED] == 2);
}
END_TEST

/* ------------------------------------------------------------ validation */

START_TEST(validation_probe_alive_and_hung) {
  ck_assert_int_eq(clink_pool_config_set_validation(T.cfg, 50, 150), 0);
  make_pool(1, 1); /* one member: the stale one is the only choice */
  wait_idle(1);
  clink_client *c;
  ck_assert_int_eq(API(clink_pool_try_acquire(T.pool, &c)), 0);
  int pid = clink_client_pid(c);
  ck_assert_int_eq(API(clink_pool_release(T.pool, c)), 0);
  wait_ms(70);
  /* Stale: not handed out synchronously. */
  ck_assert_int_eq(API(clink_pool_try_acquire(T.pool, &c)), UV_EAGAIN);
  /* Probed: the fake answers mcp_status with an error, which proves it alive. */
  uint64_t probes = control_requests(c);
  acquire(0, NULL, NULL);
  RUN_UNTIL(T.a[0].done);
  ck_assert_int_eq(T.a[0].status, 0);
  ck_assert_int_eq(T.a[0].pid, pid);
  ck_assert_uint_eq(control_requests(T.a[0].c), probes + 1);
  ck_assert_int_eq(API(clink_pool_release(T.pool, T.a[0].c)), 0);
  /* Now it hangs (stopped): the probe times out, it is closed, the acquire
   * gets another process. */
  wait_ms(70);
  ck_assert_int_eq(kill(pid, SIGSTOP), 0);
  uint64_t t0 = now_ms();
  acquire(1, NULL, "validated");
  RUN_UNTIL(T.a[1].done);
  ck_assert_int_eq(T.a[1].status, 0);
  ck_assert_int_ne(T.a[1].pid, pid);
  ck_assert_uint_ge(T.a[1].at_ms - t0, 150);
  ck_assert_uint_eq(stats().closed_by_reason[CLINK_POOL_CLOSE_VALIDATION], 1);
  run_turn(T.a[1].c, "fresh", 0);
  ck_assert_int_eq(API(clink_pool_release(T.pool, T.a[1].c)), 0);
  RUN_UNTIL(T.closed[CLINK_POOL_CLOSE_VALIDATION] == 1);
}
END_TEST

START_TEST(leak_event_names_where) {
  ck_assert_int_eq(clink_pool_config_set_leak_threshold_ms(T.cfg, 80), 0);
  make_pool(1, 1);
  wait_idle(1);
  acquire(0, NULL, "worker.c:42");
  RUN_UNTIL(T.a[0].done);
  uint64_t t0 = T.a[0].at_ms;
  RUN_UNTIL(T.ev[CLINK_POOL_EVENT_LEAK] == 1);
  ck_assert_str_eq(T.leak_where, "worker.c:42");
  ck_assert_uint_ge(T.leak_at_ms - t0, 80);
  wait_ms(150);
  ck_assert_int_eq(T.ev[CLINK_POOL_EVENT_LEAK], 1); /* once per checkout */
  ck_assert_uint_eq(stats().leaks, 1);
  ck_assert_int_eq(API(clink_pool_release(T.pool, T.a[0].c)), 0);
  clink_client *c;
  ck_assert_int_eq(API(clink_pool_try_acquire(T.pool, &c)), 0);
  RUN_UNTIL(T.ev[CLINK_POOL_EVENT_LEAK] == 2);
  ck_assert_str_eq(T.leak_where, "unknown");
  ck_assert_int_eq(API(clink_pool_release(T.pool, c)), 0);
}
END_TEST

/* ------------------------------------------------------------- affinity */

START_TEST(session_affinity_and_resume) {
  env("FAKE_PRINT_ARGV", "1");
  ck_assert_int_eq(clink_options_set_stderr_cb(T.opts, on_stderr, &T), 0);
  make_pool(3, 5);
  wait_idle(3);
  acquire(0, NULL, NULL);
  RUN_UNTIL(T.a[0].done);
  clink_client *holder = T.a[0].c;
  run_turn(holder, "remember me", 0);
  char sid[128];
  snprintf(sid, sizeof(sid), "%s", clink_client_session_id(holder));
  ck_assert_int_eq(API(clink_pool_release(T.pool, holder)), 0);
  /* The member holding the conversation comes back, every time. */
  for (int i = 1; i <= 5; i++) {
    acquire(i, sid, NULL);
    RUN_UNTIL(T.a[i].done);
    ck_assert_int_eq(T.a[i].status, 0);
    ck_assert_ptr_eq(T.a[i].c, holder);
    ck_assert_int_eq(API(clink_pool_release(T.pool, holder)), 0);
  }
  /* It dies: a new process resumes the conversation. */
  int pid = clink_client_pid(holder);
  snprintf(T.want_resume, sizeof(T.want_resume), "%s", sid);
  ck_assert_int_eq(kill(pid, SIGKILL), 0);
  RUN_UNTIL(T.closed[CLINK_POOL_CLOSE_DEAD] == 1);
  acquire(10, sid, NULL);
  RUN_UNTIL(T.a[10].done);
  ck_assert_int_eq(T.a[10].status, 0);
  ck_assert_int_ne(T.a[10].pid, pid);
  RUN_UNTIL(T.resume_argv == 1);
  clink_client *resumed = T.a[10].c;
  run_turn(resumed, "still there?", 0);
  ck_assert_int_eq(API(clink_pool_release(T.pool, resumed)), 0);
  /* And it is the one that comes back for that conversation. */
  acquire(11, sid, NULL);
  RUN_UNTIL(T.a[11].done);
  ck_assert_ptr_eq(T.a[11].c, resumed);
  ck_assert_int_eq(API(clink_pool_release(T.pool, resumed)), 0);
  ck_assert_int_eq(T.resume_argv, 1);
}
END_TEST

START_TEST(session_waits_for_its_busy_member) {
  make_pool(2, 2);
  wait_idle(2);
  clink_client *c;
  ck_assert_int_eq(API(clink_pool_try_acquire(T.pool, &c)), 0);
  run_turn(c, "mine", 0);
  const char *sid = clink_client_session_id(c);
  ck_assert_ptr_nonnull(sid);
  acquire(0, sid, NULL); /* its member is checked out: wait for it */
  wait_ms(30);
  ck_assert_int_eq(T.a[0].done, 0);
  ck_assert_uint_eq(stats().created, 2);
  ck_assert_int_eq(API(clink_pool_release(T.pool, c)), 0);
  RUN_UNTIL(T.a[0].done);
  ck_assert_ptr_eq(T.a[0].c, c);
  ck_assert_int_eq(API(clink_pool_release(T.pool, c)), 0);
}
END_TEST

/* ------------------------------------------------------------ isolation */

START_TEST(without_isolation_any_member_serves) {
  make_pool(1, 1);
  wait_idle(1);
  clink_client *c;
  ck_assert_int_eq(API(clink_pool_try_acquire(T.pool, &c)), 0);
  run_turn(c, "secret", 0);
  ck_assert_int_eq(API(clink_pool_release(T.pool, c)), 0);
  acquire(0, NULL, NULL);
  RUN_UNTIL(T.a[0].done);
  /* The default: the member with history serves anyone (documented). */
  ck_assert_ptr_eq(T.a[0].c, c);
  ck_assert_uint_eq(clink_client_turns_done(c), 1);
  ck_assert_int_eq(API(clink_pool_release(T.pool, c)), 0);
}
END_TEST

START_TEST(isolation_keeps_conversations_apart) {
  ck_assert_int_eq(clink_pool_config_set_isolation(T.cfg, 1), 0);
  make_pool(1, 3);
  wait_idle(1);
  clink_client *a;
  ck_assert_int_eq(API(clink_pool_try_acquire(T.pool, &a)), 0);
  run_turn(a, "secret", 0);
  char sid[128];
  snprintf(sid, sizeof(sid), "%s", clink_client_session_id(a));
  ck_assert_int_eq(API(clink_pool_release(T.pool, a)), 0);
  /* Min idle counts fresh members: a second process warms up. */
  wait_idle(2);
  ck_assert_uint_eq(stats().created, 2);
  for (int i = 0; i < 4; i++) {
    clink_client *c;
    ck_assert_int_eq(API(clink_pool_try_acquire(T.pool, &c)), 0);
    ck_assert_ptr_ne(c, a);
    ck_assert_uint_eq(clink_client_turns_done(c), 0);
    ck_assert_int_eq(API(clink_pool_release(T.pool, c)), 0);
    acquire(i, NULL, NULL);
    RUN_UNTIL(T.a[i].done);
    ck_assert_int_eq(T.a[i].status, 0);
    ck_assert_ptr_ne(T.a[i].c, a);
    ck_assert_int_eq(API(clink_pool_release(T.pool, T.a[i].c)), 0);
  }
  /* The conversation's own acquires still find it. */
  acquire(10, sid, NULL);
  RUN_UNTIL(T.a[10].done);
  ck_assert_ptr_eq(T.a[10].c, a);
  ck_assert_int_eq(API(clink_pool_release(T.pool, a)), 0);
  /* Fresh members that served no turn stay fresh: one more start at most
   * (min idle while one was checked out), not one per acquire. */
  ck_assert_uint_le(stats().created, 3);
  ck_assert_uint_eq(stats().closed, 0);
}
END_TEST

START_TEST(isolation_at_max_evicts_the_oldest_conversation) {
  ck_assert_int_eq(clink_pool_config_set_isolation(T.cfg, 1), 0);
  make_pool(0, 2);
  acquire(0, NULL, NULL);
  acquire(1, NULL, NULL);
  RUN_UNTIL(T.a[0].done && T.a[1].done);
  clink_client *a = T.a[0].c, *b = T.a[1].c;
  run_turn(a, "first", 0);
  run_turn(b, "second", 0);
  char sid_b[128];
  snprintf(sid_b, sizeof(sid_b), "%s", clink_client_session_id(b));
  acquire(2, NULL, NULL); /* at max, both held: waits */
  wait_ms(20);
  ck_assert_int_eq(T.a[2].done, 0);
  ck_assert_int_eq(API(clink_pool_release(T.pool, a)), 0);
  wait_ms(20);
  ck_assert_int_eq(API(clink_pool_release(T.pool, b)), 0);
  /* Neither may serve it: the least recently used makes room. */
  RUN_UNTIL(T.a[2].done);
  ck_assert_int_eq(T.a[2].status, 0);
  ck_assert_ptr_ne(T.a[2].c, a);
  ck_assert_ptr_ne(T.a[2].c, b);
  ck_assert_uint_eq(clink_client_turns_done(T.a[2].c), 0);
  ck_assert_int_eq(T.closed[CLINK_POOL_CLOSE_ISOLATION], 1);
  ck_assert_ptr_eq(T.closed_client, a);
  ck_assert_str_eq(clink_pool_close_reason_name(CLINK_POOL_CLOSE_ISOLATION), "isolation");
  ck_assert_int_eq(API(clink_pool_release(T.pool, T.a[2].c)), 0);
  acquire(3, sid_b, NULL);
  RUN_UNTIL(T.a[3].done);
  ck_assert_ptr_eq(T.a[3].c, b);
  ck_assert_int_eq(API(clink_pool_release(T.pool, b)), 0);
  clink_pool_stats s = stats();
  ck_assert_uint_eq(s.closed_by_reason[CLINK_POOL_CLOSE_ISOLATION], 1);
  ck_assert_uint_eq(s.created, 3);
}
END_TEST

/* ---------------------------------------------------------------- burst */

START_TEST(burst_spawns_no_more_than_needed) {
  make_pool(0, 100);
  for (int i = 0; i < 50; i++) acquire(i, NULL, NULL); /* all held: 50 needed */
  int all = 0;
  while (!all) {
    all = 1;
    for (int i = 0; i < 50; i++) all &= T.a[i].done;
    if (!all) ck_assert(uv_run(&T.loop, UV_RUN_ONCE) != 0);
  }
  clink_pool_stats s = stats();
  for (int i = 0; i < 50; i++) ck_assert_int_eq(T.a[i].status, 0);
  ck_assert_uint_le(s.created, 50);
  ck_assert_uint_eq(s.in_use, 50);
  fprintf(stderr, "burst of 50 held acquires, max 100: %llu processes spawned\n",
          (unsigned long long)s.created);
  for (int i = 0; i < 50; i++) ck_assert_int_eq(API(clink_pool_release(T.pool, T.a[i].c)), 0);
}
END_TEST

START_TEST(burst_released_at_once_reuses) {
  env("FAKE_STARTUP_DELAY_MS", "30");
  make_pool(0, 100);
  for (int i = 0; i < 50; i++) {
    T.a[i].release_in_cb = 1;
    acquire(i, NULL, NULL);
  }
  int all = 0;
  while (!all) {
    all = 1;
    for (int i = 0; i < 50; i++) all &= T.a[i].done;
    if (!all) ck_assert(uv_run(&T.loop, UV_RUN_ONCE) != 0);
  }
  clink_pool_stats s = stats();
  ck_assert_uint_le(s.created, 50);
  fprintf(stderr, "burst of 50 acquires released at once, max 100: %llu spawned\n",
          (unsigned long long)s.created);
  /* Demand that vanished: the extra processes are idle, not lost. */
  wait_idle((uint32_t)s.created);
  ck_assert_uint_eq(stats().idle, s.created);
}
END_TEST

START_TEST(spawn_elided_when_release_comes_first) {
  make_pool(1, 4);
  wait_idle(1);
  clink_client *c;
  ck_assert_int_eq(API(clink_pool_try_acquire(T.pool, &c)), 0);
  acquire(0, NULL, NULL); /* starts one process for this waiter */
  ck_assert_uint_eq(stats().starting, 1);
  ck_assert_int_eq(API(clink_pool_release(T.pool, c)), 0); /* ...served by this */
  RUN_UNTIL(T.a[0].done);
  ck_assert_ptr_eq(T.a[0].c, c);
  ck_assert_int_eq(API(clink_pool_release(T.pool, c)), 0);
  wait_idle(2); /* the process nobody needed any more is idle */
  ck_assert_uint_eq(stats().created, 2);
}
END_TEST

START_TEST(spawn_outlived_by_its_waiter_goes_idle) {
  env("FAKE_STARTUP_DELAY_MS", "200");
  ck_assert_int_eq(clink_pool_config_set_acquire_timeout_ms(T.cfg, 30), 0);
  make_pool(0, 2);
  acquire(0, NULL, NULL);
  ck_assert_uint_eq(stats().starting, 1);
  RUN_UNTIL(T.a[0].done);
  ck_assert_int_eq(T.a[0].status, CLINK_EPOOL_TIMEOUT);
  ck_assert_uint_eq(stats().starting, 1); /* still coming: not wasted */
  RUN_UNTIL(T.ev[CLINK_POOL_EVENT_SPAWNED] == 1);
  clink_pool_stats s = stats();
  ck_assert_uint_eq(s.idle, 1);
  ck_assert_uint_eq(s.created, 1);
  ck_assert_uint_eq(s.timeouts, 1);
  clink_client *c;
  ck_assert_int_eq(API(clink_pool_try_acquire(T.pool, &c)), 0);
  ck_assert_int_eq(API(clink_pool_release(T.pool, c)), 0);
}
END_TEST

/* -------------------------------------------------------------- breaker */

START_TEST(breaker_open_rejects_spawn) {
  clink_breaker_config *bc;
  clink_breaker *b;
  ck_assert_int_eq(clink_breaker_config_new(&bc), 0);
  ck_assert_int_eq(clink_breaker_config_set_consecutive_failures(bc, 1), 0);
  ck_assert_int_eq(clink_breaker_config_set_open_duration(bc, 5000, 5000, 1.0, 0), 0);
  ck_assert_int_eq(clink_breaker_new(&b, "pool", bc, 1), 0);
  uint64_t permit, ra;
  ck_assert_int_eq(clink_breaker_acquire(b, uv_now(&T.loop), &permit, &ra), 0);
  clink_breaker_on_error(b, permit, uv_now(&T.loop), 1);
  ck_assert_int_eq(clink_breaker_get_state(b, uv_now(&T.loop)), CLINK_BREAKER_OPEN);
  make_pool(0, 2);
  clink_pool_set_breaker(T.pool, b);
  acquire(0, NULL, NULL);
  ck_assert_uint_eq(stats().starting, 0); /* no spawn */
  RUN_UNTIL(T.a[0].done);
  ck_assert_int_eq(T.a[0].status, CLINK_ECIRCUIT_OPEN);
  ck_assert_uint_gt(T.a[0].retry_after, 0);
  ck_assert_uint_le(T.a[0].retry_after, 5000);
  clink_pool_stats s = stats();
  ck_assert_uint_eq(s.created, 0);
  ck_assert_uint_eq(s.rejected, 1);
  shutdown_pool(CLINK_POOL_IMMEDIATE);
  clink_breaker_free(b);
  clink_breaker_config_free(bc);
}
END_TEST

START_TEST(spawn_outcomes_feed_breaker) {
  clink_breaker_config *bc;
  clink_breaker *b;
  ck_assert_int_eq(clink_breaker_config_new(&bc), 0);
  ck_assert_int_eq(clink_breaker_config_set_consecutive_failures(bc, 2), 0);
  ck_assert_int_eq(clink_breaker_new(&b, "pool", bc, 1), 0);
  make_pool(0, 3);
  clink_pool_set_breaker(T.pool, b);
  acquire(0, NULL, NULL);
  RUN_UNTIL(T.a[0].done);
  ck_assert_int_eq(T.a[0].status, 0);
  clink_breaker_stats bs = {.struct_size = sizeof(bs)};
  ck_assert_int_eq(clink_breaker_get_stats(b, uv_now(&T.loop), &bs), 0);
  ck_assert_uint_eq(bs.total_successes, 1);
  shutdown_pool(CLINK_POOL_IMMEDIATE);
  /* A CLI that dies at start: failures trip it, then acquires fail fast. */
  memset(T.a, 0, sizeof(T.a));
  T.pool_closes = 0;
  T.shut_down = 0;
  T.ev[CLINK_POOL_EVENT_SHUTDOWN] = 0;
  env("FAKE_EXIT_IMMEDIATELY", "3");
  make_pool(0, 3);
  clink_pool_set_breaker(T.pool, b);
  acquire(0, NULL, NULL);
  RUN_UNTIL(T.a[0].done);
  ck_assert_int_ne(T.a[0].status, 0); /* the spawn error */
  ck_assert_int_ne(T.a[0].status, CLINK_ECIRCUIT_OPEN);
  acquire(1, NULL, NULL);
  RUN_UNTIL(T.a[1].done);
  ck_assert_int_ne(T.a[1].status, 0);
  ck_assert_int_eq(clink_breaker_get_state(b, uv_now(&T.loop)), CLINK_BREAKER_OPEN);
  acquire(2, NULL, NULL);
  RUN_UNTIL(T.a[2].done);
  ck_assert_int_eq(T.a[2].status, CLINK_ECIRCUIT_OPEN);
  ck_assert_uint_gt(T.a[2].retry_after, 0);
  ck_assert_int_eq(clink_breaker_get_stats(b, uv_now(&T.loop), &bs), 0);
  ck_assert_uint_eq(bs.total_failures, 2);
  shutdown_pool(CLINK_POOL_IMMEDIATE);
  clink_breaker_free(b);
  clink_breaker_config_free(bc);
}
END_TEST

/* ------------------------------------------------------------ rebalance */

START_TEST(p2c_prefers_the_healthier_member) {
  make_pool(2, 2);
  wait_idle(2);
  clink_client *a, *b;
  ck_assert_int_eq(API(clink_pool_try_acquire(T.pool, &a)), 0);
  ck_assert_int_eq(API(clink_pool_try_acquire(T.pool, &b)), 0);
  run_turn(a, "x", 0);
  run_turn(b, "x", 0);
  /* a fails 8 of 9 turns: a far worse score (the fake makes "fail:" turns
   * API errors); b runs as many turns, so their latency averages agree and
   * the error rate decides. */
  for (int i = 0; i < 8; i++) {
    run_turn(a, "fail:500", CLINK_ETURN_FAILED);
    run_turn(b, "x", 0);
  }
  ck_assert_int_eq(API(clink_pool_release(T.pool, a)), 0);
  ck_assert_int_eq(API(clink_pool_release(T.pool, b)), 0);
  for (int i = 0; i < 50; i++) {
    clink_client *c;
    ck_assert_int_eq(API(clink_pool_try_acquire(T.pool, &c)), 0);
    ck_assert_ptr_eq(c, b);
    ck_assert_int_eq(API(clink_pool_release(T.pool, c)), 0);
  }
}
END_TEST

START_TEST(rebalance_recycles_the_outlier_when_quiet) {
  make_pool(2, 3);
  wait_idle(2);
  clink_client *a, *b;
  ck_assert_int_eq(API(clink_pool_try_acquire(T.pool, &a)), 0);
  ck_assert_int_eq(API(clink_pool_try_acquire(T.pool, &b)), 0);
  run_turn(a, "x", 0);
  run_turn(b, "x", 0);
  /* a fails 10 of 11 turns, b none of as many: only the error rate differs. */
  for (int i = 0; i < 10; i++) {
    run_turn(a, "fail:500", CLINK_ETURN_FAILED);
    run_turn(b, "x", 0);
  }
  int pid_a = clink_client_pid(a);
  ck_assert_int_eq(API(clink_pool_release(T.pool, a)), 0);
  ck_assert_int_eq(API(clink_pool_release(T.pool, b)), 0);
  RUN_UNTIL(T.closed[CLINK_POOL_CLOSE_REBALANCE] == 1);
  ck_assert_int_eq(clink_client_pid(b) != 0, 1);
  wait_idle(2); /* replaced to keep min idle */
  clink_pool_stats s = stats();
  ck_assert_uint_eq(s.closed_by_reason[CLINK_POOL_CLOSE_REBALANCE], 1);
  ck_assert_uint_eq(s.created, 3);
  ck_assert_uint_eq(s.size, 2);
  for (int i = 0; i < 2; i++) {
    clink_client *c;
    ck_assert_int_eq(API(clink_pool_try_acquire(T.pool, &c)), 0);
    ck_assert_int_ne(clink_client_pid(c), pid_a);
  }
}
END_TEST

START_TEST(rebalance_never_evicts_the_last_member) {
  make_pool(1, 1);
  wait_idle(1);
  clink_client *a;
  ck_assert_int_eq(API(clink_pool_try_acquire(T.pool, &a)), 0);
  run_turn(a, "x", 0);
  for (int i = 0; i < 10; i++) run_turn(a, "fail:500", CLINK_ETURN_FAILED);
  ck_assert_int_eq(API(clink_pool_release(T.pool, a)), 0);
  wait_ms(1200);
  ck_assert_int_eq(T.closed[CLINK_POOL_CLOSE_REBALANCE], 0);
  ck_assert_uint_eq(stats().size, 1);
}
END_TEST

/* ------------------------------------------------------------- shutdown */

START_TEST(shutdown_drain_waits_for_checked_out) {
  make_pool(2, 2);
  wait_idle(2);
  clink_client *held;
  ck_assert_int_eq(API(clink_pool_try_acquire(T.pool, &held)), 0);
  clink_client *other;
  ck_assert_int_eq(API(clink_pool_try_acquire(T.pool, &other)), 0);
  acquire(0, NULL, NULL); /* a waiter */
  ck_assert_int_eq(API(clink_pool_release(T.pool, other)), 0);
  ck_assert_int_eq(API(clink_pool_shutdown(T.pool, CLINK_POOL_DRAIN, on_pool_closed, &T)), 0);
  T.shut_down = 1;
  clink_client *c;
  ck_assert_int_eq(API(clink_pool_try_acquire(T.pool, &c)), CLINK_ECLOSING);
  ck_assert_int_eq(API(clink_pool_acquire(T.pool, NULL, NULL, on_acquired, &T.a[1])),
                   CLINK_ECLOSING);
  RUN_UNTIL(T.a[0].done);
  ck_assert_int_eq(T.a[0].status, CLINK_ECLOSING); /* its member went to the drain */
  /* The checked-out member is still usable. */
  run_turn(held, "last words", 0);
  ck_assert_int_eq(T.pool_closes, 0);
  ck_assert_int_eq(API(clink_pool_release(T.pool, held)), 0);
  RUN_UNTIL(T.pool_closes == 1);
  ck_assert_int_eq(T.closed[CLINK_POOL_CLOSE_SHUTDOWN], 2);
  ck_assert_int_eq(T.ev[CLINK_POOL_EVENT_SHUTDOWN], 1);
}
END_TEST

START_TEST(shutdown_drain_deadline_closes_checked_out) {
  ck_assert_int_eq(clink_pool_config_set_shutdown(T.cfg, 1, 500, 120), 0);
  make_pool(3, 3);
  wait_idle(3);
  clink_client *held;
  ck_assert_int_eq(API(clink_pool_try_acquire(T.pool, &held)), 0);
  T.release_on_closed = held;
  uint64_t t0 = now_ms();
  ck_assert_int_eq(API(clink_pool_shutdown(T.pool, CLINK_POOL_DRAIN, on_pool_closed, &T)), 0);
  T.shut_down = 1;
  RUN_UNTIL(T.pool_closes == 1);
  ck_assert_int_eq(T.closed[CLINK_POOL_CLOSE_SHUTDOWN], 3);
  ck_assert_uint_ge(now_ms() - t0, 120); /* the drain deadline */
  ck_assert_int_eq(T.release_on_closed_rc, 0); /* released while it closed */
}
END_TEST

START_TEST(shutdown_immediate_fails_running_turns) {
  env("FAKE_MSG_DELAY_MS", "20000");
  make_pool(2, 2);
  wait_idle(2);
  clink_client *c;
  ck_assert_int_eq(API(clink_pool_try_acquire(T.pool, &c)), 0);
  turn t = {0};
  ck_assert_int_eq(API(clink_client_query(c, "forever", NULL, on_turn, &t)), 0);
  acquire(0, NULL, NULL); /* idle hit, not yet delivered */
  ck_assert_int_eq(API(clink_pool_shutdown(T.pool, CLINK_POOL_IMMEDIATE, on_pool_closed, &T)),
                   0);
  T.shut_down = 1;
  RUN_UNTIL(T.pool_closes == 1);
  ck_assert_int_eq(t.done, 1);
  ck_assert_int_ne(t.status, 0);
  ck_assert_int_eq(T.a[0].status, CLINK_ECLOSING);
  ck_assert_int_eq(T.closed[CLINK_POOL_CLOSE_SHUTDOWN], 2);
}
END_TEST

static int second_cb_calls;
static void on_second_closed(clink_pool *p, void *ud) { second_cb_calls++; }

START_TEST(second_shutdown_escalates) {
  ck_assert_int_eq(clink_pool_config_set_shutdown(T.cfg, 10, 1000, 30000), 0);
  make_pool(2, 2);
  wait_idle(2);
  clink_client *c;
  ck_assert_int_eq(API(clink_pool_try_acquire(T.pool, &c)), 0);
  ck_assert_int_eq(API(clink_pool_shutdown(T.pool, CLINK_POOL_DRAIN, on_pool_closed, &T)), 0);
  T.shut_down = 1;
  RUN_UNTIL(T.closed[CLINK_POOL_CLOSE_SHUTDOWN] == 1); /* the idle one */
  wait_ms(20);
  ck_assert_int_eq(T.pool_closes, 0); /* draining: 30 s before it gives up */
  ck_assert_int_eq(API(clink_pool_shutdown(T.pool, CLINK_POOL_DRAIN, on_second_closed, NULL)),
                   UV_EALREADY);
  RUN_UNTIL(T.pool_closes == 1);
  ck_assert_int_eq(second_cb_calls, 0);
  ck_assert_int_eq(T.closed[CLINK_POOL_CLOSE_SHUTDOWN], 2);
}
END_TEST

START_TEST(shutdown_empty_pool_and_batches) {
  ck_assert_int_eq(clink_pool_config_set_shutdown(T.cfg, 2, 500, 2000), 0);
  make_pool(5, 5);
  wait_idle(5);
  clink_pool_stats s = stats();
  ck_assert_uint_eq(s.size, 5);
  shutdown_pool(CLINK_POOL_DRAIN);
  ck_assert_int_eq(T.closed[CLINK_POOL_CLOSE_SHUTDOWN], 5);
}
END_TEST

START_TEST(shutdown_before_anything_started) {
  make_pool(2, 2); /* fill not started yet */
  shutdown_pool(CLINK_POOL_DRAIN);
  ck_assert_int_eq(T.ev[CLINK_POOL_EVENT_SPAWNED], 0);
}
END_TEST

/* A 1 ms batch window, and members stopped (SIGSTOP: EOF unread, so each
 * close takes the 50 ms EOF grace, then SIGTERM): every member's close
 * outlasts its batch. A batch that expired with its member still closing
 * must end, not re-run the house timer at once forever (on libuv < 1.45 that
 * starved the poll phase: the loop hung). */
static void stop_members(void) {
  for (int i = 0; i < T.n_pids; i++) ck_assert_int_eq(kill(T.pids[i], SIGSTOP), 0);
}

static void assert_only_shutdown_closes(int n) {
  ck_assert_int_eq(T.pool_closes, 1);
  ck_assert_int_eq(T.ev[CLINK_POOL_EVENT_SHUTDOWN], 1);
  for (int i = 0; i < CLINK_POOL_CLOSE_REASONS_; i++)
    ck_assert_int_eq(T.closed[i], i == CLINK_POOL_CLOSE_SHUTDOWN ? n : 0);
}

START_TEST(shutdown_expired_batch_nothing_left) {
  ck_assert_int_eq(clink_pool_config_set_shutdown(T.cfg, 1, 500, 1), 0);
  make_pool(2, 2);
  wait_idle(2);
  stop_members();
  /* Batch 1 expires: batch 2 takes the last one; it expires too, with
   * nothing left to close. */
  shutdown_pool(CLINK_POOL_DRAIN);
  assert_only_shutdown_closes(2);
}
END_TEST

START_TEST(shutdown_expired_batch_release_from_closed) {
  ck_assert_int_eq(clink_pool_config_set_shutdown(T.cfg, 1, 500, 1), 0);
  make_pool(3, 3);
  wait_idle(3);
  clink_client *held;
  ck_assert_int_eq(API(clink_pool_try_acquire(T.pool, &held)), 0);
  T.release_on_closed = held;
  stop_members();
  /* The idle ones, one batch each, then (past the drain deadline) the
   * checked-out one, released from its CLOSED event. */
  shutdown_pool(CLINK_POOL_DRAIN);
  assert_only_shutdown_closes(3);
  ck_assert_ptr_null(T.release_on_closed);
  ck_assert_int_eq(T.release_on_closed_rc, 0); /* released while it closed */
}
END_TEST

START_TEST(shutdown_release_after_expired_batch) {
  ck_assert_int_eq(clink_pool_config_set_shutdown(T.cfg, 1, 500, 1), 0);
  make_pool(3, 3);
  wait_idle(3);
  clink_client *held;
  ck_assert_int_eq(API(clink_pool_try_acquire(T.pool, &held)), 0);
  stop_members();
  ck_assert_int_eq(API(clink_pool_shutdown(T.pool, CLINK_POOL_DRAIN, on_pool_closed, &T)), 0);
  T.shut_down = 1;
  /* Due with the house timer, started after it: runs right after it, in the
   * tick where batch 1 expired and batch 2 (full) took the other idle one. */
  wait_ms(1);
  clink_pool_stats s = stats();
  ck_assert_uint_eq(s.in_use, 1);
  ck_assert_uint_eq(s.idle, 0);
  ck_assert_int_eq(T.pool_closes, 0);
  ck_assert_int_eq(API(clink_pool_release(T.pool, held)), 0); /* healthy: drained next */
  RUN_UNTIL(T.pool_closes == 1);
  assert_only_shutdown_closes(3);
}
END_TEST

/* ----------------------------------------------------------------- stats */

START_TEST(stats_fields_add_up) {
  ck_assert_int_eq(clink_pool_config_set_max_turns(T.cfg, 1), 0);
  make_pool(1, 3);
  wait_idle(1);
  for (int round = 0; round < 3; round++) {
    acquire(round, NULL, NULL);
    RUN_UNTIL(T.a[round].done);
    run_turn(T.a[round].c, "x", 0);
    ck_assert_int_eq(API(clink_pool_release(T.pool, T.a[round].c)), 0);
  }
  wait_idle(1);
  clink_pool_stats s = stats();
  ck_assert_uint_eq(s.struct_size, sizeof(s));
  ck_assert_uint_eq(s.created, s.size + s.closed);
  uint64_t sum = 0, hist = 0;
  for (int i = 0; i < CLINK_POOL_CLOSE_REASONS_; i++) sum += s.closed_by_reason[i];
  ck_assert_uint_eq(sum, s.closed);
  ck_assert_uint_eq(s.closed_by_reason[CLINK_POOL_CLOSE_MAX_TURNS], 3);
  for (int i = 0; i < CLINK_POOL_WAIT_BUCKETS; i++) hist += s.wait_hist[i];
  ck_assert_uint_eq(hist, s.acquired);
  ck_assert_uint_eq(s.acquired, s.acquired_idle + s.acquired_waited);
  ck_assert_uint_eq(s.acquired, 3);
  ck_assert_uint_ge(s.wait_max_us * 3, s.wait_total_us / 3);
  ck_assert_uint_eq(s.size, s.idle + s.in_use + s.starting);
  /* An older, smaller struct gets only its part. */
  struct {
    size_t struct_size;
    uint32_t size;
  } small = {sizeof(small), 0};
  ck_assert_int_eq(clink_pool_get_stats(T.pool, (clink_pool_stats *)&small), 0);
  ck_assert_uint_eq(small.size, s.size);
  clink_pool_stats bad = {0};
  ck_assert_int_eq(clink_pool_get_stats(T.pool, &bad), UV_EINVAL);
}
END_TEST

/* ------------------------------------------- a checked-out client's rules */

static int user_closes;
static void on_user_closed(clink_client *c, void *ud) {
  NOT_IN_API();
  user_closes++;
  *(clink_client **)ud = c;
}

/* close = release and discard: the pool replaces it, and a release after
 * its close callback is legal (the memory stays valid until then). */
START_TEST(close_of_checked_out_member_discards_it) {
  user_closes = 0;
  make_pool(1, 2);
  wait_idle(1);
  clink_client *c, *closed = NULL;
  ck_assert_int_eq(API(clink_pool_try_acquire(T.pool, &c)), 0);
  int pid = clink_client_pid(c);
  ck_assert_int_eq(API(clink_client_close(c, on_user_closed, &closed)), 0);
  RUN_UNTIL(user_closes == 1 && T.closed[CLINK_POOL_CLOSE_USER] == 1);
  ck_assert_ptr_eq(closed, c);
  ck_assert_int_eq(clink_client_get_state(c), CLINK_CLIENT_CLOSED); /* still readable */
  ck_assert_int_eq(API(clink_pool_release(T.pool, c)), 0); /* c is gone now */
  wait_idle(1); /* replaced */
  clink_client *d;
  ck_assert_int_eq(API(clink_pool_try_acquire(T.pool, &d)), 0);
  ck_assert_int_ne(clink_client_pid(d), pid);
  ck_assert_int_eq(API(clink_pool_release(T.pool, d)), 0);
  clink_pool_stats st = stats();
  ck_assert_uint_eq(st.closed_by_reason[CLINK_POOL_CLOSE_USER], 1);
}
END_TEST

/* The wedge: a member closed by its holder and never released must not keep
 * the pool's shutdown from ending. */
START_TEST(shutdown_ends_with_a_member_closed_by_its_holder) {
  user_closes = 0;
  make_pool(1, 1);
  wait_idle(1);
  clink_client *c, *closed = NULL;
  ck_assert_int_eq(API(clink_pool_try_acquire(T.pool, &c)), 0);
  ck_assert_int_eq(API(clink_client_close(c, on_user_closed, &closed)), 0);
  shutdown_pool(CLINK_POOL_DRAIN);
  ck_assert_int_eq(user_closes, 1);
}
END_TEST

/* Also when the close comes after the shutdown began. */
START_TEST(close_of_checked_out_member_during_drain) {
  user_closes = 0;
  make_pool(1, 1);
  wait_idle(1);
  clink_client *c, *closed = NULL;
  ck_assert_int_eq(API(clink_pool_try_acquire(T.pool, &c)), 0);
  ck_assert_int_eq(API(clink_pool_shutdown(T.pool, CLINK_POOL_DRAIN, on_pool_closed, &T)), 0);
  T.shut_down = 1;
  ck_assert_int_eq(API(clink_client_close(c, on_user_closed, &closed)), 0);
  RUN_UNTIL(T.pool_closes == 1);
  ck_assert_int_eq(user_closes, 1);
}
END_TEST

static int user_states;
static void on_user_state(clink_client *c, clink_client_state from, clink_client_state to,
                          void *ud) {
  (void)c;
  (void)from;
  (void)to;
  (void)ud;
  user_states++;
}

/* The holder's own state callback is its own: the pool still knows its
 * member (it never used that slot). */
START_TEST(own_state_cb_on_a_pooled_client) {
  user_states = 0;
  make_pool(1, 1);
  wait_idle(1);
  clink_client *c;
  ck_assert_int_eq(API(clink_pool_try_acquire(T.pool, &c)), 0);
  clink_client_set_state_cb(c, on_user_state, NULL);
  run_turn(c, "x", 0);
  ck_assert_int_eq(API(clink_pool_release(T.pool, c)), 0);
  clink_client *d;
  ck_assert_int_eq(API(clink_pool_try_acquire(T.pool, &d)), 0);
  ck_assert_ptr_eq(d, c);
  ck_assert_int_eq(API(clink_pool_release(T.pool, d)), 0);
  shutdown_pool(CLINK_POOL_DRAIN);
  ck_assert_int_eq(user_states, 2); /* CLOSING, CLOSED at the shutdown */
}
END_TEST

/* connect on a pooled client: the pool starts its processes itself. */
START_TEST(connect_on_a_pooled_client_is_refused) {
  env("FAKE_EXIT_AFTER_TURNS", "1");
  make_pool(1, 1);
  wait_idle(1);
  clink_client *c;
  ck_assert_int_eq(API(clink_pool_try_acquire(T.pool, &c)), 0);
  ck_assert_int_eq(API(clink_client_connect(c, NULL, NULL)), UV_EPERM);
  run_turn(c, "x", 0);
  while (clink_client_get_state(c) != CLINK_CLIENT_ERROR)
    ck_assert(uv_run(&T.loop, UV_RUN_ONCE) != 0);
  ck_assert_int_eq(API(clink_client_connect(c, NULL, NULL)), UV_EPERM);
  ck_assert_int_eq(API(clink_pool_release(T.pool, c)), 0);
  RUN_UNTIL(T.closed[CLINK_POOL_CLOSE_DEAD] == 1);
}
END_TEST

/* where is copied: the caller's buffer may go right away. */
START_TEST(acquire_copies_where) {
  ck_assert_int_eq(clink_pool_config_set_leak_threshold_ms(T.cfg, 30), 0);
  make_pool(1, 1);
  wait_idle(1);
  char where[32];
  snprintf(where, sizeof(where), "handler.c:%d", 42);
  acquire(0, NULL, where);
  memset(where, 'X', sizeof(where) - 1);
  RUN_UNTIL(T.a[0].done);
  RUN_UNTIL(T.ev[CLINK_POOL_EVENT_LEAK] == 1);
  ck_assert_str_eq(T.leak_where, "handler.c:42");
  ck_assert_int_eq(API(clink_pool_release(T.pool, T.a[0].c)), 0);
}
END_TEST

/* A member whose CLI hangs mid-turn is found (turn inactivity probe), its
 * turn fails with CLINK_ETURN_STALLED, and it is replaced. */
START_TEST(member_hung_mid_turn_is_found_and_replaced) {
  env("FAKE_MSG_DELAY_MS", "1");
  env("FAKE_MSGS", "3");
  env("FAKE_HANG_AFTER", "1");
  ck_assert_int_eq(clink_options_set_turn_inactivity_ms(T.opts, 100), 0);
  ck_assert_int_eq(clink_options_set_idle_probe(T.opts, 0, 100), 0);
  make_pool(1, 1);
  wait_idle(1);
  clink_client *c;
  ck_assert_int_eq(API(clink_pool_try_acquire(T.pool, &c)), 0);
  int pid = clink_client_pid(c);
  run_turn(c, "hangs", CLINK_ETURN_STALLED);
  ck_assert_ptr_nonnull(strstr(clink_client_last_error(c), "did not answer a probe"));
  ck_assert_int_eq(API(clink_pool_release(T.pool, c)), 0);
  RUN_UNTIL(T.closed[CLINK_POOL_CLOSE_DEAD] == 1);
  wait_idle(1);
  ck_assert_int_eq(API(clink_pool_try_acquire(T.pool, &c)), 0);
  ck_assert_int_ne(clink_client_pid(c), pid);
  ck_assert_int_eq(API(clink_pool_release(T.pool, c)), 0);
}
END_TEST


/* A pool whose members cannot all hold their descriptors under
 * RLIMIT_NOFILE is refused at once, clearly, instead of failing spawn by
 * spawn later. */
START_TEST(pool_refused_when_descriptors_cannot_fit) {
  struct rlimit old;
  ck_assert_int_eq(getrlimit(RLIMIT_NOFILE, &old), 0);
  int open_now = 0;
  for (int fd = 0; fd < 4096; fd++)
    if (fcntl(fd, F_GETFD) != -1) open_now++;
  struct rlimit low = old;
  low.rlim_cur = (rlim_t)open_now + 40; /* room for 8 sessions, not 10 */
  ck_assert_int_eq(setrlimit(RLIMIT_NOFILE, &low), 0);
  clink_pool *p = NULL;
  ck_assert_int_eq(clink_pool_config_set_size(T.cfg, 0, 10), 0);
  int rc = clink_pool_new(&p, &T.loop, T.opts, T.cfg);
  ck_assert_int_eq(clink_pool_config_set_size(T.cfg, 0, 2), 0);
  int rc_small = clink_pool_new(&T.pool, &T.loop, T.opts, T.cfg);
  ck_assert_int_eq(setrlimit(RLIMIT_NOFILE, &old), 0);
  ck_assert_int_eq(rc, UV_EMFILE);
  ck_assert_ptr_null(p);
  ck_assert_int_eq(rc_small, 0);
  clink_pool_set_event_cb(T.pool, on_event, &T);
}
END_TEST

/* --------------------------------------------------- "never" never wraps */

static int loop_turns;
static void on_prepare(uv_prepare_t *h) {
  (void)h;
  loop_turns++;
}

/* Every time limit of the pool at CLINK_NEVER: nothing fires early, and the
 * housekeeping timer never spins the loop (a deadline that wrapped into the
 * past would re-arm at 0 ms on every turn). */
START_TEST(never_time_limits_do_not_spin) {
  ck_assert_int_eq(clink_pool_config_set_acquire_timeout_ms(T.cfg, CLINK_NEVER), 0);
  ck_assert_int_eq(clink_pool_config_set_max_lifetime_ms(T.cfg, CLINK_NEVER, 2.5), 0);
  ck_assert_int_eq(clink_pool_config_set_idle_timeout_ms(T.cfg, CLINK_NEVER), 0);
  ck_assert_int_eq(clink_pool_config_set_validation(T.cfg, CLINK_NEVER, CLINK_NEVER), 0);
  ck_assert_int_eq(clink_pool_config_set_leak_threshold_ms(T.cfg, CLINK_NEVER), 0);
  ck_assert_int_eq(clink_pool_config_set_shutdown(T.cfg, 10, CLINK_NEVER, CLINK_NEVER), 0);
  ck_assert_int_eq(clink_options_set_connect_timeout_ms(T.opts, CLINK_NEVER), 0);
  ck_assert_int_eq(clink_options_set_control_timeout_ms(T.opts, CLINK_NEVER), 0);
  ck_assert_int_eq(clink_options_set_turn_inactivity_ms(T.opts, CLINK_NEVER), 0);
  ck_assert_int_eq(clink_options_set_idle_probe(T.opts, CLINK_NEVER, CLINK_NEVER), 0);
  make_pool(2, 3);
  wait_idle(2);
  clink_client *c;
  ck_assert_int_eq(API(clink_pool_try_acquire(T.pool, &c)), 0);
  run_turn(c, "x", 0);
  ck_assert_int_eq(API(clink_pool_release(T.pool, c)), 0);
  /* A waiter beyond max size: no timeout. */
  clink_client *held[3];
  for (int i = 0; i < 3; i++) {
    acquire(i, NULL, NULL);
    RUN_UNTIL(T.a[i].done);
    held[i] = T.a[i].c;
  }
  acquire(3, NULL, NULL);
  static uv_prepare_t prep; /* outlives its close, which ends in teardown */
  uv_prepare_init(&T.loop, &prep);
  uv_prepare_start(&prep, on_prepare);
  loop_turns = 0;
  wait_ms(300);
  ck_assert_int_lt(loop_turns, 50); /* a handful, not thousands */
  ck_assert_int_eq(T.a[3].done, 0);
  for (int i = 0; i < 3; i++) ck_assert_int_eq(API(clink_pool_release(T.pool, held[i])), 0);
  RUN_UNTIL(T.a[3].done);
  ck_assert_int_eq(T.a[3].status, 0);
  ck_assert_int_eq(API(clink_pool_release(T.pool, T.a[3].c)), 0);
  uv_close((uv_handle_t *)&prep, NULL);
  ck_assert_int_eq(T.closed[CLINK_POOL_CLOSE_IDLE] + T.closed[CLINK_POOL_CLOSE_LIFETIME], 0);
}
END_TEST

int main(void) {
  Suite *s = suite_create("pool");
  TCase *tc;
#define TC(name, timeout)                             \
  tc = tcase_create(name);                            \
  tcase_add_checked_fixture(tc, setup, teardown);     \
  tcase_set_timeout(tc, timeout);                     \
  suite_add_tcase(s, tc)

  TC("health", 20);
  tcase_add_test(tc, health_score_orders_members);
  tcase_add_test(tc, p2c_picks_two_distinct_in_range);
  tcase_add_test(tc, rebalance_picks_only_a_clear_outlier);
  tcase_add_test(tc, lifetime_jitter_and_wait_buckets);
  tcase_add_test(tc, config_validation);

  TC("acquire", 20);
  tcase_add_test(tc, idle_pool_does_not_hold_the_loop);
  tcase_add_test(tc, warm_fill_to_min_idle);
  tcase_add_test(tc, try_acquire_hit_and_miss);
  tcase_add_test(tc, acquire_from_idle_is_deferred);
  tcase_add_test(tc, spawn_under_max_then_wait);
  tcase_add_test(tc, fifo_waiters_in_order);
  tcase_add_test(tc, acquire_timeout_and_waiter_bound);

  TC("release", 20);
  tcase_add_test(tc, release_healthy_goes_idle);
  tcase_add_test(tc, release_during_turn_is_unhealthy);
  tcase_add_test(tc, release_dead_is_closed_and_replaced);
  tcase_add_test(tc, idle_member_killed_is_replaced);
  tcase_add_test(tc, kill_with_acquire_in_flight_loses_nothing);

  TC("limits", 20);
  tcase_add_test(tc, max_turns_recycles);
  tcase_add_test(tc, lifetime_recycles_successor_first);
  tcase_add_test(tc, lifetime_at_max_size_and_in_use);
  tcase_add_test(tc, idle_timeout_shrinks_to_min_idle);
  tcase_add_test(tc, validation_probe_alive_and_hung);
  tcase_add_test(tc, leak_event_names_where);
  tcase_add_test(tc, rss_limit_recycles_idle_members);
  tcase_add_test(tc, rss_check_on_demand_and_at_release);

  TC("affinity", 20);
  tcase_add_test(tc, session_affinity_and_resume);
  tcase_add_test(tc, session_waits_for_its_busy_member);
  tcase_add_test(tc, without_isolation_any_member_serves);
  tcase_add_test(tc, isolation_keeps_conversations_apart);
  tcase_add_test(tc, isolation_at_max_evicts_the_oldest_conversation);

  TC("burst", 30);
  tcase_add_test(tc, burst_spawns_no_more_than_needed);
  tcase_add_test(tc, burst_released_at_once_reuses);
  tcase_add_test(tc, spawn_elided_when_release_comes_first);
  tcase_add_test(tc, spawn_outlived_by_its_waiter_goes_idle);

  TC("breaker", 20);
  tcase_add_test(tc, breaker_open_rejects_spawn);
  tcase_add_test(tc, spawn_outcomes_feed_breaker);

  TC("health-live", 20);
  tcase_add_test(tc, p2c_prefers_the_healthier_member);
  tcase_add_test(tc, rebalance_recycles_the_outlier_when_quiet);
  tcase_add_test(tc, rebalance_never_evicts_the_last_member);

  TC("shutdown", 20);
  tcase_add_test(tc, shutdown_drain_waits_for_checked_out);
  tcase_add_test(tc, shutdown_drain_deadline_closes_checked_out);
  tcase_add_test(tc, shutdown_immediate_fails_running_turns);
  tcase_add_test(tc, second_shutdown_escalates);
  tcase_add_test(tc, shutdown_empty_pool_and_batches);
  tcase_add_test(tc, shutdown_before_anything_started);
  tcase_add_test(tc, shutdown_expired_batch_nothing_left);
  tcase_add_test(tc, shutdown_expired_batch_release_from_closed);
  tcase_add_test(tc, shutdown_release_after_expired_batch);

  TC("stats", 20);
  tcase_add_test(tc, stats_fields_add_up);

  TC("holder", 20);
  tcase_add_test(tc, close_of_checked_out_member_discards_it);
  tcase_add_test(tc, shutdown_ends_with_a_member_closed_by_its_holder);
  tcase_add_test(tc, close_of_checked_out_member_during_drain);
  tcase_add_test(tc, own_state_cb_on_a_pooled_client);
  tcase_add_test(tc, connect_on_a_pooled_client_is_refused);
  tcase_add_test(tc, acquire_copies_where);
  tcase_add_test(tc, member_hung_mid_turn_is_found_and_replaced);
  tcase_add_test(tc, never_time_limits_do_not_spin);
  tcase_add_test(tc, pool_refused_when_descriptors_cannot_fit);
#undef TC
  return clink_test_run(s);
}
