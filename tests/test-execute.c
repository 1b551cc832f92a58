/* clink_execute: an operation under a breaker and a retry policy. The
 * operations here are scripted outcomes reported from the loop. */
#include <string.h>

#include <claudelink.h>

#include "testutil.h"

typedef struct run {
  uv_loop_t loop;
  int script[16]; /* outcome of attempt i; past the end: 0 */
  uint64_t server_delay;
  int calls, done_calls, status;
  int in_op;      /* set while op runs: done must never be called then */
  int sync;       /* report from inside op */
  int cancel_in_op;
  int cancel_after_report, cancel_rc, cancel_rc2;
  uint64_t call_ms[16];
  clink_exec *ex;
  uv_timer_t later;
} run;

static run R;
static clink_retry_policy *policy;

static void setup(void) {
  memset(&R, 0, sizeof(R));
  ck_assert_int_eq(uv_loop_init(&R.loop), 0);
  ck_assert_int_eq(clink_retry_policy_new(&policy), 0);
  const uint64_t fast[] = {5, 5, 5};
  ck_assert_int_eq(clink_retry_policy_set_schedule(policy, fast, 3), 0);
  ck_assert_int_eq(clink_retry_policy_set_max_attempts(policy, 3), 0);
}

static void teardown(void) {
  clink_retry_policy_free(policy);
  CLINK_TEST_LOOP_DONE(&R.loop);
}

static void on_later(uv_timer_t *t) {
  run *r = t->data;
  int i = r->calls - 1;
  clink_exec_done(r->ex, i < 16 ? r->script[i] : 0, r->server_delay);
  if (r->cancel_after_report) {
    /* The long backoff wait has begun: cancel it. */
    r->cancel_rc = clink_exec_cancel(r->ex);
    r->cancel_rc2 = clink_exec_cancel(r->ex);
    ck_assert_int_eq(r->done_calls, 0);
  }
  uv_close((uv_handle_t *)t, NULL);
}

static void op(clink_exec *ex, void *ud) {
  run *r = ud;
  ck_assert_ptr_eq(ex, r->ex);
  r->in_op = 1;
  if (r->calls < 16) r->call_ms[r->calls] = uv_now(&r->loop);
  r->calls++;
  ck_assert_uint_eq(clink_exec_attempts(ex), (unsigned)r->calls);
  if (r->cancel_in_op) ck_assert_int_eq(clink_exec_cancel(ex), 0);
  if (r->sync) {
    int i = r->calls - 1;
    clink_exec_done(ex, i < 16 ? r->script[i] : 0, r->server_delay);
  } else {
    uv_timer_init(&r->loop, &r->later);
    r->later.data = r;
    uv_timer_start(&r->later, on_later, 1, 0);
  }
  r->in_op = 0;
}

static void on_done(clink_exec *ex, int status, void *ud) {
  run *r = ud;
  ck_assert_int_eq(r->in_op, 0);
  r->done_calls++;
  r->status = status;
}

static void execute(clink_breaker *b, const clink_retry_policy *p) {
  ck_assert_int_eq(clink_execute(&R.ex, &R.loop, b, p, op, on_done, &R), 0);
  ck_assert_int_eq(R.calls, 0); /* never inside the call */
}

START_TEST(first_try_succeeds) {
  execute(NULL, policy);
  uv_run(&R.loop, UV_RUN_DEFAULT);
  ck_assert_int_eq(R.calls, 1);
  ck_assert_int_eq(R.done_calls, 1);
  ck_assert_int_eq(R.status, 0);
}
END_TEST

START_TEST(retryable_failures_then_success) {
  R.script[0] = UV_EPIPE;
  R.script[1] = CLINK_EEXITED;
  execute(NULL, policy);
  uv_run(&R.loop, UV_RUN_DEFAULT);
  ck_assert_int_eq(R.calls, 3);
  ck_assert_int_eq(R.status, 0);
  ck_assert_uint_ge(R.call_ms[1] - R.call_ms[0], 5);
  ck_assert_uint_ge(R.call_ms[2] - R.call_ms[1], 5);
}
END_TEST

START_TEST(reported_inside_op_is_still_deferred) {
  R.sync = 1;
  R.script[0] = UV_EPIPE;
  execute(NULL, policy);
  uv_run(&R.loop, UV_RUN_DEFAULT);
  ck_assert_int_eq(R.calls, 2);
  ck_assert_int_eq(R.done_calls, 1);
  ck_assert_int_eq(R.status, 0);
}
END_TEST

