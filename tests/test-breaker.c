/* Circuit breaker: every transition and boundary on an injected clock (+-1 ms),
 * the seed registry, config validation, and a randomized differential test
 * against a small reference model kept below. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <claudelink.h>

#include "testutil.h"

/* ------------------------------------------------------------- helpers */

typedef struct evrec {
  int n;
  struct {
    clink_breaker_event ev;
    clink_breaker_state from, to;
  } e[64];
  int n_state, n_rejected;
} evrec;

static void record_cb(clink_breaker *b, clink_breaker_event ev, clink_breaker_state from,
                      clink_breaker_state to, void *ud) {
  (void)b;
  evrec *r = ud;
  if (r->n < 64) {
    r->e[r->n].ev = ev;
    r->e[r->n].from = from;
    r->e[r->n].to = to;
    r->n++;
  }
  if (ev == CLINK_BREAKER_EVENT_STATE)
    r->n_state++;
  else
    r->n_rejected++;
}

#define CK_EV(r, i, ev_, from_, to_)                        \
  do {                                                      \
    ck_assert_int_gt((r)->n, (i));                          \
    ck_assert_int_eq((r)->e[i].ev, CLINK_BREAKER_EVENT_##ev_); \
    ck_assert_int_eq((r)->e[i].from, CLINK_BREAKER_##from_); \
    ck_assert_int_eq((r)->e[i].to, CLINK_BREAKER_##to_);   \
  } while (0)

static clink_breaker_config *cfg_new(void) {
  clink_breaker_config *c;
  ck_assert_int_eq(clink_breaker_config_new(&c), 0);
  return c;
}

static clink_breaker *brk_new(clink_breaker_config *c) {
  clink_breaker *b;
  ck_assert_int_eq(clink_breaker_new(&b, "t", c, 7), 0);
  clink_breaker_config_free(c);
  return b;
}

/* Admitted: returns the permit. */
static uint64_t acq(clink_breaker *b, uint64_t now) {
  uint64_t p = 0, ra = 12345;
  ck_assert_int_eq(clink_breaker_acquire(b, now, &p, &ra), 0);
  ck_assert_uint_eq(ra, 0);
  ck_assert_uint_ne(p, 0);
  return p;
}

/* Rejected: returns retry_after. */
static uint64_t rej(clink_breaker *b, uint64_t now) {
  uint64_t p = 99, ra = 12345;
  ck_assert_int_eq(clink_breaker_acquire(b, now, &p, &ra), CLINK_ECIRCUIT_OPEN);
  ck_assert_uint_eq(p, 0);
  return ra;
}

static void fail_n(clink_breaker *b, uint64_t now, int n) {
  for (int i = 0; i < n; i++) clink_breaker_on_error(b, acq(b, now), now, 1);
}

static void succ_n(clink_breaker *b, uint64_t now, int n) {
  for (int i = 0; i < n; i++) clink_breaker_on_success(b, acq(b, now), now, 1);
}

static clink_breaker_stats stats(clink_breaker *b, uint64_t now) {
  clink_breaker_stats s;
  memset(&s, 0xAB, sizeof(s));
  s.struct_size = sizeof(s);
  ck_assert_int_eq(clink_breaker_get_stats(b, now, &s), 0);
  ck_assert_uint_eq(s.struct_size, sizeof(s));
  return s;
}

#define ST(b, now) clink_breaker_get_state((b), (now))

/* -------------------------------------------------------------- config */

START_TEST(defaults) {
  clink_breaker *b;
  ck_assert_int_eq(clink_breaker_new(&b, "dflt", NULL, 1), 0); /* NULL cfg: defaults */
  ck_assert_str_eq(clink_breaker_name(b), "dflt");
  fail_n(b, 0, 4);
  ck_assert_int_eq(ST(b, 0), CLINK_BREAKER_CLOSED);
  fail_n(b, 10, 1); /* 5th consecutive */
  ck_assert_int_eq(ST(b, 10), CLINK_BREAKER_OPEN);
  ck_assert_uint_eq(rej(b, 10), 60000);
  ck_assert_uint_eq(rej(b, 60009), 1);
  ck_assert_int_eq(ST(b, 60010), CLINK_BREAKER_HALF_OPEN);
  uint64_t p = acq(b, 60010);
  ck_assert_uint_eq(rej(b, 60010), 0); /* 1 probe */
  /* 60 s at most in HALF_OPEN once a probe is out. */
  ck_assert_int_eq(ST(b, 120009), CLINK_BREAKER_HALF_OPEN);
  ck_assert_int_eq(ST(b, 120010), CLINK_BREAKER_OPEN);
  clink_breaker_on_success(b, p, 120010, 1); /* too late: stale */
  ck_assert_uint_eq(rej(b, 120010), 60000);   /* multiplier 1: no growth */
  ck_assert_int_eq(ST(b, 180010), CLINK_BREAKER_HALF_OPEN);
  clink_breaker_on_success(b, acq(b, 180010), 180011, 1); /* 1 success closes */
  ck_assert_int_eq(ST(b, 180011), CLINK_BREAKER_CLOSED);
  clink_breaker_free(b);
}
END_TEST

START_TEST(config_validation) {
  clink_breaker_config *c = cfg_new();
  ck_assert_int_eq(clink_breaker_config_new(NULL), UV_EINVAL);
  ck_assert_int_eq(clink_breaker_config_set_consecutive_failures(NULL, 1), UV_EINVAL);
  ck_assert_int_eq(clink_breaker_config_set_consecutive_failures(c, 0), 0);
  /* failure rate */
  ck_assert_int_eq(clink_breaker_config_set_failure_rate(NULL, 50, 0, 10, 1), UV_EINVAL);
  ck_assert_int_eq(clink_breaker_config_set_failure_rate(c, -0.1, 0, 10, 1), UV_EINVAL);
  ck_assert_int_eq(clink_breaker_config_set_failure_rate(c, 100.1, 0, 10, 1), UV_EINVAL);
  ck_assert_int_eq(clink_breaker_config_set_failure_rate(c, NAN, 0, 10, 1), UV_EINVAL);
  ck_assert_int_eq(clink_breaker_config_set_failure_rate(c, 50, (clink_breaker_window)2, 10, 1),
                   UV_EINVAL);
  ck_assert_int_eq(clink_breaker_config_set_failure_rate(c, 50, CLINK_BREAKER_WINDOW_COUNT, 0, 1),
                   UV_EINVAL);
  ck_assert_int_eq(
      clink_breaker_config_set_failure_rate(c, 50, CLINK_BREAKER_WINDOW_TIME, 1025, 1), UV_EINVAL);
  ck_assert_int_eq(
      clink_breaker_config_set_failure_rate(c, 50, CLINK_BREAKER_WINDOW_TIME, 1024, 1), 0);
  ck_assert_int_eq(
      clink_breaker_config_set_failure_rate(c, 100, CLINK_BREAKER_WINDOW_COUNT, 1, 0), 0);
  ck_assert_int_eq(clink_breaker_config_set_failure_rate(c, 0, CLINK_BREAKER_WINDOW_COUNT, 1, 0),
                   0);
  /* slow calls */
  ck_assert_int_eq(clink_breaker_config_set_slow_calls(NULL, 1, 50), UV_EINVAL);
  ck_assert_int_eq(clink_breaker_config_set_slow_calls(c, 1, -1), UV_EINVAL);
  ck_assert_int_eq(clink_breaker_config_set_slow_calls(c, 1, 101), UV_EINVAL);
  ck_assert_int_eq(clink_breaker_config_set_slow_calls(c, 1, NAN), UV_EINVAL);
  ck_assert_int_eq(clink_breaker_config_set_slow_calls(c, 0, 100), 0);
  /* open duration */
  ck_assert_int_eq(clink_breaker_config_set_open_duration(NULL, 1, 1, 1, 0), UV_EINVAL);
  ck_assert_int_eq(clink_breaker_config_set_open_duration(c, 0, 1, 1, 0), UV_EINVAL);
  ck_assert_int_eq(clink_breaker_config_set_open_duration(c, 2, 1, 1, 0), UV_EINVAL);
  ck_assert_int_eq(clink_breaker_config_set_open_duration(c, 1, 1, 0.99, 0), UV_EINVAL);
  ck_assert_int_eq(clink_breaker_config_set_open_duration(c, 1, 1, NAN, 0), UV_EINVAL);
  ck_assert_int_eq(clink_breaker_config_set_open_duration(c, 1, 1, INFINITY, 0), UV_EINVAL);
  ck_assert_int_eq(clink_breaker_config_set_open_duration(c, 1, 1, 1, -1), UV_EINVAL);
  ck_assert_int_eq(clink_breaker_config_set_open_duration(c, 1, 1, 1, 100.5), UV_EINVAL);
  ck_assert_int_eq(clink_breaker_config_set_open_duration(c, 1, 1, 1, NAN), UV_EINVAL);
  ck_assert_int_eq(clink_breaker_config_set_open_duration(c, 1, UINT64_MAX, 1e9, 100), 0);
  /* half open */
  ck_assert_int_eq(clink_breaker_config_set_half_open(NULL, 1, 1, 0), UV_EINVAL);
  ck_assert_int_eq(clink_breaker_config_set_half_open(c, 0, 1, 0), UV_EINVAL);
  ck_assert_int_eq(clink_breaker_config_set_half_open(c, 1, 0, 0), UV_EINVAL);
  ck_assert_int_eq(clink_breaker_config_set_half_open(c, 1, 1, 0), 0);
  /* new */
  clink_breaker *b = (clink_breaker *)&b;
  ck_assert_int_eq(clink_breaker_new(NULL, "x", c, 1), UV_EINVAL);
  ck_assert_int_eq(clink_breaker_new(&b, NULL, c, 1), UV_EINVAL);
  ck_assert_ptr_null(b);
  ck_assert_int_eq(clink_breaker_new(&b, "x", c, 0), 0); /* seed 0: from the clock */
  clink_breaker_free(b);
  clink_breaker_config_free(c);
  clink_breaker_config_free(NULL);
  clink_breaker_free(NULL);
  /* NULL breaker: errors or no-ops, never a crash */
  uint64_t p, ra;
  clink_breaker_stats s = {.struct_size = sizeof(s)};
  ck_assert_int_eq(clink_breaker_acquire(NULL, 0, &p, &ra), UV_EINVAL);
  ck_assert_int_eq(clink_breaker_get_stats(NULL, 0, &s), UV_EINVAL);
  clink_breaker_on_success(NULL, 2, 0, 0);
  clink_breaker_on_error(NULL, 2, 0, 0);
  clink_breaker_release(NULL, 2);
  clink_breaker_reset(NULL, 0);
  clink_breaker_force_open(NULL, 0);
  clink_breaker_disable(NULL, 0);
  clink_breaker_open_for(NULL, 0, 1);
  clink_breaker_set_event_cb(NULL, NULL, NULL);
  ck_assert_ptr_null(clink_breaker_name(NULL));
}
END_TEST

START_TEST(state_names) {
  ck_assert_str_eq(clink_breaker_state_name(CLINK_BREAKER_CLOSED), "CLOSED");
  ck_assert_str_eq(clink_breaker_state_name(CLINK_BREAKER_OPEN), "OPEN");
  ck_assert_str_eq(clink_breaker_state_name(CLINK_BREAKER_HALF_OPEN), "HALF_OPEN");
  ck_assert_str_eq(clink_breaker_state_name(CLINK_BREAKER_DISABLED), "DISABLED");
  ck_assert_str_eq(clink_breaker_state_name(CLINK_BREAKER_FORCED_OPEN), "FORCED_OPEN");
  ck_assert_str_eq(clink_breaker_state_name((clink_breaker_state)99), "UNKNOWN");
  /* resilience4j's stable order */
  ck_assert_int_eq(CLINK_BREAKER_CLOSED, 0);
  ck_assert_int_eq(CLINK_BREAKER_FORCED_OPEN, 4);
}
END_TEST

/* --------------------------------------------------------- transitions */

START_TEST(consecutive_trips_at_threshold) {
  clink_breaker_config *c = cfg_new();
  clink_breaker_config_set_consecutive_failures(c, 3);
  clink_breaker *b = brk_new(c);
  fail_n(b, 0, 2);
  succ_n(b, 0, 1); /* resets the run */
  fail_n(b, 0, 2);
  ck_assert_int_eq(ST(b, 0), CLINK_BREAKER_CLOSED);
  clink_breaker_stats s = stats(b, 0);
  ck_assert_uint_eq(s.consecutive_failures, 2);
  fail_n(b, 5, 1);
  ck_assert_int_eq(ST(b, 5), CLINK_BREAKER_OPEN);
  clink_breaker_free(b);

  /* 0 disables the rule: nothing trips. */
  c = cfg_new();
  clink_breaker_config_set_consecutive_failures(c, 0);
  b = brk_new(c);
  fail_n(b, 0, 1000);
  ck_assert_int_eq(ST(b, 0), CLINK_BREAKER_CLOSED);
  clink_breaker_free(b);
}
END_TEST

START_TEST(open_duration_boundary) {
  clink_breaker_config *c = cfg_new();
  clink_breaker_config_set_consecutive_failures(c, 1);
  clink_breaker_config_set_open_duration(c, 500, 500, 1.0, 0.0);
  clink_breaker *b = brk_new(c);
  fail_n(b, 1000, 1);
  ck_assert_uint_eq(rej(b, 1000), 500);
  ck_assert_uint_eq(rej(b, 1499), 1);
  clink_breaker_stats s = stats(b, 1499);
  ck_assert_int_eq(s.state, CLINK_BREAKER_OPEN);
  ck_assert_uint_eq(s.until_half_open_ms, 1);
  ck_assert_int_eq(ST(b, 1499), CLINK_BREAKER_OPEN);
  ck_assert_int_eq(ST(b, 1500), CLINK_BREAKER_HALF_OPEN);
  s = stats(b, 1500);
  ck_assert_uint_eq(s.until_half_open_ms, 0);
  acq(b, 1500);
  clink_breaker_free(b);

  /* The lazy transition happens in acquire itself too, at exactly base_ms. */
  c = cfg_new();
  clink_breaker_config_set_consecutive_failures(c, 1);
  clink_breaker_config_set_open_duration(c, 500, 500, 1.0, 0.0);
  b = brk_new(c);
  fail_n(b, 1000, 1);
  ck_assert_uint_eq(rej(b, 1499), 1);
  acq(b, 1500);
  ck_assert_int_eq(ST(b, 1500), CLINK_BREAKER_HALF_OPEN);
  clink_breaker_free(b);
}
END_TEST

START_TEST(half_open_admits_max_probes) {
  clink_breaker_config *c = cfg_new();
  clink_breaker_config_set_consecutive_failures(c, 1);
  clink_breaker_config_set_open_duration(c, 100, 100, 1.0, 0.0);
  clink_breaker_config_set_half_open(c, 3, 3, 0);
  clink_breaker *b = brk_new(c);
  fail_n(b, 0, 1);
  uint64_t p1 = acq(b, 100), p2 = acq(b, 100), p3 = acq(b, 100);
  (void)p1;
  (void)p3;
  ck_assert_uint_eq(rej(b, 100), 0); /* probes busy: retry_after unknown */
  ck_assert_uint_eq(rej(b, 200), 0);
  clink_breaker_stats s = stats(b, 200);
  ck_assert_uint_eq(s.half_open_in_flight, 3);
  ck_assert_uint_eq(s.total_rejected, 2);
  clink_breaker_release(b, p2); /* frees a slot */
  s = stats(b, 200);
  ck_assert_uint_eq(s.half_open_in_flight, 2);
  uint64_t p4 = acq(b, 201);
  ck_assert_uint_eq(rej(b, 201), 0);
  ck_assert_uint_eq(stats(b, 201).half_open_in_flight, 3);
  clink_breaker_on_success(b, p4, 202, 1); /* an outcome frees a slot too */
  ck_assert_uint_eq(stats(b, 202).half_open_in_flight, 2);
  ck_assert_int_eq(ST(b, 202), CLINK_BREAKER_HALF_OPEN);
  acq(b, 203);
  ck_assert_uint_eq(rej(b, 203), 0);
  clink_breaker_free(b);
}
END_TEST

START_TEST(successes_to_close_is_separate) {
  /* 1 probe at a time, 3 successes to close. */
  clink_breaker_config *c = cfg_new();
  clink_breaker_config_set_consecutive_failures(c, 1);
  clink_breaker_config_set_open_duration(c, 100, 100, 1.0, 0.0);
  clink_breaker_config_set_half_open(c, 1, 3, 0);
  clink_breaker *b = brk_new(c);
  fail_n(b, 0, 1);
  for (int i = 0; i < 2; i++) {
    uint64_t p = acq(b, 100);
    ck_assert_uint_eq(rej(b, 100), 0);
    clink_breaker_on_success(b, p, 100, 1);
    ck_assert_int_eq(ST(b, 100), CLINK_BREAKER_HALF_OPEN);
    ck_assert_uint_eq(stats(b, 100).consecutive_successes, (uint32_t)i + 1);
  }
  clink_breaker_on_success(b, acq(b, 100), 100, 1);
  ck_assert_int_eq(ST(b, 100), CLINK_BREAKER_CLOSED);
  clink_breaker_free(b);

  /* 3 probes at once, 1 success closes; the other probes are then stale. */
  c = cfg_new();
  clink_breaker_config_set_consecutive_failures(c, 1);
  clink_breaker_config_set_open_duration(c, 100, 100, 1.0, 0.0);
  clink_breaker_config_set_half_open(c, 3, 1, 0);
  b = brk_new(c);
  fail_n(b, 0, 1);
  uint64_t p1 = acq(b, 100), p2 = acq(b, 100), p3 = acq(b, 100);
  clink_breaker_on_success(b, p1, 101, 1);
  ck_assert_int_eq(ST(b, 101), CLINK_BREAKER_CLOSED);
  clink_breaker_on_error(b, p2, 102, 1); /* stale probe: does not count in CLOSED */
  clink_breaker_release(b, p3);
  ck_assert_int_eq(ST(b, 102), CLINK_BREAKER_CLOSED);
  ck_assert_uint_eq(stats(b, 102).consecutive_failures, 0);
  clink_breaker_free(b);
}
END_TEST

START_TEST(half_open_failure_reopens_grown) {
  clink_breaker_config *c = cfg_new();
  clink_breaker_config_set_consecutive_failures(c, 2);
  clink_breaker_config_set_open_duration(c, 1000, 5000, 2.0, 0.0);
  clink_breaker_config_set_half_open(c, 2, 2, 0);
  clink_breaker *b = brk_new(c);
  fail_n(b, 0, 2);
  ck_assert_uint_eq(rej(b, 0), 1000);
  uint64_t t = 1000;
  static const uint64_t expect[] = {2000, 4000, 5000, 5000};
  for (size_t i = 0; i < 4; i++) {
    ck_assert_int_eq(ST(b, t), CLINK_BREAKER_HALF_OPEN);
    uint64_t p1 = acq(b, t), p2 = acq(b, t);
    clink_breaker_on_success(b, p1, t, 1); /* one success is not enough */
    ck_assert_int_eq(ST(b, t), CLINK_BREAKER_HALF_OPEN);
    clink_breaker_on_error(b, p2, t + 1, 1); /* any failure re-opens at once */
    ck_assert_int_eq(ST(b, t + 1), CLINK_BREAKER_OPEN);
    ck_assert_uint_eq(rej(b, t + 1), expect[i]);
    t += 1 + expect[i];
    ck_assert_uint_eq(rej(b, t - 1), 1);
  }
  /* Close: the multiplier starts over. */
  clink_breaker_on_success(b, acq(b, t), t, 1);
  clink_breaker_on_success(b, acq(b, t), t, 1);
  ck_assert_int_eq(ST(b, t), CLINK_BREAKER_CLOSED);
  fail_n(b, t, 2);
  ck_assert_uint_eq(rej(b, t), 1000);
  ck_assert_uint_eq(stats(b, t).opened_count, 6);
  clink_breaker_free(b);
}
END_TEST

START_TEST(half_open_max_wait) {
  clink_breaker_config *c = cfg_new();
  clink_breaker_config_set_consecutive_failures(c, 1);
  clink_breaker_config_set_open_duration(c, 1000, 10000, 2.0, 0.0);
  clink_breaker_config_set_half_open(c, 2, 2, 500);
  clink_breaker *b = brk_new(c);
  evrec r = {0};
  clink_breaker_set_event_cb(b, record_cb, &r);
  fail_n(b, 0, 1);
  ck_assert_int_eq(ST(b, 1000), CLINK_BREAKER_HALF_OPEN);
  /* No probe out: waiting for traffic is not being stuck. */
  ck_assert_int_eq(ST(b, 50000), CLINK_BREAKER_HALF_OPEN);
  uint64_t p1 = acq(b, 50000);
  uint64_t p2 = acq(b, 50100); /* the clock runs from the first probe */
  clink_breaker_on_success(b, p2, 50200, 1); /* progress, not a verdict */
  ck_assert_int_eq(ST(b, 50499), CLINK_BREAKER_HALF_OPEN);
  ck_assert_int_eq(ST(b, 50500), CLINK_BREAKER_OPEN);
  ck_assert_uint_eq(rej(b, 50500), 2000); /* grown */
  clink_breaker_on_success(b, p1, 50500, 1); /* the verdict came too late */
  ck_assert_int_eq(ST(b, 50500), CLINK_BREAKER_OPEN);
  ck_assert_int_eq(ST(b, 52499), CLINK_BREAKER_OPEN);
  ck_assert_int_eq(ST(b, 52500), CLINK_BREAKER_HALF_OPEN);
  CK_EV(&r, 0, STATE, CLOSED, OPEN);
  CK_EV(&r, 1, STATE, OPEN, HALF_OPEN);
  CK_EV(&r, 2, STATE, HALF_OPEN, OPEN);
  CK_EV(&r, 3, NOT_PERMITTED, OPEN, OPEN);
  CK_EV(&r, 4, STATE, OPEN, HALF_OPEN);
  ck_assert_int_eq(r.n, 5);

  /* The re-open happens logically at the deadline: looked at late, the breaker
   * has been OPEN and is HALF_OPEN again, with both events. */
  acq(b, 52500);
  r.n = 0;
  ck_assert_int_eq(ST(b, 53000 + 4000 + 7), CLINK_BREAKER_HALF_OPEN);
  CK_EV(&r, 0, STATE, HALF_OPEN, OPEN);
  CK_EV(&r, 1, STATE, OPEN, HALF_OPEN);
  ck_assert_int_eq(r.n, 2);
  clink_breaker_free(b);

  c = cfg_new();
  clink_breaker_config_set_consecutive_failures(c, 1);
  clink_breaker_config_set_open_duration(c, 1000, 10000, 2.0, 0.0);
  clink_breaker_config_set_half_open(c, 1, 1, 500);
  b = brk_new(c);
  fail_n(b, 0, 1);
  uint64_t p = acq(b, 1000);
  ck_assert_uint_eq(rej(b, 1499), 0);
  ck_assert_uint_eq(rej(b, 1500), 2000); /* deadline at 1500, open until 3500 */
  ck_assert_uint_eq(rej(b, 3499), 1);
  clink_breaker_on_success(b, p, 3499, 1);
  acq(b, 3500);
  clink_breaker_free(b);

  /* 0 = no limit. */
  c = cfg_new();
  clink_breaker_config_set_consecutive_failures(c, 1);
  clink_breaker_config_set_open_duration(c, 1000, 1000, 1.0, 0.0);
  clink_breaker_config_set_half_open(c, 1, 1, 0);
  b = brk_new(c);
  fail_n(b, 0, 1);
  p = acq(b, 1000);
  ck_assert_int_eq(ST(b, UINT64_MAX - 1), CLINK_BREAKER_HALF_OPEN);
  clink_breaker_on_success(b, p, UINT64_MAX - 1, 1);
  ck_assert_int_eq(ST(b, UINT64_MAX - 1), CLINK_BREAKER_CLOSED);
  clink_breaker_free(b);
}
END_TEST

START_TEST(stale_permits_are_ignored) {
  clink_breaker_config *c = cfg_new();
  clink_breaker_config_set_consecutive_failures(c, 2);
  clink_breaker_config_set_open_duration(c, 1000, 1000, 1.0, 0.0);
  clink_breaker_config_set_half_open(c, 1, 1, 0);
  clink_breaker *b = brk_new(c);
  uint64_t old = acq(b, 0); /* a call made while CLOSED... */
  fail_n(b, 10, 2);
  ck_assert_int_eq(ST(b, 1010), CLINK_BREAKER_HALF_OPEN);
  /* ...finishing now must not close the breaker, nor fill or free a slot. */
  clink_breaker_on_success(b, old, 1010, 1);
  ck_assert_int_eq(ST(b, 1010), CLINK_BREAKER_HALF_OPEN);
  clink_breaker_on_error(b, old, 1010, 1);
  ck_assert_int_eq(ST(b, 1010), CLINK_BREAKER_HALF_OPEN);
  clink_breaker_stats s = stats(b, 1010);
  ck_assert_uint_eq(s.half_open_in_flight, 0);
  ck_assert_uint_eq(s.total_successes, 0);
  ck_assert_uint_eq(s.total_failures, 2);
  uint64_t probe = acq(b, 1010);
  clink_breaker_release(b, old); /* does not free the probe slot */
  ck_assert_uint_eq(rej(b, 1010), 0);
  /* A probe of an earlier HALF_OPEN is stale too. */
  clink_breaker_on_error(b, probe, 1011, 1);
  ck_assert_int_eq(ST(b, 2011), CLINK_BREAKER_HALF_OPEN);
  clink_breaker_on_success(b, probe, 2011, 1);
  ck_assert_int_eq(ST(b, 2011), CLINK_BREAKER_HALF_OPEN);
  clink_breaker_release(b, probe);
  uint64_t probe2 = acq(b, 2011);
  clink_breaker_on_success(b, probe2, 2012, 1);
  ck_assert_int_eq(ST(b, 2012), CLINK_BREAKER_CLOSED);
  /* A probe permit presented in CLOSED is stale (new generation). */
  clink_breaker_on_error(b, probe2, 2013, 1);
  clink_breaker_on_error(b, probe2, 2013, 1);
  ck_assert_int_eq(ST(b, 2013), CLINK_BREAKER_CLOSED);
  ck_assert_uint_eq(stats(b, 2013).consecutive_failures, 0);
  /* Garbage permits are ignored. */
  clink_breaker_on_error(b, 0, 2013, 1);
  clink_breaker_on_error(b, UINT64_MAX, 2013, 1);
  ck_assert_uint_eq(stats(b, 2013).consecutive_failures, 0);
  clink_breaker_free(b);
}
END_TEST

START_TEST(half_open_slow_call_reopens) {
  clink_breaker_config *c = cfg_new();
  clink_breaker_config_set_consecutive_failures(c, 1);
  clink_breaker_config_set_slow_calls(c, 100, 100.0);
  clink_breaker_config_set_open_duration(c, 1000, 1000, 1.0, 0.0);
  clink_breaker_config_set_half_open(c, 1, 1, 0);
  clink_breaker *b = brk_new(c);
  fail_n(b, 0, 1);
  clink_breaker_on_success(b, acq(b, 1000), 1101, 101); /* slow: a failed probe */
  ck_assert_int_eq(ST(b, 1101), CLINK_BREAKER_OPEN);
  clink_breaker_on_success(b, acq(b, 2101), 2201, 100); /* exactly slow_ms: fine */
  ck_assert_int_eq(ST(b, 2201), CLINK_BREAKER_CLOSED);
  clink_breaker_free(b);
}
END_TEST

START_TEST(manual_controls) {
  clink_breaker_config *c = cfg_new();
  clink_breaker_config_set_consecutive_failures(c, 2);
  clink_breaker_config_set_open_duration(c, 1000, 8000, 2.0, 25.0);
  clink_breaker *b = brk_new(c);
  evrec r = {0};
  clink_breaker_set_event_cb(b, record_cb, &r);

  /* FORCED_OPEN: rejects with 0 until reset; outcomes, timers, open_for ignored. */
  uint64_t p = acq(b, 0);
  clink_breaker_force_open(b, 0);
  ck_assert_int_eq(ST(b, 0), CLINK_BREAKER_FORCED_OPEN);
  ck_assert_uint_eq(rej(b, 0), 0);
  clink_breaker_on_success(b, p, 1, 1);
  clink_breaker_open_for(b, 1, 10);
  clink_breaker_force_open(b, 2); /* already: nothing */
  ck_assert_uint_eq(rej(b, 1000000000), 0);
  ck_assert_int_eq(ST(b, UINT64_MAX), CLINK_BREAKER_FORCED_OPEN);
  clink_breaker_reset(b, 10);
  ck_assert_int_eq(ST(b, 10), CLINK_BREAKER_CLOSED);
  CK_EV(&r, 0, STATE, CLOSED, FORCED_OPEN);
  CK_EV(&r, 1, NOT_PERMITTED, FORCED_OPEN, FORCED_OPEN);
  CK_EV(&r, 2, NOT_PERMITTED, FORCED_OPEN, FORCED_OPEN);
  CK_EV(&r, 3, STATE, FORCED_OPEN, CLOSED);
  ck_assert_int_eq(r.n, 4);

  /* DISABLED: admits everything, records nothing. */
  r.n = 0;
  clink_breaker_disable(b, 20);
  clink_breaker_disable(b, 20);
  fail_n(b, 20, 100);
  clink_breaker_open_for(b, 20, 10);
  ck_assert_int_eq(ST(b, 30), CLINK_BREAKER_DISABLED);
  clink_breaker_stats s = stats(b, 30);
  ck_assert_uint_eq(s.consecutive_failures, 0);
  ck_assert_uint_eq(s.total_failures, 0);
  ck_assert_uint_eq(s.total_calls, 1); /* the one acquired while CLOSED */
  CK_EV(&r, 0, STATE, CLOSED, DISABLED);
  ck_assert_int_eq(r.n, 1);
  /* force_open from DISABLED, then reset */
  clink_breaker_force_open(b, 30);
  ck_assert_int_eq(ST(b, 30), CLINK_BREAKER_FORCED_OPEN);
  clink_breaker_disable(b, 30);
  ck_assert_int_eq(ST(b, 30), CLINK_BREAKER_DISABLED);
  clink_breaker_reset(b, 40);

  /* open_for: exactly ms (no jitter), from CLOSED, OPEN and HALF_OPEN. */
  r.n = 0;
  clink_breaker_open_for(b, 100, 7000);
  ck_assert_uint_eq(rej(b, 100), 7000);
  ck_assert_uint_eq(rej(b, 7099), 1);
  clink_breaker_open_for(b, 7099, 3); /* shortens too: the server said so */
  ck_assert_uint_eq(rej(b, 7099), 3);
  ck_assert_int_eq(ST(b, 7101), CLINK_BREAKER_OPEN);
  ck_assert_int_eq(ST(b, 7102), CLINK_BREAKER_HALF_OPEN);
  p = acq(b, 7102);
  clink_breaker_open_for(b, 7103, 50);
  ck_assert_uint_eq(rej(b, 7103), 50);
  clink_breaker_on_success(b, p, 7104, 1); /* the probe is stale now */
  ck_assert_int_eq(ST(b, 7152), CLINK_BREAKER_OPEN);
  ck_assert_int_eq(ST(b, 7153), CLINK_BREAKER_HALF_OPEN);
  CK_EV(&r, 0, STATE, CLOSED, OPEN);
  CK_EV(&r, 1, NOT_PERMITTED, OPEN, OPEN);
  CK_EV(&r, 2, NOT_PERMITTED, OPEN, OPEN);
  CK_EV(&r, 3, NOT_PERMITTED, OPEN, OPEN); /* OPEN -> OPEN is not a transition */
  CK_EV(&r, 4, STATE, OPEN, HALF_OPEN);
  CK_EV(&r, 5, STATE, HALF_OPEN, OPEN);
  CK_EV(&r, 6, NOT_PERMITTED, OPEN, OPEN);
  CK_EV(&r, 7, STATE, OPEN, HALF_OPEN);
  ck_assert_int_eq(r.n, 8);
  s = stats(b, 7153);
  ck_assert_uint_eq(s.opened_count, 3);

  /* reset: fresh window, counters and multiplier, new generation. */
  clink_breaker_reset(b, 8000);
  fail_n(b, 8000, 1);
  uint64_t g = stats(b, 8000).generation;
  clink_breaker_reset(b, 8000);
  s = stats(b, 8000);
  ck_assert_uint_eq(s.generation, g + 1);
  ck_assert_uint_eq(s.consecutive_failures, 0);
  fail_n(b, 8000, 1);
  ck_assert_int_eq(ST(b, 8000), CLINK_BREAKER_CLOSED);
  fail_n(b, 8000, 1);
  uint64_t ra = rej(b, 8000);
  ck_assert_uint_ge(ra, 750); /* base 1000 +-25 %, not grown */
  ck_assert_uint_le(ra, 1250);
  clink_breaker_free(b);
}
END_TEST

/* A callback that re-enters the breaker. */
typedef struct reenter {
  evrec r;
  int action;
  int nested_rc;
  uint64_t nested_permit;
} reenter;

static void reenter_cb(clink_breaker *b, clink_breaker_event ev, clink_breaker_state from,
                       clink_breaker_state to, void *ud) {
  reenter *x = ud;
  record_cb(b, ev, from, to, &x->r);
  if (ev != CLINK_BREAKER_EVENT_STATE) return;
  if (x->action == 1 && to == CLINK_BREAKER_OPEN) {
    x->action = 0;
    clink_breaker_reset(b, 0);
  } else if (x->action == 2 && to == CLINK_BREAKER_HALF_OPEN) {
    x->action = 0;
    uint64_t ra;
    x->nested_rc = clink_breaker_acquire(b, 100, &x->nested_permit, &ra);
  } else if (x->action == 3 && to == CLINK_BREAKER_OPEN) {
    x->action = 0;
    uint64_t ra;
    x->nested_rc = clink_breaker_acquire(b, 0, &x->nested_permit, &ra);
    clink_breaker_stats s = {.struct_size = sizeof(s)};
    clink_breaker_get_stats(b, 0, &s);
    clink_breaker_get_state(b, 0);
  }
}

START_TEST(events_and_reentrancy) {
  clink_breaker_config *c = cfg_new();
  clink_breaker_config_set_consecutive_failures(c, 2);
  clink_breaker_config_set_open_duration(c, 100, 100, 1.0, 0.0);
  clink_breaker_config_set_half_open(c, 1, 1, 0);
  clink_breaker *b = brk_new(c);
  reenter x;
  memset(&x, 0, sizeof(x));
  clink_breaker_set_event_cb(b, reenter_cb, &x);

  /* A full cycle. */
  fail_n(b, 0, 2);
  ck_assert_uint_eq(rej(b, 50), 50);
  ck_assert_uint_eq(rej(b, 60), 40);
  uint64_t p = acq(b, 100);
  ck_assert_uint_eq(rej(b, 100), 0);
  clink_breaker_on_success(b, p, 101, 1);
  CK_EV(&x.r, 0, STATE, CLOSED, OPEN);
  CK_EV(&x.r, 1, NOT_PERMITTED, OPEN, OPEN);
  CK_EV(&x.r, 2, NOT_PERMITTED, OPEN, OPEN);
  CK_EV(&x.r, 3, STATE, OPEN, HALF_OPEN);
  CK_EV(&x.r, 4, NOT_PERMITTED, HALF_OPEN, HALF_OPEN);
  CK_EV(&x.r, 5, STATE, HALF_OPEN, CLOSED);
  ck_assert_int_eq(x.r.n, 6);
  ck_assert_int_eq(x.r.n_rejected, 3);
  ck_assert_uint_eq(stats(b, 101).total_rejected, 3);

  /* reset() from inside the trip event: ends CLOSED with a fresh window. */
  memset(&x, 0, sizeof(x));
  x.action = 1;
  fail_n(b, 200, 2);
  ck_assert_int_eq(ST(b, 200), CLINK_BREAKER_CLOSED);
  CK_EV(&x.r, 0, STATE, CLOSED, OPEN);
  CK_EV(&x.r, 1, STATE, OPEN, CLOSED);
  ck_assert_int_eq(x.r.n, 2);
  fail_n(b, 200, 1);
  ck_assert_int_eq(ST(b, 200), CLINK_BREAKER_CLOSED);
  fail_n(b, 200, 1);
  ck_assert_int_eq(ST(b, 200), CLINK_BREAKER_OPEN);

  /* The state is final before the callback runs: the outer acquire that moved
   * the breaker to HALF_OPEN took the only probe; the nested one is refused. */
  memset(&x, 0, sizeof(x));
  x.action = 2;
  uint64_t outer = acq(b, 300);
  ck_assert_int_eq(x.nested_rc, CLINK_ECIRCUIT_OPEN);
  ck_assert_uint_eq(stats(b, 300).half_open_in_flight, 1);
  CK_EV(&x.r, 0, STATE, OPEN, HALF_OPEN);
  CK_EV(&x.r, 1, NOT_PERMITTED, HALF_OPEN, HALF_OPEN);
  ck_assert_int_eq(x.r.n, 2);
  clink_breaker_on_success(b, outer, 301, 1);
  ck_assert_int_eq(ST(b, 301), CLINK_BREAKER_CLOSED);

  /* Nested calls inside the trip event see OPEN. */
  memset(&x, 0, sizeof(x));
  x.action = 3;
  fail_n(b, 400, 2);
  ck_assert_int_eq(x.nested_rc, CLINK_ECIRCUIT_OPEN);
  ck_assert_int_eq(ST(b, 400), CLINK_BREAKER_OPEN);
  ck_assert_uint_eq(rej(b, 400), 100);

  /* No callback: nothing breaks. */
  clink_breaker_set_event_cb(b, NULL, NULL);
  rej(b, 401);
  clink_breaker_free(b);
}
END_TEST

START_TEST(stats_fields) {
  clink_breaker_config *c = cfg_new();
  clink_breaker_config_set_consecutive_failures(c, 0);
  clink_breaker_config_set_failure_rate(c, 50.0, CLINK_BREAKER_WINDOW_COUNT, 10, 4);
  clink_breaker_config_set_slow_calls(c, 100, 90.0);
  clink_breaker_config_set_open_duration(c, 1000, 1000, 1.0, 0.0);
  clink_breaker *b = brk_new(c);
  clink_breaker_stats s = stats(b, 0);
  ck_assert_int_eq(s.state, CLINK_BREAKER_CLOSED);
  ck_assert_uint_eq(s.generation, 1);
  ck_assert_double_eq(s.failure_rate_pct, -1.0);
  ck_assert_double_eq(s.slow_rate_pct, -1.0);
  ck_assert_uint_eq(s.window_calls, 0);
  clink_breaker_on_success(b, acq(b, 0), 0, 150); /* slow success */
  clink_breaker_on_error(b, acq(b, 0), 0, 1);
  clink_breaker_on_success(b, acq(b, 0), 0, 1);
  uint64_t pending = acq(b, 0);
  s = stats(b, 0);
  ck_assert_uint_eq(s.window_calls, 3);
  ck_assert_uint_eq(s.window_failures, 1);
  ck_assert_uint_eq(s.window_slow, 1);
  ck_assert_double_eq(s.failure_rate_pct, -1.0); /* below min_calls */
  ck_assert_uint_eq(s.consecutive_successes, 1);
  ck_assert_uint_eq(s.consecutive_failures, 0);
  ck_assert_uint_eq(s.total_calls, 4);
  ck_assert_uint_eq(s.total_successes, 2);
  ck_assert_uint_eq(s.total_failures, 1);
  clink_breaker_on_success(b, pending, 0, 1);
  s = stats(b, 0);
  ck_assert_double_eq(s.failure_rate_pct, 25.0);
  ck_assert_double_eq(s.slow_rate_pct, 25.0);
  ck_assert_uint_eq(s.until_half_open_ms, 0);
  ck_assert_uint_eq(s.half_open_in_flight, 0);
  ck_assert_uint_eq(s.opened_count, 0);

  /* A smaller struct_size gets a prefix, and its size back. */
  clink_breaker_stats small;
  memset(&small, 0xEE, sizeof(small));
  small.struct_size = offsetof(clink_breaker_stats, consecutive_failures);
  ck_assert_int_eq(clink_breaker_get_stats(b, 0, &small), 0);
  ck_assert_uint_eq(small.struct_size, offsetof(clink_breaker_stats, consecutive_failures));
  ck_assert_int_eq(small.state, CLINK_BREAKER_CLOSED);
  ck_assert_uint_eq(small.generation, 1);
  ck_assert_uint_eq(small.consecutive_failures, 0xEEEEEEEEu); /* untouched */
  small.struct_size = 0;
  ck_assert_int_eq(clink_breaker_get_stats(b, 0, &small), UV_EINVAL);
  ck_assert_int_eq(clink_breaker_get_stats(b, 0, NULL), UV_EINVAL);
  clink_breaker_free(b);
}
END_TEST

/* ------------------------------------------------------------- windows */

START_TEST(failure_rate_threshold_boundary) {
  for (int k = 0; k < 2; k++) {
    clink_breaker_config *c = cfg_new();
    clink_breaker_config_set_consecutive_failures(c, 0);
    /* 3 of 10 is exactly 30 %: trips at 30, not at 30.01 */
    clink_breaker_config_set_failure_rate(c, k == 0 ? 30.0 : 30.01, CLINK_BREAKER_WINDOW_COUNT,
                                          10, 10);
    clink_breaker *b = brk_new(c);
    fail_n(b, 0, 2);
    succ_n(b, 0, 7);
    ck_assert_int_eq(ST(b, 0), CLINK_BREAKER_CLOSED); /* 9 calls: below min_calls */
    fail_n(b, 0, 1);
    ck_assert_int_eq(ST(b, 0), k == 0 ? CLINK_BREAKER_OPEN : CLINK_BREAKER_CLOSED);
    clink_breaker_free(b);
  }
}
END_TEST

START_TEST(min_calls_boundary) {
  clink_breaker_config *c = cfg_new();
  clink_breaker_config_set_consecutive_failures(c, 0);
  clink_breaker_config_set_failure_rate(c, 50.0, CLINK_BREAKER_WINDOW_COUNT, 10, 4);
  clink_breaker *b = brk_new(c);
  fail_n(b, 0, 3); /* 100 % of 3 calls: below min_calls */
  ck_assert_int_eq(ST(b, 0), CLINK_BREAKER_CLOSED);
  ck_assert_double_eq(stats(b, 0).failure_rate_pct, -1.0);
  succ_n(b, 0, 1); /* the 4th call, a success, reaches min_calls at 75 % */
  ck_assert_int_eq(ST(b, 0), CLINK_BREAKER_OPEN);
  clink_breaker_free(b);

  /* min_calls above a COUNT window is clamped to its size (resilience4j). */
  c = cfg_new();
  clink_breaker_config_set_consecutive_failures(c, 0);
  clink_breaker_config_set_failure_rate(c, 50.0, CLINK_BREAKER_WINDOW_COUNT, 4, 100);
  b = brk_new(c);
  fail_n(b, 0, 3);
  ck_assert_int_eq(ST(b, 0), CLINK_BREAKER_CLOSED);
  fail_n(b, 0, 1);
  ck_assert_int_eq(ST(b, 0), CLINK_BREAKER_OPEN);
  clink_breaker_free(b);

  /* min_calls 0 counts as 1. */
  c = cfg_new();
  clink_breaker_config_set_consecutive_failures(c, 0);
  clink_breaker_config_set_failure_rate(c, 100.0, CLINK_BREAKER_WINDOW_TIME, 5, 0);
  b = brk_new(c);
  ck_assert_double_eq(stats(b, 0).failure_rate_pct, -1.0);
  fail_n(b, 0, 1);
  ck_assert_int_eq(ST(b, 0), CLINK_BREAKER_OPEN);
  clink_breaker_free(b);
}
END_TEST

START_TEST(count_window_slides) {
  clink_breaker_config *c = cfg_new();
  clink_breaker_config_set_consecutive_failures(c, 0);
  clink_breaker_config_set_failure_rate(c, 75.0, CLINK_BREAKER_WINDOW_COUNT, 4, 4);
  clink_breaker *b = brk_new(c);
  fail_n(b, 0, 2);
  succ_n(b, 0, 4); /* window S S S S */
  fail_n(b, 0, 2); /* S S F F: 50 % */
  clink_breaker_stats s = stats(b, 0);
  ck_assert_uint_eq(s.window_calls, 4);
  ck_assert_uint_eq(s.window_failures, 2);
  ck_assert_int_eq(s.state, CLINK_BREAKER_CLOSED);
  fail_n(b, 0, 1); /* S F F F: 75 % (without eviction 5 of 9) */
  ck_assert_int_eq(ST(b, 0), CLINK_BREAKER_OPEN);
  clink_breaker_free(b);
}
END_TEST

START_TEST(time_window_expiry) {
  clink_breaker_config *c = cfg_new();
  clink_breaker_config_set_consecutive_failures(c, 0);
  clink_breaker_config_set_failure_rate(c, 50.0, CLINK_BREAKER_WINDOW_TIME, 10, 3);
  clink_breaker *b = brk_new(c);
  fail_n(b, 0, 1);
  fail_n(b, 1500, 1);
  ck_assert_uint_eq(stats(b, 9999).window_calls, 2);
  ck_assert_uint_eq(stats(b, 10000).window_calls, 1); /* the call at 0 ms is gone */
  ck_assert_uint_eq(stats(b, 10999).window_calls, 1); /* 1500 is in second 1 */
  ck_assert_uint_eq(stats(b, 11000).window_calls, 0);
  ck_assert_uint_eq(stats(b, 11000).window_failures, 0);
  /* A long gap clears everything at once. */
  fail_n(b, 20000, 1);
  succ_n(b, 20999, 1);
  ck_assert_uint_eq(stats(b, 25000).window_calls, 2);
  ck_assert_uint_eq(stats(b, 1000000).window_calls, 0);
  clink_breaker_free(b);

  /* The rule sees the same window: F at 0, S at 9000, F at 9999 is 66 %:
   * trips; at 10000 the F at 0 is gone and S F is 50 %: does not. */
  for (int k = 0; k < 2; k++) {
    c = cfg_new();
    clink_breaker_config_set_consecutive_failures(c, 0);
    clink_breaker_config_set_failure_rate(c, 60.0, CLINK_BREAKER_WINDOW_TIME, 10, 2);
    b = brk_new(c);
    fail_n(b, 0, 1);
    succ_n(b, 9000, 1);
    fail_n(b, k == 0 ? 9999 : 10000, 1);
    ck_assert_int_eq(ST(b, 10000), k == 0 ? CLINK_BREAKER_OPEN : CLINK_BREAKER_CLOSED);
    clink_breaker_free(b);
  }

  /* Old successes leaving the window can trip the breaker on a success. */
  c = cfg_new();
  clink_breaker_config_set_consecutive_failures(c, 0);
  clink_breaker_config_set_failure_rate(c, 50.0, CLINK_BREAKER_WINDOW_TIME, 2, 3);
  b = brk_new(c);
  succ_n(b, 0, 3);
  fail_n(b, 1000, 2); /* 2 of 5 */
  ck_assert_int_eq(ST(b, 1000), CLINK_BREAKER_CLOSED);
  succ_n(b, 2000, 1); /* second 0 leaves: 2 of 3 */
  ck_assert_int_eq(ST(b, 2000), CLINK_BREAKER_OPEN);
  clink_breaker_free(b);
}
END_TEST

START_TEST(slow_call_boundary) {
  for (int k = 0; k < 2; k++) {
    clink_breaker_config *c = cfg_new();
    clink_breaker_config_set_consecutive_failures(c, 0);
    clink_breaker_config_set_failure_rate(c, 0.0, CLINK_BREAKER_WINDOW_COUNT, 4, 4);
    clink_breaker_config_set_slow_calls(c, 100, 50.0);
    clink_breaker *b = brk_new(c);
    succ_n(b, 0, 2);
    uint64_t d = k == 0 ? 100 : 101; /* slower than slow_ms, not equal */
    clink_breaker_on_success(b, acq(b, 0), 0, d);
    clink_breaker_stats s = stats(b, 0);
    ck_assert_uint_eq(s.window_slow, (k == 0 ? 0 : 1));
    clink_breaker_on_success(b, acq(b, 0), 0, d); /* 2 of 4 slow when d > 100 */
    ck_assert_int_eq(ST(b, 0), (k == 0 ? CLINK_BREAKER_CLOSED : CLINK_BREAKER_OPEN));
    clink_breaker_free(b);
  }
  /* A slow failure counts as slow too; 0 disables the rule. */
  clink_breaker_config *c = cfg_new();
  clink_breaker_config_set_consecutive_failures(c, 0);
  clink_breaker_config_set_failure_rate(c, 100.0, CLINK_BREAKER_WINDOW_COUNT, 4, 4);
  clink_breaker_config_set_slow_calls(c, 10, 50.0);
  clink_breaker *b = brk_new(c);
  succ_n(b, 0, 3);
  clink_breaker_on_error(b, acq(b, 0), 0, 11);
  clink_breaker_stats s = stats(b, 0);
  ck_assert_uint_eq(s.window_slow, 1);
  ck_assert_int_eq(s.state, CLINK_BREAKER_CLOSED);
  clink_breaker_on_error(b, acq(b, 0), 0, 11); /* 2 slow of 4 */
  ck_assert_int_eq(ST(b, 0), CLINK_BREAKER_OPEN);
  clink_breaker_free(b);

  c = cfg_new();
  clink_breaker_config_set_consecutive_failures(c, 0);
  clink_breaker_config_set_failure_rate(c, 100.0, CLINK_BREAKER_WINDOW_COUNT, 4, 1);
  clink_breaker_config_set_slow_calls(c, 10, 0.0);
  b = brk_new(c);
  clink_breaker_on_success(b, acq(b, 0), 0, 1000);
  ck_assert_uint_eq(stats(b, 0).window_slow, 0);
  ck_assert_int_eq(ST(b, 0), CLINK_BREAKER_CLOSED);
  clink_breaker_free(b);
}
END_TEST

START_TEST(jitter_spread_and_seed) {
  clink_breaker_config *c = cfg_new();
  clink_breaker_config_set_consecutive_failures(c, 1);
  clink_breaker_config_set_open_duration(c, 10000, 10000, 1.0, 10.0);
  clink_breaker *a, *b, *d;
  ck_assert_int_eq(clink_breaker_new(&a, "a", c, 99), 0);
  ck_assert_int_eq(clink_breaker_new(&b, "b", c, 99), 0);
  ck_assert_int_eq(clink_breaker_new(&d, "d", c, 100), 0);
  clink_breaker_config_free(c);
  uint64_t lo = UINT64_MAX, hi = 0;
  int same = 1, differ = 0;
  for (int i = 0; i < 2000; i++) {
    uint64_t t = (uint64_t)i * 100000;
    fail_n(a, t, 1);
    fail_n(b, t, 1);
    fail_n(d, t, 1);
    uint64_t ra = rej(a, t), rb = rej(b, t), rd = rej(d, t);
    ck_assert_uint_ge(ra, 9000);
    ck_assert_uint_le(ra, 11000);
    if (ra < lo) lo = ra;
    if (ra > hi) hi = ra;
    same &= ra == rb;
    differ |= ra != rd;
    clink_breaker_reset(a, t);
    clink_breaker_reset(b, t);
    clink_breaker_reset(d, t);
  }
  ck_assert(same);
  ck_assert(differ);
  ck_assert_uint_lt(lo, 9100);
  ck_assert_uint_gt(hi, 10900);
  clink_breaker_free(a);
  clink_breaker_free(b);
  clink_breaker_free(d);
}
END_TEST

/* ------------------------------------------------------------ registry */

START_TEST(registry_seed_defaults) {
  clink_breaker_registry *reg;
  ck_assert_int_eq(clink_breaker_registry_new(&reg, 5), 0);
  ck_assert_uint_eq(clink_breaker_registry_count(reg), 2);
  ck_assert_str_eq(clink_breaker_name(clink_breaker_registry_at(reg, 0)), "claude_sdk");
  ck_assert_str_eq(clink_breaker_name(clink_breaker_registry_at(reg, 1)), "session_operations");

  clink_breaker *sdk = clink_breaker_registry_get(reg, "claude_sdk");
  ck_assert_ptr_eq(sdk, clink_breaker_registry_at(reg, 0));
  fail_n(sdk, 0, 2);
  ck_assert_int_eq(ST(sdk, 0), CLINK_BREAKER_CLOSED);
  fail_n(sdk, 1, 1); /* 3rd consecutive */
  ck_assert_int_eq(ST(sdk, 1), CLINK_BREAKER_OPEN);
  ck_assert_uint_eq(rej(sdk, 1), 30000);
  ck_assert_int_eq(ST(sdk, 30000), CLINK_BREAKER_OPEN);
  ck_assert_int_eq(ST(sdk, 30001), CLINK_BREAKER_HALF_OPEN);
  uint64_t p = acq(sdk, 30001);
  rej(sdk, 30001); /* one probe at a time */
  clink_breaker_on_success(sdk, p, 30002, 1);
  ck_assert_int_eq(ST(sdk, 30002), CLINK_BREAKER_HALF_OPEN); /* needs 2 */
  clink_breaker_on_success(sdk, acq(sdk, 30003), 30003, 1);
  ck_assert_int_eq(ST(sdk, 30003), CLINK_BREAKER_CLOSED);
  /* A half-open failure re-opens for 30 s again. */
  fail_n(sdk, 40000, 3);
  clink_breaker_on_error(sdk, acq(sdk, 70000), 70000, 1);
  ck_assert_uint_eq(rej(sdk, 70000), 30000);

  clink_breaker *ses = clink_breaker_registry_get(reg, "session_operations");
  ck_assert_ptr_eq(ses, clink_breaker_registry_at(reg, 1));
  fail_n(ses, 0, 4);
  ck_assert_int_eq(ST(ses, 0), CLINK_BREAKER_CLOSED);
  fail_n(ses, 0, 1);
  ck_assert_int_eq(ST(ses, 0), CLINK_BREAKER_OPEN);
  ck_assert_uint_eq(rej(ses, 0), 60000);
  ck_assert_int_eq(ST(ses, 59999), CLINK_BREAKER_OPEN);
  ck_assert_int_eq(ST(ses, 60000), CLINK_BREAKER_HALF_OPEN);
  clink_breaker_on_success(ses, acq(ses, 60000), 60000, 1);
  ck_assert_int_eq(ST(ses, 60000), CLINK_BREAKER_CLOSED);
  clink_breaker_registry_free(reg);
  clink_breaker_registry_free(NULL);
}
END_TEST

START_TEST(registry_add_get) {
  clink_breaker_registry *reg;
  ck_assert_int_eq(clink_breaker_registry_new(NULL, 0), UV_EINVAL);
  ck_assert_int_eq(clink_breaker_registry_new(&reg, 0), 0);
  clink_breaker_config *c = cfg_new();
  clink_breaker_config_set_consecutive_failures(c, 1);
  clink_breaker *x = NULL;
  ck_assert_int_eq(clink_breaker_registry_add(reg, "x", c, &x), 0);
  ck_assert_ptr_nonnull(x);
  ck_assert_ptr_eq(clink_breaker_registry_get(reg, "x"), x);
  clink_breaker *y = (clink_breaker *)&y;
  ck_assert_int_eq(clink_breaker_registry_add(reg, "x", c, &y), UV_EEXIST);
  ck_assert_ptr_null(y);
  ck_assert_int_eq(clink_breaker_registry_add(reg, "claude_sdk", NULL, NULL), UV_EEXIST);
  ck_assert_uint_eq(clink_breaker_registry_count(reg), 3);
  char name[16];
  for (int i = 0; i < 20; i++) { /* grows past the first capacity */
    snprintf(name, sizeof(name), "b%d", i);
    ck_assert_int_eq(clink_breaker_registry_add(reg, name, i % 2 ? c : NULL, NULL), 0);
  }
  ck_assert_uint_eq(clink_breaker_registry_count(reg), 23);
  ck_assert_str_eq(clink_breaker_name(clink_breaker_registry_at(reg, 22)), "b19");
  ck_assert_ptr_eq(clink_breaker_registry_at(reg, 2), x);
  ck_assert_ptr_null(clink_breaker_registry_at(reg, 23));
  ck_assert_ptr_null(clink_breaker_registry_get(reg, "nope"));
  ck_assert_ptr_null(clink_breaker_registry_get(reg, NULL));
  ck_assert_int_eq(clink_breaker_registry_add(reg, NULL, c, NULL), UV_EINVAL);
  ck_assert_int_eq(clink_breaker_registry_add(NULL, "z", c, NULL), UV_EINVAL);
  ck_assert_uint_eq(clink_breaker_registry_count(NULL), 0);
  ck_assert_ptr_null(clink_breaker_registry_at(NULL, 0));
  /* The config was copied; the breakers work independently. */
  clink_breaker_config_free(c);
  fail_n(x, 0, 1);
  ck_assert_int_eq(ST(x, 0), CLINK_BREAKER_OPEN);
  ck_assert_int_eq(ST(clink_breaker_registry_get(reg, "b1"), 0), CLINK_BREAKER_CLOSED);
  clink_breaker_registry_free(reg);
}
END_TEST

START_TEST(registry_seeded_is_reproducible) {
  clink_breaker_config *c = cfg_new();
  clink_breaker_config_set_consecutive_failures(c, 1);
  clink_breaker_config_set_open_duration(c, 10000, 10000, 1.0, 50.0);
  uint64_t got[2][2];
  for (int k = 0; k < 2; k++) {
    clink_breaker_registry *reg;
    ck_assert_int_eq(clink_breaker_registry_new(&reg, 1234), 0);
    clink_breaker *j1, *j2;
    ck_assert_int_eq(clink_breaker_registry_add(reg, "j1", c, &j1), 0);
    ck_assert_int_eq(clink_breaker_registry_add(reg, "j2", c, &j2), 0);
    fail_n(j1, 0, 1);
    fail_n(j2, 0, 1);
    got[k][0] = rej(j1, 0);
    got[k][1] = rej(j2, 0);
    clink_breaker_registry_free(reg);
  }
  ck_assert_uint_eq(got[0][0], got[1][0]);
  ck_assert_uint_eq(got[0][1], got[1][1]);
  ck_assert_uint_ne(got[0][0], got[0][1]); /* distinct streams */
  clink_breaker_config_free(c);
}
END_TEST

/* ------------------------------------------------ reference model (slow) */

/* The same semantics written the plain way: every outcome since the last
 * change of state is kept in a list, and the window, the consecutive run and
 * the rates are recomputed from that list each time they are needed. */
typedef struct mcfg {
  unsigned consecutive;
  double fail_pct;
  int time_window;
  unsigned size, min_calls;
  uint64_t slow_ms;
  double slow_pct;
  uint64_t base, max;
  double mult;
  unsigned probes, to_close;
  uint64_t max_ho;
} mcfg;

typedef struct mrec {
  uint64_t t;
  int fail, slow;
} mrec;

typedef struct model {
  mcfg c;
  int state;
  uint64_t epoch;
  uint64_t open_until;
  unsigned opens; /* since the last close */
  mrec *recs;
  size_t n, cap;
  unsigned probes_out, probe_succ;
  int has_deadline;
  uint64_t deadline;
  uint64_t transitions, rejections, opened;
} model;

static uint64_t m_sat_add(uint64_t a, uint64_t b) { return a > UINT64_MAX - b ? UINT64_MAX : a + b; }

static void m_set(model *m, int st) {
  if (st != m->state) m->transitions++;
  m->state = st;
  m->epoch++;
  m->n = 0;
  m->probes_out = m->probe_succ = 0;
  m->has_deadline = 0;
}

static void m_open(model *m, uint64_t t, uint64_t d) {
  m_set(m, CLINK_BREAKER_OPEN);
  m->open_until = m_sat_add(t, d);
  m->opens++;
  m->opened++;
}

static void m_trip(model *m, uint64_t t) {
  /* The (k+1)-th open since a close lasts min(max, base * mult^k). */
  double d = (double)m->c.base;
  for (unsigned i = 0; i < m->opens; i++) {
    d *= m->c.mult;
    if (d > (double)m->c.max) d = (double)m->c.max;
  }
  uint64_t di = (uint64_t)(d + 0.5);
  if (di > m->c.max) di = m->c.max;
  m_open(m, t, di);
}

static void m_close(model *m) {
  m_set(m, CLINK_BREAKER_CLOSED);
  m->opens = 0;
}

static void m_advance(model *m, uint64_t now) {
  if (m->state == CLINK_BREAKER_OPEN && now >= m->open_until) m_set(m, CLINK_BREAKER_HALF_OPEN);
  if (m->state == CLINK_BREAKER_HALF_OPEN && m->has_deadline && now >= m->deadline) {
    m_trip(m, m->deadline);
    if (now >= m->open_until) m_set(m, CLINK_BREAKER_HALF_OPEN);
  }
}

typedef struct mwin {
  unsigned calls, fails, slow, cons_fail, cons_succ;
} mwin;

static int m_has_window(const model *m) { return m->c.fail_pct > 0 || m->c.slow_pct > 0; }

static mwin m_window(const model *m, uint64_t now) {
  mwin w = {0, 0, 0, 0, 0};
  size_t i = m->n;
  while (i > 0 && m->recs[i - 1].fail) {
    w.cons_fail++;
    i--;
  }
  i = m->n;
  while (i > 0 && !m->recs[i - 1].fail) {
    w.cons_succ++;
    i--;
  }
  if (!m_has_window(m)) return w;
  for (size_t k = m->n; k > 0; k--) {
    const mrec *r = &m->recs[k - 1];
    if (m->c.time_window) {
      if (r->t / 1000 + m->c.size <= now / 1000) break;
    } else if (m->n - k >= m->c.size) {
      break;
    }
    w.calls++;
    w.fails += r->fail ? 1 : 0;
    w.slow += r->slow ? 1 : 0;
  }
  return w;
}

static unsigned m_min_calls(const model *m) {
  unsigned mc = m->c.min_calls ? m->c.min_calls : 1;
  if (!m->c.time_window && mc > m->c.size) mc = m->c.size;
  return mc;
}

static int m_should_trip(const model *m, uint64_t now) {
  mwin w = m_window(m, now);
  if (m->c.consecutive && w.cons_fail >= m->c.consecutive) return 1;
  if (!m_has_window(m) || w.calls < m_min_calls(m)) return 0;
  if (m->c.fail_pct > 0 && (double)w.fails * 100.0 >= m->c.fail_pct * (double)w.calls) return 1;
  if (m->c.slow_pct > 0 && (double)w.slow * 100.0 >= m->c.slow_pct * (double)w.calls) return 1;
  return 0;
}

/* Returns 0 (admitted: *epoch, *probe) or -1 (rejected: *retry). */
static int m_acquire(model *m, uint64_t now, uint64_t *epoch, int *probe, uint64_t *retry) {
  *retry = 0;
  *probe = 0;
  *epoch = m->epoch;
  switch (m->state) {
    case CLINK_BREAKER_CLOSED:
    case CLINK_BREAKER_DISABLED:
      return 0;
    case CLINK_BREAKER_FORCED_OPEN:
      m->rejections++;
      return -1;
    default:
      break;
  }
  m_advance(m, now);
  *epoch = m->epoch;
  if (m->state == CLINK_BREAKER_OPEN) {
    *retry = m->open_until - now;
    m->rejections++;
    return -1;
  }
  if (m->probes_out >= m->c.probes) {
    m->rejections++;
    return -1;
  }
  m->probes_out++;
  if (!m->has_deadline && m->c.max_ho) {
    m->has_deadline = 1;
    m->deadline = m_sat_add(now, m->c.max_ho);
  }
  *probe = 1;
  return 0;
}

static void m_outcome(model *m, uint64_t epoch, int probe, uint64_t now, uint64_t dur, int fail) {
  if (m->state == CLINK_BREAKER_DISABLED || m->state == CLINK_BREAKER_FORCED_OPEN) return;
  m_advance(m, now);
  if (epoch != m->epoch) return;
  int slow = m->c.slow_pct > 0 && dur > m->c.slow_ms;
  if (m->state == CLINK_BREAKER_CLOSED && !probe) {
    if (m->n == m->cap) {
      m->cap = m->cap ? m->cap * 2 : 1024;
      m->recs = realloc(m->recs, m->cap * sizeof(*m->recs));
      if (m->recs == NULL) ck_abort_msg("out of memory");
    }
    m->recs[m->n].t = now;
    m->recs[m->n].fail = fail;
    m->recs[m->n].slow = slow;
    m->n++;
    if (m_should_trip(m, now)) m_trip(m, now);
  } else if (m->state == CLINK_BREAKER_HALF_OPEN && probe) {
    m->probes_out--;
    if (fail || slow)
      m_trip(m, now);
    else if (++m->probe_succ >= m->c.to_close)
      m_close(m);
  }
}

static void m_release(model *m, uint64_t epoch, int probe) {
  if (m->state == CLINK_BREAKER_HALF_OPEN && probe && epoch == m->epoch) m->probes_out--;
}

/* ------------------------------------------------- differential driver */

static uint64_t rng_next(uint64_t *s) {
  uint64_t z = (*s += UINT64_C(0x9E3779B97F4A7C15));
  z = (z ^ (z >> 30)) * UINT64_C(0xBF58476D1CE4E5B9);
  z = (z ^ (z >> 27)) * UINT64_C(0x94D049BB133111EB);
  return z ^ (z >> 31);
}
static uint64_t rng_below(uint64_t *s, uint64_t n) { return rng_next(s) % n; }

static long diff_events(void) {
  const char *e = getenv("CLINK_TEST_SHORT");
  if (e != NULL && e[0] != '\0' && strcmp(e, "0") != 0) return 50000;
  e = getenv("CK_FORK");
  if (e != NULL && strcmp(e, "no") == 0) return 50000;
  return 1000000;
}

typedef struct outstanding {
  uint64_t permit, epoch;
  int probe;
} outstanding;

#define MAX_OUT 48

/* Check's ck_assert_* reports every passing assertion to the parent process
 * (a pipe write in fork mode): far too slow for a million steps. */
#define DCHECK(cond, ...)                        \
  do {                                           \
    if (!(cond)) ck_abort_msg(__VA_ARGS__);      \
  } while (0)
#define DEQ(a, b) DCHECK((a) == (b), "step %ld: %s = %llu, model %llu", i, #a, \
                         (unsigned long long)(a), (unsigned long long)(b))

static void run_differential(const mcfg *mc, uint64_t seed) {
  clink_breaker_config *c = cfg_new();
  ck_assert_int_eq(clink_breaker_config_set_consecutive_failures(c, mc->consecutive), 0);
  ck_assert_int_eq(clink_breaker_config_set_failure_rate(
                       c, mc->fail_pct,
                       mc->time_window ? CLINK_BREAKER_WINDOW_TIME : CLINK_BREAKER_WINDOW_COUNT,
                       mc->size, mc->min_calls),
                   0);
  ck_assert_int_eq(clink_breaker_config_set_slow_calls(c, mc->slow_ms, mc->slow_pct), 0);
  ck_assert_int_eq(clink_breaker_config_set_open_duration(c, mc->base, mc->max, mc->mult, 0.0),
                   0);
  ck_assert_int_eq(clink_breaker_config_set_half_open(c, mc->probes, mc->to_close, mc->max_ho),
                   0);
  clink_breaker *b = brk_new(c);
  evrec ev;
  memset(&ev, 0, sizeof(ev));
  clink_breaker_set_event_cb(b, record_cb, &ev);
  model m;
  memset(&m, 0, sizeof(m));
  m.c = *mc;
  m.state = CLINK_BREAKER_CLOSED;
  m.epoch = 1;

  outstanding out[MAX_OUT];
  int n_out = 0;
  uint64_t now = 1000000, s = seed;
  unsigned fail_permille = 100;
  long n = diff_events();
  uint64_t seen[5] = {0}, admits = 0, rejects = 0, stale = 0;
  for (long i = 0; i < n; i++) {
    if (i % 2000 == 0) {
      static const unsigned regimes[] = {20, 150, 400, 700, 950};
      fail_permille = regimes[rng_below(&s, 5)];
    }
    unsigned r = (unsigned)rng_below(&s, 10000);
    if (r < 3000) { /* acquire */
      if (n_out == MAX_OUT) continue;
      uint64_t p = 0, ra = 777, me, mra;
      int mp;
      int rc = clink_breaker_acquire(b, now, &p, &ra);
      int mrc = m_acquire(&m, now, &me, &mp, &mra);
      DCHECK((rc == 0) == (mrc == 0), "step %ld: admit %d vs model %d", i, rc, mrc);
      if (rc == 0) {
        admits++;
        out[n_out].permit = p;
        out[n_out].epoch = me;
        out[n_out].probe = mp;
        n_out++;
      } else {
        rejects++;
        DCHECK(rc == CLINK_ECIRCUIT_OPEN, "step %ld: rc %d", i, rc);
        DEQ(ra, mra);
      }
    } else if (r < 6400) { /* outcome */
      if (n_out == 0) continue;
      int k = (int)rng_below(&s, (uint64_t)n_out);
      outstanding o = out[k];
      out[k] = out[--n_out];
      if (o.epoch != m.epoch) stale++;
      int fail = rng_below(&s, 1000) < fail_permille;
      uint64_t dur;
      unsigned dk = (unsigned)rng_below(&s, 10);
      if (dk < 6)
        dur = rng_below(&s, mc->slow_ms + 1);
      else if (dk < 8)
        dur = mc->slow_ms + rng_below(&s, 2); /* the boundary */
      else
        dur = rng_below(&s, 4 * mc->slow_ms + 2);
      if (fail) {
        clink_breaker_on_error(b, o.permit, now, dur);
        m_outcome(&m, o.epoch, o.probe, now, dur, 1);
      } else {
        clink_breaker_on_success(b, o.permit, now, dur);
        m_outcome(&m, o.epoch, o.probe, now, dur, 0);
      }
    } else if (r < 6800) { /* release */
      if (n_out == 0) continue;
      int k = (int)rng_below(&s, (uint64_t)n_out);
      outstanding o = out[k];
      out[k] = out[--n_out];
      clink_breaker_release(b, o.permit);
      m_release(&m, o.epoch, o.probe);
    } else if (r < 9300) { /* time */
      unsigned tk = (unsigned)rng_below(&s, 100);
      if (tk < 70)
        now += rng_below(&s, 21);
      else if (tk < 95)
        now += rng_below(&s, 301);
      else
        now += rng_below(&s, 3001);
    } else if (r < 9990) { /* look: stats (lazy transitions too) */
      clink_breaker_stats st;
      st.struct_size = sizeof(st);
      DCHECK(clink_breaker_get_stats(b, now, &st) == 0, "get_stats");
      m_advance(&m, now);
      mwin w = m_window(&m, now);
      DEQ(st.state, (clink_breaker_state)m.state);
      DEQ(st.generation, m.epoch);
      DEQ(st.half_open_in_flight, m.probes_out);
      DEQ(st.opened_count, m.opened);
      DEQ(st.total_rejected, m.rejections);
      DEQ(st.until_half_open_ms, (m.state == CLINK_BREAKER_OPEN ? m.open_until - now : 0));
      DEQ(st.consecutive_failures, w.cons_fail);
      if (m.state == CLINK_BREAKER_CLOSED) DEQ(st.consecutive_successes, w.cons_succ);
      if (m.state == CLINK_BREAKER_HALF_OPEN) DEQ(st.consecutive_successes, m.probe_succ);
      DEQ(st.window_calls, w.calls);
      DEQ(st.window_failures, w.fails);
      DEQ(st.window_slow, w.slow);
      double rate = m_has_window(&m) && w.calls >= m_min_calls(&m)
                        ? (double)w.fails * 100.0 / (double)w.calls
                        : -1.0;
      DCHECK(st.failure_rate_pct == rate, "step %ld: rate %f vs model %f", i,
             st.failure_rate_pct, rate);
    } else { /* rare manual controls */
      unsigned mk = (unsigned)rng_below(&s, 10);
      if (mk < 5) {
        uint64_t ms = rng_below(&s, 2 * mc->base + 1);
        clink_breaker_open_for(b, now, ms);
        if (m.state != CLINK_BREAKER_DISABLED && m.state != CLINK_BREAKER_FORCED_OPEN)
          m_open(&m, now, ms);
      } else if (mk < 8) {
        clink_breaker_reset(b, now);
        m_close(&m);
      } else if (mk < 9) {
        clink_breaker_force_open(b, now);
        if (m.state != CLINK_BREAKER_FORCED_OPEN) m_set(&m, CLINK_BREAKER_FORCED_OPEN);
      } else {
        clink_breaker_disable(b, now);
        if (m.state != CLINK_BREAKER_DISABLED) m_set(&m, CLINK_BREAKER_DISABLED);
      }
    }
    if (rng_below(&s, 2) == 0) {
      clink_breaker_state st = clink_breaker_get_state(b, now);
      m_advance(&m, now);
      DCHECK(st == (clink_breaker_state)m.state, "step %ld: state %s vs model %s", i,
             clink_breaker_state_name(st), clink_breaker_state_name(m.state));
    }
    seen[m.state]++;
  }
  ck_assert_uint_eq((uint64_t)ev.n_state, m.transitions);
  ck_assert_uint_eq((uint64_t)ev.n_rejected, m.rejections);
  /* The run must have gone through every state and many cycles. */
  for (int k = 0; k < 5; k++) ck_assert_uint_gt(seen[k], 0);
  ck_assert_uint_gt(m.opened, (uint64_t)n / 2000);
  ck_assert_uint_gt(admits, 0);
  ck_assert_uint_gt(rejects, 0);
  ck_assert_uint_gt(stale, 0);
  free(m.recs);
  clink_breaker_free(b);
}

START_TEST(diff_consecutive_only) {
  mcfg c = {.consecutive = 3, .size = 100, .min_calls = 100, .slow_ms = 50, .base = 100,
            .max = 1600, .mult = 2.0, .probes = 1, .to_close = 1, .max_ho = 0};
  run_differential(&c, 1);
}
END_TEST

START_TEST(diff_count_window_rate) {
  mcfg c = {.consecutive = 0, .fail_pct = 50.0, .size = 10, .min_calls = 5, .slow_ms = 50,
            .base = 200, .max = 1000, .mult = 1.5, .probes = 2, .to_close = 3, .max_ho = 150};
  run_differential(&c, 2);
}
END_TEST

START_TEST(diff_time_window_slow) {
  mcfg c = {.consecutive = 5, .fail_pct = 40.0, .time_window = 1, .size = 3, .min_calls = 4,
            .slow_ms = 50, .slow_pct = 60.0, .base = 150, .max = 2000, .mult = 2.0,
            .probes = 1, .to_close = 2, .max_ho = 400};
  run_differential(&c, 3);
}
END_TEST

START_TEST(diff_many_probes) {
  mcfg c = {.consecutive = 2, .fail_pct = 30.0, .size = 20, .min_calls = 10, .slow_ms = 30,
            .slow_pct = 90.0, .base = 50, .max = 800, .mult = 3.0, .probes = 5, .to_close = 4,
            .max_ho = 100};
  run_differential(&c, 4);
}
END_TEST

int main(void) {
  Suite *s = suite_create("breaker");
  TCase *tc = tcase_create("config");
  tcase_add_test(tc, defaults);
  tcase_add_test(tc, config_validation);
  tcase_add_test(tc, state_names);
  suite_add_tcase(s, tc);

  tc = tcase_create("transitions");
  tcase_add_test(tc, consecutive_trips_at_threshold);
  tcase_add_test(tc, open_duration_boundary);
  tcase_add_test(tc, half_open_admits_max_probes);
  tcase_add_test(tc, successes_to_close_is_separate);
  tcase_add_test(tc, half_open_failure_reopens_grown);
  tcase_add_test(tc, half_open_max_wait);
  tcase_add_test(tc, stale_permits_are_ignored);
  tcase_add_test(tc, half_open_slow_call_reopens);
  tcase_add_test(tc, manual_controls);
  tcase_add_test(tc, events_and_reentrancy);
  tcase_add_test(tc, stats_fields);
  suite_add_tcase(s, tc);

  tc = tcase_create("windows");
  tcase_add_test(tc, failure_rate_threshold_boundary);
  tcase_add_test(tc, min_calls_boundary);
  tcase_add_test(tc, count_window_slides);
  tcase_add_test(tc, time_window_expiry);
  tcase_add_test(tc, slow_call_boundary);
  tcase_add_test(tc, jitter_spread_and_seed);
  suite_add_tcase(s, tc);

  tc = tcase_create("registry");
  tcase_add_test(tc, registry_seed_defaults);
  tcase_add_test(tc, registry_add_get);
  tcase_add_test(tc, registry_seeded_is_reproducible);
  suite_add_tcase(s, tc);

  tc = tcase_create("differential");
  tcase_set_timeout(tc, 120);
  tcase_add_test(tc, diff_consecutive_only);
  tcase_add_test(tc, diff_count_window_rate);
  tcase_add_test(tc, diff_time_window_slow);
  tcase_add_test(tc, diff_many_probes);
  suite_add_tcase(s, tc);
  return clink_test_run(s);
}