START_TEST(non_retryable_error_ends_at_once) {
  R.script[0] = CLINK_ECLI_NOT_FOUND;
  execute(NULL, policy);
  uv_run(&R.loop, UV_RUN_DEFAULT);
  ck_assert_int_eq(R.calls, 1);
  ck_assert_int_eq(R.status, CLINK_ECLI_NOT_FOUND);
}
END_TEST

START_TEST(exhausted_reports_the_last_error) {
  for (int i = 0; i < 16; i++) R.script[i] = UV_EPIPE;
  R.script[3] = CLINK_EEXITED;
  execute(NULL, policy);
  uv_run(&R.loop, UV_RUN_DEFAULT);
  ck_assert_int_eq(R.calls, 4); /* 1 + 3 retries */
  ck_assert_int_eq(R.status, CLINK_ERETRY_EXHAUSTED);
}
END_TEST

START_TEST(without_policy_one_attempt) {
  R.script[0] = UV_EPIPE;
  execute(NULL, NULL);
  uv_run(&R.loop, UV_RUN_DEFAULT);
  ck_assert_int_eq(R.calls, 1);
  ck_assert_int_eq(R.status, UV_EPIPE);
}
END_TEST

START_TEST(server_delay_is_a_floor) {
  R.script[0] = CLINK_EEXITED;
  R.server_delay = 40;
  execute(NULL, policy);
  uv_run(&R.loop, UV_RUN_DEFAULT);
  ck_assert_int_eq(R.calls, 2);
  ck_assert_uint_ge(R.call_ms[1] - R.call_ms[0], 40);
}
END_TEST

static int last_error_seen;
static void on_done_last(clink_exec *ex, int status, void *ud) {
  on_done(ex, status, ud);
  last_error_seen = clink_exec_last_error(ex);
}

START_TEST(last_error_is_readable_in_done) {
  for (int i = 0; i < 16; i++) R.script[i] = UV_EPIPE;
  ck_assert_int_eq(clink_execute(&R.ex, &R.loop, NULL, policy, op, on_done_last, &R), 0);
  uv_run(&R.loop, UV_RUN_DEFAULT);
  ck_assert_int_eq(R.status, CLINK_ERETRY_EXHAUSTED);
  ck_assert_int_eq(last_error_seen, UV_EPIPE);
}
END_TEST

START_TEST(breaker_opens_rejects_then_recovers) {
  clink_breaker_config *cfg;
  clink_breaker *b;
  ck_assert_int_eq(clink_breaker_config_new(&cfg), 0);
  ck_assert_int_eq(clink_breaker_config_set_consecutive_failures(cfg, 2), 0);
  ck_assert_int_eq(clink_breaker_config_set_open_duration(cfg, 30, 30, 1.0, 0), 0);
  ck_assert_int_eq(clink_breaker_config_set_half_open(cfg, 1, 1, 0), 0);
  ck_assert_int_eq(clink_breaker_new(&b, "test", cfg, 1), 0);
  clink_breaker_config_free(cfg);
  const uint64_t fast[] = {1};
  ck_assert_int_eq(clink_retry_policy_set_schedule(policy, fast, 1), 0);
  ck_assert_int_eq(clink_retry_policy_set_max_attempts(policy, 10), 0);
  R.script[0] = UV_EPIPE;
  R.script[1] = UV_EPIPE; /* the breaker opens here */
  execute(b, policy);
  uv_run(&R.loop, UV_RUN_DEFAULT);
  ck_assert_int_eq(R.status, 0);
  ck_assert_int_eq(R.calls, 3); /* the rejection is no call */
  /* The third call waited for the open period (retry-after floor). */
  ck_assert_uint_ge(R.call_ms[2] - R.call_ms[1], 30);
  clink_breaker_stats st = {.struct_size = sizeof(st)};
  ck_assert_int_eq(clink_breaker_get_stats(b, uv_now(&R.loop), &st), 0);
  ck_assert_int_eq(st.state, CLINK_BREAKER_CLOSED);
  ck_assert_uint_ge(st.total_rejected, 1);
  ck_assert_uint_eq(st.opened_count, 1);
  clink_breaker_free(b);
}
END_TEST

START_TEST(open_breaker_without_policy_fails_fast) {
  clink_breaker_registry *reg;
  ck_assert_int_eq(clink_breaker_registry_new(&reg, 1), 0);
  clink_breaker *b = clink_breaker_registry_get(reg, "claude_sdk");
  clink_breaker_force_open(b, 0);
  execute(b, NULL);
  uv_run(&R.loop, UV_RUN_DEFAULT);
  ck_assert_int_eq(R.calls, 0);
  ck_assert_int_eq(R.status, CLINK_ECIRCUIT_OPEN);
  clink_breaker_registry_free(reg);
}
END_TEST

START_TEST(cancel_while_waiting) {
  R.script[0] = UV_EPIPE;
  const uint64_t slow[] = {60000};
  ck_assert_int_eq(clink_retry_policy_set_schedule(policy, slow, 1), 0);
  R.cancel_after_report = 1;
  execute(NULL, policy);
  uint64_t t0 = uv_now(&R.loop);
  uv_run(&R.loop, UV_RUN_DEFAULT);
  ck_assert_uint_lt(uv_now(&R.loop) - t0, 60000); /* the wait did not run out */
  ck_assert_int_eq(R.cancel_rc, 0);
  ck_assert_int_eq(R.cancel_rc2, UV_EBUSY);
  ck_assert_int_eq(R.calls, 1);
  ck_assert_int_eq(R.done_calls, 1);
  ck_assert_int_eq(R.status, UV_ECANCELED);
}
END_TEST

START_TEST(cancel_while_running_frees_on_report) {
  R.cancel_in_op = 1;
  clink_breaker_registry *reg;
  ck_assert_int_eq(clink_breaker_registry_new(&reg, 1), 0);
  clink_breaker *b = clink_breaker_registry_get(reg, "claude_sdk");
  execute(b, policy);
  uv_run(&R.loop, UV_RUN_DEFAULT);
  ck_assert_int_eq(R.calls, 1);
  ck_assert_int_eq(R.done_calls, 1);
  ck_assert_int_eq(R.status, UV_ECANCELED);
  /* The permit went back: nothing counted as failure or success. */
  clink_breaker_stats st = {.struct_size = sizeof(st)};
  ck_assert_int_eq(clink_breaker_get_stats(b, 0, &st), 0);
  ck_assert_uint_eq(st.total_failures, 0);
  ck_assert_uint_eq(st.total_successes, 0);
  clink_breaker_registry_free(reg);
}
END_TEST

START_TEST(bad_arguments) {
  clink_exec *ex;
  ck_assert_int_eq(clink_execute(&ex, &R.loop, NULL, NULL, NULL, on_done, &R), UV_EINVAL);
  ck_assert_int_eq(clink_execute(NULL, &R.loop, NULL, NULL, op, on_done, &R), UV_EINVAL);
  ck_assert_int_eq(clink_exec_cancel(NULL), UV_EINVAL);
}
END_TEST

int main(void) {
  Suite *s = suite_create("execute");
  TCase *tc = tcase_create("retry");
  tcase_add_checked_fixture(tc, setup, teardown);
  tcase_add_test(tc, first_try_succeeds);
  tcase_add_test(tc, retryable_failures_then_success);
  tcase_add_test(tc, reported_inside_op_is_still_deferred);
  tcase_add_test(tc, non_retryable_error_ends_at_once);
  tcase_add_test(tc, exhausted_reports_the_last_error);
  tcase_add_test(tc, without_policy_one_attempt);
  tcase_add_test(tc, server_delay_is_a_floor);
  tcase_add_test(tc, last_error_is_readable_in_done);
  suite_add_tcase(s, tc);
  tc = tcase_create("breaker");
  tcase_add_checked_fixture(tc, setup, teardown);
  tcase_add_test(tc, breaker_opens_rejects_then_recovers);
  tcase_add_test(tc, open_breaker_without_policy_fails_fast);
  suite_add_tcase(s, tc);
  tc = tcase_create("cancel");
  tcase_add_checked_fixture(tc, setup, teardown);
  tcase_add_test(tc, cancel_while_waiting);
  tcase_add_test(tc, cancel_while_running_frees_on_report);
  tcase_add_test(tc, bad_arguments);
  suite_add_tcase(s, tc);
  return clink_test_run(s);
}
